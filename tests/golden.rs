//! Golden runs: fixed-seed runs of every model kind, one text run and one policy run, whose output
//! files must stay byte-identical. A refactor that moves code changes none of these bytes; a change
//! that is meant to change training (a new default, a fixed bug) regenerates them and says why:
//!
//! ```sh
//! PREFSCOPE_GOLDEN_WRITE=1 cargo nextest run --release -p prefscope-cli --test golden
//! ```
//!
//! The hashes are of this machine class's floating point: CPU training is deterministic for a given
//! binary and thread count, but the matrix kernels are picked by CPU features at run time, so a CPU
//! with another SIMD tier (AVX-512 against AVX2) sums in another order. The file records the tier it
//! was written on; on another tier the test compares the metrics' numbers within 1e-4 instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const GOLDEN: &str = "tests/data/golden-runs.json";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prefscope(args: &[&str], cwd: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_prefscope")).args(args).current_dir(cwd).output().expect("spawn prefscope");
    assert!(out.status.success(), "prefscope {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// FNV-1a, 64 bits: enough to tell two files apart, and no dependency.
fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// summary.json without its wall-clock fields, which differ on every run.
fn summary_without_timing(path: &Path) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let map = v.as_object_mut().unwrap();
    for key in ["seconds", "pairs_per_second"] {
        map.remove(key);
    }
    serde_json::to_vec(&v).unwrap()
}

fn simd_tier() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "x86_64-avx512";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "x86_64-avx2-fma";
        }
        return "x86_64";
    }
    #[allow(unreachable_code)]
    std::env::consts::ARCH
}

/// Every number in a metrics.jsonl file, in order.
fn numbers(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for (_, x) in v.as_object().unwrap() {
            if let Some(x) = x.as_f64() {
                out.push(x);
            }
        }
    }
    out
}

#[test]
fn golden_runs_are_byte_identical() {
    let dir = std::env::temp_dir().join(format!("prefscope-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // name -> (file -> hash); metrics -> the metrics file's text, for the cross-tier comparison.
    let mut hashes: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut metrics: BTreeMap<String, String> = BTreeMap::new();
    let mut record = |name: &str, run: &Path, files: &[&str]| {
        let mut h = BTreeMap::new();
        for f in files {
            let bytes = if *f == "summary.json" { summary_without_timing(&run.join(f)) } else { std::fs::read(run.join(f)).unwrap() };
            h.insert(f.to_string(), fnv(&bytes));
        }
        hashes.insert(name.to_string(), h);
        metrics.insert(name.to_string(), std::fs::read_to_string(run.join("metrics.jsonl")).unwrap());
    };

    for (scenario, model) in [
        ("linear", "bt"),
        ("cyclic", "gpm"),
        ("multi-objective", "multi-objective"),
        ("mixture", "mixture"),
        ("few-shot-users", "vpl"),
        ("gridworld", "regret"),
        ("gridworld", "partial-return"),
    ] {
        let name = format!("{scenario}-{model}");
        prefscope(&["train", "--scenario", scenario, "--model", model, "--steps", "30", "--seed", "0", "--out", &name], &dir);
        record(&name, &dir.join(&name), &["metrics.jsonl", "model.safetensors"]);
    }

    // A text run: the from-scratch transformer RM on the hh-rlhf sample, with its own tokenizer.
    let hh = repo().join("tests/data/hh-rlhf-harmless-base-a.jsonl.gz").canonicalize().unwrap();
    let config = format!(
        "seed = 0\n[data]\npath = {:?}\neval_fraction = 0.3\n[tokenizer]\nvocab_size = 512\n[model]\nvocab = 512\nd_model = 16\nn_layers = 1\nn_heads = 2\nd_ff = 32\nmax_len = 32\n[train]\nsteps = 20\nbatch = 16\nlr = 0.0005\neval_every = 10\n",
        hh.display().to_string()
    );
    std::fs::write(dir.join("text.toml"), config).unwrap();
    prefscope(&["train", "--config", "text.toml", "--out", "text"], &dir);
    record("text-tfm-rm", &dir.join("text"), &["metrics.jsonl", "model.safetensors"]);

    // A policy run writes no weights: its metrics and summary.
    prefscope(&["align", "--policy", "bandit", "--loss", "dpo", "--steps", "50", "--seed", "0", "--out", "policy"], &dir);
    record("align-bandit-dpo", &dir.join("policy"), &["metrics.jsonl", "summary.json"]);

    let golden_path = repo().join(GOLDEN);
    let now = serde_json::json!({ "simd": simd_tier(), "hashes": hashes, "metrics": metrics });
    if std::env::var_os("PREFSCOPE_GOLDEN_WRITE").is_some() {
        std::fs::write(&golden_path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        eprintln!("wrote {}", golden_path.display());
        return;
    }
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&golden_path).expect("tests/data/golden-runs.json")).unwrap();
    let same_tier = golden["simd"] == now["simd"];
    for (name, files) in &hashes {
        let want_text = golden["metrics"][name].as_str().unwrap_or_else(|| panic!("{name}: not in {GOLDEN}"));
        let (want, got) = (numbers(want_text), numbers(&metrics[name]));
        assert_eq!(want.len(), got.len(), "{name}: metrics.jsonl has another shape");
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{name}: metrics number {i} was {a}, now {b}");
        }
        if same_tier {
            for (file, hash) in files {
                assert_eq!(golden["hashes"][name][file].as_str(), Some(hash.as_str()), "{name}/{file} changed (same SIMD tier {})", now["simd"]);
            }
        }
    }
    assert_eq!(golden["hashes"].as_object().unwrap().len(), hashes.len(), "{GOLDEN} lists runs this test no longer makes");
    let _ = std::fs::remove_dir_all(&dir);
}
