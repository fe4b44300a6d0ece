//! `prefscope rank`: an arena-style leaderboard from comparisons (Bradley–Terry / Plackett–Luce
//! maximum likelihood, bootstrap intervals, Elo scale).

use std::path::PathBuf;

use anyhow::{Context, Result};
use prefscope_core::studies::rank::{bootstrap, elo, fit, read_comparisons};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct RankArgs {
    /// choix-style JSON (`{"n_items", "data"}`) or JSONL battles (`{"model_a","model_b","winner"}`).
    #[arg(long)]
    data: PathBuf,
    /// Bootstrap resamples for the 95 % intervals (0 to skip).
    #[arg(long, default_value_t = 200)]
    bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
}

pub fn rank(args: RankArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.data).with_context(|| format!("cannot read {}", args.data.display()))?;
    let comparisons = read_comparisons(&args.data.display().to_string(), &text)?;
    let theta = fit(&comparisons, 1e-10, 100_000)?;
    let ratings = elo(&theta);
    let (intervals, used) = if args.bootstrap > 0 { bootstrap(&comparisons, args.bootstrap, args.seed)? } else { (vec![], 0) };
    let model = if comparisons.choices.iter().all(|c| c.set.len() == 2) { "bradley-terry" } else { "plackett-luce" };
    if args.json {
        println!(
            "{}",
            json!({
                "model": model,
                "names": comparisons.names,
                "log_strengths": theta,
                "elo": ratings,
                "ci95_log_strength": intervals.iter().map(|&(lo, hi)| [lo, hi]).collect::<Vec<_>>(),
                "bootstrap_rounds": used,
                "observations": comparisons.choices.len(),
            })
        );
        return Ok(());
    }
    println!("{} maximum likelihood over {} observations of {} items", model, comparisons.choices.len(), comparisons.n_items());
    let mut order: Vec<usize> = (0..theta.len()).collect();
    order.sort_by(|&a, &b| theta[b].total_cmp(&theta[a]));
    let width = comparisons.names.iter().map(|n| n.chars().count()).max().unwrap_or(4).max(4);
    println!("{:>4}  {:<width$}  {:>8}  {:>10}  {}", "rank", "item", "elo", "log p", if used > 0 { "95% interval (elo)" } else { "" });
    for (r, &i) in order.iter().enumerate() {
        let ci = intervals.get(i).map(|&(lo, hi)| {
            let e = elo(&[lo, hi]);
            format!("[{:.0}, {:.0}]", e[0], e[1])
        });
        println!("{:>4}  {:<width$}  {:>8.1}  {:>10.4}  {}", r + 1, comparisons.names[i], ratings[i], theta[i], ci.unwrap_or_default());
    }
    if used > 0 && used < args.bootstrap {
        println!("({} of {} resamples had a finite estimate)", used, args.bootstrap);
    }
    Ok(())
}
