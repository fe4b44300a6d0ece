//! `prefscope align`: preference optimisation of a policy. The bandit policy (n candidates, exact
//! preferences) reports its distance to the loss's analytic optimum where one is known.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use prefscope_core::AutodiffBackend;
use prefscope_core::policy::bandit::{BanditConfig, train_bandit};
use prefscope_core::policy::dpo::PolicyLoss;
use prefscope_core::policy::lm::{LmAlignConfig, align_lm_models};
use prefscope_core::policy::lm_scoring::save_lm_policy;
use prefscope_core::policy::losses::{LOSS_NAMES, LossName, LossSettings, build};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::online::PolicyKind;
use crate::run_folder::{POLICY_FILE, PolicyRunFolder, write_atomic};

#[derive(clap::Args, Debug)]
pub struct AlignArgs {
    /// The policy: a softmax over n candidate responses (bandit), or the tiny byte-level LM.
    #[arg(long, value_enum, default_value_t = PolicyKind::Bandit)]
    policy: PolicyKind,
    /// The preference-optimisation loss. h = ρ_c − ρ_r, ρ = log π_θ − log π_ref; ℓ = log π_θ.
    /// A loss the chosen policy cannot run is refused with the reason before training.
    #[arg(long, value_enum, default_value = "dpo")]
    loss: LossArg,
    /// β (default 0.1 on the bandit, 0.3 on the LM).
    #[arg(long)]
    beta: Option<f64>,
    /// Label smoothing ε for cdpo and robust (default 0.1), aot, aot-paired and simpo (0);
    /// exo-pair's ε (1e-3).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Weight α for irpo (default 1), vpo (1), xpo (1e-5), tdpo (0.5); fdpo-alpha's α (0.5);
    /// slic's λ (0.1).
    #[arg(long)]
    alpha: Option<f64>,
    /// MODPO's weights W1,W2: the preference objective's and the margin reward's (default
    /// 0.5,0.5; W1 > 0). The bandit draws the second objective from the seed.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    weights: Option<Vec<f64>>,
    /// Number of candidate responses.
    #[arg(long)]
    n: Option<usize>,
    /// Alignment steps (default 3000 on the bandit, 60 on the LM after its 600 SFT steps).
    #[arg(long)]
    steps: Option<usize>,
    /// Supervised fine-tuning steps on the task's demonstrations before the LM is aligned
    /// (default 600; `--policy lm` only).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sft_steps: Option<u64>,
    /// Learning rate of the alignment steps (default 0.05 on the bandit, 2e-4 on the LM).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the rewards, the labels and the start (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Label pairs by the sign of the reward difference instead of a Bradley–Terry draw.
    #[arg(long)]
    deterministic: bool,
    /// WPO: weight each pair's loss by how likely the current policy is to produce both of its
    /// responses (TRL's `use_weighting`; offline losses, not aot).
    #[arg(long)]
    use_weighting: bool,
    /// LD-DPO (TRL's `ld_alpha`, `--policy lm`): weight the completion tokens past the shorter
    /// response's length by A ∈ [0, 1] in both responses' log-probabilities, so extra length
    /// counts less (1 is plain DPO; the LD-DPO paper uses 0.3–0.6).
    #[arg(long)]
    ld_alpha: Option<f64>,
    /// A TOML bandit config (as written to a run folder); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder (default: runs/bandit-<loss>-beta<β>, numbered if taken).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a finished run already in --out.
    #[arg(long)]
    overwrite: bool,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    online: crate::online::OnlineArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

/// A `--loss` value: an entry of the core's loss table, so `--help` lists every loss with its line.
#[derive(Clone, Copy, Debug)]
pub struct LossArg(&'static LossName);

static LOSS_ARGS: std::sync::LazyLock<Vec<LossArg>> = std::sync::LazyLock::new(|| LOSS_NAMES.iter().map(LossArg).collect());

impl clap::ValueEnum for LossArg {
    fn value_variants<'a>() -> &'a [Self] {
        &LOSS_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name).help(self.0.help).aliases(self.0.aliases.iter().copied()))
    }
}

impl AlignArgs {
    fn build_loss(&self, beta: f64) -> Result<PolicyLoss> {
        let settings = LossSettings { beta, label_smoothing: self.label_smoothing, alpha: self.alpha, weights: self.weights.clone() };
        Ok(build(self.loss.0.name, &settings)?)
    }
}

struct AlignJob {
    cfg: BanditConfig,
    out: PathBuf,
    json: bool,
}

impl BackendJob for AlignJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let AlignJob { cfg, out, json } = self;
        let mut folder = PolicyRunFolder::create(&out, &toml::to_string_pretty(&cfg)?)?;
        let bar = crate::step_bar(cfg.steps);
        let summary = train_bandit::<B>(&cfg, &device, |step, loss| {
            folder.record(&json!({"step": step, "loss": loss}));
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.5}"));
        })?;
        bar.finish_and_clear();
        let mut extended = serde_json::to_value(&summary)?;
        // MODPO's second-reward fields are null for every other loss: leave them out of its files.
        if let Some(o) = extended.as_object_mut() {
            o.retain(|k, v| !(v.is_null() && (k == "margin_rewards" || k == "expected_margin_reward")));
        }
        extended["steps"] = json!(cfg.steps);
        let value = folder.finish(extended, backend)?;
        if !json {
            // MODPO's second objective gets a column of its own.
            let r2 = |i: usize| summary.margin_rewards.as_ref().map(|m| format!("  {:>8.3}", m[i])).unwrap_or_default();
            println!("{:>4}  {:>8}{}  {:>9}  {:>9}  {:>9}", "y", "reward", if summary.margin_rewards.is_some() { format!("  {:>8}", "reward 2") } else { String::new() }, "π_ref", "π_θ", "optimum");
            for i in 0..summary.rewards.len() {
                let opt = summary.optimum.as_ref().map(|o| format!("{:>9.4}", o[i])).unwrap_or_else(|| format!("{:>9}", "—"));
                println!("{:>4}  {:>8.3}{}  {:>9.4}  {:>9.4}  {}", i, summary.rewards[i], r2(i), summary.reference[i], summary.policy[i], opt);
            }
        }
        Ok(value)
    }
}

struct AlignLmJob {
    cfg: LmAlignConfig,
    out: PathBuf,
}

impl BackendJob for AlignLmJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let AlignLmJob { cfg, out } = self;
        let config_toml = toml::to_string_pretty(&cfg)?;
        let mut folder = PolicyRunFolder::create(&out, &config_toml)?;
        let bar = crate::step_bar(cfg.sft_steps + cfg.steps);
        let mut done = 0;
        let aligned = align_lm_models::<B>(&cfg, &device, |phase, step, loss| {
            folder.record(&json!({"phase": phase, "step": step, "loss": loss}));
            done += 1;
            bar.set_position(done);
            bar.set_message(format!("{phase} loss {loss:.4}"));
        })?;
        bar.finish_and_clear();
        // The policy and its reference, for `eval --benchmark rewardbench2` (the implicit reward).
        write_atomic(&out.join(POLICY_FILE), &save_lm_policy(&aligned.policy, &aligned.reference, cfg.loss.reward_beta(), &config_toml)?)?;
        let value = folder.finish(&aligned.summary, backend)?;
        Ok(value)
    }
}

/// `--online`: RLHF against the gold reward or a trained reward model.
fn align_online(args: &AlignArgs, method: &str) -> Result<()> {
    let reward = args.online.reward.clone().unwrap_or_else(|| if args.policy == PolicyKind::Lm { "rm".into() } else { "gold".into() });
    let stem = format!("{}-{method}-{}", if args.policy == PolicyKind::Lm { "lm" } else { "bandit" }, if reward.contains('/') || reward.contains('.') { "rm" } else { reward.as_str() });
    let out = run_folder(args, &stem)?;
    if args.policy == PolicyKind::Lm {
        return crate::online::lm_online(&args.online, method, args.seed, args.sft_steps, args.beta, args.lr, out, args.json, &args.backend);
    }
    let mut bandit = BanditConfig::new(PolicyLoss::Sigmoid { beta: 0.1 });
    if let Some(v) = args.n {
        bandit.n = v;
    }
    if let Some(v) = args.seed {
        bandit.seed = v;
    }
    bandit.validate()?;
    crate::online::bandit_online(&args.online, method, bandit, args.beta, args.alpha, args.lr, out, args.json, &args.backend)
}

/// `--out` or a fresh default folder; a finished run is only replaced with `--overwrite`.
fn run_folder(args: &AlignArgs, stem: &str) -> Result<PathBuf> {
    let out = args.out.clone().unwrap_or_else(|| crate::default_run_dir(stem));
    if out.join("summary.json").exists() && !args.overwrite {
        bail!("{} already holds a finished run; choose another --out or pass --overwrite", out.display());
    }
    Ok(out)
}

fn align_lm_command(args: &AlignArgs) -> Result<()> {
    // Before the loss is built, so that a loss the LM cannot run is refused for that first.
    if let Some(why) = args.loss.0.refused_on_lm() {
        bail!("--loss {why}");
    }
    let beta = args.beta.unwrap_or(0.3);
    let mut cfg = LmAlignConfig::new(args.build_loss(beta)?);
    if let Some(v) = args.steps {
        cfg.steps = v;
    }
    if let Some(v) = args.sft_steps {
        cfg.sft_steps = v as usize;
    }
    if let Some(v) = args.lr {
        cfg.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    cfg.use_weighting = args.use_weighting;
    cfg.ld_alpha = args.ld_alpha;
    cfg.validate()?;
    let out = run_folder(args, &format!("lm-{}-beta{beta}", args.loss.0.name))?;
    let summary = dispatch(args.backend.backend, AlignLmJob { cfg, out })?;
    if args.json {
        println!("{summary}");
    } else {
        let samples: Vec<String> = summary["policy_samples"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).map(|s| format!("{:?}", s.split('\n').next().unwrap_or(""))).collect();
        println!(
            "done in {:.1}s: win rate against the SFT model {:.3} (judged reward {:.3} vs {:.3}); implicit reward over the task's prompts: chosen {:.3}, rejected {:.3}; samples {}; run folder {}",
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["win_rate"].as_f64().unwrap_or(f64::NAN),
            summary["policy_reward"].as_f64().unwrap_or(f64::NAN),
            summary["reference_reward"].as_f64().unwrap_or(f64::NAN),
            summary["chosen_reward"].as_f64().unwrap_or(f64::NAN),
            summary["rejected_reward"].as_f64().unwrap_or(f64::NAN),
            samples.join(" "),
            summary["run"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub fn align(args: AlignArgs) -> Result<()> {
    if args.ld_alpha.is_some() && (args.policy != PolicyKind::Lm || args.online.online.is_some()) {
        bail!("--ld-alpha applies to the offline LM (--policy lm): it down-weights the tokens past the shorter response's length, and a bandit response is one token");
    }
    if args.sft_steps.is_some() && args.policy != PolicyKind::Lm {
        bail!("--sft-steps applies to --policy lm (the bandit starts from its reference policy, with no SFT)");
    }
    let o = &args.online;
    if o.online.is_none() && (o.grpo_loss.is_some() || o.importance_sampling.is_some() || o.scale_rewards.is_some() || o.no_scale_rewards || o.inner_steps.is_some()) {
        bail!("--grpo-loss, --scale-rewards, --importance-sampling and --inner-steps apply to --online grpo");
    }
    if let Some(method) = args.online.online.clone() {
        if args.use_weighting {
            bail!("--use-weighting applies to the offline losses (WPO re-weights a fixed set of pairs); drop it or --online");
        }
        return align_online(&args, &method);
    }
    if args.policy == PolicyKind::Lm {
        return align_lm_command(&args);
    }
    let beta = args.beta.unwrap_or(0.1);
    let mut cfg = match &args.config {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
            toml::from_str::<BanditConfig>(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e))?
        }
        None => BanditConfig::new(args.build_loss(beta)?),
    };
    if args.config.is_none() || std::env::args().any(|a| ["--loss", "--beta", "--alpha", "--weights", "--label-smoothing"].contains(&a.as_str())) {
        cfg.loss = args.build_loss(beta)?;
    }
    if let Some(why) = args.loss.0.refused_on_bandit().filter(|_| args.config.is_none()) {
        bail!("--loss {why}");
    }
    if let Some(v) = args.n {
        cfg.n = v;
    }
    if let Some(v) = args.steps {
        cfg.steps = v;
    }
    if let Some(v) = args.lr {
        cfg.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    cfg.deterministic |= args.deterministic;
    cfg.use_weighting |= args.use_weighting;
    cfg.validate()?;
    let out = run_folder(&args, &format!("bandit-{}-beta{beta}", args.loss.0.name))?;
    let summary = dispatch(args.backend.backend, AlignJob { cfg, out, json: args.json })?;
    if args.json {
        println!("{summary}");
    } else {
        let kl = summary["kl_to_optimum"].as_f64().map(|k| format!("{k:.2e}")).unwrap_or_else(|| "— (no closed form for this loss)".into());
        println!(
            "done in {:.2}s: final loss {:.6}, KL(π_θ ‖ optimum) {}, KL(π_θ ‖ π_ref) {:.4}, E[r] {:.4}; run folder {}",
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["final_loss"].as_f64().unwrap_or(f64::NAN),
            kl,
            summary["kl_to_reference"].as_f64().unwrap_or(f64::NAN),
            summary["expected_reward"].as_f64().unwrap_or(f64::NAN),
            summary["run"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
