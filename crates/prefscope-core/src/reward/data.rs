//! Preference pairs over feature vectors, deterministic splits, and the GPM toy-set reader. The
//! synthetic scenarios that build them are in [`crate::reward::scenarios`].

use serde::Deserialize;

use crate::runtime::rng::Rng;
use crate::{Error, Result, config_error};

/// A set of items (feature vectors) and comparisons between them.
///
/// Items are stored once and pairs refer to them by index, so a response that appears in many
/// comparisons is embedded once (the basis of GPM's linear query complexity). `prompt` holds
/// optional per-pair context features (used by GPM's gate).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairDataset {
    /// Feature length of one item.
    pub dim: usize,
    /// Row-major item features, `n_items × dim`.
    pub items: Vec<f32>,
    /// `(chosen, rejected)` item indices.
    pub pairs: Vec<(usize, usize)>,
    /// Context feature length (0 when there is no prompt).
    pub prompt_dim: usize,
    /// Row-major per-pair prompt features, `pairs.len() × prompt_dim`.
    pub prompts: Vec<f32>,
    /// Indices into `pairs` used for training.
    pub train: Vec<usize>,
    /// Indices into `pairs` used for evaluation (disjoint from `train` unless the scenario says so).
    pub eval: Vec<usize>,
    /// A short label per item, for pictures and tables.
    pub item_labels: Vec<String>,
    /// Per-item attribute ratings (multi-objective scenarios), row-major `n_items × n_objectives`;
    /// empty when the scenario has none.
    pub ratings: Vec<f32>,
    pub n_objectives: usize,
    /// The hidden user group (`mixture`) or user (`few-shot-users`) of each pair; empty otherwise.
    pub pair_groups: Vec<usize>,
    /// Preference strength per pair (HelpSteer2's magnitude 1 = slightly, 2 = better, 3 = much
    /// better); drives margin-BT and scaled-BT. Empty when the data has none.
    pub strengths: Vec<f32>,
    /// Which pairs had their label flipped (`noisy`), to score noise detection; empty otherwise.
    pub flipped: Vec<bool>,
    /// Full rankings (best first) over items (`rankings`); `pairs` then holds every ordered pair
    /// of every list, and `train`/`eval` follow the lists' split.
    pub lists: Vec<Vec<usize>>,
    pub train_lists: Vec<usize>,
    pub eval_lists: Vec<usize>,
    /// The source file's line of each pair (embedding files from `prefscope embed`); empty
    /// otherwise. When present, [`PairDataset::split`] holds out by line as text runs do.
    pub source_lines: Vec<usize>,
    /// Characters of each pair's chosen and rejected response (embedding files), for the length
    /// buckets of the eval report; empty otherwise.
    pub response_lengths: Vec<(usize, usize)>,
    /// Named test sets beside `eval`, scored on their own (WorldPM's adversarial, objective and
    /// subjective sets): pair indices in neither `train` nor `eval`.
    pub test_sets: Vec<(String, Vec<usize>)>,
}

impl PairDataset {
    pub fn n_items(&self) -> usize {
        self.items.len() / self.dim
    }

    pub fn item(&self, i: usize) -> &[f32] {
        &self.items[i * self.dim..(i + 1) * self.dim]
    }

    /// Split the pairs into train and eval by a seeded shuffle: the same seed gives the same split.
    /// Pairs that know their source line are held out by [`is_held_out`] instead, so a head trained
    /// on a file's embeddings is scored on exactly the pairs a text model trained on the file with
    /// the same seed and fraction never saw, and the two can be compared.
    pub fn split(&mut self, eval_fraction: f64, seed: u64) -> Result<()> {
        if !(0.0..1.0).contains(&eval_fraction) {
            return Err(config_error("scenario.eval_fraction", "must be in [0, 1)"));
        }
        if !self.source_lines.is_empty() {
            let (eval, train): (Vec<usize>, Vec<usize>) = (0..self.pairs.len()).partition(|&i| is_held_out(seed, self.source_lines[i], eval_fraction));
            if train.is_empty() {
                return Err(config_error("scenario.eval_fraction", format!("holds out all {} pairs; lower it", self.pairs.len())));
            }
            (self.eval, self.train) = (eval, train);
            return Ok(());
        }
        let mut order: Vec<usize> = (0..self.pairs.len()).collect();
        Rng::stream(seed, "split").shuffle(&mut order);
        let n_eval = ((self.pairs.len() as f64) * eval_fraction).round() as usize;
        let n_eval = n_eval.min(self.pairs.len().saturating_sub(1));
        self.eval = order[..n_eval].to_vec();
        self.train = order[n_eval..].to_vec();
        self.eval.sort_unstable();
        self.train.sort_unstable();
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let n = self.n_items();
        if self.dim == 0 || !self.items.len().is_multiple_of(self.dim) {
            return Err(config_error("dataset.items", "length is not a multiple of dim"));
        }
        if let Some(&(c, r)) = self.pairs.iter().find(|&&(c, r)| c >= n || r >= n) {
            return Err(config_error("dataset.pairs", format!("pair ({c}, {r}) refers past {n} items")));
        }
        if self.prompts.len() != self.pairs.len() * self.prompt_dim {
            return Err(config_error("dataset.prompts", "one prompt row per pair is required"));
        }
        if self.ratings.len() != self.n_items() * self.n_objectives {
            return Err(config_error("dataset.ratings", "one rating row per item is required"));
        }
        if !self.strengths.is_empty() && self.strengths.len() != self.pairs.len() {
            return Err(config_error("dataset.strengths", "one strength per pair is required"));
        }
        if !self.source_lines.is_empty() && self.source_lines.len() != self.pairs.len() {
            return Err(config_error("dataset.source_lines", "one line number per pair is required"));
        }
        if !self.response_lengths.is_empty() && self.response_lengths.len() != self.pairs.len() {
            return Err(config_error("dataset.response_lengths", "one pair of lengths per pair is required"));
        }
        if let Some((name, _)) = self.test_sets.iter().find(|(_, s)| s.iter().any(|&p| p >= self.pairs.len())) {
            return Err(config_error("dataset.test_sets", format!("test set `{name}` refers past {} pairs", self.pairs.len())));
        }
        if let Some(l) = self.lists.iter().find(|l| l.len() < 2 || l.iter().any(|&i| i >= n)) {
            return Err(config_error("dataset.lists", format!("list {l:?} needs at least 2 items below {n}")));
        }
        if let Some(x) = self.items.iter().chain(&self.prompts).chain(&self.ratings).chain(&self.strengths).find(|x| !x.is_finite()) {
            return Err(config_error("dataset.items", format!("non-finite feature {x}")));
        }
        Ok(())
    }
}

/// Whether a pair file's line is held out: a hash of the seed and the line number, so the split
/// is stable across passes over a streamed file and the same for a text run and an embedding run.
pub fn is_held_out(seed: u64, line: usize, eval_fraction: f64) -> bool {
    let mut r = Rng::new(Rng::stream(seed, "text-split").next_u64() ^ (line as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    r.uniform() < eval_fraction
}

/// Parse one JSONL line; a serde error becomes `source:line: field: message`, with the field
/// taken from serde's message (it names missing and unknown fields in backticks).
pub(crate) fn parse_json_line<T: serde::de::DeserializeOwned>(source_name: &str, line_no: usize, line: &str) -> Result<T> {
    serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        let field = message.split('`').nth(1).filter(|_| message.contains("field")).unwrap_or("line").to_string();
        Error::Data { source_name: source_name.to_string(), line: line_no, field, message }
    })
}

/// Names to dense indices in order of first appearance.
#[derive(Default)]
pub(crate) struct Interner {
    pub names: Vec<String>,
}

impl Interner {
    pub fn index(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        }
    }
}

/// The GPM repository's `custom_test_data.jsonl` (Apache-2.0, shipped in `static/data/`).
pub const GPM_CUSTOM_TEST_DATA: &str = include_str!("../../../../static/data/gpm_custom_test_data.jsonl");

#[derive(Deserialize)]
struct GpmCustomLine {
    chosen: String,
    reject: String,
}

/// The most distinct responses [`parse_gpm_custom`] takes (n² floats: 64 MiB at the cap).
pub const MAX_ONE_HOT_ITEMS: usize = 4096;

/// Parse the GPM custom format (`instruction`, `chosen`, `reject`, `label`) into one-hot items,
/// one per distinct response in order of first appearance.
pub fn parse_gpm_custom(source_name: &str, text: &str) -> Result<PairDataset> {
    let mut responses = Interner::default();
    let mut pairs = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: GpmCustomLine = parse_json_line(source_name, i + 1, line)?;
        let c = responses.index(&parsed.chosen);
        let r = responses.index(&parsed.reject);
        if responses.names.len() > MAX_ONE_HOT_ITEMS {
            let message = format!("more than {MAX_ONE_HOT_ITEMS} distinct responses: each becomes a one-hot item as wide as their number, which would not fit in memory");
            return Err(Error::Data { source_name: source_name.to_string(), line: i + 1, field: "chosen".into(), message });
        }
        if c == r {
            return Err(Error::Data {
                source_name: source_name.to_string(),
                line: i + 1,
                field: "reject".into(),
                message: "chosen and reject are the same response".into(),
            });
        }
        pairs.push((c, r));
    }
    let labels = responses.names;
    let n = labels.len();
    let items = (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect();
    Ok(PairDataset { dim: n, items, pairs, item_labels: labels, ..Default::default() })
}

pub fn gpm_custom_cycle() -> Result<PairDataset> {
    parse_gpm_custom("static/data/gpm_custom_test_data.jsonl", GPM_CUSTOM_TEST_DATA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::scenarios::*;

    #[test]
    fn split_is_deterministic_disjoint_and_complete() {
        let cfg = ScenarioConfig::new(ScenarioKind::Linear);
        let a = cfg.build(3).unwrap();
        let b = cfg.build(3).unwrap();
        let c = cfg.build(4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.train, c.train);
        let mut all: Vec<usize> = a.train.iter().chain(&a.eval).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..a.pairs.len()).collect::<Vec<_>>());
        assert_eq!(a.eval.len(), 400);
    }

    /// Pairs from a file split by their line, as text runs do: the same pairs are held out
    /// whatever their order in the dataset, and a fraction that holds out everything is refused.
    #[test]
    fn pairs_with_source_lines_split_like_text_runs() {
        let n = 500;
        let lines: Vec<usize> = (0..n).map(|i| 3 + 2 * i).collect();
        let mut ds = PairDataset { dim: 1, items: vec![0.0, 1.0], pairs: vec![(0, 1); n], source_lines: lines.clone(), ..Default::default() };
        ds.split(0.3, 9).unwrap();
        let held: Vec<usize> = ds.eval.iter().map(|&i| lines[i]).collect();
        assert_eq!(held, lines.iter().copied().filter(|&l| is_held_out(9, l, 0.3)).collect::<Vec<_>>());
        assert_eq!(ds.train.len() + ds.eval.len(), n);
        assert!((120..180).contains(&ds.eval.len()), "about 30 %: {}", ds.eval.len());
        // Reversed order: the same lines are held out.
        let mut rev = PairDataset { source_lines: lines.iter().rev().copied().collect(), ..ds.clone() };
        rev.split(0.3, 9).unwrap();
        let mut again: Vec<usize> = rev.eval.iter().map(|&i| rev.source_lines[i]).collect();
        again.sort_unstable();
        assert_eq!(again, held);
        let mut one = PairDataset { pairs: vec![(0, 1)], source_lines: vec![1], ..ds.clone() };
        let fraction = (1..100).map(|k| k as f64 / 100.0).find(|&f| is_held_out(9, 1, f)).unwrap();
        assert!(one.split(fraction, 9).unwrap_err().to_string().contains("holds out all 1 pairs"));
    }

    #[test]
    fn cyclic_labels_follow_the_half_turn_rule() {
        let ds = ScenarioConfig::new(ScenarioKind::Cyclic).build(0).unwrap();
        assert_eq!(ds.pairs.len(), 2000);
        for &(c, r) in &ds.pairs {
            let (a, b) = (ds.item(c), ds.item(r));
            // sin of the angle from chosen to rejected is positive: rejected is CCW within π.
            let cross = a[0] * b[1] - a[1] * b[0];
            assert!(cross > 0.0);
            let cos = a[0] * b[0] + a[1] * b[1];
            assert!(cos <= (90f32.to_radians()).cos() + 1e-6, "pair closer than min separation");
        }
    }

    #[test]
    fn linear_labels_mostly_agree_with_the_utility_direction() {
        // Recover the direction from the data itself: the mean of (chosen − rejected) points along w,
        // and with noise 0.1 nearly every label agrees with it.
        let ds = ScenarioConfig::new(ScenarioKind::Linear).build(1).unwrap();
        let mut w = [0f32; 2];
        for &(c, r) in &ds.pairs {
            for (j, wj) in w.iter_mut().enumerate() {
                *wj += ds.item(c)[j] - ds.item(r)[j];
            }
        }
        let agree = ds
            .pairs
            .iter()
            .filter(|&&(c, r)| (0..2).map(|j| w[j] * (ds.item(c)[j] - ds.item(r)[j])).sum::<f32>() > 0.0)
            .count();
        let frac = agree as f64 / ds.pairs.len() as f64;
        assert!(frac > 0.9 && frac < 0.995, "agreement {frac}");
    }

    #[test]
    fn gpm_custom_file_is_the_abcd_cycle() {
        let ds = gpm_custom_cycle().unwrap();
        assert_eq!(ds.item_labels, ["A", "B", "C", "D"]);
        assert_eq!(ds.pairs, [(0, 1), (1, 2), (2, 3), (3, 0)]);
        assert_eq!(ds.item(2), [0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn malformed_line_names_file_line_and_field() {
        let text = "{\"chosen\": \"A\", \"reject\": \"B\"}\n{\"chosen\": \"B\"}\n";
        let err = parse_gpm_custom("toy.jsonl", text).unwrap_err().to_string();
        assert!(err.starts_with("toy.jsonl:2: reject:"), "{err}");
    }

    #[test]
    fn bad_scenario_values_name_the_field() {
        let mut cfg = ScenarioConfig::new(ScenarioKind::Cyclic);
        cfg.min_separation_deg = 180.0;
        assert!(cfg.build(0).unwrap_err().to_string().contains("scenario.min_separation_deg"));
        assert!(ScenarioKind::parse("circle").unwrap_err().to_string().contains("scenario.kind"));
    }

    #[test]
    fn worldpm_keeps_its_test_sets_apart_and_the_same_across_data_sizes() {
        let mut cfg = ScenarioConfig::new(ScenarioKind::Worldpm);
        cfg.n_pairs = 500;
        let small = cfg.build(3).unwrap();
        cfg.n_pairs = 1500;
        let big = cfg.build(3).unwrap();
        let names: Vec<&str> = big.test_sets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ScenarioKind::WORLDPM_TEST_SETS);
        let d = big.dim;
        for ds in [&small, &big] {
            let mut seen: Vec<usize> = ds.train.iter().chain(&ds.eval).copied().collect();
            let forum = ds.pairs.len() - 3 * ScenarioKind::WORLDPM_TEST_PAIRS;
            assert!(seen.len() == forum && seen.iter().all(|&p| p < forum), "train and eval are the forum pairs");
            for (_, set) in &ds.test_sets {
                assert_eq!(set.len(), ScenarioKind::WORLDPM_TEST_PAIRS);
                seen.extend(set);
            }
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), ds.pairs.len(), "train, eval and the test sets partition the pairs");
        }
        // The world and its test sets depend on the seed alone: the same items at any n_pairs.
        for ((_, a), (_, b)) in small.test_sets.iter().zip(&big.test_sets) {
            for (&p, &q) in a.iter().zip(b) {
                let (sc, sr) = small.pairs[p];
                let (bc, br) = big.pairs[q];
                assert_eq!((small.item(sc), small.item(sr)), (big.item(bc), big.item(br)));
            }
        }
        // Adversarial: the original (the earlier item) beats its copy, which differs from it in
        // content only; objective pairs differ in the computed feature only.
        for &p in &big.test_sets[0].1 {
            let (c, r) = big.pairs[p];
            assert!(c < r && big.item(c)[d - 2..] == big.item(r)[d - 2..]);
        }
        for &p in &big.test_sets[1].1 {
            let (c, r) = big.pairs[p];
            let differ: Vec<usize> = (0..d).filter(|&j| big.item(c)[j] != big.item(r)[j]).collect();
            assert_eq!(differ, vec![d - 2]);
        }
        // A TOML table that leaves dim out gets worldpm's 8, not the 2 of the planar scenarios.
        let parsed: ScenarioConfig = toml::from_str("kind = \"worldpm\"").unwrap();
        assert_eq!(parsed, ScenarioConfig::new(ScenarioKind::Worldpm));
        assert!(toml::from_str::<ScenarioConfig>("kind = \"worldpm\"\ndim = 2").unwrap().build(0).unwrap_err().to_string().contains("scenario.dim"));
    }

    #[test]
    fn a_gpm_file_with_too_many_distinct_responses_is_refused_before_allocating() {
        let n = MAX_ONE_HOT_ITEMS;
        let lines: String = (0..n / 2 + 1).map(|i| format!("{{\"chosen\": \"a{i}\", \"reject\": \"b{i}\"}}\n")).collect();
        let e = parse_gpm_custom("many.jsonl", &lines).err().expect("refused").to_string();
        assert!(e.contains(&format!("more than {n} distinct responses")) && e.contains(&format!("many.jsonl:{}", n / 2 + 1)), "{e}");
    }
}
