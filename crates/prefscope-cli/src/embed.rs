//! `prefscope embed`: text preference pairs → an embedding file of all-MiniLM-L6-v2 sentence
//! vectors (`prefscope_core::reward::embeddings::write_pair_embeddings`), on which preference heads train
//! natively or in the page.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use prefscope_core::AutodiffBackend;
use clap::ValueEnum;
use prefscope_core::reward::embeddings::write_pair_embeddings;
use prefscope_core::text::minilm::{self, MiniLm};
use prefscope_core::PairDataset;
use prefscope_core::text::pairs::{OnError, PairReader, TextFormat, TextPair};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run_folder::write_atomic;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// Decide per line from the shape of `chosen`.
    Auto,
    /// TRL standard: prompt/chosen/rejected strings (or an implicit prompt).
    Standard,
    /// TRL conversational: lists of {role, content} messages.
    Conversational,
    /// Anthropic hh-rlhf transcripts.
    HhRlhf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ItemsArg {
    /// Each response after the end of its prompt (judged in context).
    PromptResponse,
    /// Each response alone (the prompt stays in the pair's prompt features).
    Response,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnErrorArg {
    /// Stop at the first malformed line.
    Stop,
    /// Skip malformed lines and report how many.
    Skip,
}

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// A pair file, .jsonl or .jsonl.gz.
    #[arg(long)]
    data: PathBuf,
    /// The pair file's layout (auto: read from its first line).
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// A malformed line: stop with its file, line and field, or skip it and count it.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Stop)]
    on_error: OnErrorArg,
    /// What each response's row embeds.
    #[arg(long, value_enum, default_value_t = ItemsArg::PromptResponse)]
    items: ItemsArg,
    /// The embedding file to write (.safetensors). (`--out` is a folder in every command; a file
    /// written is `--output`. `--out` here is a hidden alias from before.)
    #[arg(long, alias = "out", value_name = "FILE")]
    output: PathBuf,
    /// The MiniLM folder (default: $PREFSCOPE_MINILM_DIR, else the cache `cargo xtask setup`
    /// fills). (`--model` names a model kind elsewhere; it is a hidden alias here.)
    #[arg(long, alias = "model", value_name = "DIR")]
    encoder: Option<PathBuf>,
    /// Print one JSON summary object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

struct EmbedJob {
    args: EmbedArgs,
}

impl BackendJob for EmbedJob {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<()> {
        let args = self.args;
        let format = match args.format {
            FormatArg::Auto => TextFormat::Auto,
            FormatArg::Standard => TextFormat::Standard,
            FormatArg::Conversational => TextFormat::Conversational,
            FormatArg::HhRlhf => TextFormat::HhRlhf,
        };
        let on_error = match args.on_error {
            OnErrorArg::Stop => OnError::Stop,
            OnErrorArg::Skip => OnError::Skip,
        };
        let mut reader = PairReader::open(&args.data, format, on_error)?;
        let pairs = reader.by_ref().collect::<prefscope_core::Result<Vec<_>>>()?;
        for message in &reader.skip_messages {
            eprintln!("skipped {message}");
        }
        if reader.skipped > reader.skip_messages.len() {
            eprintln!("… and {} more malformed lines", reader.skipped - reader.skip_messages.len());
        }
        if pairs.is_empty() {
            bail!("{} holds no pairs", args.data.display());
        }

        let dir = args.encoder.clone().unwrap_or_else(minilm::default_dir);
        let start = Instant::now();
        let items = match args.items {
            ItemsArg::PromptResponse => minilm::ItemText::PromptResponse,
            ItemsArg::Response => minilm::ItemText::Response,
        };
        let data = embed_pairs::<B>(&dir, &pairs, items, &device, backend)?;
        let seconds = start.elapsed().as_secs_f64();
        let mut data = data;
        prefscope_core::text::pairs::carry_labels(&args.data.display().to_string(), &pairs, &mut data)?;
        let tied = data.pairs.iter().filter(|(c, r)| c == r).count();
        if tied > 0 {
            eprintln!("warning: {tied} pairs embed chosen and rejected identically (the responses agree on their first {} tokens)", minilm::MAX_SEQ_LEN - 2);
        }

        let source = args.data.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let encoder_name = format!("{} ({})", minilm::ENCODER_NAME, items.name());
        write_atomic(&args.output, &write_pair_embeddings(&data, &encoder_name, &source)?).with_context(|| format!("writing {}", args.output.display()))?;
        if args.json {
            println!(
                "{}",
                json!({
                    "pairs": data.pairs.len(),
                    "skipped": reader.skipped,
                    "items": data.n_items(),
                    "dim": data.dim,
                    "prompt_dim": data.prompt_dim,
                    "objectives": data.n_objectives,
                    "margins": !data.strengths.is_empty(),
                    "encoder": minilm::ENCODER_NAME,
                    "item_text": items.name(),
                    "backend": backend.name(),
                    "seconds": seconds,
                    "out": args.output.display().to_string(),
                })
            );
        } else {
            println!(
                "embedded {} pairs ({} distinct responses, {}-d{}{}) with {} on {} in {seconds:.1}s → {}{}",
                data.pairs.len(),
                data.n_items(),
                data.dim,
                if data.n_objectives > 0 { format!(", {} rated attributes", data.n_objectives) } else { String::new() },
                if data.strengths.is_empty() { "" } else { ", margins" },
                minilm::ENCODER_NAME,
                backend.describe(),
                args.output.display(),
                if reader.skipped > 0 { format!(" ({} malformed lines skipped)", reader.skipped) } else { String::new() }
            );
        }
        Ok(())
    }
}

/// Embed pairs with the MiniLM folder `dir`, with a progress bar (also `eval --data` of heads).
pub(crate) fn embed_pairs<B: AutodiffBackend>(dir: &Path, pairs: &[TextPair], items: minilm::ItemText, device: &B::Device, backend: BackendKind) -> Result<PairDataset> {
    // Inference only: the backend without autodiff. On the CPU a worker per core; a GPU backend
    // parallelises inside each batch.
    let threads = if matches!(backend, BackendKind::Cpu | BackendKind::Ndarray) { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { 1 };
    let encoder = MiniLm::<B::InnerBackend>::load(dir, device)?.with_threads(threads);
    let bar = crate::step_bar(0);
    let data = encoder.embed_pairs(pairs, items, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message("sequences");
    })?;
    bar.finish_and_clear();
    Ok(data)
}

pub fn embed(args: EmbedArgs) -> Result<()> {
    let kind = args.backend.backend;
    dispatch(kind, EmbedJob { args })
}
