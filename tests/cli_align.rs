//! End-to-end tests of `prefscope align`: the offline losses on the bandit and the tiny LM, and
//! GRPO's choices online.

mod common;

use common::*;

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
    let bad = prefscope(&["align", "--loss", "orpo2"], &dir);
    // Refused by the argument parser, which lists the losses it knows.
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("invalid value 'orpo2' for '--loss") && stderr.contains("tdpo"), "{stderr}");
    // A named loss the bandit cannot run is refused with the reason, before any training.
    let aot = prefscope(&["align", "--loss", "aot", "--out", "a"], &dir);
    assert!(String::from_utf8_lossy(&aot.stderr).contains("does not run on the bandit: AOT sorts"), "{}", String::from_utf8_lossy(&aot.stderr));
    assert!(!dir.join("a").exists());
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
    // LD-DPO: the weight reaches the run's config. The shout task pairs the same word shouted and
    // not, so both responses of every pair have the same length and LD-DPO has no tail to weigh:
    // its run is plain DPO's to the bit (the weights themselves are tested in core's lm::tests).
    let run = |alpha: &str, out: &str| last_json(&prefscope(&["align", "--policy", "lm", "--loss", "dpo", "--ld-alpha", alpha, "--sft-steps", "30", "--steps", "3", "--out", out, "--json"], &dir));
    let (ld, plain) = (run("0.5", "ld"), run("1", "ld1"));
    assert!((ld["first_loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-5, "{ld}");
    assert_eq!(ld["final_loss"], plain["final_loss"], "{ld} {plain}");
    assert!(std::fs::read_to_string(dir.join("ld/config.toml")).unwrap().contains("ld_alpha = 0.5"));
    let on_bandit = prefscope(&["align", "--ld-alpha", "0.5", "--out", "ldb"], &dir);
    assert!(String::from_utf8_lossy(&on_bandit.stderr).contains("--ld-alpha applies to the offline LM"));
    let bad = prefscope(&["align", "--policy", "lm", "--loss", "gpo", "--out", "g"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not run on the tiny LM: GPO needs win scores"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// GRPO's choices on the tiny LM reach the run and change it; on the bandit, or offline, they are
/// refused with the reason.
#[test]
fn align_lm_grpo_choices_reach_the_run_and_misplaced_ones_are_refused() {
    let dir = scratch("align-grpo");
    let run = |extra: &[&str], out: &str| {
        let mut args = vec!["align", "--policy", "lm", "--online", "grpo", "--k", "4", "--iterations", "3", "--sft-steps", "50", "--reward", "gold", "--out", out, "--json"];
        args.extend_from_slice(extra);
        last_json(&prefscope(&args, &dir))
    };
    // Dr. GRPO's settings with GSPO's ratios over two steps per batch.
    let dr = run(&["--grpo-loss", "dr-grpo", "--scale-rewards", "none", "--importance-sampling", "sequence", "--inner-steps", "2"], "dr");
    assert_eq!(dr["method"], "grpo", "{dr}");
    let config = std::fs::read_to_string(dir.join("dr/config.toml")).unwrap();
    // An online run keeps its policy and the SFT reference too, for `eval`'s implicit reward.
    assert!(dir.join("dr/policy.safetensors").is_file());
    assert!(config.contains("loss = \"dr-grpo\"") && config.contains("scale_rewards = \"none\"") && config.contains("importance_sampling = \"sequence\"") && config.contains("inner_steps = 2"), "{config}");
    // The averaging acts: the same seed and samples' first batch, another loss type, another policy.
    let grpo = run(&["--grpo-loss", "grpo"], "g");
    let dapo = run(&[], "d");
    for r in [&dr, &grpo, &dapo] {
        assert!(r["final_kl"].as_f64().is_some_and(f64::is_finite) && r["last"]["reward"].as_f64().is_some_and(f64::is_finite), "{r}");
    }
    assert!((grpo["final_kl"].as_f64().unwrap() - dapo["final_kl"].as_f64().unwrap()).abs() > 1e-9, "grpo {grpo} dapo {dapo}");
    for (args, says) in [
        (vec!["align", "--online", "grpo", "--grpo-loss", "dr-grpo"], "a bandit response is one token"),
        (vec!["align", "--online", "rloo", "--scale-rewards", "none"], "apply to --online grpo"),
        (vec!["align", "--online", "grpo", "--scale-rewards", "batch"], "the LM's"),
        (vec!["align", "--online", "grpo", "--no-scale-rewards", "--scale-rewards", "group"], "contradicts"),
        (vec!["align", "--scale-rewards", "none"], "apply to --online grpo"),
    ] {
        let bad = prefscope(&args, &dir);
        assert!(String::from_utf8_lossy(&bad.stderr).contains(says), "{args:?}: {}", String::from_utf8_lossy(&bad.stderr));
    }
}

/// A tiny-LM policy run keeps its policy and reference (`policy.safetensors`), and `eval
/// --benchmark rewardbench2` ranks each prompt's responses by the implicit reward
/// β (log π − log π_ref). With no preference step the policy is its reference: every reward is
/// exactly 0, so each prompt of n responses is an n-way tie for the top and scores 1/n, a figure
/// the file alone fixes.
#[test]
fn a_policy_run_is_scored_on_rewardbench2_by_its_implicit_reward() {
    let dir = scratch("align-lm-rb2");
    let data = test_data("rewardbench2-sample.jsonl");
    let eval = |run: &str| prefscope(&["eval", run, "--data", data.to_str().unwrap(), "--benchmark", "rewardbench2", "--json"], &dir);
    last_json(&prefscope(&["align", "--policy", "lm", "--loss", "dpo", "--sft-steps", "30", "--steps", "0", "--out", "unmoved", "--json"], &dir));
    assert!(dir.join("unmoved/policy.safetensors").is_file());
    let tie = last_json(&eval("unmoved"));
    assert_eq!((tie["benchmark"].as_str(), tie["beta"].as_f64()), (Some("rewardbench2"), Some(0.3)), "{tie}");
    // 1/n per line, averaged per subset, from the file itself.
    let mut want: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for line in std::fs::read_to_string(&data).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let count = |k: &str| v[k].as_array().map_or(1, Vec::len);
        want.entry(v["subset"].as_str().unwrap().to_string()).or_default().push(1.0 / (count("chosen") + count("rejected")) as f64);
    }
    for (subset, shares) in &want {
        if subset == "Ties" {
            continue;
        }
        let expect = shares.iter().sum::<f64>() / shares.len() as f64;
        let got = tie["rewardbench2"]["subsets"][subset]["score"].as_f64().unwrap();
        assert!((got - expect).abs() < 1e-12, "{subset}: {got} vs 1/n's mean {expect}");
    }
    // No correct answer is ahead of a wrong one when all tie.
    let ties = &tie["rewardbench2"]["ties"];
    assert_eq!((ties["correctness_preferred"].as_f64(), ties["correctness_preferred_hard"].as_f64()), (Some(0.0), Some(0.0)), "{ties}");
    // A policy that moved breaks the ties; the scores go beside the run, and a policy run without
    // the benchmark is told how to score it.
    last_json(&prefscope(&["align", "--policy", "lm", "--loss", "dpo", "--sft-steps", "30", "--steps", "20", "--out", "moved", "--json"], &dir));
    let moved = last_json(&eval("moved"));
    let scores: Vec<f64> = moved["rewardbench2"]["subsets"].as_object().unwrap().values().map(|s| s["score"].as_f64().unwrap()).collect();
    assert_eq!(scores.len(), 6);
    assert!((moved["rewardbench2"]["overall"].as_f64().unwrap() - scores.iter().sum::<f64>() / 6.0).abs() < 1e-12, "{moved}");
    assert_ne!(moved["rewardbench2"]["subsets"], tie["rewardbench2"]["subsets"], "a trained policy scores its responses apart");
    assert!(dir.join("moved/eval-rewardbench2.json").is_file());
    let plain = prefscope(&["eval", "moved"], &dir);
    assert!(String::from_utf8_lossy(&plain.stderr).contains("is a policy run: score it by its implicit reward"), "{}", String::from_utf8_lossy(&plain.stderr));
}
