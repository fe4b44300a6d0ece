//! `reasoning`: prompts whose answers are right or wrong by a line that differs per prompt (the
//! shape of Eurus's UltraInteract pairs at toy scale). Bradley–Terry ranks each prompt's answers
//! but leaves its reward offset free, so the sign of its reward says little; Eurus's direct
//! reward term (`train.loss.dr`) makes zero the line between right and wrong.

use super::{Rng, ScenarioConfig, held_out_groups};
use crate::reward::data::PairDataset;

/// Spread of the prompts' difficulty b (a prompt's answers need w·a > b to be right). At 1.5,
/// Bradley–Terry's sign accuracy reached 0.91 on one seed of 20 (0.75–0.91): too close to the
/// 0.9 the direct reward term is held to. Wider spread, more prompts whose line is far from zero.
pub const DIFFICULTY_SPREAD: f64 = 2.5;
/// No answer is closer than this to its prompt's line: right and wrong are never a coin toss.
pub const MARGIN: f64 = 0.3;
/// Right and wrong answers per prompt; every right one is compared with every wrong one.
pub const RIGHT: usize = 2;
pub const WRONG: usize = 2;

/// `n_pairs / 4` prompts. An item is one answer to one prompt, as features (b, a): the prompt's
/// difficulty b (what the prompt tells a reader about how hard it is) and the answer's own
/// `dim` features a. An answer is right when w·a − b ≥ 0.3 and wrong when it is ≤ −0.3 (w a
/// hidden unit vector); that gold value is its rating. Held-out pairs are whole prompts never
/// trained on.
pub(super) fn reasoning(cfg: &ScenarioConfig, rng: &mut Rng, seed: u64) -> PairDataset {
    let d = cfg.dim;
    let mut w: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    w.iter_mut().for_each(|x| *x /= norm);
    let per_prompt = RIGHT * WRONG;
    let prompts = (cfg.n_pairs / per_prompt).max(2);
    let (mut items, mut ratings, mut labels, mut pairs) = (vec![], vec![], vec![], vec![]);
    for p in 0..prompts {
        let b = DIFFICULTY_SPREAD * rng.normal();
        let first = ratings.len();
        for k in 0..RIGHT + WRONG {
            // The answer's reach along w, on its side of the line, then noise across it.
            let beyond = MARGIN + rng.normal().abs();
            let gold = if k < RIGHT { beyond } else { -beyond };
            let t = b + gold;
            let mut a: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let along: f64 = a.iter().zip(&w).map(|(x, y)| x * y).sum();
            a.iter_mut().zip(&w).for_each(|(x, y)| *x += (t - along) * y);
            items.push(b as f32);
            items.extend(a.iter().map(|&x| x as f32));
            ratings.push(gold as f32);
            labels.push(if k < RIGHT { format!("q{p}✓{k}") } else { format!("q{p}✗{}", k - RIGHT) });
        }
        for c in 0..RIGHT {
            for r in 0..WRONG {
                pairs.push((first + c, first + RIGHT + r));
            }
        }
    }
    // Hold out whole prompts: the model must read a new prompt's difficulty from its features.
    let eval_prompt = held_out_groups(prompts, cfg.eval_fraction, seed, "reasoning split");
    let (mut train, mut eval) = (vec![], vec![]);
    for (i, &(c, _)) in pairs.iter().enumerate() {
        if eval_prompt[c / per_prompt] { eval.push(i) } else { train.push(i) }
    }
    PairDataset { dim: d + 1, items, pairs, train, eval, item_labels: labels, ratings, n_objectives: 1, ..Default::default() }
}
