//! GPM's embeddings of the first responses, and the preference probabilities among them.

use std::rc::Rc;

use burn::tensor::{Tensor, TensorData, activation};
use prefscope_core::reward::model::all_pairs_scores;
use prefscope_core::{PairDataset, PreferenceModel};

use crate::backend::{AnyModel, on_model};

/// Responses in the probability matrix.
pub const MATRIX: usize = 8;
/// Responses drawn as arrows (all of them up to this many).
const DRAWN: usize = 200;

/// Embeddings of the first responses and the preference probabilities among them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Embeddings {
    pub labels: Vec<String>,
    /// `[n][2k]` embeddings as the model scores them (unit length when it normalises).
    pub points: Vec<Vec<f32>>,
    pub k: usize,
    /// P(y_i ≻ y_j), `n × n` row-major.
    pub probs: Vec<f32>,
    /// The matrix's responses, ordered by their angle in block 1 so that a cycle reads as a band.
    pub matrix: Vec<usize>,
    pub step: usize,
}

impl Embeddings {
    pub fn n(&self) -> usize {
        self.points.len()
    }

    pub fn p(&self, i: usize, j: usize) -> f32 {
        self.probs[i * self.n() + j]
    }
}

/// Embed the responses with the model's encoder and build the all-pairs table in one pass (GPM's
/// linear query complexity: n encoder rows for n² probabilities).
pub async fn embeddings(model: AnyModel, ds: Rc<PairDataset>, step: usize) -> Result<Embeddings, String> {
    let n = DRAWN.min(ds.n_items());
    let (flat, probs, tau_k) = on_model!(&model, |m, device| {
        let PreferenceModel::Gpm(g) = m else {
            return Err("the embedding view shows GPM's preference embeddings: pick the gpm model".to_string());
        };
        let x = Tensor::<_, 2>::from_data(TensorData::new(ds.items[..n * ds.dim].to_vec(), [n, ds.dim]), device);
        let e = g.embed(x.clone());
        let two_k = e.dims()[1];
        // With a gate the block weights depend on the prompt; show them all at weight 1.
        let table = all_pairs_scores(x, |x| g.embed(x), None, g.tau);
        let probs = activation::sigmoid(table).reshape([n * n]);
        let read = |t: Tensor<_, 1>| async move { t.into_data_async().await.map_err(|e| format!("{e:?}"))?.convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}")) };
        (read(e.reshape([n * two_k])).await?, read(probs).await?, two_k / 2)
    });
    let k = tau_k;
    let points: Vec<Vec<f32>> = flat.chunks(2 * k).map(<[f32]>::to_vec).collect();
    let angle = |i: usize| (points[i][1] as f64).atan2(points[i][0] as f64);
    let mut matrix: Vec<usize> = (0..MATRIX.min(n)).collect();
    matrix.sort_by(|&a, &b| angle(a).total_cmp(&angle(b)));
    Ok(Embeddings { labels: ds.item_labels[..n].to_vec(), points, k, probs, matrix, step })
}
