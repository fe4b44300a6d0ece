//! `prefscope train` and `prefscope eval`: run folders around the core's training loop.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use prefscope_core::train::{evaluate, load_model};
use prefscope_core::{ModelKind, RunConfig, ScenarioKind, Trainer};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Scenario: linear, cyclic, cyclic-abcd, multi-objective, mixture, few-shot-users, rankings,
    /// noisy (overrides the config file).
    #[arg(long)]
    scenario: Option<String>,
    /// Model: bt, gpm, multi-objective, mixture, vpl (overrides the config file).
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    steps: Option<usize>,
    /// Pairs per minibatch.
    #[arg(long)]
    batch: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// A TOML run config (as written to a run folder's config.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder (default: runs/<scenario>-<model>-seed<seed>, numbered if taken).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a checkpoint already in --out.
    #[arg(long)]
    overwrite: bool,
    /// Print one JSON summary object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A run folder written by `prefscope train`.
    #[arg(long)]
    run: PathBuf,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// The config a train command means: the file (or defaults), then the flags on top.
fn resolve_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
            RunConfig::from_toml(&path.display().to_string(), &text)?
        }
        None => {
            let scenario = ScenarioKind::parse(args.scenario.as_deref().unwrap_or("cyclic"))?;
            let model = ModelKind::parse(args.model.as_deref().unwrap_or("gpm"))?;
            RunConfig::new(scenario, model)
        }
    };
    if let Some(s) = &args.scenario {
        cfg.scenario.kind = ScenarioKind::parse(s)?;
    }
    if let Some(m) = &args.model {
        cfg.model.kind = ModelKind::parse(m)?;
    }
    if let Some(v) = args.steps {
        cfg.train.steps = v;
    }
    if let Some(v) = args.batch {
        cfg.train.batch = v;
    }
    if let Some(v) = args.lr {
        cfg.train.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Write a file so that a reader sees the old or the new content, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    {
        let mut f = fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

fn prepare_run_dir(args: &TrainArgs, cfg: &RunConfig) -> Result<PathBuf> {
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => crate::default_run_dir(&format!("{}-{}-seed{}", cfg.scenario.kind.name(), cfg.model.kind.name(), cfg.seed)),
    };
    if dir.join("model.mpk").exists() && !args.overwrite {
        bail!("{} already holds a trained model; choose another --out or pass --overwrite", dir.display());
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create run folder {}", dir.display()))?;
    Ok(dir)
}

struct TrainJob {
    cfg: RunConfig,
    dir: PathBuf,
    json: bool,
}

impl BackendJob for TrainJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let TrainJob { cfg, dir, json } = self;
        let mut trainer = Trainer::<B>::new(cfg.clone(), &device)?;
        write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        let mut metrics = std::io::BufWriter::new(fs::File::create(dir.join("metrics.jsonl"))?);

        let bar = crate::step_bar(cfg.train.steps);
        if !json {
            println!(
                "training {} on {} ({} train / {} eval pairs, {} items) on {}",
                cfg.model.kind.name(),
                cfg.scenario.kind.name(),
                trainer.dataset.train.len(),
                trainer.dataset.eval.len(),
                trainer.dataset.n_items(),
                backend.name()
            );
        }
        let start = Instant::now();
        let mut last = None;
        while !trainer.is_done() {
            let m = pollster::block_on(trainer.step())?;
            serde_json::to_writer(&mut metrics, &m)?;
            metrics.write_all(b"\n")?;
            bar.set_position(m.step as u64);
            bar.set_message(format!("loss {:.4}", m.loss));
            if let Some(e) = &m.eval {
                let line = format!("step {:>5}  loss {:.4}  train acc {:.3}  eval acc {:.4}  eval loss {:.4}", m.step, m.loss, m.train_accuracy, e.accuracy, e.loss);
                // Keep stdout for the JSON summary; a hidden bar (no terminal) would swallow println.
                match (json, bar.is_hidden()) {
                    (true, _) => bar.suspend(|| eprintln!("{line}")),
                    (false, true) => println!("{line}"),
                    (false, false) => bar.println(line),
                }
            }
            last = Some(m);
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        metrics.flush()?;
        write_atomic(&dir.join("model.mpk"), &trainer.model_bytes()?)?;

        let last = last.expect("at least one step");
        let eval = last.eval.expect("the last step evaluates");
        let summary = json!({
            "eval_accuracy": eval.accuracy,
            "eval_loss": eval.loss,
            "eval_probability": eval.probability,
            "eval_pairs": eval.n,
            "final_loss": last.loss,
            "steps": last.step,
            "backend": backend.name(),
            "seconds": seconds,
            "pairs_per_second": (last.step * cfg.train.batch.min(trainer.dataset.train.len())) as f64 / seconds,
            "scenario": cfg.scenario.kind.name(),
            "model": cfg.model.kind.name(),
            "seed": cfg.seed,
            "run": dir.display().to_string(),
        });
        write_atomic(&dir.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
        Ok(summary)
    }
}

pub fn train(args: TrainArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    let dir = prepare_run_dir(&args, &cfg)?;
    let summary = dispatch(args.backend.backend, TrainJob { cfg, dir: dir.clone(), json: args.json })?;
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "done in {:.2}s: eval accuracy {:.4}, final loss {:.4}; run folder {}",
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["eval_accuracy"].as_f64().unwrap_or(f64::NAN),
            summary["final_loss"].as_f64().unwrap_or(f64::NAN),
            dir.display()
        );
    }
    Ok(())
}

struct EvalJob {
    cfg: RunConfig,
    weights: Vec<u8>,
}

impl BackendJob for EvalJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let dataset = self.cfg.scenario.build(self.cfg.seed)?;
        let model = load_model::<B>(&self.cfg, &dataset, self.weights, &device)?.valid();
        let e = pollster::block_on(evaluate(&model, &dataset, &dataset.eval, &device))?;
        Ok(json!({
            "accuracy": e.accuracy,
            "eval_accuracy": e.accuracy,
            "loss": e.loss,
            "probability": e.probability,
            "n": e.n,
            "backend": backend.name(),
        }))
    }
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let cfg_path = args.run.join("config.toml");
    let text = fs::read_to_string(&cfg_path).with_context(|| format!("{} is not a run folder (no config.toml)", args.run.display()))?;
    let cfg = RunConfig::from_toml(&cfg_path.display().to_string(), &text)?;
    let weights_path = args.run.join("model.mpk");
    let weights = fs::read(&weights_path).with_context(|| format!("cannot read checkpoint {}", weights_path.display()))?;
    let out = dispatch(args.backend.backend, EvalJob { cfg, weights })?;
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{}: eval accuracy {:.4}, loss {:.4}, mean P(chosen ≻ rejected) {:.4} over {} pairs",
            args.run.display(),
            out["accuracy"].as_f64().unwrap_or(f64::NAN),
            out["loss"].as_f64().unwrap_or(f64::NAN),
            out["probability"].as_f64().unwrap_or(f64::NAN),
            out["n"]
        );
    }
    Ok(())
}
