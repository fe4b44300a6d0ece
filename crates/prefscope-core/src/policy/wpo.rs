//! WPO's weighting (Zhou et al. 2024, "WPO: Enhancing RLHF with Weighted Preference
//! Optimization", eq. 2; TRL's `use_weighting`): each pair's loss is multiplied by w_c·w_r, where
//! a completion's weight is how likely the current policy is to produce it, per token and
//! normalised by the policy's own sharpness:
//!
//! w(y) = exp( mean over completion tokens t of [log π(y_t | y_<t) − log Σ_v π(v | y_<t)²] ),
//!
//! computed without gradient, so it only re-weights pairs: off-policy pairs (unlikely under the
//! current policy) count less. On a bandit the completion is one token and the policy's
//! log-probabilities are its logits.

use burn::tensor::{Tensor, backend::Backend};

/// Why AOT cannot be weighted (TRL refuses the combination as well).
pub const AOT_REFUSAL: &str = "WPO weights each pair's loss, and AOT's loss compares the batch's sorted log-ratios, not pairs; use another loss or drop the weighting";

/// log Σ_v exp(x_v) over the last dimension, kept as a size-1 dimension.
fn log_sum_exp<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let m = x.clone().max_dim(D - 1);
    (x - m.clone()).exp().sum_dim(D - 1).log() + m
}

/// Per-row weights `[n]` of sequences from their logits `[n, T, V]` (position t predicts token
/// t + 1), the tokens' log-probabilities `[n, T − 1]` (`lm::token_logps`) and the completion mask
/// `[n, T]` (1 on completion tokens). Detached.
pub fn sequence_weights<B: Backend>(logits: Tensor<B, 3>, token_logps: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, t, _] = logits.dims();
    let logits = logits.narrow(1, 0, t - 1).detach();
    // log Σ_v π_v² = lse(2z) − 2·lse(z).
    let log_denom: Tensor<B, 2> = (log_sum_exp(logits.clone().mul_scalar(2.0)) - log_sum_exp(logits).mul_scalar(2.0)).reshape([n, t - 1]);
    let mask = mask.narrow(1, 1, t - 1);
    let count = mask.clone().sum_dim(1).clamp_min(1.0);
    let mean = ((token_logps.detach() - log_denom) * mask).sum_dim(1) / count;
    mean.reshape([n]).exp()
}

/// The weight of each of a one-token policy's responses from its log-probabilities `[n]`:
/// π_y / Σ_v π_v². Detached.
pub fn bandit_weights<B: Backend>(log_probs: Tensor<B, 1>) -> Tensor<B, 1> {
    let lp = log_probs.detach();
    let log_denom = log_sum_exp(lp.clone().mul_scalar(2.0));
    (lp - log_denom).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Int, TensorData};
    type B = NdArray<f64>;

    #[test]
    fn sequence_weights_match_the_formula_by_hand() {
        let d = Default::default();
        // Two rows of three positions over a vocabulary of 3; position t predicts token t + 1.
        let z: Vec<f64> = vec![0.2, -1.0, 0.5, 1.5, 0.0, -0.3, 0.0, 0.0, 0.0, /* row 2 */ -0.4, 0.9, 0.1, 2.0, -2.0, 0.3, 0.0, 0.0, 0.0];
        let logits = Tensor::<B, 3>::from_data(TensorData::new(z.clone(), [2, 3, 3]), &d);
        let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![0i64, 2, 1, 1, 0, 2], [2, 3]), &d);
        // Row 1: both next tokens are completion; row 2: only the last.
        let mask = Tensor::<B, 2>::from_data(TensorData::new(vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0], [2, 3]), &d);
        let lp = crate::policy::lm::token_logps(logits.clone(), tokens);
        let got: Vec<f64> = sequence_weights(logits, lp, mask).into_data().to_vec().unwrap();
        let by_hand = |row: usize, positions: &[(usize, usize)]| {
            let terms: Vec<f64> = positions
                .iter()
                .map(|&(pos, next)| {
                    let zs = &z[row * 9 + pos * 3..row * 9 + pos * 3 + 3];
                    let zsum: f64 = zs.iter().map(|v| v.exp()).sum();
                    let p: Vec<f64> = zs.iter().map(|v| v.exp() / zsum).collect();
                    p[next].ln() - p.iter().map(|q| q * q).sum::<f64>().ln()
                })
                .collect();
            (terms.iter().sum::<f64>() / terms.len() as f64).exp()
        };
        let want = [by_hand(0, &[(0, 2), (1, 1)]), by_hand(1, &[(1, 2)])];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} against {want:?}");
        }
    }

    #[test]
    fn bandit_weights_are_pi_over_the_sum_of_squares_and_one_when_uniform() {
        let d = Default::default();
        let p = [0.5, 0.3, 0.2];
        let lp = Tensor::<B, 1>::from_data(TensorData::new(p.iter().map(|v: &f64| v.ln()).collect::<Vec<_>>(), [3]), &d);
        let got: Vec<f64> = bandit_weights(lp).into_data().to_vec().unwrap();
        let s: f64 = p.iter().map(|v| v * v).sum();
        for (g, v) in got.iter().zip(p) {
            assert!((g - v / s).abs() < 1e-12);
        }
        let uniform = Tensor::<B, 1>::from_data(TensorData::new(vec![0.25f64.ln(); 4], [4]), &d);
        let ones: Vec<f64> = bandit_weights(uniform).into_data().to_vec().unwrap();
        assert!(ones.iter().all(|w| (w - 1.0).abs() < 1e-12), "{ones:?}");
    }
}
