//! The dial's candidates: each one's attribute rewards under the current model.

use std::rc::Rc;

use burn::tensor::{Tensor, TensorData};
use prefscope_core::{PairDataset, PreferenceModel};

use crate::backend::{AnyModel, on_model};

/// The first this-many items of the data are the candidates.
pub const CANDIDATES: usize = 12;

/// Each candidate's attribute rewards under the model, with its label and true ratings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidates {
    pub labels: Vec<String>,
    /// One row of k ≥ 2 rewards per candidate.
    pub rewards: Vec<Vec<f64>>,
    /// The data's (noisy) ratings of the same responses, when it has as many objectives.
    pub ratings: Vec<Vec<f64>>,
    pub step: usize,
}

impl Candidates {
    pub fn objectives(&self) -> usize {
        self.rewards.first().map_or(0, Vec::len)
    }
}

/// The model's rewards for the candidates; an error for models without two or more attribute
/// rewards.
pub async fn candidates(model: AnyModel, ds: Rc<PairDataset>, step: usize) -> Result<Candidates, String> {
    let n = CANDIDATES.min(ds.n_items());
    let rewards = on_model!(&model, |m, device| {
        let PreferenceModel::MultiObjective(mo) = m else {
            return Err("the dial needs the multi-objective model (its two attribute rewards)".to_string());
        };
        let x = Tensor::from_data(TensorData::new(ds.items[..n * ds.dim].to_vec(), [n, ds.dim]), device);
        let r = mo.rewards(x);
        if r.dims()[1] < 2 {
            return Err(format!("the dial turns between two or more objectives; this model has {}", r.dims()[1]));
        }
        let data = r.into_data_async().await.map_err(|e| format!("{e:?}"))?;
        data.convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?
    });
    let k = rewards.len() / n.max(1);
    let rows = |v: &[f32]| v.chunks(k).map(|c| c.iter().map(|&x| x as f64).collect()).collect::<Vec<Vec<f64>>>();
    let ratings = if ds.n_objectives == k { rows(&ds.ratings[..k * n]) } else { vec![] };
    let labels = (0..n).map(|i| ds.item_labels.get(i).cloned().unwrap_or_else(|| format!("#{i}"))).collect();
    Ok(Candidates { labels, rewards: rows(&rewards), ratings, step })
}
