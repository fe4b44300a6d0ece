//! `prefscope eval`: a trained run scored on its held-out pairs or on another file.
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::checkpoint::{check_fits, load_preference_model, read_metadata};
use prefscope_core::reward::embeddings::{ENCODER_KEY, SOURCE_KEY, read_pair_embeddings};
use prefscope_core::reward::metrics::{EvalReport, PairScore, evaluate_scores};
use prefscope_core::text::minilm;
use prefscope_core::text::pairs::{OnError, PairReader, TextFormat, TextPair};
use prefscope_core::text::rewardbench2::{self, Rb2Row};
use prefscope_core::reward::data::is_held_out;
use prefscope_core::text::trainer::same_file;
use prefscope_core::reward::train::{evaluate, pair_logits, sign_accuracy};
use prefscope_core::{ModelKind, PairDataset, RunConfig};
use serde_json::json;

use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run_config::EvalArgs;
use crate::run_folder::{read_checkpoint, save_eval_report};


pub(crate) struct EvalJob {
    weights: Vec<u8>,
    /// Another file to score in full, for a head trained on embeddings: an embedding file
    /// (`.safetensors`), or a pair file that is embedded here the way the head's file was.
    data: Option<PathBuf>,
    format: TextFormat,
    on_error: OnError,
    /// `--benchmark rewardbench2`: --data's rows, scored as RewardBench 2 does.
    rb2: Option<Vec<Rb2Row>>,
}

/// What an eval scores: the data, which of its pairs, and what the report says about them.
pub(crate) struct Scored {
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
        let (mut text, skipped) = match &self.rb2 {
            Some(rows) => (rewardbench2::pairs(rows), 0),
            None => {
                let mut reader = PairReader::open(path, self.format, self.on_error)?;
                let text: Vec<TextPair> = reader.by_ref().collect::<prefscope_core::Result<_>>()?;
                (text, reader.skipped)
            }
        };
        // The file the head's embeddings came from (embedding files record its name): score only
        // the lines its training held out, as for a text run's own file.
        let trained_on_it = self.rb2.is_none() && path.file_name().is_some_and(|n| meta.get(SOURCE_KEY).is_some_and(|s| n.to_string_lossy() == *s));
        if trained_on_it {
            // Only files with line numbers were split by line; an older one's split is a shuffle
            // that cannot be matched to lines, and scoring it all would include training pairs.
            if read_pair_embeddings(&own_bytes)?.source_lines.is_empty() {
                bail!("{} has no line numbers, so its held-out lines of {source} are unknown; score the embedding file itself (`eval RUN` without --data)", own.display());
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
        Ok(Scored { pairs: (0..text.len()).collect(), dataset, split, source, categories, skipped })
    }
}

impl BackendJob for EvalJob {
    type Output = (Option<EvalReport>, serde_json::Value);

    fn run<B: AutodiffBackend>(mut self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let (head, model) = load_preference_model::<B>(std::mem::take(&mut self.weights), &device)?;
        if self.rb2.is_some() && model.kind() != ModelKind::Bt {
            bail!("RewardBench 2 ranks each prompt's responses by a scalar reward; a `{}` model scores pairs only", model.kind().name());
        }
        let Scored { dataset, pairs, split, source, categories, skipped } = self.scored::<B>(&head.config, &device, backend)?;
        check_fits(&head, &dataset)?;
        let model = model.valid();
        if let Some(rows) = &self.rb2 {
            let logits = pollster::block_on(pair_logits(&model, &dataset, &pairs, &device))?;
            return Ok((None, crate::eval_report::rewardbench2_output(&source, rows, &logits, backend)?));
        }
        let e = pollster::block_on(evaluate(&model, &dataset, &pairs, &device))?;
        let sign = pollster::block_on(sign_accuracy(&model, &dataset, &pairs, &device))?;
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
        // Data with one gold rating per item: does the reward's sign say good or bad (Eurus)?
        out["sign_accuracy"] = json!(sign);
        // A context-aware model on its own held-out pairs: serve annotators whose context is
        // hidden by inferring it from k of their labels (CARM's two-step model).
        if model.kind() == ModelKind::ContextBt && pairs == dataset.eval {
            use prefscope_core::reward::context::{ANNOTATORS, ContextInference, SHOTS, distinct_contexts, logits_under_each_context};
            let contexts = distinct_contexts(&dataset);
            let table = pollster::block_on(logits_under_each_context::<B::InnerBackend>(&dataset, &dataset.eval, &contexts, &device, |c, r, p| model.logits(c, r, Some(p))))?;
            let annotators = ContextInference { annotators: ANNOTATORS, seed: head.config.seed };
            if let Ok(acc) = annotators.accuracy(&dataset, &contexts, &table, &SHOTS) {
                out["context_inferred_accuracy"] = json!(SHOTS.iter().zip(&acc).map(|(k, a)| json!({ "k": k, "accuracy": a })).collect::<Vec<_>>());
            }
        }
        // PrefPalette: each community's attention over the attributes, its profile.
        if let prefscope_core::reward::model::PreferenceModel::AttributeAttention(m) = &model {
            let found = pollster::block_on(prefscope_core::reward::attributes::profiles(m, &dataset, &device))?;
            let rows: Vec<_> = found.iter().map(|p| json!({ "context": p.context, "attention": p.attention.iter().map(|(n, w)| json!({ "attribute": n, "weight": w })).collect::<Vec<_>>() })).collect();
            out["attention_profiles"] = json!(rows);
        }
        // DMoERM: how often the router sends a pair's prompt to its own task.
        if let prefscope_core::reward::model::PreferenceModel::ExpertMixture(m) = &model
            && dataset.pair_groups.len() == dataset.pairs.len()
        {
            out["router_accuracy"] = json!(pollster::block_on(prefscope_core::reward::experts::router_accuracy(m, &dataset, &pairs, &device))?);
        }
        out["probability"] = json!(e.probability);
        out["split"] = json!(split);
        out["data"] = json!(source);
        out["skipped_lines"] = json!(skipped);
        out["backend"] = json!(backend.name());
        Ok((Some(report), out))
    }
}

/// A tiny-LM policy run scored on RewardBench 2 rows by its implicit reward,
/// β (log π(y|x) − log π_ref(y|x)), as RewardBench scores DPO-trained models.
struct PolicyEvalJob {
    weights: Vec<u8>,
    rows: Vec<Rb2Row>,
    source: String,
}

impl BackendJob for PolicyEvalJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        use prefscope_core::policy::lm_scoring::{implicit_rewards, load_lm_policy};
        let (pair, beta) = load_lm_policy::<B::InnerBackend>(self.weights, &device)?;
        let items: Vec<(&str, &str)> = self.rows.iter().flat_map(|r| r.responses.iter().map(move |y| (r.prompt.as_str(), y.as_str()))).collect();
        let rewards = implicit_rewards(&pair, beta, &items, &device)?;
        let logits = prefscope_core::text::rewardbench2::pair_logits(&self.source, &self.rows, &rewards)?;
        let mut out = crate::eval_report::rewardbench2_output(&self.source, &self.rows, &logits, backend)?;
        out["scorer"] = json!("implicit reward: beta * (log pi - log pi_ref) over the response bytes the tiny LM's context holds");
        out["beta"] = json!(beta);
        Ok(out)
    }
}

pub fn eval(args: EvalArgs) -> Result<()> {
    if let Some(weights) = crate::run_folder::read_policy_checkpoint(args.run())? {
        let (Some(rows), Some(data)) = (crate::eval_report::rb2_rows(&args)?, args.data.as_ref()) else {
            bail!("{} is a policy run: score it by its implicit reward on RewardBench 2 lines with --benchmark rewardbench2 --data FILE", args.run().display());
        };
        let out = dispatch(args.backend.backend, PolicyEvalJob { weights, rows, source: data.display().to_string() })?;
        save_eval_report(args.run(), &out)?;
        if args.json {
            println!("{out}");
        } else {
            crate::eval_report::print_eval(args.run(), None, &out);
        }
        return Ok(());
    }
    let (weights_path, weights) = read_checkpoint(args.run())?;
    let meta = prefscope_core::reward::checkpoint::read_metadata(&weights).with_context(|| weights_path.display().to_string())?;
    if meta.get(prefscope_core::reward::checkpoint::KIND_KEY).map(String::as_str) == Some(prefscope_core::text::trainer::TEXT_REWARD_MODEL) {
        return crate::text::eval(args, weights);
    }
    let rb2 = crate::eval_report::rb2_rows(&args)?;
    let job = EvalJob { weights, data: args.data.clone(), format: TextFormat::parse(&args.format)?, on_error: crate::text::parse_on_error(&args.on_error)?, rb2 };
    let (report, out) = dispatch(args.backend.backend, job)?;
    save_eval_report(args.run(), &out)?;
    if args.json {
        println!("{out}");
    } else {
        crate::eval_report::print_eval(args.run(), report.as_ref(), &out);
    }
    Ok(())
}
