//! End-to-end tests of the `prefscope` binary: real processes, real run folders. Train, eval,
//! resume after kills, backends, the policy commands.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

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
    let eval = last_json(&prefscope(&["eval", "runs/a", "--json"], &dir));
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
    let args = ["embed", "--data", data.to_str().unwrap(), "--output", "pairs.safetensors"];
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
            let eval = last_json(&prefscope(&["eval", run, "--json"], &dir));
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

    // A value the flag does not take is refused by the parser, which lists the values it takes.
    let out = prefscope(&["train", "--scenario", "circle"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid value 'circle' for '--scenario") && err.contains("cyclic-abcd"), "{err}");
    // The same mistake in a config file names the file, the line and the field.
    std::fs::write(dir.join("kind.toml"), "[scenario]\nkind = \"circle\"\n").unwrap();
    let out = prefscope(&["train", "--config", "kind.toml"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("kind.toml:2: scenario.kind"), "{err}");

    std::fs::write(dir.join("run.toml"), "[scenario]\nkind = \"linear\"\n[model]\nkind = \"bt\"\n[train]\nlr = \"fast\"\n").unwrap();
    let out = prefscope(&["train", "--config", "run.toml"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("run.toml:6: train.lr:"), "{err}");

    let out = prefscope(&["train", "--steps", "0"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("train.steps"));

    let out = prefscope(&["eval", "nowhere"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a run folder"));
    // The spelling from before `RUN` was positional is a hidden alias for one release.
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
/// cycles. bf16, which WebGPU shaders lack, and half types on ndarray (in `bench`) are refused by name.
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
    let out = prefscope(&args("bf16-mixed", "refused", "wgpu"), &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("train.precision: this backend cannot compute in"), "bf16-mixed on wgpu: {err}");
    // ndarray trains only in `bench`, which refuses its half types the same way.
    let out = prefscope(&args("full", "refused", "ndarray"), &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("kept for `prefscope bench` comparisons only; use --backend cpu"), "train on ndarray: {err}");
    for p in ["bf16-mixed", "f16-mixed"] {
        let out = prefscope(&["bench", "--workload", "mlp-bt", "--batch", "8", "--steps", "1", "--warmup", "0", "--precision", p, "--backend", "ndarray"], &dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("cannot compute in"), "bench {p} on ndarray: {err}");
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
    for (scenario, model) in [("few-shot-users", "vpl"), ("rankings", "bt"), ("noisy", "bt"), ("reasoning", "bt")] {
        let args = ["train", "--scenario", scenario, "--model", model, "--steps", "20", "--out", scenario, "--json"];
        let out = last_json(&prefscope(&args, &dir));
        assert_eq!(out["steps"], 20, "{scenario}: {out}");
        assert!(out["eval_accuracy"].as_f64().is_some(), "{scenario}: {out}");
    }
    // A BT run on data with gold ratings reports its reward's sign accuracy; a VPL run has none.
    let e = last_json(&prefscope(&["eval", "reasoning", "--json"], &dir));
    assert!((0.0..=1.0).contains(&e["sign_accuracy"].as_f64().unwrap()), "{e}");
    // Trained in full, Eurus's direct reward term (set in a config file) puts right answers of
    // unseen prompts above zero and wrong ones below; Bradley–Terry alone does not (the core's
    // claim over 20 seeds: 1.000 against at most 0.848).
    std::fs::write(dir.join("dr.toml"), "[scenario]\nkind = \"reasoning\"\n[model]\nkind = \"bt\"\n[train.loss]\ndr = true\n").unwrap();
    prefscope(&["train", "--config", "dr.toml", "--out", "dr", "--json"], &dir);
    prefscope(&["train", "--scenario", "reasoning", "--model", "bt", "--out", "no-dr", "--json"], &dir);
    let sign = |run: &str| last_json(&prefscope(&["eval", run, "--json"], &dir))["sign_accuracy"].as_f64().unwrap();
    let (with, without) = (sign("dr"), sign("no-dr"));
    assert!(with >= 0.9 && without < 0.9, "sign accuracy with the term {with}, without {without}");
    assert!(last_json(&prefscope(&["eval", "few-shot-users", "--json"], &dir))["sign_accuracy"].is_null());
}

#[test]
fn a_context_aware_run_reports_accuracy_with_the_context_inferred_from_k_labels() {
    let dir = scratch("carm");
    let out = last_json(&prefscope(&["train", "--scenario", "context-reversal", "--model", "context-bt", "--out", "carm", "--json"], &dir));
    assert!(out["eval_accuracy"].as_f64().unwrap() >= 0.95, "{out}");
    let e = last_json(&prefscope(&["eval", "carm", "--json"], &dir));
    let rows = e["context_inferred_accuracy"].as_array().unwrap_or_else(|| panic!("no context_inferred_accuracy: {e}"));
    let ks: Vec<u64> = rows.iter().map(|r| r["k"].as_u64().unwrap()).collect();
    let acc: Vec<f64> = rows.iter().map(|r| r["accuracy"].as_f64().unwrap()).collect();
    assert_eq!(ks, [0, 1, 4, 16], "{e}");
    // The uniform mixture is a coin toss on reversed pairs; sixteen labels reveal the context.
    assert!((acc[0] - 0.5).abs() < 0.1 && acc[3] >= 0.9 && acc.windows(2).all(|w| w[1] > w[0]), "{acc:?}");
    // The text report says it too.
    let text = String::from_utf8_lossy(&prefscope(&["eval", "carm"], &dir).stdout).to_string();
    assert!(text.contains("context inferred from k of an annotator's labels: k = 0:"), "{text}");
    // A Bradley–Terry run has no contexts to infer; context-bt on data without prompts is refused.
    prefscope(&["train", "--scenario", "context-reversal", "--model", "bt", "--out", "bt", "--json"], &dir);
    assert!(last_json(&prefscope(&["eval", "bt", "--json"], &dir))["context_inferred_accuracy"].is_null());
    let out = prefscope(&["train", "--scenario", "linear", "--model", "context-bt", "--out", "nope"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("model.kind") && err.contains("context-reversal"), "{err}");
    // A model that needs context data says which scenario to use.
    let bad = prefscope(&["train", "--scenario", "linear", "--model", "vpl", "--steps", "2", "--out", "x"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("few-shot-users"), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn an_attribute_attention_run_reports_each_communitys_profile() {
    use prefscope_core::reward::scenarios::communities::{ATTRIBUTES, COMMUNITIES, WEIGHTS};
    let dir = scratch("prefpalette");
    let out = last_json(&prefscope(&["train", "--scenario", "communities", "--model", "attribute-attention", "--steps", "600", "--out", "pp", "--json"], &dir));
    assert!(out["eval_accuracy"].as_f64().unwrap() >= 0.8, "{out}");
    let e = last_json(&prefscope(&["eval", "pp", "--json"], &dir));
    let rows = e["attention_profiles"].as_array().unwrap_or_else(|| panic!("no attention_profiles: {e}"));
    assert_eq!(rows.len(), COMMUNITIES.len(), "{e}");
    for row in rows {
        let c = COMMUNITIES.iter().position(|&n| Some(n) == row["context"].as_str()).unwrap_or_else(|| panic!("{row}"));
        let weights: Vec<f64> = row["attention"].as_array().unwrap().iter().map(|a| a["weight"].as_f64().unwrap()).collect();
        let names: Vec<&str> = row["attention"].as_array().unwrap().iter().map(|a| a["attribute"].as_str().unwrap()).collect();
        assert_eq!(names, ATTRIBUTES, "{row}");
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{row}");
        // The community's most valued attribute draws the most attention.
        let top = |w: &[f64]| (0..w.len()).max_by(|&i, &j| w[i].total_cmp(&w[j])).unwrap();
        assert_eq!(top(&weights), top(&WEIGHTS[c]), "{row}");
    }
    let text = String::from_utf8_lossy(&prefscope(&["eval", "pp"], &dir).stdout).to_string();
    assert!(text.contains("attention over the attributes") && text.contains("scholarly"), "{text}");
    // Without contexts, or without attribute ratings, the model is refused with the key to fix.
    let bad = prefscope(&["train", "--scenario", "linear", "--model", "attribute-attention", "--out", "x"], &dir);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("communities"), "{err}");
    let bad = prefscope(&["train", "--scenario", "context-reversal", "--model", "attribute-attention", "--out", "y"], &dir);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("model.objectives"), "{err}");
}

#[test]
fn an_expert_mixture_run_reports_how_often_it_routes_prompts_to_their_task() {
    let dir = scratch("dmoerm");
    prefscope(&["train", "--scenario", "capabilities", "--model", "expert-mixture", "--out", "em", "--json"], &dir);
    let e = last_json(&prefscope(&["eval", "em", "--json"], &dir));
    assert!(e["router_accuracy"].as_f64().unwrap_or_else(|| panic!("no router_accuracy: {e}")) >= 0.9, "{e}");
    let text = String::from_utf8_lossy(&prefscope(&["eval", "em"], &dir).stdout).to_string();
    assert!(text.contains("router") && text.contains("own task"), "{text}");
    // Without prompts, or without tasks and ratings, the model is refused with the scenario to use.
    for scenario in ["linear", "mixture"] {
        let bad = prefscope(&["train", "--scenario", scenario, "--model", "expert-mixture", "--out", "x"], &dir);
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(!bad.status.success() && err.contains("capabilities"), "{scenario}: {err}");
    }
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
    let bad = prefscope(&["align", "--policy", "lm", "--online", "xpo", "--out", "y"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an LM method"));
}

#[test]
fn align_online_lm_and_overopt_write_their_figures() {
    // The tiny LM's runs at 50 SFT steps (of 600): the plumbing is the same, in a third the time.
    let dir = scratch("online-lm");
    let out = last_json(&prefscope(&["align", "--policy", "lm", "--online", "rloo", "--iterations", "5", "--sft-steps", "50", "--out", "lm", "--json"], &dir));
    assert_eq!(out["rm_accuracy"].as_f64(), Some(1.0), "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("lm/metrics.jsonl")).unwrap().lines().count(), 5);
    // The experiment's plumbing at a small size; its claims are the core's (overopt::tests).
    let ok = prefscope(&["overopt", "--labels", "30", "300", "--seeds", "0..1", "--candidates", "1024", "--out", "oo"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(table.contains("bon peak d*") && table.lines().any(|l| l.trim_start().starts_with("300")), "{table}");
    let results = std::fs::read_to_string(dir.join("oo/results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 4);
    let csv = std::fs::read_to_string(dir.join("oo/curves.csv")).unwrap();
    assert!(csv.starts_with("seed,labels,curve,knob,kl,d,proxy,gold\n") && csv.contains(",best-of-n,") && csv.contains(",rl,"));
    let bad = prefscope(&["overopt", "--labels", "1"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("labels"));
    // On the tiny LM: best-of-n from n = 1 to 256 and one RL point (its claims: lm_online::tests).
    let lm = last_json(&prefscope(&["overopt", "--policy", "lm", "--seeds", "0", "--betas", "1", "--sft-steps", "50", "--out", "lm-oo", "--json"], &dir));
    let seed0 = &lm["seeds"][0];
    assert_eq!(seed0["best_of_n"].as_array().map(Vec::len), Some(9), "{lm}");
    assert_eq!(seed0["rl"].as_array().map(Vec::len), Some(1), "{lm}");
    assert!(seed0["rl"][0]["d"].as_f64().unwrap() > 0.5, "RL moved the policy: {lm}");
    let csv = std::fs::read_to_string(dir.join("lm-oo/curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 9 + 1, "{csv}");
    let bad = prefscope(&["overopt", "--policy", "lm", "--labels", "30"], &dir);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--labels applies to the bandit"));
}
