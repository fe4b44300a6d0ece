//! A feature-vector run (a scenario or an embedding file) on one device, several, or as one
//! rank of several processes.
use std::path::PathBuf;

use anyhow::Result;
use prefscope_core::AutodiffBackend;
use prefscope_core::{RunConfig, StepMetrics, Trainer};
use serde_json::json;

use crate::backend::{BackendJob, BackendKind};
use crate::nodes::Collective;
use crate::drive::{Drive, SharedBar, drive};
use prefscope_core::reward::train::RunLoop;
use crate::run_config::precision_note;
use crate::run_folder::finish_run;


pub(crate) struct TrainJob {
    pub(crate) cfg: RunConfig,
    pub(crate) dir: PathBuf,
    pub(crate) json: bool,
    pub(crate) resume: bool,
    pub(crate) checkpoint_every: usize,
    pub(crate) devices: usize,
    pub(crate) shared: Option<SharedBar>,
    /// This process's rank in a multi-process run (`--nodes`).
    pub(crate) collective: Option<Collective>,
}

/// A feature-vector trainer and where its steps run: on this process's devices (one or more), or
/// as one rank of a multi-process run.
pub(crate) struct DeviceSpread<B: AutodiffBackend> {
    trainer: Trainer<B>,
    over: Over<B>,
}

pub(crate) enum Over<B: AutodiffBackend> {
    Devices(Vec<B::Device>),
    Ranks(Collective),
}

impl<B: AutodiffBackend> RunLoop for DeviceSpread<B> {
    async fn step(&mut self) -> prefscope_core::Result<StepMetrics> {
        let DeviceSpread { trainer, over } = self;
        match over {
            Over::Devices(devices) => trainer.step_parallel(devices).await,
            Over::Ranks(collective) => {
                collective.step = trainer.steps_done() + 1;
                let (rank, ranks) = (collective.rank, collective.ranks);
                trainer.step_rank(rank, ranks, |g| collective.all_reduce(g).map_err(|e| prefscope_core::Error::Collective(format!("{e:#}")))).await
            }
        }
    }
    fn is_done(&self) -> bool {
        self.trainer.is_done()
    }
    fn steps_done(&self) -> usize {
        self.trainer.steps_done()
    }
    fn checkpoint_bytes(&self) -> prefscope_core::Result<Vec<u8>> {
        self.trainer.checkpoint_bytes()
    }
    fn resume_bytes(&self) -> prefscope_core::Result<Vec<u8>> {
        self.trainer.resume_bytes()
    }
    fn restore(&mut self, bytes: &[u8]) -> prefscope_core::Result<()> {
        self.trainer.restore(bytes)
    }
}

/// Devices 0..n of the backend of `first` (same device type, consecutive indices).
pub(crate) fn device_range<B: AutodiffBackend>(first: &B::Device, n: usize) -> Vec<B::Device> {
    use burn::tensor::backend::{Device, DeviceId, DeviceOps};
    let id = first.id();
    (0..n).map(|i| <B::Device as Device>::from_id(DeviceId { type_id: id.type_id, index_id: id.index_id + i as u16 })).collect()
}

impl BackendJob for TrainJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let TrainJob { cfg, dir, json, resume, checkpoint_every, devices, shared, collective } = self;
        let trainer = Trainer::<B>::new(cfg.clone(), &device)?;
        let mut collective = collective;
        if let Some(c) = collective.as_mut() {
            c.check_peers::<B::InnerBackend>(&cfg.to_toml(), &device)?;
        }
        let nodes = collective.as_ref().map_or(1, |c| c.ranks);
        if let Some(c) = collective.take_if(|c| c.rank != 0) {
            let (rank, ranks) = (c.rank, c.ranks);
            let total_steps = trainer.config.train.steps;
            let mut run = DeviceSpread { trainer, over: Over::Ranks(c) };
            let d = Drive { dir: &dir, config_toml: String::new(), total_steps, json, resume, checkpoint_every, shared: None, follower: Some(rank) };
            let (last, seconds) = drive(&mut run, d, || {})?;
            return Ok(json!({ "rank": rank, "nodes": ranks, "steps": last.step, "final_loss": last.loss, "seconds": seconds }));
        }
        let data = cfg.embeddings.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| cfg.scenario.kind.name().to_string());
        let banner = format!(
            "training {} on {} ({} train / {} eval pairs, {} items) on {}{}{}{}",
            cfg.model.kind.name(),
            data,
            trainer.dataset.train.len(),
            trainer.dataset.eval.len(),
            trainer.dataset.n_items(),
            backend.describe(),
            precision_note(cfg.train.precision),
            if devices > 1 { format!(" × {devices} devices (data-parallel)") } else { String::new() },
            if nodes > 1 { format!(" × {nodes} processes (rank 0 of {nodes}, data-parallel over burn-collective)") } else { String::new() }
        );
        let d = Drive { dir: &dir, config_toml: cfg.to_toml(), total_steps: trainer.config.train.steps, json, resume, checkpoint_every, shared, follower: None };
        let over = match collective {
            Some(collective) => Over::Ranks(collective),
            None => Over::Devices(device_range::<B>(&device, devices)),
        };
        let mut run = DeviceSpread { trainer, over };
        let (last, seconds) = drive(&mut run, d, || println!("{banner}"))?;
        let trainer = run.trainer;
        let eval = last.eval.expect("the last step evaluates");
        let test_sets: serde_json::Map<String, serde_json::Value> = pollster::block_on(trainer.evaluate_test_sets())?.into_iter().map(|(name, m)| (name, serde_json::to_value(m).expect("metrics serialise"))).collect();
        let mut summary = json!({
            "eval_accuracy": eval.accuracy,
            "eval_loss": eval.loss,
            "eval_probability": eval.probability,
            "eval_pairs": eval.n,
            "final_loss": last.loss,
            "test_sets": test_sets,
            "steps": last.step,
            "backend": backend.name(),
            "threads": backend.threads(),
            "precision": cfg.train.precision.name(),
            "devices": devices,
            "nodes": nodes,
            "seconds": seconds,
            "pairs_per_second": (last.step * cfg.train.batch.min(trainer.dataset.train.len())) as f64 / seconds,
            "scenario": cfg.scenario.kind.name(),
            "embeddings": cfg.embeddings.as_ref().map(|p| p.display().to_string()),
            "model": cfg.model.kind.name(),
            "seed": cfg.seed,
            "run": dir.display().to_string(),
        });
        if let Some(weight) = pollster::block_on(prefscope_core::studies::scaling::subjective_length_weight(&trainer))? {
            // Style control (worldpm): how much the model's own preference leans on length (0 = neutral).
            summary["subjective_length_weight"] = json!(weight);
        }
        if let Some(step) = trainer.best_step() {
            // `train.keep_best`: the weights (and every figure above but final_loss) are this step's.
            summary["best_step"] = json!(step);
        }
        finish_run(&dir, &summary)?;
        Ok(summary)
    }
}
