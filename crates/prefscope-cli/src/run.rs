//! `prefscope train` and `prefscope eval`: run folders around the core's training loop.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::checkpoint::{check_fits, load_preference_model, read_metadata};
use prefscope_core::reward::embeddings::{ENCODER_KEY, SOURCE_KEY, read_pair_embeddings};
use prefscope_core::reward::metrics::{EvalReport, PairScore, evaluate_scores};
use prefscope_core::text::minilm;
use prefscope_core::text::pairs::{OnError, PairReader, TextFormat, TextPair};
use prefscope_core::reward::data::is_held_out;
use prefscope_core::text::trainer::same_file;
use prefscope_core::reward::train::{evaluate, pair_logits};
use prefscope_core::{ModelKind, PairDataset, RunConfig, ScenarioKind, StepMetrics, Trainer};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::nodes::Collective;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Scenario: linear, cyclic, cyclic-abcd, multi-objective, mixture, few-shot-users, rankings,
    /// noisy (overrides the config file).
    #[arg(long)]
    pub(crate) scenario: Option<String>,
    /// Model: bt, gpm, multi-objective, mixture, vpl (overrides the config file); with --data,
    /// tfm-rm (the default: a transformer reward model trained from scratch).
    #[arg(long)]
    pub(crate) model: Option<String>,
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Pairs per minibatch.
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Train the same config on many seeds (`0..19` = seeds 0 to 19, `0..4,9`), one run folder
    /// per seed under --out, with one progress bar; prints the per-seed table and the spread.
    /// Run it again to resume: finished seeds are read back and interrupted ones continue.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["seed", "resume"])]
    pub(crate) seeds: Option<String>,
    /// full, or bf16-mixed / f16-mixed: half-precision compute over f32 master weights and
    /// AdamW moments (f16 with dynamic loss scaling); needs --backend cuda (or wgpu for f16).
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
    /// A run folder written by `prefscope train`, or a model.safetensors checkpoint file.
    #[arg(long)]
    pub(crate) run: PathBuf,
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
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
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

fn parse_precision(s: &str) -> Result<prefscope_core::runtime::precision::Precision, String> {
    use prefscope_core::runtime::precision::Precision;
    Precision::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
        let names: Vec<_> = Precision::ALL.iter().map(|p| p.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// Write a file so that a reader sees the old or the new content, never a torn one. On failure
/// (a full disk, say) the old file is untouched and the partial copy is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        let kept = if path.exists() { "keeps its previous content" } else { "was not created" };
        return Err(e).with_context(|| format!("cannot write {} ({} bytes); {} {kept}", tmp.display(), bytes.len(), path.display()));
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

/// Publish a finished run: its summary first, then drop the resume state. A kill between the
/// final weights and the summary then still resumes (replaying the last steps to the same bytes)
/// rather than leaving a folder with weights and no summary.
pub fn finish_run(dir: &Path, summary: &serde_json::Value) -> Result<()> {
    write_atomic(&dir.join("summary.json"), serde_json::to_string_pretty(summary)?.as_bytes())?;
    let _ = fs::remove_file(dir.join(RESUME_FILE));
    // Partial copies left by writes that a kill interrupted (their targets were never replaced).
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Whether `--resume DIR` restores a saved state (true) or starts the run again (false): a run
/// killed before its first checkpoint saved nothing, so it starts over, and says so. A folder with
/// weights but no state has finished; one without a config is not a run folder.
pub fn resume_from_state(dir: &Path) -> Result<bool> {
    if dir.join(RESUME_FILE).exists() {
        return Ok(true);
    }
    if dir.join(MODEL_FILE).exists() {
        bail!("{} has no {RESUME_FILE} to resume from (the run has finished)", dir.display());
    }
    if !dir.join("config.toml").exists() {
        bail!("{} is not a run folder (no config.toml)", dir.display());
    }
    eprintln!("{} has no saved state yet (the run stopped before its first checkpoint): starting it again from step 0", dir.display());
    Ok(false)
}

/// The run folder of a policy run (`align`): its config first, one JSON line of metrics per step
/// or iteration as they come, and the summary last, with the backend, the time and the folder.
pub struct PolicyRunFolder {
    out: PathBuf,
    metrics: std::io::BufWriter<fs::File>,
    /// The first failed metrics write, reported at the end (the callbacks cannot return it).
    error: Option<std::io::Error>,
    start: std::time::Instant,
}

impl PolicyRunFolder {
    pub fn create(out: &Path, config_toml: &str) -> Result<Self> {
        fs::create_dir_all(out).with_context(|| format!("cannot create run folder {}", out.display()))?;
        write_atomic(&out.join("config.toml"), config_toml.as_bytes())?;
        let file = fs::File::create(out.join("metrics.jsonl")).with_context(|| format!("cannot write {}", out.join("metrics.jsonl").display()))?;
        Ok(Self { out: out.to_path_buf(), metrics: std::io::BufWriter::new(file), error: None, start: std::time::Instant::now() })
    }

    pub fn record(&mut self, line: &impl serde::Serialize) {
        let text = serde_json::to_string(line).expect("metrics serialise");
        if let Err(e) = writeln!(self.metrics, "{text}") {
            self.error.get_or_insert(e);
        }
    }

    /// Flush the metrics and write `summary.json`: `summary` plus backend, seconds and run.
    pub fn finish(mut self, summary: impl serde::Serialize, backend: crate::backend::BackendKind) -> Result<serde_json::Value> {
        if let Some(e) = self.error.take() {
            return Err(anyhow::Error::from(e).context(format!("cannot write {}", self.out.join("metrics.jsonl").display())));
        }
        self.metrics.flush()?;
        let mut value = serde_json::to_value(summary)?;
        let obj = value.as_object_mut().context("a summary is a JSON object")?;
        obj.insert("backend".into(), json!(backend.name()));
        obj.insert("seconds".into(), json!(self.start.elapsed().as_secs_f64()));
        obj.insert("run".into(), json!(self.out.display().to_string()));
        write_atomic(&self.out.join("summary.json"), serde_json::to_string_pretty(&value)?.as_bytes())?;
        Ok(value)
    }
}

fn prepare_run_dir(args: &TrainArgs, cfg: &RunConfig) -> Result<PathBuf> {
    let data = match &cfg.embeddings {
        Some(p) => p.file_name().and_then(|f| f.to_str()).and_then(|f| f.split('.').next()).unwrap_or("embeddings").to_string(),
        None => cfg.scenario.kind.name().to_string(),
    };
    prepare_dir(args, &format!("{data}-{}-seed{}", cfg.model.kind.name(), cfg.seed))
}

/// The run folder of a new run: `--out` or `runs/<stem>`; refuses to replace a trained model.
pub fn prepare_dir(args: &TrainArgs, stem: &str) -> Result<PathBuf> {
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => crate::default_run_dir(stem),
    };
    if dir.join(MODEL_FILE).exists() && !args.overwrite {
        bail!("{} already holds a trained model; choose another --out or pass --overwrite", dir.display());
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create run folder {}", dir.display()))?;
    Ok(dir)
}

/// The trained weights in a run folder (a self-describing safetensors checkpoint).
pub const MODEL_FILE: &str = "model.safetensors";
/// Resumable state of an unfinished run (weights, optimiser moments, batch order); removed when
/// the run completes.
pub const RESUME_FILE: &str = "resume.state";

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
struct Spread<B: AutodiffBackend> {
    trainer: Trainer<B>,
    over: Over<B>,
}

enum Over<B: AutodiffBackend> {
    Devices(Vec<B::Device>),
    Ranks(Collective),
}

impl<B: AutodiffBackend> RunLoop for Spread<B> {
    fn step(&mut self) -> Result<StepMetrics> {
        let Spread { trainer, over } = self;
        match over {
            Over::Devices(devices) => Ok(pollster::block_on(trainer.step_parallel(devices))?),
            Over::Ranks(collective) => {
                collective.step = trainer.steps_done() + 1;
                let (rank, ranks) = (collective.rank, collective.ranks);
                let m = pollster::block_on(trainer.step_rank(rank, ranks, |g| collective.all_reduce(g).map_err(|e| prefscope_core::Error::Collective(format!("{e:#}")))));
                // The exchange's own message already names the ranks.
                m.map_err(|e| match e {
                    prefscope_core::Error::Collective(msg) => anyhow::anyhow!(msg),
                    e => e.into(),
                })
            }
        }
    }
    fn is_done(&self) -> bool {
        self.trainer.is_done()
    }
    fn steps_done(&self) -> usize {
        self.trainer.steps_done()
    }
    fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.trainer.checkpoint_bytes()?)
    }
    fn resume_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.trainer.resume_bytes()?)
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.trainer.restore(bytes)?)
    }
}

/// A rank other than 0: the same steps as rank 0, without a run folder of its own (it reads
/// rank 0's saved state to resume, so the folder must be visible to every rank).
fn follow<B: AutodiffBackend>(run: &mut Spread<B>, rank: usize, dir: &Path, resume: bool) -> Result<(StepMetrics, f64)> {
    if resume {
        let path = dir.join(RESUME_FILE);
        let bytes = fs::read(&path).with_context(|| format!("rank {}: cannot read {} (every rank reads rank 0's run folder to resume)", rank, path.display()))?;
        run.restore(&bytes).with_context(|| format!("cannot resume from {}", path.display()))?;
    }
    let bar = crate::step_bar(run.trainer.config.train.steps);
    bar.inc(run.steps_done() as u64);
    let start = Instant::now();
    let mut last = None;
    while !run.is_done() {
        let m = run.step()?;
        bar.inc(1);
        bar.set_message(format!("loss {:.4}", m.loss));
        last = Some(m);
    }
    bar.finish_and_clear();
    let Some(last) = last else { bail!("{} has already finished all its steps", dir.display()) };
    Ok((last, start.elapsed().as_secs_f64()))
}

/// Devices 0..n of the backend of `first` (same device type, consecutive indices).
fn device_range<B: AutodiffBackend>(first: &B::Device, n: usize) -> Vec<B::Device> {
    use burn::tensor::backend::{Device, DeviceId, DeviceOps};
    let id = first.id();
    (0..n).map(|i| <B::Device as Device>::from_id(DeviceId { type_id: id.type_id, index_id: id.index_id + i as u16 })).collect()
}

/// Keep the metrics lines of steps `1..=step` (a killed run may have logged further, or torn the
/// last line) and return the file opened for appending.
fn metrics_up_to(path: &Path, step: usize) -> Result<fs::File> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut kept = String::new();
    for line in text.lines() {
        match serde_json::from_str::<prefscope_core::StepMetrics>(line) {
            Ok(m) if m.step <= step => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => break,
        }
    }
    if kept.lines().count() != step {
        bail!("{} has {} complete lines before step {step}; it does not belong to the saved state", path.display(), kept.lines().count());
    }
    write_atomic(path, kept.as_bytes())?;
    Ok(fs::OpenOptions::new().append(true).open(path)?)
}

/// What the run-folder loop needs from a trainer; the feature-vector trainer (as a [`Spread`])
/// and the text reward model's trainer provide it.
pub trait RunLoop {
    fn step(&mut self) -> Result<StepMetrics>;
    fn is_done(&self) -> bool;
    fn steps_done(&self) -> usize;
    fn checkpoint_bytes(&self) -> Result<Vec<u8>>;
    fn resume_bytes(&self) -> Result<Vec<u8>>;
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}

/// How one run folder is driven.
pub struct Drive<'a> {
    pub dir: &'a Path,
    pub config_toml: String,
    pub total_steps: usize,
    pub json: bool,
    pub resume: bool,
    pub checkpoint_every: usize,
    /// A bar shared with other runs (`train --seeds`); the run then prints nothing of its own.
    pub shared: Option<SharedBar>,
}

/// One progress bar over several runs (`train --seeds`, `sweep`): each run advances it by its
/// own steps, so runs in parallel add up.
#[derive(Clone)]
pub struct SharedBar {
    pub bar: indicatif::ProgressBar,
}

/// The training loop of a run folder: restore or start, log every step to metrics.jsonl, save
/// the model and the resume state every `checkpoint_every` steps (atomically, metrics first),
/// and the final model at the end. Returns the last step's metrics and the seconds spent.
pub fn drive<T: RunLoop>(trainer: &mut T, d: Drive<'_>, banner: impl FnOnce()) -> Result<(StepMetrics, f64)> {
    let metrics_path = d.dir.join("metrics.jsonl");
    let metrics_file = if d.resume {
        let path = d.dir.join(RESUME_FILE);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        trainer.restore(&bytes).with_context(|| format!("cannot resume from {}", path.display()))?;
        if !d.json && d.shared.is_none() {
            println!("resuming {} at step {}", d.dir.display(), trainer.steps_done());
        }
        metrics_up_to(&metrics_path, trainer.steps_done())?
    } else {
        write_atomic(&d.dir.join("config.toml"), d.config_toml.as_bytes())?;
        fs::File::create(&metrics_path)?
    };
    let mut metrics = std::io::BufWriter::new(metrics_file);

    let quiet = d.shared.is_some();
    let bar = match &d.shared {
        Some(s) => s.bar.clone(),
        None => crate::step_bar(d.total_steps),
    };
    bar.inc(trainer.steps_done() as u64);
    if !d.json && !d.resume && !quiet {
        banner();
    }
    let start = Instant::now();
    let mut last = None;
    let metrics_error = |e: std::io::Error| anyhow::Error::from(e).context(format!("cannot write {}; the last checkpoint is intact, resume with --resume {} once there is room", metrics_path.display(), d.dir.display()));
    while !trainer.is_done() {
        let m = trainer.step()?;
        serde_json::to_writer(&mut metrics, &m).map_err(std::io::Error::from).map_err(metrics_error)?;
        metrics.write_all(b"\n").map_err(metrics_error)?;
        bar.inc(1);
        bar.set_message(format!("loss {:.4}", m.loss));
        if let Some(e) = m.eval.as_ref().filter(|_| !quiet) {
            let line = format!("step {:>5}  loss {:.4}  train acc {:.3}  eval acc {:.4}  eval loss {:.4}", m.step, m.loss, m.train_accuracy, e.accuracy, e.loss);
            // Keep stdout for the JSON summary; a hidden bar (no terminal) would swallow println.
            match (d.json, bar.is_hidden()) {
                (true, _) => bar.suspend(|| eprintln!("{line}")),
                (false, true) => println!("{line}"),
                (false, false) => bar.println(line),
            }
        }
        if d.checkpoint_every > 0 && m.step % d.checkpoint_every == 0 && !trainer.is_done() {
            // Metrics first: a state never runs ahead of the metrics it implies. The state before
            // the weights: a kill between the two leaves a state to resume from, never weights
            // without one (which would read as a finished run).
            metrics.flush().map_err(metrics_error)?;
            metrics.get_ref().sync_data().map_err(metrics_error)?;
            write_atomic(&d.dir.join(RESUME_FILE), &trainer.resume_bytes()?)?;
            write_atomic(&d.dir.join(MODEL_FILE), &trainer.checkpoint_bytes()?)?;
        }
        last = Some(m);
    }
    let seconds = start.elapsed().as_secs_f64();
    if !quiet {
        bar.finish_and_clear();
    }
    metrics.flush().map_err(metrics_error)?;
    metrics.get_ref().sync_data().map_err(metrics_error)?;
    // The resume state stays until the caller has written the summary (`finish_run`).
    write_atomic(&d.dir.join(MODEL_FILE), &trainer.checkpoint_bytes()?)?;
    let Some(last) = last else { bail!("{} has already finished all {} steps", d.dir.display(), d.total_steps) };
    Ok((last, seconds))
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
            let mut run = Spread { trainer, over: Over::Ranks(c) };
            let (last, seconds) = follow(&mut run, rank, &dir, resume)?;
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
        let d = Drive { dir: &dir, config_toml: cfg.to_toml(), total_steps: trainer.config.train.steps, json, resume, checkpoint_every, shared };
        let over = match collective {
            Some(collective) => Over::Ranks(collective),
            None => Over::Devices(device_range::<B>(&device, devices)),
        };
        let mut run = Spread { trainer, over };
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

pub fn train(args: TrainArgs) -> Result<()> {
    // `--nodes N`: this process is one rank of a multi-process run.
    let collective = args.nodes.collective()?;
    if collective.is_some() {
        if args.seeds.is_some() {
            bail!("--seeds with --nodes: train one seed at a time on all the processes");
        }
        if args.devices != 1 {
            bail!("--devices with --nodes: each process trains on one device");
        }
        if crate::text::is_text_run(&args)? {
            bail!("--nodes: multi-process training runs scenario and embedding runs (a text run trains in one process)");
        }
    } else {
        if let Some(spec) = args.seeds.clone() {
            return crate::seeds::train_seeds(args, &spec);
        }
        if crate::text::is_text_run(&args)? {
            return crate::text::train(args);
        }
    }
    let rank = collective.as_ref().map_or(0, |c| c.rank);
    let (cfg, dir, resume) = match &args.resume {
        Some(dir) => {
            let resume = resume_from_state(dir)?;
            (read_run_config(dir)?, dir.clone(), resume)
        }
        // Only rank 0 has a run folder.
        None => {
            let cfg = resolve_config(&args)?;
            let dir = if rank == 0 { prepare_run_dir(&args, &cfg)? } else { PathBuf::new() };
            (cfg, dir, false)
        }
    };
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let job = TrainJob { cfg, dir: dir.clone(), json: args.json, resume, checkpoint_every: args.checkpoint_every, devices: args.devices, shared: None, collective };
    let summary = dispatch(args.backend.backend, job)?;
    if rank == 0 {
        report(&args, &summary, &dir);
    } else if args.json {
        println!("{summary}");
    } else {
        println!(
            "rank {rank} of {}: done, {} steps in {:.2}s, final loss {:.4} (rank 0 writes the run folder)",
            summary["nodes"],
            summary["steps"],
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["final_loss"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// The last lines of a finished run: its JSON summary, or one line for people.
fn report(args: &TrainArgs, summary: &serde_json::Value, dir: &Path) {
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "done in {:.2}s: eval accuracy {:.4}, final loss {:.4}{}; run folder {}",
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["eval_accuracy"].as_f64().unwrap_or(f64::NAN),
            summary["final_loss"].as_f64().unwrap_or(f64::NAN),
            summary["best_step"].as_u64().map(|s| format!("; kept the weights of step {s} (lowest eval loss)")).unwrap_or_default(),
            dir.display()
        );
    }
}

fn read_run_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join("config.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("{} is not a run folder (no config.toml)", dir.display()))?;
    Ok(RunConfig::from_toml(&path.display().to_string(), &text)?)
}

struct EvalJob {
    weights: Vec<u8>,
    /// Another file to score in full, for a head trained on embeddings: an embedding file
    /// (`.safetensors`), or a pair file that is embedded here the way the head's file was.
    data: Option<PathBuf>,
    format: TextFormat,
    on_error: OnError,
}

/// What an eval scores: the data, which of its pairs, and what the report says about them.
struct Scored {
    dataset: PairDataset,
    pairs: Vec<usize>,
    split: &'static str,
    source: String,
    /// RewardBench subsets, per entry of `pairs`, when the pairs came from text.
    categories: Vec<Option<String>>,
    skipped: usize,
}

impl EvalJob {
    fn scored<B: AutodiffBackend>(&self, config: &RunConfig, device: &B::Device, backend: BackendKind) -> Result<Scored> {
        let own = config.embeddings.as_ref();
        let Some(path) = self.data.as_ref().filter(|p| own.is_none_or(|own| !same_file(p, own))) else {
            // The run's own data: its held-out pairs only.
            let dataset = config.dataset()?;
            let source = own.map_or_else(|| format!("the `{}` scenario", config.scenario.kind.name()), |p| p.display().to_string());
            return Ok(Scored { pairs: dataset.eval.clone(), dataset, split: "held-out", source, categories: vec![], skipped: 0 });
        };
        let Some(own) = own else {
            bail!("--data needs a model trained on text or on an embedding file; this one was trained on the `{}` scenario", config.scenario.kind.name());
        };
        let source = path.display().to_string();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let bytes = fs::read(path).with_context(|| format!("cannot read {source}"))?;
            let dataset = read_pair_embeddings(&bytes).with_context(|| format!("{source}: --data for a head trained on embeddings must be an embedding file (`prefscope embed`) or a pair file"))?;
            return Ok(Scored { pairs: (0..dataset.pairs.len()).collect(), dataset, split: "all", source, categories: vec![], skipped: 0 });
        }
        // A pair file: embed it with the encoder and item text the head was trained on.
        let own_bytes = fs::read(own).with_context(|| format!("cannot read the run's embedding file {}", own.display()))?;
        let meta = read_metadata(&own_bytes)?;
        let label = meta.get(ENCODER_KEY).cloned().unwrap_or_default();
        let Some(items) = minilm::ItemText::from_encoder_label(&label) else {
            bail!("{} holds `{label}` vectors; eval embeds text with {} only, so embed {source} the same way and pass that file", own.display(), minilm::ENCODER_NAME);
        };
        let mut reader = PairReader::open(path, self.format, self.on_error)?;
        let mut text: Vec<TextPair> = reader.by_ref().collect::<prefscope_core::Result<_>>()?;
        // The file the head's embeddings came from (embedding files record its name): score only
        // the lines its training held out, as for a text run's own file.
        let trained_on_it = path.file_name().is_some_and(|n| meta.get(SOURCE_KEY).is_some_and(|s| n.to_string_lossy() == *s));
        if trained_on_it {
            // Only files with line numbers were split by line; an older one's split is a shuffle
            // that cannot be matched to lines, and scoring it all would include training pairs.
            if read_pair_embeddings(&own_bytes)?.source_lines.is_empty() {
                bail!("{} has no line numbers, so its held-out lines of {source} are unknown; score the embedding file itself (`eval --run` without --data)", own.display());
            }
            text.retain(|p| is_held_out(config.seed, p.line, config.scenario.eval_fraction));
        }
        if text.is_empty() {
            bail!("{source} holds no pairs{}", if trained_on_it { " that the run held out" } else { "" });
        }
        let mut dataset = crate::embed::embed_pairs::<B>(&minilm::default_dir(), &text, items, device, backend)?;
        prefscope_core::text::pairs::carry_labels(&source, &text, &mut dataset)?;
        let categories = text.iter().map(|p| p.category.clone()).collect();
        let split = if trained_on_it { "held-out" } else { "all" };
        Ok(Scored { pairs: (0..text.len()).collect(), dataset, split, source, categories, skipped: reader.skipped })
    }
}

impl BackendJob for EvalJob {
    type Output = (EvalReport, serde_json::Value);

    fn run<B: AutodiffBackend>(mut self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let (head, model) = load_preference_model::<B>(std::mem::take(&mut self.weights), &device)?;
        let Scored { dataset, pairs, split, source, categories, skipped } = self.scored::<B>(&head.config, &device, backend)?;
        check_fits(&head, &dataset)?;
        let model = model.valid();
        let e = pollster::block_on(evaluate(&model, &dataset, &pairs, &device))?;
        let logits = pollster::block_on(pair_logits(&model, &dataset, &pairs, &device))?;
        let lengths = |i: usize| dataset.response_lengths.get(i).copied().unwrap_or((0, 0));
        let scores: Vec<PairScore> = pairs
            .iter()
            .zip(logits)
            .enumerate()
            .map(|(k, (&i, logit))| PairScore { logit, chosen_len: lengths(i).0, rejected_len: lengths(i).1, category: categories.get(k).cloned().flatten() })
            .collect();
        let mut report = evaluate_scores(&scores);
        // Accuracy and loss as training computed them (f32 on the device), so they match its summary.
        (report.accuracy, report.loss) = (e.accuracy as f64, e.loss as f64);
        let known_lengths = !dataset.response_lengths.is_empty();
        if !known_lengths {
            report.by_length.clear();
        }
        let mut out = serde_json::to_value(&report)?;
        if !known_lengths {
            out["prefers_longer"] = serde_json::Value::Null;
        }
        out["eval_accuracy"] = json!(e.accuracy);
        out["probability"] = json!(e.probability);
        out["split"] = json!(split);
        out["data"] = json!(source);
        out["skipped_lines"] = json!(skipped);
        out["backend"] = json!(backend.name());
        Ok((report, out))
    }
}

/// The checkpoint of a run: `run` itself when it is a file, else the run folder's model file.
pub(crate) fn read_checkpoint(run: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let weights_path = if run.is_file() { run.to_path_buf() } else { run.join(MODEL_FILE) };
    if !weights_path.is_file() {
        bail!("{} is not a run folder with a {MODEL_FILE}, nor a checkpoint file", run.display());
    }
    let weights = fs::read(&weights_path).with_context(|| format!("cannot read checkpoint {}", weights_path.display()))?;
    Ok((weights_path, weights))
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let (weights_path, weights) = read_checkpoint(&args.run)?;
    let meta = prefscope_core::reward::checkpoint::read_metadata(&weights).with_context(|| weights_path.display().to_string())?;
    if meta.get(prefscope_core::reward::checkpoint::KIND_KEY).map(String::as_str) == Some(prefscope_core::text::trainer::TEXT_REWARD_MODEL) {
        return crate::text::eval(args, weights);
    }
    let job = EvalJob { weights, data: args.data.clone(), format: TextFormat::parse(&args.format)?, on_error: crate::text::parse_on_error(&args.on_error)? };
    let (report, out) = dispatch(args.backend.backend, job)?;
    save_eval_report(&args.run, &out)?;
    if args.json {
        println!("{out}");
    } else {
        crate::text::print_report(&args.run, &report, &out);
    }
    Ok(())
}

/// Keep an eval's report in its run folder (`eval.json`, the `--json` object), for `plot`.
pub(crate) fn save_eval_report(run: &Path, out: &serde_json::Value) -> Result<()> {
    if run.is_dir() {
        write_atomic(&run.join("eval.json"), serde_json::to_string_pretty(out)?.as_bytes())?;
    }
    Ok(())
}
