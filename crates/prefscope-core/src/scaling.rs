//! Scaling-law fits (WorldPM, Kaplan et al.): held-out loss L against data D (or model size N)
//! as a power law with an irreducible floor, L = L∞ + (D_c/D)^α.
//!
//! The fit is least squares in log space, Σ (log L_i − log(L∞ + (D_c/D_i)^α))². For a fixed L∞
//! the law is a straight line, log(L − L∞) = α·log D_c − α·log D, so the floor is profiled: a
//! coarse scan over L∞ ∈ [0, min L) then golden-section refinement, each L∞ with its own line
//! by ordinary least squares. Intervals are percentile bootstrap (resampling the points).

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::{Result, config_error};

/// A fitted power law with its goodness of fit (R² of log L about its mean).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    pub floor: f64,
    pub alpha: f64,
    /// D_c: the scale at which the reducible part is 1.
    pub scale: f64,
    pub r2: f64,
}

impl PowerLaw {
    pub fn predict(&self, x: f64) -> f64 {
        self.floor + (self.scale / x).powf(self.alpha)
    }
}

/// A fit with percentile-bootstrap 95 % intervals on α and L∞.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    pub fit: PowerLaw,
    pub alpha_ci: (f64, f64),
    pub floor_ci: (f64, f64),
    pub points: usize,
    pub resamples: usize,
}

/// For a fixed floor: the line through (log x, log(y − floor)), as (α, D_c, log-space SSE).
fn line_at(xs: &[f64], ys: &[f64], floor: f64) -> Option<(f64, f64, f64)> {
    let n = xs.len() as f64;
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| (y - floor).ln()).collect();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxx: f64 = lx.iter().map(|a| (a - mx).powi(2)).sum();
    if sxx <= 0.0 || ly.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let slope = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>() / sxx;
    let alpha = -slope;
    let intercept = my - slope * mx;
    // log y_i − log(floor + exp(intercept + slope·log x_i)): the error the fit minimises.
    let sse = lx.iter().zip(ys).map(|(a, y)| (y.ln() - (floor + (intercept + slope * a).exp()).ln()).powi(2)).sum();
    let scale = if alpha.abs() > 1e-300 { (intercept / alpha).exp() } else { f64::NAN };
    Some((alpha, scale, sse))
}

fn r2_log(xs: &[f64], ys: &[f64], law: &PowerLaw) -> f64 {
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let m = ly.iter().sum::<f64>() / ly.len() as f64;
    let tot: f64 = ly.iter().map(|v| (v - m).powi(2)).sum();
    let res: f64 = xs.iter().zip(&ly).map(|(x, v)| (v - law.predict(*x).ln()).powi(2)).sum();
    1.0 - res / tot.max(1e-300)
}

/// The least-squares power law through (x, y); needs ≥ 3 points, x > 0, y > 0 and two distinct x.
pub fn fit_power_law(xs: &[f64], ys: &[f64]) -> Result<PowerLaw> {
    if xs.len() != ys.len() || xs.len() < 3 {
        return Err(config_error("fit", format!("needs at least 3 (x, loss) points, got {}", xs.len().min(ys.len()))));
    }
    if xs.iter().chain(ys).any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(config_error("fit", "x and the loss must be positive and finite"));
    }
    let min_y = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let sse = |f: f64| line_at(xs, ys, f).map(|l| l.2).unwrap_or(f64::INFINITY);
    // The floor lies in [0, min y): scan, then refine around the best cell.
    let hi = min_y * (1.0 - 1e-9);
    const CELLS: usize = 400;
    let at = |i: usize| hi * i as f64 / CELLS as f64;
    let best = (0..CELLS).min_by(|&a, &b| sse(at(a)).total_cmp(&sse(at(b)))).expect("cells");
    let (mut a, mut b) = (at(best.saturating_sub(1)), at((best + 1).min(CELLS)).min(hi));
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if sse(c) < sse(d) { b = d } else { a = c }
    }
    let mut floor = (a + b) / 2.0;
    if sse(at(best)) < sse(floor) {
        floor = at(best);
    }
    let (alpha, scale, _) = line_at(xs, ys, floor).ok_or_else(|| config_error("fit", "every x is the same: nothing to fit against"))?;
    let mut law = PowerLaw { floor, alpha, scale, r2: f64::NAN };
    law.r2 = r2_log(xs, ys, &law);
    Ok(law)
}

/// The fits of `resamples` bootstrap resamples of the points (resamples the fit refuses, such as
/// those with fewer than two distinct x, are skipped); the same seed gives the same resamples.
fn bootstrap_fits(xs: &[f64], ys: &[f64], resamples: usize, seed: u64) -> Vec<PowerLaw> {
    let mut rng = Rng::stream(seed, "scaling-bootstrap");
    let n = xs.len();
    (0..resamples)
        .filter_map(|_| {
            let (bx, by): (Vec<f64>, Vec<f64>) = (0..n).map(|_| rng.below(n)).map(|i| (xs[i], ys[i])).unzip();
            fit_power_law(&bx, &by).ok()
        })
        .collect()
}

/// [`fit_power_law`] with percentile-bootstrap 95 % intervals from `resamples` resamples of the
/// points.
pub fn fit_with_intervals(xs: &[f64], ys: &[f64], resamples: usize, seed: u64) -> Result<PowerLawFit> {
    let fit = fit_power_law(xs, ys)?;
    let fits = bootstrap_fits(xs, ys, resamples, seed);
    Ok(PowerLawFit {
        fit,
        points: xs.len(),
        resamples: fits.len(),
        alpha_ci: percentile_95(fits.iter().map(|f| f.alpha).collect()),
        floor_ci: percentile_95(fits.iter().map(|f| f.floor).collect()),
    })
}

/// The 2.5th and 97.5th percentiles (nearest rank) of bootstrap values; NaN when there are none.
fn percentile_95(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    (q(0.025), q(0.975))
}

/// A pointwise 95 % percentile-bootstrap band of the fitted law at each of `at` (the same
/// resamples as [`fit_with_intervals`] for the same seed).
pub fn prediction_band(xs: &[f64], ys: &[f64], at: &[f64], resamples: usize, seed: u64) -> Vec<(f64, f64)> {
    let fits = bootstrap_fits(xs, ys, resamples, seed);
    at.iter().map(|&x| percentile_95(fits.iter().map(|f| f.predict(x)).collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_power_law_is_recovered() {
        // L = 0.3 + (500/D)^0.4 at D = 100 … 100,000.
        let xs: Vec<f64> = (0..10).map(|i| 100.0 * 10f64.powf(i as f64 / 3.0)).collect();
        let truth = PowerLaw { floor: 0.3, alpha: 0.4, scale: 500.0, r2: 1.0 };
        let ys: Vec<f64> = xs.iter().map(|&x| truth.predict(x)).collect();
        let f = fit_power_law(&xs, &ys).unwrap();
        assert!((f.floor - 0.3).abs() < 1e-6 && (f.alpha - 0.4).abs() < 1e-5 && (f.scale / 500.0 - 1.0).abs() < 1e-4 && f.r2 > 1.0 - 1e-9, "{f:?}");
        // No floor: the scan's first cell.
        let ys0: Vec<f64> = xs.iter().map(|&x| (2000.0 / x).powf(0.7)).collect();
        let f0 = fit_power_law(&xs, &ys0).unwrap();
        assert!(f0.floor.abs() < 1e-6 && (f0.alpha - 0.7).abs() < 1e-5, "{f0:?}");
    }

    #[test]
    fn bootstrap_intervals_cover_the_truth_under_noise_and_exclude_zero() {
        // Three seeds' losses per D with 2 % multiplicative noise: over 20 draws the 95 % interval on
        // α covers 0.5 on nearly all (≥ 17, allowing for the bootstrap's own coverage error) and
        // never reaches 0.
        let xs: Vec<f64> = (0..8).flat_map(|i| std::iter::repeat_n(200.0 * 2f64.powi(i), 3)).collect();
        let mut covered = 0;
        for draw in 0..20 {
            let mut rng = Rng::stream(draw, "noise");
            let ys: Vec<f64> = xs.iter().map(|&x| (0.2 + (1000.0 / x).powf(0.5)) * (1.0 + 0.02 * rng.normal())).collect();
            let f = fit_with_intervals(&xs, &ys, 300, draw).unwrap();
            assert!(f.alpha_ci.0 > 0.0 && f.alpha_ci.0 <= f.fit.alpha && f.fit.alpha <= f.alpha_ci.1, "draw {draw}: {f:?}");
            covered += (f.alpha_ci.0 <= 0.5 && 0.5 <= f.alpha_ci.1) as usize;
        }
        assert!(covered >= 17, "the interval covered α = 0.5 on {covered} of 20 draws");
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(fit_power_law(&[1.0, 2.0], &[1.0, 0.5]).is_err());
        assert!(fit_power_law(&[1.0, 2.0, 3.0], &[1.0, -0.5, 0.2]).is_err());
        assert!(fit_power_law(&[5.0, 5.0, 5.0], &[1.0, 0.9, 0.8]).is_err());
    }
}
