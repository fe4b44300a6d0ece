//! `prefscope bench`: training throughput on the reference workloads of
//! `bench/README.md`, through the same `Trainer::step` users run.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::ElementConversion;
use prefscope_core::AutodiffBackend;
use clap::ValueEnum;
use prefscope_core::reward::data::PairDataset;
use prefscope_core::runtime::rng::Rng;
use prefscope_core::{ModelConfig, ModelKind, RunConfig, ScenarioKind, Trainer};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, PrecisionArg, dispatch_precision};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// MLP reward head: 1024 → 4096 (GELU) → 1, Bradley–Terry loss, batch 8192 pairs.
    MlpBt,
    /// GPM head: 1024 → 4096 (GELU) → 2k (k = 4), unit-normalised, −log σ(s), batch 8192 pairs.
    GpmHead,
    /// Causal transformer RM: vocab 8192, d 512, 6 layers, 8 heads, FFN 2048, seq 256, batch 32 pairs.
    TfmRm,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::MlpBt => "mlp-bt",
            Self::GpmHead => "gpm-head",
            Self::TfmRm => "tfm-rm",
        }
    }

    fn default_batch(self) -> usize {
        match self {
            Self::MlpBt | Self::GpmHead => 8192,
            Self::TfmRm => 32,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The reference workload to time.
    #[arg(long, value_enum)]
    workload: Workload,
    /// Pairs per step (default: the reference shape's, 8192 for the heads and 32 for tfm-rm).
    #[arg(long)]
    batch: Option<usize>,
    /// Number type: f32; f16 or bf16 for the whole model (weights and activations); or
    /// bf16-mixed / f16-mixed: half-precision compute over f32 master weights and AdamW moments
    /// (f16 with dynamic loss scaling), as PyTorch's autocast trains. Half types need a GPU backend.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
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
        let batch = a.batch.unwrap_or(a.workload.default_batch());
        let (median, flops_per_pair) = match a.workload {
            Workload::TfmRm => time_tfm::<B>(a, batch, &device)?,
            _ => time_head::<B>(a, batch, &device)?,
        };
        Ok(json!({
            "workload": a.workload.name(),
            "backend": backend.name(),
            "backend_detail": backend.describe(),
            "threads": backend.threads(),
            "precision": a.precision.name(),
            "batch": batch,
            "timed_steps": a.steps,
            "median_step_seconds": median,
            "pairs_per_second": batch as f64 / median,
            "tflops": flops_per_pair * batch as f64 / median / 1e12,
        }))
    }
}

/// Median step time of a transformer RM step (BT loss, AdamW 1e-4) on random tokens, and the
/// FLOPs per pair.
fn time_tfm<B: AutodiffBackend>(a: &BenchArgs, batch: usize, device: &B::Device) -> Result<(f64, f64)> {
    use burn::optim::{AdamWConfig, Optimizer};
    use prefscope_core::text::transformer::{TfmRmConfig, TokenBatch};
    use prefscope_core::runtime::precision::{self, Autocast, LossScaler};
    let cfg = TfmRmConfig::workload();
    let mut model = cfg.init::<B>(0, device);
    let mut optim = AdamWConfig::new().init();
    let mixed = a.precision.mixed();
    let autocast = Autocast::new::<B>(mixed, device)?;
    let mut scaler = mixed.loss_scaling().then(LossScaler::default);
    let mut rng = Rng::stream(0, "bench");
    // Full-length random sequences (no padding): every position does work.
    let rows: Vec<Vec<u32>> = (0..2 * batch).map(|_| (0..cfg.max_len).map(|_| rng.below(cfg.vocab) as u32).collect()).collect();
    let tokens = TokenBatch::new(&rows, 0);
    let times = timed(a, || {
        // The same step as `TextTrainer::step`: forward on the (cast) copy, loss in f32.
        let logits = autocast.up(autocast.module(&model).pair_logits(&tokens, &cfg, device));
        let loss = prefscope_core::reward::loss::pairwise_logistic_loss(logits);
        // Reading the loss back synchronises the device: the time is real.
        let value: f32 = loss.clone().into_scalar().elem();
        let (grads, overflow_check) = precision::backward(scaler.as_ref(), loss, &model);
        let apply = precision::step_allowed(scaler.as_mut(), overflow_check);
        if apply {
            model = optim.step(1e-4, model.clone(), grads);
        }
        // And so does reading one updated weight: the optimiser step is inside the time.
        let _: f32 = model.head.weight.val().slice([0..1, 0..1]).into_scalar().elem();
        if value.is_finite() { Ok(()) } else { bail!("non-finite loss {value}") }
    })?;
    Ok((times, cfg.flops_per_pair()))
}

/// Time `warmup + steps` calls of `step` and return the median of the timed ones.
fn timed(a: &BenchArgs, mut step: impl FnMut() -> Result<()>) -> Result<f64> {
    let bar = crate::step_bar(a.warmup + a.steps);
    let mut times = vec![];
    for i in 0..a.warmup + a.steps {
        bar.set_message(if i < a.warmup { "warm-up" } else { "timed" });
        let t = Instant::now();
        step()?;
        if i >= a.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Median step time of a reward head through `Trainer::step`, and the FLOPs per pair.
fn time_head<B: AutodiffBackend>(a: &BenchArgs, batch: usize, device: &B::Device) -> Result<(f64, f64)> {
        let (dim, hidden) = (1024, 4096);
        let mut model = match a.workload {
            Workload::MlpBt => ModelConfig::new(ModelKind::Bt),
            Workload::GpmHead => {
                let mut m = ModelConfig::new(ModelKind::Gpm);
                m.k = 4;
                m.tau = 1.0;
                // The workload's shape (and bench/torch_cpu.py's): unit-normalised embeddings.
                m.normalize = true;
                m
            }
            Workload::TfmRm => unreachable!("timed by time_tfm"),
        };
        model.hidden = vec![hidden];
        let mut cfg = RunConfig::new(ScenarioKind::Linear, model.kind);
        cfg.model = model;
        cfg.train.lr = 1e-4;
        cfg.train.batch = batch;
        cfg.train.steps = a.warmup + a.steps;
        cfg.train.eval_every = usize::MAX;
        cfg.train.precision = a.precision.mixed();
        // Random (never zero) embeddings: one chosen and one rejected item per pair.
        let mut rng = Rng::stream(0, "bench");
        let n_items = 2 * batch;
        let dataset = PairDataset {
            dim,
            items: (0..n_items * dim).map(|_| rng.normal() as f32).collect(),
            pairs: (0..batch).map(|i| (2 * i, 2 * i + 1)).collect(),
            train: (0..batch).collect(),
            item_labels: vec![String::new(); n_items],
            ..Default::default()
        };
        let mut trainer = Trainer::<B>::with_dataset(cfg, dataset, device)?;
        // step() reads the loss back, which synchronises the device: the time is real.
        let median = timed(a, || Ok(pollster::block_on(trainer.step()).map(|_| ())?))?;
        let params: usize = trainer.model().shapes().iter().map(|s| s.iter().product::<usize>()).sum();
        // Forward + backward ≈ 3 × 2 × params FLOPs per sequence, two sequences per pair.
        Ok((median, 6.0 * params as f64 * 2.0))
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.batch == Some(0) {
        bail!("--steps and --batch must be at least 1");
    }
    let json = args.json;
    let out = dispatch_precision(args.backend.backend, args.precision, BenchJob { args })?;
    if json {
        println!("{out}");
    } else {
        println!(
            "{} on {} ({}): {:.0} pairs/s, median step {:.1} ms, {:.3} TFLOP/s (batch {})",
            out["workload"].as_str().unwrap_or(""),
            out["backend_detail"].as_str().unwrap_or(""),
            out["precision"].as_str().unwrap_or(""),
            out["pairs_per_second"].as_f64().unwrap_or(0.0),
            out["median_step_seconds"].as_f64().unwrap_or(0.0) * 1e3,
            out["tflops"].as_f64().unwrap_or(0.0),
            out["batch"]
        );
    }
    Ok(())
}
