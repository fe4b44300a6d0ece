//! `prefscope align --online …`: online RLHF against the gold reward or a trained reward model,
//! on the bandit or the tiny LM; and `prefscope overopt`: Gao et al.'s over-optimisation
//! experiment with fitted coefficients per number of labels.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::checkpoint::load_preference_model;
use prefscope_core::policy::bandit::{BanditConfig, BanditProblem};
use prefscope_core::policy::dpo::PolicyLoss;
use prefscope_core::policy::grpo::{GrpoLoss, ImportanceSampling, ScaleRewards};
use prefscope_core::policy::lm_online::{LmOveroptConfig, LmOveroptResult, LmReward, LmRlConfig, LmRlMethod, overopt_lm, rlhf_lm_models};
use prefscope_core::policy::online::{Arms, OnlineConfig, OnlineMethod, PairRule, Reference, train_online};
use prefscope_core::policy::overoptimisation::{OveroptConfig, OveroptResult, run_overopt};
use prefscope_core::studies::seeds::{SeedStats, parse_seeds};
use serde_json::json;

use crate::BackendArgs;
use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run_folder::{PolicyRunFolder, read_checkpoint, write_atomic};

/// The online flags of `prefscope align`.
/// Which policy `align` and `overopt` optimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyKind {
    /// Softmax over n candidate responses to one prompt.
    Bandit,
    /// A tiny byte-level causal transformer: SFT on demonstrations, then the loss against a frozen
    /// copy; judged by its win rate against the SFT model on the shout task.
    Lm,
}

#[derive(clap::Args, Debug, Clone)]
pub struct OnlineArgs {
    /// Optimise online: rloo, grpo, online-dpo, xpo, vpo, best-of-n (bandit); rloo, ppo, grpo (lm).
    #[arg(long, value_name = "METHOD")]
    pub online: Option<String>,
    /// The reward optimised: `gold` (the hidden true reward) or a run folder of a bt/gpm model
    /// trained on a scenario with one gold rating per item (linear, noisy, overopt), whose items
    /// become the bandit's candidates; on the LM: `rm` (a transformer RM trained on the task's
    /// preferences, the default) or `gold`.
    #[arg(long)]
    pub reward: Option<String>,
    /// Online iterations (rounds).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Prompts (sample groups or pairs) per iteration.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Samples per prompt: RLOO/GRPO's group, online DPO's max-min candidates.
    #[arg(long)]
    pub k: Option<usize>,
    /// Online DPO's pairs: max-min (best versus worst of k, RLHF Workflow) or bt (two samples,
    /// labelled by the reward's Bradley–Terry probability).
    #[arg(long, default_value = "max-min")]
    pub pairs: String,
    /// Online DPO's reference: fixed (π_ref throughout) or previous (the last iterate).
    #[arg(long, default_value = "fixed")]
    pub reference: String,
    /// Best-of-n's n.
    #[arg(long, default_value_t = 16)]
    pub best_of: usize,
    /// Exact expected gradients instead of samples (rloo, grpo, online-dpo with --pairs bt).
    #[arg(long)]
    pub exact: bool,
    /// GRPO: divide each advantage by the standard deviation of its group's rewards (TRL's
    /// default), of the batch's, or not at all (Dr. GRPO); batch is the LM's only.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["group", "batch", "none"]))]
    pub scale_rewards: Option<String>,
    /// The old spelling of `--scale-rewards none`.
    #[arg(long, hide = true)]
    pub no_scale_rewards: bool,
    /// GRPO's loss type (`--policy lm`): how per-token losses are averaged. grpo: each sequence's
    /// mean, then the mean over sequences; bnpo: the mean over the batch's tokens; dapo (TRL's
    /// default): over the generation batch's tokens (bnpo in one process); dr-grpo: the sum over
    /// G × the longest completion allowed.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["grpo", "dr-grpo", "dapo", "bnpo"]))]
    pub grpo_loss: Option<String>,
    /// GRPO's importance ratio (`--policy lm`): per token (TRL's default) or per sequence, the
    /// exponential of the mean per-token log-ratio (GSPO).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["token", "sequence"]))]
    pub importance_sampling: Option<String>,
    /// GRPO: gradient steps on each batch of samples (TRL's `num_iterations`, 1; above 1 the
    /// ratio moves off 1 and the clip acts).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub inner_steps: Option<u64>,
}

impl OnlineArgs {
    /// `--scale-rewards`, or `none` from the old `--no-scale-rewards`.
    fn scale(&self) -> Result<ScaleRewards> {
        Ok(match (self.scale_rewards.as_deref(), self.no_scale_rewards) {
            (Some(s), true) if s != "none" => bail!("--no-scale-rewards is --scale-rewards none; it contradicts --scale-rewards {s}"),
            (_, true) | (Some("none"), _) => ScaleRewards::None,
            (Some("batch"), _) => ScaleRewards::Batch,
            _ => ScaleRewards::Group,
        })
    }
}

/// The bandit's arms for `--reward`: the drawn bandit's own rewards, or a trained run's items.
fn arms_for(reward: &str, bandit: &BanditConfig, backend: BackendKind) -> Result<(Arms, String)> {
    if reward == "gold" {
        let p = BanditProblem::new(bandit);
        return Ok((Arms::gold(p.ref_probs, p.rewards), "gold".into()));
    }
    let path = PathBuf::from(reward);
    let (weights_path, weights) = read_checkpoint(&path).with_context(|| format!("--reward: `{reward}` is neither `gold` nor a run folder"))?;
    let arms = dispatch(backend, RunArms { weights })?.with_context(|| weights_path.display().to_string())?;
    Ok((arms, format!("{}", path.display())))
}

/// Reads a run's checkpoint, rebuilds its data and scores every item.
struct RunArms {
    weights: Vec<u8>,
}

impl BackendJob for RunArms {
    type Output = Result<Arms>;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Self::Output> {
        Ok((|| {
            let (head, model) = load_preference_model::<B>(self.weights, &device)?;
            let ds = head.config.dataset()?;
            Ok(Arms::from_model(&model.valid(), &ds, &device).with_context(|| format!("scenario `{}`", head.config.scenario.kind.name()))?)
        })())
    }
}

/// The online method from its name and the flags.
pub fn method_from(name: &str, a: &OnlineArgs, alpha: Option<f64>) -> Result<OnlineMethod> {
    let mut m = OnlineMethod::parse(name)?;
    match &mut m {
        OnlineMethod::Rloo { k } => *k = a.k.unwrap_or(*k),
        OnlineMethod::Grpo { k, scale_rewards, inner_steps, .. } => {
            *k = a.k.unwrap_or(*k);
            *scale_rewards = match a.scale()? {
                ScaleRewards::Group => true,
                ScaleRewards::None => false,
                ScaleRewards::Batch => bail!("--scale-rewards batch is the LM's (--policy lm); the bandit's GRPO scales per group or not at all"),
            };
            if a.grpo_loss.is_some() || a.importance_sampling.is_some() {
                bail!("--grpo-loss and --importance-sampling apply to --policy lm: a bandit response is one token, so every loss type and both ratio levels are the same there");
            }
            *inner_steps = a.inner_steps.map_or(*inner_steps, |v| v as usize);
        }
        OnlineMethod::OnlineDpo { pairs, reference, .. } => {
            *pairs = match a.pairs.as_str() {
                "max-min" => PairRule::MaxMin { k: a.k.unwrap_or(8) },
                "bt" => PairRule::Bt,
                other => bail!("--pairs: `{other}` (expected max-min or bt)"),
            };
            *reference = match a.reference.as_str() {
                "fixed" => Reference::Fixed,
                "previous" => Reference::Previous,
                other => bail!("--reference: `{other}` (expected fixed or previous)"),
            };
        }
        OnlineMethod::Xpo { alpha: al } => *al = alpha.unwrap_or(PolicyLoss::XPO_ALPHA),
        OnlineMethod::Vpo { alpha: al } => *al = alpha.unwrap_or(PolicyLoss::VPO_ALPHA),
        OnlineMethod::BestOfN { n } => *n = a.best_of,
    }
    let grpo_only = a.grpo_loss.is_some() || a.importance_sampling.is_some() || a.scale_rewards.is_some() || a.no_scale_rewards || a.inner_steps.is_some();
    if grpo_only && !matches!(m, OnlineMethod::Grpo { .. }) {
        bail!("--grpo-loss, --scale-rewards, --importance-sampling and --inner-steps apply to --online grpo");
    }
    Ok(m)
}

struct BanditOnlineJob {
    arms: Arms,
    cfg: OnlineConfig,
    source: String,
    out: PathBuf,
}

impl BackendJob for BanditOnlineJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let BanditOnlineJob { arms, cfg, source, out } = self;
        let mut folder = PolicyRunFolder::create(&out, &format!("# reward = {source:?}\n{}", toml::to_string_pretty(&cfg)?))?;
        let bar = crate::step_bar(cfg.iterations);
        let summary = train_online::<B>(&arms, &cfg, &device, |m| {
            folder.record(m);
            bar.set_position(m.iteration as u64);
            bar.set_message(format!("reward {:.3} gold {:.3} KL {:.3}", m.reward, m.gold, m.kl));
        })?;
        bar.finish_and_clear();
        let mut value = serde_json::to_value(&summary)?;
        let obj = value.as_object_mut().expect("an object");
        obj.insert("reward_source".into(), json!(source));
        obj.insert("arms".into(), json!(arms.n()));
        if arms.n() > 64 {
            // Thousands of candidates: the policy lives in the run folder, not in the summary.
            obj.remove("policy");
            obj.remove("optimum");
        }
        folder.finish(value, backend)
    }
}

/// `align --online` on the bandit.
#[allow(clippy::too_many_arguments)]
pub fn bandit_online(o: &OnlineArgs, method: &str, bandit: BanditConfig, beta: Option<f64>, alpha: Option<f64>, lr: Option<f64>, out: PathBuf, json_out: bool, backend: &BackendArgs) -> Result<()> {
    let reward = o.reward.clone().unwrap_or_else(|| "gold".into());
    let (arms, source) = arms_for(&reward, &bandit, backend.backend)?;
    let mut cfg = OnlineConfig::new(method_from(method, o, alpha)?);
    cfg.seed = bandit.seed;
    cfg.exact = o.exact;
    if let Some(b) = beta {
        cfg.beta = b;
    }
    if let Some(v) = o.iterations {
        cfg.iterations = v;
    }
    if let Some(v) = o.batch {
        cfg.batch = v;
    }
    if let Some(v) = lr {
        cfg.lr = v;
    }
    if matches!(cfg.method, OnlineMethod::OnlineDpo { .. } | OnlineMethod::Xpo { .. } | OnlineMethod::Vpo { .. }) && cfg.steps_per_iteration == 1 {
        // RLHF Workflow trains each iteration's pairs for epochs; XPO's toy takes 20 steps a round.
        cfg.steps_per_iteration = 10;
    }
    cfg.validate(arms.n())?;
    let summary = dispatch(backend.backend, BanditOnlineJob { arms, cfg, source, out })?;
    if json_out {
        println!("{summary}");
    } else {
        let last = &summary["last"];
        let f = |k: &str| last[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{} against {} ({} arms), done in {:.2}s: reward {:.4}, gold {:.4}, KL(π‖π_ref) {:.4} (√KL {:.3}), gold win rate against π_ref {:.3}, entropy {:.3}; KL to π_ref·exp(r/β)/Z {:.2e}; run folder {}",
            summary["method"].as_str().unwrap_or(""),
            summary["reward_source"].as_str().unwrap_or(""),
            summary["arms"],
            summary["seconds"].as_f64().unwrap_or(0.0),
            f("reward"),
            f("gold"),
            f("kl"),
            f("sqrt_kl"),
            f("win_rate"),
            f("entropy"),
            summary["kl_to_optimum"].as_f64().unwrap_or(f64::NAN),
            summary["run"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

struct LmOnlineJob {
    cfg: LmRlConfig,
    out: PathBuf,
}

impl BackendJob for LmOnlineJob {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output> {
        let LmOnlineJob { cfg, out } = self;
        let config_toml = toml::to_string_pretty(&cfg)?;
        let mut folder = PolicyRunFolder::create(&out, &config_toml)?;
        let bar = crate::step_bar(cfg.iterations);
        bar.set_message("SFT, then the reward model");
        let trained = rlhf_lm_models::<B>(&cfg, &device, |m| {
            folder.record(m);
            bar.set_position(m.iteration as u64);
            bar.set_message(format!("reward {:.3} judged {:.3} KL {:.3}", m.reward, m.gold, m.kl));
        })?;
        bar.finish_and_clear();
        // The policy and the SFT reference, for `eval --benchmark rewardbench2`.
        let bytes = prefscope_core::policy::lm_scoring::save_lm_policy(&trained.policy, &trained.reference, cfg.implicit_reward_beta(), &config_toml)?;
        crate::run_folder::write_atomic(&out.join(crate::run_folder::POLICY_FILE), &bytes)?;
        let value = folder.finish(&trained.summary, backend)?;
        Ok(value)
    }
}

/// `align --policy lm --online rloo|ppo|grpo`.
#[allow(clippy::too_many_arguments)]
pub fn lm_online(o: &OnlineArgs, method: &str, seed: Option<u64>, sft_steps: Option<u64>, beta: Option<f64>, lr: Option<f64>, out: PathBuf, json_out: bool, backend: &BackendArgs) -> Result<()> {
    let method = match method {
        "rloo" => LmRlMethod::Rloo { k: o.k.unwrap_or(4) },
        "ppo" => LmRlMethod::ppo(),
        "grpo" => LmRlMethod::Grpo {
            k: o.k.unwrap_or(8),
            loss: match o.grpo_loss.as_deref() {
                Some("grpo") => GrpoLoss::Grpo,
                Some("dr-grpo") => GrpoLoss::DrGrpo,
                Some("bnpo") => GrpoLoss::Bnpo,
                _ => GrpoLoss::Dapo,
            },
            scale_rewards: o.scale()?,
            importance_sampling: if o.importance_sampling.as_deref() == Some("sequence") { ImportanceSampling::Sequence } else { ImportanceSampling::Token },
            epsilon: 0.2,
            inner_steps: o.inner_steps.map_or(1, |v| v as usize),
        },
        other => bail!("--online: `{other}` is not an LM method (rloo, ppo, grpo; the bandit has rloo, grpo, online-dpo, xpo, vpo, best-of-n)"),
    };
    let grpo_only = o.grpo_loss.is_some() || o.importance_sampling.is_some() || o.scale_rewards.is_some() || o.no_scale_rewards || o.inner_steps.is_some();
    if grpo_only && !matches!(method, LmRlMethod::Grpo { .. }) {
        bail!("--grpo-loss, --scale-rewards, --importance-sampling and --inner-steps apply to --online grpo");
    }
    let mut cfg = LmRlConfig::new(method);
    cfg.reward = match o.reward.as_deref().unwrap_or("rm") {
        "rm" => LmReward::RewardModel,
        "gold" => LmReward::Gold,
        other => bail!("--reward: `{other}` (the LM takes rm, a transformer RM trained on the task's pairs, or gold)"),
    };
    if let Some(v) = seed {
        cfg.base.seed = v;
    }
    if let Some(v) = sft_steps {
        cfg.base.sft_steps = v as usize;
    }
    if let Some(v) = beta {
        cfg.beta = v;
    }
    if let Some(v) = lr {
        cfg.base.lr = v;
    }
    if let Some(v) = o.iterations {
        cfg.iterations = v;
    }
    if let Some(v) = o.batch {
        cfg.prompts = v;
    }
    cfg.validate()?;
    let summary = dispatch(backend.backend, LmOnlineJob { cfg, out })?;
    if json_out {
        println!("{summary}");
    } else {
        let samples: Vec<String> = summary["policy_samples"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).map(|s| format!("{:?}", s.split('\n').next().unwrap_or(""))).collect();
        println!(
            "{} done in {:.1}s: win rate against the SFT model {:.3} (judged reward {:.3} vs {:.3}), KL(π‖π_SFT) {:.3}, RM accuracy {:.3}; samples {}; run folder {}",
            summary["method"].as_str().unwrap_or(""),
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["win_rate"].as_f64().unwrap_or(f64::NAN),
            summary["policy_reward"].as_f64().unwrap_or(f64::NAN),
            summary["reference_reward"].as_f64().unwrap_or(f64::NAN),
            summary["final_kl"].as_f64().unwrap_or(f64::NAN),
            summary["rm_accuracy"].as_f64().unwrap_or(f64::NAN),
            samples.join(" "),
            summary["run"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct OveroptArgs {
    /// `bandit`: the `overopt` scenario's candidates and an MLP proxy per number of labels;
    /// `lm`: the tiny LM, its transformer RM as the proxy and the judge as gold.
    #[arg(long, value_enum, default_value_t = PolicyKind::Bandit)]
    policy: PolicyKind,
    /// Numbers of gold-labelled comparisons for the bandit's proxy (default 30 300 3000).
    #[arg(long, num_args = 1..)]
    labels: Vec<usize>,
    /// Seeds (e.g. 0..19, 0..4,9): each draws the candidates, the labels and the proxy's start.
    #[arg(long, default_value = "0..4")]
    seeds: String,
    /// Candidate responses. (`--items` says what each row embeds in `embed`; it is a hidden
    /// alias here.)
    #[arg(long, alias = "items", default_value_t = 4096)]
    candidates: usize,
    /// The candidates' feature dimension.
    #[arg(long, default_value_t = 8)]
    dim: usize,
    /// The RL curve's β, largest first (default: 10 → 0.01 in 25 steps on the bandit,
    /// 1 0.3 0.1 0.03 0.01 on the LM).
    #[arg(long, num_args = 1..)]
    betas: Vec<f64>,
    /// Supervised fine-tuning steps of the tiny LM before best-of-n and RL (default 600;
    /// `--policy lm` only).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sft_steps: Option<u64>,
    /// Output folder (default: runs/overopt, numbered if taken).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

struct OveroptJob {
    cfgs: Vec<OveroptConfig>,
}

impl BackendJob for OveroptJob {
    type Output = Vec<Vec<OveroptResult>>;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Self::Output> {
        let bar = crate::step_bar(self.cfgs.iter().map(|c| c.labels.len()).sum());
        let mut all = vec![];
        for cfg in &self.cfgs {
            bar.set_message(format!("seed {}", cfg.seed));
            all.push(pollster::block_on(run_overopt::<B>(cfg, &device, |_| bar.inc(1)))?);
        }
        bar.finish_and_clear();
        Ok(all)
    }
}

fn write_overopt(out: &Path, seeds: &[u64], all: &[Vec<OveroptResult>]) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = String::from("seed,labels,curve,knob,kl,d,proxy,gold\n");
    let mut lines = String::new();
    for (seed, results) in seeds.iter().zip(all) {
        for r in results {
            for (curve, pts) in [("best-of-n", &r.best_of_n), ("rl", &r.rl)] {
                for p in pts.iter() {
                    csv.push_str(&format!("{seed},{},{curve},{},{},{},{},{}\n", r.labels, p.knob, p.kl, p.d, p.proxy, p.gold));
                }
            }
            let mut v = serde_json::to_value(r)?;
            let o = v.as_object_mut().expect("an object");
            o.remove("best_of_n");
            o.remove("rl");
            o.insert("seed".into(), json!(seed));
            lines.push_str(&format!("{v}\n"));
        }
    }
    write_atomic(&out.join("curves.csv"), csv.as_bytes())?;
    write_atomic(&out.join("results.jsonl"), lines.as_bytes())
}

struct LmOveroptJob {
    cfgs: Vec<LmOveroptConfig>,
}

impl BackendJob for LmOveroptJob {
    type Output = Vec<LmOveroptResult>;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Self::Output> {
        let bar = crate::step_bar(self.cfgs.iter().map(|c| c.best_of.len() + c.betas.len()).sum());
        let mut all = vec![];
        for cfg in &self.cfgs {
            bar.set_message(format!("seed {}", cfg.rl.base.seed));
            all.push(overopt_lm::<B>(cfg, &device, |_| bar.inc(1))?);
        }
        bar.finish_and_clear();
        Ok(all)
    }
}

/// `overopt --policy lm`: per seed, the curves in curves.csv and the fits in results.jsonl.
fn overopt_on_lm(args: &OveroptArgs, seeds: &[u64]) -> Result<()> {
    if !args.labels.is_empty() {
        bail!("--labels applies to the bandit: the tiny LM's proxy is the transformer RM trained on the shout task's pairs");
    }
    let cfgs: Vec<LmOveroptConfig> = seeds
        .iter()
        .map(|&seed| {
            let mut c = LmOveroptConfig::default();
            c.rl.base.seed = seed;
            if let Some(v) = args.sft_steps {
                c.rl.base.sft_steps = v as usize;
            }
            if !args.betas.is_empty() {
                c.betas = args.betas.clone();
            }
            c
        })
        .collect();
    for c in &cfgs {
        c.validate()?;
    }
    let out = args.out.clone().unwrap_or_else(|| crate::default_run_dir("overopt-lm"));
    eprintln!("over-optimisation on the tiny LM: best-of-n to n = {}, RLOO at β = {:?}, seeds {seeds:?}, backend {}", cfgs[0].best_of.last().copied().unwrap_or(1), cfgs[0].betas, args.backend.backend.describe());
    let all = dispatch(args.backend.backend, LmOveroptJob { cfgs })?;
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = String::from("seed,curve,knob,kl,d,proxy,gold\n");
    let mut lines = String::new();
    for r in &all {
        for (curve, pts) in [("best-of-n", &r.best_of_n), ("rl", &r.rl)] {
            for p in pts.iter() {
                csv.push_str(&format!("{},{curve},{},{},{},{},{}\n", r.seed, p.knob, p.kl, p.d, p.proxy, p.gold));
            }
        }
        lines.push_str(&format!("{}\n", serde_json::to_string(r)?));
    }
    write_atomic(&out.join("curves.csv"), csv.as_bytes())?;
    write_atomic(&out.join("results.jsonl"), lines.as_bytes())?;
    if args.json {
        println!("{}", json!({"out": out.display().to_string(), "seeds": all}));
        return Ok(());
    }
    println!("Tiny LM: judge's reward against d = √KL (relative to SFT); proxy = the transformer RM. Gao's fits R_bon = d(α − β·d), R_RL = d(α − β·log d):");
    println!("{:>5}  {:>7}  {:>22}  {:>22}  {:>24}  {:>7}  {:>7}", "seed", "RM acc", "best-of-n gold peak", "gold at n = max", "RL gold: largest β → least", "bon α", "bon β");
    for r in &all {
        let peak = r.best_of_n.iter().max_by(|a, b| a.gold.total_cmp(&b.gold)).expect("points");
        let last = r.best_of_n.last().expect("points");
        let (first, least) = (r.rl.first(), r.rl.last());
        println!(
            "{:>5}  {:>7.3}  {:>22}  {:>22}  {:>24}  {:>7.3}  {:>7.3}",
            r.seed,
            r.rm_accuracy,
            format!("{:+.3} at n = {}", peak.gold, peak.knob),
            format!("{:+.3} (d = {:.2})", last.gold, last.d),
            match (first, least) { (Some(a), Some(b)) => format!("{:+.3} → {:+.3} (d {:.2} → {:.2})", a.gold, b.gold, a.d, b.d), _ => "–".into() },
            r.bon_fit.alpha,
            r.bon_fit.beta
        );
    }
    println!("curves in {}/curves.csv, figures per seed in {}/results.jsonl", out.display(), out.display());
    Ok(())
}

pub fn overopt(mut args: OveroptArgs) -> Result<()> {
    let seeds = parse_seeds(&args.seeds).map_err(|e| anyhow::anyhow!("--seeds: {e}"))?;
    if args.policy == PolicyKind::Lm {
        return overopt_on_lm(&args, &seeds);
    }
    if args.sft_steps.is_some() {
        bail!("--sft-steps applies to --policy lm (the bandit's policy needs no SFT)");
    }
    if args.labels.is_empty() {
        args.labels = OveroptConfig::default().labels;
    }
    let betas = if args.betas.is_empty() { OveroptConfig::default().betas } else { args.betas.clone() };
    // Best-of-n picks among the candidates: the curve's largest n needs that many.
    let largest_n = OveroptConfig::default().best_of.into_iter().max().unwrap_or(1);
    if args.candidates < largest_n {
        bail!("--candidates {}: the best-of-n curve goes to n = {largest_n}, so give at least {largest_n} candidates", args.candidates);
    }
    let cfgs: Vec<OveroptConfig> = seeds.iter().map(|&seed| OveroptConfig { seed, labels: args.labels.clone(), n_items: args.candidates, dim: args.dim, betas: betas.clone(), ..Default::default() }).collect();
    for c in &cfgs {
        c.validate()?;
    }
    let out = args.out.clone().unwrap_or_else(|| crate::default_run_dir("overopt"));
    eprintln!("over-optimisation: {} candidates in {} dimensions, labels {:?}, seeds {:?}, backend {}", args.candidates, args.dim, args.labels, seeds, args.backend.backend.describe());
    let all = dispatch(args.backend.backend, OveroptJob { cfgs })?;
    write_overopt(&out, &seeds, &all)?;
    if args.json {
        let v: Vec<serde_json::Value> = seeds.iter().zip(&all).map(|(s, r)| json!({"seed": s, "results": r.iter().map(|x| { let mut v = serde_json::to_value(x).expect("serialises"); v.as_object_mut().expect("object").remove("best_of_n"); v.as_object_mut().expect("object").remove("rl"); v }).collect::<Vec<_>>()})).collect();
        println!("{}", json!({"out": out.display().to_string(), "seeds": v}));
        return Ok(());
    }
    println!("Gold reward against d = √KL (relative to π_ref) over {} seeds; Gao's fits R_bon = d(α − β·d), R_RL = d(α − β·log d):", seeds.len());
    println!("{:>7}  {:>12}  {:>17}  {:>17}  {:>9}  {:>15}  {:>17}  {:>17}", "labels", "proxy acc", "bon α", "bon β", "bon R²", "bon peak d*", "RL α", "RL β");
    let range = |v: Vec<f64>| {
        let s = SeedStats::of(&v);
        format!("{:.2} ({:.2}–{:.2})", s.mean, s.min, s.max)
    };
    for (i, labels) in args.labels.iter().enumerate() {
        let col = |f: &dyn Fn(&OveroptResult) -> f64| all.iter().map(|r| f(&r[i])).collect::<Vec<f64>>();
        let peaks: Vec<f64> = all.iter().filter_map(|r| r[i].fitted_peak_d).collect();
        let falls = all.iter().filter(|r| r[i].final_gold < r[i].peak_gold - 1e-9).count();
        println!(
            "{:>7}  {:>12}  {:>17}  {:>17}  {:>9}  {:>15}  {:>17}  {:>17}   gold fell after its peak on {falls}/{} seeds",
            labels,
            format!("{:.3}", SeedStats::of(&col(&|r| r.proxy_accuracy)).mean),
            range(col(&|r| r.bon_fit.alpha)),
            range(col(&|r| r.bon_fit.beta)),
            format!("{:.3}", SeedStats::of(&col(&|r| r.bon_fit.r2)).mean),
            if peaks.is_empty() { "none".into() } else { format!("{:.2} ({}/{})", SeedStats::of(&peaks).mean, peaks.len(), all.len()) },
            range(col(&|r| r.rl_fit.alpha)),
            range(col(&|r| r.rl_fit.beta)),
            all.len()
        );
    }
    println!("curves in {}/curves.csv, figures per seed in {}/results.jsonl", out.display(), out.display());
    Ok(())
}
