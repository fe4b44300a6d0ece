//! `prefscope`: train, evaluate and benchmark preference models natively.
//!
//! The training itself is `prefscope_core::Trainer`, the same loop the page runs; this binary
//! adds backends (ndarray, wgpu, CUDA), run folders, progress bars and machine-readable output.

mod align;
mod backend;
mod bench;
mod compare;
mod denoise;
mod embed;
mod landscape;
mod nodes;
mod probe;
mod online;
mod plot;
mod rank;
mod drive;
mod eval;
mod eval_report;
mod run_config;
mod run_folder;
mod scenario;
mod train;
mod seeds;
mod sweep;
mod text;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::backend::BackendKind;

#[derive(Parser)]
#[command(name = "prefscope", version, about = "Preference modeling laboratory: train and inspect reward models on any burn backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a preference model on a scenario; writes a run folder (config.toml, metrics.jsonl, model.safetensors, summary.json).
    #[command(after_long_help = "Examples:\n  prefscope train --scenario cyclic --model gpm --out runs/gpm\n  prefscope train --scenario cyclic --model gpm --seeds 0..19\n  prefscope train --data tests/data/hh-rlhf-harmless-base-a.jsonl.gz --out runs/hh")]
    Train(run_config::TrainArgs),
    /// Train one config at every point of a grid of settings (--grid model.hidden=[16],[64] --seeds 0..4), in parallel; results.jsonl / results.csv.
    #[command(after_long_help = "Examples:\n  prefscope sweep --scenario linear --model bt --grid 'model.hidden=[8],[64]' --seeds 0..4 --out runs/width\n  prefscope sweep --scenario linear --model bt --grid scenario.n_pairs=500,2000,8000 --seeds 0..2 --out runs/data")]
    Sweep(sweep::SweepArgs),
    /// Fit a scaling law L = L∞ + (x_c/x)^α to a sweep's held-out loss (per group), with bootstrap intervals.
    #[command(after_long_help = "Examples:\n  prefscope fit runs/data --x scenario.n_pairs\n  prefscope fit runs/data --x scenario.n_pairs --means --json")]
    Fit(sweep::FitArgs),
    /// Draw a run's curves, or a sweep's scaling fits with their bands (SVG or PNG).
    #[command(after_long_help = "Examples:\n  prefscope plot runs/gpm\n  prefscope plot runs/gpm --output gpm.png\n  prefscope plot runs/data")]
    Plot(plot::PlotArgs),
    /// The loss landscape of a run on its training pairs (the page's random plane and grid): .npy, JSON and a heatmap.
    #[command(after_long_help = "Examples:\n  prefscope landscape runs/gpm\n  prefscope landscape runs/gpm --plane pca --json")]
    Landscape(landscape::LandscapeArgs),
    /// Linear probes on a frozen model's last hidden layer, per item attribute, against a random model of the same shape (MRMBench).
    #[command(after_long_help = "Examples:\n  prefscope train --scenario multi-objective --model multi-objective --out runs/mo\n  prefscope probe runs/mo")]
    Probe(probe::ProbeArgs),
    /// Evaluate a trained run on its held-out pairs.
    #[command(after_long_help = "Examples:\n  prefscope eval runs/gpm\n  prefscope eval runs/hh --data tests/data/gpm_test_data.jsonl --json\n  prefscope eval runs/hh --data tests/data/rewardbench2-sample.jsonl --benchmark rewardbench2\n  prefscope eval runs/lm-dpo --data tests/data/rewardbench2-sample.jsonl --benchmark rewardbench2")]
    Eval(run_config::EvalArgs),
    /// Compare two runs on the held-out pairs of one pair file that both never trained on (exact McNemar test).
    #[command(after_long_help = "Examples:\n  prefscope compare runs/gpm runs/bt\n  prefscope compare runs/gpm runs/bt --json")]
    Compare(compare::CompareArgs),
    /// Measure training throughput (pairs/s) on a reference workload.
    #[command(after_long_help = "Examples:\n  prefscope bench --workload mlp-bt --batch 1024\n  prefscope bench --workload tfm-rm --batch 2 --steps 3 --warmup 1 --json")]
    Bench(bench::BenchArgs),
    /// Optimise a policy: offline with a DPO-family loss, or online (--online rloo|grpo|ppo|online-dpo|xpo|vpo|best-of-n) against the gold reward or a trained reward model.
    #[command(after_long_help = "Examples:\n  prefscope align --policy bandit --loss dpo --beta 0.1\n  prefscope align --loss modpo --weights 0.3,0.7 --beta 0.5\n  prefscope align --policy lm --loss kto\n  prefscope align --online rloo --reward gold --exact --json")]
    Align(align::AlignArgs),
    /// Reward over-optimisation (Gao et al. 2022): proxy RMs on N gold labels, best-of-n and RL against them, Gao's fits per N.
    #[command(after_long_help = "Examples:\n  prefscope overopt --labels 30 300 --seeds 0..1 --out runs/overopt\n  prefscope overopt --policy lm --seeds 0..7")]
    Overopt(online::OveroptArgs),
    /// Rank items from comparisons (Bradley–Terry / Plackett–Luce MLE, bootstrap CIs, Elo scale).
    #[command(after_long_help = "Examples:\n  prefscope rank --data tests/data/choix_testcase-pairwise-1.json\n  prefscope rank --data tests/data/choix_testcase-rankings-1.json --json")]
    Rank(rank::RankArgs),
    /// Compare noisy-label remedies: ensemble preference strength and collaborative reward modelling.
    #[command(after_long_help = "Examples:\n  prefscope denoise\n  prefscope denoise --flip 0.3 --json")]
    Denoise(denoise::DenoiseArgs),
    /// Embed text preference pairs with all-MiniLM-L6-v2 into an embedding file (.safetensors) for heads.
    #[command(after_long_help = "Examples:\n  prefscope embed --data tests/data/gpm_test_data.jsonl --output runs/gpm-test.safetensors\n  prefscope train --embeddings runs/gpm-test.safetensors --model bt --out runs/head")]
    Embed(embed::EmbedArgs),
}

/// Flags shared by every command that computes.
#[derive(clap::Args, Clone, Debug)]
pub struct BackendArgs {
    /// Where tensors live: cpu (burn-flex, all cores), ndarray (one core; `bench` only), wgpu (Vulkan/Metal/DX12) or cuda (NVIDIA).
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
}

/// A progress bar over `len` steps on stderr; hidden when stderr is not a terminal.
pub fn step_bar(len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(len as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bar:40.cyan/blue} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta}]").expect("valid template"),
    );
    bar
}

/// Where a run folder goes when `--out` is not given.
pub fn default_run_dir(stem: &str) -> PathBuf {
    let base = PathBuf::from("runs");
    let first = base.join(stem);
    if !first.exists() {
        return first;
    }
    (2..).map(|i| base.join(format!("{stem}-{i}"))).find(|p| !p.exists()).expect("unbounded")
}

/// glibc serves allocations above its mmap threshold (at most 32 MiB, adjusted as it goes) with
/// fresh mmaps, so every activation of a big batch came back as new pages the kernel had to
/// fault in and zero, step after step: 20 % of an mlp-bt CPU step. With the threshold at 1 GiB
/// and no trimming, freed tensor buffers are reused by the next step instead.
fn keep_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    keep_large_allocations();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::train(args),
        Command::Sweep(args) => sweep::sweep(args),
        Command::Fit(args) => sweep::fit(args),
        Command::Plot(args) => plot::plot(args),
        Command::Landscape(args) => landscape::landscape(args),
        Command::Probe(args) => probe::probe_run(args),
        Command::Eval(args) => eval::eval(args),
        Command::Compare(args) => compare::compare(args),
        Command::Bench(args) => bench::bench(args),
        Command::Rank(args) => rank::rank(args),
        Command::Align(args) => align::align(args),
        Command::Overopt(args) => online::overopt(args),
        Command::Denoise(args) => denoise::denoise(args),
        Command::Embed(args) => embed::embed(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
