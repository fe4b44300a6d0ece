//! `context-reversal`: Pitis et al.'s Reasonable Preference Reversal at toy scale. Every pair of
//! responses is labelled twice, under two criteria that reverse its label, so a reward model
//! that does not read the criterion can only be right on one of the two: 50 % by construction.
//! A context-aware reward model r(c, y) reads it and can be right on both.

use super::{Rng, ScenarioConfig, distinct_pair, held_out_groups};
use crate::reward::data::PairDataset;

/// The criteria, as directions in the plane of two response attributes: detail (concise → detailed)
/// and formality (casual → formal). A criterion asks for more of its direction.
pub const CRITERIA: [&str; 8] = ["detailed", "detailed and formal", "formal", "concise and formal", "concise", "concise and casual", "casual", "detailed and casual"];

/// A criterion only labels a pair it clearly decides: |cos| between its direction and the
/// pair's difference at least this (about 76° or nearer to either end).
pub const DECISIVE_COS: f64 = 0.25;

/// Criterion `c`'s direction: `c · 45°` from "detailed".
pub fn criterion_direction(c: usize) -> [f64; 2] {
    let t = (c as f64 * 360.0 / CRITERIA.len() as f64).to_radians();
    [t.cos(), t.sin()]
}

/// `n_pairs / 2` pairs of distinct responses (points in the plane), each labelled under a
/// criterion c₁ drawn among those that decide it and again under a criterion c₂ drawn among those
/// that decide it the other way; the context of each labelled pair is its criterion, one-hot.
/// Both labellings of a pair fall on the same side of the split, so held-out pairs are new pairs.
pub(super) fn context_reversal(cfg: &ScenarioConfig, rng: &mut Rng, seed: u64) -> PairDataset {
    let k = CRITERIA.len();
    let items: Vec<f32> = (0..cfg.n_items * 2).map(|_| rng.normal() as f32).collect();
    let (mut pairs, mut prompts, mut pair_groups) = (vec![], vec![], vec![]);
    let responses = (cfg.n_pairs / 2).max(2);
    for _ in 0..responses {
        let (a, b, cos) = loop {
            let (a, b) = distinct_pair(rng, cfg.n_items);
            let d = [(items[2 * a] - items[2 * b]) as f64, (items[2 * a + 1] - items[2 * b + 1]) as f64];
            let norm = d[0].hypot(d[1]);
            if norm > 1e-6 {
                let cos: Vec<f64> = (0..k).map(|c| criterion_direction(c)).map(|v| (v[0] * d[0] + v[1] * d[1]) / norm).collect();
                break (a, b, cos);
            }
        };
        let first: Vec<usize> = (0..k).filter(|&c| cos[c].abs() >= DECISIVE_COS).collect();
        let c1 = first[rng.below(first.len())];
        let reversing: Vec<usize> = (0..k).filter(|&c| cos[c] * cos[c1].signum() <= -DECISIVE_COS).collect();
        let c2 = reversing[rng.below(reversing.len())];
        for c in [c1, c2] {
            pairs.push(if cos[c] > 0.0 { (a, b) } else { (b, a) });
            prompts.extend((0..k).map(|j| if j == c { 1.0f32 } else { 0.0 }));
            pair_groups.push(c);
        }
    }
    // Hold out whole response pairs (both of their labellings).
    let held_out = held_out_groups(responses, cfg.eval_fraction, seed, "context split");
    let (mut train, mut eval) = (vec![], vec![]);
    for p in 0..pairs.len() {
        if held_out[p / 2] { eval.push(p) } else { train.push(p) }
    }
    PairDataset {
        dim: 2,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        prompt_dim: k,
        prompts,
        pair_groups,
        train,
        eval,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::scenarios::ScenarioKind;

    #[test]
    fn every_response_pair_appears_under_two_criteria_with_opposite_labels() {
        let ds = ScenarioConfig::new(ScenarioKind::ContextReversal).build(3).unwrap();
        assert_eq!(ds.pairs.len(), 2000);
        assert_eq!(ds.eval.len() + ds.train.len(), ds.pairs.len());
        for r in 0..ds.pairs.len() / 2 {
            let ((a, b), (c, d)) = (ds.pairs[2 * r], ds.pairs[2 * r + 1]);
            assert_eq!((a, b), (d, c), "pair {r}: the second labelling reverses the first");
            assert_ne!(ds.pair_groups[2 * r], ds.pair_groups[2 * r + 1]);
            assert_eq!(ds.eval.contains(&(2 * r)), ds.eval.contains(&(2 * r + 1)), "both labellings on one side of the split");
            // Each label is what its criterion says, and decisively so.
            for p in [2 * r, 2 * r + 1] {
                let (w, l) = ds.pairs[p];
                let v = criterion_direction(ds.pair_groups[p]);
                let d = [(ds.items[2 * w] - ds.items[2 * l]) as f64, (ds.items[2 * w + 1] - ds.items[2 * l + 1]) as f64];
                assert!((v[0] * d[0] + v[1] * d[1]) / d[0].hypot(d[1]) >= DECISIVE_COS);
                let row = &ds.prompts[p * 8..(p + 1) * 8];
                assert_eq!(row.iter().sum::<f32>(), 1.0);
                assert_eq!(row[ds.pair_groups[p]], 1.0);
            }
        }
        assert!((ds.eval.len() as f64 / ds.pairs.len() as f64 - 0.2).abs() < 0.01);
    }
}
