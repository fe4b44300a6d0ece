//! `few-shot-users`: users with private tastes, each pair shown with a few other labelled pairs of
//! its user. VPL infers a latent user from them; the in-context model (FSPO) reads them directly.

use super::{Rng, ScenarioConfig, ScenarioKind, direction, distinct_pair};
use crate::Result;
use crate::reward::data::PairDataset;

/// Users with private taste directions θ_u ~ U(0°, 360°) over 2-D items. Every pair's prompt is
/// [`ScenarioKind::CONTEXT_PAIRS`] other labelled pairs of the same user, flattened as
/// (chosen, rejected) feature rows. Training users' contexts come from their own training pairs;
/// a new user's context is a fixed set of their labelled pairs, disjoint from the pairs scored,
/// of which only the first `cfg.shots` are shown (the rest are rows of zeros). Also returns each
/// user's direction, the oracle's reward w_u·y.
pub(super) fn few_shot_users(cfg: &ScenarioConfig, rng: &mut Rng) -> (PairDataset, Vec<[f64; 2]>) {
    let c = ScenarioKind::CONTEXT_PAIRS;
    let (train_users, new_users) = (ScenarioKind::TRAIN_USERS, ScenarioKind::NEW_USERS);
    let users = train_users + new_users;
    let items: Vec<f32> = (0..cfg.n_items * 2).map(|_| rng.normal() as f32).collect();
    let per_user = (cfg.n_pairs / users).max(c + 2);
    let (mut labelled, mut groups, mut directions) = (vec![], vec![], vec![]);
    for u in 0..users {
        let w = direction(rng.uniform() * 360.0);
        directions.push(w);
        let utility = |i: usize| w[0] * items[2 * i] as f64 + w[1] * items[2 * i + 1] as f64;
        for _ in 0..per_user {
            let (a, b) = distinct_pair(rng, cfg.n_items);
            let p_a = 1.0 / (1.0 + (-(utility(a) - utility(b)) / cfg.noise).exp());
            labelled.push(if rng.uniform() < p_a { (a, b) } else { (b, a) });
            groups.push(u);
        }
    }
    let row = |&(a, b): &(usize, usize)| [items[2 * a], items[2 * a + 1], items[2 * b], items[2 * b + 1]];
    let (mut pairs, mut prompts, mut pair_groups, mut train, mut eval) = (vec![], vec![], vec![], vec![], vec![]);
    for u in 0..users {
        let own: Vec<usize> = (0..labelled.len()).filter(|&p| groups[p] == u).collect();
        if u < train_users {
            for &p in &own {
                // Context: C other pairs of this user, drawn without replacement.
                let mut others: Vec<usize> = own.iter().copied().filter(|&q| q != p).collect();
                rng.shuffle(&mut others);
                train.push(pairs.len());
                pairs.push(labelled[p]);
                pair_groups.push(u);
                prompts.extend(others[..c].iter().flat_map(|&q| row(&labelled[q])));
            }
        } else {
            // A new user: the first C pairs are all we could be shown (the first `shots` of them
            // are); the rest are scored.
            let context: Vec<f32> = own[..c].iter().enumerate().flat_map(|(j, &q)| if j < cfg.shots { row(&labelled[q]) } else { [0.0; 4] }).collect();
            for &p in &own[c..] {
                eval.push(pairs.len());
                pairs.push(labelled[p]);
                pair_groups.push(u);
                prompts.extend_from_slice(&context);
            }
        }
    }
    let ds = PairDataset {
        dim: 2,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        prompt_dim: 4 * c,
        prompts,
        train,
        eval,
        pair_groups,
        ..Default::default()
    };
    (ds, directions)
}

impl ScenarioConfig {
    /// `few-shot-users`: each user's taste direction w_u (a pair's user is its `pair_groups`
    /// entry), as [`ScenarioConfig::build`] with this seed draws them. The oracle that knows them
    /// scores a pair by the sign of w_u·(y₁ − y₂).
    pub fn user_directions(&self, seed: u64) -> Result<Vec<[f64; 2]>> {
        if self.kind != ScenarioKind::FewShotUsers {
            return Err(crate::config_error("scenario.kind", "only few-shot-users has users with known tastes"));
        }
        self.validate()?;
        Ok(few_shot_users(self, &mut Rng::stream(seed, "scenario")).1)
    }
}
