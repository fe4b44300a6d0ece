//! `prefscope bench`: training throughput on the reference workloads of
//! `shared/design/workloads.md`, through the same `Trainer::step` users run.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::ValueEnum;
use prefscope_core::data::PairDataset;
use prefscope_core::rng::Rng;
use prefscope_core::{ModelConfig, ModelKind, RunConfig, ScenarioKind, Trainer};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// MLP reward head: 1024 → 4096 (GELU) → 1, Bradley–Terry loss, batch 8192 pairs.
    MlpBt,
    /// GPM head: 1024 → 4096 (GELU) → 2k (k = 4), unit-normalised, −log σ(s), batch 8192 pairs.
    GpmHead,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    /// Pairs per step (the reference shape uses 8192).
    #[arg(long, default_value_t = 8192)]
    batch: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first (kernel compilation, autotune, allocator warm-up).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

struct BenchJob {
    args: BenchArgs,
}

impl BackendJob for BenchJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let a = &self.args;
        let (dim, hidden) = (1024, 4096);
        let mut model = match a.workload {
            Workload::MlpBt => ModelConfig::new(ModelKind::Bt),
            Workload::GpmHead => {
                let mut m = ModelConfig::new(ModelKind::Gpm);
                m.k = 4;
                m.tau = 1.0;
                m
            }
        };
        model.hidden = vec![hidden];
        let mut cfg = RunConfig::new(ScenarioKind::Linear, model.kind);
        cfg.model = model;
        cfg.train.lr = 1e-4;
        cfg.train.batch = a.batch;
        cfg.train.steps = a.warmup + a.steps;
        cfg.train.eval_every = usize::MAX;
        // Random (never zero) embeddings: one chosen and one rejected item per pair.
        let mut rng = Rng::stream(0, "bench");
        let n_items = 2 * a.batch;
        let dataset = PairDataset {
            dim,
            items: (0..n_items * dim).map(|_| rng.normal() as f32).collect(),
            pairs: (0..a.batch).map(|i| (2 * i, 2 * i + 1)).collect(),
            train: (0..a.batch).collect(),
            item_labels: vec![String::new(); n_items],
            ..Default::default()
        };
        let mut trainer = Trainer::<B>::with_dataset(cfg, dataset, &device)?;
        let bar = crate::step_bar(a.warmup + a.steps);
        let mut times = vec![];
        for i in 0..a.warmup + a.steps {
            bar.set_message(if i < a.warmup { "warm-up" } else { "timed" });
            let t = Instant::now();
            // step() reads the loss back, which synchronises the device: the time is real.
            pollster::block_on(trainer.step())?;
            if i >= a.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let params: usize = trainer.model().shapes().iter().map(|s| s.iter().product::<usize>()).sum();
        // Forward + backward ≈ 3 × 2 × params FLOPs per sequence, two sequences per pair.
        let flops = 6.0 * params as f64 * 2.0 * a.batch as f64;
        Ok(json!({
            "workload": match a.workload { Workload::MlpBt => "mlp-bt", Workload::GpmHead => "gpm-head" },
            "backend": backend.name(),
            "precision": "f32",
            "batch": a.batch,
            "timed_steps": a.steps,
            "median_step_seconds": median,
            "pairs_per_second": a.batch as f64 / median,
            "tflops": flops / median / 1e12,
        }))
    }
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.batch == 0 {
        bail!("--steps and --batch must be at least 1");
    }
    let json = args.json;
    let out = dispatch(args.backend.backend, BenchJob { args })?;
    if json {
        println!("{out}");
    } else {
        println!(
            "{} on {} ({}): {:.0} pairs/s, median step {:.1} ms, {:.3} TFLOP/s (batch {})",
            out["workload"].as_str().unwrap_or(""),
            out["backend"].as_str().unwrap_or(""),
            out["precision"].as_str().unwrap_or(""),
            out["pairs_per_second"].as_f64().unwrap_or(0.0),
            out["median_step_seconds"].as_f64().unwrap_or(0.0) * 1e3,
            out["tflops"].as_f64().unwrap_or(0.0),
            out["batch"]
        );
    }
    Ok(())
}
