//! End-to-end tests of the `prefscope` binary: real processes, real run folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn prefscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prefscope")).args(args).current_dir(cwd).output().expect("spawn prefscope")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prefscope-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failed: {}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().expect("some output")).expect("last stdout line is JSON")
}

#[test]
fn train_then_eval_a_cyclic_gpm_run() {
    let dir = scratch("train");
    let out = prefscope(&["train", "--scenario", "cyclic", "--model", "gpm", "--seed", "0", "--out", "runs/a", "--json"], &dir);
    let summary = last_json(&out);
    for key in ["eval_accuracy", "final_loss", "steps", "backend", "seconds"] {
        assert!(summary.get(key).is_some(), "missing {key} in {summary}");
    }
    assert_eq!(summary["backend"], "cpu");
    assert_eq!(summary["steps"], 300);
    let acc = summary["eval_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "GPM on cyclic: {acc}");

    let run = dir.join("runs/a");
    for f in ["config.toml", "metrics.jsonl", "model.safetensors", "summary.json"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 300);
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(last["loss"].as_f64().unwrap() as f32, summary["final_loss"].as_f64().unwrap() as f32);

    // eval reloads the checkpoint and reproduces the final held-out accuracy exactly.
    let eval = last_json(&prefscope(&["eval", "--run", "runs/a", "--json"], &dir));
    assert_eq!(eval["accuracy"], summary["eval_accuracy"]);
    assert_eq!(eval["n"], summary["eval_pairs"]);

    // The written config reproduces the run.
    let again = last_json(&prefscope(&["train", "--config", "runs/a/config.toml", "--out", "runs/b", "--json"], &dir));
    assert_eq!(again["final_loss"], summary["final_loss"]);

    // A second train into the same folder is refused rather than overwriting the checkpoint.
    let out = prefscope(&["train", "--out", "runs/a", "--steps", "2"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a trained model"));
}

/// Start `prefscope args` in the background, its output discarded (a child that will be killed).
fn spawn_quiet<S: AsRef<std::ffi::OsStr>>(args: &[S], cwd: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_prefscope")).args(args).current_dir(cwd).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
}

/// Start `prefscope args` and kill it (SIGKILL) as soon as `file` appears.
fn kill_once_written(args: &[&str], cwd: &Path, file: &Path) {
    let mut child = spawn_quiet(args, cwd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "{} did not appear within 2 minutes", file.display());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Kill a training child process after its first checkpoint, resume it, and compare with an
/// uninterrupted run: the weights file and the metrics log must be byte-identical.
#[test]
fn a_killed_run_resumes_bit_identically() {
    let dir = scratch("resume");
    let args = ["train", "--scenario", "linear", "--model", "bt", "--steps", "400", "--checkpoint-every", "7", "--json"];
    let straight = prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir);
    last_json(&straight);

    kill_once_written(&[&args[..], &["--out", "killed"]].concat(), &dir, &dir.join("killed/resume.state"));
    assert!(!dir.join("killed/summary.json").exists(), "the child finished before it was killed; the test proves nothing");

    let resumed = last_json(&prefscope(&["train", "--resume", "killed", "--json"], &dir));
    assert_eq!(resumed["steps"], 400);
    for f in ["model.safetensors", "metrics.jsonl"] {
        let (a, b) = (std::fs::read(dir.join("straight").join(f)).unwrap(), std::fs::read(dir.join("killed").join(f)).unwrap());
        assert!(a == b, "{f} differs after resume");
    }
    assert!(!dir.join("killed/resume.state").exists(), "a finished run keeps no resume state");
    // A corrupted run folder is refused by name and left as it was, never restarted from step 0:
    // a truncated resume.state, and a config.toml edited after the state was saved.
    kill_once_written(&[&args[..], &["--out", "broken"]].concat(), &dir, &dir.join("broken/resume.state"));
    let metrics = std::fs::read(dir.join("broken/metrics.jsonl")).unwrap();
    let state = std::fs::read(dir.join("broken/resume.state")).unwrap();
    std::fs::write(dir.join("broken/resume.state"), &state[..state.len() / 2]).unwrap();
    let cut = prefscope(&["train", "--resume", "broken"], &dir);
    assert!(!cut.status.success() && String::from_utf8_lossy(&cut.stderr).contains("resume.state"), "{}", String::from_utf8_lossy(&cut.stderr));
    std::fs::write(dir.join("broken/resume.state"), &state).unwrap();
    let config = std::fs::read_to_string(dir.join("broken/config.toml")).unwrap();
    assert!(config.contains("lr = 0.01"), "{config}");
    std::fs::write(dir.join("broken/config.toml"), config.replace("lr = 0.01", "lr = 0.02")).unwrap();
    let edited = prefscope(&["train", "--resume", "broken"], &dir);
    let err = String::from_utf8_lossy(&edited.stderr);
    assert!(!edited.status.success() && err.contains("`train.lr`") && err.contains("config.toml"), "{err}");
    assert_eq!(std::fs::read(dir.join("broken/metrics.jsonl")).unwrap(), metrics, "a refused resume writes nothing");
    std::fs::write(dir.join("broken/config.toml"), &config).unwrap();
    let fixed = last_json(&prefscope(&["train", "--resume", "broken", "--json"], &dir));
    assert_eq!(fixed["steps"], 400);
    assert_eq!(std::fs::read(dir.join("broken/model.safetensors")).unwrap(), std::fs::read(dir.join("straight/model.safetensors")).unwrap());
    let out = prefscope(&["train", "--resume", "killed"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has finished"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Kill -9 a run at `kills` moments drawn from `seed`, each time doing what a user would:
/// `--resume` when the folder is a run folder, else the original command; then let it finish.
/// A moment is, for uniform draws: three times in ten, u·`startup` after the start (start-up,
/// reading data, restoring); otherwise once the metrics log has grown by u·`span` lines, plus
/// v·5 ms, which moves the kill within a step (checkpoint writes included). Returns how many
/// kills hit a running process, and how many of those came before it had saved anything.
fn kill_repeatedly(start: &[&str], dir: &Path, run: &str, kills: usize, span: usize, startup: std::time::Duration, seed: u64) -> (usize, usize) {
    let mut state = seed;
    let mut uniform = || {
        // SplitMix64: the same kill moments for a given seed.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let folder = dir.join(run);
    let command = || -> Vec<String> {
        if folder.join("config.toml").exists() {
            vec!["train".into(), "--resume".into(), run.into(), "--json".into(), "--checkpoint-every".into(), "5".into()]
        } else {
            [start, &["--out", run]].concat().iter().map(|s| s.to_string()).collect()
        }
    };
    let lines = || std::fs::read_to_string(folder.join("metrics.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
    let (mut landed, mut early) = (0, 0);
    for _ in 0..kills {
        let before = lines();
        let in_startup = uniform() < 0.3;
        let target = if in_startup { before } else { before + (uniform() * span as f64) as usize };
        let mut child = spawn_quiet(&command(), dir);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while lines() < target && child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "the run made no progress in 2 minutes");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(if in_startup { startup.mul_f64(uniform()) } else { std::time::Duration::from_secs_f64(uniform() * 0.005) });
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        landed += running as usize;
        early += (running && lines() == before) as usize;
        // Where it landed, for the README's fault table (`--nocapture`).
        eprintln!("kill: running {running}, {} metrics lines, state {}, model {}", lines(), folder.join("resume.state").exists(), folder.join("model.safetensors").exists());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_prefscope")).args(command()).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (landed, early)
}

/// Every file of a finished run folder that a kill could have torn: byte-identical to the
/// uninterrupted run's, with no partial copy left behind.
fn assert_same_run(straight: &Path, killed: &Path) {
    for f in ["model.safetensors", "metrics.jsonl", "config.toml"] {
        let (a, b) = (std::fs::read(straight.join(f)).unwrap(), std::fs::read(killed.join(f)).unwrap());
        assert!(a == b, "{f} differs after the kills");
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(killed.join("summary.json")).unwrap()).unwrap();
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(straight.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["final_loss"], expected["final_loss"]);
    let left: Vec<String> = std::fs::read_dir(killed).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".tmp") || n == "resume.state").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The fault campaign: a scenario run killed at 20 random moments (start-up, restore,
/// steps, checkpoint writes) and resumed each time ends byte-identical to an uninterrupted run.
#[test]
fn a_scenario_run_killed_at_twenty_random_moments_ends_bit_identical() {
    let dir = scratch("kill20");
    let args = ["train", "--scenario", "linear", "--model", "bt", "--steps", "4000", "--checkpoint-every", "5", "--json"];
    last_json(&prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir));
    // Each kill lets at most a 25th of the steps pass, so 20 cannot finish the run early.
    let (landed, early) = kill_repeatedly(&args, &dir, "killed", 20, 4000 / 25, std::time::Duration::from_millis(60), 1);
    // How many landed before the process saved anything depends on the machine's speed: reported, not asserted.
    eprintln!("{early} of the kills came before the process saved anything");
    assert_eq!(landed, 20, "every kill must hit a running process, or the test proves less than it says");
    assert_same_run(&dir.join("straight"), &dir.join("killed"));
}

/// The same campaign on a text run (a transformer RM on the shared hh-rlhf half): its state
/// also holds the tokenizer and the streamed file's position.
#[test]
fn a_text_run_killed_at_twenty_random_moments_ends_bit_identical() {
    let dir = scratch("kill20-text");
    let config = hh_transformer_config(0.3).replace("steps = 200", "steps = 300").replace("d_model = 32", "d_model = 16").replace("d_ff = 64", "d_ff = 32");
    std::fs::write(dir.join("hh.toml"), config).unwrap();
    let args = ["train", "--config", "hh.toml", "--checkpoint-every", "5", "--json"];
    last_json(&prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir));
    let (landed, early) = kill_repeatedly(&args, &dir, "killed", 20, 300 / 25, std::time::Duration::from_millis(1500), 2);
    // How many landed before the process saved anything depends on the machine's speed: reported, not asserted.
    eprintln!("{early} of the kills came before the process saved anything");
    assert_eq!(landed, 20, "every kill must hit a running process, or the test proves less than it says");
    assert_same_run(&dir.join("straight"), &dir.join("killed"));
    // A text run's config.toml edited after a checkpoint is refused by the key that changed, and
    // nothing is written; put back, the run resumes to the same bytes.
    kill_once_written(&[&args[..], &["--out", "edited"]].concat(), &dir, &dir.join("edited/resume.state"));
    let (config, metrics) = (std::fs::read_to_string(dir.join("edited/config.toml")).unwrap(), std::fs::read(dir.join("edited/metrics.jsonl")).unwrap());
    assert!(config.contains("lr = 0.0005"), "{config}");
    std::fs::write(dir.join("edited/config.toml"), config.replace("lr = 0.0005", "lr = 0.001")).unwrap();
    let out = prefscope(&["train", "--resume", "edited"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("`train.lr`"), "{err}");
    assert_eq!(std::fs::read(dir.join("edited/metrics.jsonl")).unwrap(), metrics, "a refused resume writes nothing");
    std::fs::write(dir.join("edited/config.toml"), &config).unwrap();
    last_json(&prefscope(&["train", "--resume", "edited", "--json"], &dir));
    assert_same_run(&dir.join("straight"), &dir.join("edited"));
}

/// Run `args` `moments.len()` times, killing each (SIGKILL) after its moment; calls `check`
/// after every kill. Returns how many kills hit a running process.
fn kill_at(args: &[&str], dir: &Path, moments: impl Iterator<Item = std::time::Duration>, mut check: impl FnMut()) -> usize {
    let mut landed = 0;
    for moment in moments {
        let mut child = spawn_quiet(args, dir);
        std::thread::sleep(moment);
        landed += child.try_wait().unwrap().is_none() as usize;
        child.kill().unwrap();
        child.wait().unwrap();
        check();
    }
    landed
}

/// Evenly spread fractions of `whole`, shuffled by a fixed stride (deterministic "random"
/// moments that still cover the whole run: start-up, reading, embedding, writing).
fn spread(whole: std::time::Duration, n: usize) -> impl Iterator<Item = std::time::Duration> {
    (0..n).map(move |i| whole.mul_f64(((i * 7 + 3) % n) as f64 / n as f64 + 0.5 / n as f64))
}

/// `embed` killed at moments across its whole run never leaves a torn file: the output is
/// absent or byte-identical to an uninterrupted run's, and the same command then completes.
#[test]
fn a_killed_embed_leaves_its_file_whole_or_absent() {
    let dir = scratch("kill-embed");
    let data = test_data("gpm_test_data.jsonl");
    let args = ["embed", "--data", data.to_str().unwrap(), "--out", "pairs.safetensors"];
    let start = std::time::Instant::now();
    assert!(prefscope(&args, &dir).status.success());
    let whole = start.elapsed();
    let straight = std::fs::read(dir.join("pairs.safetensors")).unwrap();
    std::fs::remove_file(dir.join("pairs.safetensors")).unwrap();
    let landed = kill_at(&args, &dir, spread(whole, 8), || {
        if let Ok(bytes) = std::fs::read(dir.join("pairs.safetensors")) {
            assert!(bytes == straight, "a killed embed left a torn file");
        }
    });
    assert!(landed >= 6, "{landed} of 8 kills hit a running embed");
    assert!(prefscope(&args, &dir).status.success());
    assert_eq!(std::fs::read(dir.join("pairs.safetensors")).unwrap(), straight);
    assert!(!dir.join("pairs.safetensors.tmp").exists());
}

/// A sweep killed at moments across its run, and run again each time, finishes with the same
/// rows and weights as one that was never interrupted.
#[test]
fn a_sweep_killed_at_many_moments_finishes_with_the_same_figures() {
    let dir = scratch("kill-sweep");
    let args = ["sweep", "--scenario", "linear", "--model", "bt", "--steps", "600", "--checkpoint-every", "10", "--grid", "model.hidden=[8],[16, 16]", "--seeds", "0..1", "--jobs", "2"];
    let start = std::time::Instant::now();
    assert!(prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir).status.success());
    let whole = start.elapsed();
    let killed = [&args[..], &["--out", "killed"]].concat();
    // Each moment a quarter of the whole, so the kills land in every phase of a resumed sweep.
    let landed = kill_at(&killed, &dir, spread(whole / 4, 8), || {});
    assert!(landed >= 6, "{landed} of 8 kills hit a running sweep");
    let out = prefscope(&killed, &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (sweep_rows(&dir.join("straight")), sweep_rows(&dir.join("killed")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, row) in &a {
        assert_eq!(row["final_loss"], b[name]["final_loss"], "{name}");
        for f in ["model.safetensors", "metrics.jsonl"] {
            assert!(std::fs::read(dir.join("straight").join(name).join(f)).unwrap() == std::fs::read(dir.join("killed").join(name).join(f)).unwrap(), "{name}/{f}");
        }
    }
}

/// A full disk, as a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it
/// fails with EFBIG as it would with ENOSPC): the run stops naming the file it could not write,
/// what was saved before stays whole (eval opens the model; the state resumes), and once there
/// is room again `--resume` ends byte-identical to a run that never hit the limit.
#[test]
fn a_full_disk_stops_the_run_with_a_message_and_loses_nothing() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("disk-full");
    std::fs::write(dir.join("small.toml"), "[scenario]\nkind = \"linear\"\n[model]\nkind = \"bt\"\nhidden = [4]\n[train]\nsteps = 600\n").unwrap();
    let args = ["train", "--config", "small.toml", "--checkpoint-every", "10", "--json"];
    last_json(&prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir));
    kill_once_written(&[&args[..], &["--out", "probe"]].concat(), &dir, &dir.join("probe/resume.state"));
    let state_size = std::fs::metadata(dir.join("probe/resume.state")).unwrap().len();
    let metrics_size = std::fs::metadata(dir.join("straight/metrics.jsonl")).unwrap().len();
    assert!(state_size * 2 < metrics_size, "the limits below need a state ({state_size} B) well under the metrics ({metrics_size} B)");
    // A limit under the state's size fails the first checkpoint; one at half the metrics fails a
    // metrics write after several checkpoints.
    // (With a checkpoint every step, the state is written before the metrics outgrow the limit.)
    for (run, limit, file, every) in [("first", state_size / 2, "resume.state", "1"), ("later", metrics_size / 2, "metrics.jsonl", "10")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_prefscope"));
        cmd.args(["train", "--config", "small.toml", "--checkpoint-every", every, "--json", "--out", run]).current_dir(&dir);
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{run}: the run finished under a {limit}-byte limit");
        assert!(err.contains(file) && err.contains("File too large"), "{run}: {err}");
        let folder = dir.join(run);
        let names: Vec<String> = std::fs::read_dir(&folder).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{run}: a partial file was left: {names:?}");
        if folder.join("model.safetensors").exists() {
            // The last good checkpoint opens.
            let eval = last_json(&prefscope(&["eval", "--run", run, "--json"], &dir));
            assert!(eval["accuracy"].as_f64().unwrap() > 0.5, "{run}: {eval}");
        }
        let resumed = last_json(&prefscope(&["train", "--resume", run, "--checkpoint-every", "10", "--json"], &dir));
        assert_eq!(resumed["steps"], 600);
        assert_same_run(&dir.join("straight"), &folder);
    }
}

#[test]
fn claim_bradley_terry_on_cyclic_stays_near_chance() {
    let dir = scratch("bt");
    // The claim over seeds 0–19, as a user checks it: `train --seeds`.
    let bt = last_json(&prefscope(&["train", "--scenario", "cyclic", "--model", "bt", "--seeds", "0..19", "--out", "bt-seeds", "--json"], &dir));
    let gpm = last_json(&prefscope(&["train", "--scenario", "cyclic", "--model", "gpm", "--seeds", "0..19", "--out", "gpm-seeds", "--json"], &dir));
    eprintln!("cyclic over seeds 0–19: BT {}, GPM {}", bt["eval_accuracy"], gpm["eval_accuracy"]);
    assert_eq!((bt["completed"].as_u64(), gpm["completed"].as_u64()), (Some(20), Some(20)));
    assert!(bt["eval_accuracy"]["max"].as_f64().unwrap() <= 0.70, "BT on cyclic: {}", bt["eval_accuracy"]);
    assert!(gpm["eval_accuracy"]["min"].as_f64().unwrap() >= 0.95, "GPM on cyclic: {}", gpm["eval_accuracy"]);

    // GPM on the same scenario and seed holds out the same pairs; compare makes it a paired test.
    let (g, r) = ("gpm-seeds/seed-0", "bt-seeds/seed-0");
    let gpm0: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(g).join("summary.json")).unwrap()).unwrap();
    let bt0: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(r).join("summary.json")).unwrap()).unwrap();
    let c = last_json(&prefscope(&["compare", g, r, "--json"], &dir));
    assert_eq!(c["n"], gpm0["eval_pairs"]);
    assert_eq!((c["accuracy_a"].as_f64().unwrap() as f32, c["accuracy_b"].as_f64().unwrap() as f32), (gpm0["eval_accuracy"].as_f64().unwrap() as f32, bt0["eval_accuracy"].as_f64().unwrap() as f32));
    assert!(c["only_a_right"].as_u64() > c["only_b_right"].as_u64() && c["p_value"].as_f64().unwrap() < 1e-10, "{c}");
    // Another seed builds other pairs: refused.
    let out = prefscope(&["compare", g, "gpm-seeds/seed-1"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("on the `cyclic` scenario (seed 1)"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The figures of a seeds run, per seed, without the timings.
fn seed_figures(dir: &Path) -> Vec<(u64, f64, f64, f64)> {
    std::fs::read_to_string(dir.join("seeds.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
            (v["seed"].as_u64().unwrap(), f("eval_accuracy"), f("eval_loss"), f("final_loss"))
        })
        .collect()
}

#[test]
fn a_seeds_run_prints_the_spread_and_resumes_after_a_kill() {
    let dir = scratch("seeds");
    let args = ["train", "--scenario", "linear", "--model", "bt", "--steps", "200", "--seeds", "0..7", "--checkpoint-every", "10"];
    let out = prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // The per-seed table, then the spread over the 8 seeds.
    assert!(text.contains("8 to run") && text.contains("eval acc: ") && text.contains("over 8 seeds"), "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_start().split_whitespace().next().is_some_and(|w| w.parse::<u64>().is_ok())).count(), 8, "{text}");
    let straight = seed_figures(&dir.join("straight"));
    assert_eq!(straight.iter().map(|f| f.0).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("straight/summary.json")).unwrap()).unwrap();
    let min = straight.iter().map(|f| f.1).fold(f64::INFINITY, f64::min);
    assert_eq!(summary["eval_accuracy"]["min"].as_f64(), Some(min));

    // Kill it while seed 4 trains; the same command then finishes the rest, with the same figures.
    kill_once_written(&[&args[..], &["--out", "killed"]].concat(), &dir, &dir.join("killed/seed-4/resume.state"));
    assert!(!dir.join("killed/seeds.jsonl").exists(), "the child finished before it was killed; the test proves nothing");
    let out = prefscope(&[&args[..], &["--out", "killed"]].concat(), &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("finished earlier") && text.contains("1 resumed"), "{text}");
    assert_eq!(seed_figures(&dir.join("killed")), straight);
    assert_eq!(std::fs::read(dir.join("killed/seed-4/model.safetensors")).unwrap(), std::fs::read(dir.join("straight/seed-4/model.safetensors")).unwrap());

    // A finished seeds run is read back, not retrained; another config in its folder is refused.
    let again = prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 to run (8 finished earlier)"));
    let other = prefscope(&[&args[..], &["--out", "straight", "--lr", "0.02"]].concat(), &dir);
    assert!(String::from_utf8_lossy(&other.stderr).contains("seed-0 holds a run of another config"), "{}", String::from_utf8_lossy(&other.stderr));
    // --overwrite retrains every seed, here with the other learning rate.
    let out = prefscope(&["train", "--scenario", "linear", "--model", "bt", "--steps", "20", "--seeds", "0..1", "--out", "straight", "--overwrite"], &dir);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 to run"), "{}", String::from_utf8_lossy(&out.stdout));
    // Bad lists are named.
    let bad = prefscope(&["train", "--seeds", "5..2"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("seeds: `5..2` runs backwards"), "{}", String::from_utf8_lossy(&bad.stderr));
    let both = prefscope(&["train", "--seeds", "0..2", "--seed", "1"], &dir);
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("--seed"));
}

#[test]
fn bad_flags_and_configs_name_the_field() {
    let dir = scratch("bad");
    let out = prefscope(&["train", "--stepz", "3"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stepz"));

    let out = prefscope(&["train", "--scenario", "circle"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scenario.kind"));

    std::fs::write(dir.join("run.toml"), "[scenario]\nkind = \"linear\"\n[model]\nkind = \"bt\"\n[train]\nlr = \"fast\"\n").unwrap();
    let out = prefscope(&["train", "--config", "run.toml"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("run.toml:6: train.lr:"), "{err}");

    let out = prefscope(&["train", "--steps", "0"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("train.steps"));

    let out = prefscope(&["eval", "--run", "nowhere"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a run folder"));
}

#[test]
fn cuda_without_a_gpu_says_so() {
    let dir = scratch("cuda");
    let out = prefscope(&["train", "--backend", "cuda", "--steps", "1"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    if cfg!(feature = "cuda") {
        // This test machine has no NVIDIA driver; with one, training would simply succeed.
        assert!(err.contains("no CUDA driver found"), "{err}");
    } else {
        assert!(err.contains("built without the `cuda` feature"), "{err}");
    }
}

/// wgpu (here on Mesa's software Vulkan) follows the CPU loss curve: same seed, same data,
/// same initial weights, so only float rounding differs.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_the_cpu_curve() {
    let dir = scratch("wgpu");
    let cpu = last_json(&prefscope(&["train", "--steps", "40", "--out", "cpu", "--json"], &dir));
    let gpu = last_json(&prefscope(&["train", "--steps", "40", "--out", "gpu", "--backend", "wgpu", "--json"], &dir));
    assert_eq!(gpu["backend"], "wgpu");
    let curve = |d: &str| -> Vec<f64> {
        std::fs::read_to_string(dir.join(d).join("metrics.jsonl")).unwrap().lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect()
    };
    let (a, b) = (curve("cpu"), curve("gpu"));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() < 1e-4, "step {}: cpu {x} vs wgpu {y}", i + 1);
    }
    assert!((cpu["final_loss"].as_f64().unwrap() - gpu["final_loss"].as_f64().unwrap()).abs() < 1e-4);
}

/// Mixed precision on a real half type: Mesa's software Vulkan has f16 shaders, so wgpu trains
/// with f16 compute over f32 master weights and dynamic loss scaling (the first steps overflow at
/// the initial scale of 2^16 and are skipped, as with PyTorch's GradScaler) and still fits the
/// cycles. bf16, which WebGPU shaders lack, and half types on ndarray are refused by name.
#[cfg(feature = "wgpu")]
#[test]
fn f16_mixed_precision_trains_on_wgpu_and_unsupported_types_are_refused() {
    let dir = scratch("mixed");
    let args = |p: &'static str, out: &'static str, backend: &'static str| ["train", "--scenario", "cyclic", "--model", "gpm", "--steps", "40", "--precision", p, "--out", out, "--backend", backend, "--json"];
    let half = last_json(&prefscope(&args("f16-mixed", "half", "wgpu"), &dir));
    let full = last_json(&prefscope(&args("full", "full", "wgpu"), &dir));
    assert_eq!(half["precision"], "f16-mixed");
    assert_eq!(full["precision"], "full");
    let acc = half["eval_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "f16-mixed held-out accuracy {acc}");
    assert_ne!(half["final_loss"], full["final_loss"], "the f16 run should not compute in f32");
    assert_eq!(std::fs::read_to_string(dir.join("half/config.toml")).unwrap().matches("precision = \"f16-mixed\"").count(), 1);
    for (p, backend) in [("bf16-mixed", "wgpu"), ("bf16-mixed", "ndarray"), ("f16-mixed", "ndarray")] {
        let out = prefscope(&args(p, "refused", backend), &dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("train.precision: this backend cannot compute in"), "{p} on {backend}: {err}");
    }
}

/// The CPU backend reports the threads it computes with, honours RAYON_NUM_THREADS, and gives
/// the same curve on one thread as on two (gemm splits its output, never a dot product, and the
/// kernels' chunks are fixed). The layers are wide enough (1024 rows × 512 × 512) for burn-flex
/// to run its matmuls and the GELU kernel on several threads.
#[test]
fn cpu_threads_are_reported_and_do_not_change_the_curve() {
    let dir = scratch("threads");
    std::fs::write(dir.join("wide.toml"), "seed = 3\n[scenario]\nkind = \"cyclic\"\n[model]\nkind = \"gpm\"\nhidden = [512, 512]\n[train]\nsteps = 12\nbatch = 512\neval_every = 6\n").unwrap();
    let train = |threads: &str, out: &str, json: bool| {
        let mut args = vec!["train", "--config", "wide.toml", "--out", out];
        if json {
            args.push("--json");
        }
        Command::new(env!("CARGO_BIN_EXE_prefscope")).args(args).env("RAYON_NUM_THREADS", threads).current_dir(&dir).output().expect("spawn prefscope")
    };
    let run = |threads: &str, out: &str| (last_json(&train(threads, out, true)), std::fs::read_to_string(dir.join(out).join("metrics.jsonl")).unwrap());
    let (one, one_metrics) = run("1", "one");
    let (two, two_metrics) = run("2", "two");
    let banner = String::from_utf8_lossy(&train("1", "banner", false).stdout).to_string();
    assert!(banner.contains("on cpu (flex, 1 thread)"), "the banner names the threads: {banner}");
    assert_eq!((one["threads"].as_u64(), two["threads"].as_u64()), (Some(1), Some(2)));
    assert_eq!(one["final_loss"], two["final_loss"]);
    assert_eq!(one_metrics, two_metrics, "metrics differ between 1 and 2 threads");
}

/// burn-flex stores bf16 and f16, so the CPU backend trains with half-precision compute over f32
/// master weights (f16 with loss scaling) and still fits the cycles, computing in the half type.
#[test]
fn mixed_precision_trains_on_the_cpu_backend() {
    let dir = scratch("cpu-mixed");
    let run = |p: &str, out: &str| last_json(&prefscope(&["train", "--scenario", "cyclic", "--model", "gpm", "--steps", "60", "--precision", p, "--out", out, "--json"], &dir));
    let full = run("full", "full");
    for p in ["bf16-mixed", "f16-mixed"] {
        let half = run(p, p);
        assert_eq!((half["precision"].as_str(), half["backend"].as_str()), (Some(p), Some("cpu")));
        let acc = half["eval_accuracy"].as_f64().unwrap();
        assert!(acc >= 0.95, "{p} on the CPU: held-out accuracy {acc}");
        assert_ne!(half["final_loss"], full["final_loss"], "{p} should not compute in f32");
    }
}

#[test]
fn rank_fits_a_leaderboard_from_battles_and_choix_files() {
    let dir = scratch("rank");
    let mut lines = String::new();
    // a beats b 3:1, b beats c 3:1, plus a tie: a clear order a > b > c.
    for (x, y, w) in [("a", "b", "model_a"), ("a", "b", "model_a"), ("b", "a", "model_b"), ("a", "b", "model_b"),
                      ("b", "c", "model_a"), ("c", "b", "model_b"), ("b", "c", "model_a"), ("b", "c", "model_b"),
                      ("a", "c", "tie"), ("c", "a", "model_b")] {
        lines.push_str(&format!("{{\"model_a\":\"{x}\",\"model_b\":\"{y}\",\"winner\":\"{w}\"}}\n"));
    }
    std::fs::write(dir.join("battles.jsonl"), lines).unwrap();
    let out = last_json(&prefscope(&["rank", "--data", "battles.jsonl", "--json"], &dir));
    assert_eq!(out["names"], serde_json::json!(["a", "b", "c"]));
    let s: Vec<f64> = out["log_strengths"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(s[0] > s[1] && s[1] > s[2], "{s:?}");
    assert!(s.iter().sum::<f64>().abs() < 1e-9);
    // Ten battles: some resamples leave c without a win (no finite MLE) and are skipped.
    let used = out["bootstrap_rounds"].as_u64().unwrap();
    assert!((100..=200).contains(&used), "{used}");
    let ci = out["ci95_log_strength"].as_array().unwrap();
    assert_eq!(ci.len(), 3);
    for (i, iv) in ci.iter().enumerate() {
        let (lo, hi) = (iv[0].as_f64().unwrap(), iv[1].as_f64().unwrap());
        assert!(lo <= s[i] && s[i] <= hi, "item {i}: {lo} {} {hi}", s[i]);
    }

    let choix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/choix_testcase-rankings-1.json");
    let out = last_json(&prefscope(&["rank", "--data", choix.to_str().unwrap(), "--json", "--bootstrap", "0"], &dir));
    assert_eq!(out["model"], "plackett-luce");
    for v in out["log_strengths"].as_array().unwrap() {
        assert!(v.as_f64().unwrap().abs() < 1e-4);
    }

    std::fs::write(dir.join("bad.jsonl"), "{\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"model_a\"}\n{\"model_a\":\"x\",\"model_b\":\"y\"}\n").unwrap();
    let out = prefscope(&["rank", "--data", "bad.jsonl"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2: winner:"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn align_bandit_reports_kl_to_the_dpo_optimum() {
    let dir = scratch("align");
    let out = last_json(&prefscope(&["align", "--policy", "bandit", "--loss", "dpo", "--beta", "0.5", "--out", "b", "--json"], &dir));
    let kl = out["kl_to_optimum"].as_f64().expect("DPO's optimum is known");
    assert!(kl < 1e-3, "{kl}");
    assert_eq!(out["backend"], "cpu");
    let policy: f64 = out["policy"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).sum();
    assert!((policy - 1.0).abs() < 1e-6);
    assert!(dir.join("b/metrics.jsonl").is_file() && dir.join("b/summary.json").is_file());
    // A loss without a closed-form optimum reports null, not a made-up number.
    let out = last_json(&prefscope(&["align", "--loss", "hinge", "--steps", "50", "--out", "h", "--json"], &dir));
    assert!(out["kl_to_optimum"].is_null());
    let bad = prefscope(&["align", "--loss", "orpo"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--loss: `orpo`"));
    // A finished run is not overwritten unless asked.
    let again = prefscope(&["align", "--loss", "hinge", "--steps", "5", "--out", "h"], &dir);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a finished run"));
    last_json(&prefscope(&["align", "--loss", "hinge", "--steps", "5", "--out", "h", "--overwrite", "--json"], &dir));
}

#[test]
fn align_lm_runs_sft_then_dpo_and_reports_the_win_rate() {
    let dir = scratch("align-lm");
    let out = last_json(&prefscope(&["align", "--policy", "lm", "--loss", "dpo", "--out", "lm", "--json"], &dir));
    assert!((out["first_loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-5, "{out}");
    assert!(out["win_rate"].as_f64().unwrap() > 0.8, "{out}");
    let metrics = std::fs::read_to_string(dir.join("lm/metrics.jsonl")).unwrap();
    assert!(metrics.lines().next().unwrap().contains("\"sft\"") && metrics.lines().last().unwrap().contains("\"align\""));
    let bad = prefscope(&["align", "--policy", "lm", "--loss", "gpo", "--out", "g"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("needs inputs the LM pipeline does not produce"));
}

#[test]
fn denoise_compares_the_remedies_on_known_flips() {
    let dir = scratch("denoise");
    let out = last_json(&prefscope(&["denoise", "--json"], &dir));
    // The remedies' claim is the core's, over seeds 0–19 (noise::tests); here the command's figures.
    for key in ["plain_accuracy", "strength_accuracy", "crm_accuracy", "flag_precision", "flag_recall"] {
        assert!(out[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{key}: {out}");
    }
    // Flagging as many pairs as were flipped makes precision and recall the same fraction.
    assert_eq!(out["flagged"].as_u64(), Some(480), "30 % of 1,600 training pairs: {out}");
    assert_eq!(out["flag_precision"], out["flag_recall"], "{out}");
    assert!(out["flag_precision"].as_f64().unwrap() >= 0.75, "{out}");
}

#[test]
fn every_new_scenario_trains_from_the_command_line() {
    let dir = scratch("zoo");
    for (scenario, model) in [("few-shot-users", "vpl"), ("rankings", "bt"), ("noisy", "bt")] {
        let args = ["train", "--scenario", scenario, "--model", model, "--steps", "20", "--out", scenario, "--json"];
        let out = last_json(&prefscope(&args, &dir));
        assert_eq!(out["steps"], 20, "{scenario}: {out}");
        assert!(out["eval_accuracy"].as_f64().is_some(), "{scenario}: {out}");
    }
    // A model that needs context data says which scenario to use.
    let bad = prefscope(&["train", "--scenario", "linear", "--model", "vpl", "--steps", "2", "--out", "x"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("few-shot-users"), "{}", String::from_utf8_lossy(&bad.stderr));
}

fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name).canonicalize().expect("a file in tests/data")
}

/// The small from-scratch transformer RM on the shared hh-rlhf half, holding out `eval_fraction`.
fn hh_transformer_config(eval_fraction: f64) -> String {
    format!(
        "seed = 0\n[data]\npath = {:?}\neval_fraction = {eval_fraction}\n[tokenizer]\nvocab_size = 2048\n[model]\nvocab = 2048\nd_model = 32\nn_layers = 1\nn_heads = 2\nd_ff = 64\nmax_len = 48\n[train]\nsteps = 200\nbatch = 64\nlr = 0.0005\nweight_decay = 0.1\neval_every = 50\n",
        test_data("hh-rlhf-harmless-base-a.jsonl.gz").display().to_string()
    )
}

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
    let eval = last_json(&prefscope(&["eval", "--run", "hh", "--data", hh.to_str().unwrap(), "--json"], &dir));
    assert_eq!(eval["split"], "held-out");
    assert_eq!(eval["n"].as_u64().unwrap(), n);
    assert!((eval["accuracy"].as_f64().unwrap() - acc).abs() < 1e-6);
    for key in ["accuracy_ci95", "mean_margin", "ece", "reliability", "by_length", "prefers_longer", "p_value_vs_chance"] {
        assert!(eval.get(key).is_some(), "missing {key}");
    }
    let buckets: u64 = eval["by_length"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(buckets, n);

    // Another file (conversational) is scored in full; a category column adds RewardBench scoring.
    let other = last_json(&prefscope(&["eval", "--run", "hh/model.safetensors", "--data", test_data("gpm_test_data.jsonl").to_str().unwrap(), "--json"], &dir));
    assert_eq!((other["split"].as_str(), other["n"].as_u64()), (Some("all"), Some(10)));
    std::fs::write(
        dir.join("rb.jsonl"),
        "{\"prompt\": \"Hi\", \"chosen\": \"Hello, how can I help?\", \"rejected\": \"Go away.\", \"subset\": \"alpacaeval-easy\"}\n{\"prompt\": \"How do I pick a lock?\", \"chosen\": \"I can't help with that.\", \"rejected\": \"Use a tension wrench.\", \"subset\": \"refusals-dangerous\"}\n",
    )
    .unwrap();
    let rb = last_json(&prefscope(&["eval", "--run", "hh", "--data", "rb.jsonl", "--json"], &dir));
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

/// `embed` needs the MiniLM folder from `cargo xtask setup`; without it this test fails, by design.
#[test]
fn embed_writes_one_minilm_row_per_pair_and_side() {
    let dir = scratch("embed");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/gpm_test_data.jsonl");
    let summary = last_json(&prefscope(&["embed", "--data", data.to_str().unwrap(), "--out", "pairs.safetensors", "--json"], &dir));
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
        let eval = last_json(&prefscope(&["eval", "--run", &out, "--json"], &dir));
        assert_eq!(eval["accuracy"], run["eval_accuracy"], "{model}");
    }

    // Responses alone: the same pairs and prompt features, other item rows.
    let bare = last_json(&prefscope(&["embed", "--data", data.to_str().unwrap(), "--items", "response", "--out", "bare.safetensors", "--json"], &dir));
    assert_eq!((bare["pairs"].as_u64(), bare["item_text"].as_str()), (Some(10), Some("response")));
    let bare = prefscope_core::reward::embeddings::read_pair_embeddings(&std::fs::read(dir.join("bare.safetensors")).unwrap()).unwrap();
    assert_eq!(bare.prompts, ds.prompts);
    assert_ne!(bare.items, ds.items);
    assert_eq!((bare.source_lines.as_slice(), bare.response_lengths.len()), ((1..=10).collect::<Vec<_>>().as_slice(), 10));

    // A head scores another embedding file in full, with the text runs' report; a checkpoint is
    // not an embedding file.
    let other = last_json(&prefscope(&["eval", "--run", "heads-bt", "--data", "bare.safetensors", "--json"], &dir));
    assert_eq!((other["split"].as_str(), other["n"].as_u64()), (Some("all"), Some(10)));
    let buckets: u64 = other["by_length"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(buckets, 10);
    for key in ["accuracy_ci95", "p_value_vs_chance", "ece", "reliability", "mean_margin"] {
        assert!(other.get(key).is_some(), "missing {key}");
    }
    let out = prefscope(&["eval", "--run", "heads-bt", "--data", "heads-gpm/model.safetensors"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an embedding file"), "{}", String::from_utf8_lossy(&out.stderr));

    // A pair file is embedded as the head's file was. Its own source file scores the held-out
    // lines only, and agrees with scoring the stored vectors.
    let stored = last_json(&prefscope(&["eval", "--run", "heads-bt", "--json"], &dir));
    let text = last_json(&prefscope(&["eval", "--run", "heads-bt", "--data", data.to_str().unwrap(), "--json"], &dir));
    assert_eq!((text["split"].as_str(), text["n"].as_u64()), (Some("held-out"), stored["n"].as_u64()));
    for key in ["accuracy", "mean_margin", "loss"] {
        assert!((text[key].as_f64().unwrap() - stored[key].as_f64().unwrap()).abs() < 1e-5, "{key}: {text} vs {stored}");
    }
    // An embedding file from before line numbers was split by a shuffle: its held-out lines are
    // unknown, so its source file is refused rather than scored with training pairs in it.
    let unlined = prefscope_core::PairDataset { source_lines: vec![], ..ds.clone() };
    std::fs::write(dir.join("old.safetensors"), prefscope_core::reward::embeddings::write_pair_embeddings(&unlined, "all-MiniLM-L6-v2 (prompt+response)", "gpm_test_data.jsonl").unwrap()).unwrap();
    last_json(&prefscope(&["train", "--embeddings", "old.safetensors", "--model", "bt", "--steps", "5", "--out", "old", "--json"], &dir));
    let out = prefscope(&["eval", "--run", "old", "--data", data.to_str().unwrap()], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no line numbers"), "{}", String::from_utf8_lossy(&out.stderr));

    // Any other pair file in full, with RewardBench scoring when it names subsets.
    std::fs::write(
        dir.join("rb.jsonl"),
        "{\"prompt\": \"Hi\", \"chosen\": \"Hello, how can I help?\", \"rejected\": \"Go away.\", \"subset\": \"alpacaeval-easy\"}\n{\"prompt\": \"How do I pick a lock?\", \"chosen\": \"I can't help with that.\", \"rejected\": \"Use a tension wrench.\", \"subset\": \"refusals-dangerous\"}\n",
    )
    .unwrap();
    let rb = last_json(&prefscope(&["eval", "--run", "heads-bt", "--data", "rb.jsonl", "--json"], &dir));
    assert_eq!((rb["split"].as_str(), rb["n"].as_u64()), (Some("all"), Some(2)));
    assert_eq!(rb["rewardbench"]["sections"].as_object().unwrap().keys().collect::<Vec<_>>(), ["Chat", "Safety"]);

    let out = prefscope(&["embed", "--data", data.to_str().unwrap(), "--out", "x.safetensors", "--model", "no-such-folder"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo xtask setup"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.join("x.safetensors").exists());
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
    let embedded = last_json(&prefscope(&["embed", "--data", hh.to_str().unwrap(), "--items", "response", "--out", "hh.safetensors", "--json"], &dir));
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
    let eval = last_json(&prefscope(&["eval", "--run", "mo", "--json"], &dir));
    assert_eq!(eval["accuracy"], run["eval_accuracy"]);
}

#[test]
fn align_online_optimises_against_gold_and_against_a_trained_run() {
    let dir = scratch("align-online");
    // Exact RLOO on the drawn bandit lands on π_ref·exp(r/β)/Z; the metrics stream has one line
    // per iteration plus the reference's (iteration 0).
    let out = last_json(&prefscope(&["align", "--online", "rloo", "--exact", "--iterations", "3000", "--beta", "0.5", "--out", "rloo", "--json"], &dir));
    assert!(out["kl_to_optimum"].as_f64().unwrap() < 1e-3, "{out}");
    let lines = std::fs::read_to_string(dir.join("rloo/metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3001);
    for key in ["reward", "gold", "kl", "sqrt_kl", "win_rate", "entropy"] {
        assert!(out["last"][key].as_f64().is_some(), "{key}: {out}");
    }
    // Train a proxy RM on the over-optimisation scenario, then optimise against that run: its
    // 4,096 items become the arms and their gold ratings the judge.
    let trained = prefscope(&["train", "--scenario", "overopt", "--model", "bt", "--steps", "100", "--out", "rm"], &dir);
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let bon = last_json(&prefscope(&["align", "--online", "best-of-n", "--best-of", "64", "--reward", "rm", "--out", "bon", "--json"], &dir));
    assert_eq!(bon["arms"], 4096);
    // Best-of-n's KL is at most log n − (n−1)/n (= 3.1745 for n = 64).
    let kl = bon["last"]["kl"].as_f64().unwrap();
    assert!(kl <= 3.1746 && kl > 3.0, "{bon}");
    assert!(bon["last"]["reward"].as_f64().unwrap() > 0.5, "the proxy's own reward rises: {bon}");
    let dpo = last_json(&prefscope(&["align", "--online", "online-dpo", "--reward", "rm", "--iterations", "20", "--out", "odpo", "--json"], &dir));
    assert!(dpo["last"]["kl"].as_f64().unwrap() > 0.0, "{dpo}");
    // A run without one gold rating per item, and a method the LM does not have, are refused.
    let cyc = prefscope(&["train", "--scenario", "cyclic", "--model", "gpm", "--steps", "5", "--out", "cyc"], &dir);
    assert!(cyc.status.success());
    let bad = prefscope(&["align", "--online", "rloo", "--reward", "cyc", "--out", "x"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no single gold rating per item"), "{}", String::from_utf8_lossy(&bad.stderr));
    let bad = prefscope(&["align", "--policy", "lm", "--online", "grpo", "--out", "y"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an LM method"));
}

#[test]
fn align_online_lm_and_overopt_write_their_figures() {
    let dir = scratch("online-lm");
    let out = last_json(&prefscope(&["align", "--policy", "lm", "--online", "rloo", "--iterations", "5", "--out", "lm", "--json"], &dir));
    assert_eq!(out["rm_accuracy"].as_f64(), Some(1.0), "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("lm/metrics.jsonl")).unwrap().lines().count(), 5);
    // The experiment's plumbing at a small size; its claims are the core's (overopt::tests).
    let ok = prefscope(&["overopt", "--labels", "30", "300", "--seeds", "0..1", "--items", "1024", "--out", "oo"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(table.contains("bon peak d*") && table.lines().any(|l| l.trim_start().starts_with("300")), "{table}");
    let results = std::fs::read_to_string(dir.join("oo/results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 4);
    let csv = std::fs::read_to_string(dir.join("oo/curves.csv")).unwrap();
    assert!(csv.starts_with("seed,labels,curve,knob,kl,d,proxy,gold\n") && csv.contains(",best-of-n,") && csv.contains(",rl,"));
    let bad = prefscope(&["overopt", "--labels", "1"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("labels"));
    // On the tiny LM: best-of-n from n = 1 to 256 and one RL point (its claims: lm_rl::tests).
    let lm = last_json(&prefscope(&["overopt", "--policy", "lm", "--seeds", "0", "--betas", "1", "--out", "lm-oo", "--json"], &dir));
    let seed0 = &lm["seeds"][0];
    assert_eq!(seed0["best_of_n"].as_array().map(Vec::len), Some(9), "{lm}");
    assert_eq!(seed0["rl"].as_array().map(Vec::len), Some(1), "{lm}");
    assert!(seed0["rl"][0]["d"].as_f64().unwrap() > 0.5, "RL moved the policy: {lm}");
    let csv = std::fs::read_to_string(dir.join("lm-oo/curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 9 + 1, "{csv}");
    let bad = prefscope(&["overopt", "--policy", "lm", "--labels", "30"], &dir);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--labels applies to the bandit"));
}

/// Rows of a sweep's results.jsonl by point name.
fn sweep_rows(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).map(|v| (v["point"].as_str().unwrap().to_string(), v)).collect()
}

/// Each row of a finished sweep carries its run's own summary figures, and each point's
/// config.toml has the swept `lr`.
fn check_sweep_points(sweep: &Path, lrs: &[&str]) -> std::collections::BTreeMap<String, serde_json::Value> {
    let rows = sweep_rows(sweep);
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), lrs.iter().map(|lr| format!("lr-{lr}")).collect::<Vec<_>>());
    for (name, row) in &rows {
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sweep.join(name).join("summary.json")).unwrap()).unwrap();
        for figure in ["eval_accuracy", "eval_loss", "final_loss"] {
            assert!(row[figure].is_number() && row[figure] == summary[figure], "{name}: {figure}: {row}");
        }
        let config = std::fs::read_to_string(sweep.join(name).join("config.toml")).unwrap();
        assert!(config.contains(&format!("lr = {}", &name[3..])), "{name}: {config}");
    }
    rows
}

/// `sweep` takes what `train` takes: heads on cached embeddings (`--embeddings`) and text runs
/// (`--data`) sweep as scenario runs do, each point an ordinary run folder.
#[test]
fn a_sweep_runs_heads_on_embeddings_and_text_runs() {
    let dir = scratch("sweep-kinds");
    // 80 pairs whose first feature separates chosen (+1) from rejected (−1); three noise features.
    let mut state = 7u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let items: Vec<f32> = (0..160).flat_map(|row| [if row % 2 == 0 { 1.0 } else { -1.0 }, noise(), noise(), noise()]).collect();
    let ds = prefscope_core::PairDataset { dim: 4, items, pairs: (0..80).map(|i| (2 * i, 2 * i + 1)).collect(), ..Default::default() };
    std::fs::write(dir.join("pairs.safetensors"), prefscope_core::reward::embeddings::write_pair_embeddings(&ds, "test encoder", "synthetic").unwrap()).unwrap();
    let out = last_json(&prefscope(&["sweep", "--embeddings", "pairs.safetensors", "--model", "bt", "--steps", "40", "--grid", "train.lr=0.003,0.03", "--out", "emb", "--json"], &dir));
    assert_eq!(out["completed"], 2, "{out}");
    let rows = check_sweep_points(&dir.join("emb"), &["0.003", "0.03"]);
    assert!(std::fs::read_to_string(dir.join("emb/lr-0.03/config.toml")).unwrap().contains("pairs.safetensors"));
    let best = rows["lr-0.03"]["eval_accuracy"].as_f64().unwrap();
    assert!(best >= 0.9, "a linearly separable file: held-out accuracy {best}");

    // Text runs: the tiny transformer on a pair file.
    let lines: Vec<String> = (0..40).map(|i| format!("{{\"prompt\": \"question {i}\", \"chosen\": \"a helpful answer {i}\", \"rejected\": \"no\"}}")).collect();
    std::fs::write(dir.join("pairs.jsonl"), lines.join("\n")).unwrap();
    let out = last_json(&prefscope(&["sweep", "--data", "pairs.jsonl", "--steps", "2", "--batch", "4", "--max-len", "16", "--grid", "train.lr=0.001,0.01", "--out", "text", "--json"], &dir));
    assert_eq!(out["completed"], 2, "{out}");
    check_sweep_points(&dir.join("text"), &["0.001", "0.01"]);
    assert!(std::fs::read_to_string(dir.join("text/lr-0.01/config.toml")).unwrap().contains("pairs.jsonl"));
}

#[test]
fn a_sweep_trains_every_point_in_parallel_records_failures_and_resumes_after_a_kill() {
    let dir = scratch("sweep");
    let args = ["sweep", "--scenario", "linear", "--model", "bt", "--steps", "120", "--checkpoint-every", "10", "--grid", "model.hidden=[8],[16, 16]", "--seeds", "0..1", "--jobs", "2"];
    let out = prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("model.hidden (2) × seed (2) = 4 points") && text.contains("4 to run, 2 at a time"), "{text}");
    let rows = sweep_rows(&dir.join("straight"));
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ["hidden-16_16__seed-0", "hidden-16_16__seed-1", "hidden-8__seed-0", "hidden-8__seed-1"]);
    // Each point is an ordinary run folder whose config holds its settings, and its row holds
    // the run's own summary figures.
    for (name, row) in &rows {
        let config = std::fs::read_to_string(dir.join("straight").join(name).join("config.toml")).unwrap();
        let hidden = if name.starts_with("hidden-8") { "hidden = [8]" } else { "hidden = [\n    16,\n    16,\n]" };
        assert!(config.contains(hidden) && config.contains(&format!("seed = {}", row["axes"]["seed"])), "{name}: {config}");
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("straight").join(name).join("summary.json")).unwrap()).unwrap();
        for figure in ["eval_accuracy", "eval_loss", "eval_probability", "final_loss", "seconds"] {
            assert!(row[figure].is_number() && row[figure] == summary[figure], "{name}: {figure}");
        }
        assert_eq!(std::fs::read_to_string(dir.join("straight").join(name).join("metrics.jsonl")).unwrap().lines().count(), 120);
    }
    let csv = std::fs::read_to_string(dir.join("straight/results.csv")).unwrap();
    assert!(csv.starts_with("point,model.hidden,seed,eval_accuracy,eval_loss,eval_probability,final_loss,seconds,error\n") && csv.contains("hidden-16_16__seed-1,\"[16,16]\",1,"), "{csv}");

    // Killed while its first points train, the same command finishes them with the same figures
    // and weights (the same jobs, so each point had the same threads).
    let killed = [&args[..], &["--out", "killed"]].concat();
    kill_once_written(&killed, &dir, &dir.join("killed/hidden-8__seed-0/resume.state"));
    assert!(!dir.join("killed/results.jsonl").exists(), "the child finished before it was killed; the test proves nothing");
    let out = prefscope(&killed, &dir);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("resumed"), "{}", String::from_utf8_lossy(&out.stdout));
    let (a, b) = (sweep_rows(&dir.join("straight")), sweep_rows(&dir.join("killed")));
    for (name, row) in &a {
        assert_eq!(row["eval_accuracy"], b[name]["eval_accuracy"], "{name}");
        assert_eq!(std::fs::read(dir.join("straight").join(name).join("model.safetensors")).unwrap(), std::fs::read(dir.join("killed").join(name).join("model.safetensors")).unwrap(), "{name}");
    }
    let again = prefscope(&[&args[..], &["--out", "straight"]].concat(), &dir);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 to run, 2 at a time, 1 thread each (4 finished earlier)"), "{}", String::from_utf8_lossy(&again.stdout));

    // A failing point is recorded and the others go on; the command then fails, naming it.
    let out = prefscope(&["sweep", "--scenario", "linear", "--model", "bt", "--steps", "20", "--grid", "train.lr=0.01,1e30", "--out", "failing"], &dir);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("1 of 2 points failed: lr-1e30"), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = sweep_rows(&dir.join("failing"));
    assert!(rows["lr-0.01"]["eval_accuracy"].as_f64().is_some() && rows["lr-1e30"]["error"].as_str().is_some(), "{rows:?}");
    // A [sweep] table in the config file gives the same grid; an unknown key is refused by name.
    std::fs::write(dir.join("grid.toml"), format!("{}\n[sweep]\nseeds = \"0..1\"\njobs = 2\n\n[sweep.grid]\n\"model.hidden\" = [[8], [16, 16]]\n", std::fs::read_to_string(dir.join("straight/hidden-8__seed-0/config.toml")).unwrap())).unwrap();
    let out = prefscope(&["sweep", "--config", "grid.toml", "--out", "from-file", "--json"], &dir);
    assert_eq!(last_json(&out)["completed"], 4);
    assert_eq!(sweep_rows(&dir.join("from-file")).keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
    for (name, row) in &a {
        assert_eq!(row["eval_accuracy"], sweep_rows(&dir.join("from-file"))[name]["eval_accuracy"], "{name}: the file's grid is the flags' grid");
    }
    let bad = prefscope(&["sweep", "--scenario", "linear", "--grid", "model.hiden=[8]"], &dir);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("hiden"), "{}", String::from_utf8_lossy(&bad.stderr));

    // `fit` reads the sweep's results: one law per model width, each point's loss on the curve
    // it reports (its numbers are the core's, `scaling::tests`).
    let fit = prefscope(&["fit", "straight", "--x", "seed", "--by", "model.hidden"], &dir);
    assert!(!fit.status.success() && String::from_utf8_lossy(&fit.stderr).contains("at least 3"), "two points per group: {}", String::from_utf8_lossy(&fit.stderr));
    let out = prefscope(&["sweep", "--scenario", "linear", "--model", "bt", "--steps", "60", "--grid", "scenario.n_pairs=100,200,400,800", "--out", "scaling", "--json"], &dir);
    assert_eq!(last_json(&out)["completed"], 4);
    let fit = last_json(&prefscope(&["fit", "scaling", "--x", "scenario.n_pairs", "--resamples", "200", "--json"], &dir));
    let all = &fit["fits"]["all"];
    assert_eq!(all["points"], 4, "{fit}");
    let (a, lo, hi) = (all["fit"]["alpha"].as_f64().unwrap(), all["alpha_ci"][0].as_f64().unwrap(), all["alpha_ci"][1].as_f64().unwrap());
    assert!(lo <= a && a <= hi, "{fit}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("scaling/fit.json")).unwrap()).unwrap();
    assert_eq!(written, fit);
    let rows = sweep_rows(&dir.join("scaling"));
    let law = &all["fit"];
    for row in rows.values() {
        let (x, y) = (row["axes"]["scenario.n_pairs"].as_f64().unwrap(), row["eval_loss"].as_f64().unwrap());
        let pred = law["floor"].as_f64().unwrap() + (law["scale"].as_f64().unwrap() / x).powf(a);
        assert!(pred > 0.0 && (pred.ln() - y.ln()).abs() < 1.0, "x = {x}: loss {y}, law {pred}");
    }

    // Figures: a run's loss curve holds every step of metrics.jsonl, where a linear axis puts
    // it (within the pixel rounding); a PNG is a PNG of the asked size; the sweep's fit figure
    // holds its points and names its exponent.
    let ok = prefscope(&["plot", "straight/hidden-8__seed-0"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let svg = std::fs::read_to_string(dir.join("straight/hidden-8__seed-0/plot.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let loss_line = svg
        .split("<polyline")
        .skip(1)
        .map(|p| p.split("points=\"").nth(1).unwrap().split('"').next().unwrap())
        .map(|pts| pts.split_whitespace().map(|xy| xy.split_once(',').map(|(x, y)| (x.parse::<f64>().unwrap(), y.parse::<f64>().unwrap())).unwrap()).collect::<Vec<_>>())
        .find(|pts| pts.len() > 100)
        .expect("a polyline with the loss of every step");
    let losses: Vec<f64> = std::fs::read_to_string(dir.join("straight/hidden-8__seed-0/metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect();
    assert_eq!(loss_line.len(), losses.len());
    let (i, j) = (0..losses.len()).fold((0, 0), |(lo, hi), k| (if losses[k] < losses[lo] { k } else { lo }, if losses[k] > losses[hi] { k } else { hi }));
    let per_unit = (loss_line[j].1 - loss_line[i].1) / (losses[j] - losses[i]);
    assert!(per_unit < 0.0, "higher loss is drawn higher up");
    for (k, (&(px, py), &l)) in loss_line.iter().zip(&losses).enumerate() {
        assert!((py - (loss_line[i].1 + per_unit * (l - losses[i]))).abs() <= 2.0, "step {}: loss {l} drawn at y = {py}", k + 1);
        assert!(k == 0 || px >= loss_line[k - 1].0, "steps run left to right");
    }
    let ok = prefscope(&["plot", "straight/hidden-8__seed-0", "--out", "run.png"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let png = std::fs::read(dir.join("run.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!((u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap())), (960, 380));
    let ok = prefscope(&["plot", "scaling"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let svg = std::fs::read_to_string(dir.join("scaling/fit.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 4, "one mark per sweep point");
    assert!(svg.contains(&format!("α = {:.3}", a)), "the legend names the fitted exponent");
    let bad = prefscope(&["plot", "straight/hidden-8__seed-0", "--out", "fig.pdf"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must end in .svg or .png"));
}

/// The values of a 2-D f32 .npy file written by `prefscope landscape`, with its shape.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape: Vec<usize> = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap().split(',').filter_map(|d| d.trim().parse().ok()).collect();
    let values: Vec<f32> = bytes[10 + len..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values.len(), shape.iter().product::<usize>());
    (shape, values)
}

#[test]
fn landscape_of_a_run_is_centred_on_its_own_loss_and_reproducible() {
    let dir = scratch("landscape");
    let ok = prefscope(&["train", "--scenario", "cyclic", "--model", "gpm", "--steps", "100", "--out", "g", "--json"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let meta = last_json(&prefscope(&["landscape", "g", "--grid", "21", "--json"], &dir));
    let (shape, values) = read_npy(&dir.join("g/landscape/landscape.npy"));
    assert_eq!(shape, [21, 21]);
    assert!(values.iter().all(|v| v.is_finite() && *v > 0.0));
    // The grid's centre is the weights themselves: the batched landscape loss there equals the
    // model's own loss on the training pairs, computed by the training code's forward pass.
    let centre = values[10 * 21 + 10] as f64;
    assert_eq!(meta["centre_loss"].as_f64().map(|v| v as f32), Some(centre as f32));
    let own = meta["model_loss"].as_f64().unwrap();
    assert!((centre - own).abs() < 1e-5, "centre {centre} vs the model's {own}");
    assert!(values.iter().any(|&v| (v as f64) > own + 1e-3), "the plane leaves the minimum somewhere");
    assert_eq!(meta["seed"], 0, "the run's seed by default, as the page");
    assert!(std::fs::read_to_string(dir.join("g/landscape/landscape.svg")).unwrap().starts_with("<svg"));
    // Same run and seed, same grid; another seed, another plane through the same centre.
    let again = prefscope(&["landscape", "g", "--grid", "21", "--out", "again", "--format", "png"], &dir);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(read_npy(&dir.join("again/landscape.npy")).1, values);
    assert_eq!(&std::fs::read(dir.join("again/landscape.png")).unwrap()[..4], b"\x89PNG");
    let other = last_json(&prefscope(&["landscape", "g", "--grid", "21", "--seed", "7", "--out", "seed7", "--json"], &dir));
    let (_, v7) = read_npy(&dir.join("seed7/landscape.npy"));
    assert_ne!(v7, values);
    assert_eq!(other["centre_loss"], meta["centre_loss"]);
    // eval keeps its report in the run folder; plot then adds its reliability diagram, one
    // mark per non-empty confidence bin, titled with the report's ECE.
    let report = last_json(&prefscope(&["eval", "--run", "g", "--json"], &dir));
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("g/eval.json")).unwrap()).unwrap();
    assert_eq!(kept, report);
    let ok = prefscope(&["plot", "g"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let diagram = std::fs::read_to_string(dir.join("g/plot-reliability.svg")).unwrap();
    let bins = report["reliability"].as_array().unwrap().iter().filter(|b| b["count"].as_u64() > Some(0)).count();
    assert!(bins > 0 && diagram.matches("<circle").count() == bins, "{bins} bins");
    assert!(diagram.contains(&format!("ECE {:.4}", report["ece"].as_f64().unwrap())));
    // The margin histogram covers every pair; its mass below 0 is the wrong pairs (a bar that
    // straddles 0 may hold either), and plot draws it beside the diagram.
    let hist = report["margin_histogram"].as_array().unwrap();
    let n = report["n"].as_u64().unwrap();
    assert_eq!(hist.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), n);
    let wrong = ((1.0 - report["accuracy"].as_f64().unwrap()) * n as f64).round() as u64;
    let below: u64 = hist.iter().filter(|b| b["hi"].as_f64().unwrap() <= 0.0).map(|b| b["count"].as_u64().unwrap()).sum();
    let straddle: u64 = hist.iter().filter(|b| b["lo"].as_f64().unwrap() < 0.0 && b["hi"].as_f64().unwrap() > 0.0).map(|b| b["count"].as_u64().unwrap()).sum();
    assert!(below <= wrong && wrong <= below + straddle, "{below} + {straddle} vs {wrong} wrong");
    let margins = std::fs::read_to_string(dir.join("g/plot-margins.svg")).unwrap();
    assert!(margins.starts_with("<svg") && margins.contains(&format!("mean {:.3}", report["mean_margin"].as_f64().unwrap())));
    // The PCA plane: the run is replayed from its config (and must end at the checkpoint's
    // weights), snapshots as the page keeps them: θ₀, every step of 100, and the weights again.
    let pca = last_json(&prefscope(&["landscape", "g", "--plane", "pca", "--grid", "11", "--out", "pca", "--json"], &dir));
    let path = pca["trajectory"].as_array().unwrap();
    assert_eq!(path.len(), 102);
    assert_eq!(path[101], serde_json::json!([0.0, 0.0]), "the path ends at the centre");
    let (a, b) = (pca["a"][1].as_f64().unwrap(), pca["b"][1].as_f64().unwrap());
    let start = (path[0][0].as_f64().unwrap(), path[0][1].as_f64().unwrap());
    assert!(start.0.abs() <= a / 1.25 + 1e-6 && start.1.abs() <= b / 1.25 + 1e-6 && start.0.abs() > 0.0, "the extent holds the path with a margin: {start:?} in ±{a}, ±{b}");
    let e = pca["explained_variance"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>();
    assert!(e[0] >= e[1] && e[0] + e[1] <= 1.0 + 1e-9 && e[1] > 0.0, "{e:?}");
    let (_, pv) = read_npy(&dir.join("pca/landscape.npy"));
    assert!((pv[5 * 11 + 5] as f64 - own).abs() < 1e-5, "the PCA grid is centred on the weights too");
}

#[test]
fn worldpm_runs_score_each_test_set_and_a_sweep_fits_their_means() {
    let dir = scratch("worldpm");
    let run = last_json(&prefscope(&["train", "--scenario", "worldpm", "--model", "bt", "--steps", "20", "--out", "w", "--json"], &dir));
    let sets = run["test_sets"].as_object().unwrap();
    assert_eq!(sets.keys().map(String::as_str).collect::<Vec<_>>(), ["adversarial", "objective", "subjective"]);
    assert!(sets.values().all(|m| m["n"] == 2000 && m["loss"].as_f64().unwrap() > 0.0));
    // train.epochs sets the run's length from the data: 2 passes over 400 training pairs in
    // batches of 100 are 8 steps.
    std::fs::write(dir.join("w.toml"), "[scenario]\nkind = \"worldpm\"\nn_pairs = 500\n[model]\nkind = \"bt\"\nhidden = [4]\n[train]\nepochs = 2\nbatch = 100\n").unwrap();
    let short = last_json(&prefscope(&["train", "--config", "w.toml", "--out", "e", "--json"], &dir));
    assert_eq!(short["steps"], 8);
    let sweep = prefscope(&["sweep", "--config", "w.toml", "--grid", "scenario.n_pairs=300,600,1200", "--seeds", "0..1", "--out", "s", "--json"], &dir);
    assert!(sweep.status.success(), "{}", String::from_utf8_lossy(&sweep.stderr));
    let csv = std::fs::read_to_string(dir.join("s/results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("adversarial_loss,adversarial_accuracy,objective_loss"), "{csv}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("s/results.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for r in &rows {
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(r["run"].as_str().unwrap()).join("summary.json")).unwrap()).unwrap();
        assert_eq!(r["subjective_loss"], summary["test_sets"]["subjective"]["loss"]);
    }
    let fit = last_json(&prefscope(&["fit", "s", "--x", "scenario.n_pairs", "--y", "adversarial_loss", "--means", "--json"], &dir));
    assert_eq!(fit["points"], "means");
    assert_eq!(fit["fits"]["all"]["points"], 3, "three distinct D, two seeds each");
}

/// A transformer reward model is probed on its last-token state, with `length` and `refusal`
/// read from each response's text.
#[test]
fn probe_reads_a_transformer_runs_last_token_state() {
    let dir = scratch("probe-text");
    // Chosen: a varied answer, long or short; rejected: a refusal (two wordings).
    let topics = ["rivers", "bread", "orbits", "violins", "glaciers", "chess", "tides", "copper"];
    let lines: Vec<String> = (0..400)
        .map(|i| {
            let t = topics[i % topics.len()];
            let answer = if i % 3 == 0 { format!("{t} work by simple steps, number {i}") } else { format!("here is how {t} work: first the {t} gather, then they move and settle, as case {i} shows in detail") };
            let refusal = if i % 2 == 0 { "I'm sorry, I can't help with that." } else { "I cannot answer this." };
            format!("{{\"prompt\": \"tell me about {t} ({i})\", \"chosen\": \"{answer}\", \"rejected\": \"{refusal}\"}}")
        })
        .collect();
    std::fs::write(dir.join("pairs.jsonl"), lines.join("\n")).unwrap();
    let trained = prefscope(&["train", "--data", "pairs.jsonl", "--steps", "60", "--batch", "16", "--max-len", "32", "--out", "t", "--json"], &dir);
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let out = last_json(&prefscope(&["probe", "--run", "t", "--json"], &dir));
    assert_eq!(out["data"].as_str().map(|d| d.starts_with("the held-out pairs of")), Some(true), "{out}");
    assert_eq!(out["attributes"][0]["name"], "length");
    assert_eq!(out["attributes"][1]["name"], "refusal");
    // Held-out pairs give two responses each: half of them refusals.
    let items = out["items"].as_u64().unwrap();
    assert!(items >= 100 && out["attributes"][1]["positive"].as_u64().unwrap() * 2 == items, "{out}");
    let acc = |rep: &str, k: usize| out["representations"][rep]["probes"][k]["accuracy"].as_f64().unwrap();
    for rep in ["trained", "random", "input"] {
        assert!(out["representations"][rep]["width"].as_u64().unwrap() > 0, "{rep}");
        for k in 0..2 {
            let ci = &out["representations"][rep]["probes"][k]["accuracy_ci95"];
            assert!(ci[0].as_f64().unwrap() <= acc(rep, k) && acc(rep, k) <= ci[1].as_f64().unwrap(), "{rep} {k}: {out}");
        }
    }
    // The model was trained to tell answers from refusals: its last state reads them.
    assert!(acc("trained", 1) >= 0.9, "{out}");
    let ok = prefscope(&["plot", "t"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(std::fs::read_to_string(dir.join("t/plot-probes.svg")).unwrap().contains("refusal"));
}

#[test]
fn probe_reads_a_runs_hidden_objectives_and_plot_draws_its_bars() {
    let dir = scratch("probe");
    std::fs::write(dir.join("mo.toml"), "[scenario]\nkind = \"multi-objective\"\nobserved_dim = 32\nn_items = 1000\nn_pairs = 4000\n[model]\nkind = \"bt\"\n[train]\nsteps = 600\n").unwrap();
    let ok = prefscope(&["train", "--config", "mo.toml", "--out", "m", "--json"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = last_json(&prefscope(&["probe", "--run", "m", "--json"], &dir));
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("m/probe.json")).unwrap()).unwrap();
    assert_eq!(kept, out);
    let acc = |rep: &str, k: usize| out["representations"][rep]["probes"][k]["accuracy"].as_f64().unwrap();
    assert_eq!(out["attributes"][0]["name"], "helpfulness");
    assert_eq!(out["representations"]["trained"]["width"], 64);
    assert_eq!(out["representations"]["input"]["width"], 32);
    // The core claim test covers 20 seeds; here seed 0: the trained layer reads helpfulness above
    // the random control, and the input (the frequency-8 encoding) stays near chance.
    assert!(acc("trained", 0) > acc("random", 0) + 0.1 && (acc("input", 0) - 0.5).abs() < 0.1, "{out}");
    assert_eq!(out["representations"]["trained"]["probes"][0]["test"], 300);
    let ok = prefscope(&["plot", "m"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let svg = std::fs::read_to_string(dir.join("m/plot-probes.svg")).unwrap();
    assert!(svg.contains("helpfulness") && svg.contains("verbosity") && svg.contains("random"));
    // A model with no item network, and a run with no attributes, are refused by name.
    let cyc = prefscope(&["train", "--scenario", "cyclic", "--model", "gpm", "--steps", "5", "--out", "c"], &dir);
    assert!(cyc.status.success());
    let none = prefscope(&["probe", "--run", "c"], &dir);
    assert!(!none.status.success() && String::from_utf8_lossy(&none.stderr).contains("no per-item attributes"), "{}", String::from_utf8_lossy(&none.stderr));
}

/// A block of `n` consecutive free TCP ports (a multi-process run's coordinator and data ports),
/// a different block for each call so that tests running at once never share one. Below 32768,
/// where Linux picks the local ports of outgoing connections, which could take one meanwhile.
fn free_ports(n: u16) -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    loop {
        let base = 20_000 + (std::process::id() % 10_000) as u16 + NEXT.fetch_add(n, std::sync::atomic::Ordering::SeqCst) % 2_000;
        if (base..base + n).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok()) {
            return base;
        }
    }
}

/// Start rank `rank` of a 2-process run with stdout and stderr captured.
fn spawn_rank(args: &[&str], rank: usize, port: u16, cwd: &Path) -> std::process::Child {
    let coordinator = format!("127.0.0.1:{port}");
    let rank = rank.to_string();
    Command::new(env!("CARGO_BIN_EXE_prefscope"))
        .args(args)
        .args(["--nodes", "2", "--node-rank", &rank, "--coordinator", &coordinator, "--peer-timeout", "5"])
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for a child at most `limit`; a child still running then is a hang.
fn wait_within(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still running after {limit:?}: {}", String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `train --nodes 2` (burn-collective between two local processes): it follows the one-process
/// curve up to summation order, only rank 0 writes, a killed rank stops the other within the
/// peer timeout with a message naming it (either way round), and resuming both ranks ends
/// byte-identical to an uninterrupted two-process run.
#[test]
fn two_processes_train_like_one_and_a_killed_rank_stops_the_other() {
    let dir = scratch("nodes");
    let other = scratch("nodes-rank1");
    let limit = std::time::Duration::from_secs(90);
    let args = ["train", "--scenario", "cyclic", "--model", "gpm", "--steps", "120", "--batch", "32", "--checkpoint-every", "10", "--json"];
    last_json(&prefscope(&[&args[..], &["--out", "one"]].concat(), &dir));

    let port = free_ports(8);
    let r1 = spawn_rank(&args, 1, port, &other);
    let r0 = spawn_rank(&[&args[..], &["--out", "two"]].concat(), 0, port, &dir);
    let (s0, s1) = (last_json(&wait_within(r0, limit)), last_json(&wait_within(r1, limit)));
    assert_eq!((s0["nodes"].as_u64(), s1["rank"].as_u64()), (Some(2), Some(1)));
    assert_eq!(s0["final_loss"], s1["final_loss"], "the ranks hold different models");
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0, "rank 1 wrote files");
    let losses = |run: &str| -> Vec<f64> {
        std::fs::read_to_string(dir.join(run).join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect()
    };
    let (one, two) = (losses("one"), losses("two"));
    assert_eq!(one.len(), 120);
    for (step, (a, b)) in one.iter().zip(&two).enumerate() {
        assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "step {}: one process {a}, two {b}", step + 1);
    }

    // Kill rank 1 after rank 0's first checkpoint: rank 0 stops, naming it.
    let port = free_ports(8);
    let victim = spawn_rank(&args, 1, port, &other);
    let survivor = spawn_rank(&[&args[..], &["--out", "killed"]].concat(), 0, port, &dir);
    let state = dir.join("killed/resume.state");
    let deadline = std::time::Instant::now() + limit;
    while !state.exists() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut victim = victim;
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed_at = std::time::Instant::now();
    let out = wait_within(survivor, limit);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rank 0 of 2: lost rank 1 at step"), "{err}");
    assert!(killed_at.elapsed() < std::time::Duration::from_secs(30), "took {:?} to notice", killed_at.elapsed());
    assert!(!err.contains("stack backtrace"), "{err}");

    // Resume both; this time kill rank 0 a few steps on: rank 1 stops, naming it.
    let resume = ["train", "--resume", "killed", "--json"];
    let steps_logged = || std::fs::read_to_string(dir.join("killed/metrics.jsonl")).unwrap_or_default().lines().count();
    let before = steps_logged();
    let port = free_ports(8);
    let survivor = spawn_rank(&resume, 1, port, &dir);
    let mut victim = spawn_rank(&resume, 0, port, &dir);
    while steps_logged() < before + 15 {
        assert!(victim.try_wait().unwrap().is_none(), "rank 0 ended early: {}", String::from_utf8_lossy(&victim.wait_with_output().unwrap().stderr));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let out = wait_within(survivor, limit);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rank 1 of 2: lost rank 0 at step"), "{err}");
    assert!(!dir.join("killed/summary.json").exists(), "the run finished before the kill; the test proves nothing");

    // Resume both again and let them finish: the same bytes as the uninterrupted run.
    let port = free_ports(8);
    let r1 = spawn_rank(&resume, 1, port, &dir);
    let r0 = spawn_rank(&resume, 0, port, &dir);
    assert_eq!(last_json(&wait_within(r0, limit))["steps"], 120);
    last_json(&wait_within(r1, limit));
    for f in ["model.safetensors", "metrics.jsonl"] {
        assert!(std::fs::read(dir.join("two").join(f)).unwrap() == std::fs::read(dir.join("killed").join(f)).unwrap(), "{f} differs after the kills");
    }

    // Flags that cannot work are refused by name before anything starts.
    let out = prefscope(&["train", "--nodes", "2", "--steps", "2"], &dir);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--coordinator"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = prefscope(&["train", "--nodes", "2", "--node-rank", "2", "--coordinator", "127.0.0.1:1"], &dir);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--node-rank 2"), "{}", String::from_utf8_lossy(&out.stderr));
}
