//! Golden runs: fixed-seed runs of every model kind, one text run and one policy run, whose output
//! files must stay byte-identical. A refactor that moves code changes none of these bytes; a change
//! that is meant to change training (a new default, a fixed bug) regenerates them and says why:
//!
//! ```sh
//! PREFSCOPE_GOLDEN_WRITE=1 cargo nextest run --release -p prefscope-cli --test golden
//! ```
//!
//! The hashes hold for one CPU: CPU training is deterministic for a given binary and CPU (one
//! thread or two give the same bytes, and so do two builds of the same source in different
//! folders), but the matrix kernels pick their SIMD width and their blocking (from the cache
//! sizes) at run time, so another CPU may sum in another order. The file records the CPU it was
//! written on (SIMD tier, model name, family/model/stepping, feature flags, cache sizes, threads;
//! a VM's bare model name such as "AMD EPYC" covers several generations). On another CPU the test
//! compares numbers instead of bytes: the metrics within 1e-4, and every weight tensor by name,
//! shape and relative distance (see `WEIGHT_TOLERANCE`). Determinism itself is checked on every
//! machine: the text run is made twice and must give the same bytes both times.
//!
//! Checkpoints embed their config, so every path in a run's config is relative: the absolute path
//! of the text run's data file, which differs with the folder the repository is cloned into, made
//! a clean clone on the very CPU that wrote the hashes fail this test (and explains the CI
//! failures once put down to CPUs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const GOLDEN: &str = "tests/data/golden-runs.json";
/// The golden runs' weights, one `<run>.safetensors` each, for the comparison on another CPU.
const GOLDEN_WEIGHTS: &str = "tests/data/golden";

/// Largest relative distance ‖a − b‖ / ‖a‖ allowed between a weight tensor and its golden copy on
/// another CPU. Another summation order moves the metrics by under 1e-4 (seen on an Intel Xeon
/// against the AMD EPYC that wrote the file), and Adam moves a weight by at most about lr per step,
/// so reordering stays far below this; a changed init or architecture moves a tensor by order 1.
/// The metrics' 1e-4 check is what catches a changed objective or learning rate.
const WEIGHT_TOLERANCE: f64 = 1e-2;

/// Tensors whose gradient is zero in exact arithmetic, so that on another CPU they differ by
/// rounding alone, and by order 1: their gradient is rounding noise, which Adam scales to lr-sized
/// steps in a direction the summation order picks. VPL's attention key bias adds q·b to every
/// score of a query, which the softmax over keys cancels; the text RM's final LayerNorm shift β
/// adds w·β to every reward, which the Bradley–Terry difference cancels. On an Intel Xeon against
/// the AMD EPYC that wrote the file they moved 1.31 and 0.61 relative, every other tensor at most
/// 8e-5. Their names and shapes are still checked, and their bytes on the CPU that wrote the file.
const NO_GRADIENT: [(&str, &str); 2] = [("few-shot-users-vpl", "Vpl.key.bias"), ("text-tfm-rm", "norm.beta")];

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

/// The CPU the hashes hold for: SIMD tier, model name, family/model/stepping, a digest of the
/// feature flags, the cache sizes the matrix kernels block for, and the threads they use. VMs
/// report bare model names ("AMD EPYC" for several generations), so the name alone is not enough:
/// two "AMD EPYC" machines with other caches summed in another order.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let caches: Vec<String> = (0..8)
        .map_while(|i| {
            let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok().map(|s| s.trim().to_string());
            Some(format!("L{}{}={}", read("level")?, read("type")?.chars().next().unwrap_or('?'), read("size")?))
        })
        .collect();
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    format!(
        "{} / {} / family {} model {} stepping {} / flags {} / {} / {threads} threads",
        simd_tier(),
        field("model name"),
        field("cpu family"),
        field("model"),
        field("stepping"),
        &fnv(field("flags").as_bytes())[..8],
        caches.join(" ")
    )
}

/// A safetensors file's tensors as f64 values by name (the runs write F32 or F64).
fn tensors(bytes: &[u8]) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let file = safetensors::SafeTensors::deserialize(bytes).expect("a safetensors file");
    file.tensors()
        .into_iter()
        .map(|(name, t)| {
            let values = match t.dtype() {
                safetensors::Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
                safetensors::Dtype::F64 => t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
                other => panic!("{name}: dtype {other:?} (the runs write F32 or F64)"),
            };
            (name, (t.shape().to_vec(), values))
        })
        .collect()
}

/// Relative distance of each tensor from its golden copy; panics on a missing tensor or a new shape.
fn weight_distances(run: &str, golden: &[u8], now: &[u8]) -> Vec<(String, f64)> {
    let (want, got) = (tensors(golden), tensors(now));
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{run}: the weights' names changed");
    let mut out = Vec::new();
    for (name, (shape, a)) in &want {
        let (shape_now, b) = &got[name];
        assert_eq!(shape, shape_now, "{run}: {name} changed shape");
        let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
        let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        out.push((name.clone(), diff / norm.max(1e-12)));
    }
    out
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
    // name -> the run's model.safetensors, compared by value on another CPU.
    let mut weights: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut record = |name: &str, run: &Path, files: &[&str]| {
        let mut h = BTreeMap::new();
        for f in files {
            let bytes = if *f == "summary.json" { summary_without_timing(&run.join(f)) } else { std::fs::read(run.join(f)).unwrap() };
            h.insert(f.to_string(), fnv(&bytes));
            if *f == "model.safetensors" {
                weights.insert(name.to_string(), run.join(f));
            }
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
        ("context-reversal", "context-bt"),
        ("few-shot-users", "in-context"),
        ("communities", "attribute-attention"),
        ("capabilities", "expert-mixture"),
    ] {
        let name = format!("{scenario}-{model}");
        prefscope(&["train", "--scenario", scenario, "--model", model, "--steps", "30", "--seed", "0", "--out", &name], &dir);
        record(&name, &dir.join(&name), &["metrics.jsonl", "model.safetensors"]);
    }

    // A text run: the from-scratch transformer RM on the hh-rlhf sample, with its own tokenizer.
    // The checkpoint embeds its config, data path included, so the file is copied beside the run
    // and named relatively: an absolute path would make the bytes depend on where the repository
    // was cloned (a clean clone in another folder once failed this test for that alone).
    std::fs::copy(repo().join("tests/data/hh-rlhf-harmless-base-a.jsonl.gz"), dir.join("hh.jsonl.gz")).unwrap();
    let config = "seed = 0\n[data]\npath = \"hh.jsonl.gz\"\neval_fraction = 0.3\n[tokenizer]\nvocab_size = 512\n[model]\nvocab = 512\nd_model = 16\nn_layers = 1\nn_heads = 2\nd_ff = 32\nmax_len = 32\n[train]\nsteps = 20\nbatch = 16\nlr = 0.0005\neval_every = 10\n";
    std::fs::write(dir.join("text.toml"), config).unwrap();
    prefscope(&["train", "--config", "text.toml", "--out", "text"], &dir);
    record("text-tfm-rm", &dir.join("text"), &["metrics.jsonl", "model.safetensors"]);
    // Same binary, same CPU, same config: the same bytes, on whatever machine this runs.
    prefscope(&["train", "--config", "text.toml", "--out", "text-again"], &dir);
    for f in ["metrics.jsonl", "model.safetensors"] {
        let (a, b) = (std::fs::read(dir.join("text").join(f)).unwrap(), std::fs::read(dir.join("text-again").join(f)).unwrap());
        assert!(a == b, "text-tfm-rm/{f}: two runs of one config on one machine differ");
    }

    // A bandit policy run writes no weights (an LM run keeps its policy): its metrics and summary.
    prefscope(&["align", "--policy", "bandit", "--loss", "dpo", "--steps", "50", "--seed", "0", "--out", "policy"], &dir);
    record("align-bandit-dpo", &dir.join("policy"), &["metrics.jsonl", "summary.json"]);

    let golden_path = repo().join(GOLDEN);
    let weights_dir = repo().join(GOLDEN_WEIGHTS);
    let now = serde_json::json!({ "machine": machine(), "hashes": hashes, "metrics": metrics });
    if std::env::var_os("PREFSCOPE_GOLDEN_WRITE").is_some() {
        std::fs::write(&golden_path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        let _ = std::fs::remove_dir_all(&weights_dir);
        std::fs::create_dir_all(&weights_dir).unwrap();
        for (name, run) in &weights {
            std::fs::copy(run, weights_dir.join(format!("{name}.safetensors"))).unwrap();
        }
        eprintln!("wrote {} and {}", golden_path.display(), weights_dir.display());
        return;
    }
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&golden_path).expect("tests/data/golden-runs.json")).unwrap();
    let same_machine = golden["machine"] == now["machine"];
    if !same_machine {
        eprintln!("golden runs written on {}, run on {}: comparing numbers, not bytes", golden["machine"], now["machine"]);
    }
    for (name, files) in &hashes {
        let want_text = golden["metrics"][name].as_str().unwrap_or_else(|| panic!("{name}: not in {GOLDEN}"));
        let (want, got) = (numbers(want_text), numbers(&metrics[name]));
        assert_eq!(want.len(), got.len(), "{name}: metrics.jsonl has another shape");
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{name}: metrics number {i} was {a}, now {b}");
        }
        if same_machine {
            for (file, hash) in files {
                assert_eq!(golden["hashes"][name][file].as_str(), Some(hash.as_str()), "{name}/{file} changed (same machine {})", now["machine"]);
            }
        }
    }
    for (name, run) in &weights {
        let stored = weights_dir.join(format!("{name}.safetensors"));
        let golden_bytes = std::fs::read(&stored).unwrap_or_else(|e| panic!("{}: {e}", stored.display()));
        for (tensor, d) in weight_distances(name, &golden_bytes, &std::fs::read(run).unwrap()) {
            eprintln!("{name}/{tensor}: relative distance {d:.2e}");
            if NO_GRADIENT.contains(&(name.as_str(), tensor.as_str())) {
                continue;
            }
            assert!(d <= WEIGHT_TOLERANCE, "{name}/{tensor} moved {d:.2e} relative to its golden copy (at most {WEIGHT_TOLERANCE:e})");
        }
    }
    assert_eq!(golden["hashes"].as_object().unwrap().len(), hashes.len(), "{GOLDEN} lists runs this test no longer makes");
    let _ = std::fs::remove_dir_all(&dir);
}
