//! Item strengths from pairwise comparisons by maximum likelihood (Bradley–Terry).
//!
//! Uses Hunter's (2004) minorise–maximise iteration, which increases the likelihood monotonically:
//! p_i ← W_i / Σ_j n_ij / (p_i + p_j), where W_i counts i's wins and n_ij the comparisons of i and j.

use crate::{Result, config_error};

/// Maximum-likelihood strengths p (normalised to mean 1, as choix's `ml_est`) for
/// `comparisons` given as `(winner, loser)`.
pub fn bradley_terry_mle(n_items: usize, comparisons: &[(usize, usize)], tol: f64, max_iter: usize) -> Result<Vec<f64>> {
    if n_items == 0 {
        return Err(config_error("n_items", "must be at least 1"));
    }
    let mut wins = vec![0f64; n_items];
    for &(w, l) in comparisons {
        if w >= n_items || l >= n_items || w == l {
            return Err(config_error("data", format!("comparison ({w}, {l}) is invalid for {n_items} items")));
        }
        wins[w] += 1.0;
    }
    if let Some(i) = wins.iter().position(|&w| w == 0.0) {
        return Err(config_error("data", format!("item {i} never wins: its maximum-likelihood strength is 0 (no finite estimate)")));
    }
    let mut p = vec![1f64; n_items];
    for _ in 0..max_iter {
        let mut denom = vec![0f64; n_items];
        for &(w, l) in comparisons {
            let d = 1.0 / (p[w] + p[l]);
            denom[w] += d;
            denom[l] += d;
        }
        let mut next: Vec<f64> = (0..n_items).map(|i| wins[i] / denom[i]).collect();
        let mean = next.iter().sum::<f64>() / n_items as f64;
        next.iter_mut().for_each(|x| *x /= mean);
        let change = next.iter().zip(&p).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        p = next;
        if change < tol {
            return Ok(p);
        }
    }
    Err(config_error("max_iter", format!("did not converge in {max_iter} iterations")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_choix_pairwise_testcase() {
        #[derive(serde::Deserialize)]
        struct Case {
            n_items: usize,
            data: Vec<(usize, usize)>,
            ml_est: Vec<f64>,
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/choix_testcase-pairwise-1.json");
        let text = std::fs::read_to_string(path).expect("shared/data must sit beside the repository");
        let case: Case = serde_json::from_str(&text).unwrap();
        let est = bradley_terry_mle(case.n_items, &case.data, 1e-12, 10_000).unwrap();
        for (a, b) in est.iter().zip(&case.ml_est) {
            assert!((a - b).abs() < 1e-4, "{est:?} vs {:?}", case.ml_est);
        }
    }

    #[test]
    fn analytic_two_and_three_item_optima() {
        // Two items, 3–1: the MLE ratio is 3, so with mean 1 the strengths are 1.5 and 0.5.
        let est = bradley_terry_mle(2, &[(0, 1), (0, 1), (0, 1), (1, 0)], 1e-12, 10_000).unwrap();
        assert!((est[0] - 1.5).abs() < 1e-9 && (est[1] - 0.5).abs() < 1e-9, "{est:?}");
        // A chain with known solution: the likelihood's stationarity conditions hold at the estimate.
        let data = [(0, 1), (0, 1), (1, 0), (1, 2), (1, 2), (2, 1), (0, 2), (2, 0), (0, 2)];
        let p = bradley_terry_mle(3, &data, 1e-13, 100_000).unwrap();
        for i in 0..3 {
            // ∂logL/∂log p_i = W_i − Σ_{comparisons with i} p_i / (p_i + p_j) = 0.
            let w = data.iter().filter(|c| c.0 == i).count() as f64;
            let expected: f64 = data.iter().filter(|c| c.0 == i || c.1 == i).map(|&(a, b)| {
                let j = if a == i { b } else { a };
                p[i] / (p[i] + p[j])
            }).sum();
            assert!((w - expected).abs() < 1e-8, "item {i}: {w} vs {expected}");
        }
    }

    #[test]
    fn an_item_without_wins_is_an_error() {
        assert!(bradley_terry_mle(2, &[(0, 1)], 1e-9, 100).unwrap_err().to_string().contains("never wins"));
    }
}
