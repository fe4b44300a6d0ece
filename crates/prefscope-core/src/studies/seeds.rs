//! Claims over many seeds: seed lists, the spread of a figure over them, and the exact binomial
//! bound for claims that hold on a stated fraction of seeds.
//!
//! A scientific claim in this project is checked on seeds 0–19 ([`CLAIM_SEEDS`]), never on one
//! lucky seed; the tests and `prefscope train --seeds` use the same helpers.

use std::fmt;

use crate::{Result, config_error};

/// The seeds every fast claim test runs on: 0 to 19.
pub const CLAIM_SEEDS: std::ops::Range<u64> = 0..20;

/// The most seeds one list may name (a typo such as `0..1000000` is refused, not run).
pub const MAX_SEEDS: usize = 10_000;

/// Parse a seed list: `7`, `0..19` (both ends included, as in shell brace ranges and "seeds
/// 0–19"), `0..=19`, or comma-separated items of those (`0..4,9,12`). Repeats are refused.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let bad = |msg: String| config_error("seeds", msg);
    let mut out: Vec<u64> = vec![];
    for item in spec.split(',').map(str::trim) {
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad(format!("`{s}` in `{spec}` is not a seed (a whole number ≥ 0)")));
        let (lo, hi) = match item.split_once("..") {
            Some((a, b)) => (num(a)?, num(b.strip_prefix('=').unwrap_or(b))?),
            None if item.is_empty() => return Err(bad(format!("`{spec}` has an empty item; write e.g. `0..19` or `1,4,7`"))),
            None => (num(item)?, num(item)?),
        };
        if hi < lo {
            return Err(bad(format!("`{item}` runs backwards; write `{hi}..{lo}`")));
        }
        if (hi - lo) as usize >= MAX_SEEDS || out.len() + (hi - lo) as usize >= MAX_SEEDS {
            return Err(bad(format!("`{spec}` names more than {MAX_SEEDS} seeds")));
        }
        for s in lo..=hi {
            if out.contains(&s) {
                return Err(bad(format!("seed {s} appears twice in `{spec}`")));
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// How a figure spreads over seeds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SeedStats {
    pub n: usize,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    /// Sample standard deviation (n − 1 in the denominator; 0 for one seed).
    pub std: f64,
}

impl SeedStats {
    /// The spread of `values`; NaN entries make min, mean and max NaN (a failed seed is not
    /// silently dropped).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self { n, min: f64::NAN, mean: f64::NAN, max: f64::NAN, std: f64::NAN };
        }
        let nan = values.iter().any(|v| v.is_nan());
        let min = if nan { f64::NAN } else { values.iter().cloned().fold(f64::INFINITY, f64::min) };
        let max = if nan { f64::NAN } else { values.iter().cloned().fold(f64::NEG_INFINITY, f64::max) };
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Self { n, min, mean, max, std }
    }
}

impl fmt::Display for SeedStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}–{:.3}, mean {:.3} ± {:.3} over {} seeds", self.min, self.max, self.mean, self.std, self.n)
    }
}

/// Evaluate a claim on every seed: print each seed's figures in seed order, and panic naming
/// every seed on which `holds` fails. Returns the figures for further claims about their spread.
///
/// Seeds run one after another on the calling thread, on purpose: burn-autodiff 0.21 keeps one
/// graph registry per process behind a mutex and scans it at every backward pass, so seeds
/// training on two threads of one process slowed each other badly (a 20-seed claim went from
/// 428 s to over 16 minutes). The test runner (cargo-nextest) gives the parallelism instead: a
/// process per test, two at a time.
pub fn assert_on_every_seed<T: fmt::Debug>(claim: &str, seeds: impl IntoIterator<Item = u64>, f: impl Fn(u64) -> T, holds: impl Fn(&T) -> bool) -> Vec<T> {
    let seeds: Vec<u64> = seeds.into_iter().collect();
    let figures: Vec<T> = seeds.iter().map(|&s| f(s)).collect();
    let mut failed = vec![];
    for (seed, x) in seeds.iter().zip(&figures) {
        eprintln!("{claim}: seed {seed}: {x:?}");
        if !holds(x) {
            failed.push(format!("seed {seed}: {x:?}"));
        }
    }
    assert!(failed.is_empty(), "{claim}: fails on {} of {} seeds:\n{}", failed.len(), figures.len(), failed.join("\n"));
    figures
}

/// Evaluate a claim that holds on at least a fraction `q` of seeds: the exact one-sided 95 %
/// lower bound on its success rate, from the seeds it held on, must reach `q`.
pub fn assert_on_fraction<T: fmt::Debug>(claim: &str, seeds: impl IntoIterator<Item = u64>, q: f64, f: impl Fn(u64) -> T, holds: impl Fn(&T) -> bool) -> Vec<T> {
    let seeds: Vec<u64> = seeds.into_iter().collect();
    let figures: Vec<(u64, T)> = seeds.iter().map(|&s| (s, f(s))).collect();
    let k = figures.iter().filter(|(_, x)| holds(x)).count();
    let bound = success_lower_bound(k, figures.len(), 0.95);
    for (s, x) in &figures {
        eprintln!("{claim}: seed {s}: {x:?}{}", if holds(x) { "" } else { "  (fails)" });
    }
    eprintln!("{claim}: holds on {k} of {} seeds; 95 % lower bound on the rate {bound:.3} (claimed ≥ {q})", figures.len());
    assert!(bound >= q, "{claim}: holds on only {k} of {} seeds (95 % lower bound {bound:.3} < {q})", figures.len());
    figures.into_iter().map(|(_, x)| x).collect()
}

/// ln C(n, k).
fn ln_choose(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln()).sum()
}

/// P(X ≥ k) for X ~ Binomial(n, p).
pub fn binomial_upper_tail(k: usize, n: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    (k..=n).map(|i| (ln_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp()).sum::<f64>().min(1.0)
}

/// One-sided exact (Clopper–Pearson) lower confidence bound on a success probability after `k`
/// successes in `n` trials: the smallest p with P(X ≥ k | p) ≥ 1 − `confidence`. A claim "holds
/// on at least a fraction q of seeds" is supported when this bound is ≥ q.
pub fn success_lower_bound(k: usize, n: usize, confidence: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let alpha = 1.0 - confidence;
    // P(X ≥ k | p) grows with p: bisect on it.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if binomial_upper_tail(k, n, mid) < alpha { lo = mid } else { hi = mid }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_parse_inclusively_and_refuse_bad_items_by_name() {
        assert_eq!(parse_seeds("0..19").unwrap(), (0..20).collect::<Vec<_>>());
        assert_eq!(parse_seeds("0..=3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_seeds("7").unwrap(), vec![7]);
        assert_eq!(parse_seeds("0..2, 9,12").unwrap(), vec![0, 1, 2, 9, 12]);
        for (spec, needle) in [("3..1", "backwards"), ("a", "`a`"), ("1,,2", "empty"), ("1,1", "twice"), ("0..99999", "more than"), ("-1", "`-1`")] {
            let e = parse_seeds(spec).unwrap_err().to_string();
            assert!(e.contains("seeds:") && e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn spread_matches_hand_values() {
        let s = SeedStats::of(&[1.0, 2.0, 4.0]);
        assert_eq!((s.n, s.min, s.max), (3, 1.0, 4.0));
        assert!((s.mean - 7.0 / 3.0).abs() < 1e-12);
        // Σ(x − mean)² = 14/3 over n − 1 = 2.
        assert!((s.std - (7.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(SeedStats::of(&[1.0, f64::NAN]).min.is_nan());
        assert_eq!(SeedStats::of(&[0.5]).std, 0.0);
    }

    #[test]
    fn a_panic_on_one_seed_fails_the_claim_by_its_seed() {
        let caught = std::panic::catch_unwind(|| assert_on_every_seed("claim", 0..6, |s| s, |&s| s != 4));
        let msg = *caught.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("fails on 1 of 6 seeds") && msg.contains("seed 4: 4"), "{msg}");
    }

    #[test]
    fn binomial_bound_matches_closed_forms() {
        // All n successes: the bound solves p^n = α, so p = α^(1/n) (20 of 20 at 95 %: 0.8609).
        let b = success_lower_bound(20, 20, 0.95);
        assert!((b - 0.05f64.powf(1.0 / 20.0)).abs() < 1e-9, "{b}");
        assert!((b - 0.860_891).abs() < 1e-5);
        // One success in one trial: p = α.
        assert!((success_lower_bound(1, 1, 0.95) - 0.05).abs() < 1e-9);
        // The tail against a direct sum: P(X ≥ 2 | n = 3, p = 0.5) = 4/8.
        assert!((binomial_upper_tail(2, 3, 0.5) - 0.5).abs() < 1e-12);
        // P(X ≥ 18 | n = 20, p = 0.9) = Σ_{18..20} C(20,i) 0.9^i 0.1^(20−i) = 0.676927.
        assert!((binomial_upper_tail(18, 20, 0.9) - 0.676_927_1).abs() < 1e-6);
        assert_eq!(success_lower_bound(0, 20, 0.95), 0.0);
        // More successes never lower the bound.
        assert!(success_lower_bound(19, 20, 0.95) < b && success_lower_bound(18, 20, 0.95) < success_lower_bound(19, 20, 0.95));
    }
}
