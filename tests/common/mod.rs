//! What the CLI test binaries share: running the binary, scratch folders, its JSON output, the
//! sample data. Not every binary uses every function.
#![allow(dead_code)]


use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn prefscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prefscope")).args(args).current_dir(cwd).output().expect("spawn prefscope")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prefscope-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failed: {}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().expect("some output")).expect("last stdout line is JSON")
}

pub fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name).canonicalize().expect("a file in tests/data")
}

/// Start `prefscope args` in the background, its output discarded (a child that will be killed).
pub fn spawn_quiet<S: AsRef<std::ffi::OsStr>>(args: &[S], cwd: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_prefscope")).args(args).current_dir(cwd).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
}

/// Start `prefscope args` and kill it (SIGKILL) as soon as `file` appears.
pub fn kill_once_written(args: &[&str], cwd: &Path, file: &Path) {
    let mut child = spawn_quiet(args, cwd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "{} did not appear within 2 minutes", file.display());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The small from-scratch transformer RM on the shared hh-rlhf half, holding out `eval_fraction`.
pub fn hh_transformer_config(eval_fraction: f64) -> String {
    format!(
        "seed = 0\n[data]\npath = {:?}\neval_fraction = {eval_fraction}\n[tokenizer]\nvocab_size = 2048\n[model]\nvocab = 2048\nd_model = 32\nn_layers = 1\nn_heads = 2\nd_ff = 64\nmax_len = 48\n[train]\nsteps = 200\nbatch = 64\nlr = 0.0005\nweight_decay = 0.1\neval_every = 50\n",
        test_data("hh-rlhf-harmless-base-a.jsonl.gz").display().to_string()
    )
}

/// Rows of a sweep's results.jsonl by point name.
pub fn sweep_rows(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).map(|v| (v["point"].as_str().unwrap().to_string(), v)).collect()
}

