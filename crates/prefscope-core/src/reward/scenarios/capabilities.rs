//! `capabilities`: DMoERM's setting at toy scale. Prompts belong to tasks, responses have
//! capabilities (length, correctness, …) that each task weighs its own way, with signs that
//! conflict: length is rewarded in creative writing and penalised in objective QA. Overall labels
//! are noisy (about 65 % agree with the task's utility, as human annotators agree 60–75 % in the
//! paper); per-capability ratings, as DMoERM's LLM labels each capability point, agree about 85 %.

use super::{Rng, ScenarioConfig, bt_order, distinct_pair};
use crate::reward::data::PairDataset;

/// The tasks a prompt can belong to.
pub const TASKS: [&str; 3] = ["chat", "objective QA", "creative writing"];

/// The capability points every task's experts judge.
pub const CAPABILITIES: [&str; 4] = ["length", "correctness", "empathy", "creativity"];

/// Each task's weights over [`CAPABILITIES`]; length and creativity conflict across tasks.
pub const TASK_WEIGHTS: [[f64; 4]; 3] = [[-0.3, 0.4, 1.0, 0.3], [-0.8, 1.0, 0.0, -0.5], [0.8, 0.0, 0.3, 1.0]];

/// Prompt features: a task's centre is 3·e_t in the first three of eight dimensions, plus
/// standard normal noise in all eight, so the task must be read from the prompt (the best
/// possible router is right about 97 % of the time).
pub const PROMPT_DIM: usize = 8;
const TASK_SEPARATION: f64 = 3.0;

/// The standard deviation of the per-capability rating noise (pairwise order agreement ≈ 85 %).
pub const RATING_NOISE: f64 = 0.32;

/// A response's capabilities: tanh of its first four features.
pub fn capabilities(x: &[f32]) -> [f64; 4] {
    std::array::from_fn(|k| (x[k] as f64).tanh())
}

/// Task `t`'s utility of a response.
pub fn utility(t: usize, x: &[f32]) -> f64 {
    TASK_WEIGHTS[t].iter().zip(capabilities(x)).map(|(w, c)| w * c).sum()
}

/// `n_pairs` pairs, each from a task in turn, with its own prompt drawn around the task's centre
/// (`pair_groups` is the task); the label is a Bradley–Terry draw on the task's utility at
/// temperature `noise`. Ratings are each response's capabilities plus rating noise.
pub(super) fn capabilities_scenario(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let (d, tasks) = (cfg.dim, TASKS.len());
    let items: Vec<f32> = (0..cfg.n_items * d).map(|_| rng.normal() as f32).collect();
    let (mut pairs, mut prompts, mut pair_groups) = (vec![], vec![], vec![]);
    for p in 0..cfg.n_pairs {
        let t = p % tasks;
        let (a, b) = distinct_pair(rng, cfg.n_items);
        let delta = utility(t, &items[a * d..(a + 1) * d]) - utility(t, &items[b * d..(b + 1) * d]);
        pairs.push(bt_order(rng, (a, b), delta, cfg.noise));
        prompts.extend((0..PROMPT_DIM).map(|j| (if j == t { TASK_SEPARATION } else { 0.0 } + rng.normal()) as f32));
        pair_groups.push(t);
    }
    let mut judge = Rng::new(rng.next_u64());
    let ratings = items.chunks(d).flat_map(|x| capabilities(x).map(|c| (c + RATING_NOISE * judge.normal()) as f32).to_vec()).collect();
    PairDataset {
        dim: d,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        prompt_dim: PROMPT_DIM,
        prompts,
        pair_groups,
        ratings,
        n_objectives: CAPABILITIES.len(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::scenarios::ScenarioKind;

    /// The labels agree with the task's utility about 65 % of the time, the ratings' pairwise
    /// orders with the true capabilities about 85 %, and the tasks disagree.
    #[test]
    fn overall_labels_are_noisy_ratings_less_so_and_the_tasks_conflict() {
        let ds = ScenarioConfig::new(ScenarioKind::Capabilities).build(1).unwrap();
        assert_eq!((ds.dim, ds.prompt_dim, ds.n_objectives, ds.pairs.len()), (4, 8, 4, 3000));
        let agree = ds.pairs.iter().enumerate().filter(|&(p, &(w, l))| utility(ds.pair_groups[p], ds.item(w)) > utility(ds.pair_groups[p], ds.item(l))).count();
        let agree = agree as f64 / ds.pairs.len() as f64;
        assert!((0.6..0.7).contains(&agree), "overall labels agree {agree}");
        let (mut same, mut all) = (0, 0);
        for &(w, l) in &ds.pairs {
            let (cw, cl) = (capabilities(ds.item(w)), capabilities(ds.item(l)));
            for k in 0..4 {
                same += usize::from((cw[k] > cl[k]) == (ds.ratings[4 * w + k] > ds.ratings[4 * l + k]));
                all += 1;
            }
        }
        let rated = same as f64 / all as f64;
        assert!((0.8..0.9).contains(&rated), "ratings agree {rated}");
        // Objective QA and creative writing order most pairs the opposite way.
        let opposed = ds.pairs.iter().filter(|&&(w, l)| (utility(1, ds.item(w)) > utility(1, ds.item(l))) != (utility(2, ds.item(w)) > utility(2, ds.item(l)))).count();
        assert!(opposed as f64 / ds.pairs.len() as f64 > 0.6, "{opposed}");
        // Each pair's prompt is nearest its own task's centre most of the time.
        let nearest = (0..ds.pairs.len()).filter(|&p| {
            let row = &ds.prompts[p * PROMPT_DIM..p * PROMPT_DIM + 3];
            (0..3).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap() == ds.pair_groups[p]
        });
        assert!(nearest.count() as f64 / ds.pairs.len() as f64 > 0.93);
    }
}
