//! f-DPO (Wang et al. 2023, "Beyond Reverse KL"; TRL's `f_divergence_type`): DPO with the reverse
//! KL to the reference replaced by another f-divergence. The implicit reward becomes β·f′(π/π_ref),
//! so the loss is −log σ(β(g(ρ_c) − g(ρ_r))) with ρ = log π/π_ref and g(ρ) = f′(e^ρ) up to a
//! constant. TRL's scores g:
//! * reverse KL: ρ (plain DPO);
//! * forward KL: −e^{−ρ};
//! * Jensen–Shannon: log σ(ρ);
//! * α-divergence: e^{(α−1)ρ}/(α−1), the exponent clamped at 80 as TRL does in f32; α → 1 is
//!   the reverse KL.
//!
//! On exact Bradley–Terry preferences the loss is minimised where β·g(ρ_i) = r_i + K for every
//! response, K the one constant that makes π a distribution: π*_i = π_ref,i·exp(g⁻¹((r_i + K)/β)).
//! [`optimum`] solves for K by bisection.

use burn::tensor::{Tensor, activation::log_sigmoid, backend::Backend};
use serde::{Deserialize, Serialize};

/// Which f-divergence regularises the policy (TRL's `f_divergence_type` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FDivergence {
    ReverseKl,
    ForwardKl,
    JsDivergence,
    AlphaDivergence,
}

impl FDivergence {
    pub const ALL: [FDivergence; 4] = [
        Self::ReverseKl,
        Self::ForwardKl,
        Self::JsDivergence,
        Self::AlphaDivergence,
    ];
    /// TRL's default `f_alpha_divergence_coef`.
    pub const DEFAULT_ALPHA: f64 = 0.5;

    pub fn name(self) -> &'static str {
        match self {
            Self::ReverseKl => "reverse_kl",
            Self::ForwardKl => "forward_kl",
            Self::JsDivergence => "js_divergence",
            Self::AlphaDivergence => "alpha_divergence",
        }
    }

    /// The α-divergence at α = 1 is the reverse KL (the limit of its score up to a constant).
    fn resolved(self, alpha: f64) -> Self {
        if self == Self::AlphaDivergence && (alpha - 1.0).abs() < 1e-12 {
            Self::ReverseKl
        } else {
            self
        }
    }
}

/// g(ρ), elementwise, on a batch of log-ratios.
pub fn score<B: Backend>(rho: Tensor<B, 1>, divergence: FDivergence, alpha: f64) -> Tensor<B, 1> {
    match divergence.resolved(alpha) {
        FDivergence::ReverseKl => rho,
        FDivergence::ForwardKl => rho.neg().exp().neg(),
        FDivergence::JsDivergence => log_sigmoid(rho),
        FDivergence::AlphaDivergence => rho
            .mul_scalar(alpha - 1.0)
            .clamp_max(80.0)
            .exp()
            .div_scalar(alpha - 1.0),
    }
}

/// g(ρ) for one value (f64; the optimum's check and the tests).
pub fn score_f64(rho: f64, divergence: FDivergence, alpha: f64) -> f64 {
    match divergence.resolved(alpha) {
        FDivergence::ReverseKl => rho,
        FDivergence::ForwardKl => -(-rho).exp(),
        FDivergence::JsDivergence => -(-rho).exp().ln_1p(),
        FDivergence::AlphaDivergence => ((alpha - 1.0) * rho).min(80.0).exp() / (alpha - 1.0),
    }
}

/// g⁻¹(y), or None where y is outside g's range (g < 0 for forward KL, JS and α < 1; g > 0 for α > 1).
fn inverse(y: f64, divergence: FDivergence, alpha: f64) -> Option<f64> {
    match divergence.resolved(alpha) {
        FDivergence::ReverseKl => Some(y),
        FDivergence::ForwardKl => (y < 0.0).then(|| -(-y).ln()),
        // log σ(ρ) = y  ⇔  σ(ρ) = e^y  ⇔  ρ = y − log(1 − e^y).
        FDivergence::JsDivergence => (y < 0.0).then(|| y - (-y.exp_m1()).ln()),
        FDivergence::AlphaDivergence => {
            let t = (alpha - 1.0) * y;
            (t > 0.0).then(|| t.ln() / (alpha - 1.0))
        }
    }
}

/// The minimiser of f-DPO's loss on exact Bradley–Terry preferences with rewards `rewards` and
/// reference `ref_probs`: π_i = π_ref,i·exp(g⁻¹((r_i + K)/β)), K such that Σπ = 1. None when no
/// K gives a distribution inside the simplex (α-divergence with α > 1 can put an arm at 0).
pub fn optimum(
    rewards: &[f64],
    ref_probs: &[f64],
    beta: f64,
    divergence: FDivergence,
    alpha: f64,
) -> Option<Vec<f64>> {
    let d = divergence.resolved(alpha);
    let (lo_r, hi_r) = rewards
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| {
            (a.min(r), b.max(r))
        });
    if d == FDivergence::ReverseKl {
        // DPO's π_ref·exp(r/β)/Z, shifted by max r for the exponentials.
        let w: Vec<f64> = rewards
            .iter()
            .zip(ref_probs)
            .map(|(r, p)| p * ((r - hi_r) / beta).exp())
            .collect();
        let z: f64 = w.iter().sum();
        return Some(w.iter().map(|x| x / z).collect());
    }
    // y_i = (r_i + K)/β inside g's range, written as (r_i − anchor)/β ± e^t so that the edge of
    // the range is approached without cancellation: g < 0 needs K < −max r (anchor max r, −e^t);
    // α > 1 needs g > 0, K > −min r (anchor min r, +e^t). Σπ is monotone in t: bisect on it.
    let (anchor, sign) = if d == FDivergence::AlphaDivergence && alpha > 1.0 {
        (lo_r, 1.0)
    } else {
        (hi_r, -1.0)
    };
    let probs = |t: f64| -> Option<Vec<f64>> {
        rewards
            .iter()
            .zip(ref_probs)
            .map(|(r, p)| {
                inverse((r - anchor) / beta + sign * t.exp(), d, alpha).map(|rho| p * rho.exp())
            })
            .collect()
    };
    let sum = |t: f64| probs(t).map(|v| v.iter().sum::<f64>());
    let (mut a, mut b) = (-60.0, 60.0);
    let increasing = sum(b)? > sum(a)?;
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if (sum(m)? < 1.0) == increasing {
            a = m;
        } else {
            b = m;
        }
    }
    let pi = probs(0.5 * (a + b))?;
    let z: f64 = pi.iter().sum();
    ((z - 1.0).abs() < 1e-9).then(|| pi.iter().map(|p| p / z).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn scores_match_trl_formulas_by_hand() {
        let rho = [-1.3, -0.2, 0.0, 0.3, 2.5];
        let t = Tensor::<NdArray<f64>, 1>::from_data(
            burn::tensor::TensorData::new(rho.to_vec(), [rho.len()]),
            &Default::default(),
        );
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let cases: [(FDivergence, f64, fn(f64) -> f64); 3] = [
            (FDivergence::ReverseKl, 0.5, |x| x),
            (FDivergence::ForwardKl, 0.5, |x| -(-x).exp()),
            (FDivergence::AlphaDivergence, 0.5, |x| {
                (-0.5 * x).exp() / -0.5
            }),
        ];
        for (d, a, by_hand) in cases {
            let got: Vec<f64> = score(t.clone(), d, a).into_data().to_vec().unwrap();
            for (g, &x) in got.iter().zip(&rho) {
                assert!(
                    (g - by_hand(x)).abs() < 1e-12
                        && (score_f64(x, d, a) - by_hand(x)).abs() < 1e-12,
                    "{d:?} at {x}: {g}"
                );
            }
        }
        let js: Vec<f64> = score(t.clone(), FDivergence::JsDivergence, 0.5)
            .into_data()
            .to_vec()
            .unwrap();
        for (g, &x) in js.iter().zip(&rho) {
            assert!(
                (g - sig(x).ln()).abs() < 1e-12
                    && (score_f64(x, FDivergence::JsDivergence, 0.5) - sig(x).ln()).abs() < 1e-12
            );
        }
        // α = 1 is the reverse KL; α = 2 is e^ρ.
        let one: Vec<f64> = score(t.clone(), FDivergence::AlphaDivergence, 1.0)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(one, rho.to_vec());
        assert!((score_f64(0.7, FDivergence::AlphaDivergence, 2.0) - 0.7f64.exp()).abs() < 1e-12);
        for d in FDivergence::ALL {
            for y in [-3.0, -0.4, 0.2, 1.5] {
                if let Some(x) = inverse(y, d, 0.5) {
                    assert!(
                        (score_f64(x, d, 0.5) - y).abs() < 1e-9,
                        "{d:?}: g(g⁻¹({y}))"
                    );
                }
            }
        }
    }

    /// The optimum is a distribution where β·g(ρ_i) − r_i is the same for every response (the
    /// loss's stationary condition), and the reverse KL's is DPO's π_ref·exp(r/β)/Z.
    #[test]
    fn the_optimum_meets_the_stationary_condition() {
        let rewards = [0.3, -1.2, 2.0, 0.0, 0.9];
        let refs = [0.1, 0.3, 0.15, 0.25, 0.2];
        for beta in [0.1, 0.5, 2.0] {
            for (d, alpha) in [
                (FDivergence::ReverseKl, 0.5),
                (FDivergence::ForwardKl, 0.5),
                (FDivergence::JsDivergence, 0.5),
                (FDivergence::AlphaDivergence, 0.5),
                (FDivergence::AlphaDivergence, 0.2),
            ] {
                let pi = optimum(&rewards, &refs, beta, d, alpha)
                    .unwrap_or_else(|| panic!("{d:?} β = {beta}"));
                assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                let k: Vec<f64> = (0..5)
                    .map(|i| beta * score_f64((pi[i] / refs[i]).ln(), d, alpha) - rewards[i])
                    .collect();
                assert!(
                    k.iter().all(|x| (x - k[0]).abs() < 1e-6),
                    "{d:?} β = {beta}: β·g(ρ) − r = {k:?}"
                );
            }
            let w: Vec<f64> = (0..5)
                .map(|i| refs[i] * (rewards[i] / beta).exp())
                .collect();
            let dpo: Vec<f64> = w.iter().map(|x| x / w.iter().sum::<f64>()).collect();
            let rev = optimum(&rewards, &refs, beta, FDivergence::ReverseKl, 0.5).unwrap();
            assert!(
                dpo.iter().zip(&rev).all(|(a, b)| (a - b).abs() < 1e-9),
                "{dpo:?} vs {rev:?}"
            );
        }
        // α > 1 with a wide reward gap: the worst response would need π = 0, outside the simplex.
        assert!(
            optimum(
                &[0.0, 10.0],
                &[0.5, 0.5],
                0.1,
                FDivergence::AlphaDivergence,
                3.0
            )
            .is_none()
        );
    }
}
