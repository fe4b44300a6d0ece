//! Noisy preference labels: preference strength from an ensemble (Secrets of RLHF II) and
//! collaborative reward modelling with two peers (CRM).
//!
//! Both drive the ordinary [`Trainer`]: strength trains M reward models that differ only in
//! initialisation and batch order and reads their reward margins; CRM steps two trainers on the
//! pairs their peer finds clean.

use crate::runtime::kernels::AutodiffBackend;
use serde::Serialize;

use crate::reward::data::PairDataset;
use crate::reward::train::{RunConfig, Trainer};
use crate::{Result, config_error};

/// Preference strength of one pair: mean and standard deviation over the ensemble of the
/// reward margin d_m = r_m(chosen) − r_m(rejected).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Strength {
    pub mean: f64,
    pub std: f64,
}

async fn train_to_end<B: AutodiffBackend>(trainer: &mut Trainer<B>) -> Result<()> {
    while !trainer.is_done() {
        trainer.step().await?;
    }
    Ok(())
}

/// Train `members` models on `dataset` (seeds `config.seed + 1 …`, so each sees its own
/// initialisation and batch order) and return the strength of each pair in `pairs`.
pub async fn ensemble_strength<B: AutodiffBackend>(config: &RunConfig, dataset: &PairDataset, members: usize, pairs: &[usize], device: &B::Device) -> Result<Vec<Strength>> {
    if members < 2 {
        return Err(config_error("noise.members", "an ensemble needs at least 2 models"));
    }
    let mut margins = vec![];
    for m in 0..members {
        let mut cfg = config.clone();
        cfg.seed = config.seed.wrapping_add(1 + m as u64);
        let mut trainer = Trainer::<B>::with_dataset(cfg, dataset.clone(), device)?;
        train_to_end(&mut trainer).await?;
        margins.push(trainer.pair_logits(pairs).await?);
    }
    Ok((0..pairs.len())
        .map(|p| {
            let d: Vec<f64> = margins.iter().map(|m| m[p] as f64).collect();
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (d.len() - 1) as f64;
            Strength { mean, std: var.sqrt() }
        })
        .collect())
}

/// Positions (into `strengths`) of the `fraction` of pairs with the lowest mean strength: the
/// pairs the ensemble most disagrees with, Secrets of RLHF II's candidates for flipping.
pub fn weakest(strengths: &[Strength], fraction: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..strengths.len()).collect();
    order.sort_by(|&a, &b| strengths[a].mean.total_cmp(&strengths[b].mean));
    order.truncate((strengths.len() as f64 * fraction).round() as usize);
    order.sort_unstable();
    order
}

/// Precision and recall of a set of flagged pairs against the known flips.
pub fn precision_recall(flagged: &[usize], flipped: &[bool]) -> (f64, f64) {
    let hits = flagged.iter().filter(|&&p| flipped[p]).count() as f64;
    let positives = flipped.iter().filter(|&&f| f).count() as f64;
    (hits / (flagged.len() as f64).max(1.0), hits / positives.max(1.0))
}

/// A copy of `dataset` with the given pairs' labels swapped.
pub fn flip_pairs(dataset: &PairDataset, pairs: &[usize]) -> PairDataset {
    let mut ds = dataset.clone();
    for &p in pairs {
        let (c, r) = ds.pairs[p];
        ds.pairs[p] = (r, c);
        if let Some(f) = ds.flipped.get_mut(p) {
            *f = !*f;
        }
    }
    ds
}

/// Collaborative reward modelling, in our reading of the paper's summary (selection rule and
/// schedule unverified): two peers see the same minibatch; each is updated only on the pairs its
/// *peer* finds easiest (smallest loss −log σ(ℓ), i.e. largest logit), and the share dropped grows
/// linearly from 0 to `drop_rate` over the first `ramp` fraction of the run (a curriculum from
/// easy to hard, as co-teaching does).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CrmConfig {
    /// Final fraction of each minibatch left out (set it near the expected noise rate).
    pub drop_rate: f64,
    /// Fraction of the run over which the drop rate ramps up.
    pub ramp: f64,
}

impl Default for CrmConfig {
    fn default() -> Self {
        Self { drop_rate: 0.3, ramp: 0.3 }
    }
}

/// Train two peers with CRM; returns both trainers (trained to `config.train.steps`).
pub async fn crm<B: AutodiffBackend>(config: &RunConfig, dataset: &PairDataset, crm: CrmConfig, device: &B::Device) -> Result<(Trainer<B>, Trainer<B>)> {
    if !(0.0..1.0).contains(&crm.drop_rate) {
        return Err(config_error("crm.drop_rate", "must be in [0, 1)"));
    }
    if !(crm.ramp > 0.0 && crm.ramp <= 1.0) {
        return Err(config_error("crm.ramp", "must be in (0, 1]"));
    }
    let mut peer_cfg = config.clone();
    peer_cfg.seed = config.seed.wrapping_add(1);
    let mut a = Trainer::<B>::with_dataset(config.clone(), dataset.clone(), device)?;
    let mut b = Trainer::<B>::with_dataset(peer_cfg, dataset.clone(), device)?;
    let ramp_steps = (config.train.steps as f64 * crm.ramp).max(1.0);
    while !a.is_done() {
        let idx = a.next_batch();
        let rate = crm.drop_rate * (a.steps_done() as f64 / ramp_steps).min(1.0);
        let keep = ((1.0 - rate) * idx.len() as f64).ceil().max(1.0) as usize;
        let easiest = |logits: &[f32]| {
            let mut order: Vec<usize> = (0..idx.len()).collect();
            order.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]));
            order[..keep].iter().map(|&i| idx[i]).collect::<Vec<_>>()
        };
        let (for_a, for_b) = (easiest(&b.pair_logits(&idx).await?), easiest(&a.pair_logits(&idx).await?));
        a.step_on(&for_a).await?;
        b.step_on(&for_b).await?;
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::seeds::{CLAIM_SEEDS, assert_on_every_seed, assert_on_fraction};
    use crate::{ModelKind, ScenarioKind};
    use burn::backend::{Autodiff, Flex};

    type B = Autodiff<Flex>;

    fn plain(cfg: &RunConfig, ds: &PairDataset) -> f32 {
        let mut t = Trainer::<B>::with_dataset(cfg.clone(), ds.clone(), &Default::default()).unwrap();
        pollster::block_on(train_to_end(&mut t)).unwrap();
        pollster::block_on(t.evaluate()).unwrap().accuracy
    }

    #[test]
    fn claim_strength_flags_flipped_pairs_and_crm_trains_around_them() {
        let one_seed = |seed: u64| {
            let mut cfg = RunConfig::new(ScenarioKind::Noisy, ModelKind::Bt);
            cfg.seed = seed;
            let ds = cfg.scenario.build(cfg.seed).unwrap();
            let flips = ds.train.iter().filter(|&&p| ds.flipped[p]).count() as f64 / ds.train.len() as f64;
            assert!((flips - 0.3).abs() < 0.02, "seed {seed}: the scenario flips 30 % of training labels: {flips}");
            let bt = plain(&cfg, &ds);

            // Secrets of RLHF II: strength from 4 models; flag the weakest 30 %, flip them, retrain.
            let dev = Default::default();
            let strengths = pollster::block_on(ensemble_strength::<B>(&cfg, &ds, 4, &ds.train, &dev)).unwrap();
            let flagged: Vec<usize> = weakest(&strengths, 0.3).into_iter().map(|i| ds.train[i]).collect();
            let (precision, recall) = precision_recall(&flagged, &ds.flipped);
            let cleaned = plain(&cfg, &flip_pairs(&ds, &flagged));

            let (a, _) = pollster::block_on(crm::<B>(&cfg, &ds, CrmConfig::default(), &dev)).unwrap();
            let crm_acc = pollster::block_on(a.evaluate()).unwrap().accuracy;
            (bt, precision, recall, cleaned, crm_acc)
        };
        // Clean held-out accuracy with 30 % of training labels flipped: on every seed the ensemble
        // flags most flips.
        let figures = assert_on_every_seed(
            "noisy: (plain BT, flag precision, flag recall, retrained after flipping, CRM); precision and recall ≥ 0.75",
            CLAIM_SEEDS,
            one_seed,
            |&(_, precision, recall, _, _)| precision >= 0.75 && recall >= 0.75,
        );
        // Both remedies beat plain BT on most seeds, not all: plain BT is already robust to
        // symmetric flips, and the wrongly flagged pairs (15–20 %) are near ties, where a flip does
        // the most harm. (Retraining: 18 of 20 seeds when this was written; CRM: 19 of 20.)
        let seed_of = |s: u64| figures[s as usize];
        assert_on_fraction("noisy: retrained after flipping beats plain BT", CLAIM_SEEDS, 0.6, seed_of, |&(bt, _, _, cleaned, _)| cleaned > bt);
        assert_on_fraction("noisy: CRM beats plain BT", CLAIM_SEEDS, 0.6, seed_of, |&(bt, _, _, _, crm)| crm > bt);
        let mean_gain = |i: usize| figures.iter().map(|f| [f.3, f.4][i] - f.0).sum::<f32>() / figures.len() as f32;
        eprintln!("mean gain over plain BT: retrained {:.3}, CRM {:.3}", mean_gain(0), mean_gain(1));
        assert!(mean_gain(0) > 0.0 && mean_gain(1) > 0.02, "retrained {}, CRM {}", mean_gain(0), mean_gain(1));
    }

    #[test]
    fn flipping_and_scoring_helpers() {
        let s = [Strength { mean: 0.5, std: 0.1 }, Strength { mean: -2.0, std: 0.3 }, Strength { mean: 1.0, std: 0.2 }, Strength { mean: -0.1, std: 0.1 }];
        assert_eq!(weakest(&s, 0.5), vec![1, 3]);
        assert_eq!(precision_recall(&[1, 3], &[false, true, true, false]), (0.5, 0.5));
        let ds = PairDataset { dim: 1, items: vec![0.0, 1.0], pairs: vec![(0, 1), (1, 0)], flipped: vec![false, true], ..Default::default() };
        let f = flip_pairs(&ds, &[1]);
        assert_eq!(f.pairs, vec![(0, 1), (0, 1)]);
        assert_eq!(f.flipped, vec![false, false]);
    }
}
