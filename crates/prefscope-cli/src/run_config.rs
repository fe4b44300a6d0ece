//! The `train` and `eval` arguments, and the run config they resolve to (TOML file, flags).
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prefscope_core::{ModelKind, RunConfig, ScenarioKind};

use crate::BackendArgs;


#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Scenario (overrides the config file); the book's configuration reference describes each.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(prefscope_core::ScenarioKind::ALL.map(prefscope_core::ScenarioKind::name)))]
    pub(crate) scenario: Option<String>,
    /// Model (overrides the config file); with --data, tfm-rm (the default: a transformer reward
    /// model trained from scratch).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(prefscope_core::ModelKind::ALL.map(prefscope_core::ModelKind::name).into_iter().chain(["tfm-rm"])))]
    pub(crate) model: Option<String>,
    /// Optimiser steps (overrides the config file).
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Pairs per minibatch.
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Seed of the data, the split, the model's start and the batch order (overrides the config file).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Train the same config on many seeds (`0..19` = seeds 0 to 19, `0..4,9`), one run folder
    /// per seed under --out, with one progress bar; prints the per-seed table and the spread.
    /// Run it again to resume: finished seeds are read back and interrupted ones continue.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["seed", "resume"])]
    pub(crate) seeds: Option<String>,
    /// full, or bf16-mixed / f16-mixed: half-precision compute over f32 master weights and
    /// AdamW moments (f16 with dynamic loss scaling), on the CPU backend and CUDA; wgpu has f16 only.
    /// Sets `train.precision`.
    #[arg(long, value_parser = parse_precision)]
    pub(crate) precision: Option<prefscope_core::runtime::precision::Precision>,
    /// A TOML run config (as written to a run folder's config.toml); flags override it.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Run folder (default: runs/<scenario>-<model>-seed<seed>, numbered if taken).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Replace a checkpoint already in --out.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Continue a run folder whose training was interrupted (its config.toml is used; other
    /// settings flags are refused).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["scenario", "model", "steps", "batch", "lr", "seed", "precision", "config", "out", "overwrite", "data", "embeddings", "head", "preset", "max_len", "tokenizer"])]
    pub(crate) resume: Option<PathBuf>,
    /// Data-parallel training over this many devices of the backend (e.g. GPUs 0..N with
    /// --backend cuda): each step's batch is split across them and the gradients are summed by
    /// burn's multi-device optimiser step. Scenario and embedding runs.
    #[arg(long, default_value_t = 1)]
    pub(crate) devices: usize,
    /// Save the resumable run state (and model.safetensors) every N steps; 0 = only at the end.
    #[arg(long, default_value_t = 100)]
    pub(crate) checkpoint_every: usize,
    /// Train a head (bt, gpm, multi-objective, mixture) on a pair-embedding file written by
    /// `prefscope embed`.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub(crate) embeddings: Option<PathBuf>,
    /// Train on a pair file (.jsonl or .jsonl.gz: TRL standard or conversational, or hh-rlhf).
    #[arg(long, value_name = "FILE")]
    pub(crate) data: Option<PathBuf>,
    /// Format of --data: auto (per line), standard, conversational, hh-rlhf.
    #[arg(long, default_value = "auto")]
    pub(crate) format: String,
    /// What a malformed line of --data does: stop (with file:line: field: message) or skip
    /// (counted and reported).
    #[arg(long, default_value = "stop")]
    pub(crate) on_error: String,
    /// tfm-rm: preference head, bt or gpm.
    #[arg(long)]
    pub(crate) head: Option<String>,
    /// tfm-rm: model shape, small (default) or tfm-rm (the benchmark shape: d 512, 6 layers).
    #[arg(long)]
    pub(crate) preset: Option<String>,
    /// tfm-rm: longest sequence in tokens (the prompt is cut from the left).
    #[arg(long)]
    pub(crate) max_len: Option<usize>,
    /// tfm-rm: a tokenizer.json to use instead of training a BPE on the training split.
    #[arg(long, value_name = "FILE")]
    pub(crate) tokenizer: Option<PathBuf>,
    /// Print one JSON summary object as the last stdout line.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) nodes: crate::nodes::NodeArgs,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A run folder written by `prefscope train` (or `align --policy lm`), or its checkpoint file.
    #[command(flatten)]
    pub(crate) run: RunPath,
    /// Score the model on this pair file (default: the run's own held-out pairs). When it is the
    /// run's training file, only its held-out lines are scored.
    #[arg(long, value_name = "FILE")]
    pub(crate) data: Option<PathBuf>,
    /// Format of --data: auto, standard, conversational, hh-rlhf.
    #[arg(long, default_value = "auto")]
    pub(crate) format: String,
    /// What a malformed line of --data does: stop or skip.
    #[arg(long, default_value = "stop")]
    pub(crate) on_error: String,
    /// Score --data as this benchmark does. `rewardbench2`: each line is a prompt with several
    /// responses (`chosen` and `rejected` lists, a `subset`, an `id`), scored best-of-n per
    /// subset, Ties by its own formula, subsets averaged unweighted. A tiny-LM policy run
    /// (`align --policy lm`) is scored by its implicit reward β (log π − log π_ref).
    #[arg(long, value_enum, requires = "data")]
    pub(crate) benchmark: Option<Benchmark>,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// A benchmark layout and scoring for `eval --data` (RewardBench v1's sections need no flag:
/// they are scored whenever the pairs name a `subset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Benchmark {
    Rewardbench2,
}

/// The run folder a command reads: the positional RUN, or `--run` (a hidden alias kept for one
/// release from before RUN was positional).
#[derive(clap::Args, Debug)]
pub(crate) struct RunPath {
    /// A run folder (or its model.safetensors).
    #[arg(value_name = "RUN", required_unless_present = "run_flag")]
    run: Option<PathBuf>,
    #[arg(long = "run", hide = true, conflicts_with = "run")]
    run_flag: Option<PathBuf>,
}

impl RunPath {
    pub(crate) fn get(&self) -> &Path {
        self.run.as_deref().or(self.run_flag.as_deref()).expect("clap requires RUN or --run")
    }
}

impl EvalArgs {
    /// The run folder, however it was given.
    pub(crate) fn run(&self) -> &Path {
        self.run.get()
    }
}

/// Where a config file's trailing `[sweep]` table starts (the grid `prefscope sweep` reads).
pub(crate) fn sweep_table_start(text: &str) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("[sweep]") || t.starts_with("[sweep.") {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// A config file's text for the run itself: a trailing `[sweep]` table is cut off, so every
/// other line keeps its number in error messages.
pub(crate) fn read_config_text(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
    Ok(match sweep_table_start(&text) {
        Some(i) => text[..i].to_string(),
        None => text,
    })
}

/// The config a train command means: the file (or defaults), then the flags on top.
pub(crate) fn resolve_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = match &args.config {
        Some(path) => RunConfig::from_toml(&path.display().to_string(), &read_config_text(path)?)?,
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
    override_train(args, &mut cfg.train, &mut cfg.seed);
    if let Some(e) = &args.embeddings {
        cfg.embeddings = Some(e.canonicalize().with_context(|| format!("cannot read {}", e.display()))?);
        // Without a config file, a multi-objective head gets one output per rated attribute.
        if args.config.is_none() && cfg.model.kind == ModelKind::MultiObjective {
            let k = cfg.dataset()?.n_objectives;
            if k > 0 {
                cfg.model.objectives = k;
            }
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The flags every run shares (`--steps --batch --lr --seed`), on top of a config.
pub fn override_train(args: &TrainArgs, train: &mut prefscope_core::TrainConfig, seed: &mut u64) {
    train.steps = args.steps.unwrap_or(train.steps);
    train.batch = args.batch.unwrap_or(train.batch);
    train.lr = args.lr.unwrap_or(train.lr);
    *seed = args.seed.unwrap_or(*seed);
    train.precision = args.precision.unwrap_or(train.precision);
}

/// " (bf16-mixed precision)" for the banner; nothing at full precision.
pub(crate) fn precision_note(p: prefscope_core::runtime::precision::Precision) -> String {
    if p == prefscope_core::runtime::precision::Precision::Full { String::new() } else { format!(" ({} precision)", p.name()) }
}

pub(crate) fn parse_precision(s: &str) -> Result<prefscope_core::runtime::precision::Precision, String> {
    use prefscope_core::runtime::precision::Precision;
    Precision::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
        let names: Vec<_> = Precision::ALL.iter().map(|p| p.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

pub(crate) fn read_run_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join("config.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("{} is not a run folder (no config.toml)", dir.display()))?;
    Ok(RunConfig::from_toml(&path.display().to_string(), &text)?)
}
