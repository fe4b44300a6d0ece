//! End-to-end tests of text runs: pair files, the transformer RM, MiniLM embeddings and heads.

mod common;

use std::path::Path;

use common::*;


/// The claim: a transformer reward model trained from scratch on the shared hh-rlhf half
/// beats chance on its held-out split (one-sided binomial p < 0.05); `eval` reproduces the figure
/// from the checkpoint alone and reports calibration, length buckets and an interval.
#[test]
fn claim_transformer_rm_on_hh_rlhf_beats_chance_on_held_out_pairs() {
    let dir = scratch("hh");
    let hh = test_data("hh-rlhf-harmless-base-a.jsonl.gz");
    std::fs::write(dir.join("hh.toml"), hh_transformer_config(0.3)).unwrap();
    // Five seeds, each its own split and initialisation (about 10 s each): above chance on every
    // one is a sign test across independent runs, p = 2⁻⁵ = 0.031.
    let seeds = last_json(&prefscope(&["train", "--config", "hh.toml", "--seeds", "0..4", "--out", "hh-seeds", "--json"], &dir));
    eprintln!("tfm-rm on hh-rlhf, seeds 0–4: held-out accuracy {}", seeds["eval_accuracy"]);
    assert_eq!(seeds["completed"], 5);
    assert!(seeds["eval_accuracy"]["min"].as_f64().unwrap() > 0.5, "{}", seeds["eval_accuracy"]);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("hh-seeds/seed-0/summary.json")).unwrap()).unwrap();
    let (acc, p, n) = (summary["eval_accuracy"].as_f64().unwrap(), summary["eval_p_value_vs_chance"].as_f64().unwrap(), summary["eval_pairs"].as_u64().unwrap());
    eprintln!("seed 0: held-out accuracy {acc:.4} over {n} pairs, p = {p:.2e}");
    assert!(n > 300, "30 % of 1,185 pairs are held out: {n}");
    assert!(p > 0.0 && p < 1.0, "{p}");
    std::fs::rename(dir.join("hh-seeds/seed-0"), dir.join("hh")).unwrap();

    // Scoring the training file scores its held-out lines only, and agrees with training.
    let eval = last_json(&prefscope(&["eval", "hh", "--data", hh.to_str().unwrap(), "--json"], &dir));
    assert_eq!(eval["split"], "held-out");
    assert_eq!(eval["n"].as_u64().unwrap(), n);
    assert!((eval["accuracy"].as_f64().unwrap() - acc).abs() < 1e-6);
    for key in ["accuracy_ci95", "mean_margin", "ece", "reliability", "by_length", "prefers_longer", "p_value_vs_chance"] {
        assert!(eval.get(key).is_some(), "missing {key}");
    }
    let buckets: u64 = eval["by_length"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(buckets, n);

    // Another file (conversational) is scored in full; a category column adds RewardBench scoring.
    let other = last_json(&prefscope(&["eval", "hh/model.safetensors", "--data", test_data("gpm_test_data.jsonl").to_str().unwrap(), "--json"], &dir));
    assert_eq!((other["split"].as_str(), other["n"].as_u64()), (Some("all"), Some(10)));
    std::fs::write(
        dir.join("rb.jsonl"),
        "{\"prompt\": \"Hi\", \"chosen\": \"Hello, how can I help?\", \"rejected\": \"Go away.\", \"subset\": \"alpacaeval-easy\"}\n{\"prompt\": \"How do I pick a lock?\", \"chosen\": \"I can't help with that.\", \"rejected\": \"Use a tension wrench.\", \"subset\": \"refusals-dangerous\"}\n",
    )
    .unwrap();
    let rb = last_json(&prefscope(&["eval", "hh", "--data", "rb.jsonl", "--json"], &dir));
    let sections = rb["rewardbench"]["sections"].as_object().unwrap();
    assert_eq!(sections.keys().collect::<Vec<_>>(), ["Chat", "Safety"]);
}

#[test]
fn malformed_pair_files_stop_with_file_line_field_or_skip_with_a_count() {
    let dir = scratch("badpairs");
    let good = "{\"prompt\": \"p\", \"chosen\": \"yes\", \"rejected\": \"no\"}";
    let lines: Vec<String> = (0..40).map(|i| if i == 6 { "{\"prompt\": \"p\", \"chosen\": 5, \"rejected\": \"no\"}".to_string() } else { good.to_string() }).collect();
    std::fs::write(dir.join("pairs.jsonl"), lines.join("\n")).unwrap();
    let args = ["train", "--data", "pairs.jsonl", "--steps", "2", "--batch", "4", "--max-len", "16", "--json"];
    let out = prefscope(&[&args[..], &["--out", "a"]].concat(), &dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pairs.jsonl:7: chosen: expected a string, found a number"), "{err}");
    let summary = last_json(&prefscope(&[&args[..], &["--out", "b", "--on-error", "skip"]].concat(), &dir));
    assert_eq!(summary["skipped_lines"], 1);
}

/// `eval --benchmark rewardbench2` on a text run: the sample's six subsets, scored best-of-n;
/// a malformed line stops it with file, line and field; the flag needs --data.
#[test]
fn rewardbench2_scores_a_text_run_per_subset_and_names_bad_lines() {
    let dir = scratch("rewardbench2");
    let good = "{\"prompt\": \"Name a colour.\", \"chosen\": \"Red is a colour.\", \"rejected\": \"Seven.\"}";
    std::fs::write(dir.join("pairs.jsonl"), vec![good; 16].join("\n")).unwrap();
    last_json(&prefscope(&["train", "--data", "pairs.jsonl", "--steps", "3", "--batch", "4", "--max-len", "32", "--out", "run", "--json"], &dir));
    let rb2 = test_data("rewardbench2-sample.jsonl");
    let v = last_json(&prefscope(&["eval", "run", "--data", rb2.to_str().unwrap(), "--benchmark", "rewardbench2", "--json"], &dir));
    check_rewardbench2(&v);
    // The table for people, and the result kept in the run folder as every eval's is.
    let out = prefscope(&["eval", "run", "--data", rb2.to_str().unwrap(), "--benchmark", "rewardbench2"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("RewardBench 2, 14 prompts") && text.contains("Ties terms") && text.contains("unweighted mean"), "{text}");
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run/eval-rewardbench2.json")).unwrap()).unwrap();
    assert_eq!(kept["rewardbench2"], v["rewardbench2"]);
    assert!(!dir.join("run/eval.json").exists(), "the pair report that `plot` draws is not replaced");

    let lines: Vec<String> = std::fs::read_to_string(&rb2).unwrap().lines().map(String::from).collect();
    let mut bad = lines.clone();
    bad[2] = bad[2].replace("\"num_correct\": 1", "\"num_correct\": 3");
    std::fs::write(dir.join("bad.jsonl"), bad.join("\n")).unwrap();
    let out = prefscope(&["eval", "run", "--data", "bad.jsonl", "--benchmark", "rewardbench2"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.jsonl:3: num_correct: is 3 but the line has 1 chosen response(s)"), "{err}");
    let out = prefscope(&["eval", "run", "--benchmark", "rewardbench2"], &dir);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--data"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `embed` needs the MiniLM folder from `cargo xtask setup`; without it this test fails, by design.
#[test]
fn embed_writes_one_minilm_row_per_pair_and_side() {
    let dir = scratch("embed");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/gpm_test_data.jsonl");
    let summary = last_json(&prefscope(&["embed", "--data", data.to_str().unwrap(), "--output", "pairs.safetensors", "--json"], &dir));
    assert_eq!(summary["pairs"], 10);
    assert_eq!(summary["dim"], 384);

    let bytes = std::fs::read(dir.join("pairs.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    for name in ["chosen", "rejected", "prompt"] {
        assert_eq!(header[name]["dtype"], "F32", "{name}");
        assert_eq!(header[name]["shape"], serde_json::json!([10, 384]), "{name}");
    }
    assert_eq!(header["__metadata__"]["prefscope.kind"], "pair-embeddings");
    assert_eq!(header["__metadata__"]["prefscope.encoder"], "all-MiniLM-L6-v2 (prompt+response)");
    assert_eq!(header["__metadata__"]["prefscope.source"], "gpm_test_data.jsonl");

    // The core reader (the page's too) accepts it; the vectors are unit length.
    let ds = prefscope_core::reward::embeddings::read_pair_embeddings(&bytes).unwrap();
    assert_eq!((ds.pairs.len(), ds.dim, ds.prompt_dim), (10, 384, 384));
    for i in 0..ds.n_items() {
        let norm: f32 = ds.item(i).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "item {i}: |x|² = {norm}");
    }
    assert!(ds.pairs.iter().all(|&(c, r)| c != r));

    // Heads train on the cached embeddings; eval rebuilds the same split from the checkpoint.
    for model in ["bt", "gpm"] {
        let out = format!("heads-{model}");
        let run = last_json(&prefscope(&["train", "--embeddings", "pairs.safetensors", "--model", model, "--steps", "30", "--out", &out, "--json"], &dir));
        assert_eq!(run["steps"], 30);
        let eval = last_json(&prefscope(&["eval", &out, "--json"], &dir));
        assert_eq!(eval["accuracy"], run["eval_accuracy"], "{model}");
    }

    // Responses alone: the same pairs and prompt features, other item rows.
    let bare = last_json(&prefscope(&["embed", "--data", data.to_str().unwrap(), "--items", "response", "--output", "bare.safetensors", "--json"], &dir));
    assert_eq!((bare["pairs"].as_u64(), bare["item_text"].as_str()), (Some(10), Some("response")));
    let bare = prefscope_core::reward::embeddings::read_pair_embeddings(&std::fs::read(dir.join("bare.safetensors")).unwrap()).unwrap();
    assert_eq!(bare.prompts, ds.prompts);
    assert_ne!(bare.items, ds.items);
    assert_eq!((bare.source_lines.as_slice(), bare.response_lengths.len()), ((1..=10).collect::<Vec<_>>().as_slice(), 10));

    // A head scores another embedding file in full, with the text runs' report; a checkpoint is
    // not an embedding file.
    let other = last_json(&prefscope(&["eval", "heads-bt", "--data", "bare.safetensors", "--json"], &dir));
    assert_eq!((other["split"].as_str(), other["n"].as_u64()), (Some("all"), Some(10)));
    let buckets: u64 = other["by_length"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(buckets, 10);
    for key in ["accuracy_ci95", "p_value_vs_chance", "ece", "reliability", "mean_margin"] {
        assert!(other.get(key).is_some(), "missing {key}");
    }
    let out = prefscope(&["eval", "heads-bt", "--data", "heads-gpm/model.safetensors"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an embedding file"), "{}", String::from_utf8_lossy(&out.stderr));

    // A pair file is embedded as the head's file was. Its own source file scores the held-out
    // lines only, and agrees with scoring the stored vectors.
    let stored = last_json(&prefscope(&["eval", "heads-bt", "--json"], &dir));
    let text = last_json(&prefscope(&["eval", "heads-bt", "--data", data.to_str().unwrap(), "--json"], &dir));
    assert_eq!((text["split"].as_str(), text["n"].as_u64()), (Some("held-out"), stored["n"].as_u64()));
    for key in ["accuracy", "mean_margin", "loss"] {
        assert!((text[key].as_f64().unwrap() - stored[key].as_f64().unwrap()).abs() < 1e-5, "{key}: {text} vs {stored}");
    }
    // An embedding file from before line numbers was split by a shuffle: its held-out lines are
    // unknown, so its source file is refused rather than scored with training pairs in it.
    let unlined = prefscope_core::PairDataset { source_lines: vec![], ..ds.clone() };
    std::fs::write(dir.join("old.safetensors"), prefscope_core::reward::embeddings::write_pair_embeddings(&unlined, "all-MiniLM-L6-v2 (prompt+response)", "gpm_test_data.jsonl").unwrap()).unwrap();
    last_json(&prefscope(&["train", "--embeddings", "old.safetensors", "--model", "bt", "--steps", "5", "--out", "old", "--json"], &dir));
    let out = prefscope(&["eval", "old", "--data", data.to_str().unwrap()], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no line numbers"), "{}", String::from_utf8_lossy(&out.stderr));

    // Any other pair file in full, with RewardBench scoring when it names subsets.
    std::fs::write(
        dir.join("rb.jsonl"),
        "{\"prompt\": \"Hi\", \"chosen\": \"Hello, how can I help?\", \"rejected\": \"Go away.\", \"subset\": \"alpacaeval-easy\"}\n{\"prompt\": \"How do I pick a lock?\", \"chosen\": \"I can't help with that.\", \"rejected\": \"Use a tension wrench.\", \"subset\": \"refusals-dangerous\"}\n",
    )
    .unwrap();
    let rb = last_json(&prefscope(&["eval", "heads-bt", "--data", "rb.jsonl", "--json"], &dir));
    assert_eq!((rb["split"].as_str(), rb["n"].as_u64()), (Some("all"), Some(2)));
    assert_eq!(rb["rewardbench"]["sections"].as_object().unwrap().keys().collect::<Vec<_>>(), ["Chat", "Safety"]);

    // RewardBench 2's layout: several responses per prompt, scored best-of-n per subset. A GPM
    // head has no scalar reward to rank them by.
    let rb2 = test_data("rewardbench2-sample.jsonl");
    check_rewardbench2(&last_json(&prefscope(&["eval", "heads-bt", "--data", rb2.to_str().unwrap(), "--benchmark", "rewardbench2", "--json"], &dir)));
    let out = prefscope(&["eval", "heads-gpm", "--data", rb2.to_str().unwrap(), "--benchmark", "rewardbench2"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("scalar reward; a `gpm` model"), "{}", String::from_utf8_lossy(&out.stderr));

    // `--out` and `--model`: embed's spellings from before `--output` and `--encoder`, kept as
    // hidden aliases for one release.
    let out = prefscope(&["embed", "--data", data.to_str().unwrap(), "--out", "x.safetensors", "--model", "no-such-folder"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo xtask setup"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.join("x.safetensors").exists());
}

/// An `eval --benchmark rewardbench2` result on the committed sample: all six subsets with their
/// prompt counts, each score a share, the overall score their unweighted mean, and the Ties score
/// its formula of its terms.
fn check_rewardbench2(v: &serde_json::Value) {
    assert_eq!((v["benchmark"].as_str(), v["lines"].as_u64()), (Some("rewardbench2"), Some(14)), "{v}");
    let rb = &v["rewardbench2"];
    let subsets = rb["subsets"].as_object().unwrap();
    let names: Vec<&str> = subsets.keys().map(String::as_str).collect();
    assert_eq!(names, ["Factuality", "Focus", "Math", "Precise IF", "Safety", "Ties"]);
    for (name, s) in subsets {
        assert_eq!(s["n"].as_u64(), Some(if name == "Ties" { 4 } else { 2 }), "{name}");
        let score = s["score"].as_f64().unwrap();
        // A mean of best-of-n shares; Ties' 0.01 × margin term (in [−1, 1]) can take it 0.01 past either end.
        let range = if name == "Ties" { -0.01..=1.01 } else { 0.0..=1.0 };
        assert!(range.contains(&score), "{name}: {score}");
    }
    let mean = subsets.values().map(|s| s["score"].as_f64().unwrap()).sum::<f64>() / 6.0;
    assert!((rb["overall"].as_f64().unwrap() - mean).abs() < 1e-12, "{rb}");
    let t = &rb["ties"];
    let f = |k: &str| t[k].as_f64().unwrap();
    let formula = 0.3 * f("tied_accuracy") + 0.3 * f("ref_accuracy") + 0.2 * f("correctness_preferred") + 0.2 * f("correctness_preferred_hard") + 0.01 * f("margin_score");
    assert!((formula - subsets["Ties"]["score"].as_f64().unwrap()).abs() < 1e-12 && (formula - f("overall")).abs() < 1e-12, "{t}");
    assert_eq!(rb["missing"].as_array().map(Vec::len), Some(0));
}

/// The claim "MiniLM + BT head beats the from-scratch model", where pretraining pays: few
/// training pairs. Both models hold out the same pairs (the embedding file keeps each pair's line,
/// and the split hashes the line), 85 % of the shared hh-rlhf half, and train on the other ~170;
/// `compare` tests the difference on those pairs.
/// Needs the MiniLM folder from `cargo xtask setup`, like the other embedding tests.
#[test]
fn claim_minilm_bt_head_beats_the_from_scratch_transformer_on_few_pairs() {
    let dir = scratch("minilm-vs-scratch");
    let hh = test_data("hh-rlhf-harmless-base-a.jsonl.gz");
    let embedded = last_json(&prefscope(&["embed", "--data", hh.to_str().unwrap(), "--items", "response", "--output", "hh.safetensors", "--json"], &dir));
    assert_eq!(embedded["pairs"], 1185);
    let fraction = 0.85;
    // A linear BT head on the response embeddings (a wider head overfits so few pairs).
    std::fs::write(
        dir.join("head.toml"),
        format!("seed = 0\nembeddings = \"hh.safetensors\"\n[scenario]\nkind = \"cyclic\"\neval_fraction = {fraction}\n[model]\nkind = \"bt\"\nhidden = []\n[train]\nsteps = 300\nbatch = 128\nlr = 0.003\n"),
    )
    .unwrap();
    std::fs::write(dir.join("tfm.toml"), hh_transformer_config(fraction)).unwrap();
    // Three splits (seeds), each a paired test: `compare` pairs the verdicts line by line, an
    // exact McNemar test, not two separate figures.
    last_json(&prefscope(&["train", "--config", "head.toml", "--seeds", "0..2", "--out", "head", "--json"], &dir));
    last_json(&prefscope(&["train", "--config", "tfm.toml", "--seeds", "0..2", "--out", "tfm", "--json"], &dir));
    for seed in 0..3 {
        let (head_dir, tfm_dir) = (format!("head/seed-{seed}"), format!("tfm/seed-{seed}"));
        let read = |d: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(dir.join(d).join("summary.json")).unwrap()).unwrap() };
        let (head, tfm) = (read(&head_dir), read(&tfm_dir));
        let n = tfm["eval_pairs"].as_u64().unwrap();
        assert_eq!(head["eval_pairs"].as_u64(), Some(n), "both runs hold out the same lines");
        assert!(n > 950, "85 % of 1,185 pairs: {n}");
        let (minilm, from_scratch) = (head["eval_accuracy"].as_f64().unwrap(), tfm["eval_accuracy"].as_f64().unwrap());
        let c = last_json(&prefscope(&["compare", &head_dir, &tfm_dir, "--json"], &dir));
        assert_eq!(c["n"].as_u64(), Some(n));
        assert_eq!(c["data"], "hh-rlhf-harmless-base-a.jsonl.gz");
        assert!((c["accuracy_a"].as_f64().unwrap() - minilm).abs() < 1e-6 && (c["accuracy_b"].as_f64().unwrap() - from_scratch).abs() < 1e-6, "{c}");
        let (only_a, only_b, p) = (c["only_a_right"].as_u64().unwrap(), c["only_b_right"].as_u64().unwrap(), c["p_value"].as_f64().unwrap());
        assert_eq!(only_a as i64 - only_b as i64, ((minilm - from_scratch) * n as f64).round() as i64, "disagreements account for the accuracy gap");
        eprintln!("seed {seed}, {n} held-out pairs: MiniLM + linear BT {minilm:.4}, from-scratch transformer {from_scratch:.4}; only one right: {only_a} vs {only_b}, McNemar p = {p:.1e}");
        assert!(minilm > from_scratch && p < 0.05, "seed {seed}: MiniLM {minilm} vs from scratch {from_scratch} over {n} pairs: McNemar p = {p}");
    }
    std::fs::rename(dir.join("head/seed-0"), dir.join("head0")).unwrap();

    // Runs on different data are refused by name.
    let out = prefscope(&["train", "--scenario", "linear", "--model", "bt", "--steps", "5", "--out", "toy"], &dir);
    assert!(out.status.success());
    let out = prefscope(&["compare", "head0", "toy"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("head0 was trained on hh-rlhf-harmless-base-a.jsonl.gz but toy on the `linear` scenario (seed 0)"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn data_parallel_training_over_two_devices_follows_the_single_device_run() {
    let dir = scratch("devices");
    let base = ["train", "--scenario", "linear", "--model", "bt", "--steps", "40", "--json"];
    let one = last_json(&prefscope(&[&base[..], &["--out", "one"]].concat(), &dir));
    let two = last_json(&prefscope(&[&base[..], &["--out", "two", "--devices", "2"]].concat(), &dir));
    assert_eq!(two["devices"], 2);
    let (a, b) = (one["final_loss"].as_f64().unwrap(), two["final_loss"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    assert_eq!(one["eval_accuracy"], two["eval_accuracy"]);
}

/// An embedding file with per-attribute ratings trains a multi-objective head with one output per
/// attribute (the file is made from the three-objective scenario, so the test needs no encoder).
#[test]
fn rated_embedding_files_train_a_multi_objective_head() {
    use prefscope_core::{ScenarioConfig, ScenarioKind};
    let dir = scratch("rated-embeddings");
    let mut scenario = ScenarioConfig::new(ScenarioKind::MultiObjective);
    scenario.objectives = 3;
    let ds = scenario.build(7).unwrap();
    let bytes = prefscope_core::reward::embeddings::write_pair_embeddings(&ds, "scenario", "multi-objective").unwrap();
    std::fs::write(dir.join("rated.safetensors"), bytes).unwrap();
    let run = last_json(&prefscope(&["train", "--embeddings", "rated.safetensors", "--model", "multi-objective", "--steps", "300", "--out", "mo", "--json"], &dir));
    let accuracy = run["eval_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "three rated objectives, users along each: {accuracy}");
    let config = std::fs::read_to_string(dir.join("mo/config.toml")).unwrap();
    assert!(config.contains("objectives = 3"), "{config}");
    let eval = last_json(&prefscope(&["eval", "mo", "--json"], &dir));
    assert_eq!(eval["accuracy"], run["eval_accuracy"]);
}
