//! A dataset resident on the device, and the rows of one minibatch gathered from it.

use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use crate::reward::data::PairDataset;
use crate::runtime::precision::Autocast;

/// A dataset resident on the device: items (and their ratings) once, pairs as index tensors.
pub(super) struct DeviceData<B: Backend> {
    pub(super) items: Tensor<B, 2>,
    pub(super) prompts: Option<Tensor<B, 2>>,
    pub(super) ratings: Option<Tensor<B, 2>>,
    pub(super) strengths: Option<Tensor<B, 1>>,
}

/// The rows of one minibatch.
pub(super) struct Batch<B: Backend> {
    pub(super) chosen: Tensor<B, 2>,
    pub(super) rejected: Tensor<B, 2>,
    pub(super) prompts: Option<Tensor<B, 2>>,
    /// Per-attribute ratings of the chosen and rejected items (data with ratings only).
    pub(super) ratings: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    /// Per-pair preference strengths (data with strengths only).
    pub(super) strengths: Option<Tensor<B, 1>>,
}

impl<B: Backend> Batch<B> {
    /// The model's inputs in the compute type (ratings and strengths are targets: they stay).
    pub(super) fn down(self, ac: &Autocast) -> Self {
        Self { chosen: ac.down(self.chosen), rejected: ac.down(self.rejected), prompts: self.prompts.map(|p| ac.down(p)), ..self }
    }
}

impl<B: Backend> DeviceData<B> {
    pub(super) fn new(ds: &PairDataset, device: &B::Device) -> Self {
        let items = Tensor::from_data(TensorData::new(ds.items.clone(), [ds.n_items(), ds.dim]), device);
        let prompts = (ds.prompt_dim > 0)
            .then(|| Tensor::from_data(TensorData::new(ds.prompts.clone(), [ds.pairs.len(), ds.prompt_dim]), device));
        let ratings = (ds.n_objectives > 0)
            .then(|| Tensor::from_data(TensorData::new(ds.ratings.clone(), [ds.n_items(), ds.n_objectives]), device));
        let strengths = (!ds.strengths.is_empty()).then(|| Tensor::from_data(TensorData::new(ds.strengths.clone(), [ds.pairs.len()]), device));
        Self { items, prompts, ratings, strengths }
    }

    pub(super) fn inner(&self) -> DeviceData<B::InnerBackend>
    where
        B: AutodiffBackend,
    {
        DeviceData {
            items: self.items.clone().inner(),
            prompts: self.prompts.clone().map(|p| p.inner()),
            ratings: self.ratings.clone().map(|r| r.inner()),
            strengths: self.strengths.clone().map(|s| s.inner()),
        }
    }

    /// The rows for the given pair indices.
    pub(super) fn gather(&self, ds: &PairDataset, pair_idx: &[usize], device: &B::Device) -> Batch<B> {
        let index = |v: Vec<i32>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device);
        let c = index(pair_idx.iter().map(|&p| ds.pairs[p].0 as i32).collect());
        let r = index(pair_idx.iter().map(|&p| ds.pairs[p].1 as i32).collect());
        let pair_index = || index(pair_idx.iter().map(|&i| i as i32).collect());
        let prompts = self.prompts.as_ref().map(|p| p.clone().select(0, pair_index()));
        let ratings = self.ratings.as_ref().map(|t| (t.clone().select(0, c.clone()), t.clone().select(0, r.clone())));
        let strengths = self.strengths.as_ref().map(|s| s.clone().select(0, pair_index()));
        Batch { chosen: self.items.clone().select(0, c), rejected: self.items.clone().select(0, r), prompts, ratings, strengths }
    }

    /// The rows of whole lists, `[n_lists · L, d]` in ranked order (lists of one length).
    pub(super) fn gather_lists(&self, ds: &PairDataset, lists: &[usize], device: &B::Device) -> Tensor<B, 2> {
        let idx: Vec<i32> = lists.iter().flat_map(|&l| ds.lists[l].iter().map(|&i| i as i32)).collect();
        let n = idx.len();
        self.items.clone().select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), device))
    }
}
