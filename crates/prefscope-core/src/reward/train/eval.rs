//! Held-out evaluation: the figures one step reports, and evaluation of any model on any pairs.

use burn::module::AutodiffModule;
use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::reward::data::PairDataset;
use crate::reward::loss::{
    pairwise_accuracy, pairwise_logistic_loss, preference_probability,
};
use crate::reward::model::PreferenceModel;
use crate::{Error, Result};
use super::*;

/// What one step reports. Eval fields are present on evaluation steps only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based step number.
    pub step: usize,
    /// The training objective on the minibatch, before the update (mean −log σ(ℓ) unless
    /// `train.loss` adds a margin, smoothing or centering; the ratings' MSE for multi-objective).
    pub loss: f32,
    /// Minibatch pairwise accuracy, before the update.
    pub train_accuracy: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval: Option<EvalMetrics>,
}

/// Held-out figures: pairwise accuracy, loss and mean P(chosen ≻ rejected).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub accuracy: f32,
    pub loss: f32,
    pub probability: f32,
    pub n: usize,
}

pub(super) async fn read<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(|e| Error::Backend(format!("{e:?}")))?;
    data.convert::<f32>().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// Evaluate a model on the given pairs of a dataset (any backend, no gradients).
pub async fn evaluate<B: Backend>(model: &PreferenceModel<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> Result<EvalMetrics> {
    evaluate_resident(model, &DeviceData::<B>::new(ds, device), ds, pairs, device).await
}

/// A model's logits of P(chosen ≻ rejected) on the given pairs of `ds`, in order.
pub async fn pair_logits<B: Backend>(model: &PreferenceModel<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> Result<Vec<f32>> {
    logits_resident(model, &DeviceData::<B>::new(ds, device), ds, pairs, device).await
}

pub(super) async fn logits_resident<B: Backend>(model: &PreferenceModel<B>, data: &DeviceData<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(8192) {
        let b = data.gather(ds, chunk, device);
        out.extend(read(model.logits(b.chosen, b.rejected, b.prompts)).await?);
    }
    Ok(out)
}

/// Eurus's sign accuracy of a scalar reward on the given pairs' responses (each counted once):
/// the share whose reward has the sign of its gold rating. `None` unless the model is
/// Bradley–Terry and the data has one gold rating per item (`linear`, `noisy`, `overopt`,
/// `reasoning`).
pub async fn sign_accuracy<B: Backend>(model: &PreferenceModel<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> Result<Option<f32>> {
    let PreferenceModel::Bt(m) = model else { return Ok(None) };
    if ds.n_objectives != 1 || ds.ratings.len() != ds.n_items() {
        return Ok(None);
    }
    let mut items: Vec<usize> = pairs.iter().flat_map(|&p| [ds.pairs[p].0, ds.pairs[p].1]).collect();
    items.sort_unstable();
    items.dedup();
    let (mut rewards, mut gold) = (Vec::with_capacity(items.len()), Vec::with_capacity(items.len()));
    for chunk in items.chunks(8192) {
        let x: Vec<f32> = chunk.iter().flat_map(|&i| ds.item(i).iter().copied()).collect();
        let x = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(x, [chunk.len(), ds.dim]), device);
        rewards.extend(read(m.reward(x)).await?);
        gold.extend(chunk.iter().map(|&i| ds.ratings[i]));
    }
    Ok(Some(crate::reward::metrics::sign_accuracy(&rewards, &gold)))
}

/// [`evaluate`] on data already on the device (the trainer's, so evaluation uploads nothing).
pub(super) async fn evaluate_resident<B: Backend>(model: &PreferenceModel<B>, data: &DeviceData<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> Result<EvalMetrics> {
    if pairs.is_empty() {
        return Ok(EvalMetrics { accuracy: f32::NAN, loss: f32::NAN, probability: f32::NAN, n: 0 });
    }
    // Chunk so a large eval set never needs one huge activation tensor.
    let (mut acc, mut loss, mut prob) = (0f64, 0f64, 0f64);
    for chunk in pairs.chunks(8192) {
        let b = data.gather(ds, chunk, device);
        let logits = model.logits(b.chosen, b.rejected, b.prompts);
        let stats = Tensor::cat(
            vec![pairwise_accuracy(logits.clone()), pairwise_logistic_loss(logits.clone()), preference_probability(logits).mean()],
            0,
        );
        let v = read(stats).await?;
        let w = chunk.len() as f64;
        acc += v[0] as f64 * w;
        loss += v[1] as f64 * w;
        prob += v[2] as f64 * w;
    }
    let n = pairs.len() as f64;
    Ok(EvalMetrics { accuracy: (acc / n) as f32, loss: (loss / n) as f32, probability: (prob / n) as f32, n: pairs.len() })
}

impl<B: AutodiffBackend> Trainer<B> {
    /// The current model's logits on the given pairs (no gradients).
    pub async fn pair_logits(&self, pairs: &[usize]) -> Result<Vec<f32>> {
        logits_resident(&self.model().valid(), &self.data.inner(), &self.dataset, pairs, &self.device).await
    }

    /// Held-out metrics of the current model.
    pub async fn evaluate(&self) -> Result<EvalMetrics> {
        evaluate_resident(&self.model().valid(), &self.data.inner(), &self.dataset, &self.dataset.eval, &self.device).await
    }

    /// The current model's metrics on each of the dataset's named test sets (none for most data).
    pub async fn evaluate_test_sets(&self) -> Result<Vec<(String, EvalMetrics)>> {
        let (model, data) = (self.model().valid(), self.data.inner());
        let mut out = Vec::with_capacity(self.dataset.test_sets.len());
        for (name, pairs) in &self.dataset.test_sets {
            out.push((name.clone(), evaluate_resident(&model, &data, &self.dataset, pairs, &self.device).await?));
        }
        Ok(out)
    }
}
