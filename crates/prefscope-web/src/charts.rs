//! Held-out diagnostics from pair logits ℓ (P(chosen ≻ rejected) = σ(ℓ)): reward margins and
//! calibration. Pure functions (host tests); the page draws them as SVG.

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// Mean predicted probability of the outcomes in the bin.
    pub predicted: f64,
    /// Fraction of those outcomes that happened.
    pub observed: f64,
    pub count: usize,
}

/// A reliability diagram and its expected calibration error (count-weighted |observed − predicted|).
#[derive(Clone, Debug, PartialEq)]
pub struct Reliability {
    pub bins: Vec<Bin>,
    pub ece: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Calibration of held-out predictions. Each pair is counted in both orders, (σ(ℓ), happened) and
/// (1 − σ(ℓ), did not), since a pair's label only says which side won: the diagram is then
/// symmetric about ½ and covers the whole [0, 1] range.
pub fn reliability(logits: &[f32], n_bins: usize) -> Reliability {
    let mut sums = vec![(0.0, 0.0, 0usize); n_bins];
    for &l in logits {
        let p = sigmoid(l as f64);
        for (q, outcome) in [(p, 1.0), (1.0 - p, 0.0)] {
            let b = ((q * n_bins as f64) as usize).min(n_bins - 1);
            sums[b].0 += q;
            sums[b].1 += outcome;
            sums[b].2 += 1;
        }
    }
    let total: usize = sums.iter().map(|s| s.2).sum();
    let bins: Vec<Bin> = sums
        .iter()
        .map(|&(p, o, c)| if c == 0 { Bin { predicted: f64::NAN, observed: f64::NAN, count: 0 } } else { Bin { predicted: p / c as f64, observed: o / c as f64, count: c } })
        .collect();
    let ece = bins.iter().filter(|b| b.count > 0).map(|b| b.count as f64 / total.max(1) as f64 * (b.observed - b.predicted).abs()).sum();
    Reliability { bins, ece }
}

/// Counts of `values` in `n` equal bins over `[lo, hi]` (values outside go to the end bins).
pub fn histogram(values: &[f32], lo: f64, hi: f64, n: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    for &v in values {
        let b = (((v as f64 - lo) / (hi - lo) * n as f64).floor().max(0.0) as usize).min(n - 1);
        counts[b] += 1;
    }
    counts
}

/// A symmetric range around 0 that holds most margins: the 98th percentile of |ℓ|, rounded up.
pub fn margin_range(margins: &[f32]) -> f64 {
    let mut abs: Vec<f64> = margins.iter().map(|m| m.abs() as f64).filter(|m| m.is_finite()).collect();
    abs.sort_by(f64::total_cmp);
    let q = abs.get(((abs.len() as f64 * 0.98) as usize).min(abs.len().saturating_sub(1))).copied().unwrap_or(1.0);
    q.max(0.5).ceil()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfectly_calibrated_coin_has_no_error() {
        // ℓ = 0: P = ½ both ways, half the outcomes happen.
        let r = reliability(&[0.0; 10], 10);
        let used: Vec<&Bin> = r.bins.iter().filter(|b| b.count > 0).collect();
        assert_eq!(used.len(), 1);
        assert_eq!((used[0].predicted, used[0].observed, used[0].count), (0.5, 0.5, 20));
        assert_eq!(r.ece, 0.0);
    }

    #[test]
    fn overconfident_predictions_show_their_gap() {
        // σ(ℓ) ≈ 0.982 for ℓ = 4 but only 3 of 4 pairs are right (one has ℓ = −4).
        let r = reliability(&[4.0, 4.0, 4.0, -4.0], 10);
        let top = r.bins[9];
        assert_eq!(top.count, 4);
        assert!((top.observed - 0.75).abs() < 1e-12);
        assert!((r.ece - (sigmoid(4.0) - 0.75)).abs() < 1e-9, "{}", r.ece);
        // Symmetric: the bottom bin mirrors the top one.
        assert!((r.bins[0].observed - 0.25).abs() < 1e-12);
    }

    #[test]
    fn histogram_clamps_to_the_end_bins() {
        assert_eq!(histogram(&[-5.0, -0.9, 0.1, 0.6, 7.0], -1.0, 1.0, 4), vec![2, 0, 1, 2]);
        assert_eq!(margin_range(&[0.1, -0.2]), 1.0);
        assert_eq!(margin_range(&[3.2; 50]), 4.0);
    }
}
