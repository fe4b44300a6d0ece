//! Preference models: Bradley–Terry (scalar reward) and the General Preference Model (GPM).
//!
//! Both map item features through an MLP; they differ in the head. A model turns a batch of
//! (chosen, rejected[, prompt]) rows into logits ℓ with P(chosen ≻ rejected) = σ(ℓ):
//! * Bradley–Terry: ℓ = r(chosen) − r(rejected); it can only express transitive preferences.
//! * GPM: ℓ = s(chosen ≻ rejected) / τ with the skew-symmetric block score of [`crate::reward::loss::gpm_score`];
//!   it can represent cycles (rock–paper–scissors) with k ≥ 1 rotation blocks.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData, activation};
use crate::runtime::kernels::Backend;
use serde::{Deserialize, Serialize};

use crate::reward::loss::{gpm_score, unit_normalize};
pub use crate::reward::attributes::AttributeAttentionModel;
pub use crate::reward::layers::{Dense, Mlp};
pub use crate::reward::context::ContextBtModel;
pub use crate::reward::experts::ExpertMixtureModel;
pub use crate::reward::few_shot::{InContextModel, VplModel};
use crate::runtime::rng::Rng;
use crate::{Result, config_error};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Bradley–Terry reward model: MLP → scalar reward.
    Bt,
    /// General Preference Model: MLP → 2k-dim preference embedding, skew-symmetric score.
    Gpm,
    /// Multi-objective reward (DPA): MLP → m attribute rewards, trained by regression on ratings;
    /// a user's direction v turns them into one reward v·r.
    MultiObjective,
    /// Mixture of K Bradley–Terry heads with a router over prompt/user features (MiCRo).
    Mixture,
    /// Variational Preference Learning: a latent user z inferred from the user's context pairs
    /// conditions the reward r(y, z).
    Vpl,
    /// Knox et al.'s regret preference model over gridworld segments (linear reward, soft V*).
    Regret,
    /// The partial-return preference model over gridworld segments (linear reward).
    PartialReturn,
    /// Context-aware Bradley–Terry (CARM): one network reads the context beside the response, r(c, y).
    ContextBt,
    /// FSPO-style in-context user model: a user's labelled pairs, read directly, summarise the
    /// user; the reward is g(y)·s + b(y).
    InContext,
    /// PrefPalette: attribute predictors, weighed by an attention that depends on the context.
    AttributeAttention,
    /// DMoERM: a router picks the task, the task's capability experts score, an aggregator sums up.
    ExpertMixture,
}

impl ModelKind {
    pub const ALL: [ModelKind; 11] = [
        Self::Bt,
        Self::Gpm,
        Self::MultiObjective,
        Self::Mixture,
        Self::Vpl,
        Self::Regret,
        Self::PartialReturn,
        Self::ContextBt,
        Self::InContext,
        Self::AttributeAttention,
        Self::ExpertMixture,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Bt => "bt",
            Self::Gpm => "gpm",
            Self::MultiObjective => "multi-objective",
            Self::Mixture => "mixture",
            Self::Vpl => "vpl",
            Self::Regret => "regret",
            Self::PartialReturn => "partial-return",
            Self::ContextBt => "context-bt",
            Self::InContext => "in-context",
            Self::AttributeAttention => "attribute-attention",
            Self::ExpertMixture => "expert-mixture",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
            config_error("model.kind", format!("unknown model `{name}` (expected one of: {})", names.join(", ")))
        })
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Bt => "Bradley–Terry: one scalar reward per response, P(a ≻ b) = σ(r(a) − r(b)). Rewards are numbers on a line, so preferences are always transitive.",
            Self::Gpm => "General Preference Model: each response becomes k 2-D vectors; P(a ≻ b) = σ(s/τ) with s = Σ λ_l (a₂ₗ b₂ₗ₊₁ − a₂ₗ₊₁ b₂ₗ). The score is skew-symmetric, so it can encode cycles, and scoring n responses needs only n embeddings.",
            Self::MultiObjective => "Multi-objective reward (Directional Preference Alignment): one reward per attribute, learnt by regression on per-attribute ratings; a user direction v on the unit circle gives the reward v·r, so one model serves users with different trade-offs. With `gate` on it becomes ArmoRM: after the regression stage, verbosity is regressed out of every objective and a gating network over the prompt learns non-negative weights, trained on the preferences.",
            Self::Mixture => "Mixture of Bradley–Terry heads (MiCRo): K reward heads share one network, a router maps the prompt (here: who is asking) to weights w(x); trained on the mixture likelihood −log Σ w_k σ(r_k(a) − r_k(b)), it can serve groups whose tastes contradict each other.",
            Self::Vpl => "Variational Preference Learning: an encoder reads a user's few labelled pairs (the context) and infers a latent z ~ N(μ, σ²); the reward r(y, z) depends on it. Trained on the ELBO (Bradley–Terry likelihood plus an annealed KL to N(0, I)), it adapts to a new user from a handful of their labels, without retraining.",
            Self::Regret => "Regret preference model (Knox et al.): a linear reward w·φ over gridworld transitions; a segment's score is its return plus V*(end) − V*(start) under the learned reward, with V* from a soft value iteration run inside the model, so preferences about progress teach the step cost.",
            Self::PartialReturn => "Partial-return preference model: a segment's score is the reward it collects, w·Σφ. The usual RLHF assumption; it ignores where a segment starts and ends.",
            Self::ContextBt => "Context-aware reward model (CARM, Pitis et al.): one network reads the context (here the pair's prompt features: a criterion, a user) beside the response, r(c, y), and is trained with Bradley–Terry under each pair's own context. Where the same two responses are preferred one way under one context and the other way under another, it can be right on both; a reward that ignores the context cannot. For an annotator whose context is hidden, `prefscope eval` infers it from k of their labels (the posterior over the known contexts) and scores with the mixture Σ_c P(c) P(y₁ ≻ y₂ | c).",
            Self::InContext => "In-context user model (FSPO, Singh et al.): the user's few labelled pairs are read as they are, as an LLM reads them in its prompt. Each pair becomes a vector, odd in its label (ψ(chosen, rejected) − ψ(rejected, chosen)); their mean is the user's summary s, and the reward is g(y)·s + b(y). Training hides a random number of each pair's context pairs (0 to all), so one model serves any number of shots: with none it is the population's reward, and each labelled pair sharpens it. `scenario.shots` sets how many pairs the held-out users show.",
            Self::AttributeAttention => "Attribute attention (PrefPalette, Li et al.): attribute predictors p_i(y) learn from a teacher's order of each pair on each attribute (the data's ratings; `model.objectives` of them), and the context (here the community) attends over the attributes, a = softmax_i(w·tanh(W_q c + W_k E_i)). The reward reads the content and the attention-weighted attributes, r = v·(h(y) + s·Σ a_i p_i(y) E_i). A community's attention is its profile: which attributes it weighs.",
            Self::ExpertMixture => "Double-layer mixture of experts (DMoERM, Quan): a router reads the prompt and picks its task (`model.heads` tasks, top-1); the task's experts score the response on each capability point (`model.objectives` of them, trained on the data's per-capability ratings); an aggregator network turns their scores into the reward, trained on the overall preferences with the experts frozen. Noisy overall labels then teach only how to weigh capabilities that cleaner labels taught.",
        }
    }
}

fn default_hidden() -> Vec<usize> {
    vec![64, 64]
}
fn default_k() -> usize {
    1
}
fn default_tau() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}

/// Model hyper-parameters; the same in TOML, on the command line and in the page's URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Widths of the hidden layers (GELU between layers).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// GPM: number of 2-D blocks (embedding dimension 2k).
    #[serde(default = "default_k")]
    pub k: usize,
    /// GPM: temperature τ, P = σ(s/τ) (the GPM trainer's default 0.1).
    #[serde(default = "default_tau")]
    pub tau: f64,
    /// GPM: prompt-dependent softmax gate λ(x) over the k blocks (needs prompt features).
    #[serde(default)]
    pub gate: bool,
    /// GPM: scale embeddings to unit length (the paper's choice). Off by default, as in the GPM
    /// training code: through unit_normalize the loss gradient on the raw embedding e is
    /// orthogonal to e, so a gradient step never shortens e and the raw curve cannot be pulled
    /// through the origin. With k = 1 the embedding of the circle of `cyclic` then keeps the
    /// winding number it had at initialisation (0 or −1 on about a third of seeds, where the cycle
    /// needs +1), and those seeds stall near chance or at loss ln 2. Free-length embeddings pass
    /// through the origin and fit the cycle on every seed; so does unit length with k ≥ 2.
    #[serde(default)]
    pub normalize: bool,
    /// Multi-objective: number of attribute rewards m (must match the data's ratings).
    #[serde(default = "default_objectives")]
    pub objectives: usize,
    /// Mixture: number of reward heads K; expert-mixture: number of tasks the router picks among.
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Mixture: coefficient of MiCRo's load-balancing term mean Σ_k w_k log w_k (negative routing
    /// entropy; it pulls each example's routing toward uniform, so keep it small).
    #[serde(default = "default_load_balance")]
    pub load_balance: f64,
    /// VPL: dimension of the latent user z.
    #[serde(default = "default_latent")]
    pub latent: usize,
    /// VPL: weight of the KL term (annealed from 0.1× to 1× over the run, VPL's cosine annealer).
    #[serde(default = "default_kl_weight")]
    pub kl_weight: f64,
    /// ArmoRM (multi-objective with `gate`): regress verbosity out of the other objectives.
    #[serde(default = "default_true")]
    pub decorrelate_verbosity: bool,
    /// ArmoRM: which objective is verbosity.
    #[serde(default = "default_verbosity_dim")]
    pub verbosity_dim: usize,
}

fn default_heads() -> usize {
    2
}
fn default_latent() -> usize {
    8
}
fn default_kl_weight() -> f64 {
    0.01
}
fn default_verbosity_dim() -> usize {
    1
}
fn default_load_balance() -> f64 {
    0.01
}

fn default_objectives() -> usize {
    2
}

impl ModelConfig {
    pub fn new(kind: ModelKind) -> Self {
        Self {
            kind,
            hidden: default_hidden(),
            k: default_k(),
            tau: default_tau(),
            gate: false,
            normalize: false,
            // attribute-attention and expert-mixture: the attributes of `communities`, the
            // capabilities of `capabilities`.
            objectives: match kind {
                ModelKind::AttributeAttention => crate::reward::scenarios::communities::ATTRIBUTES.len(),
                ModelKind::ExpertMixture => crate::reward::scenarios::capabilities::CAPABILITIES.len(),
                _ => default_objectives(),
            },
            heads: if kind == ModelKind::ExpertMixture { crate::reward::scenarios::capabilities::TASKS.len() } else { default_heads() },
            load_balance: default_load_balance(),
            latent: default_latent(),
            kl_weight: default_kl_weight(),
            decorrelate_verbosity: true,
            verbosity_dim: default_verbosity_dim(),
        }
    }

    /// attribute-attention: the width of the content representation and attribute embeddings.
    pub fn attribute_width(&self) -> usize {
        self.hidden.last().copied().unwrap_or(16)
    }

    /// Checks that need no data.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.iter().any(|&h| h == 0 || h > 65_536) {
            return Err(config_error("model.hidden", "every width must be in 1..=65536"));
        }
        if self.k == 0 || self.k > 1024 {
            return Err(config_error("model.k", "must be in 1..=1024"));
        }
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return Err(config_error("model.tau", "must be a positive number"));
        }
        if self.objectives == 0 || self.objectives > 1024 {
            return Err(config_error("model.objectives", "must be in 1..=1024"));
        }
        if self.heads == 0 || self.heads > 1024 {
            return Err(config_error("model.heads", "must be in 1..=1024"));
        }
        if !(self.load_balance >= 0.0 && self.load_balance.is_finite()) {
            return Err(config_error("model.load_balance", "must be ≥ 0"));
        }
        if self.latent == 0 || self.latent > 4096 {
            return Err(config_error("model.latent", "must be in 1..=4096"));
        }
        if !(self.kl_weight >= 0.0 && self.kl_weight.is_finite()) {
            return Err(config_error("model.kl_weight", "must be ≥ 0"));
        }
        if self.kind == ModelKind::MultiObjective && self.gate && self.decorrelate_verbosity && self.verbosity_dim >= self.objectives {
            return Err(config_error("model.verbosity_dim", format!("must name one of the {} objectives", self.objectives)));
        }
        Ok(())
    }

    /// Checks against the data the model will see.
    pub fn check_data(&self, input_dim: usize, prompt_dim: usize) -> Result<()> {
        if self.kind == ModelKind::Mixture && prompt_dim == 0 {
            return Err(config_error("model.kind", "the mixture's router needs prompt or user features; this scenario has none (try `mixture`)"));
        }
        if self.gate && matches!(self.kind, ModelKind::Gpm | ModelKind::MultiObjective) && prompt_dim == 0 {
            return Err(config_error("model.gate", "the gate needs prompt features; this scenario has none"));
        }
        let world_dim = crate::reward::trajectories::GridWorld::standard().item_dim();
        if matches!(self.kind, ModelKind::Regret | ModelKind::PartialReturn) && input_dim != world_dim {
            return Err(config_error("model.kind", format!("the {} model scores gridworld segments (items of {world_dim} features); try `gridworld`", self.kind.name())));
        }
        if self.kind == ModelKind::ExpertMixture && prompt_dim == 0 {
            return Err(config_error("model.kind", "expert-mixture routes each pair's prompt features to a task; this data has none (try `capabilities`)"));
        }
        if self.kind == ModelKind::AttributeAttention && prompt_dim == 0 {
            return Err(config_error("model.kind", "attribute-attention attends by each pair's context (its prompt features); this data has none (try `communities`)"));
        }
        if self.kind == ModelKind::ContextBt && prompt_dim == 0 {
            return Err(config_error("model.kind", "context-bt reads each pair's context from its prompt features; this data has none (try `context-reversal`)"));
        }
        if matches!(self.kind, ModelKind::Vpl | ModelKind::InContext) && (prompt_dim == 0 || !prompt_dim.is_multiple_of(2 * input_dim)) {
            return Err(config_error(
                "model.kind",
                format!("{} needs each pair's context of labelled (chosen, rejected) pairs as prompt features (try `few-shot-users`)", self.kind.name()),
            ));
        }
        Ok(())
    }

    /// How many weights [`ModelConfig::init`] would allocate, computed without allocating; `None`
    /// for the gridworld models, whose size is fixed. A checkpoint's header is checked against it
    /// before anything is built, so a hostile config cannot ask for terabytes.
    pub fn num_params(&self, input_dim: usize, prompt_dim: usize) -> Option<u128> {
        fn mlp(d_in: usize, hidden: &[usize], d_out: usize) -> u128 {
            let widths: Vec<u128> = std::iter::once(d_in).chain(hidden.iter().copied()).chain([d_out]).map(|w| w as u128).collect();
            widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
        }
        let (i, p, h) = (input_dim, prompt_dim as u128, &self.hidden[..]);
        Some(match self.kind {
            ModelKind::Bt => mlp(i, h, 1),
            ModelKind::Gpm => mlp(i, h, 2 * self.k) + if self.gate { p * self.k as u128 } else { 0 },
            ModelKind::MultiObjective => {
                let m = self.objectives;
                mlp(i, h, m) + if self.gate { mlp(prompt_dim, h, m) + 1 + (m * m) as u128 } else { 0 }
            }
            ModelKind::Mixture => mlp(i, h, self.heads) + (p + 1) * self.heads as u128,
            ModelKind::Vpl => {
                let l = self.latent as u128;
                mlp(2 * i, h, self.latent) + 5 * (l * l + l) + mlp(i + self.latent, h, 1)
            }
            ModelKind::ContextBt => mlp(i + prompt_dim, h, 1),
            ModelKind::InContext => mlp(2 * i, h, self.latent) + mlp(i, h, self.latent) + mlp(i, h, 1),
            ModelKind::AttributeAttention => {
                let (a, w, q) = (self.objectives as u128, self.attribute_width() as u128, self.latent as u128);
                mlp(i, h, w as usize) + mlp(i, h, a as usize) + a * w + (p * q + q) + (w * q + q) + q + 1 + (w + 1)
            }
            ModelKind::ExpertMixture => {
                let (t, k) = (self.heads, self.objectives);
                mlp(prompt_dim, h, t) + mlp(i, h, t * k) + t as u128 * mlp(k, &[self.latent], 1)
            }
            ModelKind::Regret | ModelKind::PartialReturn => return None,
        })
    }

    /// Build a model for items of length `input_dim`, with weights drawn from `seed` on the host
    /// so that every backend starts from the same point.
    pub fn init<B: Backend>(&self, input_dim: usize, prompt_dim: usize, seed: u64, device: &B::Device) -> Result<PreferenceModel<B>> {
        self.validate()?;
        self.check_data(input_dim, prompt_dim)?;
        let mut rng = Rng::stream(seed, "init");
        Ok(match self.kind {
            ModelKind::Bt => PreferenceModel::Bt(BtModel { mlp: Mlp::new(input_dim, &self.hidden, 1, &mut rng, device) }),
            ModelKind::Gpm => PreferenceModel::Gpm(GpmModel {
                mlp: Mlp::new(input_dim, &self.hidden, 2 * self.k, &mut rng, device),
                gate: self.gate.then(|| Dense::new(prompt_dim, self.k, false, 1.0, &mut rng, device)),
                tau: self.tau,
                normalize: self.normalize,
            }),
            ModelKind::MultiObjective => PreferenceModel::MultiObjective(MultiObjectiveModel {
                mlp: Mlp::new(input_dim, &self.hidden, self.objectives, &mut rng, device),
                gate: self.gate.then(|| ArmoGate {
                    mlp: Mlp::new(prompt_dim, &self.hidden, self.objectives, &mut rng, device),
                    logit_scale: Param::from_tensor(Tensor::ones([1], device)),
                    transform: Param::from_tensor(Tensor::eye(self.objectives, device)),
                }),
            }),
            ModelKind::Mixture => PreferenceModel::Mixture(MixtureModel {
                mlp: Mlp::new(input_dim, &self.hidden, self.heads, &mut rng, device),
                router: Dense::new(prompt_dim, self.heads, true, 1.0, &mut rng, device),
                load_balance: self.load_balance,
            }),
            ModelKind::Vpl => {
                let l = self.latent;
                let mut dense = |d_in, d_out| Dense::new(d_in, d_out, true, 1.0, &mut rng, device);
                let (query, key, value, mean, log_var) = (dense(l, l), dense(l, l), dense(l, l), dense(l, l), dense(l, l));
                PreferenceModel::Vpl(VplModel {
                    pair_encoder: Mlp::new(2 * input_dim, &self.hidden, l, &mut rng, device),
                    query,
                    key,
                    value,
                    mean,
                    log_var,
                    decoder: Mlp::new(input_dim + l, &self.hidden, 1, &mut rng, device),
                    kl_weight: self.kl_weight,
                })
            }
            ModelKind::Regret => PreferenceModel::Regret(crate::reward::trajectories::RegretModel::new(&crate::reward::trajectories::GridWorld::standard(), device)),
            ModelKind::PartialReturn => PreferenceModel::PartialReturn(crate::reward::trajectories::PartialReturnModel::new(device)),
            ModelKind::ContextBt => PreferenceModel::ContextBt(ContextBtModel { mlp: Mlp::new(prompt_dim + input_dim, &self.hidden, 1, &mut rng, device) }),
            ModelKind::InContext => PreferenceModel::InContext(InContextModel {
                pair_encoder: Mlp::new(2 * input_dim, &self.hidden, self.latent, &mut rng, device),
                item_encoder: Mlp::new(input_dim, &self.hidden, self.latent, &mut rng, device),
                base: Mlp::new(input_dim, &self.hidden, 1, &mut rng, device),
            }),
            ModelKind::AttributeAttention => {
                let (a, w, q) = (self.objectives, self.attribute_width(), self.latent);
                let content = Mlp::new(input_dim, &self.hidden, w, &mut rng, device);
                let predictors = Mlp::new(input_dim, &self.hidden, a, &mut rng, device);
                let e: Vec<f32> = (0..a * w).map(|_| rng.normal() as f32).collect();
                PreferenceModel::AttributeAttention(AttributeAttentionModel {
                    content,
                    predictors,
                    embed: Param::from_tensor(Tensor::from_data(TensorData::new(e, [a, w]), device)),
                    query: Dense::new(prompt_dim, q, true, 1.0, &mut rng, device),
                    key: Dense::new(w, q, true, 1.0, &mut rng, device),
                    score: Dense::new(q, 1, false, 1.0, &mut rng, device),
                    scale: Param::from_tensor(Tensor::full([1], 0.5, device)),
                    value: Dense::new(w, 1, true, 1.0, &mut rng, device),
                })
            }
            ModelKind::ExpertMixture => PreferenceModel::ExpertMixture(ExpertMixtureModel {
                router: Mlp::new(prompt_dim, &self.hidden, self.heads, &mut rng, device),
                experts: Mlp::new(input_dim, &self.hidden, self.heads * self.objectives, &mut rng, device),
                aggregators: (0..self.heads).map(|_| Mlp::new(self.objectives, &[self.latent], 1, &mut rng, device)).collect(),
            }),
        })
    }
}

#[derive(Module, Debug)]
pub struct BtModel<B: Backend> {
    pub mlp: Mlp<B>,
}

impl<B: Backend> BtModel<B> {
    /// Scalar reward per row.
    pub fn reward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        self.mlp.forward(x).reshape([n])
    }
}

#[derive(Module, Debug)]
pub struct GpmModel<B: Backend> {
    pub mlp: Mlp<B>,
    /// Linear map from prompt features to k gate logits (no bias, as in the GPM code).
    pub gate: Option<Dense<B>>,
    #[module(skip)]
    pub tau: f64,
    #[module(skip)]
    pub normalize: bool,
}

impl<B: Backend> GpmModel<B> {
    /// Preference embedding per row, `[n, 2k]`, unit length when `normalize` is on.
    pub fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let e = self.mlp.forward(x);
        if self.normalize { unit_normalize(e) } else { e }
    }

    /// Block weights λ(x) = softmax(W x), `[n, k]`, or None without a gate.
    pub fn gate_weights(&self, prompt: Option<Tensor<B, 2>>) -> Option<Tensor<B, 2>> {
        match (&self.gate, prompt) {
            (Some(g), Some(p)) => Some(activation::softmax(g.forward(p), 1)),
            _ => None,
        }
    }
}

#[derive(Module, Debug)]
pub struct MultiObjectiveModel<B: Backend> {
    pub mlp: Mlp<B>,
    /// ArmoRM's stage 2: gating network and verbosity transform (None = plain DPA).
    pub gate: Option<ArmoGate<B>>,
}

/// ArmoRM's mixture-of-experts gate: w(x) = softmax(MLP(x) / 10) · s with a learnt scale s, over
/// the de-correlated rewards R T (Wang et al. 2024, ArmoRM, §3.2–3.3).
#[derive(Module, Debug)]
pub struct ArmoGate<B: Backend> {
    pub mlp: Mlp<B>,
    pub logit_scale: Param<Tensor<B, 1>>,
    /// The verbosity transform T (`[m, m]`), set once from the stage-1 rewards; never trained.
    pub transform: Param<Tensor<B, 2>>,
}

/// ArmoRM's fixed gate temperature.
pub const ARMO_TEMPERATURE: f64 = 10.0;
/// ArmoRM's `corr_threshold` (script default) for the verbosity penalties.
pub const VERBOSITY_CORR_THRESHOLD: f64 = 0.03;
/// The penalties ArmoRM tries, in increasing order.
pub const VERBOSITY_PENALTIES: [f64; 24] =
    [0.0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// ArmoRM's `find_proper_verbosity_penalties`: for each objective i ≠ `verb`, the first penalty p
/// with Spearman(R_i − p R_verb, R_verb) ≤ `threshold`; objectives that never get there, and
/// verbosity itself, keep 1. `rewards[j]` holds the m rewards of reference response j.
pub fn verbosity_penalties(rewards: &[Vec<f64>], verb: usize, threshold: f64) -> Vec<f64> {
    let m = rewards.first().map_or(0, Vec::len);
    let r_verb: Vec<f64> = rewards.iter().map(|r| r[verb]).collect();
    (0..m)
        .map(|i| {
            if i == verb {
                return 1.0;
            }
            VERBOSITY_PENALTIES
                .into_iter()
                .find(|&p| {
                    let adjusted: Vec<f64> = rewards.iter().map(|r| r[i] - p * r[verb]).collect();
                    crate::reward::loss::spearman(&adjusted, &r_verb) <= threshold
                })
                .unwrap_or(1.0)
        })
        .collect()
}

/// T = I with row `verb` reduced by the penalties, so (R T)_i = R_i − p_i R_verb and (R T)_verb = 0.
/// Row-major `[m, m]`.
pub fn verbosity_transform(penalties: &[f64], verb: usize) -> Vec<f64> {
    let m = penalties.len();
    let mut t: Vec<f64> = (0..m * m).map(|k| if k / m == k % m { 1.0 } else { 0.0 }).collect();
    for (i, p) in penalties.iter().enumerate() {
        t[verb * m + i] -= p;
    }
    t
}

impl<B: Backend> ArmoGate<B> {
    /// Non-negative objective weights per prompt, `[n, m]`.
    pub fn weights(&self, prompt: Tensor<B, 2>) -> Tensor<B, 2> {
        activation::softmax(self.mlp.forward(prompt).div_scalar(ARMO_TEMPERATURE), 1) * self.logit_scale.val().unsqueeze_dim(0)
    }

    /// The final score Σ_i w_i(x) (R T)_i per row; T is a constant of stage 1.
    pub fn score(&self, rewards: Tensor<B, 2>, prompt: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = rewards.dims();
        (rewards.matmul(self.transform.val().detach()) * self.weights(prompt)).sum_dim(1).reshape([n])
    }
}

impl<B: Backend> MultiObjectiveModel<B> {
    /// Attribute rewards per row, `[n, m]`.
    pub fn rewards(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.mlp.forward(x)
    }

    /// Logits from both sides' attribute rewards: ArmoRM's gated score with a gate, DPA's v·(r_c − r_r)
    /// with the direction v as the prompt, the mean over objectives without a prompt.
    pub fn logits_from_rewards(&self, r_chosen: Tensor<B, 2>, r_rejected: Tensor<B, 2>, prompt: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
        let [n, _] = r_chosen.dims();
        let d = r_chosen - r_rejected;
        match (prompt, &self.gate) {
            (Some(p), Some(g)) => g.score(d, p),
            (Some(v), None) => (d * v).sum_dim(1).reshape([n]),
            (None, _) => d.mean_dim(1).reshape([n]),
        }
    }

    /// DPA's scalar reward v·r per row for directions `v` (`[n, m]`).
    pub fn directed(&self, x: Tensor<B, 2>, v: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        (self.rewards(x) * v).sum_dim(1).reshape([n])
    }
}

#[derive(Module, Debug)]
pub struct MixtureModel<B: Backend> {
    /// Shared network with one output per head: r_k(y).
    pub mlp: Mlp<B>,
    /// Router Linear(prompt → K) with bias; w(x) = softmax.
    pub router: Dense<B>,
    #[module(skip)]
    pub load_balance: f64,
}

impl<B: Backend> MixtureModel<B> {
    /// Routing log-weights log w(x), `[n, K]`.
    pub fn log_weights(&self, prompt: Tensor<B, 2>) -> Tensor<B, 2> {
        activation::log_softmax(self.router.forward(prompt), 1)
    }

    /// Per-head reward differences r_k(c) − r_k(r), `[n, K]`.
    pub fn head_margins(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>) -> Tensor<B, 2> {
        self.mlp.forward(chosen) - self.mlp.forward(rejected)
    }

    /// MiCRo's `mixture_BT` objective: −mean log Σ_k w_k σ(d_k) + λ · mean Σ_k w_k log w_k.
    pub fn mixture_loss(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>, prompt: Tensor<B, 2>) -> Tensor<B, 1> {
        let log_w = self.log_weights(prompt);
        let joint = log_w.clone() + activation::log_sigmoid(self.head_margins(chosen, rejected));
        let m = joint.clone().max_dim(1).detach();
        let log_lik = (joint - m.clone()).exp().sum_dim(1).log() + m;
        let neg_entropy = (log_w.clone().exp() * log_w).sum_dim(1);
        log_lik.mean().neg() + neg_entropy.mean().mul_scalar(self.load_balance)
    }
}

/// The best response under every direction θ on the circle, for two-objective rewards `r`
/// (`r[i] = [r_i0, r_i1]`, v = (cos θ, sin θ)): the argmax of v·r changes only where two
/// responses tie, v·(r_i − r_j) = 0, so checking the midpoints between those angles finds the
/// whole partition. Returns `(start_deg, best)` segments covering [0°, 360°).
pub fn argmax_by_direction(r: &[[f64; 2]]) -> Vec<(f64, usize)> {
    let best_at = |deg: f64| {
        let (c, s) = (deg.to_radians().cos(), deg.to_radians().sin());
        (0..r.len()).max_by(|&a, &b| (c * r[a][0] + s * r[a][1]).total_cmp(&(c * r[b][0] + s * r[b][1]))).unwrap_or(0)
    };
    let mut cuts = vec![0.0];
    for i in 0..r.len() {
        for j in i + 1..r.len() {
            let (dx, dy) = (r[i][0] - r[j][0], r[i][1] - r[j][1]);
            if dx == 0.0 && dy == 0.0 {
                continue;
            }
            // v·d = 0 at the two angles perpendicular to d.
            let base = dy.atan2(dx).to_degrees() + 90.0;
            cuts.extend([base.rem_euclid(360.0), (base + 180.0).rem_euclid(360.0)]);
        }
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    let mut segments: Vec<(f64, usize)> = vec![];
    for (k, &start) in cuts.iter().enumerate() {
        let end = cuts.get(k + 1).copied().unwrap_or(360.0);
        let best = best_at((start + end) / 2.0);
        if segments.last().map(|s| s.1) != Some(best) {
            segments.push((start, best));
        }
    }
    segments
}

/// GPM's linear query complexity: the n × n score table S[i][j] = s(y_i ≻ y_j)/τ of n responses
/// from one call of `encode` on the n responses (not one per pair).
///
/// With G the embeddings rotated block-wise, (e₀, e₁) ↦ (e₁, −e₀), s(y_i ≻ y_j) = Σ_l λ_l (e_i,2l e_j,2l+1
/// − e_i,2l+1 e_j,2l) = (E Λ) G^T, Λ the block weights repeated per coordinate. `lambda` is the gate's
/// `[k]` weights for the shared prompt (None = 1).
pub fn all_pairs_scores<B: Backend>(items: Tensor<B, 2>, encode: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>, lambda: Option<Tensor<B, 1>>, tau: f64) -> Tensor<B, 2> {
    let e = encode(items);
    let [n, two_k] = e.dims();
    let k = two_k / 2;
    let blocks = e.clone().reshape([n, k, 2]);
    let rotated = Tensor::cat(vec![blocks.clone().narrow(2, 1, 1), blocks.narrow(2, 0, 1).neg()], 2).reshape([n, two_k]);
    let weighted = match lambda {
        Some(l) => e * l.reshape([1, k, 1]).repeat_dim(2, 2).reshape([1, two_k]),
        None => e,
    };
    weighted.matmul(rotated.transpose()).div_scalar(tau)
}

/// Per-candidate score from a pairwise table, as GPM's alignment code ranks samples
/// (`get_scores_from_cmps`): mean_j (S − Sᵀ)[i][j]; for a skew-symmetric S that is 2·mean_j S[i][j].
pub fn candidate_scores<B: Backend>(table: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = table.dims()[0];
    (table.clone() - table.transpose()).mean_dim(1).reshape([n])
}

/// The models a user can pick; one type so that front ends and checkpoints handle all alike.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one model per run: boxing would only add indirection
pub enum PreferenceModel<B: Backend> {
    Bt(BtModel<B>),
    Gpm(GpmModel<B>),
    MultiObjective(MultiObjectiveModel<B>),
    Mixture(MixtureModel<B>),
    Vpl(VplModel<B>),
    Regret(crate::reward::trajectories::RegretModel<B>),
    PartialReturn(crate::reward::trajectories::PartialReturnModel<B>),
    ContextBt(ContextBtModel<B>),
    InContext(InContextModel<B>),
    AttributeAttention(AttributeAttentionModel<B>),
    ExpertMixture(ExpertMixtureModel<B>),
}

impl<B: Backend> PreferenceModel<B> {
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Bt(_) => ModelKind::Bt,
            Self::Gpm(_) => ModelKind::Gpm,
            Self::MultiObjective(_) => ModelKind::MultiObjective,
            Self::Mixture(_) => ModelKind::Mixture,
            Self::Vpl(_) => ModelKind::Vpl,
            Self::Regret(_) => ModelKind::Regret,
            Self::PartialReturn(_) => ModelKind::PartialReturn,
            Self::ContextBt(_) => ModelKind::ContextBt,
            Self::InContext(_) => ModelKind::InContext,
            Self::AttributeAttention(_) => ModelKind::AttributeAttention,
            Self::ExpertMixture(_) => ModelKind::ExpertMixture,
        }
    }

    /// Parameter shapes in a fixed order, to validate checkpoints against a config.
    pub fn shapes(&self) -> Vec<Vec<usize>> {
        let dense = |d: &Dense<B>| {
            let mut v = vec![d.weight.val().dims().to_vec()];
            v.extend(d.bias.iter().map(|b| b.val().dims().to_vec()));
            v
        };
        let mlp = |m: &Mlp<B>| m.layers.iter().flat_map(dense).collect::<Vec<_>>();
        match self {
            Self::Bt(m) => mlp(&m.mlp),
            Self::Gpm(m) => [mlp(&m.mlp), m.gate.iter().flat_map(dense).collect()].concat(),
            Self::MultiObjective(m) => {
                let gate = m.gate.iter().flat_map(|g| [mlp(&g.mlp), vec![g.logit_scale.val().dims().to_vec(), g.transform.val().dims().to_vec()]].concat());
                [mlp(&m.mlp), gate.collect()].concat()
            }
            Self::Mixture(m) => [mlp(&m.mlp), dense(&m.router)].concat(),
            Self::Vpl(m) => {
                let heads = [&m.query, &m.key, &m.value, &m.mean, &m.log_var].into_iter().flat_map(dense);
                [mlp(&m.pair_encoder), heads.collect(), mlp(&m.decoder)].concat()
            }
            Self::Regret(m) => vec![m.weight.val().dims().to_vec()],
            Self::PartialReturn(m) => vec![m.weight.val().dims().to_vec()],
            Self::ContextBt(m) => mlp(&m.mlp),
            Self::InContext(m) => [mlp(&m.pair_encoder), mlp(&m.item_encoder), mlp(&m.base)].concat(),
            Self::AttributeAttention(m) => {
                let (embed, scale) = (vec![m.embed.val().dims().to_vec()], vec![m.scale.val().dims().to_vec()]);
                [mlp(&m.content), mlp(&m.predictors), embed, dense(&m.query), dense(&m.key), dense(&m.score), scale, dense(&m.value)].concat()
            }
            Self::ExpertMixture(m) => [mlp(&m.router), mlp(&m.experts), m.aggregators.iter().flat_map(mlp).collect()].concat(),
        }
    }

    /// One scalar reward per item (rows of `items`), for a policy that optimises against the model:
    /// a Bradley–Terry model's r(x); a GPM's win score against a uniform pick among the same items,
    /// mean_j s(y_i ≻ y_j)/τ (half of GPM's `candidate_scores` ranking, so that a BT-shaped table
    /// S_ij = r_i − r_j gives back r_i − mean r). Other models have no single reward per response.
    pub fn item_rewards(&self, items: Tensor<B, 2>) -> crate::Result<Tensor<B, 1>> {
        match self {
            Self::Bt(m) => Ok(m.reward(items)),
            Self::Gpm(m) => Ok(candidate_scores(all_pairs_scores(items, |x| m.embed(x), None, m.tau)).mul_scalar(0.5)),
            other => Err(crate::config_error("reward", format!("a {} model gives no single reward per response (use a bt or gpm run)", other.kind().name()))),
        }
    }

    /// The representation of each item that a linear probe reads: the last hidden layer of the
    /// item network (Bradley–Terry, GPM, multi-objective and mixture models).
    pub fn representation(&self, items: Tensor<B, 2>) -> crate::Result<Tensor<B, 2>> {
        match self {
            Self::Bt(m) => Ok(m.mlp.hidden(items)),
            Self::Gpm(m) => Ok(m.mlp.hidden(items)),
            Self::MultiObjective(m) => Ok(m.mlp.hidden(items)),
            Self::Mixture(m) => Ok(m.mlp.hidden(items)),
            other => Err(crate::config_error("model.kind", format!("a {} model has no per-item representation to probe (use a bt, gpm, multi-objective or mixture run)", other.kind().name()))),
        }
    }

    /// ℓ = log-odds that each chosen row is preferred to its rejected row.
    pub fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>, prompt: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
        match self {
            Self::Bt(m) => m.reward(chosen) - m.reward(rejected),
            Self::Gpm(m) => {
                let gate = m.gate_weights(prompt);
                gpm_score(m.embed(chosen), m.embed(rejected), gate).div_scalar(m.tau)
            }
            // The prompt carries the user's direction v (or, with a gate, ArmoRM's gating input);
            // without one, weigh objectives equally.
            Self::MultiObjective(m) => m.logits_from_rewards(m.rewards(chosen), m.rewards(rejected), prompt),
            Self::Regret(m) => m.logits(chosen, rejected),
            Self::PartialReturn(m) => m.logits(chosen, rejected),
            Self::ContextBt(m) => m.logits(chosen, rejected, prompt.expect("context-bt is only built for data with context")),
            Self::InContext(m) => m.logits(chosen, rejected, prompt.expect("in-context is only built for data with context")),
            Self::AttributeAttention(m) => m.logits(chosen, rejected, prompt.expect("attribute-attention is only built for data with context")),
            Self::ExpertMixture(m) => m.logits(chosen, rejected, prompt.expect("expert-mixture is only built for data with prompts")),
            // Evaluation uses the posterior mean, as VPL does.
            Self::Vpl(m) => {
                let context = prompt.expect("VPL is only built for data with context");
                let (z, _) = m.posterior(context);
                m.reward(chosen, z.clone()) - m.reward(rejected, z)
            }
            // Prediction: the routed reward Σ_k w_k(x) r_k, compared between the two responses.
            Self::Mixture(m) => {
                let [n, _] = chosen.dims();
                let d = m.head_margins(chosen, rejected);
                match prompt {
                    Some(p) => (d * m.log_weights(p).exp()).sum_dim(1).reshape([n]),
                    None => d.mean_dim(1).reshape([n]),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
