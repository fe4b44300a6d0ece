//! `prefscope compare`: two trained runs scored on the same held-out pairs of one pair file, with
//! an exact McNemar test, so "A beats B" is a paired claim rather than two separate accuracies.
//! A text run and a head on that file's embeddings qualify: both split by the file's line numbers.
//! So do two runs on the same scenario and seed, whose data and split are rebuilt identically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::checkpoint::{KIND_KEY, check_fits, load_preference_model, read_metadata};
use prefscope_core::reward::embeddings::SOURCE_KEY;
use prefscope_core::reward::metrics::mcnemar_exact;
use prefscope_core::text::trainer::{EncodedPairs, TEXT_REWARD_MODEL, held_out_pairs, load_text_model, score_pairs};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run_folder::read_checkpoint;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The first run (folder or model.safetensors); the p-value tests it against the second.
    #[arg(value_name = "RUN_A")]
    a: PathBuf,
    /// The second run.
    #[arg(value_name = "RUN_B")]
    b: PathBuf,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// One run's verdicts on its held-out pairs, keyed by the source file's line (the pair's index
/// for a scenario).
struct HeldOut {
    /// What the run was trained on: a pair file's name (embedding files record only that), or a
    /// scenario and seed.
    source: String,
    /// Equal for runs whose keys name the same pairs: the file name, or the whole scenario config.
    identity: String,
    correct: BTreeMap<usize, bool>,
}

struct CompareJob {
    runs: [(PathBuf, Vec<u8>); 2],
}

impl BackendJob for CompareJob {
    type Output = [HeldOut; 2];

    fn run<B: AutodiffBackend>(self, device: B::Device, _: BackendKind) -> Result<Self::Output> {
        let [a, b] = self.runs;
        Ok([held_out::<B>(&a.0, a.1, &device)?, held_out::<B>(&b.0, b.1, &device)?])
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn held_out<B: AutodiffBackend>(path: &Path, weights: Vec<u8>, device: &B::Device) -> Result<HeldOut> {
    let meta = read_metadata(&weights).with_context(|| path.display().to_string())?;
    if meta.get(KIND_KEY).map(String::as_str) == Some(TEXT_REWARD_MODEL) {
        let (cfg, tok, model) = load_text_model::<B::InnerBackend>(weights, device)?;
        let pairs = held_out_pairs(&cfg.data, cfg.seed, usize::MAX)?;
        let encoded = EncodedPairs::new(&tok, &pairs, cfg.model.max_len)?;
        let logits = score_pairs(&model, &cfg.model, tok.special.pad, &encoded, 32, device)?;
        let correct = pairs.iter().zip(logits).map(|(p, l)| (p.line, l > 0.0)).collect();
        let source = file_name(&cfg.data.path);
        return Ok(HeldOut { identity: source.clone(), source, correct });
    }
    let (head, model) = load_preference_model::<B>(weights, device).with_context(|| path.display().to_string())?;
    let dataset = head.config.dataset()?;
    check_fits(&head, &dataset)?;
    let logits = pollster::block_on(prefscope_core::reward::train::pair_logits(&model.valid(), &dataset, &dataset.eval, device))?;
    let Some(embeddings) = head.config.embeddings.clone() else {
        // A scenario is rebuilt from its config and seed, so the same config means the same pairs.
        let cfg = &head.config;
        let identity = format!("seed = {}\n{}", cfg.seed, toml::to_string(&cfg.scenario).expect("plain data serialises"));
        let correct = dataset.eval.iter().zip(logits).map(|(&i, l)| (i, l > 0.0)).collect();
        return Ok(HeldOut { source: format!("the `{}` scenario (seed {})", cfg.scenario.kind.name(), cfg.seed), identity, correct });
    };
    if dataset.source_lines.is_empty() {
        bail!("{} has no line numbers; embed the pair file again with this version of `prefscope embed`", embeddings.display());
    }
    let bytes = std::fs::read(&embeddings).with_context(|| format!("cannot read {}", embeddings.display()))?;
    let source = read_metadata(&bytes)?.get(SOURCE_KEY).cloned().unwrap_or_default();
    let correct = dataset.eval.iter().zip(logits).map(|(&i, l)| (dataset.source_lines[i], l > 0.0)).collect();
    Ok(HeldOut { identity: source.clone(), source, correct })
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let runs = [read_checkpoint(&args.a)?, read_checkpoint(&args.b)?];
    let [a, b] = dispatch(args.backend.backend, CompareJob { runs })?;
    if a.identity != b.identity {
        let other = if a.source == b.source { format!("{} with other scenario settings", b.source) } else { b.source.clone() };
        bail!("{} was trained on {} but {} on {other}: there are no shared pairs to compare on", args.a.display(), a.source, args.b.display());
    }
    // Lines held out by both runs: neither model trained on any of them.
    let shared: Vec<(bool, bool)> = a.correct.iter().filter_map(|(line, &x)| b.correct.get(line).map(|&y| (x, y))).collect();
    if shared.is_empty() {
        bail!("{} and {} hold out no line in common; train both with the same seed and eval_fraction", args.a.display(), args.b.display());
    }
    let n = shared.len();
    let count = |f: fn(&(bool, bool)) -> bool| shared.iter().filter(|p| f(p)).count();
    let (right_a, right_b) = (count(|p| p.0), count(|p| p.1));
    let (only_a, only_b) = (count(|p| p.0 && !p.1), count(|p| !p.0 && p.1));
    let p = mcnemar_exact(only_a, only_b);
    let (acc_a, acc_b) = (right_a as f64 / n as f64, right_b as f64 / n as f64);
    if args.json {
        println!(
            "{}",
            json!({
                "data": a.source,
                "n": n,
                "held_out_a": a.correct.len(),
                "held_out_b": b.correct.len(),
                "accuracy_a": acc_a,
                "accuracy_b": acc_b,
                "only_a_right": only_a,
                "only_b_right": only_b,
                "p_value": p,
            })
        );
    } else {
        println!("{} held-out pairs of {} that neither run trained on:", n, a.source);
        println!("  A {}: accuracy {acc_a:.4}", args.a.display());
        println!("  B {}: accuracy {acc_b:.4}", args.b.display());
        println!("  only A right on {only_a} pairs, only B on {only_b}; exact McNemar p = {p:.2e} (two-sided)");
    }
    Ok(())
}
