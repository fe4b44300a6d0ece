//! What `eval` prints and keeps, shared by its two paths (scenario and embedding runs in
//! `eval.rs`, text runs in `text.rs`): the pair report, and RewardBench 2's scores.
use std::path::Path;

use anyhow::Result;
use prefscope_core::reward::metrics::EvalReport;
use prefscope_core::text::rewardbench2::{self, Rb2Row};
use serde_json::json;

use crate::backend::BackendKind;
use crate::run_config::{Benchmark, EvalArgs};

/// Read --data as RewardBench 2 rows when `--benchmark rewardbench2` asks for it.
pub(crate) fn rb2_rows(args: &EvalArgs) -> Result<Option<Vec<Rb2Row>>> {
    match (args.benchmark, &args.data) {
        (Some(Benchmark::Rewardbench2), Some(path)) => Ok(Some(rewardbench2::read_file(path)?)),
        _ => Ok(None),
    }
}

/// The JSON of a RewardBench 2 evaluation, from the logits of [`rewardbench2::pairs`].
pub(crate) fn rewardbench2_output(source: &str, rows: &[Rb2Row], logits: &[f32], backend: BackendKind) -> Result<serde_json::Value> {
    let rewards = rewardbench2::relative_rewards(source, rows, logits)?;
    let scores = rewardbench2::scores(source, rows, &rewards)?;
    Ok(json!({ "benchmark": "rewardbench2", "rewardbench2": scores, "lines": rows.len(), "data": source, "split": "all", "backend": backend.name() }))
}

/// Print an eval's result: the pair report, or RewardBench 2's table.
pub(crate) fn print_eval(run: &Path, report: Option<&EvalReport>, out: &serde_json::Value) {
    if let Some(r) = report {
        return print_report(run, r, out);
    }
    let rb = &out["rewardbench2"];
    println!("{} on {} (RewardBench 2, {} prompts):", run.display(), out["data"].as_str().unwrap_or(""), out["lines"]);
    for (name, s) in rb["subsets"].as_object().into_iter().flatten() {
        println!("  {name:<12} {:>6} prompts  {:.4}", s["n"], s["score"].as_f64().unwrap_or(f64::NAN));
    }
    if let Some(t) = rb["ties"].as_object() {
        let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "  Ties terms: tied accuracy {:.3}, reference accuracy {:.3}, correctness preferred {:.3} (hard {:.3}), margin {:.3}",
            f("tied_accuracy"), f("ref_accuracy"), f("correctness_preferred"), f("correctness_preferred_hard"), f("margin_score")
        );
    }
    println!("  overall (unweighted mean of subsets) {:.4}", rb["overall"].as_f64().unwrap_or(f64::NAN));
    if let Some(m) = rb["missing"].as_array().filter(|m| !m.is_empty()) {
        let names: Vec<&str> = m.iter().filter_map(|v| v.as_str()).collect();
        println!("  not in the data: {} (so this is not RewardBench 2's overall score)", names.join(", "));
    }
}

/// The pair report: accuracy with its interval, calibration, length buckets and benchmark sections.
pub(crate) fn print_report(run: &Path, r: &EvalReport, out: &serde_json::Value) {
    println!("{} on {} ({} pairs, {}):", run.display(), out["data"].as_str().unwrap_or(""), r.n, out["split"].as_str().unwrap_or(""));
    println!(
        "  accuracy      {:.4}  (95% CI {:.4}–{:.4}; one-sided p = {:.2e} against chance)",
        r.accuracy, r.accuracy_ci95[0], r.accuracy_ci95[1], r.p_value_vs_chance
    );
    println!("  mean margin   {:.4}    loss {:.4}", r.mean_margin, r.loss);
    if let Some(s) = out["sign_accuracy"].as_f64() {
        println!("  sign accuracy {s:.4}  (responses whose reward has the sign of their gold rating)");
    }
    if let Some(rows) = out["context_inferred_accuracy"].as_array() {
        let shown: Vec<String> = rows.iter().map(|r| format!("k = {}: {:.3}", r["k"], r["accuracy"].as_f64().unwrap_or(f64::NAN))).collect();
        println!("  context inferred from k of an annotator's labels: {}", shown.join(", "));
    }
    if let Some(r) = out["router_accuracy"].as_f64() {
        println!("  router        {r:.4}  (prompts sent to their own task)");
    }
    if let Some(rows) = out["attention_profiles"].as_array() {
        println!("  attention over the attributes, by context (largest first):");
        for row in rows {
            let mut weights: Vec<(String, f64)> = row["attention"].as_array().into_iter().flatten().map(|a| (a["attribute"].as_str().unwrap_or("?").to_string(), a["weight"].as_f64().unwrap_or(f64::NAN))).collect();
            weights.sort_by(|a, b| b.1.total_cmp(&a.1));
            let shown: Vec<String> = weights.iter().map(|(n, w)| format!("{n} {w:.2}")).collect();
            println!("    {:<12} {}", row["context"].as_str().unwrap_or("?"), shown.join(", "));
        }
    }
    println!("  calibration   ECE {:.4}", r.ece);
    println!("    confidence   pairs  accuracy  mean conf.");
    for b in r.reliability.iter().filter(|b| b.count > 0) {
        println!("    {:.2}–{:.2}  {:>7}  {:>8.3}  {:>10.3}", b.lo, b.hi, b.count, b.accuracy, b.mean_confidence);
    }
    // Empty for embedding files written before they kept the responses' lengths.
    if !r.by_length.is_empty() {
        println!("  length        prefers the longer response in {:.1}% of unequal pairs", 100.0 * r.prefers_longer);
        for b in &r.by_length {
            println!("    {:<16} {:>6} pairs  accuracy {:.3}", b.name, b.count, b.accuracy);
        }
    }
    if let Some(rb) = &r.rewardbench {
        println!("  RewardBench subsets:");
        for (name, s) in &rb.subsets {
            println!("    {name:<24} {:>5} pairs  {:.3}", s.n, s.accuracy);
        }
        for (name, v) in &rb.sections {
            println!("  section {name:<12} {v:.4}");
        }
        if let Some(o) = rb.overall {
            println!("  overall (v1 weights 2,2,2,2,1) {o:.4}");
        }
        if let Some(m) = rb.four_category_mean {
            println!("  4-category mean {m:.4}");
        }
    }
}
