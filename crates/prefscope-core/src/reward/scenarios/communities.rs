//! `communities`: PrefPalette's setting at toy scale. Responses carry six latent attributes
//! (verbosity, formality, …); each community values them with its own weights, and labels pairs
//! by its weighted sum. A teacher knows every response's attribute intensities, which is what
//! PrefPalette's counterfactual rewrites give it: each pair's order on each attribute.

use super::{Rng, ScenarioConfig, bt_order, distinct_pair};
use crate::reward::data::PairDataset;

/// The latent attributes, after PrefPalette's sociolinguistic norms.
pub const ATTRIBUTES: [&str; 6] = ["verbosity", "formality", "supportiveness", "sarcasm", "humor", "directness"];

/// The communities, each named for what it values.
pub const COMMUNITIES: [&str; 6] = ["scholarly", "support", "debate", "jokes", "news", "casual"];

/// Each community's weights over [`ATTRIBUTES`] (rows sum to 1): three attributes each, 0.5, 0.3
/// and 0.2, and none on the rest. They are importances, as in PrefPalette's community profiles:
/// scholarly communities weight verbosity and formality, conflict-oriented ones directness and
/// sarcasm, support communities supportiveness.
pub const WEIGHTS: [[f64; 6]; 6] = [
    [0.5, 0.3, 0.0, 0.0, 0.0, 0.2],
    [0.3, 0.0, 0.5, 0.0, 0.2, 0.0],
    [0.0, 0.2, 0.0, 0.3, 0.0, 0.5],
    [0.0, 0.0, 0.2, 0.3, 0.5, 0.0],
    [0.2, 0.5, 0.0, 0.0, 0.0, 0.3],
    [0.0, 0.0, 0.2, 0.5, 0.3, 0.0],
];

/// The attribute intensities of a response: tanh of its first six features (so they saturate:
/// no response is endlessly verbose); the features past them are content no community weighs.
pub fn attributes(x: &[f32]) -> [f64; 6] {
    std::array::from_fn(|i| (x[i] as f64).tanh())
}

/// Community `c`'s utility of a response: its weights on the response's attributes.
pub fn utility(c: usize, x: &[f32]) -> f64 {
    WEIGHTS[c].iter().zip(attributes(x)).map(|(w, a)| w * a).sum()
}

/// `n_pairs` pairs, each labelled by one community (in turn, so each has as many) with a
/// Bradley–Terry draw on its utility at temperature `noise`; the pair's context is its
/// community, one-hot. Ratings are the responses' six attribute intensities.
pub(super) fn communities(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let (d, k) = (cfg.dim, COMMUNITIES.len());
    let items: Vec<f32> = (0..cfg.n_items * d).map(|_| rng.normal() as f32).collect();
    let (mut pairs, mut prompts, mut pair_groups) = (vec![], vec![], vec![]);
    for p in 0..cfg.n_pairs {
        let c = p % k;
        let (a, b) = distinct_pair(rng, cfg.n_items);
        let delta = utility(c, &items[a * d..(a + 1) * d]) - utility(c, &items[b * d..(b + 1) * d]);
        pairs.push(bt_order(rng, (a, b), delta, cfg.noise));
        prompts.extend((0..k).map(|j| if j == c { 1.0f32 } else { 0.0 }));
        pair_groups.push(c);
    }
    let ratings = items.chunks(d).flat_map(|x| attributes(x).map(|a| a as f32)).collect();
    PairDataset {
        dim: d,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        prompt_dim: k,
        prompts,
        pair_groups,
        ratings,
        n_objectives: ATTRIBUTES.len(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::scenarios::ScenarioKind;

    #[test]
    fn each_community_labels_its_share_of_pairs_by_its_own_weights() {
        let cfg = ScenarioConfig::new(ScenarioKind::Communities);
        let ds = cfg.build(2).unwrap();
        assert_eq!((ds.dim, ds.prompt_dim, ds.n_objectives, ds.pairs.len()), (6, 6, 6, 3000));
        assert!(WEIGHTS.iter().all(|w| (w.iter().sum::<f64>() - 1.0).abs() < 1e-12));
        let mut agree = [0usize; 6];
        for (p, &(w, l)) in ds.pairs.iter().enumerate() {
            let c = ds.pair_groups[p];
            assert_eq!(ds.prompts[p * 6..(p + 1) * 6].iter().enumerate().filter(|&(j, &x)| x == 1.0 && j == c).count(), 1);
            agree[c] += usize::from(utility(c, ds.item(w)) > utility(c, ds.item(l)));
        }
        // 500 pairs each, labelled by a Bradley–Terry draw on the community's own utility: the
    // utility gaps are small beside the temperature 0.1, so about one label in eight is flipped.
        assert!(agree.iter().all(|&a| (410..470).contains(&a)), "{agree:?}");
        // The ratings are the attribute intensities, in (−1, 1).
        let a = attributes(ds.item(7));
        assert_eq!(&ds.ratings[42..48], &a.map(|x| x as f32));
        // A community's labels disagree with another's often: the tastes conflict.
        let disagree = ds.pairs.iter().filter(|&&(w, l)| (utility(0, ds.item(w)) > utility(0, ds.item(l))) != (utility(3, ds.item(w)) > utility(3, ds.item(l)))).count();
        assert!(disagree as f64 / ds.pairs.len() as f64 > 0.3, "{disagree}");
    }
}
