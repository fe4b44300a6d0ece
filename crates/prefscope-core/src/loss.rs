//! Pairwise preference losses and scores as plain tensor functions, shared by every model.
//!
//! Conventions follow `shared/reference/algorithms.md` §1: a model produces a *logit*
//! ℓ = log P(chosen ≻ rejected) − log P(rejected ≻ chosen), so P = σ(ℓ) and the loss is −log σ(ℓ).

use burn::tensor::{Tensor, activation, backend::Backend};

/// Mean negative log-likelihood of the observed preferences: mean(−log σ(ℓ)).
pub fn pairwise_logistic_loss<B: Backend>(logits: Tensor<B, 1>) -> Tensor<B, 1> {
    activation::log_sigmoid(logits).mean().neg()
}

/// The Bradley–Terry objective with its common variants, per pair i:
/// w_i · −[(1−ε) log σ(ℓ_i − m_i) + ε log σ(−(ℓ_i − m_i))], averaged.
///
/// * margin m (TRL `RewardTrainer`'s per-pair `margin`; HelpSteer2's "margin BT" uses m = strength),
/// * label smoothing ε (conservative labels, as cDPO: the label is wrong with probability ε;
///   the loss is then minimised at ℓ − m = log((1−ε)/ε) instead of +∞),
/// * weight w (HelpSteer2's "scaled BT": w = preference strength).
pub fn bradley_terry_loss<B: Backend>(logits: Tensor<B, 1>, margin: Option<Tensor<B, 1>>, label_smoothing: f64, weight: Option<Tensor<B, 1>>) -> Tensor<B, 1> {
    let d = match margin {
        Some(m) => logits - m,
        None => logits,
    };
    let mut per_pair = activation::log_sigmoid(d.clone()).neg();
    if label_smoothing > 0.0 {
        per_pair = per_pair.mul_scalar(1.0 - label_smoothing) + activation::log_sigmoid(d.neg()).neg().mul_scalar(label_smoothing);
    }
    if let Some(w) = weight {
        per_pair = per_pair * w;
    }
    per_pair.mean()
}

/// TRL's reward-centering term, coef · mean((r_c + r_r)²): pulls rewards toward zero mean
/// (Eisenstein et al. 2023), which the BT likelihood alone leaves free.
pub fn centering_penalty<B: Backend>(r_chosen: Tensor<B, 1>, r_rejected: Tensor<B, 1>, coef: f64) -> Tensor<B, 1> {
    (r_chosen + r_rejected).powi_scalar(2).mean().mul_scalar(coef)
}

/// σ(x) as exp(log σ(x)): burn 0.21's `activation::sigmoid` loses precision in f64 (an error of
/// ~4e-8 at x = 0.15, as if computed in f32), which spoils f64 gradient checks; log σ is exact.
pub fn sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    activation::log_sigmoid(x).exp()
}

/// P(chosen ≻ rejected) per pair.
pub fn preference_probability<B: Backend>(logits: Tensor<B, 1>) -> Tensor<B, 1> {
    sigmoid(logits)
}

/// Fraction of pairs whose chosen response is ranked first (ℓ > 0; ties count as wrong, as in
/// the GPM repository's `result > 0` rule).
pub fn pairwise_accuracy<B: Backend>(logits: Tensor<B, 1>) -> Tensor<B, 1> {
    logits.greater_elem(0.0).float().mean()
}

/// Plackett–Luce negative log-likelihood of rankings: `scores` is `[n, L]` with each row's items
/// already in ranked order (best first). −Σ_{k<K} [s_k − log Σ_{j≥k} exp s_j], averaged over rows,
/// with K = `top_k` (None = the whole ranking: the last position adds nothing).
pub fn plackett_luce_loss<B: Backend>(scores: Tensor<B, 2>, top_k: Option<usize>) -> Tensor<B, 1> {
    let [n, l] = scores.dims();
    let k = top_k.unwrap_or(l).min(l.saturating_sub(1)).max(1);
    let mut total: Tensor<B, 1> = Tensor::zeros([n], &scores.device());
    for pos in 0..k {
        let rest = scores.clone().narrow(1, pos, l - pos);
        let m = rest.clone().max_dim(1).detach();
        let lse = (rest - m.clone()).exp().sum_dim(1).log() + m;
        let head = scores.clone().narrow(1, pos, 1);
        total = total + (lse - head).reshape([n]);
    }
    total.mean()
}

/// Kendall's τ-a between two score lists (ties count as neither concordant nor discordant).
pub fn kendall_tau(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "kendall_tau needs equal lengths");
    let n = a.len();
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            let x = (a[i] - a[j]).signum() * (b[i] - b[j]).signum();
            s += x as i64;
        }
    }
    let pairs = (n * n.saturating_sub(1) / 2).max(1);
    s as f64 / pairs as f64
}

/// Scale each row to unit L2 norm (GPM's `F.normalize(v, p=2, dim=-1)`).
pub fn unit_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// The GPM preference score with the code's sign convention,
/// s(c ≻ r) = Σ_l λ_l (c_{2l} r_{2l+1} − c_{2l+1} r_{2l}), one value per row.
///
/// `c` and `r` are `[n, 2k]` embeddings; `gate` is `[n, k]` block weights λ (None means λ ≡ 1).
/// Skew-symmetric by construction: s(c ≻ r) = −s(r ≻ c) and s(c ≻ c) = 0.
pub fn gpm_score<B: Backend>(c: Tensor<B, 2>, r: Tensor<B, 2>, gate: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
    let [n, two_k] = c.dims();
    let k = two_k / 2;
    let c = c.reshape([n, k, 2]);
    let r = r.reshape([n, k, 2]);
    let c0 = c.clone().narrow(2, 0, 1);
    let c1 = c.narrow(2, 1, 1);
    let r0 = r.clone().narrow(2, 0, 1);
    let r1 = r.narrow(2, 1, 1);
    let blocks: Tensor<B, 2> = (c0 * r1 - c1 * r0).reshape([n, k]);
    let weighted = match gate {
        Some(lambda) => blocks * lambda,
        None => blocks,
    };
    weighted.sum_dim(1).reshape([n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{TensorData, activation::softmax};

    type B = NdArray<f64>;

    fn t1(v: &[f64]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }
    fn t2(v: &[f64], cols: usize) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), &Default::default())
    }
    fn scalar(t: Tensor<B, 1>) -> f64 {
        t.into_scalar()
    }
    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn bradley_terry_worked_example() {
        // algorithms.md §8: r_c = 1.2, r_r = 0.3 → −log σ(0.9) = 0.341154.
        close(scalar(pairwise_logistic_loss(t1(&[1.2 - 0.3]))), 0.341154);
        // GPM repo PairWiseLoss with τ = 0.1: −log σ(9) = 0.000123402.
        close(scalar(pairwise_logistic_loss(t1(&[0.9 / 0.1]))), 0.000123402);
    }

    #[test]
    fn bradley_terry_variants_worked_examples() {
        // algorithms.md §8, r_c = 1.2, r_r = 0.3: TRL margin 0.5 → −log σ(0.4) = 0.513015.
        close(scalar(bradley_terry_loss(t1(&[0.9]), Some(t1(&[0.5])), 0.0, None)), 0.513015);
        // TRL centering term, coef 0.01: 0.01·(1.5)² = 0.0225.
        close(scalar(centering_penalty(t1(&[1.2]), t1(&[0.3]), 0.01)), 0.0225);
        // HelpSteer2 scaled BT, m = 3: 3·0.341154.
        close(scalar(bradley_terry_loss(t1(&[0.9]), None, 0.0, Some(t1(&[3.0])))), 1.02346);
        // No options: the plain loss.
        close(scalar(bradley_terry_loss(t1(&[0.9, 0.9]), None, 0.0, None)), 0.341154);
    }

    #[test]
    fn label_smoothing_moves_the_optimum_to_the_log_odds_of_the_label() {
        // d/dℓ of the smoothed loss is σ(ℓ) − (1 − ε): zero at ℓ* = log((1−ε)/ε).
        use burn::backend::Autodiff;
        type A = Autodiff<B>;
        for eps in [0.05f64, 0.1, 0.3] {
            let star = ((1.0 - eps) / eps).ln();
            for (x, sign) in [(star, 0.0), (star - 0.5, -1.0), (star + 0.5, 1.0)] {
                let l = Tensor::<A, 1>::from_data(TensorData::new(vec![x], [1]), &Default::default()).require_grad();
                let g = bradley_terry_loss(l.clone(), None, eps, None).backward();
                let grad: f64 = l.grad(&g).unwrap().into_scalar();
                let analytic = 1.0 / (1.0 + (-x).exp()) - (1.0 - eps);
                assert!((grad - analytic).abs() < 1e-12, "autodiff {grad} vs {analytic}");
                if sign == 0.0 { assert!(grad.abs() < 1e-12) } else { assert_eq!(grad.signum(), sign) }
            }
        }
    }

    #[test]
    fn gpm_worked_example() {
        let c = unit_normalize(t2(&[1.0, 2.0, 0.5, -1.0], 4));
        let r = unit_normalize(t2(&[0.3, -0.2, 1.0, 0.4], 4));
        let cv: Vec<f64> = c.clone().into_data().to_vec().unwrap();
        for (a, b) in cv.iter().zip([0.4, 0.8, 0.2, -0.4]) {
            close(*a, b);
        }
        let lambda = softmax(t2(&[0.2, -0.1], 2), 1);
        let s = scalar(gpm_score(c.clone(), r.clone(), Some(lambda.clone())));
        close(s, 0.0180017);
        close(scalar(gpm_score(r.clone(), c.clone(), Some(lambda.clone()))), -0.0180017);
        close(scalar(pairwise_logistic_loss(t1(&[s / 0.1]))), 0.607184);
        close(scalar(preference_probability(t1(&[s / 0.1]))), 0.544883);
        let s_plain = scalar(gpm_score(c, r, None));
        close(s_plain, 0.140872);
        close(scalar(pairwise_logistic_loss(t1(&[s_plain / 0.1]))), 0.218698);
        // 2-dim case: c = [0.6, 0.8], r = [1, 0] → s = −0.8.
        let s2 = scalar(gpm_score(t2(&[0.6, 0.8], 2), t2(&[1.0, 0.0], 2), None));
        close(s2, -0.8);
        close(scalar(pairwise_logistic_loss(t1(&[s2 / 0.1]))), 8.00034);
        close(scalar(pairwise_logistic_loss(t1(&[s2]))), 1.17110);
    }

    #[test]
    fn gpm_three_cycle_matrix() {
        // §1.4: unit vectors at 0°, 120°, 240° give the cyclic score matrix ±0.866025.
        let v: Vec<f64> = (0..3).flat_map(|i| {
            let t = (i as f64) * 120f64.to_radians();
            [t.cos(), t.sin()]
        }).collect();
        for i in 0..3 {
            for j in 0..3 {
                let s = scalar(gpm_score(t2(&v[2 * i..2 * i + 2], 2), t2(&v[2 * j..2 * j + 2], 2), None));
                let expected = match (3 + j - i) % 3 { 0 => 0.0, 1 => 0.866025, _ => -0.866025 };
                close(s, expected);
            }
        }
    }

    #[test]
    fn sigmoid_is_exact_in_f64() {
        for x in [-30.0, -2.0, 0.15, 3.0, 40.0] {
            let exact = 1.0 / (1.0 + f64::exp(-x));
            let got = scalar(sigmoid(t1(&[x])));
            assert!((got - exact).abs() <= 1e-13 * exact, "{x}: {got} vs {exact}");
        }
    }

    #[test]
    fn plackett_luce_matches_hand_computation_and_the_mle_likelihood() {
        // One ranking a ≻ b ≻ c with scores (2, 1, 0): −[2 − log(e²+e+1)] − [1 − log(e+1)].
        let s = t2(&[2.0, 1.0, 0.0], 3);
        let e = std::f64::consts::E;
        let expected = -(2.0 - (e * e + e + 1.0).ln()) - (1.0 - (e + 1.0).ln());
        close(scalar(plackett_luce_loss(s.clone(), None)), expected);
        // Top-1: only the first choice.
        close(scalar(plackett_luce_loss(s, Some(1))), -(2.0 - (e * e + e + 1.0).ln()));
        // Same value as the choice-set likelihood used by the leaderboard fit.
        let rankings = vec![vec![0, 1, 2], vec![2, 0, 1]];
        let theta = [0.3, -0.1, 0.5];
        let c = crate::rank::Comparisons::from_rankings(3, &rankings);
        let rows: Vec<f64> = rankings.iter().flat_map(|r| r.iter().map(|&i| theta[i])).collect();
        let nll = scalar(plackett_luce_loss(t2(&rows, 3), None)) * 2.0;
        close(nll, -c.log_likelihood(&theta));
    }

    #[test]
    fn kendall_tau_values() {
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), 1.0);
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // (1,2,3,4) vs (1,3,2,4): one discordant of six pairs → (5 − 1)/6.
        assert!((kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn accuracy_counts_strictly_positive_logits() {
        close(scalar(pairwise_accuracy(t1(&[1.0, -2.0, 0.0, 3.0]))), 0.5);
    }
}
