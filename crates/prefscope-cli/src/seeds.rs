//! `prefscope train --seeds`: one config on many seeds, the robustness check the claim tests use.
//!
//! Each seed is an ordinary run folder (`OUT/seed-S/`), so any of them can be evaluated, resumed
//! or loaded in the page. Running the same command again picks up where it stopped: finished
//! seeds are read back from their `summary.json`, interrupted ones resume from `resume.state`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use prefscope_core::studies::seeds::{SeedStats, parse_seeds};
use prefscope_core::text::trainer::TextRunConfig;
use prefscope_core::{AutodiffBackend, RunConfig};
use serde_json::{Value, json};

use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::drive::SharedBar;
use crate::run_config::TrainArgs;
use crate::run_folder::{MODEL_FILE, RESUME_FILE, write_atomic};
use crate::scenario::TrainJob;
use crate::text::TextTrainJob;

/// The figures of each seed's summary that the table and the spread report.
const FIGURES: [(&str, &str); 3] = [("eval_accuracy", "eval acc"), ("eval_loss", "eval loss"), ("final_loss", "final loss")];

/// The config of one run, on a scenario (or embedding file) or on a pair file.
#[derive(Clone)]
pub(crate) enum Base {
    Scenario(RunConfig),
    Text(Box<TextRunConfig>),
}

impl Base {
    /// The config a train command means (flags over its config file).
    pub(crate) fn resolve(args: &TrainArgs) -> Result<Self> {
        Ok(if crate::text::is_text_run(args)? { Base::Text(Box::new(crate::text::resolve(args)?)) } else { Base::Scenario(crate::run_config::resolve_config(args)?) })
    }

    /// This config with dotted keys set (`model.hidden` = [64]): through its TOML, so an unknown
    /// key or a wrong type is refused by name, exactly as in a config file.
    pub(crate) fn with_settings(&self, settings: &[(String, toml::Value)], source: &str) -> Result<Self> {
        let mut table: toml::Table = self.to_toml().parse().expect("a config's own TOML parses");
        for (key, value) in settings {
            let mut at = &mut table;
            let parts: Vec<&str> = key.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                at = match at.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default())) {
                    toml::Value::Table(t) => t,
                    _ => bail!("{source}: `{key}`: `{part}` is a setting, not a table"),
                };
            }
            at.insert(parts[parts.len() - 1].to_string(), value.clone());
        }
        let text = toml::to_string_pretty(&table)?;
        Ok(match self {
            Base::Scenario(_) => Base::Scenario(RunConfig::from_toml(source, &text)?),
            Base::Text(_) => Base::Text(Box::new(TextRunConfig::from_toml(source, &text)?)),
        })
    }

    fn with_seed(&self, seed: u64) -> Self {
        match self {
            Base::Scenario(c) => Base::Scenario(RunConfig { seed, ..c.clone() }),
            Base::Text(c) => Base::Text(Box::new(TextRunConfig { seed, ..(**c).clone() })),
        }
    }
    pub(crate) fn to_toml(&self) -> String {
        match self {
            Base::Scenario(c) => c.to_toml(),
            Base::Text(c) => c.to_toml(),
        }
    }
    pub(crate) fn steps(&self) -> usize {
        match self {
            // With `train.epochs` the length depends on the data; scenarios are cheap to build.
            Base::Scenario(c) if c.train.epochs.is_some() => c.dataset().map(|d| c.train.steps_for(c.training_units(&d))).unwrap_or(c.train.steps),
            Base::Scenario(c) => c.train.steps,
            Base::Text(c) => c.train.steps,
        }
    }
    /// The default folder name: what trains on what.
    pub(crate) fn stem(&self) -> String {
        let file_stem = |p: &Path| p.file_name().and_then(|f| f.to_str()).and_then(|f| f.split('.').next()).unwrap_or("data").to_string();
        match self {
            Base::Scenario(c) => {
                let data = c.embeddings.as_deref().map(file_stem).unwrap_or_else(|| c.scenario.kind.name().to_string());
                format!("{data}-{}", c.model.kind.name())
            }
            Base::Text(c) => format!("{}-tfm-rm", file_stem(&c.data.path)),
        }
    }
}

/// What one seed needs: nothing (finished earlier), a resume, or a fresh run.
enum Plan {
    Done(Value),
    Run(SeedJob),
}

pub(crate) enum SeedJob {
    Scenario(TrainJob),
    Text(TextTrainJob),
}

impl SeedJob {
    /// A run into `dir` on a shared bar, quiet (its summary is the job's output).
    pub(crate) fn new(cfg: Base, dir: PathBuf, resume: bool, args: &TrainArgs, bar: &indicatif::ProgressBar) -> Self {
        let (json, checkpoint_every, shared) = (true, args.checkpoint_every, Some(SharedBar { bar: bar.clone() }));
        match cfg {
            Base::Scenario(cfg) => SeedJob::Scenario(TrainJob { cfg, dir, json, resume, checkpoint_every, devices: args.devices, shared, collective: None }),
            Base::Text(cfg) => SeedJob::Text(TextTrainJob { cfg: *cfg, dir, json, resume, checkpoint_every, shared }),
        }
    }
}

impl BackendJob for SeedJob {
    type Output = Value;
    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Value> {
        match self {
            SeedJob::Scenario(j) => j.run::<B>(device, backend),
            SeedJob::Text(j) => j.run::<B>(device, backend),
        }
    }
}

/// All seeds on one backend, in order; a seed that fails is recorded and the others go on.
struct SeedsJob {
    plans: Vec<(u64, Plan)>,
}

impl BackendJob for SeedsJob {
    type Output = Vec<(u64, Result<Value, String>)>;
    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let mut out = vec![];
        for (seed, plan) in self.plans {
            let result = match plan {
                Plan::Done(summary) => Ok(summary),
                Plan::Run(job) => job.run::<B>(device.clone(), backend).map_err(|e| format!("{e:#}")),
            };
            out.push((seed, result));
        }
        Ok(out)
    }
}

pub fn train_seeds(args: TrainArgs, spec: &str) -> Result<()> {
    let seeds = parse_seeds(spec)?;
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let base = Base::resolve(&args)?;
    let (first, last) = (seeds[0], *seeds.last().expect("parse_seeds gives at least one seed"));
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => crate::default_run_dir(&format!("{}-seeds{first}-{last}", base.stem())),
    };
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let bar = crate::step_bar(0);
    let mut offset = 0u64;
    let mut plans = vec![];
    let (mut finished, mut resumed) = (0, 0);
    for &seed in &seeds {
        let cfg = base.with_seed(seed);
        let seed_dir = dir.join(format!("seed-{seed}"));
        let plan = plan_seed(&seed_dir, &cfg, args.overwrite)?;
        let plan = match plan {
            Some(summary) => {
                finished += 1;
                Plan::Done(summary)
            }
            None => {
                let resume = seed_dir.join(RESUME_FILE).exists();
                resumed += resume as usize;
                fs::create_dir_all(&seed_dir).with_context(|| format!("cannot create {}", seed_dir.display()))?;
                offset += cfg.steps() as u64;
                Plan::Run(SeedJob::new(cfg, seed_dir, resume, &args, &bar))
            }
        };
        plans.push((seed, plan));
    }
    bar.set_length(offset);
    if !args.json {
        let to_run = seeds.len() - finished;
        let notes = progress_notes(finished, resumed);
        bar.suspend(|| println!("training {} on {} seeds ({first}–{last}) on {}: {to_run} to run{notes}; run folders in {}", base.stem(), seeds.len(), args.backend.backend.describe(), dir.display()));
    }
    let results = dispatch(args.backend.backend, SeedsJob { plans })?;
    bar.finish_and_clear();

    // seeds.jsonl: one line per seed, its summary or its error.
    let mut lines = String::new();
    for (seed, r) in &results {
        let v = match r {
            Ok(summary) => summary.clone(),
            Err(e) => json!({ "seed": seed, "error": e }),
        };
        lines.push_str(&serde_json::to_string(&v)?);
        lines.push('\n');
    }
    write_atomic(&dir.join("seeds.jsonl"), lines.as_bytes())?;
    let ok: Vec<&Value> = results.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let failed: Vec<Value> = results.iter().filter_map(|(s, r)| r.as_ref().err().map(|e| json!({ "seed": s, "error": e }))).collect();
    let mut summary = json!({
        "seeds": seeds,
        "completed": ok.len(),
        "failed": failed,
        "run": dir.display().to_string(),
    });
    for (key, _) in FIGURES {
        let values: Vec<f64> = ok.iter().map(|s| s[key].as_f64().unwrap_or(f64::NAN)).collect();
        summary[key] = serde_json::to_value(SeedStats::of(&values))?;
    }
    write_atomic(&dir.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;

    if args.json {
        println!("{summary}");
    } else {
        print_table(&results);
        for (key, label) in FIGURES {
            let values: Vec<f64> = ok.iter().map(|s| s[key].as_f64().unwrap_or(f64::NAN)).collect();
            if !values.is_empty() {
                println!("{label}: {}", SeedStats::of(&values));
            }
        }
        println!("per-seed summaries in {}", dir.join("seeds.jsonl").display());
    }
    if !failed.is_empty() {
        bail!("{} of {} seeds failed (see the table above, or {})", failed.len(), seeds.len(), dir.join("seeds.jsonl").display());
    }
    Ok(())
}

/// " (3 finished earlier, 1 resumed)" for the banner of a multi-run command; empty when neither.
pub(crate) fn progress_notes(finished: usize, resumed: usize) -> String {
    let notes: Vec<String> = [(finished, "finished earlier"), (resumed, "resumed")].iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) }
}

/// A finished seed's summary, when its folder holds a completed run of exactly this config;
/// None when it must (re)run. A folder with another config is refused; --overwrite retrains
/// every seed.
pub(crate) fn plan_seed(seed_dir: &Path, cfg: &Base, overwrite: bool) -> Result<Option<Value>> {
    if overwrite {
        // A fresh run replaces the folder's; a stale resume state must not be picked up.
        let _ = fs::remove_file(seed_dir.join(RESUME_FILE));
        let _ = fs::remove_file(seed_dir.join("summary.json"));
        return Ok(None);
    }
    let config_path = seed_dir.join("config.toml");
    let Ok(existing) = fs::read_to_string(&config_path) else { return Ok(None) };
    if existing != cfg.to_toml() {
        bail!("{} holds a run of another config; choose another --out or pass --overwrite", seed_dir.display());
    }
    let summary_path: PathBuf = seed_dir.join("summary.json");
    if seed_dir.join(RESUME_FILE).exists() || !seed_dir.join(MODEL_FILE).exists() {
        return Ok(None);
    }
    match fs::read_to_string(&summary_path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        Some(v) if v.get("eval_accuracy").is_some() => Ok(Some(v)),
        // A run killed after its model was written but before its summary: run it again.
        _ => Ok(None),
    }
}

fn print_table(results: &[(u64, Result<Value, String>)]) {
    println!("{:>6}  {:>9}  {:>9}  {:>10}  {:>8}", "seed", "eval acc", "eval loss", "final loss", "seconds");
    for (seed, r) in results {
        match r {
            Ok(s) => {
                let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
                println!("{seed:>6}  {:>9.4}  {:>9.4}  {:>10.4}  {:>8.2}", f("eval_accuracy"), f("eval_loss"), f("final_loss"), f("seconds"));
            }
            Err(e) => println!("{seed:>6}  error: {e}"),
        }
    }
}
