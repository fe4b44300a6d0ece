//! `prefscope train`: a scenario or embedding run, a text run, or many seeds of either.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::backend::dispatch;
use crate::run_config::{TrainArgs, read_run_config, resolve_config};
use crate::run_folder::{prepare_run_dir, resume_from_state};
use crate::scenario::TrainJob;


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
pub(crate) fn report(args: &TrainArgs, summary: &serde_json::Value, dir: &Path) {
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
