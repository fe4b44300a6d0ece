//! Replays every committed fuzz input through its harness on stable: the seed corpus (real files
//! and their variants) and `regressions/`, one file per crash the fuzzer found, kept after the fix.

use std::path::Path;

#[test]
fn every_corpus_and_regression_input_is_read_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, harness) in prefscope_fuzz::TARGETS {
        let mut seen = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else { continue };
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).unwrap();
                let caught = std::panic::catch_unwind(|| harness(&bytes));
                assert!(caught.is_ok(), "{name}: {} panicked", entry.path().display());
                seen += 1;
            }
        }
        assert!(seen > 0, "{name} has no committed inputs");
    }
}

/// Writes the seed corpus from the real data in tests/data and from files the project itself writes
/// (checkpoints, embedding files, tokenizers), each small enough for the fuzzer's 16 KiB inputs.
/// Run by hand when a reader gains a format: `cargo test -p prefscope-fuzz -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    use prefscope_core::reward::{checkpoint, embeddings};
    use prefscope_core::{ModelConfig, ModelKind, RunConfig, ScenarioKind};
    use std::io::{BufRead, Write};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../tests/data");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(bytes.len() <= 16384, "{target}/{name} is {} bytes", bytes.len());
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let gzip = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let with_mode = |mode: u8, body: &[u8]| [&[mode][..], body].concat();

    // Pair JSONL: short hh-rlhf lines, TRL standard and conversational lines, a bad line.
    let hh: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(shared.join("hh-rlhf-harmless-base-a.jsonl.gz")).unwrap()))
        .lines()
        .map(Result::unwrap)
        .filter(|l| l.len() < 900)
        .take(3)
        .collect();
    let hh = hh.join("\n") + "\n";
    let standard = "{\"prompt\": \"The sky is\", \"chosen\": \" blue.\", \"rejected\": \" green.\", \"margin\": 1.5}\n{\"chosen\": \"Yes\", \"rejected\": \"No\", \"subset\": \"chat\"}\n";
    let conversational = r#"{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]}
{"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}], "chosen_ratings": [4, 3], "rejected_ratings": [1, 2]}
"#;
    put("pairs_jsonl", "hh-rlhf", &with_mode(3, hh.as_bytes()));
    put("pairs_jsonl", "hh-rlhf-gz", &with_mode(3 | 4, &gzip(hh.as_bytes())));
    put("pairs_jsonl", "standard", &with_mode(1, standard.as_bytes()));
    put("pairs_jsonl", "conversational-gz", &with_mode(2 | 4, &gzip(conversational.as_bytes())));
    put("pairs_jsonl", "auto-skip-bad-line", &with_mode(8, format!("{standard}{{\"chosen\": 3}}\nnot json\n{conversational}").as_bytes()));

    // GPM JSONL.
    put("gpm_jsonl", "custom_test_data", &std::fs::read(shared.join("gpm_custom_test_data.jsonl")).unwrap());

    // Configs: every scenario with its default model, and a text run's.
    for kind in [ScenarioKind::Cyclic, ScenarioKind::MultiObjective, ScenarioKind::Mixture, ScenarioKind::Worldpm] {
        let model = if kind == ScenarioKind::MultiObjective { ModelKind::MultiObjective } else { ModelKind::Gpm };
        put("config_toml", kind.name(), RunConfig::new(kind, model).to_toml().as_bytes());
    }
    put("config_toml", "worldpm-sweep", &std::fs::read(root.join("../bench/worldpm.toml")).unwrap());
    put("config_toml", "text", prefscope_core::text::trainer::TextRunConfig::new("pairs.jsonl").to_toml().as_bytes());

    // Checkpoints: small models of each kind that has weights to size, and a tiny text model.
    let device = Default::default();
    for (kind, input, prompt) in [(ModelKind::Bt, 2, 0), (ModelKind::Gpm, 2, 0), (ModelKind::MultiObjective, 2, 0), (ModelKind::Mixture, 2, 3)] {
        let mut config = RunConfig::new(ScenarioKind::Cyclic, kind);
        config.model = ModelConfig { hidden: vec![4], ..ModelConfig::new(kind) };
        let model = config.model.init::<burn::backend::NdArray<f32>>(input, prompt, 0, &device).unwrap();
        put("checkpoint", kind.name(), &checkpoint::save_preference_model(&model, &config, input, prompt, 7).unwrap());
    }
    let texts = ["Human: hello there Assistant: hi, how can I help?", "Human: what is two plus two Assistant: four", "the quick brown fox jumps over the lazy dog"];
    let tok = prefscope_core::text::trainer::PairTokenizer::train(texts.iter().cycle().take(30).map(|s| s.to_string()), 64).unwrap();
    put("tokenizer", "bpe-64", tok.to_json().as_bytes());
    let mut text_config = prefscope_core::text::trainer::TextRunConfig::new("pairs.jsonl");
    text_config.model = prefscope_core::text::transformer::TfmRmConfig { vocab: tok.vocab_size(), d_model: 4, n_layers: 1, n_heads: 1, d_ff: 4, max_len: 6, ..Default::default() };
    let text_model = text_config.model.init::<burn::backend::NdArray<f32>>(0, &device);
    put("checkpoint", "text", &prefscope_core::text::trainer::save_text_model(&text_model, &text_config, &tok, 3).unwrap());

    // Embedding files: a few pairs of the multi-objective scenario (ratings, margins, lines).
    let mut config = RunConfig::new(ScenarioKind::MultiObjective, ModelKind::MultiObjective);
    config.scenario.n_pairs = 12;
    let mut ds = config.dataset().unwrap();
    ds.source_lines = (1..=ds.pairs.len()).collect();
    ds.response_lengths = (0..ds.pairs.len()).map(|i| (10 + i, 20 + i)).collect();
    put("embeddings", "rated", &embeddings::write_pair_embeddings(&ds, "all-MiniLM-L6-v2", "pairs.jsonl").unwrap());

    // Comparisons: choix's three shapes and arena battles.
    for name in ["pairwise", "rankings", "top1"] {
        put("comparisons", name, &std::fs::read(shared.join(format!("choix_testcase-{name}-1.json"))).unwrap());
    }
    let battles = "{\"model_a\": \"a\", \"model_b\": \"b\", \"winner\": \"model_a\"}\n{\"model_a\": \"b\", \"model_b\": \"c\", \"winner\": \"tie (bothbad)\"}\n{\"model_a\": \"c\", \"model_b\": \"a\", \"winner\": \"model_b\"}\n";
    put("comparisons", "battles", battles.as_bytes());
}
