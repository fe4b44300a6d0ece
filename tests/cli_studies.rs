//! End-to-end tests of the study commands: sweeps, landscapes, WorldPM, probes, several processes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;


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
    let ok = prefscope(&["plot", "straight/hidden-8__seed-0", "--output", "run.png"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let png = std::fs::read(dir.join("run.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!((u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap())), (960, 380));
    let ok = prefscope(&["plot", "scaling"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let svg = std::fs::read_to_string(dir.join("scaling/fit.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 4, "one mark per sweep point");
    assert!(svg.contains(&format!("α = {:.3}", a)), "the legend names the fitted exponent");
    let bad = prefscope(&["plot", "straight/hidden-8__seed-0", "--output", "fig.pdf"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must end in .svg or .png"));
    // Several runs: one figure, each run's held-out accuracy marked in its own colour and named.
    let ok = prefscope(&["plot", "straight/hidden-8__seed-0", "straight/hidden-8__seed-1"], &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let svg = std::fs::read_to_string(dir.join("straight/hidden-8__seed-0-vs-hidden-8__seed-1.svg")).unwrap();
    let evals = |run: &str| std::fs::read_to_string(dir.join("straight").join(run).join("metrics.jsonl")).unwrap().matches("\"eval\"").count();
    assert_eq!(svg.matches("<circle").count(), evals("hidden-8__seed-0") + evals("hidden-8__seed-1"), "one mark per evaluation of each run");
    assert!(svg.contains("hidden-8__seed-0") && svg.contains("hidden-8__seed-1"), "the legend names both runs");
    let bad = prefscope(&["plot", "straight/hidden-8__seed-0", "scaling"], &dir);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("scaling: not a run folder"), "{}", String::from_utf8_lossy(&bad.stderr));
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
    let report = last_json(&prefscope(&["eval", "g", "--json"], &dir));
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
    let out = last_json(&prefscope(&["probe", "t", "--json"], &dir));
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
    let out = last_json(&prefscope(&["probe", "m", "--json"], &dir));
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
    let none = prefscope(&["probe", "c"], &dir);
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
