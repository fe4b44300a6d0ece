//! Online policy optimisation on a bandit: the policy samples, a reward (the hidden gold one or
//! a reward model prefscope trained) scores, and the policy updates; repeat.
//!
//! One prompt, arms y = 0 … n−1 with reference probabilities π_ref, π_θ = softmax(θ) from θ =
//! log π_ref. Every method maximises the KL-regularised objective E_π[r] − β·KL(π‖π_ref) in its
//! own way; what each reaches is known in closed form, which is what the tests check:
//!
//! * **RLOO** (Ahmadian et al. 2024; TRL `RLOOTrainer`): k samples per prompt, the sequence-level
//!   KL folded into the reward, r̃ = r − β(log π − log π_ref), and each sample's baseline the mean
//!   r̃ of the other k − 1. Unbiased, so it reaches π* = π_ref·exp(r/β)/Z.
//! * **GRPO** (Shao et al. 2024; TRL `GRPOTrainer`): advantages normalised within the group, a
//!   clipped ratio, and the k3 estimator π_ref/π − log(π_ref/π) − 1 added to the loss with
//!   coefficient β. Differentiated as a loss, k3's expected gradient is that of the *reverse*
//!   KL(π_ref‖π) (Σ_y π_y(1 − π_ref,y/π_y)∇log π_y = π − π_ref), so GRPO's fixed point is not π*:
//!   it solves π_y·A_y = β(π_y − π_ref,y) ([`grpo_fixed_point`]).
//! * **Online DPO** (RLHF Workflow, Dong et al. 2024): each iteration samples from the current
//!   policy, the reward picks pairs, DPO trains on them warm-started, against π_ref or the previous
//!   iterate. With pairs labelled by the reward model's own Bradley–Terry probability σ(r̂_i − r̂_j)
//!   every pair's expected gradient vanishes at π_ref·exp(r̂/β)/Z, its fixed point; best-versus-
//!   worst pairs (the paper's `max_min`) are deterministic labels and push past it.
//! * **XPO** (Xie et al. 2024) and online **VPO** (Cen et al. 2024): each round pairs y ∼ π_θ with
//!   ỹ ∼ π_ref, keeps every pair so far, and adds α·log π_θ(ỹ) (VPO: αβ·log π_θ(ỹ), π_cal = π_ref)
//!   to the DPO loss: XPO's exploration bonus (arXiv 2405.21046).
//! * **Best-of-n**: no training; the exact distribution of the best of n reference samples.
//!
//! Everything the metrics report is exact (the bandit knows π): E_π[r], E_π[gold], KL(π‖π_ref),
//! the gold win rate against a reference sample, the entropy.

use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::runtime::kernels::{AutodiffBackend, Backend};
use crate::policy::bandit::{BanditPolicy, kl, softmax};
use crate::policy::dpo::{PolicyBatch, PolicyLoss};
use crate::runtime::rng::Rng;
use crate::{Error, Result, config_error};

/// The arms: reference probabilities, the reward the policy optimises (gold or a reward model's),
/// and the gold reward it is judged by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arms {
    pub ref_probs: Vec<f64>,
    pub reward: Vec<f64>,
    pub gold: Vec<f64>,
}

impl Arms {
    /// Optimise the gold reward itself.
    pub fn gold(ref_probs: Vec<f64>, gold: Vec<f64>) -> Self {
        Self { reward: gold.clone(), ref_probs, gold }
    }

    pub fn n(&self) -> usize {
        self.ref_probs.len()
    }

    /// A trained reward model's arms: every item of `ds` under a uniform π_ref, the model's reward
    /// for each ([`crate::PreferenceModel::item_rewards`]), and the items' gold ratings.
    pub fn from_model<B: Backend>(model: &crate::PreferenceModel<B>, ds: &crate::PairDataset, device: &B::Device) -> Result<Self> {
        let n = ds.n_items();
        if ds.n_objectives != 1 || ds.ratings.len() != n {
            return Err(config_error("reward", "the run's data has no single gold rating per item (use linear, noisy or overopt)"));
        }
        let x = Tensor::<B, 2>::from_data(TensorData::new(ds.items.clone(), [n, ds.dim]), device);
        let reward = host(model.item_rewards(x)?)?;
        Ok(Self { ref_probs: vec![1.0 / n as f64; n], reward, gold: ds.ratings.iter().map(|&g| g as f64).collect() })
    }

    pub fn validate(&self) -> Result<()> {
        let n = self.n();
        if n < 2 || self.reward.len() != n || self.gold.len() != n {
            return Err(config_error("arms", format!("need at least 2 arms and one reward and one gold value per arm (got {n}, {}, {})", self.reward.len(), self.gold.len())));
        }
        if self.ref_probs.iter().any(|p| !(*p > 0.0 && p.is_finite())) || (self.ref_probs.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
            return Err(config_error("arms.ref_probs", "must be positive and sum to 1"));
        }
        if self.reward.iter().chain(&self.gold).any(|v| !v.is_finite()) {
            return Err(config_error("arms.reward", "rewards must be finite"));
        }
        Ok(())
    }
}

/// How online DPO forms a pair from the current policy's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PairRule {
    /// Best versus worst of k samples by the reward (RLHF Workflow's `max_min`, K = 8 in its
    /// `run_loop.sh`); prompts whose best and worst tie give no pair.
    MaxMin { k: usize },
    /// Two samples, the label drawn from the reward's Bradley–Terry probability σ(r_i − r_j), as a
    /// BT reward model states it (and as the XPO/VPO toy labels).
    Bt,
}

/// Which policy online DPO regularises toward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// π_ref (the SFT model) throughout: what the RLHF Workflow maintainers describe (issues #5, #7).
    #[default]
    Fixed,
    /// The previous iterate, as the repository's `run_loop.sh` writes it (mirror descent).
    Previous,
}

/// The online method and its own settings. Defaults follow TRL's trainers unless said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OnlineMethod {
    /// k samples per prompt (TRL `RLOOConfig.num_generations` = 2; we default to 4).
    Rloo { k: usize },
    /// k samples per group (TRL `GRPOConfig.num_generations` = 8), `scale_rewards` divides by the
    /// group's standard deviation (TRL default "group"), `epsilon` clips the ratio (TRL 0.2),
    /// `inner_steps` reuses each batch (TRL `num_iterations` = 1, where the ratio is 1 and the clip
    /// never acts).
    Grpo { k: usize, scale_rewards: bool, epsilon: f64, inner_steps: usize },
    /// Online iterative DPO; `cumulative` trains on every pair so far instead of the latest
    /// iteration's (RLHF Workflow trains on the new pairs only).
    OnlineDpo { pairs: PairRule, reference: Reference, cumulative: bool },
    /// XPO's α (TRL `XPOConfig.alpha` = 1e-5).
    Xpo { alpha: f64 },
    /// Online (optimistic) VPO's α; its term is αβ·log π(ỹ).
    Vpo { alpha: f64 },
    /// The best of n reference samples by the reward.
    BestOfN { n: usize },
}

impl OnlineMethod {
    pub const NAMES: [&'static str; 6] = ["rloo", "grpo", "online-dpo", "xpo", "vpo", "best-of-n"];

    /// The method with its defaults, by CLI name.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "rloo" => Self::Rloo { k: 4 },
            "grpo" => Self::Grpo { k: 8, scale_rewards: true, epsilon: 0.2, inner_steps: 1 },
            "online-dpo" => Self::OnlineDpo { pairs: PairRule::MaxMin { k: 8 }, reference: Reference::Fixed, cumulative: false },
            "xpo" => Self::Xpo { alpha: PolicyLoss::XPO_ALPHA },
            "vpo" => Self::Vpo { alpha: PolicyLoss::VPO_ALPHA },
            "best-of-n" => Self::BestOfN { n: 16 },
            other => return Err(config_error("method", format!("unknown online method `{other}` (expected one of: {})", Self::NAMES.join(", ")))),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Rloo { .. } => "rloo",
            Self::Grpo { .. } => "grpo",
            Self::OnlineDpo { .. } => "online-dpo",
            Self::Xpo { .. } => "xpo",
            Self::Vpo { .. } => "vpo",
            Self::BestOfN { .. } => "best-of-n",
        }
    }
}

fn default_iterations() -> usize {
    500
}
fn default_batch() -> usize {
    16
}
fn default_steps_per_iteration() -> usize {
    1
}
fn default_lr() -> f64 {
    0.05
}
fn default_beta() -> f64 {
    0.1
}

/// One online run on the bandit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineConfig {
    #[serde(default)]
    pub seed: u64,
    #[serde(flatten)]
    pub method: OnlineMethod,
    /// KL coefficient (TRL's DPO/online-DPO/XPO β = 0.1; its RLOO and PPO 0.05; GRPO's 0.0, which
    /// leaves no regulariser, so ours is 0.1 for every method).
    #[serde(default = "default_beta")]
    pub beta: f64,
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Prompts (groups of samples, or pairs) per iteration.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Adam steps per iteration (online DPO's epochs over the iteration's pairs; XPO's steps on
    /// the pairs so far).
    #[serde(default = "default_steps_per_iteration")]
    pub steps_per_iteration: usize,
    /// Adam learning rate, decayed linearly to 0 over the run (the Hugging Face Trainer's default
    /// schedule, which TRL's trainers inherit).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Use exact expectations over the policy instead of samples (RLOO, GRPO, online DPO with
    /// `bt` pairs): the expected-gradient version of the method, whose fixed point is exact.
    #[serde(default)]
    pub exact: bool,
}

impl OnlineConfig {
    pub fn new(method: OnlineMethod) -> Self {
        Self { seed: 0, method, beta: default_beta(), iterations: default_iterations(), batch: default_batch(), steps_per_iteration: default_steps_per_iteration(), lr: default_lr(), exact: false }
    }

    pub fn validate(&self, n_arms: usize) -> Result<()> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(config_error("beta", "must be a positive number"));
        }
        if self.iterations == 0 || self.batch == 0 || self.steps_per_iteration == 0 {
            return Err(config_error("iterations", "iterations, batch and steps_per_iteration must be at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(config_error("lr", "must be a positive number"));
        }
        match &self.method {
            OnlineMethod::Rloo { k } | OnlineMethod::Grpo { k, .. } if *k < 2 => return Err(config_error("k", "needs at least 2 samples per prompt for a baseline")),
            // REINFORCE's weights are the sampling policy's: a second step on them would be off-policy
            // without a ratio (GRPO's inner_steps has one).
            OnlineMethod::Rloo { .. } if self.steps_per_iteration != 1 => return Err(config_error("steps_per_iteration", "RLOO takes one step per batch (use GRPO's inner_steps for clipped reuse)")),
            OnlineMethod::Grpo { epsilon, inner_steps, .. } if !(*epsilon > 0.0) || *inner_steps == 0 => return Err(config_error("epsilon", "epsilon must be positive and inner_steps at least 1")),
            OnlineMethod::OnlineDpo { pairs: PairRule::MaxMin { k }, .. } if *k < 2 => return Err(config_error("pairs.k", "max-min needs at least 2 samples")),
            OnlineMethod::Xpo { alpha } | OnlineMethod::Vpo { alpha } if !(*alpha >= 0.0 && alpha.is_finite()) => return Err(config_error("alpha", "must be ≥ 0")),
            OnlineMethod::BestOfN { n } if *n == 0 => return Err(config_error("n", "must be at least 1")),
            _ => {}
        }
        if self.exact {
            match &self.method {
                OnlineMethod::Rloo { .. } | OnlineMethod::Grpo { .. } => {}
                OnlineMethod::OnlineDpo { pairs: PairRule::Bt, .. } if n_arms <= 512 => {}
                OnlineMethod::OnlineDpo { pairs: PairRule::Bt, .. } => return Err(config_error("exact", "exact online DPO sums over every pair of arms: at most 512 arms")),
                other => return Err(config_error("exact", format!("{} has no exact mode (RLOO, GRPO and online DPO with bt pairs do)", other.name()))),
            }
        }
        Ok(())
    }
}

/// What one iteration reports (all exact expectations over the bandit's π).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineMetrics {
    pub iteration: usize,
    pub loss: f64,
    /// E_π[r] of the reward being optimised (the proxy, when a reward model is).
    pub reward: f64,
    /// E_π[gold].
    pub gold: f64,
    /// KL(π‖π_ref) in nats, and d = √KL as in Gao et al.
    pub kl: f64,
    pub sqrt_kl: f64,
    /// P(gold(y) > gold(y')) + ½P(=) for y ∼ π, y' ∼ π_ref.
    pub win_rate: f64,
    pub entropy: f64,
}

impl OnlineMetrics {
    pub fn of(iteration: usize, loss: f64, probs: &[f64], arms: &Arms) -> Self {
        let e = |v: &[f64]| probs.iter().zip(v).map(|(p, x)| p * x).sum::<f64>();
        let kl = kl(probs, &arms.ref_probs).max(0.0);
        Self {
            iteration,
            loss,
            reward: e(&arms.reward),
            gold: e(&arms.gold),
            kl,
            sqrt_kl: kl.sqrt(),
            win_rate: win_rate(probs, &arms.ref_probs, &arms.gold),
            entropy: -probs.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>(),
        }
    }
}

/// What a run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineSummary {
    pub method: String,
    pub last: OnlineMetrics,
    pub policy: Vec<f64>,
    /// The KL-regularised optimum π_ref·exp(r/β)/Z of the optimised reward, and KL(π‖π*).
    pub optimum: Vec<f64>,
    pub kl_to_optimum: f64,
}

/// P(g(y) > g(y')) + ½P(g(y) = g(y')) for y ∼ p, y' ∼ q, in O(n log n).
pub fn win_rate(p: &[f64], q: &[f64], g: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..g.len()).collect();
    order.sort_by(|&a, &b| g[a].total_cmp(&g[b]));
    let (mut below, mut total, mut i) = (0.0, 0.0, 0);
    while i < order.len() {
        // A run of equal gold values: ties count one half.
        let mut j = i;
        while j < order.len() && g[order[j]] == g[order[i]] {
            j += 1;
        }
        let (pm, qm): (f64, f64) = order[i..j].iter().map(|&a| (p[a], q[a])).fold((0.0, 0.0), |s, x| (s.0 + x.0, s.1 + x.1));
        total += pm * (below + 0.5 * qm);
        below += qm;
        i = j;
    }
    total
}

/// π_ref·exp(r/β)/Z, the maximiser of E_π[r] − β·KL(π‖π_ref).
pub fn kl_regularised_optimum(ref_probs: &[f64], reward: &[f64], beta: f64) -> Vec<f64> {
    softmax(&ref_probs.iter().zip(reward).map(|(p, r)| p.ln() + r / beta).collect::<Vec<_>>())
}

/// The exact distribution of the best of n draws from π_ref by `reward` (ties to the later arm
/// in reward order): P(best = y_(i)) = F_i^n − F_{i−1}^n over arms sorted by reward.
pub fn best_of_n_policy(ref_probs: &[f64], reward: &[f64], n: usize) -> Vec<f64> {
    let mut order: Vec<usize> = (0..reward.len()).collect();
    order.sort_by(|&a, &b| reward[a].total_cmp(&reward[b]).then(a.cmp(&b)));
    let mut out = vec![0.0; reward.len()];
    let mut below = 0.0f64;
    for &a in &order {
        let upto = (below + ref_probs[a]).min(1.0);
        out[a] = upto.powi(n as i32) - below.powi(n as i32);
        below = upto;
    }
    out
}

/// The analytic KL of best-of-n, log n − (n − 1)/n (Stiennon et al. 2020; Beirami et al. 2024
/// prove it an upper bound, reached as the reference's largest probability tends to 0).
pub fn best_of_n_kl(n: usize) -> f64 {
    let n = n as f64;
    n.ln() - (n - 1.0) / n
}

/// GRPO's fixed point in expectation: π_y·(r_y − E_π r)/s = β_eff·(π_y − π_ref,y), s = σ_π(r) with
/// `scale_rewards` (else 1), and β_eff = β·k/(k − 1) for groups of k (the group mean includes the
/// sample itself, which scales the expected advantage by 1 − 1/k; k = 0: the population form).
/// For a fixed c = E_π r the stationarity gives π_y = β_eff·s·π_ref,y / (β_eff·s + c − r_y); Σπ = 1
/// fixes c (one root, found by bisection), and s is iterated to its own fixed point.
pub fn grpo_fixed_point(ref_probs: &[f64], reward: &[f64], beta: f64, k: usize, scale_rewards: bool) -> Vec<f64> {
    let beta_eff = if k >= 2 { beta * k as f64 / (k as f64 - 1.0) } else { beta };
    let rmax = reward.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let solve = |b: f64| -> Vec<f64> {
        let probs_at = |c: f64| -> Vec<f64> { ref_probs.iter().zip(reward).map(|(p, r)| b * p / (b + c - r)).collect() };
        // Σπ(c) falls from +∞ (c ↓ rmax − b) to 0 (c → ∞).
        let (mut lo, mut hi) = (rmax - b, rmax - b + 1.0);
        while probs_at(hi).iter().sum::<f64>() > 1.0 {
            hi = lo + 2.0 * (hi - lo);
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if probs_at(mid).iter().sum::<f64>() > 1.0 { lo = mid } else { hi = mid }
        }
        let p = probs_at(hi);
        let z: f64 = p.iter().sum();
        p.into_iter().map(|x| x / z).collect()
    };
    if !scale_rewards {
        return solve(beta_eff);
    }
    let mut s = 1.0;
    let mut p = solve(beta_eff * s);
    for _ in 0..500 {
        let mean: f64 = p.iter().zip(reward).map(|(a, r)| a * r).sum();
        let var: f64 = p.iter().zip(reward).map(|(a, r)| a * (r - mean).powi(2)).sum();
        let next = var.sqrt().max(1e-12);
        if (next - s).abs() < 1e-13 {
            break;
        }
        s = next;
        p = solve(beta_eff * s);
    }
    p
}

/// Inverse-CDF draws from a categorical distribution.
struct Sampler {
    cum: Vec<f64>,
}

impl Sampler {
    fn new(p: &[f64]) -> Self {
        let mut acc = 0.0;
        Self { cum: p.iter().map(|x| { acc += x; acc }).collect() }
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let u = rng.uniform() * self.cum.last().copied().unwrap_or(1.0);
        self.cum.partition_point(|&c| c <= u).min(self.cum.len() - 1)
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Weighted pairs for the DPO-family methods: (chosen, rejected, ỹ = chosen?) → weight.
#[derive(Default)]
struct PairBook {
    weights: std::collections::BTreeMap<(usize, usize, bool), f64>,
    total: f64,
}

impl PairBook {
    fn add(&mut self, chosen: usize, rejected: usize, ref_is_chosen: bool, w: f64) {
        *self.weights.entry((chosen, rejected, ref_is_chosen)).or_default() += w;
        self.total += w;
    }
}

fn host<B: Backend>(t: Tensor<B, 1>) -> Result<Vec<f64>> {
    t.into_data().convert::<f64>().to_vec().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// Run an online method from π = π_ref; `on_iteration` sees each iteration's metrics (iteration 0
/// is the reference itself).
pub fn train_online<B: AutodiffBackend>(arms: &Arms, cfg: &OnlineConfig, device: &B::Device, mut on_iteration: impl FnMut(&OnlineMetrics)) -> Result<OnlineSummary> {
    use std::task::{Context, Poll, Waker};
    // Every future in there is a ready one, so one poll runs it to the end.
    let mut run = std::pin::pin!(train_online_async::<B, _>(arms, cfg, device, |m| {
        on_iteration(m);
        std::future::ready(())
    }));
    match run.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => unreachable!("train_online awaits only ready futures"),
    }
}

/// [`train_online`] for a caller that must yield between iterations (the page awaits a timer in
/// the future `on_iteration` returns, so the browser can draw each point).
pub async fn train_online_async<B: AutodiffBackend, F: std::future::Future<Output = ()>>(arms: &Arms, cfg: &OnlineConfig, device: &B::Device, mut on_iteration: impl FnMut(&OnlineMetrics) -> F) -> Result<OnlineSummary> {
    arms.validate()?;
    cfg.validate(arms.n())?;
    let n = arms.n();
    let optimum = kl_regularised_optimum(&arms.ref_probs, &arms.reward, cfg.beta);
    let summary = |last: OnlineMetrics, policy: Vec<f64>| OnlineSummary { method: cfg.method.name().into(), kl_to_optimum: kl(&policy, &optimum), last, policy, optimum: optimum.clone() };
    on_iteration(&OnlineMetrics::of(0, f64::NAN, &arms.ref_probs, arms)).await;
    if let OnlineMethod::BestOfN { n: best_of } = cfg.method {
        let policy = best_of_n_policy(&arms.ref_probs, &arms.reward, best_of);
        let last = OnlineMetrics::of(1, f64::NAN, &policy, arms);
        on_iteration(&last).await;
        return Ok(summary(last, policy));
    }

    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let vec1 = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [v.len()]), device);
    let idx = |v: Vec<i32>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device);
    let log_ref: Vec<f64> = arms.ref_probs.iter().map(|p| p.ln()).collect();
    let mut policy = BanditPolicy { logits: Param::from_tensor(vec1(f32s(&log_ref))) };
    let mut reference_lp = vec1(f32s(&log_ref));
    let mut optim = AdamConfig::new().with_epsilon(1e-12).init();
    let mut rng = Rng::stream(cfg.seed, "online");
    let ref_sampler = Sampler::new(&arms.ref_probs);
    let mut book = PairBook::default();
    let mut probs = arms.ref_probs.clone();
    let mut last = OnlineMetrics::of(0, f64::NAN, &probs, arms);
    let inner = match &cfg.method {
        OnlineMethod::Grpo { inner_steps, .. } => *inner_steps * cfg.steps_per_iteration,
        _ => cfg.steps_per_iteration,
    };
    let total_steps = cfg.iterations * inner;
    let mut step = 0usize;
    let r = &arms.reward;

    for iteration in 1..=cfg.iterations {
        let lp_now = host(policy.log_probs())?;
        probs = lp_now.iter().map(|x| x.exp()).collect();
        let sampler = Sampler::new(&probs);
        // Host-side per-arm weights for the policy-gradient methods: loss = −Σ_a w_a log π_a + …
        let mut pg: Option<PgTerms> = None;
        match &cfg.method {
            OnlineMethod::Rloo { k } => {
                let shaped: Vec<f64> = (0..n).map(|a| r[a] - cfg.beta * (lp_now[a] - log_ref[a])).collect();
                let mut w = vec![0.0; n];
                if cfg.exact {
                    let base: f64 = (0..n).map(|a| probs[a] * shaped[a]).sum();
                    (0..n).for_each(|a| w[a] = probs[a] * (shaped[a] - base));
                } else {
                    for _ in 0..cfg.batch {
                        let ys: Vec<usize> = (0..*k).map(|_| sampler.draw(&mut rng)).collect();
                        let sum: f64 = ys.iter().map(|&y| shaped[y]).sum();
                        for &y in &ys {
                            let baseline = (sum - shaped[y]) / (*k as f64 - 1.0);
                            w[y] += (shaped[y] - baseline) / (cfg.batch * k) as f64;
                        }
                    }
                }
                pg = Some(PgTerms { pos: w, neg: vec![0.0; n], kl_weights: None, old_lp: lp_now.clone(), epsilon: None });
            }
            OnlineMethod::Grpo { k, scale_rewards, epsilon, .. } => {
                let (mut pos, mut neg, mut counts) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                if cfg.exact {
                    let mean: f64 = (0..n).map(|a| probs[a] * r[a]).sum();
                    let sd = (0..n).map(|a| probs[a] * (r[a] - mean).powi(2)).sum::<f64>().sqrt();
                    let scale = if *scale_rewards { 1.0 / (sd + 1e-4) } else { 1.0 };
                    for a in 0..n {
                        let adv = probs[a] * (r[a] - mean) * scale;
                        if adv >= 0.0 { pos[a] += adv } else { neg[a] += adv }
                        counts[a] = probs[a];
                    }
                } else {
                    let m = (cfg.batch * k) as f64;
                    for _ in 0..cfg.batch {
                        let ys: Vec<usize> = (0..*k).map(|_| sampler.draw(&mut rng)).collect();
                        let mean = ys.iter().map(|&y| r[y]).sum::<f64>() / *k as f64;
                        // torch's std is the unbiased one; TRL adds 1e-4.
                        let sd = (ys.iter().map(|&y| (r[y] - mean).powi(2)).sum::<f64>() / (*k as f64 - 1.0)).sqrt();
                        let scale = if *scale_rewards { 1.0 / (sd + 1e-4) } else { 1.0 };
                        for &y in &ys {
                            let adv = (r[y] - mean) * scale / m;
                            if adv >= 0.0 { pos[y] += adv } else { neg[y] += adv }
                            counts[y] += 1.0 / m;
                        }
                    }
                }
                pg = Some(PgTerms { pos, neg, kl_weights: Some(counts), old_lp: lp_now.clone(), epsilon: Some(*epsilon) });
            }
            OnlineMethod::OnlineDpo { pairs, reference, cumulative } => {
                if !cumulative {
                    book = PairBook::default();
                }
                if *reference == Reference::Previous {
                    reference_lp = vec1(f32s(&lp_now));
                }
                match pairs {
                    PairRule::Bt if cfg.exact => {
                        for i in 0..n {
                            for j in (0..n).filter(|&j| j != i) {
                                book.add(i, j, false, probs[i] * probs[j] * sigmoid(r[i] - r[j]));
                            }
                        }
                    }
                    PairRule::Bt => {
                        for _ in 0..cfg.batch {
                            let (a, b) = (sampler.draw(&mut rng), sampler.draw(&mut rng));
                            if a != b {
                                let (c, l) = if rng.uniform() < sigmoid(r[a] - r[b]) { (a, b) } else { (b, a) };
                                book.add(c, l, false, 1.0);
                            }
                        }
                    }
                    PairRule::MaxMin { k } => {
                        for _ in 0..cfg.batch {
                            let ys: Vec<usize> = (0..*k).map(|_| sampler.draw(&mut rng)).collect();
                            let best = *ys.iter().max_by(|&&a, &&b| r[a].total_cmp(&r[b])).expect("k ≥ 2");
                            let worst = *ys.iter().min_by(|&&a, &&b| r[a].total_cmp(&r[b])).expect("k ≥ 2");
                            if r[best] > r[worst] {
                                book.add(best, worst, false, 1.0);
                            }
                        }
                    }
                }
            }
            OnlineMethod::Xpo { .. } | OnlineMethod::Vpo { .. } => {
                // Every pair so far (XPO's Algorithm 1 sums over i ≤ t).
                for _ in 0..cfg.batch {
                    let (y, yt) = (sampler.draw(&mut rng), ref_sampler.draw(&mut rng));
                    // A pair of one arm (y = ỹ) has h = 0: only its α·log π(ỹ) term acts, as in TRL.
                    if rng.uniform() < sigmoid(r[y] - r[yt]) { book.add(y, yt, false, 1.0) } else { book.add(yt, y, true, 1.0) }
                }
            }
            OnlineMethod::BestOfN { .. } => unreachable!("handled above"),
        }

        let dpo_loss = match &cfg.method {
            OnlineMethod::OnlineDpo { .. } => Some(PolicyLoss::Sigmoid { beta: cfg.beta }),
            OnlineMethod::Xpo { alpha } => Some(PolicyLoss::Xpo { beta: cfg.beta, alpha: *alpha }),
            OnlineMethod::Vpo { alpha } => Some(PolicyLoss::Xpo { beta: cfg.beta, alpha: alpha * cfg.beta }),
            _ => None,
        };
        let pairs = dpo_loss.as_ref().map(|_| {
            let keys: Vec<_> = book.weights.iter().map(|(k, w)| (*k, *w / book.total.max(1e-300))).collect();
            let c = idx(keys.iter().map(|((c, _, _), _)| *c as i32).collect());
            let l = idx(keys.iter().map(|((_, l, _), _)| *l as i32).collect());
            let t = idx(keys.iter().map(|((c, l, ref_is_chosen), _)| if *ref_is_chosen { *c as i32 } else { *l as i32 }).collect());
            let w = vec1(keys.iter().map(|(_, w)| *w as f32).collect());
            (c, l, t, w, keys.len())
        });
        let mut loss_value = f64::NAN;
        for _ in 0..inner {
            let lp = policy.log_probs();
            let loss = if let Some(pg) = &pg {
                pg.loss(lp, &reference_lp, cfg.beta, device)
            } else {
                let (c, l, t, w, m) = pairs.as_ref().expect("DPO-family methods have pairs");
                if *m == 0 {
                    // No usable pair this iteration (every max-min group tied): nothing to learn.
                    continue;
                }
                let ones = Tensor::<B, 1>::ones([*m], device);
                // `gather`, not `select`: see `bandit::train_bandit_recorded`.
                let mut batch = PolicyBatch::new(
                    lp.clone().gather(0, c.clone()),
                    lp.clone().gather(0, l.clone()),
                    reference_lp.clone().gather(0, c.clone()),
                    reference_lp.clone().gather(0, l.clone()),
                    ones.clone(),
                    ones,
                );
                batch.ref_sample_logps = Some(lp.gather(0, t.clone()));
                (dpo_loss.as_ref().expect("checked").compute(&batch).per_pair * w.clone()).sum()
            };
            loss_value = loss.clone().into_scalar().elem::<f64>();
            if !loss_value.is_finite() {
                return Err(Error::NonFinite { step: step + 1, value: loss_value as f32 });
            }
            let lr = cfg.lr * (1.0 - step as f64 / total_steps as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &policy);
            policy = optim.step(lr, policy, grads);
            step += 1;
        }
        probs = host(policy.log_probs())?.into_iter().map(f64::exp).collect();
        last = OnlineMetrics::of(iteration, loss_value, &probs, arms);
        on_iteration(&last).await;
    }
    Ok(summary(last, probs))
}

/// The policy-gradient surrogate on per-arm weights. `pos`/`neg` hold the summed positive and
/// negative advantages of each arm's samples (their signs decide which side of the clip binds);
/// `kl_weights` the sample frequencies for GRPO's k3 term.
struct PgTerms {
    pos: Vec<f64>,
    neg: Vec<f64>,
    kl_weights: Option<Vec<f64>>,
    old_lp: Vec<f64>,
    epsilon: Option<f64>,
}

impl PgTerms {
    fn loss<B: Backend>(&self, lp: Tensor<B, 1>, reference_lp: &Tensor<B, 1>, beta: f64, device: &B::Device) -> Tensor<B, 1> {
        let vec1 = |v: &[f64]| Tensor::<B, 1>::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), [v.len()]), device);
        let (pos, neg) = (vec1(&self.pos), vec1(&self.neg));
        let surrogate = match self.epsilon {
            // RLOO: REINFORCE, −Σ A log π.
            None => (pos.clone() + neg) * lp.clone(),
            // GRPO/PPO: min(ρA, clip(ρ)A) per sample; ρ = π/π_old is 1 at the first inner step,
            // where its gradient equals REINFORCE's.
            Some(eps) => {
                let ratio = (lp.clone() - vec1(&self.old_lp)).exp();
                let clipped = ratio.clone().clamp(1.0 - eps, 1.0 + eps);
                pos * ratio.clone().min_pair(clipped.clone()) + neg * ratio.max_pair(clipped)
            }
        };
        let mut loss = surrogate.sum().neg();
        if let Some(w) = &self.kl_weights {
            // k3 = π_ref/π − log(π_ref/π) − 1 at each sample, with β.
            let d = reference_lp.clone() - lp;
            let k3 = d.clone().exp() - d - 1.0;
            loss = loss + (k3 * vec1(w)).sum().mul_scalar(beta);
        }
        loss
    }
}

#[cfg(test)]
#[path = "online_tests.rs"]
mod tests;
