//! The synthetic scenarios: each builds a [`PairDataset`] from a seed, with a hidden truth the
//! claims check against (a linear utility, a cycle, users' directions, groups, a gridworld, …).

use serde::{Deserialize, Serialize};

use crate::reward::data::{PairDataset, gpm_custom_cycle};
use crate::runtime::rng::Rng;
use crate::{Result, config_error};

pub mod capabilities;
pub mod communities;
pub mod context;
pub mod reasoning;
pub mod users;

/// Which synthetic scenario to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// A hidden linear utility; labels drawn from Bradley–Terry with temperature `noise`.
    Linear,
    /// Items on the unit circle; a ≻ b iff b lies less than half a turn counter-clockwise of a.
    Cyclic,
    /// The GPM repository's 4-item toy set A≻B≻C≻D≻A, items one-hot.
    CyclicAbcd,
    /// Two hidden objectives (helpfulness, verbosity) with per-item ratings; users prefer along
    /// their own direction v, given as the pair's prompt features.
    MultiObjective,
    /// Two user groups with opposed tastes; the prompt identifies the user (one-hot), not the group.
    Mixture,
    /// Many users, each with a private taste direction; each pair carries a few other labelled
    /// pairs of the same user as context (for VPL). Evaluation is on users never trained on.
    FewShotUsers,
    /// Full rankings of a few items each, drawn from Plackett–Luce over a hidden linear utility.
    Rankings,
    /// The `linear` task with a known fraction `flip` of training labels flipped; eval is clean.
    Noisy,
    /// Trajectory segments in a small gridworld with a known reward, labelled by regret, partial
    /// return or HERON's hierarchy (`trajectory_labels`).
    Gridworld,
    /// Gao et al.'s reward over-optimisation: many candidate responses, a gold reward that
    /// punishes extremes, and `n_pairs` gold-labelled comparisons for a proxy reward model.
    Overopt,
    /// WorldPM at toy scale: style-neutral noisy "forum" labels for training, and three held-out
    /// test sets (adversarial, objective, subjective) scored separately, for scaling sweeps.
    Worldpm,
    /// Prompts whose answers are right or wrong by a line that differs per prompt (Eurus's
    /// UltraInteract pairs at toy scale); every pair is a right answer against a wrong one.
    Reasoning,
    /// Every pair of responses labelled under two criteria that reverse its label (Pitis et al.'s
    /// preference reversals); the criterion is the pair's context, one-hot.
    ContextReversal,
    /// Communities that weigh six latent response attributes differently (PrefPalette); the
    /// community is the pair's context, one-hot, and the ratings are the attribute intensities.
    Communities,
    /// Prompts from three tasks that weigh four response capabilities with conflicting signs
    /// (DMoERM); noisy overall labels, less noisy per-capability ratings, the task in `pair_groups`.
    Capabilities,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 15] = [
        Self::Linear,
        Self::Cyclic,
        Self::CyclicAbcd,
        Self::MultiObjective,
        Self::Mixture,
        Self::FewShotUsers,
        Self::Rankings,
        Self::Noisy,
        Self::Gridworld,
        Self::Overopt,
        Self::Worldpm,
        Self::Reasoning,
        Self::ContextReversal,
        Self::Communities,
        Self::Capabilities,
    ];

    /// `worldpm`: the names of its test sets, in order (see [`ScenarioKind::Worldpm`]).
    pub const WORLDPM_TEST_SETS: [&'static str; 3] = ["adversarial", "objective", "subjective"];
    /// `worldpm`: pairs in each test set.
    pub const WORLDPM_TEST_PAIRS: usize = 2000;

    /// `overopt`: the gold reward's weight on ‖x‖² (see [`overopt_gold`]).
    pub const OVEROPT_CURVATURE: f64 = 0.25;

    /// `few-shot-users`: labelled pairs of the same user given as context with every pair
    /// (VPL's context set; the "≤ 8 labelled pairs of a new user").
    pub const CONTEXT_PAIRS: usize = 8;
    /// `few-shot-users`: users seen in training, and new users seen only through their context.
    pub const TRAIN_USERS: usize = 60;
    pub const NEW_USERS: usize = 30;

    /// Users in the `mixture` scenario; user u belongs to group u % 2.
    pub const MIXTURE_USERS: usize = 20;

    /// The user directions of the `multi-objective` scenario, in degrees from helpfulness toward
    /// verbosity (DPA's θ; its suggested range is |θ| ≲ 45°, we add verbosity-lovers too).
    pub const USER_DIRECTIONS_DEG: [f64; 4] = [-30.0, 0.0, 45.0, 90.0];

    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Cyclic => "cyclic",
            Self::CyclicAbcd => "cyclic-abcd",
            Self::MultiObjective => "multi-objective",
            Self::Mixture => "mixture",
            Self::FewShotUsers => "few-shot-users",
            Self::Rankings => "rankings",
            Self::Noisy => "noisy",
            Self::Gridworld => "gridworld",
            Self::Overopt => "overopt",
            Self::Worldpm => "worldpm",
            Self::Reasoning => "reasoning",
            Self::ContextReversal => "context-reversal",
            Self::Communities => "communities",
            Self::Capabilities => "capabilities",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
            config_error("scenario.kind", format!("unknown scenario `{name}` (expected one of: {})", names.join(", ")))
        })
    }

    /// One paragraph for the page and `--help`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Linear => "Items are points in the plane with a hidden linear utility u(x) = w·x; each pair is labelled by a Bradley–Terry draw, P(a ≻ b) = σ((u(a) − u(b)) / noise). Any reward model can fit this; Bradley–Terry should exceed 90 %.",
            Self::Cyclic => "Items sit on a circle and a beats b when b lies less than half a turn counter-clockwise of a: rock–paper–scissors without end. Compared pairs are at least `min_separation_deg` apart. No scalar reward can order this (Bradley–Terry stays near chance); GPM's skew-symmetric embeddings represent it exactly.",
            Self::CyclicAbcd => "The GPM repository's toy set: four characters with A ≻ B ≻ C ≻ D ≻ A. Only these four comparisons exist, so evaluation is on the same pairs (as in the GPM paper's cyclic experiment). Bradley–Terry can get at most 3 of 4 right; GPM gets all four, on every seed. Try GPM with normalisation on: unit-length 2-D embeddings can only turn, and from a start where all four point the same way they settle where every score is 0 (loss ln 2) on a third of seeds; free-length embeddings (the default) pass through the origin and find the cycle.",
            Self::MultiObjective => "Responses have two hidden qualities, helpfulness and verbosity, rated per response (with noise `noise`); as in real rating data, helpfulness ratings rise with verbosity (correlation ≈ 0.5). Four users weigh them by their own direction v = (cos θ, sin θ), θ ∈ {−30°, 0°, 45°, 90°}, and label pairs by v·r. With `objectives` = 3 or more, the qualities are spread evenly over 150° and the users are each objective alone and all of them equally. A multi-objective reward model learns the ratings by regression (Directional Preference Alignment); turning v then re-ranks responses without retraining. With the gate on (ArmoRM), verbosity is first regressed out of every objective, so the final score no longer rewards length.",
            Self::Mixture => "Twenty users in two hidden groups with opposed tastes: group 0 prefers a high w·x, group 1 a low one. Each pair says which user labelled it (one-hot prompt), never the group. A single Bradley–Terry model must average the two and sits near chance; a mixture of reward heads with a router (MiCRo) finds both groups and sends each user to theirs.",
            Self::FewShotUsers => "Ninety users, each with a private taste direction on the circle. Every pair comes with eight other labelled pairs of the same user as context. Evaluation is on thirty users never seen in training. One reward for everyone averages opposite tastes and stays near chance; a latent-user model (VPL) reads the eight context pairs, infers the user's latent z and ranks their held-out pairs accordingly; an in-context model (FSPO) reads them directly. `shots` (0 to 8) sets how many of their labelled pairs the new users show.",
            Self::Rankings => "Lists of five items ranked by a Plackett–Luce draw over a hidden linear utility (temperature `noise`); `n_pairs / 4` lists, each giving its ten ordered pairs. Train with `train.loss.listwise = \"plackett-luce\"` or `\"rank-list\"` to use whole lists; held-out lists are scored pairwise and by Kendall's τ.",
            Self::Noisy => "The linear task with a known fraction `flip` of training labels flipped (held-out labels are clean). Plain Bradley–Terry fits the noise; preference strength from an ensemble (Secrets of RLHF II) flags the flipped pairs by their low mean reward margin, and collaborative reward modelling (two peers keeping each other's small-loss pairs) trains around them.",
            Self::Gridworld => "Three-step segments of behaviour in a 5×5 gridworld with a goal, a wall with two gaps and a mud cell on the short way; the true reward is −1 per step, +2 at the goal, −1.5 in mud. People compare segments by regret (how much worse than optimal they were; Knox et al.), not by the reward collected. The regret model learns a reward whose best route goes through the mud, as the true one does; the partial-return model cannot see the step cost (every segment has three steps) and learns to avoid the mud by a detour. `trajectory_labels` switches to partial-return or HERON's hierarchical labels.",
            Self::Overopt => "Gao et al.'s reward over-optimisation. Candidate responses are points x in `dim` dimensions (4,096 in 8 by default); the hidden gold reward is x₀ + 0.5·x₁ − 0.25·‖x‖²: more of the first two qualities is better, but extreme responses are worse. A proxy reward model learns from `n_pairs` comparisons of reference samples labelled by the gold reward. Optimise a policy against the proxy (best-of-n, RL at decreasing β): the proxy reward keeps rising, while the gold reward rises, peaks and falls, later the more labels the proxy had.",
            Self::Worldpm => "WorldPM's scaling study at toy scale. A response is a point in `dim` dimensions: content features, one feature that needs computation to read (its quality term is sin 3x, which a narrow network represents poorly), and a style feature (length, correlated with quality though quality ignores it). Training pairs are fresh responses labelled like forum votes, P(a ≻ b) = σ(1.5·(q(a) − q(b))): style-neutral and noisy. Three test sets are scored on their own: adversarial (a response against a copy of itself with an error injected into its content; the original wins), objective (two responses that differ only in the feature that needs computation; the better one wins) and subjective (labels from a judge who likes length and cannot do the computation: σ(1.5·Δ(w·x) + 3·Δlength)). Sweep the data (`scenario.n_pairs`, with `train.epochs`) and the model size (`model.hidden`), then fit: the adversarial loss falls as a power law in data, the objective loss falls far only for the wider models, and the subjective loss turns back up for them.",
            Self::Reasoning => "Prompts with right and wrong answers, as in Eurus's UltraInteract pairs. An answer is a point a (`dim` features) and its prompt has a difficulty b, which the item's first feature shows; the answer is right when w·a − b ≥ 0.3 and wrong when it is ≤ −0.3, and every pair is a right answer against a wrong one of the same prompt (`n_pairs / 4` prompts, two of each; held-out pairs are whole new prompts). Bradley–Terry ranks each prompt's answers, but it sees only reward differences within a prompt, so its reward's zero means nothing: a wrong answer to an easy prompt can outscore a right one to a hard prompt. With Eurus's direct reward term (`train.loss.dr = true`) right answers score above zero and wrong ones below, on prompts never trained on.",
            Self::ContextReversal => "Pitis et al.'s preference reversals at toy scale. Responses are points in the plane of two attributes, detail (concise → detailed) and formality (casual → formal), and a context is one of eight criteria naming a direction in it (\"detailed\", \"concise and formal\", …). Every pair of responses is labelled twice, under a criterion that decides it and under another that decides it the other way, so without the context the labels contradict each other: a reward model that ignores the criterion (`bt`) is right on exactly one of each two, 50 %, on any data size. A context-aware reward model r(c, y) (`context-bt`) reads the criterion and is right on both. An annotator whose criterion is hidden can be served by inferring it from a few of their labels.",
            Self::Communities => "PrefPalette's communities at toy scale. A response has six latent attributes (verbosity, formality, supportiveness, sarcasm, humor, directness: tanh of its first six features), and six communities weigh them differently (scholarly: verbosity and formality; support: supportiveness; debate: directness and sarcasm; jokes: humor; news: formality and directness; casual: humor and supportiveness). Each labels its share of the pairs by its weighted sum, and the pair's context says which community it was. A teacher gives every response's attribute intensities (the ratings), as PrefPalette's counterfactual rewrites order responses on one attribute at a time. One reward for everyone (`bt`) must average the communities; the attribute-attention model learns attribute predictors from the teacher's orders and, per community, an attention over them that reads as the community's profile.",
            Self::Capabilities => "DMoERM's setting at toy scale. Each pair's prompt comes from one of three tasks (chat, objective QA, creative writing), shown only through eight noisy prompt features, and the tasks weigh four capabilities of a response (length, correctness, empathy, creativity: tanh of its first four features) with conflicting signs: length is rewarded in creative writing and penalised in objective QA. Overall labels are noisy, about 65 % agreeing with the task's utility, as human annotators agree 60–75 %; per-capability ratings (the data's ratings, as an LLM judges one capability point at a time) agree about 85 %. One reward for every task must average conflicting tastes; the expert mixture routes the prompt to its task, judges each capability with the task's experts and aggregates them.",
        }
    }
}

/// Everything that defines a synthetic scenario. Together with the run seed it fixes the data.
/// Fields a config leaves out take the kind's defaults ([`ScenarioConfig::new`]): `overopt` and
/// `worldpm` live in 8 dimensions, `overopt` has 4,096 candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ScenarioFields")]
pub struct ScenarioConfig {
    pub kind: ScenarioKind,
    /// Number of distinct items (responses).
    pub n_items: usize,
    /// Number of labelled comparisons.
    pub n_pairs: usize,
    /// Feature dimension of `linear` items.
    pub dim: usize,
    /// Bradley–Terry temperature of `linear` labels (smaller = cleaner).
    pub noise: f64,
    /// Fraction of pairs held out for evaluation.
    pub eval_fraction: f64,
    /// `cyclic`: smallest angular distance (degrees) between compared items, in [0, 180).
    pub min_separation_deg: f64,
    /// `noisy`: fraction of training labels flipped, in [0, 0.5).
    pub flip: f64,
    /// `rankings`: items per list.
    pub list_len: usize,
    /// `gridworld`: how segment pairs are labelled (regret, partial-return, heron).
    pub trajectory_labels: crate::reward::trajectories::LabelRule,
    /// `multi-objective`: number of hidden objectives (rated attributes), 2..=8.
    pub objectives: usize,
    /// `multi-objective`: 0 shows the 2-D features themselves; n ≥ 4 shows them only through a
    /// fixed random nonlinear encoding in n dimensions, sin(A z + b) with each row of A a random
    /// direction of length 8 (a frozen encoder's features), so that no objective is linear in
    /// what the model sees.
    pub observed_dim: usize,
    /// `few-shot-users`: how many labelled pairs each new (held-out) user shows, 0..=8; the
    /// context rows past them are zeros. Training users always show 8. Written only when not 8,
    /// so configs from before the key read and write the same.
    #[serde(skip_serializing_if = "is_all_shots")]
    pub shots: usize,
}

fn is_all_shots(shots: &usize) -> bool {
    *shots == ScenarioKind::CONTEXT_PAIRS
}

/// A scenario table as written, every field but `kind` optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFields {
    kind: ScenarioKind,
    n_items: Option<usize>,
    n_pairs: Option<usize>,
    dim: Option<usize>,
    noise: Option<f64>,
    eval_fraction: Option<f64>,
    min_separation_deg: Option<f64>,
    flip: Option<f64>,
    list_len: Option<usize>,
    trajectory_labels: Option<crate::reward::trajectories::LabelRule>,
    objectives: Option<usize>,
    observed_dim: Option<usize>,
    shots: Option<usize>,
}

impl From<ScenarioFields> for ScenarioConfig {
    fn from(f: ScenarioFields) -> Self {
        let d = ScenarioConfig::new(f.kind);
        Self {
            kind: f.kind,
            n_items: f.n_items.unwrap_or(d.n_items),
            n_pairs: f.n_pairs.unwrap_or(d.n_pairs),
            dim: f.dim.unwrap_or(d.dim),
            noise: f.noise.unwrap_or(d.noise),
            eval_fraction: f.eval_fraction.unwrap_or(d.eval_fraction),
            min_separation_deg: f.min_separation_deg.unwrap_or(d.min_separation_deg),
            flip: f.flip.unwrap_or(d.flip),
            list_len: f.list_len.unwrap_or(d.list_len),
            trajectory_labels: f.trajectory_labels.unwrap_or(d.trajectory_labels),
            objectives: f.objectives.unwrap_or(d.objectives),
            observed_dim: f.observed_dim.unwrap_or(d.observed_dim),
            shots: f.shots.unwrap_or(d.shots),
        }
    }
}

impl ScenarioConfig {
    pub fn new(kind: ScenarioKind) -> Self {
        let overopt = kind == ScenarioKind::Overopt;
        let worldpm = kind == ScenarioKind::Worldpm;
        let communities = kind == ScenarioKind::Communities;
        let tasks = kind == ScenarioKind::Capabilities;
        Self {
            kind,
            // The over-optimisation scenario needs many candidates (best-of-1024 must not exhaust
            // them) and room to be extreme in; its labels are Bradley–Terry on the gold scale.
            n_items: if overopt { 4096 } else if communities || tasks { 600 } else { 200 },
            // `communities`: 500 pairs per community, as PrefPalette's toy design asks;
            // `capabilities`: 1,000 per task.
            n_pairs: if communities || tasks { 3000 } else { 2000 },
            dim: if overopt || worldpm { 8 } else if communities { 6 } else if tasks { 4 } else { 2 },
            // `capabilities`: overall labels about 65 % in agreement with the task's utility.
            noise: if overopt { 1.0 } else if tasks { 1.5 } else { 0.1 },
            eval_fraction: 0.2,
            min_separation_deg: 90.0,
            flip: 0.3,
            list_len: 5,
            trajectory_labels: Default::default(),
            objectives: 2,
            observed_dim: 0,
            shots: ScenarioKind::CONTEXT_PAIRS,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.n_items < 2 {
            return Err(config_error("scenario.n_items", "needs at least 2 items"));
        }
        if self.n_pairs < 2 {
            return Err(config_error("scenario.n_pairs", "needs at least 2 pairs"));
        }
        if self.dim == 0 || self.dim > 4096 {
            return Err(config_error("scenario.dim", "must be in 1..=4096"));
        }
        if !(self.noise > 0.0 && self.noise.is_finite()) {
            return Err(config_error("scenario.noise", "must be a positive number"));
        }
        if !(0.0..180.0).contains(&self.min_separation_deg) {
            return Err(config_error("scenario.min_separation_deg", "must be in [0, 180)"));
        }
        if !(0.0..1.0).contains(&self.eval_fraction) {
            return Err(config_error("scenario.eval_fraction", "must be in [0, 1)"));
        }
        if !(0.0..0.5).contains(&self.flip) {
            return Err(config_error("scenario.flip", "must be in [0, 0.5)"));
        }
        if self.list_len < 2 || self.list_len > self.n_items || self.list_len > 64 {
            return Err(config_error("scenario.list_len", "must be in 2..=min(64, n_items)"));
        }
        if !(2..=8).contains(&self.objectives) {
            return Err(config_error("scenario.objectives", "must be in 2..=8"));
        }
        if self.shots > ScenarioKind::CONTEXT_PAIRS || (self.shots != ScenarioKind::CONTEXT_PAIRS && self.kind != ScenarioKind::FewShotUsers) {
            return Err(config_error("scenario.shots", format!("applies to few-shot-users only, and must be in 0..={}", ScenarioKind::CONTEXT_PAIRS)));
        }
        if self.observed_dim != 0 && (self.kind != ScenarioKind::MultiObjective || !(4..=4096).contains(&self.observed_dim)) {
            return Err(config_error("scenario.observed_dim", "applies to multi-objective only, and must be 0 or in 4..=4096"));
        }
        if self.kind == ScenarioKind::Capabilities && self.dim < capabilities::CAPABILITIES.len() {
            return Err(config_error("scenario.dim", "capabilities needs at least 4 dimensions (one per capability)"));
        }
        if self.kind == ScenarioKind::Communities && self.dim < communities::ATTRIBUTES.len() {
            return Err(config_error("scenario.dim", "communities needs at least 6 dimensions (one per attribute)"));
        }
        if self.kind == ScenarioKind::Worldpm && self.dim < 3 {
            return Err(config_error("scenario.dim", "worldpm needs at least 3 dimensions (content, the computed feature, style)"));
        }
        Ok(())
    }

    /// Build the dataset, split by `seed`.
    pub fn build(&self, seed: u64) -> Result<PairDataset> {
        self.validate()?;
        let mut rng = Rng::stream(seed, "scenario");
        let mut ds = match self.kind {
            ScenarioKind::Linear => linear(self, &mut rng),
            ScenarioKind::Cyclic => cyclic(self, &mut rng),
            ScenarioKind::MultiObjective => multi_objective(self, &mut rng),
            ScenarioKind::Mixture => mixture(self, &mut rng),
            ScenarioKind::Gridworld => gridworld(self, &mut rng),
            ScenarioKind::Overopt => overopt(self, &mut rng),
            // These split on their own: by pair before flipping, by list, by user.
            ScenarioKind::Noisy => return finish(noisy(self, &mut rng, seed)?),
            ScenarioKind::Rankings => return finish(rankings(self, &mut rng, seed)),
            ScenarioKind::FewShotUsers => return finish(users::few_shot_users(self, &mut rng).0),
            ScenarioKind::Worldpm => return finish(worldpm(self, &mut rng, seed)?),
            ScenarioKind::Reasoning => return finish(reasoning::reasoning(self, &mut rng, seed)),
            ScenarioKind::ContextReversal => return finish(context::context_reversal(self, &mut rng, seed)),
            ScenarioKind::Communities => communities::communities(self, &mut rng),
            ScenarioKind::Capabilities => capabilities::capabilities_scenario(self, &mut rng),
            ScenarioKind::CyclicAbcd => {
                let ds = gpm_custom_cycle()?;
                let mut ds = ds;
                ds.train = (0..ds.pairs.len()).collect();
                ds.eval = ds.train.clone();
                ds.validate()?;
                return Ok(ds);
            }
        };
        ds.split(self.eval_fraction, seed)?;
        ds.validate()?;
        Ok(ds)
    }
}

fn finish(ds: PairDataset) -> Result<PairDataset> {
    ds.validate()?;
    Ok(ds)
}

/// Which of `groups` groups (prompts, response pairs) are held out whole: round(fraction · groups)
/// of them, at least one when the fraction is positive and never all, drawn by the split's own
/// stream so that the data above it does not move with the split.
fn held_out_groups(groups: usize, fraction: f64, seed: u64, stream: &str) -> Vec<bool> {
    let mut order: Vec<usize> = (0..groups).collect();
    Rng::stream(seed, stream).shuffle(&mut order);
    let held = ((groups as f64 * fraction).round() as usize).clamp(usize::from(fraction > 0.0), groups - 1);
    let mut out = vec![false; groups];
    order[..held].iter().for_each(|&g| out[g] = true);
    out
}

/// `(a, b)` ordered by a Bradley–Terry draw: a first with probability σ(delta / noise), where
/// delta is u(a) − u(b).
fn bt_order(rng: &mut Rng, (a, b): (usize, usize), delta: f64, noise: f64) -> (usize, usize) {
    if rng.uniform() < 1.0 / (1.0 + (-delta / noise).exp()) { (a, b) } else { (b, a) }
}

fn distinct_pair(rng: &mut Rng, n: usize) -> (usize, usize) {
    let a = rng.below(n);
    let mut b = rng.below(n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

fn linear(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let d = cfg.dim;
    // Hidden direction: a random unit vector.
    let mut w: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    w.iter_mut().for_each(|x| *x /= norm);
    let items: Vec<f32> = (0..cfg.n_items * d).map(|_| rng.normal() as f32).collect();
    let utility = |i: usize| -> f64 { (0..d).map(|j| w[j] * items[i * d + j] as f64).sum() };
    let pairs: Vec<(usize, usize)> = (0..cfg.n_pairs)
        .map(|_| {
            let (a, b) = distinct_pair(rng, cfg.n_items);
            let p_a = 1.0 / (1.0 + (-(utility(a) - utility(b)) / cfg.noise).exp());
            if rng.uniform() < p_a { (a, b) } else { (b, a) }
        })
        .collect();
    // HelpSteer2-style annotations: a strength 1–3 from how far apart the two responses are, and
    // a 0–4 helpfulness rating per response (for the regression head). Drawn from a stream of
    // their own so that the pairs above do not depend on them.
    let mut extra = Rng::new(rng.next_u64());
    let strengths = pairs.iter().map(|&(a, b)| strength_of((utility(a) - utility(b)).abs())).collect();
    let ratings = (0..cfg.n_items).map(|i| (2.0 + utility(i) + cfg.noise * extra.normal()) as f32).collect();
    PairDataset {
        dim: d,
        item_labels: (0..cfg.n_items).map(|i| format!("x{i}")).collect(),
        items,
        pairs,
        strengths,
        ratings,
        n_objectives: 1,
        ..Default::default()
    }
}

/// The gold reward of the `overopt` scenario: x₀ + 0.5·x₁ − c·‖x‖², c = [`ScenarioKind::OVEROPT_CURVATURE`].
/// Along the direction it likes it peaks at a moderate distance, so a proxy that has only seen
/// the bulk of the reference and extrapolates "more is better" is exploited by hard optimisation.
pub fn overopt_gold(x: &[f32]) -> f64 {
    let lin = x[0] as f64 + if x.len() > 1 { 0.5 * x[1] as f64 } else { 0.0 };
    lin - ScenarioKind::OVEROPT_CURVATURE * x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
}

fn overopt(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let d = cfg.dim;
    let items: Vec<f32> = (0..cfg.n_items * d).map(|_| rng.normal() as f32).collect();
    let gold: Vec<f64> = items.chunks(d).map(overopt_gold).collect();
    // Pairs of reference samples (π_ref uniform over the candidates), labelled by a Bradley–Terry
    // draw on the gold reward with temperature `noise`.
    let pairs = (0..cfg.n_pairs)
        .map(|_| {
            let (a, b) = distinct_pair(rng, cfg.n_items);
            if rng.uniform() < 1.0 / (1.0 + (-(gold[a] - gold[b]) / cfg.noise).exp()) { (a, b) } else { (b, a) }
        })
        .collect();
    PairDataset {
        dim: d,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        ratings: gold.iter().map(|&g| g as f32).collect(),
        n_objectives: 1,
        ..Default::default()
    }
}

/// `worldpm`'s world: quality q(x) = w·x_content + sin(3·x_computed), with w a unit vector drawn
/// from the seed alone, so that every point of a data sweep shares the world and the test sets.
struct WorldPm {
    w: Vec<f64>,
}

impl WorldPm {
    /// Forum and test labels: P(a ≻ b) = σ(K·Δq); K = 1.5 puts the Bayes loss of the forum's
    /// labels near WorldPM's noisy-vote regime (0.39 nats, by Monte Carlo).
    const K: f64 = 1.5;
    /// The subjective judge's weight on Δlength, large beside K·Δq (the style bias).
    const STYLE: f64 = 3.0;
    /// Frequency of the computed feature's quality term.
    const OMEGA: f64 = 3.0;
    /// Correlation of length with the content's quality (longer answers tend to be better, as in
    /// real votes), though quality itself ignores length.
    const LENGTH_CORRELATION: f64 = 0.7;
    /// Adversarial copies: quality lost along w, and surface change orthogonal to w.
    const ERROR: f64 = 1.0;
    const SURFACE: f64 = 3.0;

    /// A fresh response: standard normal content, length correlated with the content's quality.
    fn response(&self, rng: &mut Rng, items: &mut Vec<f32>, d: usize) -> usize {
        let start = items.len();
        items.extend((0..d).map(|_| rng.normal() as f32));
        let lin = self.linear(&items[start..]);
        let r = Self::LENGTH_CORRELATION;
        items[start + d - 1] = (r * lin + (1.0 - r * r).sqrt() * items[start + d - 1] as f64) as f32;
        items.len() / d - 1
    }

    /// The content's linear quality w·x_content.
    fn linear(&self, x: &[f32]) -> f64 {
        self.w.iter().zip(x).map(|(w, &v)| w * v as f64).sum()
    }

    fn quality(&self, x: &[f32]) -> f64 {
        self.linear(x) + (Self::OMEGA * x[self.w.len()] as f64).sin()
    }
}

/// WorldPM's setup: fresh responses per forum pair (so more data is also more responses), split
/// by `seed`; then the three test sets, appended after the forum pairs and drawn from a stream of
/// their own so they do not change with `n_pairs`.
fn worldpm(cfg: &ScenarioConfig, rng: &mut Rng, seed: u64) -> Result<PairDataset> {
    let d = cfg.dim;
    let content = d - 2;
    let mut world_rng = Rng::stream(seed, "worldpm-world");
    let mut w: Vec<f64> = (0..content).map(|_| world_rng.normal()).collect();
    let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    w.iter_mut().for_each(|x| *x /= norm);
    let world = WorldPm { w };
    let sigma = |z: f64| 1.0 / (1.0 + (-z).exp());
    let fresh = |rng: &mut Rng, items: &mut Vec<f32>| world.response(rng, items, d);
    let mut items = Vec::with_capacity((2 * cfg.n_pairs + 6 * ScenarioKind::WORLDPM_TEST_PAIRS) * d);
    let mut pairs = Vec::with_capacity(cfg.n_pairs + 3 * ScenarioKind::WORLDPM_TEST_PAIRS);
    for _ in 0..cfg.n_pairs {
        let (a, b) = (fresh(rng, &mut items), fresh(rng, &mut items));
        let p_a = sigma(WorldPm::K * (world.quality(&items[a * d..(a + 1) * d]) - world.quality(&items[b * d..(b + 1) * d])));
        pairs.push(if rng.uniform() < p_a { (a, b) } else { (b, a) });
    }
    let mut ds = PairDataset { dim: d, items, pairs, ..Default::default() };
    ds.split(cfg.eval_fraction, seed)?;

    let mut t = Rng::stream(seed, "worldpm-tests");
    let (items, pairs) = (&mut ds.items, &mut ds.pairs);
    let mut sets: Vec<(String, Vec<usize>)> = Vec::new();
    // Adversarial: the response against a corrupted copy of itself: a little worse in quality
    // (ERROR against w) and much changed on the surface (SURFACE along a random direction
    // orthogonal to w), so only a model that has the direction of quality right ranks it; the
    // original always wins.
    let mut set = Vec::new();
    for _ in 0..ScenarioKind::WORLDPM_TEST_PAIRS {
        let a = fresh(&mut t, items);
        let mut u: Vec<f64> = (0..content).map(|_| t.normal()).collect();
        let along: f64 = u.iter().zip(&world.w).map(|(u, w)| u * w).sum();
        u.iter_mut().zip(&world.w).for_each(|(u, w)| *u -= along * w);
        let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        let mut y: Vec<f32> = items[a * d..(a + 1) * d].to_vec();
        for j in 0..content {
            y[j] += (-WorldPm::ERROR * world.w[j] + WorldPm::SURFACE * u[j] / norm) as f32;
        }
        items.extend(y);
        set.push(pairs.len());
        pairs.push((a, items.len() / d - 1));
    }
    sets.push(("adversarial".into(), set));
    // Objective: the same response with its computed feature moved half a period, which flips the
    // sign of its quality term; kept when the gap is at least 1, the better one wins.
    let mut set = Vec::new();
    while set.len() < ScenarioKind::WORLDPM_TEST_PAIRS {
        let a = fresh(&mut t, items);
        let mut y: Vec<f32> = items[a * d..(a + 1) * d].to_vec();
        y[content] += (std::f64::consts::PI / WorldPm::OMEGA) as f32;
        let gap = world.quality(&items[a * d..(a + 1) * d]) - world.quality(&y);
        if gap.abs() < 1.0 {
            items.truncate(a * d);
            continue;
        }
        items.extend(y);
        let b = items.len() / d - 1;
        set.push(pairs.len());
        pairs.push(if gap > 0.0 { (a, b) } else { (b, a) });
    }
    sets.push(("objective".into(), set));
    // Subjective: two fresh responses labelled by a judge who likes length (the last feature) and
    // cannot do the computation (it sees only the content's linear quality).
    let mut set = Vec::new();
    for _ in 0..ScenarioKind::WORLDPM_TEST_PAIRS {
        let (a, b) = (fresh(&mut t, items), fresh(&mut t, items));
        let (xa, xb) = (&items[a * d..(a + 1) * d], &items[b * d..(b + 1) * d]);
        let z = WorldPm::K * (world.linear(xa) - world.linear(xb)) + WorldPm::STYLE * (xa[d - 1] - xb[d - 1]) as f64;
        set.push(pairs.len());
        pairs.push(if t.uniform() < sigma(z) { (a, b) } else { (b, a) });
    }
    sets.push(("subjective".into(), set));
    ds.test_sets = sets;
    ds.item_labels = (0..ds.n_items()).map(|i| format!("y{i}")).collect();
    Ok(ds)
}

/// `n_items` random segments of the standard gridworld and `n_pairs` labelled comparisons
/// (fewer when ties or undecided HERON pairs are dropped).
fn gridworld(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let world = crate::reward::trajectories::GridWorld::standard();
    let tp = world.label_pairs(cfg.n_items, cfg.n_pairs, cfg.trajectory_labels, rng);
    PairDataset {
        dim: tp.item_dim,
        item_labels: tp.segments.iter().map(|s| format!("s{}→s{}", s.start, s.end())).collect(),
        items: tp.items,
        pairs: tp.pairs,
        ..Default::default()
    }
}

/// Annotator strength for a utility gap: 1 "slightly better", 2 "better", 3 "much better".
fn strength_of(gap: f64) -> f32 {
    if gap < 0.5 {
        1.0
    } else if gap < 1.5 {
        2.0
    } else {
        3.0
    }
}

/// `linear` with a known fraction of training labels flipped; held-out labels stay clean so that
/// accuracy measures agreement with the true preference.
fn noisy(cfg: &ScenarioConfig, rng: &mut Rng, seed: u64) -> Result<PairDataset> {
    let mut ds = linear(cfg, rng);
    ds.split(cfg.eval_fraction, seed)?;
    ds.flipped = vec![false; ds.pairs.len()];
    let mut train = ds.train.clone();
    rng.shuffle(&mut train);
    let n_flip = (train.len() as f64 * cfg.flip).round() as usize;
    for &p in &train[..n_flip] {
        let (c, r) = ds.pairs[p];
        ds.pairs[p] = (r, c);
        ds.flipped[p] = true;
    }
    Ok(ds)
}

/// Plackett–Luce rankings over a hidden linear utility: repeatedly pick the next item with
/// probability ∝ exp(u / noise) among those left (the Gumbel-max view of PL).
fn rankings(cfg: &ScenarioConfig, rng: &mut Rng, seed: u64) -> PairDataset {
    let w = direction(rng.uniform() * 360.0);
    let items: Vec<f32> = (0..cfg.n_items * 2).map(|_| rng.normal() as f32).collect();
    let utility = |i: usize| w[0] * items[2 * i] as f64 + w[1] * items[2 * i + 1] as f64;
    let n_lists = (cfg.n_pairs / 4).max(2);
    let lists: Vec<Vec<usize>> = (0..n_lists)
        .map(|_| {
            let mut pool: Vec<usize> = (0..cfg.n_items).collect();
            rng.shuffle(&mut pool);
            let mut chosen: Vec<(f64, usize)> = pool[..cfg.list_len]
                .iter()
                .map(|&i| {
                    let gumbel = -(-(rng.uniform().max(1e-300)).ln()).ln();
                    (utility(i) / cfg.noise + gumbel, i)
                })
                .collect();
            chosen.sort_by(|a, b| b.0.total_cmp(&a.0));
            chosen.into_iter().map(|(_, i)| i).collect()
        })
        .collect();
    let mut order: Vec<usize> = (0..n_lists).collect();
    Rng::stream(seed, "split").shuffle(&mut order);
    let n_eval = ((n_lists as f64 * cfg.eval_fraction).round() as usize).min(n_lists - 1);
    let mut eval_lists = order[..n_eval].to_vec();
    let mut train_lists = order[n_eval..].to_vec();
    eval_lists.sort_unstable();
    train_lists.sort_unstable();
    let (mut pairs, mut train, mut eval) = (vec![], vec![], vec![]);
    let mut list_of_pair = vec![];
    for (l, list) in lists.iter().enumerate() {
        for a in 0..list.len() {
            for b in a + 1..list.len() {
                list_of_pair.push(l);
                pairs.push((list[a], list[b]));
            }
        }
    }
    for (p, l) in list_of_pair.iter().enumerate() {
        if eval_lists.binary_search(l).is_ok() { eval.push(p) } else { train.push(p) }
    }
    PairDataset {
        dim: 2,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        train,
        eval,
        pair_groups: list_of_pair,
        lists,
        train_lists,
        eval_lists,
        ..Default::default()
    }
}

fn mixture(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let users = ScenarioKind::MIXTURE_USERS;
    let w = direction(rng.uniform() * 360.0);
    let items: Vec<f32> = (0..cfg.n_items * 2).map(|_| rng.normal() as f32).collect();
    let utility = |i: usize| w[0] * items[2 * i] as f64 + w[1] * items[2 * i + 1] as f64;
    let (mut pairs, mut prompts, mut pair_groups) = (vec![], vec![], vec![]);
    for _ in 0..cfg.n_pairs {
        let (a, b) = distinct_pair(rng, cfg.n_items);
        let user = rng.below(users);
        let group = user % 2;
        let d = (utility(a) - utility(b)) * if group == 0 { 1.0 } else { -1.0 };
        let p_a = 1.0 / (1.0 + (-d / cfg.noise).exp());
        pairs.push(if rng.uniform() < p_a { (a, b) } else { (b, a) });
        prompts.extend((0..users).map(|u| if u == user { 1.0f32 } else { 0.0 }));
        pair_groups.push(group);
    }
    PairDataset {
        dim: 2,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        prompt_dim: users,
        prompts,
        pair_groups,
        ..Default::default()
    }
}

/// Unit vector at `deg` degrees.
fn direction(deg: f64) -> [f64; 2] {
    let t = deg.to_radians();
    [t.cos(), t.sin()]
}

/// `multi-objective` with `observed_dim`: the frequency of every encoding feature. All share it,
/// so none varies slowly enough along z to be a linear read-out of the objectives.
const ENCODING_FREQUENCY: f64 = 8.0;

fn multi_objective(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    // Hidden linear objectives over 2-D features, two 60° apart, more spread evenly over 150°:
    // neighbours conflict (different best responses) yet correlate (cos 60° = 0.5, cos 75° =
    // 0.26), like helpfulness and length in real ratings.
    let k = cfg.objectives;
    let step = if k == 2 { 60.0 } else { 150.0 / (k - 1) as f64 };
    let phi = rng.uniform() * 360.0;
    let w: Vec<[f64; 2]> = (0..k).map(|j| direction(phi + step * j as f64)).collect();
    let items: Vec<f32> = (0..cfg.n_items * 2).map(|_| rng.normal() as f32).collect();
    let truth = |i: usize, j: usize| w[j][0] * items[2 * i] as f64 + w[j][1] * items[2 * i + 1] as f64;
    let ratings: Vec<f32> = (0..cfg.n_items).flat_map(|i| (0..k).map(move |j| (i, j))).map(|(i, j)| (truth(i, j) + cfg.noise * rng.normal()) as f32).collect();
    // Two objectives: DPA's directions on the circle. More: each objective alone and all of them
    // equally (unit length, so the label noise is comparable).
    let users: Vec<Vec<f64>> = if k == 2 {
        ScenarioKind::USER_DIRECTIONS_DEG.iter().map(|&d| direction(d).to_vec()).collect()
    } else {
        let mut u: Vec<Vec<f64>> = (0..k).map(|j| (0..k).map(|i| if i == j { 1.0 } else { 0.0 }).collect()).collect();
        u.push(vec![1.0 / (k as f64).sqrt(); k]);
        u
    };
    let mut pairs = Vec::with_capacity(cfg.n_pairs);
    let mut prompts = Vec::with_capacity(cfg.n_pairs * k);
    for _ in 0..cfg.n_pairs {
        let (a, b) = distinct_pair(rng, cfg.n_items);
        let v = &users[rng.below(users.len())];
        let d: f64 = (0..k).map(|j| v[j] * (truth(a, j) - truth(b, j))).sum();
        let p_a = 1.0 / (1.0 + (-d / cfg.noise).exp());
        pairs.push(if rng.uniform() < p_a { (a, b) } else { (b, a) });
        prompts.extend(v.iter().map(|&x| x as f32));
    }
    // Drawn last, so the pairs and ratings are those of the plain scenario with the same seed.
    let (dim, items) = match cfg.observed_dim {
        0 => (2, items),
        n => {
            let a: Vec<f64> = (0..n).flat_map(|_| direction(rng.uniform() * 360.0).map(|c| ENCODING_FREQUENCY * c)).collect();
            let b: Vec<f64> = (0..n).map(|_| rng.uniform() * std::f64::consts::TAU).collect();
            let enc = items.chunks(2).flat_map(|z| (0..n).map(|o| (a[2 * o] * z[0] as f64 + a[2 * o + 1] * z[1] as f64 + b[o]).sin() as f32).collect::<Vec<_>>()).collect();
            (n, enc)
        }
    };
    PairDataset {
        dim,
        item_labels: (0..cfg.n_items).map(|i| format!("y{i}")).collect(),
        items,
        pairs,
        prompt_dim: k,
        prompts,
        ratings,
        n_objectives: k,
        ..Default::default()
    }
}

fn cyclic(cfg: &ScenarioConfig, rng: &mut Rng) -> PairDataset {
    let angles: Vec<f64> = (0..cfg.n_items).map(|_| rng.uniform() * std::f64::consts::TAU).collect();
    let items = angles.iter().flat_map(|t| [t.cos() as f32, t.sin() as f32]).collect();
    let min_sep = cfg.min_separation_deg.to_radians();
    let mut pairs = Vec::with_capacity(cfg.n_pairs);
    // Rejection-sample pairs far enough apart; with n_items ≥ 2 random angles this terminates
    // quickly unless the separation is close to 180°, so cap the attempts and say so.
    let mut attempts = 0usize;
    while pairs.len() < cfg.n_pairs && attempts < cfg.n_pairs * 1000 {
        attempts += 1;
        let (a, b) = distinct_pair(rng, cfg.n_items);
        // Counter-clockwise angle from a to b, in [0, 2π).
        let ccw = (angles[b] - angles[a]).rem_euclid(std::f64::consts::TAU);
        let sep = ccw.min(std::f64::consts::TAU - ccw);
        if sep < min_sep || sep >= std::f64::consts::PI - 1e-9 {
            continue;
        }
        pairs.push(if ccw < std::f64::consts::PI { (a, b) } else { (b, a) });
    }
    PairDataset {
        dim: 2,
        item_labels: angles.iter().map(|t| format!("{:.0}°", t.to_degrees())).collect(),
        items,
        pairs,
        ..Default::default()
    }
}
