//! The one loop that drives any trainer in a run folder: steps, metrics lines, checkpoints,
//! the resume state and the progress bar.
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use prefscope_core::StepMetrics;
use crate::run_folder::{MODEL_FILE, RESUME_FILE, metrics_up_to, write_atomic};



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
