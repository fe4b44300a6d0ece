//! A run folder's lifecycle: created or resumed, written atomically, finished with a summary.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use prefscope_core::RunConfig;
use serde_json::json;
use crate::run_config::TrainArgs;



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

pub(crate) fn prepare_run_dir(args: &TrainArgs, cfg: &RunConfig) -> Result<PathBuf> {
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
/// A tiny-LM policy run's weights: the policy and its reference (`eval` scores their implicit reward).
pub const POLICY_FILE: &str = "policy.safetensors";

/// Resumable state of an unfinished run (weights, optimiser moments, batch order); removed when
/// the run completes.
pub const RESUME_FILE: &str = "resume.state";

/// Keep the metrics lines of steps `1..=step` (a killed run may have logged further, or torn the
/// last line) and return the file opened for appending.
pub(crate) fn metrics_up_to(path: &Path, step: usize) -> Result<fs::File> {
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

/// The checkpoint of a run: `run` itself when it is a file, else the run folder's model file.
pub(crate) fn read_checkpoint(run: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let weights_path = if run.is_file() { run.to_path_buf() } else { run.join(MODEL_FILE) };
    if !weights_path.is_file() {
        bail!("{} is not a run folder with a {MODEL_FILE}, nor a checkpoint file", run.display());
    }
    let weights = fs::read(&weights_path).with_context(|| format!("cannot read checkpoint {}", weights_path.display()))?;
    Ok((weights_path, weights))
}

/// The weights of a policy run (`align --policy lm`): `run`'s policy file, or `run` itself when it
/// is one. None for anything else, which [`read_checkpoint`] then reads.
pub(crate) fn read_policy_checkpoint(run: &Path) -> Result<Option<Vec<u8>>> {
    let path = if run.is_dir() { run.join(POLICY_FILE) } else { run.to_path_buf() };
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(prefscope_core::policy::lm_scoring::is_lm_policy(&bytes).then_some(bytes))
}

/// Keep an eval's report in its run folder (`eval.json`, the `--json` object), for `plot`; a
/// benchmark's scores go beside it (`eval-rewardbench2.json`), so they never replace the report
/// that `plot` draws.
pub(crate) fn save_eval_report(run: &Path, out: &serde_json::Value) -> Result<()> {
    if run.is_dir() {
        let name = out["benchmark"].as_str().map_or_else(|| "eval.json".to_string(), |b| format!("eval-{b}.json"));
        write_atomic(&run.join(name), serde_json::to_string_pretty(out)?.as_bytes())?;
    }
    Ok(())
}
