//! `prefscope denoise`: the noisy-label remedies side by side on one dataset.
//!
//! Trains plain Bradley–Terry, then (strength) an ensemble whose weakest pairs are flipped before
//! retraining, and (crm) two peers that keep each other's small-loss pairs; reports clean
//! held-out accuracy for each and, where the flips are known, how well they were found.

use anyhow::Result;
use prefscope_core::AutodiffBackend;
use prefscope_core::studies::noise::{CrmConfig, crm, ensemble_strength, flip_pairs, precision_recall, weakest};
use prefscope_core::{ModelKind, RunConfig, ScenarioKind, Trainer};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};

#[derive(clap::Args, Debug)]
pub struct DenoiseArgs {
    /// Scenario (`noisy` flips a known fraction of training labels).
    #[arg(long, default_value = "noisy")]
    scenario: String,
    /// Fraction of training labels the scenario flips.
    #[arg(long, default_value_t = 0.3)]
    flip: f64,
    /// Ensemble size for preference strength.
    #[arg(long, default_value_t = 4)]
    members: usize,
    /// Fraction of the weakest pairs to flip (default: --flip).
    #[arg(long)]
    flag: Option<f64>,
    /// CRM: final fraction of each minibatch left out.
    #[arg(long)]
    drop_rate: Option<f64>,
    /// Training steps of each model compared.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Seed of the data, the flips and the models' starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

struct DenoiseJob(DenoiseArgs, RunConfig);

impl BackendJob for DenoiseJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let DenoiseJob(a, cfg) = self;
        let ds = cfg.scenario.build(cfg.seed)?;
        let train_eval = |ds: &prefscope_core::PairDataset| -> Result<f32> {
            let mut t = Trainer::<B>::with_dataset(cfg.clone(), ds.clone(), &device)?;
            while !t.is_done() {
                pollster::block_on(t.step())?;
            }
            Ok(pollster::block_on(t.evaluate())?.accuracy)
        };
        let say = |line: String| {
            if !a.json {
                println!("{line}");
            }
        };
        let plain = train_eval(&ds)?;
        say(format!("plain Bradley–Terry          clean held-out accuracy {plain:.4}"));

        let strengths = pollster::block_on(ensemble_strength::<B>(&cfg, &ds, a.members, &ds.train, &device))?;
        let flag = a.flag.unwrap_or(a.flip);
        let flagged: Vec<usize> = weakest(&strengths, flag).into_iter().map(|i| ds.train[i]).collect();
        let detection = (!ds.flipped.is_empty()).then(|| precision_recall(&flagged, &ds.flipped));
        let cleaned = train_eval(&flip_pairs(&ds, &flagged))?;
        let found = detection.map(|(p, r)| format!(" (flags: precision {p:.3}, recall {r:.3})")).unwrap_or_default();
        say(format!("strength: flip weakest {:.0} %  clean held-out accuracy {cleaned:.4}{found}", flag * 100.0));

        let crm_cfg = CrmConfig { drop_rate: a.drop_rate.unwrap_or(a.flip), ..CrmConfig::default() };
        let (peer, _) = pollster::block_on(crm::<B>(&cfg, &ds, crm_cfg, &device))?;
        let crm_acc = pollster::block_on(peer.evaluate())?.accuracy;
        say(format!("CRM (two peers)              clean held-out accuracy {crm_acc:.4}"));
        Ok(json!({
            "scenario": cfg.scenario.kind.name(),
            "backend": backend.name(),
            "plain_accuracy": plain,
            "strength_accuracy": cleaned,
            "crm_accuracy": crm_acc,
            "flag_precision": detection.map(|d| d.0),
            "flag_recall": detection.map(|d| d.1),
            "flagged": flagged.len(),
            "eval_pairs": ds.eval.len(),
        }))
    }
}

pub fn denoise(args: DenoiseArgs) -> Result<()> {
    let mut cfg = RunConfig::new(ScenarioKind::parse(&args.scenario)?, ModelKind::Bt);
    cfg.scenario.flip = args.flip;
    cfg.train.steps = args.steps;
    cfg.seed = args.seed;
    cfg.validate()?;
    let json = args.json;
    let backend = args.backend.backend;
    let summary = dispatch(backend, DenoiseJob(args, cfg))?;
    if json {
        println!("{summary}");
    }
    Ok(())
}
