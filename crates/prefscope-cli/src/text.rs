//! `prefscope train --data FILE` and `prefscope eval` of text reward models: the transformer RM
//! of `core::textrm`, in the same run folders (and the same loop, [`crate::drive::drive`]) as
//! scenario runs.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::metrics::{EvalReport, evaluate_scores};
use prefscope_core::text::pairs::{OnError, PairReader, TextFormat, TextPair};
use prefscope_core::text::trainer::{EncodedPairs, TextRunConfig, TextTrainer, held_out_pairs, is_held_out, load_text_model, pair_scores, same_file, score_pairs};
use prefscope_core::text::transformer::{TfmHead, TfmRmConfig};
use serde_json::json;

use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::drive::{Drive, drive};
use crate::run_config::{EvalArgs, TrainArgs};

/// Whether a train command is a text run: `--data`, a config with a `[data]` table, or a
/// resumed folder whose config has one.
pub fn is_text_run(args: &TrainArgs) -> Result<bool> {
    if args.data.is_some() {
        return Ok(true);
    }
    let path = match (&args.config, &args.resume) {
        (Some(c), _) => c.clone(),
        (None, Some(dir)) => dir.join("config.toml"),
        (None, None) => return Ok(false),
    };
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read config {}", path.display()))?;
    Ok(text.parse::<toml::Table>().map(|t| t.contains_key("data")).unwrap_or(false))
}

pub(crate) fn resolve(args: &TrainArgs) -> Result<TextRunConfig> {
    let mut cfg = match &args.config {
        Some(path) => TextRunConfig::from_toml(&path.display().to_string(), &crate::run_config::read_config_text(path)?)?,
        None => TextRunConfig::new(args.data.clone().expect("a text run has --data or a config")),
    };
    if let Some(d) = &args.data {
        cfg.data.path = d.clone();
    }
    if args.scenario.is_some() {
        bail!("--scenario and --data exclude each other: a run trains on a scenario or on a pair file");
    }
    match args.model.as_deref() {
        None | Some("tfm-rm") => {}
        Some(other) => bail!(
            "--model {other} with --data: heads on text need sentence embeddings; run `prefscope embed --data {}` and train on the embedding file, or use --model tfm-rm",
            cfg.data.path.display()
        ),
    }
    if let Some(p) = &args.preset {
        let head = cfg.model.head;
        cfg.model = match p.as_str() {
            "small" => TfmRmConfig::default(),
            "tfm-rm" => TfmRmConfig::workload(),
            other => bail!("unknown --preset {other} (small, tfm-rm)"),
        };
        cfg.model.head = head;
    }
    if let Some(h) = &args.head {
        cfg.model.head = match h.as_str() {
            "bt" => TfmHead::Bt,
            "gpm" => TfmHead::Gpm,
            other => bail!("unknown --head {other} (bt, gpm)"),
        };
    }
    if let Some(v) = args.max_len {
        cfg.model.max_len = v;
    }
    if let Some(t) = &args.tokenizer {
        cfg.tokenizer.path = Some(t.clone());
    }
    cfg.data.format = TextFormat::parse(&args.format)?;
    cfg.data.on_error = parse_on_error(&args.on_error)?;
    crate::run_config::override_train(args, &mut cfg.train, &mut cfg.seed);
    cfg.validate()?;
    Ok(cfg)
}

pub(crate) fn parse_on_error(s: &str) -> Result<OnError> {
    match s {
        "stop" => Ok(OnError::Stop),
        "skip" => Ok(OnError::Skip),
        other => bail!("unknown --on-error {other} (stop, skip)"),
    }
}

pub(crate) struct TextTrainJob {
    pub(crate) cfg: TextRunConfig,
    pub(crate) dir: PathBuf,
    pub(crate) json: bool,
    pub(crate) resume: bool,
    pub(crate) checkpoint_every: usize,
    pub(crate) shared: Option<crate::drive::SharedBar>,
}

impl BackendJob for TextTrainJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let TextTrainJob { cfg, dir, json, resume, checkpoint_every, shared } = self;
        if !json && !resume && shared.is_none() {
            println!("reading {} and preparing the tokenizer…", cfg.data.path.display());
        }
        let mut trainer = TextTrainer::<B>::new(cfg, &device)?;
        let cfg = trainer.config.clone();
        let banner = format!(
            "training tfm-rm ({} head, d {}, {} layers, vocab {}, max_len {}) on {} ({} held-out pairs) on {}{}",
            match cfg.model.head {
                TfmHead::Bt => "bt",
                TfmHead::Gpm => "gpm",
            },
            cfg.model.d_model,
            cfg.model.n_layers,
            cfg.model.vocab,
            cfg.model.max_len,
            cfg.data.path.display(),
            trainer.eval.len(),
            backend.describe(),
            crate::run_config::precision_note(cfg.train.precision)
        );
        let d = Drive { dir: &dir, config_toml: cfg.to_toml(), total_steps: cfg.train.steps, json, resume, checkpoint_every, shared, follower: None };
        let (last, seconds) = drive(&mut trainer, d, || println!("{banner}"))?;
        let (skipped, messages) = trainer.skipped();
        if skipped > 0 {
            eprintln!("skipped {skipped} malformed lines of {} (first: {})", cfg.data.path.display(), messages.first().map(String::as_str).unwrap_or(""));
        }
        let eval = last.eval.expect("the last step evaluates");
        let report = evaluate_scores(&pair_scores(&trainer.eval_logits()?, &trainer.eval));
        let summary = json!({
            "eval_accuracy": eval.accuracy,
            "eval_accuracy_ci95": report.accuracy_ci95,
            "eval_p_value_vs_chance": report.p_value_vs_chance,
            "eval_loss": eval.loss,
            "eval_pairs": eval.n,
            "final_loss": last.loss,
            "steps": last.step,
            "skipped_lines": skipped,
            "backend": backend.name(),
            "threads": backend.threads(),
            "precision": cfg.train.precision.name(),
            "seconds": seconds,
            "pairs_per_second": (last.step * cfg.train.batch) as f64 / seconds,
            "data": cfg.data.path.display().to_string(),
            "model": "tfm-rm",
            "seed": cfg.seed,
            "run": dir.display().to_string(),
        });
        crate::run_folder::finish_run(&dir, &summary)?;
        Ok(summary)
    }
}

pub fn train(args: TrainArgs) -> Result<()> {
    let (cfg, dir, resume) = match &args.resume {
        Some(dir) => {
            let resume = crate::run_folder::resume_from_state(dir)?;
            let path = dir.join("config.toml");
            (TextRunConfig::from_toml(&path.display().to_string(), &fs::read_to_string(&path)?)?, dir.clone(), resume)
        }
        None => {
            let cfg = resolve(&args)?;
            let stem = format!("{}-tfm-rm-seed{}", cfg.data.path.file_name().and_then(|f| f.to_str()).and_then(|f| f.split('.').next()).unwrap_or("data"), cfg.seed);
            (cfg, crate::run_folder::prepare_dir(&args, &stem)?, false)
        }
    };
    let job = TextTrainJob { cfg, dir: dir.clone(), json: args.json, resume, checkpoint_every: args.checkpoint_every, shared: None };
    let summary = dispatch(args.backend.backend, job)?;
    if args.json {
        println!("{summary}");
    } else {
        let ci = &summary["eval_accuracy_ci95"];
        println!(
            "done in {:.1}s: held-out accuracy {:.4} (95% CI {:.3}–{:.3}, p = {:.2e} against chance) on {} pairs; run folder {}",
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["eval_accuracy"].as_f64().unwrap_or(f64::NAN),
            ci[0].as_f64().unwrap_or(f64::NAN),
            ci[1].as_f64().unwrap_or(f64::NAN),
            summary["eval_p_value_vs_chance"].as_f64().unwrap_or(f64::NAN),
            summary["eval_pairs"],
            dir.display()
        );
    }
    Ok(())
}

struct TextEvalJob {
    weights: Vec<u8>,
    data: Option<PathBuf>,
    format: TextFormat,
    on_error: OnError,
    rb2: Option<Vec<prefscope_core::text::rewardbench2::Rb2Row>>,
}

impl BackendJob for TextEvalJob {
    type Output = (Option<EvalReport>, serde_json::Value);

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let (cfg, tok, model) = load_text_model::<B>(self.weights, &device)?;
        let model = model.valid();
        // Never score training pairs: the run's own file contributes its held-out lines only.
        if self.rb2.is_some() && cfg.model.head != prefscope_core::text::transformer::TfmHead::Bt {
            bail!("RewardBench 2 ranks each prompt's responses by a scalar reward; this run's GPM head scores pairs only");
        }
        let (pairs, split, skipped, source) = match (&self.data, &self.rb2) {
            (Some(path), Some(rows)) => (prefscope_core::text::rewardbench2::pairs(rows), "all", 0, path.clone()),
            (Some(path), None) if !same_file(path, &cfg.data.path) => {
                let mut reader = PairReader::open(path, self.format, self.on_error)?;
                let pairs: Vec<TextPair> = reader.by_ref().collect::<prefscope_core::Result<_>>()?;
                (pairs, "all", reader.skipped, path.clone())
            }
            _ => {
                let mut data = cfg.data.clone();
                data.format = if self.data.is_some() { self.format } else { data.format };
                let pairs = held_out_pairs(&data, cfg.seed, usize::MAX)?;
                (pairs, "held-out", 0, cfg.data.path.clone())
            }
        };
        if pairs.is_empty() {
            bail!("{} has no pairs to score", source.display());
        }
        debug_assert!(split == "all" || pairs.iter().all(|p| is_held_out(cfg.seed, p.line, cfg.data.eval_fraction)));
        let encoded = EncodedPairs::new(&tok, &pairs, cfg.model.max_len)?;
        let logits = score_pairs(&model, &cfg.model, tok.special.pad, &encoded, 32, &device)?;
        if let Some(rows) = &self.rb2 {
            return Ok((None, crate::eval_report::rewardbench2_output(&source.display().to_string(), rows, &logits, backend)?));
        }
        let report = evaluate_scores(&pair_scores(&logits, &encoded));
        let mut out = serde_json::to_value(&report)?;
        out["split"] = json!(split);
        out["data"] = json!(source.display().to_string());
        out["skipped_lines"] = json!(skipped);
        out["backend"] = json!(backend.name());
        Ok((Some(report), out))
    }
}

pub fn eval(args: EvalArgs, weights: Vec<u8>) -> Result<()> {
    let rb2 = crate::eval_report::rb2_rows(&args)?;
    let job = TextEvalJob { weights, data: args.data.clone(), format: TextFormat::parse(&args.format)?, on_error: parse_on_error(&args.on_error)?, rb2 };
    let (r, out) = dispatch(args.backend.backend, job)?;
    crate::run_folder::save_eval_report(args.run(), &out)?;
    if args.json {
        println!("{out}");
        return Ok(());
    }
    crate::eval_report::print_eval(args.run(), r.as_ref(), &out);
    Ok(())
}

