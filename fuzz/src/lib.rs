//! Fuzz harnesses: one function per reader of files that come from strangers. Each feeds the
//! bytes to the reader as the CLI or the page would and, where the reader accepts them, checks
//! that what it returns survives a write and a second read unchanged.
//!
//! libFuzzer drives them through `fuzz_targets/` (`cargo +nightly fuzz run --features libfuzzer
//! TARGET`, see `scripts/fuzz.sh`); `tests/corpus.rs` replays the committed corpus and every
//! crash found so far through the same functions on stable, as part of the workspace's tests.
//! A panic, an allocation over the limit or a hang in any of them is a bug in the reader.

use burn::backend::NdArray;
use prefscope_core::reward::{checkpoint, embeddings};
use prefscope_core::text::pairs::{self, OnError, PairReader, TextFormat};

type B = NdArray<f32>;

/// The harnesses, by target name (the folder names under `corpus/` and `regressions/`).
pub const TARGETS: [(&str, fn(&[u8])); 7] = [
    ("pairs_jsonl", pairs_jsonl),
    ("gpm_jsonl", gpm_jsonl),
    ("config_toml", config_toml),
    ("checkpoint", checkpoint),
    ("embeddings", embeddings),
    ("comparisons", comparisons),
    ("tokenizer", tokenizer),
];

/// TRL / hh-rlhf pair JSONL, plain or gzipped. The first byte picks the format (its low two
/// bits), gzip (bit 2) and what to do with a bad line (bit 3); the rest is the file.
pub fn pairs_jsonl(data: &[u8]) {
    let Some((&mode, file)) = data.split_first() else { return };
    let format = [TextFormat::Auto, TextFormat::Standard, TextFormat::Conversational, TextFormat::HhRlhf][usize::from(mode & 3)];
    let on_error = if mode & 8 != 0 { OnError::Skip } else { OnError::Stop };
    let mut reader = PairReader::new("fuzz.jsonl", pairs::decoded(file, mode & 4 != 0), format, on_error);
    let mut last_line = 0;
    for pair in reader.by_ref() {
        let Ok(pair) = pair else { break };
        assert!(pair.line > last_line, "lines go forward");
        last_line = pair.line;
        // What was read is what a text run embeds: it must be valid JSON again.
        serde_json::to_string(&pair).expect("a pair serialises");
    }
}

/// GPM's `{"chosen", "reject"}` JSONL, as the page's drop zone reads it.
pub fn gpm_jsonl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ds) = prefscope_core::reward::data::parse_gpm_custom("fuzz.jsonl", text) {
        assert_eq!(ds.items.len(), ds.dim * ds.dim);
        assert!(ds.pairs.iter().all(|&(c, r)| c < ds.dim && r < ds.dim && c != r));
    }
}

/// Run configs in TOML (`prefscope train --config`, and the page's URL state), feature-vector and
/// text runs; an accepted config written back and read again must be the same config.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = prefscope_core::RunConfig::from_toml("fuzz.toml", text) {
        let again = prefscope_core::RunConfig::from_toml("again.toml", &cfg.to_toml()).expect("a written config reads back");
        assert_eq!(again, cfg);
    }
    if let Ok(cfg) = prefscope_core::text::trainer::TextRunConfig::from_toml("fuzz.toml", text) {
        let again = prefscope_core::text::trainer::TextRunConfig::from_toml("again.toml", &cfg.to_toml()).expect("a written config reads back");
        assert_eq!(again.to_toml(), cfg.to_toml());
    }
}

/// Model checkpoints (`model.safetensors` from `prefscope train` or the page's Export), both
/// kinds. A loaded model saved and loaded again gives the same bytes.
pub fn checkpoint(data: &[u8]) {
    let device = Default::default();
    if let Ok((head, model)) = checkpoint::load_preference_model::<B>(data.to_vec(), &device) {
        let saved = checkpoint::save_preference_model(&model, &head.config, head.input_dim, head.prompt_dim, head.step).expect("a loaded model saves");
        let (_, again) = checkpoint::load_preference_model::<B>(saved.clone(), &device).expect("a saved model loads");
        let resaved = checkpoint::save_preference_model(&again, &head.config, head.input_dim, head.prompt_dim, head.step).expect("a loaded model saves");
        assert_eq!(saved, resaved);
    }
    if let Ok((config, tok, model)) = prefscope_core::text::trainer::load_text_model::<B>(data.to_vec(), &device) {
        let saved = prefscope_core::text::trainer::save_text_model(&model, &config, &tok, 0).expect("a loaded model saves");
        prefscope_core::text::trainer::load_text_model::<B>(saved, &device).expect("a saved model loads");
    }
}

/// Pair-embedding files (`prefscope embed`, the page's drop zone): read, written, read again.
pub fn embeddings(data: &[u8]) {
    if let Ok(ds) = embeddings::read_pair_embeddings(data) {
        let meta = checkpoint::read_metadata(data).expect("an accepted file has metadata");
        let field = |k: &str| meta.get(k).cloned().unwrap_or_default();
        let bytes = embeddings::write_pair_embeddings(&ds, &field(embeddings::ENCODER_KEY), &field(embeddings::SOURCE_KEY)).expect("an accepted file writes back");
        assert_eq!(embeddings::read_pair_embeddings(&bytes).expect("a written file reads"), ds);
    }
}

/// choix JSON (pairs, rankings, top-1 choices) and arena battles JSONL (`prefscope rank`). An
/// accepted file has a finite likelihood at equal strengths.
pub fn comparisons(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = prefscope_core::studies::rank::read_comparisons("fuzz.json", text) {
        assert!(c.log_likelihood(&vec![0.0; c.n_items()]).is_finite());
    }
}

/// `tokenizer.json` (a text run's `tokenizer.path`, and the one inside text checkpoints). An
/// accepted tokenizer encodes a pair of texts.
pub fn tokenizer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(tok) = prefscope_core::text::trainer::PairTokenizer::from_json("tokenizer.json", text) {
        let _ = tok.encode("Human: is this fine? Assistant: yes, 42.");
    }
}
