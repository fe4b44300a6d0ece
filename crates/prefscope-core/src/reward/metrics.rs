//! What `prefscope eval` reports about a reward model on a pair file: accuracy with a 95 %
//! interval, margins, calibration, length bias, and RewardBench-style section scores.
//!
//! Everything works on per-pair scores (the logit of P(chosen ≻ rejected)), so any model (a
//! feature-vector head, the transformer reward model) is evaluated the same way.

use std::collections::BTreeMap;

use serde::Serialize;

/// One scored pair.
#[derive(Clone, Debug, PartialEq)]
pub struct PairScore {
    /// Logit of P(chosen ≻ rejected) (r_c − r_r for Bradley–Terry, s/τ for GPM).
    pub logit: f32,
    /// Response lengths (characters or tokens; only their ratio is used).
    pub chosen_len: usize,
    pub rejected_len: usize,
    /// RewardBench subset, when the data names one.
    pub category: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Confidence range [lo, hi) of max(p, 1 − p).
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// One bar of the margin histogram: pairs whose logit (r_c − r_r for Bradley–Terry) lies in
/// [lo, hi) (the last bar includes its hi).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarginBin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
}

/// Bars of the margin histogram.
pub const MARGIN_BINS: usize = 24;

/// A histogram of the logits over [min, max] in [`MARGIN_BINS`] equal bars (a unit-wide range
/// around a constant logit, none for no pairs).
pub fn margin_histogram(logits: &[f32]) -> Vec<MarginBin> {
    let finite: Vec<f64> = logits.iter().map(|&l| l as f64).filter(|l| l.is_finite()).collect();
    if finite.is_empty() {
        return vec![];
    }
    let (mut lo, mut hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let width = (hi - lo) / MARGIN_BINS as f64;
    let mut counts = vec![0usize; MARGIN_BINS];
    for v in finite {
        counts[(((v - lo) / width) as usize).min(MARGIN_BINS - 1)] += 1;
    }
    counts.into_iter().enumerate().map(|(i, count)| MarginBin { lo: lo + i as f64 * width, hi: if i + 1 == MARGIN_BINS { hi } else { lo + (i + 1) as f64 * width }, count }).collect()
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LengthBucket {
    pub name: &'static str,
    pub count: usize,
    pub accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RewardBenchScores {
    /// Accuracy and count per subset present in the data.
    pub subsets: BTreeMap<String, SubsetScore>,
    /// Section scores (fractions) of the sections with at least one subset present.
    pub sections: BTreeMap<String, f64>,
    /// RewardBench v1's weighted mean over the present sections, weights [2, 2, 2, 2, 1].
    pub overall: Option<f64>,
    /// Equal-weight mean of Chat, Chat Hard, Safety and Reasoning (when all four are present).
    pub four_category_mean: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubsetScore {
    pub accuracy: f64,
    pub n: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    pub n: usize,
    /// Share of pairs with logit > 0 (ties count as wrong, as in RewardBench).
    pub accuracy: f64,
    /// Wilson score interval at 95 %.
    pub accuracy_ci95: [f64; 2],
    /// One-sided binomial p-value of accuracy > 0.5 (the chance of at least this many correct
    /// pairs if the model guessed).
    pub p_value_vs_chance: f64,
    /// Mean logit (the reward margin r_c − r_r for Bradley–Terry).
    pub mean_margin: f64,
    /// The distribution of the logits ([`margin_histogram`]): mass below 0 is the wrong pairs.
    pub margin_histogram: Vec<MarginBin>,
    /// Mean −log σ(logit).
    pub loss: f64,
    /// Expected calibration error over 10 confidence bins in [0.5, 1].
    pub ece: f64,
    pub reliability: Vec<ReliabilityBin>,
    /// Accuracy by how the chosen response's length compares with the rejected one's.
    pub by_length: Vec<LengthBucket>,
    /// How often the model prefers the longer response of a pair of unequal lengths.
    pub prefers_longer: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewardbench: Option<RewardBenchScores>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Wilson score interval for `k` successes out of `n` at 95 %.
pub fn wilson_interval(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// P(X ≥ k) for X ~ Binomial(n, 1/2), summed in log space so large n stays exact enough.
pub fn binomial_tail_half(k: usize, n: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let ln_half_n = n as f64 * 0.5f64.ln();
    // ln C(n, i) by lgamma-free recurrence: C(n, i+1) = C(n, i)·(n − i)/(i + 1).
    let mut ln_c = 0.0f64;
    let mut terms = Vec::with_capacity(n + 1);
    for i in 0..=n {
        if i >= k {
            terms.push(ln_c + ln_half_n);
        }
        if i < n {
            ln_c += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        }
    }
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()).exp().min(1.0)
}

/// Exact two-sided McNemar test of two models scored on the same pairs: `only_a` pairs only the
/// first got right, `only_b` only the second. Under "equally good" each disagreement is a fair
/// coin, so p = 2·P(X ≥ max) for X ~ Binomial(only_a + only_b, 1/2), capped at 1.
pub fn mcnemar_exact(only_a: usize, only_b: usize) -> f64 {
    let n = only_a + only_b;
    if n == 0 || only_a == only_b {
        return 1.0;
    }
    (2.0 * binomial_tail_half(only_a.max(only_b), n)).min(1.0)
}

/// The full report over scored pairs.
pub fn evaluate_scores(scores: &[PairScore]) -> EvalReport {
    let n = scores.len();
    let correct = scores.iter().filter(|s| s.logit > 0.0).count();
    let nf = n.max(1) as f64;
    let mean_margin = scores.iter().map(|s| s.logit as f64).sum::<f64>() / nf;
    let loss = scores.iter().map(|s| softplus(-(s.logit as f64))).sum::<f64>() / nf;

    // Calibration of the predicted winner: confidence max(p, 1 − p) against being right.
    const BINS: usize = 10;
    let mut bins = vec![(0usize, 0.0f64, 0usize); BINS];
    for s in scores {
        let p = sigmoid(s.logit as f64);
        let conf = p.max(1.0 - p);
        let b = (((conf - 0.5) * 2.0 * BINS as f64) as usize).min(BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += conf;
        bins[b].2 += usize::from(s.logit > 0.0);
    }
    let reliability: Vec<ReliabilityBin> = bins
        .iter()
        .enumerate()
        .map(|(i, &(count, conf, right))| ReliabilityBin {
            lo: 0.5 + i as f64 * 0.5 / BINS as f64,
            hi: 0.5 + (i + 1) as f64 * 0.5 / BINS as f64,
            count,
            mean_confidence: if count > 0 { conf / count as f64 } else { 0.0 },
            accuracy: if count > 0 { right as f64 / count as f64 } else { 0.0 },
        })
        .collect();
    let ece = reliability.iter().map(|b| b.count as f64 / nf * (b.accuracy - b.mean_confidence).abs()).sum();

    // Length: chosen clearly shorter, similar (within 20 %), clearly longer.
    let bucket_of = |s: &PairScore| {
        let (c, r) = (s.chosen_len.max(1) as f64, s.rejected_len.max(1) as f64);
        if c < r / 1.2 {
            0
        } else if c > r * 1.2 {
            2
        } else {
            1
        }
    };
    let names = ["chosen shorter", "similar length", "chosen longer"];
    let by_length = (0..3)
        .map(|b| {
            let in_b: Vec<&PairScore> = scores.iter().filter(|s| bucket_of(s) == b).collect();
            let right = in_b.iter().filter(|s| s.logit > 0.0).count();
            LengthBucket { name: names[b], count: in_b.len(), accuracy: if in_b.is_empty() { 0.0 } else { right as f64 / in_b.len() as f64 } }
        })
        .collect();
    let unequal: Vec<&PairScore> = scores.iter().filter(|s| s.chosen_len != s.rejected_len).collect();
    let prefers_longer = if unequal.is_empty() {
        0.0
    } else {
        unequal.iter().filter(|s| (s.logit > 0.0) == (s.chosen_len > s.rejected_len)).count() as f64 / unequal.len() as f64
    };

    let rewardbench = scores.iter().any(|s| s.category.is_some()).then(|| {
        let mut subsets: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for s in scores {
            if let Some(c) = &s.category {
                let e = subsets.entry(c.clone()).or_default();
                e.0 += usize::from(s.logit > 0.0);
                e.1 += 1;
            }
        }
        rewardbench_scores(subsets.into_iter().map(|(k, (right, n))| (k, SubsetScore { accuracy: right as f64 / n as f64, n })).collect())
    });

    EvalReport {
        n,
        accuracy: correct as f64 / nf,
        accuracy_ci95: wilson_interval(correct, n),
        p_value_vs_chance: binomial_tail_half(correct, n),
        mean_margin,
        margin_histogram: margin_histogram(&scores.iter().map(|s| s.logit).collect::<Vec<_>>()),
        loss,
        ece,
        reliability,
        by_length,
        prefers_longer,
        rewardbench,
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// RewardBench v1's sections and the example counts that weight their subsets
/// (`rewardbench/constants.py`; math-prm is up-weighted to 984 by design).
pub const REWARDBENCH_SECTIONS: &[(&str, &[(&str, usize)])] = &[
    ("Chat", &[("alpacaeval-easy", 100), ("alpacaeval-length", 95), ("alpacaeval-hard", 95), ("mt-bench-easy", 28), ("mt-bench-med", 40)]),
    (
        "Chat Hard",
        &[("mt-bench-hard", 37), ("llmbar-natural", 100), ("llmbar-adver-neighbor", 134), ("llmbar-adver-GPTInst", 92), ("llmbar-adver-GPTOut", 47), ("llmbar-adver-manual", 46)],
    ),
    ("Safety", &[("refusals-dangerous", 100), ("refusals-offensive", 100), ("xstest-should-refuse", 154), ("xstest-should-respond", 250), ("donotanswer", 136)]),
    ("Reasoning", &[("math-prm", 984), ("hep-cpp", 164), ("hep-go", 164), ("hep-java", 164), ("hep-js", 164), ("hep-python", 164), ("hep-rust", 164)]),
];

/// Prior Sets: an unweighted mean of these subsets (RewardBench gives the section weight 1).
pub const REWARDBENCH_PRIOR_SETS: &[&str] = &["anthropic_helpful", "anthropic_hhh", "shp", "summarize"];

/// Section scores from per-subset accuracies: Σ acc_s·N_s / Σ N_s over the subsets present,
/// then the v1 overall (weights 2, 2, 2, 2, 1 with Prior Sets) and the 4-category mean.
pub fn rewardbench_scores(subsets: BTreeMap<String, SubsetScore>) -> RewardBenchScores {
    let mut sections = BTreeMap::new();
    for (section, members) in REWARDBENCH_SECTIONS {
        let (mut num, mut den) = (0.0, 0.0);
        for (name, count) in *members {
            if let Some(s) = subsets.get(*name) {
                num += s.accuracy * *count as f64;
                den += *count as f64;
            }
        }
        if den > 0.0 {
            sections.insert(section.to_string(), num / den);
        }
    }
    let prior: Vec<f64> = REWARDBENCH_PRIOR_SETS.iter().filter_map(|n| subsets.get(*n).map(|s| s.accuracy)).collect();
    if !prior.is_empty() {
        sections.insert("Prior Sets".to_string(), prior.iter().sum::<f64>() / prior.len() as f64);
    }
    let weighted: Vec<(f64, f64)> = ["Chat", "Chat Hard", "Safety", "Reasoning", "Prior Sets"]
        .iter()
        .zip([2.0, 2.0, 2.0, 2.0, 1.0])
        .filter_map(|(s, w)| sections.get(*s).map(|v| (*v, w)))
        .collect();
    let overall = (!weighted.is_empty()).then(|| weighted.iter().map(|(v, w)| v * w).sum::<f64>() / weighted.iter().map(|(_, w)| w).sum::<f64>());
    let four: Vec<f64> = ["Chat", "Chat Hard", "Safety", "Reasoning"].iter().filter_map(|s| sections.get(*s).copied()).collect();
    let four_category_mean = (four.len() == 4).then(|| four.iter().sum::<f64>() / 4.0);
    RewardBenchScores { subsets, sections, overall, four_category_mean }
}

/// Eurus's sign accuracy: the fraction of responses whose reward has the sign of their gold
/// rating (r > 0 on good responses, r < 0 on bad ones). A reward of exactly 0 counts as wrong.
pub fn sign_accuracy(rewards: &[f32], gold: &[f32]) -> f32 {
    assert_eq!(rewards.len(), gold.len(), "one gold rating per reward");
    let right = rewards.iter().zip(gold).filter(|(r, g)| (**r > 0.0 && **g > 0.0) || (**r < 0.0 && **g < 0.0)).count();
    right as f32 / rewards.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_histogram_counts_every_finite_logit_in_equal_bars() {
        // Logits 0, 1, …, 23 and one at 24: 24 bars of width 1, the last holding 23 and 24.
        let logits: Vec<f32> = (0..=24).map(|i| i as f32).chain([f32::NAN]).collect();
        let h = margin_histogram(&logits);
        assert_eq!(h.len(), MARGIN_BINS);
        assert_eq!((h[0].lo, h[23].hi), (0.0, 24.0));
        assert!(h.iter().all(|b| (b.hi - b.lo - 1.0).abs() < 1e-12));
        assert_eq!(h.iter().map(|b| b.count).collect::<Vec<_>>(), [vec![1; 23], vec![2]].concat());
        // A constant logit gets a unit-wide range around it; no logits, no bars.
        let c = margin_histogram(&[2.0, 2.0]);
        assert_eq!((c[0].lo, c[23].hi, c.iter().map(|b| b.count).sum::<usize>()), (1.5, 2.5, 2));
        assert!(margin_histogram(&[]).is_empty());
    }

    /// Worked values: 10 against 2 disagreements gives 2·(C(12,10)+C(12,11)+C(12,12))/2¹² =
    /// 158/4096; a tie or no disagreement gives 1; the test is symmetric.
    #[test]
    fn mcnemar_matches_the_exact_binomial() {
        assert!((mcnemar_exact(10, 2) - 158.0 / 4096.0).abs() < 1e-12, "{}", mcnemar_exact(10, 2));
        assert_eq!(mcnemar_exact(2, 10), mcnemar_exact(10, 2));
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(7, 7), 1.0);
        assert!((mcnemar_exact(1, 0) - 1.0).abs() < 1e-12, "one disagreement proves nothing");
        assert!((mcnemar_exact(5, 0) - 2.0 / 32.0).abs() < 1e-12);
    }

    fn score(logit: f32, chosen_len: usize, rejected_len: usize, category: Option<&str>) -> PairScore {
        PairScore { logit, chosen_len, rejected_len, category: category.map(str::to_string) }
    }

    #[test]
    fn rewardbench_worked_example_of_the_reference() {
        // A worked example of RewardBench's weighting: Chat accuracies → 0.949022; with the other sections, overall 0.855338
        // and 4-category mean 0.874756.
        let mut subsets = BTreeMap::new();
        let mut put = |name: &str, acc: f64| {
            subsets.insert(name.to_string(), SubsetScore { accuracy: acc, n: 10 });
        };
        for (name, acc) in [("alpacaeval-easy", 1.0), ("alpacaeval-length", 0.9), ("alpacaeval-hard", 0.95), ("mt-bench-easy", 1.0), ("mt-bench-med", 0.9)] {
            put(name, acc);
        }
        for (section, acc) in [("Chat Hard", 0.80), ("Safety", 0.90), ("Reasoning", 0.85)] {
            for (name, _) in REWARDBENCH_SECTIONS.iter().find(|(s, _)| *s == section).unwrap().1 {
                put(name, acc);
            }
        }
        for name in REWARDBENCH_PRIOR_SETS {
            put(name, 0.70);
        }
        let r = rewardbench_scores(subsets);
        assert!((r.sections["Chat"] - 0.949022).abs() < 5e-7, "{}", r.sections["Chat"]);
        assert!((r.overall.unwrap() - 0.855338).abs() < 5e-7, "{:?}", r.overall);
        assert!((r.four_category_mean.unwrap() - 0.874756).abs() < 5e-7, "{:?}", r.four_category_mean);
    }

    #[test]
    fn sign_accuracy_counts_rewards_on_the_side_of_their_gold() {
        // Right: 0.5 (good), −2 (bad); wrong: −0.1 (good), 0.3 (bad), 0 (good, on the line).
        assert_eq!(sign_accuracy(&[0.5, -2.0, -0.1, 0.3, 0.0], &[1.0, -1.0, 0.4, -0.4, 2.0]), 0.4);
        assert_eq!(sign_accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn subset_accuracies_come_from_the_pairs() {
        // alpacaeval-easy: 3 of 4 right; the tie (logit 0) counts as wrong.
        let s: Vec<PairScore> = [1.0, 2.0, 0.5, 0.0].iter().map(|&l| score(l, 5, 5, Some("alpacaeval-easy"))).chain([score(-1.0, 5, 5, Some("mt-bench-med"))]).collect();
        let r = evaluate_scores(&s).rewardbench.unwrap();
        assert_eq!(r.subsets["alpacaeval-easy"], SubsetScore { accuracy: 0.75, n: 4 });
        // Chat = (100·0.75 + 40·0)/140.
        assert!((r.sections["Chat"] - 75.0 / 140.0).abs() < 1e-12);
        assert_eq!(r.four_category_mean, None);
    }

    #[test]
    fn interval_and_p_value_match_hand_values() {
        // Wilson 95 % for 8/10: [0.4902, 0.9433] (standard tables).
        let [lo, hi] = wilson_interval(8, 10);
        assert!((lo - 0.490_16).abs() < 1e-4 && (hi - 0.943_32).abs() < 1e-4, "{lo} {hi}");
        // P(X ≥ 8 | n = 10, p = ½) = (45 + 10 + 1)/1024.
        assert!((binomial_tail_half(8, 10) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((binomial_tail_half(0, 10) - 1.0).abs() < 1e-12);
        // Large n stays finite and small: 600 of 1000.
        let p = binomial_tail_half(600, 1000);
        assert!(p > 0.0 && p < 1e-9, "{p}");
    }

    #[test]
    fn calibration_and_length_buckets() {
        // p = 0.77 (bin [0.75, 0.8)) with 3 of 4 right: ECE = |0.75 − 0.77|.
        let l = (0.77f32 / 0.23).ln();
        let s = vec![score(l, 10, 5, None), score(l, 10, 5, None), score(l, 5, 10, None), score(-l, 5, 10, None)];
        let r = evaluate_scores(&s);
        let bin = r.reliability.iter().find(|b| b.count > 0).unwrap();
        assert_eq!(bin.count, 4);
        assert!((bin.lo - 0.75).abs() < 1e-12);
        assert!((bin.mean_confidence - 0.77).abs() < 1e-6 && (bin.accuracy - 0.75).abs() < 1e-12);
        assert!((r.ece - 0.02).abs() < 1e-6, "{}", r.ece);
        assert_eq!(r.by_length[2], LengthBucket { name: "chosen longer", count: 2, accuracy: 1.0 });
        assert_eq!(r.by_length[0], LengthBucket { name: "chosen shorter", count: 2, accuracy: 0.5 });
        // Prefers the longer response in pairs 1, 2 and 4 (pair 3 picks the shorter chosen).
        assert!((r.prefers_longer - 0.75).abs() < 1e-12);
        assert!((r.mean_margin - (l as f64) / 2.0).abs() < 1e-6);
        // Overconfident: p = 0.95 but half wrong → ECE 0.45.
        let l = (0.95f32 / 0.05).ln();
        let r = evaluate_scores(&[score(l, 1, 1, None), score(-l, 1, 1, None)]);
        assert!((r.ece - 0.45).abs() < 1e-6, "{}", r.ece);
    }
}
