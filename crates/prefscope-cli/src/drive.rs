//! The one loop that drives any trainer in a run folder: steps, metrics lines, checkpoints,
//! the resume state and the progress bar.
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use prefscope_core::StepMetrics;
use prefscope_core::reward::train::RunLoop;
use crate::run_folder::{MODEL_FILE, RESUME_FILE, metrics_up_to, write_atomic};



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
    /// `Some(rank)` for a rank other than 0 of a multi-process run: the same steps as rank 0,
    /// writing nothing (it reads rank 0's folder to resume, so the folder must be visible to it).
    pub follower: Option<usize>,
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
    if d.resume {
        let path = d.dir.join(RESUME_FILE);
        let whose = d.follower.map(|rank| format!("rank {rank}: ")).unwrap_or_default();
        let bytes = fs::read(&path).with_context(|| format!("{whose}cannot read {}{}", path.display(), if d.follower.is_some() { " (every rank reads rank 0's run folder to resume)" } else { "" }))?;
        trainer.restore(&bytes).with_context(|| format!("cannot resume from {}", path.display()))?;
        if !d.json && d.shared.is_none() && d.follower.is_none() {
            println!("resuming {} at step {}", d.dir.display(), trainer.steps_done());
        }
    }
    // A follower writes nothing: rank 0 keeps the run folder.
    let mut metrics = match (d.follower, d.resume) {
        (Some(_), _) => None,
        (None, true) => Some(std::io::BufWriter::new(metrics_up_to(&metrics_path, trainer.steps_done())?)),
        (None, false) => {
            write_atomic(&d.dir.join("config.toml"), d.config_toml.as_bytes())?;
            Some(std::io::BufWriter::new(fs::File::create(&metrics_path)?))
        }
    };

    let quiet = d.shared.is_some() || d.follower.is_some();
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
        let m = pollster::block_on(trainer.step())?;
        if let Some(metrics) = metrics.as_mut() {
            serde_json::to_writer(&mut *metrics, &m).map_err(std::io::Error::from).map_err(metrics_error)?;
            metrics.write_all(b"\n").map_err(metrics_error)?;
        }
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
        if let Some(metrics) = metrics.as_mut().filter(|_| d.checkpoint_every > 0 && m.step % d.checkpoint_every == 0 && !trainer.is_done()) {
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
    if d.shared.is_none() {
        bar.finish_and_clear();
    }
    if let Some(mut metrics) = metrics {
        metrics.flush().map_err(metrics_error)?;
        metrics.get_ref().sync_data().map_err(metrics_error)?;
        // The resume state stays until the caller has written the summary (`finish_run`).
        write_atomic(&d.dir.join(MODEL_FILE), &trainer.checkpoint_bytes()?)?;
    }
    let Some(last) = last else { bail!("{} has already finished all {} steps", d.dir.display(), d.total_steps) };
    Ok((last, seconds))
}
