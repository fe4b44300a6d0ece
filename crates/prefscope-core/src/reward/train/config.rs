//! What a user chooses for one run: the data, the model, the loss and the optimiser, as TOML.

use serde::{Deserialize, Serialize};

use crate::reward::data::PairDataset;
use crate::reward::scenarios::{ScenarioConfig, ScenarioKind};
use crate::runtime::precision::Precision;
use crate::reward::model::{ModelConfig, ModelKind};
use crate::{Error, Result, config_error};

pub(super) fn default_steps() -> usize {
    300
}
pub(super) fn default_batch() -> usize {
    128
}
pub(super) fn default_lr() -> f64 {
    0.01
}
pub(super) fn default_eval_every() -> usize {
    25
}

/// Variants of the pairwise objective (see [`crate::reward::loss::bradley_terry_loss`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Constant margin m subtracted from every logit: −log σ(ℓ − m).
    #[serde(default)]
    pub margin: f64,
    /// Label smoothing ε ∈ [0, 0.5): conservative labels, wrong with probability ε.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Bradley–Terry only: reward-centering coefficient, coef · mean((r_c + r_r)²).
    #[serde(default)]
    pub center_coef: f64,
    /// Use each pair's strength from the data as its margin (TRL's per-pair `margin` column,
    /// HelpSteer2's margin BT), on top of the constant `margin`.
    #[serde(default)]
    pub margin_from_data: bool,
    /// HelpSteer2's scaled BT: weight each pair's loss by its strength, −m · log σ(ℓ).
    #[serde(default)]
    pub scaled: bool,
    /// Bradley–Terry only: add coef · MSE(r, rating) on both responses' ratings (HelpSteer2's
    /// regression objective next to BT; with the multi-objective model and one objective the
    /// regression alone is the SteerLM-style regression head).
    #[serde(default)]
    pub regression_coef: f64,
    /// Bradley–Terry only: Eurus's L_DR next to the BT term, −log σ(r_c) − log σ(−r_r), so that
    /// good responses score above zero and bad ones below (BT alone leaves the zero free).
    #[serde(default)]
    pub dr: bool,
    /// Train on whole rankings instead of pairs (data with lists only).
    #[serde(default)]
    pub listwise: Option<Listwise>,
    /// Plackett–Luce: only the first `top_k` choices of each list count.
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// Listwise objectives over ranked lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listwise {
    /// −log of the Plackett–Luce probability of the observed ranking.
    PlackettLuce,
    /// RankList (see [`crate::reward::loss::ranklist_loss`]).
    RankList,
}

impl LossConfig {
    pub fn validate(&self) -> Result<()> {
        if !self.margin.is_finite() {
            return Err(config_error("train.loss.margin", "must be a finite number"));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(config_error("train.loss.label_smoothing", "must be in [0, 0.5)"));
        }
        if !(self.center_coef >= 0.0 && self.center_coef.is_finite()) {
            return Err(config_error("train.loss.center_coef", "must be ≥ 0"));
        }
        if !(self.regression_coef >= 0.0 && self.regression_coef.is_finite()) {
            return Err(config_error("train.loss.regression_coef", "must be ≥ 0"));
        }
        if self.top_k == Some(0) {
            return Err(config_error("train.loss.top_k", "must be at least 1"));
        }
        Ok(())
    }
}

/// Optimisation settings (AdamW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Passes over the training pairs (lists, for a listwise loss). When set, the run takes
    /// ⌈epochs × training pairs / batch⌉ steps instead of `steps`, so compute grows with the data
    /// (WorldPM's data sweeps train a fixed number of passes, not a fixed number of steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
    /// Pairs per minibatch (drawn without replacement within an epoch).
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Evaluate on the held-out pairs every this many steps (and after the last step).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Early stopping by restoring: keep the weights of the evaluation with the lowest held-out
    /// loss and end the run with them, so an over-long run reports its best point rather than
    /// its overfitted end (how data-limited scaling runs are measured, Kaplan et al. 2020 §3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_best: bool,
    #[serde(default)]
    pub loss: LossConfig,
    /// The number type of the forward and backward passes (`full`, or `bf16-mixed` /
    /// `f16-mixed` over f32 master weights on a GPU; see [`crate::runtime::precision`]).
    #[serde(default)]
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            epochs: None,
            batch: default_batch(),
            lr: default_lr(),
            weight_decay: 0.0,
            eval_every: default_eval_every(),
            keep_best: false,
            loss: LossConfig::default(),
            precision: Precision::Full,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(config_error("train.steps", "must be at least 1"));
        }
        if self.batch == 0 || self.batch > 1 << 24 {
            return Err(config_error("train.batch", "must be in 1..=16777216"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(config_error("train.lr", "must be a positive number"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(config_error("train.weight_decay", "must be ≥ 0"));
        }
        if self.eval_every == 0 {
            return Err(config_error("train.eval_every", "must be at least 1"));
        }
        if let Some(e) = self.epochs
            && !(e > 0.0 && e <= 1e6)
        {
            return Err(config_error("train.epochs", "must be in (0, 1e6]"));
        }
        self.loss.validate()
    }

    /// The steps a run over `units` training pairs (or lists) takes: `steps`, or `epochs` passes.
    pub fn steps_for(&self, units: usize) -> usize {
        match self.epochs {
            Some(e) => ((e * units as f64) / self.batch.min(units.max(1)) as f64).ceil().max(1.0) as usize,
            None => self.steps,
        }
    }
}

/// Everything a user chooses for one run. Serialised as `config.toml` in a run folder and as the
/// page's URL state; a run is reproducible from it alone.
///
/// serde rather than burn's `#[derive(Config)]`: a user's TOML needs serde's per-field defaults,
/// `deny_unknown_fields` and renames, and errors that name the file, line and key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds the data, its split, the initial weights and the batch order.
    #[serde(default)]
    pub seed: u64,
    pub scenario: ScenarioConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    /// Train on a pair-embedding file (`prefscope embed`) instead of the scenario's data; the
    /// split uses `scenario.eval_fraction` and the seed (by source line when the file has them,
    /// as text runs split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<std::path::PathBuf>,
}

impl RunConfig {
    pub fn new(scenario: ScenarioKind, model: ModelKind) -> Self {
        Self { seed: 0, scenario: ScenarioConfig::new(scenario), model: ModelConfig::new(model), train: TrainConfig::default(), embeddings: None }
    }

    /// The run's data: the embedding file split by seed, or the scenario built from the seed.
    /// What an epoch passes over: training lists for a listwise loss, training pairs otherwise.
    pub fn training_units(&self, ds: &PairDataset) -> usize {
        if self.train.loss.listwise.is_some() { ds.train_lists.len() } else { ds.train.len() }
    }

    pub fn dataset(&self) -> Result<PairDataset> {
        let Some(path) = &self.embeddings else { return self.scenario.build(self.seed) };
        let bytes = std::fs::read(path).map_err(|e| config_error("embeddings", format!("{}: {e}", path.display())))?;
        let ds = crate::reward::embeddings::read_pair_embeddings(&bytes).map_err(|e| config_error("embeddings", format!("{}: {e}", path.display())))?;
        self.split_embeddings(ds, &path.display().to_string())
    }

    /// An embedding file's pairs split as this run splits them: by `seed`, holding out
    /// `scenario.eval_fraction` (the CLI reads the file from `embeddings`, the page from an upload).
    pub fn split_embeddings(&self, mut ds: PairDataset, source: &str) -> Result<PairDataset> {
        ds.split(self.scenario.eval_fraction, self.seed)?;
        if ds.eval.is_empty() {
            return Err(config_error("scenario.eval_fraction", format!("{source} has too few pairs to hold any out")));
        }
        Ok(ds)
    }

    /// Parse TOML; errors name the source, the line and the offending key.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start).unwrap_or(0);
            let line = text[..start].matches('\n').count() + 1;
            let message = e.message().to_string();
            Error::Data { source_name: source_name.to_string(), line, field: toml_field(text, start, &message), message }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serialises")
    }

    pub fn validate(&self) -> Result<()> {
        self.scenario.validate()?;
        // Requirements on the data (prompt features for the gate or the router) are checked at init.
        self.model.validate()?;
        self.train.validate()
    }
}

/// The dotted key an error at byte `at` of a TOML text refers to: serde names unknown and missing
/// fields in backticks; otherwise take the key written on that line under the last `[table]`.
pub(super) fn toml_field(text: &str, at: usize, message: &str) -> String {
    let before = &text[..at.min(text.len())];
    let table = before
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .map(|t| format!("{}.", t.trim()))
        .unwrap_or_default();
    let line = text[before.rfind('\n').map_or(0, |i| i + 1)..].lines().next().unwrap_or("");
    let key = match message.split('`').nth(1) {
        Some(name) if message.contains("field") => name.to_string(),
        _ => line.split('=').next().unwrap_or("").trim().to_string(),
    };
    if key.is_empty() || key.starts_with('[') { "config".into() } else { format!("{table}{key}") }
}

/// Data-dependent checks of the loss options, naming the field.
pub(super) fn check_loss_against_data(config: &RunConfig, ds: &PairDataset) -> Result<()> {
    let lc = &config.train.loss;
    if (lc.margin_from_data || lc.scaled) && ds.strengths.is_empty() {
        let field = if lc.scaled { "train.loss.scaled" } else { "train.loss.margin_from_data" };
        return Err(config_error(field, "this data has no per-pair strengths (try `linear` or `noisy`)"));
    }
    if lc.regression_coef > 0.0 && (ds.n_objectives == 0 || config.model.kind != ModelKind::Bt) {
        return Err(config_error("train.loss.regression_coef", "needs a Bradley–Terry model and data with ratings (try `linear`)"));
    }
    if lc.dr && config.model.kind != ModelKind::Bt {
        return Err(config_error("train.loss.dr", "the direct reward term needs a scalar reward: use model `bt`"));
    }
    if lc.listwise.is_some() {
        if ds.lists.is_empty() || ds.train_lists.is_empty() {
            return Err(config_error("train.loss.listwise", "this data has no rankings (try `rankings`)"));
        }
        if config.model.kind != ModelKind::Bt {
            return Err(config_error("train.loss.listwise", "listwise losses need a scalar reward: use model `bt`"));
        }
        if ds.lists.iter().any(|l| l.len() != ds.lists[0].len()) {
            return Err(config_error("train.loss.listwise", "all lists must have the same length"));
        }
    }
    Ok(())
}
