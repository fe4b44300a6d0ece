//! The current model's logits on the held-out pairs: the charts' margins and calibration.

use std::rc::Rc;

use prefscope_core::PairDataset;
use prefscope_core::reward::train::pair_logits;

use crate::backend::{AnyModel, on_model};

/// The model's logits ℓ on the held-out pairs (ℓ > 0: the chosen side is predicted to win), by
/// the core's `pair_logits`, as the CLI's eval computes them.
pub async fn held_out_logits(model: AnyModel, ds: Rc<PairDataset>) -> Result<Vec<f32>, String> {
    Ok(on_model!(&model, |m, device| pair_logits(m, &ds, &ds.eval, device).await.map_err(|e| e.to_string())?))
}
