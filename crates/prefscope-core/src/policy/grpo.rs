//! GRPO's loss families as TRL's `GRPOTrainer` has them: how advantages are scaled
//! (`scale_rewards`), at which level the importance ratio is taken (`importance_sampling_level`;
//! `sequence` is GSPO), and how per-token losses are averaged into one (`loss_type`).
//!
//! The averaging is where the variants differ. With per-token losses l_{i,t} over G sampled
//! completions of lengths |o_i|:
//!
//! * `grpo`: (1/G) Σ_i (1/|o_i|) Σ_t l_{i,t}, each sequence's mean, then the mean over sequences.
//!   A long completion's tokens each weigh less, which biases the policy toward long wrong answers
//!   and short right ones (Liu et al. 2025, "Understanding R1-Zero-Like Training").
//! * `bnpo`: Σ_{i,t} l_{i,t} / Σ_i |o_i|, the mean over the batch's tokens.
//! * `dapo`: the same sum over the number of completion tokens in the whole generation batch (TRL's
//!   `num_items_in_batch`); in one process without gradient accumulation that is `bnpo`.
//! * `dr-grpo`: Σ_{i,t} l_{i,t} / (G · L_max), a constant, L_max the longest completion allowed.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::runtime::kernels::Backend;

/// TRL's `loss_type` among the clipped-surrogate families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrpoLoss {
    Grpo,
    DrGrpo,
    /// TRL's default.
    #[default]
    Dapo,
    Bnpo,
}

impl GrpoLoss {
    pub const ALL: [GrpoLoss; 4] = [Self::Grpo, Self::DrGrpo, Self::Dapo, Self::Bnpo];

    pub fn name(self) -> &'static str {
        match self {
            Self::Grpo => "grpo",
            Self::DrGrpo => "dr-grpo",
            Self::Dapo => "dapo",
            Self::Bnpo => "bnpo",
        }
    }
}

/// TRL's `scale_rewards`: divide each advantage by the standard deviation of its group's rewards,
/// of the whole batch's, or not at all (Dr. GRPO).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleRewards {
    #[default]
    Group,
    Batch,
    None,
}

/// TRL's `importance_sampling_level`: one ratio per token, or one per sequence (GSPO: the
/// exponential of the mean per-token log-ratio).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportanceSampling {
    #[default]
    Token,
    Sequence,
}

/// The unbiased standard deviation (torch's `std`), 0 for fewer than two values.
fn std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt()
}

/// Advantages of rewards laid out in consecutive groups of `k`: r minus its group's mean, divided
/// by (σ + 1e-4) with σ the group's or the batch's standard deviation, as TRL computes them.
pub fn advantages(rewards: &[f64], k: usize, scale: ScaleRewards) -> Vec<f64> {
    assert!(k > 0 && rewards.len().is_multiple_of(k), "rewards come in whole groups of k");
    let batch_sd = std(rewards);
    rewards
        .chunks(k)
        .flat_map(|g| {
            let mean = g.iter().sum::<f64>() / k as f64;
            let sd = match scale {
                ScaleRewards::Group => Some(std(g)),
                ScaleRewards::Batch => Some(batch_sd),
                ScaleRewards::None => None,
            };
            g.iter().map(move |r| sd.map_or(r - mean, |s| (r - mean) / (s + 1e-4))).collect::<Vec<_>>()
        })
        .collect()
}

/// Per-token clipped-surrogate losses −min(c·A, clip(c, 1 − ε, 1 + ε)·A), `[G, T]`, from the
/// current and the sampling policy's per-token log-probs (`old` is detached) and one advantage per
/// sequence. At the sequence level c = exp(mean over the completion of log π − log π_old), the
/// same for every token of the sequence.
pub fn per_token_loss<B: Backend>(logps: Tensor<B, 2>, old: Tensor<B, 2>, mask: Tensor<B, 2>, adv: Tensor<B, 1>, level: ImportanceSampling, epsilon: f64) -> Tensor<B, 2> {
    let [g, t] = logps.dims();
    let log_ratio = logps - old.detach();
    let log_w = match level {
        ImportanceSampling::Token => log_ratio,
        ImportanceSampling::Sequence => {
            let mean = (log_ratio * mask.clone()).sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            mean.expand([g, t])
        }
    };
    let c1 = log_w.exp();
    let c2 = c1.clone().clamp(1.0 - epsilon, 1.0 + epsilon);
    let a = adv.reshape([g, 1]).expand([g, t]);
    (c1 * a.clone()).min_pair(c2 * a).neg()
}

/// One loss from per-token losses under `loss`; `max_completion_length` is dr-grpo's L_max.
pub fn aggregate<B: Backend>(per_token: Tensor<B, 2>, mask: Tensor<B, 2>, loss: GrpoLoss, max_completion_length: usize) -> Tensor<B, 1> {
    let [g, _] = per_token.dims();
    let masked = per_token * mask.clone();
    match loss {
        GrpoLoss::Grpo => (masked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0)).mean().reshape([1]),
        GrpoLoss::Bnpo | GrpoLoss::Dapo => masked.sum() / mask.sum().clamp_min(1.0),
        GrpoLoss::DrGrpo => masked.sum().div_scalar((g * max_completion_length) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::TensorData;

    type B = NdArray<f64>;
    type A = Autodiff<B>;

    fn t2<Bk: Backend>(v: Vec<f64>, shape: [usize; 2]) -> Tensor<Bk, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    #[test]
    fn advantages_by_hand() {
        // Groups of 2: (1, 3) and (2, 2). Group σ: √2 and 0; batch σ: √(2/3).
        let r = [1.0, 3.0, 2.0, 2.0];
        let g = advantages(&r, 2, ScaleRewards::Group);
        let s2 = 2f64.sqrt() + 1e-4;
        assert!((g[0] + 1.0 / s2).abs() < 1e-12 && (g[1] - 1.0 / s2).abs() < 1e-12 && g[2] == 0.0 && g[3] == 0.0, "{g:?}");
        let b = advantages(&r, 2, ScaleRewards::Batch);
        let sb = (2.0f64 / 3.0).sqrt() + 1e-4;
        assert!((b[0] + 1.0 / sb).abs() < 1e-12 && (b[1] - 1.0 / sb).abs() < 1e-12, "{b:?}");
        assert_eq!(advantages(&r, 2, ScaleRewards::None), vec![-1.0, 1.0, 0.0, 0.0]);
    }

    /// Per-token losses (1, 2, 3 | 4) on completions of 3 and 1 tokens, padded to 4.
    #[test]
    fn each_loss_type_averages_as_trl_does() {
        let l = t2::<B>(vec![1.0, 2.0, 3.0, 9.0, 4.0, 9.0, 9.0, 9.0], [2, 4]);
        let m = t2::<B>(vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0], [2, 4]);
        let got = |loss| -> f64 { aggregate(l.clone(), m.clone(), loss, 4).into_scalar() };
        assert!((got(GrpoLoss::Grpo) - (6.0 / 3.0 + 4.0) / 2.0).abs() < 1e-12); // 3
        assert!((got(GrpoLoss::Bnpo) - 10.0 / 4.0).abs() < 1e-12); // 2.5
        assert!((got(GrpoLoss::Dapo) - 10.0 / 4.0).abs() < 1e-12);
        assert!((got(GrpoLoss::DrGrpo) - 10.0 / 8.0).abs() < 1e-12); // 1.25
    }

    /// The surrogate's value and the gradient each loss type gives a token, by hand: with π = π_old
    /// every ratio is 1, the loss is −A, and ∂/∂log π(o_{i,t}) is −A_i/(G|o_i|) for grpo, −A_i/Σ|o|
    /// for bnpo and −A_i/(G·L_max) for dr-grpo: grpo's per-token weight falls with length.
    #[test]
    fn on_policy_gradients_by_hand() {
        let adv = [2.0, -1.0];
        let mask = vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let lens = [3.0, 1.0];
        for level in [ImportanceSampling::Token, ImportanceSampling::Sequence] {
            for loss in GrpoLoss::ALL {
                let lp = t2::<A>(vec![-1.0, -2.0, -0.5, 0.0, -1.5, 0.0, 0.0, 0.0], [2, 4]).require_grad();
                let old = t2::<A>(vec![-1.0, -2.0, -0.5, 0.0, -1.5, 0.0, 0.0, 0.0], [2, 4]);
                let m = t2::<A>(mask.clone(), [2, 4]);
                let a = Tensor::<A, 1>::from_data(TensorData::new(adv.to_vec(), [2]), &Default::default());
                let out = aggregate(per_token_loss(lp.clone(), old, m.clone(), a, level, 0.2), m, loss, 4);
                let grads = out.backward();
                let g: Vec<f64> = lp.grad(&grads).unwrap().into_data().to_vec().unwrap();
                for i in 0..2 {
                    let expect = match loss {
                        GrpoLoss::Grpo => -adv[i] / (2.0 * lens[i]),
                        GrpoLoss::Bnpo | GrpoLoss::Dapo => -adv[i] / 4.0,
                        GrpoLoss::DrGrpo => -adv[i] / 8.0,
                    };
                    for tt in 0..4 {
                        let want = if mask[i * 4 + tt] > 0.0 { expect } else { 0.0 };
                        assert!((g[i * 4 + tt] - want).abs() < 1e-12, "{loss:?} {level:?} row {i} token {tt}: {} vs {want}", g[i * 4 + tt]);
                    }
                }
            }
        }
    }

    /// Off-policy, the two levels differ: per token each ratio is clipped on its own; per sequence
    /// the ratio is exp of the mean log-ratio. Row: log-ratios (0.5, −0.1, 0.0) over 3 tokens, A = 1.
    #[test]
    fn token_and_sequence_ratios_by_hand() {
        let lp = t2::<B>(vec![0.5, -0.1, 0.0], [1, 3]);
        let old = t2::<B>(vec![0.0, 0.0, 0.0], [1, 3]);
        let m = t2::<B>(vec![1.0, 1.0, 1.0], [1, 3]);
        let a = Tensor::<B, 1>::from_data(TensorData::new(vec![1.0], [1]), &Default::default());
        let tok: Vec<f64> = per_token_loss(lp.clone(), old.clone(), m.clone(), a.clone(), ImportanceSampling::Token, 0.2).into_data().to_vec().unwrap();
        // min(c, clip(c)) for A > 0: e^0.5 clips to 1.2; e^−0.1 = 0.904837 is inside; 1.
        let want = [-1.2, -(-0.1f64).exp(), -1.0];
        assert!(tok.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12), "{tok:?}");
        let seq: Vec<f64> = per_token_loss(lp, old.clone(), m, a, ImportanceSampling::Sequence, 0.2).into_data().to_vec().unwrap();
        // exp(0.4/3) = 1.142631, inside the clip, the same for every token.
        let c = (0.4f64 / 3.0).exp();
        assert!(seq.iter().all(|g| (g + c).abs() < 1e-12), "{seq:?}");
        // A < 0 clips the other side: −min(−c, −clip(c)) = max(c, clip(c)). e^0.5 = 1.648721 stays
        // (the pessimistic bound keeps the larger ratio); e^−0.3 = 0.740818 is below 1 − ε, so the
        // max is clip(c) = 0.8; 1.
        let lp = t2::<B>(vec![0.5, -0.3, 0.0], [1, 3]);
        let neg = Tensor::<B, 1>::from_data(TensorData::new(vec![-1.0], [1]), &Default::default());
        let tok: Vec<f64> = per_token_loss(lp, old, t2::<B>(vec![1.0, 1.0, 1.0], [1, 3]), neg, ImportanceSampling::Token, 0.2).into_data().to_vec().unwrap();
        let want = [0.5f64.exp(), 0.8, 1.0];
        assert!(tok.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12), "{tok:?}");
    }
}
