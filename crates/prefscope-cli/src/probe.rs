//! `prefscope probe RUN [--data FILE]`: linear probes on a frozen reward model (MRMBench;
//! `prefscope_core::studies::probe`). Each per-item attribute the data knows is probed on three
//! representations: the trained model's last hidden layer, the same layer of a randomly
//! initialised model of the same shape (the control), and the model's input (for a head on
//! embeddings, the MiniLM vectors). Writes `RUN/probe.json`; `prefscope plot RUN` draws it.
//!
//! A transformer reward model (a text run) is probed on its last-token state (after the closing
//! LayerNorm: what its head reads), for each response of a pair file (the run's held-out pairs
//! unless `--data` names another), with two attributes read from the text: `length` (above the
//! median number of characters) and `refusal`. Its "input" is the response's mean token
//! embedding in the control model: the bag of its tokens, randomly projected.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::checkpoint::load_preference_model;
use prefscope_core::studies::probe::{Attribute, ProbeResult, dataset_attributes, item_representations, probe};
use prefscope_core::text::pairs::{OnError, PairReader, TextFormat, TextPair};
use prefscope_core::text::trainer::{held_out_pairs, load_text_model};
use prefscope_core::text::transformer::{TokenBatch, assemble};
use serde_json::json;

use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run_folder::{read_checkpoint, write_atomic};

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// A run folder (or its model.safetensors) of a bt, gpm, multi-objective or mixture model.
    #[command(flatten)]
    run: crate::run_config::RunPath,
    /// The pair file a head's embedding file was made from (`prefscope embed`): adds the
    /// `refusal` attribute, read from each response's text. For a transformer run: the pairs
    /// whose responses are probed (default: the run's held-out pairs).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the probes' 70/30 split of the items and of the random control model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: crate::BackendArgs,
}

/// Phrases that mark a response as a refusal (lower-case; matched anywhere in the response).
pub const REFUSAL_PHRASES: [&str; 10] = ["i'm sorry", "i am sorry", "i can't", "i cannot", "i won't", "i will not", "i'm not able", "i am not able", "as an ai", "i apologize"];

pub fn is_refusal(text: &str) -> bool {
    let t = text.to_lowercase().replace('\u{2019}', "'");
    REFUSAL_PHRASES.iter().any(|p| t.contains(p))
}

struct ProbeJob {
    weights: Vec<u8>,
    data: Option<PathBuf>,
    seed: u64,
}

struct Probed {
    attributes: Vec<(String, usize)>,
    representations: Vec<(&'static str, usize, Vec<ProbeResult>)>,
    items: usize,
    source: String,
}

impl BackendJob for ProbeJob {
    type Output = Probed;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Probed> {
        let (head, model) = load_preference_model::<B>(self.weights, &device)?;
        let cfg = &head.config;
        let ds = cfg.dataset()?;
        let source = cfg.embeddings.as_ref().map_or_else(|| format!("the `{}` scenario", cfg.scenario.kind.name()), |p| p.display().to_string());
        let mut attrs = dataset_attributes(&ds);
        if let Some(path) = &self.data {
            if ds.source_lines.is_empty() {
                bail!("--data adds attributes from the text of a head's embedding file; this run ({source}) has no source lines to match");
            }
            let mut text: HashMap<usize, (String, String)> = HashMap::new();
            for p in PairReader::open(path, TextFormat::Auto, OnError::Stop)? {
                let p = p?;
                text.insert(p.line, (p.chosen, p.rejected));
            }
            let mut refusal: Vec<Option<bool>> = vec![None; ds.n_items()];
            for (i, &(c, r)) in ds.pairs.iter().enumerate() {
                let line = ds.source_lines[i];
                let (chosen, rejected) = text.get(&line).with_context(|| format!("{}: no pair at line {line}, which the embedding file {source} came from; pass the file it was embedded from", path.display()))?;
                (refusal[c], refusal[r]) = (Some(is_refusal(chosen)), Some(is_refusal(rejected)));
            }
            let labels: Vec<usize> = refusal.iter().map(|v| usize::from(v.unwrap_or(false))).collect();
            attrs.push(Attribute { name: "refusal".into(), classes: 2, labels });
        }
        if attrs.is_empty() {
            bail!("{source} has no per-item attributes to probe (the multi-objective, linear and overopt scenarios have ratings; heads on embedding files have lengths)");
        }
        let model = model.valid();
        let (trained, width) = pollster::block_on(item_representations(&model, &ds, &device))?;
        // The control: the same architecture, freshly initialised from another seed.
        let random = cfg.model.init::<B::InnerBackend>(ds.dim, ds.prompt_dim, control_seed(self.seed), &device)?;
        let (control, _) = pollster::block_on(item_representations(&random, &ds, &device))?;
        Probed::new(&attrs, [(width, &trained), (width, &control), (ds.dim, &ds.items)], self.seed, source)
    }
}

/// The random control model's seed.
fn control_seed(seed: u64) -> u64 {
    seed.wrapping_add(1_000_003)
}

impl Probed {
    /// Probe every attribute on the trained, random and input representations (width, rows).
    fn new(attrs: &[Attribute], [trained, random, input]: [(usize, &[f32]); 3], seed: u64, source: String) -> Result<Self> {
        let representations = vec![
            ("trained", trained.0, probe(trained.1, trained.0, attrs, seed)?),
            ("random", random.0, probe(random.1, random.0, attrs, seed)?),
            ("input", input.0, probe(input.1, input.0, attrs, seed)?),
        ];
        let attributes = attrs.iter().map(|a| (a.name.clone(), a.labels.iter().filter(|&&l| l == 1).count())).collect();
        Ok(Probed { attributes, representations, items: attrs.first().map_or(0, |a| a.labels.len()), source })
    }
}

/// The most pairs a transformer run's probe reads (two responses each).
const TEXT_PROBE_PAIRS: usize = 1000;
/// Responses per forward pass.
const TEXT_PROBE_BATCH: usize = 64;

struct TextProbeJob {
    weights: Vec<u8>,
    data: Option<PathBuf>,
    seed: u64,
}

impl BackendJob for TextProbeJob {
    type Output = Probed;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Probed> {
        let (cfg, tok, model) = load_text_model::<B::InnerBackend>(self.weights, &device)?;
        let (pairs, source): (Vec<TextPair>, String) = match &self.data {
            Some(path) => (PairReader::open(path, TextFormat::Auto, OnError::Stop)?.take(TEXT_PROBE_PAIRS).collect::<prefscope_core::Result<_>>()?, path.display().to_string()),
            None => (held_out_pairs(&cfg.data, cfg.seed, TEXT_PROBE_PAIRS)?, format!("the held-out pairs of {}", cfg.data.path.display())),
        };
        // Every distinct (prompt, response) once, as the model reads it.
        let mut seen = std::collections::HashSet::new();
        let (mut rows, mut lengths, mut refusal) = (vec![], vec![], vec![]);
        for p in &pairs {
            let prompt = tok.encode(&p.prompt)?;
            for response in [&p.chosen, &p.rejected] {
                if seen.insert((p.prompt.as_str(), response.as_str())) {
                    rows.push(assemble(&prompt, &tok.encode(response)?, cfg.model.max_len, tok.special));
                    lengths.push(response.chars().count() as f64);
                    refusal.push(usize::from(is_refusal(response)));
                }
            }
        }
        let attrs = vec![Attribute::above_median("length", &lengths), Attribute { name: "refusal".into(), classes: 2, labels: refusal }];
        // The control: the same architecture, freshly initialised from another seed.
        let control = cfg.model.init::<B::InnerBackend>(control_seed(self.seed), &device);
        let read = |t: burn::tensor::Tensor<B::InnerBackend, 2>| t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| anyhow::anyhow!("reading a representation: {e:?}"));
        let (mut trained, mut random, mut input) = (vec![], vec![], vec![]);
        for chunk in rows.chunks(TEXT_PROBE_BATCH) {
            let batch = TokenBatch::new(chunk, tok.special.pad);
            let (tokens, last) = batch.tensors::<B::InnerBackend>(&device);
            trained.extend(read(model.last_token_states(tokens.clone(), last.clone()))?);
            random.extend(read(control.last_token_states(tokens.clone(), last))?);
            input.extend(read(control.mean_token_embedding(tokens, &batch.last))?);
        }
        let d = cfg.model.d_model;
        Probed::new(&attrs, [(d, &trained), (d, &random), (d, &input)], self.seed, source)
    }
}

pub fn probe_run(args: ProbeArgs) -> Result<()> {
    let run = args.run.get().to_path_buf();
    let (weights_path, weights) = read_checkpoint(&run)?;
    let meta = prefscope_core::reward::checkpoint::read_metadata(&weights).with_context(|| weights_path.display().to_string())?;
    let text = meta.get(prefscope_core::reward::checkpoint::KIND_KEY).map(String::as_str) == Some(prefscope_core::text::trainer::TEXT_REWARD_MODEL);
    let p = if text {
        dispatch(args.backend.backend, TextProbeJob { weights, data: args.data.clone(), seed: args.seed })?
    } else {
        dispatch(args.backend.backend, ProbeJob { weights, data: args.data.clone(), seed: args.seed })?
    };
    let reps: serde_json::Map<String, serde_json::Value> = p.representations.iter().map(|(name, width, r)| (name.to_string(), json!({ "width": width, "probes": r }))).collect();
    let out = json!({
        "run": run.display().to_string(),
        "data": p.source,
        "items": p.items,
        "seed": args.seed,
        "split": "70 % of the items to fit, 30 % to score",
        "probe": "bias-free softmax regression (logistic for two classes), L2 1e-3 on RMS-scaled features",
        "attributes": p.attributes.iter().map(|(n, pos)| json!({ "name": n, "positive": pos })).collect::<Vec<_>>(),
        "input": if text { "each response's mean token embedding in the control model (its bag of tokens, randomly projected)" } else { "the model's input features" },
        "representations": reps,
    });
    if run.is_dir() {
        write_atomic(&run.join("probe.json"), serde_json::to_string_pretty(&out)?.as_bytes())?;
    }
    if args.json {
        println!("{out}");
        return Ok(());
    }
    println!("linear probes on {} ({} items; held-out accuracy with its 95 % Wilson interval, then balanced accuracy):", p.source, p.items);
    println!("{:<14} {:>31} {:>31} {:>31} {:>9}", "attribute", "trained", "random (control)", "input", "majority");
    for (k, (name, _)) in p.attributes.iter().enumerate() {
        let cell = |r: &ProbeResult| format!("{:.3} ({:.3} – {:.3}) / {:.3}", r.accuracy, r.accuracy_ci95[0], r.accuracy_ci95[1], r.balanced_accuracy);
        let [t, c, x] = [0, 1, 2].map(|i| &p.representations[i].2[k]);
        println!("{name:<14} {:>31} {:>31} {:>31} {:>9.3}", cell(t), cell(c), cell(x), t.majority);
    }
    if run.is_dir() {
        println!("probes in {}", run.join("probe.json").display());
    }
    Ok(())
}
