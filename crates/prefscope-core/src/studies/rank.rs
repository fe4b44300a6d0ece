//! Item strengths from comparisons by maximum likelihood: Bradley–Terry for pairwise outcomes
//! (ties as half a win each), Plackett–Luce for rankings and top-1 choices — the arena
//! leaderboard — with bootstrap intervals and an Elo-scale view.
//!
//! Every observation reduces to "`winner` was chosen from the set `S`" with a weight: a pairwise
//! win is a choice from {w, l}, a ranking a₁ ≻ a₂ ≻ … is the choices of a₁ from all, a₂ from the
//! rest, and so on (the Plackett–Luce factorisation). The likelihood Π p_w / Σ_{j∈S} p_j is then
//! maximised by Hunter's (2004) minorise–maximise iteration, which increases it monotonically:
//! p_i ← W_i / Σ_{obs ∋ i} weight / Σ_{j∈S} p_j, with W_i the weighted wins of i.

use serde::Deserialize;

use crate::reward::data::{Interner, parse_json_line};
use crate::runtime::rng::Rng;
use crate::{Error, Result, config_error};

/// One weighted choice: `winner` was preferred to every other member of `set` (which contains it).
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub winner: usize,
    pub set: Vec<usize>,
    pub weight: f64,
}

/// A set of comparisons over named items.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparisons {
    pub names: Vec<String>,
    pub choices: Vec<Choice>,
    /// Whether the source was pairwise (choix reports those estimates in strength space).
    pub pairwise: bool,
}

impl Comparisons {
    pub fn n_items(&self) -> usize {
        self.names.len()
    }

    pub fn from_pairs(n_items: usize, pairs: &[(usize, usize)]) -> Self {
        Self {
            names: (0..n_items).map(|i| i.to_string()).collect(),
            choices: pairs.iter().map(|&(w, l)| Choice { winner: w, set: vec![w, l], weight: 1.0 }).collect(),
            pairwise: true,
        }
    }

    pub fn from_rankings(n_items: usize, rankings: &[Vec<usize>]) -> Self {
        let choices = rankings
            .iter()
            .flat_map(|r| (0..r.len().saturating_sub(1)).map(move |k| Choice { winner: r[k], set: r[k..].to_vec(), weight: 1.0 }))
            .collect();
        Self { names: (0..n_items).map(|i| i.to_string()).collect(), choices, pairwise: false }
    }

    pub fn from_top1(n_items: usize, data: &[(usize, Vec<usize>)]) -> Self {
        let choices = data
            .iter()
            .map(|(w, losers)| Choice { winner: *w, set: std::iter::once(*w).chain(losers.iter().copied()).collect(), weight: 1.0 })
            .collect();
        Self { names: (0..n_items).map(|i| i.to_string()).collect(), choices, pairwise: false }
    }

    fn validate(&self) -> Result<()> {
        let n = self.n_items();
        if n == 0 {
            return Err(config_error("n_items", "must be at least 1"));
        }
        for (i, c) in self.choices.iter().enumerate() {
            if c.set.iter().any(|&j| j >= n) || !c.set.contains(&c.winner) || c.set.len() < 2 {
                return Err(config_error("data", format!("observation {i} ({:?} from {:?}) is invalid for {n} items", c.winner, c.set)));
            }
        }
        Ok(())
    }

    /// Log-likelihood Σ weight · (log p_w − log Σ_{j∈S} p_j) at log-strengths θ.
    pub fn log_likelihood(&self, theta: &[f64]) -> f64 {
        self.choices
            .iter()
            .map(|c| {
                let m = c.set.iter().map(|&j| theta[j]).fold(f64::NEG_INFINITY, f64::max);
                let lse = m + c.set.iter().map(|&j| (theta[j] - m).exp()).sum::<f64>().ln();
                c.weight * (theta[c.winner] - lse)
            })
            .sum()
    }
}

/// Maximum-likelihood log-strengths, centred to mean 0 (choix's "centred log space").
pub fn fit(comparisons: &Comparisons, tol: f64, max_iter: usize) -> Result<Vec<f64>> {
    comparisons.validate()?;
    let n = comparisons.n_items();
    let mut wins = vec![0f64; n];
    for c in &comparisons.choices {
        wins[c.winner] += c.weight;
    }
    if let Some(i) = wins.iter().position(|&w| w <= 0.0) {
        return Err(config_error(
            "data",
            format!("item `{}` never wins: its maximum-likelihood strength is 0 (no finite estimate)", comparisons.names[i]),
        ));
    }
    let mut p = vec![1f64; n];
    for _ in 0..max_iter {
        let mut denom = vec![0f64; n];
        for c in &comparisons.choices {
            let d = c.weight / c.set.iter().map(|&j| p[j]).sum::<f64>();
            for &j in &c.set {
                denom[j] += d;
            }
        }
        let next: Vec<f64> = (0..n).map(|i| wins[i] / denom[i]).collect();
        // Rescale to geometric mean 1 so the iteration is compared in a fixed gauge.
        let log_mean = next.iter().map(|x| x.ln()).sum::<f64>() / n as f64;
        let next: Vec<f64> = next.iter().map(|x| x / log_mean.exp()).collect();
        let change = next.iter().zip(&p).map(|(a, b)| (a.ln() - b.ln()).abs()).fold(0.0, f64::max);
        p = next;
        if change < tol {
            return Ok(p.iter().map(|x| x.ln()).collect());
        }
    }
    Err(config_error("max_iter", format!("did not converge in {max_iter} iterations (is the comparison graph connected?)")))
}

/// Maximum-likelihood Bradley–Terry strengths p normalised to mean 1 (choix's pairwise `ml_est`)
/// for `comparisons` given as `(winner, loser)`.
pub fn bradley_terry_mle(n_items: usize, comparisons: &[(usize, usize)], tol: f64, max_iter: usize) -> Result<Vec<f64>> {
    let theta = fit(&Comparisons::from_pairs(n_items, comparisons), tol, max_iter)?;
    let p: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
    let mean = p.iter().sum::<f64>() / n_items as f64;
    Ok(p.iter().map(|x| x / mean).collect())
}

/// Log-strengths to the Elo scale used by arena leaderboards: 1000 + 400·log₁₀ p.
pub fn elo(theta: &[f64]) -> Vec<f64> {
    theta.iter().map(|t| 1000.0 + 400.0 * t / std::f64::consts::LN_10).collect()
}

/// Percentile bootstrap: refit on `rounds` resamples of the observations (with replacement) and
/// return the (2.5 %, 97.5 %) interval of each centred log-strength. Resamples in which some item
/// never wins have no finite estimate and are skipped; the count used is returned.
pub fn bootstrap(comparisons: &Comparisons, rounds: usize, seed: u64) -> Result<(Vec<(f64, f64)>, usize)> {
    let n = comparisons.n_items();
    let mut rng = Rng::stream(seed, "bootstrap");
    let mut samples: Vec<Vec<f64>> = vec![vec![]; n];
    let mut used = 0;
    for _ in 0..rounds {
        let m = comparisons.choices.len();
        let resample = Comparisons {
            names: comparisons.names.clone(),
            choices: (0..m).map(|_| comparisons.choices[rng.below(m)].clone()).collect(),
            pairwise: comparisons.pairwise,
        };
        if let Ok(theta) = fit(&resample, 1e-8, 20_000) {
            used += 1;
            for (s, t) in samples.iter_mut().zip(theta) {
                s.push(t);
            }
        }
    }
    if used == 0 {
        return Err(config_error("bootstrap", "no resample had a finite estimate"));
    }
    let intervals = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            let q = |f: f64| s[((s.len() - 1) as f64 * f).round() as usize];
            (q(0.025), q(0.975))
        })
        .collect();
    Ok((intervals, used))
}

#[derive(Deserialize)]
struct ChoixFile {
    n_items: usize,
    data: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Battle {
    model_a: String,
    model_b: String,
    winner: String,
}

/// The most items a choix file may declare.
pub const MAX_ITEMS: usize = 1 << 20;

/// The most choice-set entries the rankings of a choix file may expand to (128 MiB of indices).
pub const MAX_RANKING_INDICES: u128 = 1 << 24;

/// Read comparisons from a choix-style JSON file (`{"n_items", "data"}`, data being `[w, l]`
/// pairs, full rankings `[a, b, c, …]`, or top-1 choices `[w, [losers…]]`) or from JSONL battles
/// (`{"model_a", "model_b", "winner"}` with winner `model_a`, `model_b` or `tie…`; a tie counts as
/// half a win for each side).
pub fn read_comparisons(source_name: &str, text: &str) -> Result<Comparisons> {
    let data_err = |line: usize, field: &str, message: String| Error::Data { source_name: source_name.to_string(), line, field: field.to_string(), message };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') && serde_json::from_str::<ChoixFile>(text).is_ok() {
        let f: ChoixFile = serde_json::from_str(text).map_err(|e| data_err(e.line(), "data", e.to_string()))?;
        // Every item gets a name and a strength, so the count is bounded before anything is sized by it.
        if f.n_items > MAX_ITEMS {
            return Err(data_err(1, "n_items", format!("{} items; at most {MAX_ITEMS} are supported", f.n_items)));
        }
        let as_index = |v: &serde_json::Value| v.as_u64().map(|x| x as usize);
        let first = f.data.first().ok_or_else(|| data_err(1, "data", "no comparisons".into()))?;
        let arr = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        let comparisons = if arr(first).get(1).is_some_and(|x| x.is_array()) {
            let mut top1 = vec![];
            for (i, v) in f.data.iter().enumerate() {
                let a = arr(v);
                let w = a.first().and_then(as_index);
                let losers: Option<Vec<usize>> = a.get(1).and_then(|l| l.as_array()).map(|l| l.iter().filter_map(as_index).collect());
                match (w, losers) {
                    (Some(w), Some(l)) if a.len() == 2 => top1.push((w, l)),
                    _ => return Err(data_err(1, &format!("data[{i}]"), "expected [winner, [losers…]]".into())),
                }
            }
            Comparisons::from_top1(f.n_items, &top1)
        } else {
            let mut rankings = vec![];
            for (i, v) in f.data.iter().enumerate() {
                let r: Option<Vec<usize>> = v.as_array().and_then(|a| a.iter().map(as_index).collect::<Option<Vec<_>>>());
                match r {
                    Some(r) if r.len() >= 2 => rankings.push(r),
                    _ => return Err(data_err(1, &format!("data[{i}]"), "expected a list of at least two item indices".into())),
                }
            }
            // A ranking of L items is L − 1 choices over its suffixes: L²/2 indices in memory.
            let indices: u128 = rankings.iter().map(|r| (r.len() as u128).pow(2) / 2).sum();
            if indices > MAX_RANKING_INDICES {
                return Err(data_err(1, "data", format!("the rankings expand to {indices} choice-set entries; at most {MAX_RANKING_INDICES} are supported")));
            }
            if rankings.iter().all(|r| r.len() == 2) {
                let pairs: Vec<(usize, usize)> = rankings.iter().map(|r| (r[0], r[1])).collect();
                Comparisons::from_pairs(f.n_items, &pairs)
            } else {
                Comparisons::from_rankings(f.n_items, &rankings)
            }
        };
        comparisons.validate()?;
        return Ok(comparisons);
    }
    // JSONL battles.
    let mut models = Interner::default();
    let mut choices = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let b: Battle = parse_json_line(source_name, i + 1, line)?;
        if b.model_a == b.model_b {
            return Err(data_err(i + 1, "model_b", "a model cannot battle itself".into()));
        }
        let (a, bb) = (models.index(&b.model_a), models.index(&b.model_b));
        match b.winner.as_str() {
            "model_a" => choices.push(Choice { winner: a, set: vec![a, bb], weight: 1.0 }),
            "model_b" => choices.push(Choice { winner: bb, set: vec![a, bb], weight: 1.0 }),
            w if w.starts_with("tie") => {
                choices.push(Choice { winner: a, set: vec![a, bb], weight: 0.5 });
                choices.push(Choice { winner: bb, set: vec![a, bb], weight: 0.5 });
            }
            w => return Err(data_err(i + 1, "winner", format!("`{w}` is not model_a, model_b or tie"))),
        }
    }
    if choices.is_empty() {
        return Err(data_err(1, "data", "no comparisons found".into()));
    }
    Ok(Comparisons { names: models.names, choices, pairwise: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &str) -> String {
        let path = format!("{}/../../tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).expect("tests/data holds the choix cases")
    }

    fn ml_est(text: &str) -> Vec<f64> {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(text).unwrap()["ml_est"].clone()).unwrap()
    }

    fn close_all(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn reproduces_choix_pairwise_testcase() {
        // choix reports pairwise estimates in strength space, normalised to mean 1.
        let text = shared("choix_testcase-pairwise-1.json");
        let c = read_comparisons("pairwise-1", &text).unwrap();
        assert!(c.pairwise);
        let pairs: Vec<(usize, usize)> = c.choices.iter().map(|ch| (ch.set[0], ch.set[1])).collect();
        close_all(&bradley_terry_mle(c.n_items(), &pairs, 1e-12, 10_000).unwrap(), &ml_est(&text), 1e-4);
    }

    #[test]
    fn reproduces_choix_rankings_and_top1_testcases() {
        for name in ["choix_testcase-rankings-1.json", "choix_testcase-top1-1.json"] {
            let text = shared(name);
            let c = read_comparisons(name, &text).unwrap();
            assert!(!c.pairwise);
            close_all(&fit(&c, 1e-12, 10_000).unwrap(), &ml_est(&text), 1e-4);
        }
    }

    #[test]
    fn analytic_two_item_optimum() {
        // 3–1: the MLE strength ratio is 3, so with mean 1 the strengths are 1.5 and 0.5.
        let est = bradley_terry_mle(2, &[(0, 1), (0, 1), (0, 1), (1, 0)], 1e-12, 10_000).unwrap();
        close_all(&est, &[1.5, 0.5], 1e-9);
    }

    /// At the maximum the score equations hold: ∂logL/∂θ_i = W_i − Σ_{obs∋i} w·p_i/Σ_S p = 0,
    /// and any perturbation lowers the likelihood.
    #[test]
    fn plackett_luce_estimate_is_a_stationary_maximum() {
        let rankings = vec![vec![0, 1, 2, 3], vec![1, 0, 3, 2], vec![2, 0, 1, 3], vec![0, 2, 3, 1], vec![3, 1, 0, 2], vec![0, 3, 2, 1]];
        let c = Comparisons::from_rankings(4, &rankings);
        let theta = fit(&c, 1e-13, 100_000).unwrap();
        assert!(theta.iter().sum::<f64>().abs() < 1e-9, "centred");
        for i in 0..4 {
            let wins: f64 = c.choices.iter().filter(|ch| ch.winner == i).map(|ch| ch.weight).sum();
            let expected: f64 = c
                .choices
                .iter()
                .filter(|ch| ch.set.contains(&i))
                .map(|ch| ch.weight * theta[i].exp() / ch.set.iter().map(|&j| theta[j].exp()).sum::<f64>())
                .sum();
            assert!((wins - expected).abs() < 1e-8, "item {i}");
        }
        let best = c.log_likelihood(&theta);
        for i in 0..4 {
            let mut t = theta.clone();
            t[i] += 1e-3;
            assert!(c.log_likelihood(&t) < best);
        }
    }

    #[test]
    fn battles_with_ties_and_elo() {
        let text = "{\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"model_a\"}\n\
                    {\"model_a\":\"y\",\"model_b\":\"x\",\"winner\":\"tie\"}\n\
                    {\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"model_b\"}\n\
                    {\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"model_a\"}\n";
        let c = read_comparisons("b.jsonl", text).unwrap();
        assert_eq!(c.names, ["x", "y"]);
        // x: 2.5 wins, y: 1.5 wins of 4 ⇒ p_x/p_y = 5/3.
        let theta = fit(&c, 1e-13, 10_000).unwrap();
        assert!((theta[0] - theta[1] - (5.0f64 / 3.0).ln()).abs() < 1e-9);
        let e = elo(&theta);
        assert!((e[0] - e[1] - 400.0 * (5.0f64 / 3.0).log10()).abs() < 1e-9);
        assert!(((e[0] + e[1]) / 2.0 - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn bad_battle_lines_name_line_and_field() {
        let err = read_comparisons("b.jsonl", "{\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"model_a\"}\n{\"model_a\":\"x\",\"winner\":\"model_a\"}\n").unwrap_err();
        assert!(err.to_string().starts_with("b.jsonl:2: model_b:"), "{err}");
        let err = read_comparisons("b.jsonl", "{\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"both\"}\n").unwrap_err();
        assert!(err.to_string().starts_with("b.jsonl:1: winner:"), "{err}");
    }

    #[test]
    fn bootstrap_interval_brackets_the_estimate() {
        let mut pairs = vec![];
        let mut rng = Rng::new(3);
        let strengths = [0.0f64, 0.7, 1.5];
        for _ in 0..600 {
            let a = rng.below(3);
            let b = (a + 1 + rng.below(2)) % 3;
            let p = 1.0 / (1.0 + (strengths[b] - strengths[a]).exp());
            pairs.push(if rng.uniform() < p { (a, b) } else { (b, a) });
        }
        let c = Comparisons::from_pairs(3, &pairs);
        let theta = fit(&c, 1e-12, 10_000).unwrap();
        let (ci, used) = bootstrap(&c, 100, 0).unwrap();
        assert_eq!(used, 100);
        for i in 0..3 {
            assert!(ci[i].0 < theta[i] && theta[i] < ci[i].1, "item {i}: {theta:?} {ci:?}");
            assert!(ci[i].1 - ci[i].0 < 0.6, "600 games give a tight interval: {ci:?}");
        }
        // The truth (centred) lies inside too for this seed.
        let mean = strengths.iter().sum::<f64>() / 3.0;
        for i in 0..3 {
            assert!(ci[i].0 < strengths[i] - mean && strengths[i] - mean < ci[i].1);
        }
    }

    #[test]
    fn an_item_without_wins_is_an_error() {
        assert!(bradley_terry_mle(2, &[(0, 1)], 1e-9, 100).unwrap_err().to_string().contains("never wins"));
    }

    // Inputs built to exhaust memory, beyond the fuzzer's 16 KiB reach: refused by name before
    // anything is sized by them.
    #[test]
    fn a_choix_file_declaring_too_many_items_is_refused() {
        let text = format!("{{\"n_items\": {}, \"data\": [[0, 1]]}}", MAX_ITEMS + 1);
        let e = read_comparisons("big.json", &text).err().expect("refused").to_string();
        assert!(e.contains("n_items") && e.contains("at most"), "{e}");
        assert!(read_comparisons("ok.json", "{\"n_items\": 3, \"data\": [[0, 1]]}").is_ok());
    }

    #[test]
    fn rankings_that_expand_past_the_cap_are_refused() {
        // One ranking of L items expands to L²/2 entries: 6,000 items give 18 M > 2^24.
        let ranking: Vec<String> = (0..6000).map(|i| i.to_string()).collect();
        let text = format!("{{\"n_items\": 6000, \"data\": [[{}]]}}", ranking.join(","));
        let e = read_comparisons("long.json", &text).err().expect("refused").to_string();
        assert!(e.contains("choice-set entries"), "{e}");
    }
}
