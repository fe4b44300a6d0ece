//! No input makes the binary panic. Every subcommand runs with every value of every flag that
//! lists its values (read from `--help`, so a new value is covered when it is added), on tiny
//! settings (`--backend` on `train` and `bench`, which share every command's dispatch); and
//! `align --config` runs every loss the core has, without the inputs some of them
//! need. Each run must exit 0, or exit non-zero with an `error:` line naming the cause: never 101
//! (a panic) and never a signal.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_prefscope")
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prefscope-matrix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name).canonicalize().unwrap().display().to_string()
}

/// Run and judge: `Ok(())` for a clean exit or a clean refusal, `Err(why)` otherwise.
fn judge(args: &[String], dir: &Path) -> Result<bool, String> {
    let out = Command::new(bin()).args(args).current_dir(dir).output().expect("spawn prefscope");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(true),
        Some(101) => Err(format!("prefscope {} panicked:\n{stderr}", args.join(" "))),
        None => Err(format!("prefscope {} died by a signal:\n{stderr}", args.join(" "))),
        Some(code) => {
            if stderr.contains("panicked") || !stderr.lines().any(|l| l.starts_with("error")) {
                Err(format!("prefscope {} exited {code} without an `error:` line:\n{stderr}", args.join(" ")))
            } else {
                Ok(false)
            }
        }
    }
}

fn help(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `prefscope -h` lists.
fn subcommands() -> Vec<String> {
    let text = help(&["-h"]);
    let start = text.find("Commands:").expect("a Commands: section");
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Each flag of `prefscope CMD -h` that lists its values: (flag, values).
fn enumerations(cmd: &str) -> Vec<(String, Vec<String>)> {
    let text = help(&[cmd, "-h"]);
    let mut out = vec![];
    let mut flag = None;
    for line in text.lines() {
        if let Some(long) = line.split_whitespace().find(|w| w.starts_with("--")) {
            flag = Some(long.trim_end_matches(',').to_string());
        }
        if let (Some(f), Some(at)) = (&flag, line.find("[possible values: ")) {
            let list = &line[at + "[possible values: ".len()..];
            let list = list.split(']').next().unwrap();
            out.push((f.clone(), list.split(", ").map(str::to_string).collect()));
        }
    }
    out
}

#[test]
fn every_enumerated_value_of_every_command_exits_cleanly() {
    let dir = scratch();
    // A finished run and a small sweep for the commands that read one.
    for (scenario, model, out) in [("cyclic", "gpm", "run-a"), ("cyclic", "bt", "run-b"), ("multi-objective", "multi-objective", "run-mo")] {
        let args: Vec<String> = ["train", "--scenario", scenario, "--model", model, "--steps", "5", "--out", out].map(String::from).to_vec();
        assert_eq!(judge(&args, &dir), Ok(true));
    }
    let sweep: Vec<String> = ["sweep", "--scenario", "linear", "--model", "bt", "--steps", "5", "--grid", "scenario.n_pairs=200,400,800", "--seeds", "0..1", "--out", "sweep-a"].map(String::from).to_vec();
    assert_eq!(judge(&sweep, &dir), Ok(true));

    let mut checked = 0;
    let mut failures = vec![];
    for cmd in subcommands() {
        // Tiny settings, valid whatever the enumerated flag is set to.
        let base: Vec<String> = match cmd.as_str() {
            "train" => vec!["--steps", "3"],
            "sweep" => vec!["--scenario", "linear", "--model", "bt", "--steps", "3", "--grid", "train.lr=0.01", "--seeds", "0..0"],
            "fit" => vec!["sweep-a", "--x", "scenario.n_pairs", "--resamples", "10"],
            "plot" => vec!["run-a"],
            "landscape" => vec!["run-a", "--grid", "3"],
            "probe" => vec!["run-mo"],
            "eval" => vec!["run-a"],
            "compare" => vec!["run-a", "run-b"],
            "bench" => vec!["--workload", "mlp-bt", "--batch", "8", "--steps", "1", "--warmup", "0"],
            "align" => vec!["--steps", "5"],
            "overopt" => vec!["--seeds", "0..0", "--labels", "30", "--candidates", "1024", "--betas", "1"],
            "rank" => vec!["--data", "DATA:choix_testcase-pairwise-1.json", "--bootstrap", "2"],
            "denoise" => vec!["--steps", "3", "--members", "2"],
            "embed" => vec!["--data", "DATA:gpm_test_data.jsonl"],
            other => panic!("no tiny settings for `{other}`: add them here"),
        }
        .into_iter()
        .map(|a| a.strip_prefix("DATA:").map_or_else(|| a.to_string(), data))
        .collect();
        for (flag, values) in enumerations(&cmd) {
            // Every command reaches its backend through the same dispatch (`backend.rs`), so the
            // backends are run on `train` and `bench` (which adds the precisions); running MiniLM
            // or the tiny LM on software Vulkan for every command would take minutes and test no
            // other code.
            if flag == "--backend" && !matches!(cmd.as_str(), "train" | "bench") {
                continue;
            }
            for value in values {
                let mut args = vec![cmd.clone()];
                args.extend(base.iter().cloned());
                // A flag already in the tiny settings is overridden, not repeated.
                if let Some(at) = args.iter().position(|a| *a == flag) {
                    args.drain(at..at + 2);
                }
                args.extend([flag.clone(), value.clone()]);
                match cmd.as_str() {
                    "train" | "align" | "overopt" | "denoise" | "embed" => {
                        let out = if cmd == "embed" { format!("out-{checked}.safetensors") } else { format!("out-{checked}") };
                        args.extend([if cmd == "embed" { "--output" } else { "--out" }.to_string(), out]);
                    }
                    _ => {}
                }
                if cmd == "align" && flag == "--online" {
                    args.extend(["--iterations".to_string(), "3".to_string()]);
                }
                if let Err(why) = judge(&args, &dir) {
                    failures.push(why);
                }
                checked += 1;
            }
        }
    }
    eprintln!("{checked} runs, {} failed", failures.len());
    assert!(checked > 60, "only {checked} runs: did --help change its format?");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every loss the core has, through `align --config` on the bandit: those whose inputs the bandit
/// lacks are refused with a sentence.
#[test]
fn every_config_loss_runs_or_is_refused_on_the_bandit() {
    let dir = scratch().join("config-losses");
    std::fs::create_dir_all(&dir).unwrap();
    let losses = [
        "type = \"sigmoid\"\nbeta = 0.1",
        "type = \"cdpo\"\nbeta = 0.1\nlabel_smoothing = 0.1",
        "type = \"robust\"\nbeta = 0.1\nlabel_smoothing = 0.1",
        "type = \"hinge\"\nbeta = 0.1",
        "type = \"ipo\"\nbeta = 0.1",
        "type = \"ipo_summed\"\nbeta = 0.1",
        "type = \"exo_pair\"\nbeta = 0.1\nepsilon = 0.001",
        "type = \"nca_pair\"\nbeta = 0.1",
        "type = \"bco_pair\"\nbeta = 0.1",
        "type = \"sppo_hard\"\nbeta = 0.1",
        "type = \"aot\"\nbeta = 0.1\nlabel_smoothing = 0.0",
        "type = \"aot_unpaired\"\nbeta = 0.1\nlabel_smoothing = 0.0",
        "type = \"apo_zero\"\nbeta = 0.1",
        "type = \"apo_down\"\nbeta = 0.1",
        "type = \"disco_pop\"\nbeta = 0.1\ntau = 0.05",
        "type = \"sigmoid_norm\"\nbeta = 0.1",
        "type = \"sft\"",
        "type = \"simpo\"\nbeta = 2.0\ngamma_beta_ratio = 0.25\nlabel_smoothing = 0.0",
        "type = \"orpo\"\nlambda = 0.1",
        "type = \"slic\"\ndelta = 1.0\nlambda = 0.1",
        "type = \"rso_hinge\"\ngamma = 0.1",
        "type = \"tdpo\"\nbeta = 0.1\nalpha = 0.5\ntdpo2 = true",
        "type = \"modpo\"\nbeta = 0.1\nweights = [0.5, 0.5]",
        "type = \"irpo\"\nbeta = 0.1\nalpha = 1.0",
        "type = \"vpo\"\nbeta = 0.1\nalpha = 1.0\noptimistic = false",
        "type = \"xpo\"\nbeta = 0.1\nalpha = 0.00001",
        "type = \"gpo\"\nbeta = 0.1",
        "type = \"f_dpo\"\nbeta = 0.1\ndivergence = \"js_divergence\"\nalpha = 0.5",
        "type = \"kto\"\nbeta = 0.1\ndesirable_weight = 1.0\nundesirable_weight = 1.0",
    ];
    let mut failures = vec![];
    let mut refused = vec![];
    for (i, loss) in losses.iter().enumerate() {
        let config = format!("seed = 0\nn = 8\nreward_scale = 1.0\ndeterministic = false\nsteps = 5\nlr = 0.05\n\n[loss]\n{loss}\n");
        let path = dir.join(format!("loss-{i}.toml"));
        std::fs::write(&path, config).unwrap();
        let args: Vec<String> = ["align", "--config", path.to_str().unwrap(), "--out", &format!("bandit-{i}")].map(String::from).to_vec();
        match judge(&args, &dir) {
            Ok(true) => {}
            Ok(false) => refused.push(loss.lines().next().unwrap().to_string()),
            Err(why) => failures.push(why),
        }
    }
    eprintln!("refused on the bandit: {refused:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Not refused wholesale (a config the reader rejects would also count as a clean refusal).
    // The bandit supplies SLiC's target, TDPO's KL, MODPO's second reward and KTO's z₀; only
    // AOT, whose sort would part the bandit's pair weights from their pairs, is refused.
    assert_eq!(refused, ["type = \"aot\"", "type = \"aot_unpaired\""], "refused: {refused:?}");
}
