//! Pairwise preference losses and scores as plain tensor functions, shared by every model.
//!
//! Conventions: a model produces a *logit*
//! ℓ = log P(chosen ≻ rejected) − log P(rejected ≻ chosen), so P = σ(ℓ) and the loss is −log σ(ℓ).

use burn::tensor::{Tensor, activation};
use crate::runtime::kernels::Backend;

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

/// Eurus's L_DR, mean(−log σ(r_c) − log σ(−r_r)): the chosen reward above zero and the rejected
/// one below, in absolute terms. Bradley–Terry sees only r_c − r_r, so it leaves each prompt's
/// reward offset free; this term pins zero as the line between good and bad responses.
pub fn direct_reward_loss<B: Backend>(r_chosen: Tensor<B, 1>, r_rejected: Tensor<B, 1>) -> Tensor<B, 1> {
    (activation::log_sigmoid(r_chosen) + activation::log_sigmoid(r_rejected.neg())).mean().neg()
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

/// RankList's listwise generalisation of RankNet, in our reading of its abstract (the paper body
/// is not available to us): every item of a ranked list must beat a smooth
/// maximum (log-sum-exp) of *all* items ranked below it, a non-local, skip-wise constraint,
/// instead of RankNet's one neighbour: Σ_{k<L−1} softplus(LSE_{j>k} s_j − s_k), averaged over rows.
/// With L = 2 it is RankNet's pairwise −log σ(s_0 − s_1). Unlike Plackett–Luce, the item itself is
/// not inside the log-sum-exp, so a pair is never "won" by a score that merely ties the rest.
pub fn ranklist_loss<B: Backend>(scores: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, l] = scores.dims();
    let mut total: Tensor<B, 1> = Tensor::zeros([n], &scores.device());
    for pos in 0..l.saturating_sub(1) {
        let below = scores.clone().narrow(1, pos + 1, l - pos - 1);
        let m = below.clone().max_dim(1).detach();
        let lse = (below - m.clone()).exp().sum_dim(1).log() + m;
        let head = scores.clone().narrow(1, pos, 1);
        total = total + activation::softplus(lse - head, 1.0).reshape([n]);
    }
    total.mean()
}

/// KL(N(μ, e^{log σ²}) ‖ N(0, I)) = −½ Σ (1 + log σ² − μ² − σ²), summed over the latent and
/// averaged over rows (VPL's LLM code, `vae_utils.py`).
pub fn gaussian_kl<B: Backend>(mean: Tensor<B, 2>, log_var: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, _] = mean.dims();
    let per_row = (log_var.clone().add_scalar(1.0) - mean.powi_scalar(2) - log_var.exp()).sum_dim(1).mul_scalar(-0.5);
    per_row.reshape([n]).mean()
}

/// VPL's cyclical cosine KL annealer: ((cos(π(t/T − 1)) + 1)/2)(1 − b) + b over each cycle of T
/// steps, starting from the baseline b and rising to 1.
pub fn kl_anneal(step: usize, cycle: usize, baseline: f64) -> f64 {
    let t = (step % cycle.max(1)) as f64 / cycle.max(1) as f64;
    ((std::f64::consts::PI * (t - 1.0)).cos() + 1.0) / 2.0 * (1.0 - baseline) + baseline
}

/// Spearman's rank correlation (average ranks for ties), as ArmoRM's verbosity step uses.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(x: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
        let mut r = vec![0.0; x.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
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

/// Central finite differences against autodiff in f64 on the CPU backend: the check every loss
/// and model objective in the crate must pass.
#[cfg(test)]
pub(crate) mod gradcheck {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Tensor, TensorData};

    pub type AD = Autodiff<NdArray<f64>>;

    /// Assert that d f / d x from autodiff matches (f(x + h) − f(x − h)) / 2h at every coordinate.
    pub fn check<const D: usize>(name: &str, x: &[f64], shape: [usize; D], f: impl Fn(Tensor<AD, D>) -> Tensor<AD, 1>) {
        let dev = Default::default();
        let input = Tensor::<AD, D>::from_data(TensorData::new(x.to_vec(), shape), &dev).require_grad();
        let grads = f(input.clone()).backward();
        let g: Vec<f64> = input.grad(&grads).expect("the input feeds the loss").into_data().convert::<f64>().to_vec().unwrap();
        let at = |i: usize, d: f64| -> f64 {
            let mut v = x.to_vec();
            v[i] += d;
            f(Tensor::from_data(TensorData::new(v, shape), &dev)).into_scalar()
        };
        let h = 1e-5;
        for (i, &gi) in g.iter().enumerate() {
            let fd = (at(i, h) - at(i, -h)) / (2.0 * h);
            assert!((fd - gi).abs() <= 1e-6 * (1.0 + fd.abs()), "{name}: d/dx[{i}] autodiff {gi} vs finite difference {fd}");
        }
    }
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
        // A worked example: r_c = 1.2, r_r = 0.3 → −log σ(0.9) = 0.341154.
        close(scalar(pairwise_logistic_loss(t1(&[1.2 - 0.3]))), 0.341154);
        // GPM repo PairWiseLoss with τ = 0.1: −log σ(9) = 0.000123402.
        close(scalar(pairwise_logistic_loss(t1(&[0.9 / 0.1]))), 0.000123402);
    }

    #[test]
    fn bradley_terry_variants_worked_examples() {
        // A worked example, r_c = 1.2, r_r = 0.3: TRL margin 0.5 → −log σ(0.4) = 0.513015.
        close(scalar(bradley_terry_loss(t1(&[0.9]), Some(t1(&[0.5])), 0.0, None)), 0.513015);
        // TRL centering term, coef 0.01: 0.01·(1.5)² = 0.0225.
        close(scalar(centering_penalty(t1(&[1.2]), t1(&[0.3]), 0.01)), 0.0225);
        // HelpSteer2 scaled BT, m = 3: 3·0.341154.
        close(scalar(bradley_terry_loss(t1(&[0.9]), None, 0.0, Some(t1(&[3.0])))), 1.02346);
        // Eurus's L_DR, r_c = 1.2, r_r = 0.3: −log σ(1.2) − log σ(−0.3) = 1.117638; with a second
        // pair (−1, −2) the mean of the two pairs' sums, (1.117638 + 1.313262 + 0.126928) / 2 = 1.278914.
        close(scalar(direct_reward_loss(t1(&[1.2]), t1(&[0.3]))), 1.117638);
        close(scalar(direct_reward_loss(t1(&[1.2, -1.0]), t1(&[0.3, -2.0]))), 1.278914);
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
    fn unit_normalisation_passes_only_the_turning_part_of_the_gradient() {
        // Why unit-length GPM keeps its embedding's winding number (see ModelConfig::normalize):
        // through e/‖e‖ the loss gradient on the raw embedding e is orthogonal to e, so a
        // gradient step e − η g only lengthens e (‖e − η g‖² = ‖e‖² + η²‖g‖²).
        use gradcheck::AD;
        let dev = Default::default();
        let mut rng = crate::runtime::rng::Rng::new(3);
        let raw: Vec<f64> = (0..24).map(|_| rng.normal()).collect();
        let e = Tensor::<AD, 2>::from_data(TensorData::new(raw.clone(), [6, 4]), &dev).require_grad();
        let other = Tensor::<AD, 2>::from_data(TensorData::new((0..24).map(|_| rng.normal()).collect::<Vec<f64>>(), [6, 4]), &dev);
        let loss = pairwise_logistic_loss(gpm_score(unit_normalize(e.clone()), unit_normalize(other.clone()), None).div_scalar(0.1));
        let g: Vec<f64> = e.grad(&loss.backward()).unwrap().into_data().convert::<f64>().to_vec().unwrap();
        for row in 0..6 {
            let (er, gr) = (&raw[4 * row..4 * row + 4], &g[4 * row..4 * row + 4]);
            let dot: f64 = er.iter().zip(gr).map(|(a, b)| a * b).sum();
            let norms = er.iter().map(|a| a * a).sum::<f64>().sqrt() * gr.iter().map(|b| b * b).sum::<f64>().sqrt();
            assert!(norms > 1e-6, "row {row} gets a gradient");
            assert!(dot.abs() < 1e-12 * norms.max(1.0), "row {row}: e·∇ = {dot} (|e||∇| = {norms})");
        }
        // Without normalisation the gradient has a radial part: the loss can shrink e.
        let e = Tensor::<AD, 2>::from_data(TensorData::new(raw.clone(), [6, 4]), &dev).require_grad();
        let loss = pairwise_logistic_loss(gpm_score(e.clone(), other, None).div_scalar(0.1));
        let g: Vec<f64> = e.grad(&loss.backward()).unwrap().into_data().convert::<f64>().to_vec().unwrap();
        let radial: f64 = (0..6).map(|row| raw[4 * row..4 * row + 4].iter().zip(&g[4 * row..4 * row + 4]).map(|(a, b)| a * b).sum::<f64>().abs()).sum();
        assert!(radial > 1e-3, "free-length gradients are not all tangential: {radial}");
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
        let c = crate::studies::rank::Comparisons::from_rankings(3, &rankings);
        let rows: Vec<f64> = rankings.iter().flat_map(|r| r.iter().map(|&i| theta[i])).collect();
        let nll = scalar(plackett_luce_loss(t2(&rows, 3), None)) * 2.0;
        close(nll, -c.log_likelihood(&theta));
    }

    #[test]
    fn ranklist_worked_values() {
        // Scores (2, 1, 0) in ranked order: softplus(log(e + 1) − 2) + softplus(0 − 1).
        let e = std::f64::consts::E;
        let sp = |x: f64| (1.0 + x.exp()).ln();
        close(scalar(ranklist_loss(t2(&[2.0, 1.0, 0.0], 3))), sp((e + 1.0).ln() - 2.0) + sp(-1.0));
        // Two items: RankNet's −log σ(s_0 − s_1).
        close(scalar(ranklist_loss(t2(&[0.3, 1.1], 2))), sp(0.8));
    }

    #[test]
    fn gaussian_kl_and_annealer() {
        // KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − log σ²); rows averaged.
        let (m, lv) = (0.5f64, -0.4f64);
        let one = 0.5 * (m * m + lv.exp() - 1.0 - lv);
        close(scalar(gaussian_kl(t2(&[m, 0.0, 0.0, 0.0], 2), t2(&[lv, 0.0, 0.0, 0.0], 2))), one / 2.0);
        close(kl_anneal(0, 100, 0.1), 0.1);
        close(kl_anneal(50, 100, 0.1), 0.55);
        assert!((kl_anneal(99, 100, 0.1) - 1.0).abs() < 1e-3);
        close(kl_anneal(100, 100, 0.1), 0.1);
    }

    #[test]
    fn spearman_values() {
        close(spearman(&[1.0, 2.0, 3.0], &[1.0, 4.0, 9.0]), 1.0);
        close(spearman(&[1.0, 2.0, 3.0], &[3.0, 1.0, 2.0]), -0.5);
        // Ties take average ranks: (0.5, 0.5, 2) vs (0, 1, 2) → √3/2.
        close(spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]), 3f64.sqrt() / 2.0);
    }

    #[test]
    fn every_reward_loss_has_the_gradient_of_its_value() {
        use super::gradcheck::{AD, check};
        let dev = Default::default();
        let logits = [0.7, -1.2, 0.05, 2.5];
        let vec1 = |v: &[f64]| Tensor::<AD, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev);
        check("logistic", &logits, [4], pairwise_logistic_loss);
        check("bt margin+smoothing+weight", &logits, [4], |l| {
            bradley_terry_loss(l, Some(vec1(&[1.0, 2.0, 0.0, 3.0])), 0.1, Some(vec1(&[1.0, 3.0, 2.0, 1.0])))
        });
        check("centering", &[0.3, -0.2, 1.5, 0.4, 0.9, -1.1], [2, 3], |r| {
            let a = r.clone().narrow(0, 0, 1).reshape([3]);
            let b = r.narrow(0, 1, 1).reshape([3]);
            centering_penalty(a.clone(), b.clone(), 0.01) + pairwise_logistic_loss(a - b)
        });
        check("eurus direct reward", &[0.3, -0.2, 1.5, 0.4, 0.9, -1.1], [2, 3], |r| {
            let a = r.clone().narrow(0, 0, 1).reshape([3]);
            let b = r.narrow(0, 1, 1).reshape([3]);
            direct_reward_loss(a.clone(), b.clone()) + pairwise_logistic_loss(a - b)
        });
        // GPM: loss of the gated, normalised score with respect to both embeddings (k = 2).
        let emb = [0.3, -0.7, 1.1, 0.2, -0.5, 0.9, 0.4, -1.3, 0.8, 0.1, -0.6, 0.7, 0.2, 0.5, -0.9, 1.4];
        check("gpm", &emb, [4, 4], |e| {
            let c = unit_normalize(e.clone().narrow(0, 0, 2));
            let r = unit_normalize(e.narrow(0, 2, 2));
            let gate = Tensor::<AD, 2>::from_data(TensorData::new(vec![0.3, 0.7, 0.6, 0.4], [2, 2]), &dev);
            pairwise_logistic_loss(gpm_score(c, r, Some(gate)).div_scalar(0.1))
        });
        let lists = [0.4, -0.3, 1.2, 0.8, 0.0, -0.7, 0.5, 0.1];
        check("plackett-luce", &lists, [2, 4], |s| plackett_luce_loss(s, None));
        check("plackett-luce top-2", &lists, [2, 4], |s| plackett_luce_loss(s, Some(2)));
        check("ranklist", &lists, [2, 4], ranklist_loss);
        check("gaussian kl", &[0.5, -0.2, 0.3, -0.4, 0.1, 0.6], [2, 3], |x| {
            gaussian_kl(x.clone().narrow(0, 0, 1), x.narrow(0, 1, 1))
        });
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
