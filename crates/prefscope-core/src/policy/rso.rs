//! RSO's statistical rejection sampling (Liu et al. 2023) and best-of-n selection, on the host:
//! they pick among sampled responses by a reward, with no gradient.

/// RSO's statistical rejection sampling (Liu et al. 2023, arXiv 2309.06657, App. A.1 Algorithm 1)
/// toward π_r ∝ π_sft·exp(r/β): candidate indices in order of acceptance.
///
/// Passes over the not-yet-accepted candidates: each pass fixes r_max over them, then accepts each
/// in index order with probability exp((r − r_max)/β), stopping as soon as `num_samples` are in
/// (a `break` we recall from the paper's listing; §5.2's summary omits it, and without it a pass
/// could return more than asked — **[UNVERIFIED]**). Every pass accepts its maximum, so it ends;
/// at most `rewards.len()` are returned. β = 0 is best-of-N (top-k by reward, ties in index order); β = ∞ accepts all in
/// index order. With `num_samples` = 1 the first acceptance depends on candidate order: it is
/// *not* a draw from π_r (see the tests).
pub fn rso_rejection_sample(rewards: &[f64], beta: f64, num_samples: usize, rng: &mut crate::runtime::rng::Rng) -> Vec<usize> {
    assert!(beta >= 0.0, "RSO's β must be ≥ 0, got {beta}");
    assert!(rewards.iter().all(|r| r.is_finite()), "RSO needs finite rewards");
    let mut left: Vec<usize> = (0..rewards.len()).collect();
    let mut accepted = Vec::with_capacity(num_samples.min(left.len()));
    while accepted.len() < num_samples && !left.is_empty() {
        let r_max = left.iter().map(|&i| rewards[i]).fold(f64::NEG_INFINITY, f64::max);
        let mut kept = Vec::with_capacity(left.len());
        for (k, &i) in left.iter().enumerate() {
            if accepted.len() == num_samples {
                kept.extend_from_slice(&left[k..]);
                break;
            }
            // r = r_max is always accepted (also at β = 0, where the ratio would be 0/0).
            let p = if rewards[i] >= r_max { 1.0 } else { ((rewards[i] - r_max) / beta).exp() };
            if rng.uniform() < p { accepted.push(i) } else { kept.push(i) }
        }
        left = kept;
    }
    accepted
}

/// Best-of-N: the index of the highest reward (the first on ties). Panics on an empty slice.
pub fn best_of_n(rewards: &[f64]) -> usize {
    assert!(!rewards.is_empty(), "best_of_n of no candidates");
    (1..rewards.len()).fold(0, |best, i| if rewards[i] > rewards[best] { i } else { best })
}

/// How often a response picked from `n` candidates by a reward model beats one random candidate
/// under the gold reward (ties count half): best-of-n when `beta` is None, RSO's first acceptance
/// at that β otherwise. Candidates are drawn uniformly from the pool (standing for the SFT
/// policy's samples); `scores` are the reward model's, `gold` the true reward of each.
pub fn win_rate_against_random(scores: &[f64], gold: &[f64], n: usize, beta: Option<f64>, trials: usize, rng: &mut crate::runtime::rng::Rng) -> f64 {
    assert!(n >= 1 && !scores.is_empty() && scores.len() == gold.len(), "need n ≥ 1 and one gold reward per score");
    let mut wins = 0.0;
    for _ in 0..trials {
        let cands: Vec<usize> = (0..n).map(|_| rng.below(scores.len())).collect();
        let s: Vec<f64> = cands.iter().map(|&i| scores[i]).collect();
        let pick = match beta {
            None => best_of_n(&s),
            Some(b) => rso_rejection_sample(&s, b, 1, rng)[0],
        };
        let other = rng.below(scores.len());
        let (a, o) = (gold[cands[pick]], gold[other]);
        wins += if a > o { 1.0 } else if a == o { 0.5 } else { 0.0 };
    }
    wins / trials as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rso_with_beta_to_zero_is_best_of_n() {
        let r = [0.3, 2.0, -1.0, 1.5, 0.9, 1.99];
        assert_eq!(best_of_n(&r), 1);
        assert_eq!(best_of_n(&[1.0, 3.0, 3.0]), 1, "first on ties");
        let mut rng = crate::runtime::rng::Rng::new(3);
        for beta in [0.0, 1e-9] {
            for _ in 0..200 {
                assert_eq!(rso_rejection_sample(&r, beta, 1, &mut rng), vec![best_of_n(&r)]);
                // More samples: the top-k in descending reward order.
                assert_eq!(rso_rejection_sample(&r, beta, 3, &mut rng), vec![1, 5, 3]);
            }
        }
    }

    #[test]
    fn rso_with_beta_to_infinity_accepts_all_in_order() {
        let r = [0.3, 2.0, -1.0, 1.5, 0.9];
        let mut rng = crate::runtime::rng::Rng::new(4);
        for beta in [1e12, f64::INFINITY] {
            assert_eq!(rso_rejection_sample(&r, beta, 5, &mut rng), vec![0, 1, 2, 3, 4]);
            assert_eq!(rso_rejection_sample(&r, beta, 2, &mut rng), vec![0, 1]);
        }
        // Asking for more than there are returns each candidate once.
        let mut all = rso_rejection_sample(&r, 0.5, 9, &mut rng);
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn rso_first_acceptance_frequencies_match_the_algorithm() {
        // r = (0, 1, 2), β = 1, one sample: the single pass has r_max = 2 and walks 0, 1, 2, so
        // P(0) = e⁻², P(1) = (1 − e⁻²)e⁻¹, P(2) = (1 − e⁻²)(1 − e⁻¹) = (0.135335, 0.318092, 0.546572),
        // not π_r ∝ exp(r) = (0.090031, 0.244728, 0.665241).
        let r = [0.0, 1.0, 2.0];
        let (a, b) = ((-2.0f64).exp(), (-1.0f64).exp());
        let exact = [a, (1.0 - a) * b, (1.0 - a) * (1.0 - b)];
        let mut rng = crate::runtime::rng::Rng::new(11);
        let runs = 20_000;
        let mut counts = [0usize; 3];
        for _ in 0..runs {
            let got = rso_rejection_sample(&r, 1.0, 1, &mut rng);
            assert_eq!(got.len(), 1);
            counts[got[0]] += 1;
        }
        let z: f64 = r.iter().map(|v| v.exp()).sum();
        for i in 0..3 {
            let freq = counts[i] as f64 / runs as f64;
            assert!((freq - exact[i]).abs() < 0.01, "candidate {i}: {freq} vs {}", exact[i]);
            assert!((freq - r[i].exp() / z).abs() > 0.03, "candidate {i} is order-biased away from π_r");
        }
    }
}
