//! The page's settings and their URL form (`?scenario=cyclic&model=gpm&seed=0&steps=300…`).
//!
//! Plain Rust with no browser types, so it is unit-tested on the host.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use prefscope_core::{ModelKind, RunConfig, ScenarioKind};
use serde::{Deserialize, Serialize};

/// Which backend the URL asks for (`?backend=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendChoice {
    /// WebGPU when the browser offers an adapter, else the CPU with a visible notice.
    Auto,
    /// `?backend=cpu`: always the CPU (burn-flex).
    Cpu,
    /// `?backend=webgpu`: WebGPU or an error, never a silent fallback.
    WebGpu,
}

impl BackendChoice {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::WebGpu => "webgpu",
        }
    }
}

/// Which tab is open (`?tab=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tab {
    /// Reward models trained on a scenario.
    #[default]
    Reward,
    /// The bandit policy demo of the DPO family.
    Policy,
}

/// The plane of the loss landscape (`?plane=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plane {
    /// Two filter-normalised random directions.
    #[default]
    Random,
    /// The top two principal directions of the training trajectory.
    Pca,
}

impl Plane {
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Pca => "pca",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "random" => Some(Self::Random),
            "pca" => Some(Self::Pca),
            _ => None,
        }
    }
}

/// The collapsible panels of the reward tab, in page order (`?closed=` lists the closed ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    Charts,
    Landscape,
    Dial,
    Embedding,
    Profiles,
    Surface,
}

impl Panel {
    pub const ALL: [Panel; 6] = [Self::Charts, Self::Landscape, Self::Dial, Self::Embedding, Self::Profiles, Self::Surface];

    pub fn name(self) -> &'static str {
        match self {
            Self::Charts => "charts",
            Self::Landscape => "landscape",
            Self::Dial => "dial",
            Self::Embedding => "embedding",
            Self::Profiles => "profiles",
            Self::Surface => "surface",
        }
    }
}

/// Everything the user picks on the page; round-trips through the query string.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub scenario: ScenarioKind,
    pub model: ModelKind,
    /// GPM only: unit-length embeddings (the core's `model.normalize`).
    pub normalize: bool,
    /// Bradley–Terry only: Eurus's direct reward term (the core's `train.loss.dr`).
    pub dr: bool,
    pub seed: u64,
    pub steps: usize,
    pub backend: BackendChoice,
    pub tab: Tab,
    /// AdamW learning rate (`train.lr`).
    pub lr: f64,
    /// Pairs per minibatch (`train.batch`).
    pub batch: usize,
    /// Label temperature of the scenario (`scenario.noise`).
    pub noise: f64,
    /// Number of labelled comparisons (`scenario.n_pairs`).
    pub pairs: usize,
    /// GPM blocks (`model.k`) and temperature (`model.tau`).
    pub k: usize,
    pub tau: f64,
    /// The preference direction θ of the multi-objective dial, in whole degrees, [0, 360).
    pub direction: u32,
    /// context-bt: which one-hot context the decision surface shows (`ctx`).
    pub context: usize,
    /// Hidden objectives of the multi-objective scenario and outputs of its model (`obj`).
    pub objectives: usize,
    /// few-shot-users: the labelled pairs each new user shows (`scenario.shots`, `shots`).
    pub shots: usize,
    /// The dial's simplex weights for three or more objectives, whole percent summing to 100
    /// (`w=50,30,20`); empty means equal weights.
    pub weights: Vec<u32>,
    /// Loss landscape: plane, grid points per side (odd, so the current weights are a grid
    /// point), log colour scale.
    pub plane: Plane,
    pub grid: usize,
    pub log_scale: bool,
    /// Panels the user has closed.
    pub closed: Vec<Panel>,
    /// The policy tab's β as its log-slider position x, β = 10^(x/10) (`?beta=` holds β).
    pub beta_x: i32,
    /// The online mode's proxy labels N (`labels`) and optimiser (`online`: best-of-n, rl or rloo).
    pub online_labels: usize,
    pub online_method: String,
}

pub const MAX_STEPS: usize = 100_000;
pub const LR: RangeInclusive<f64> = 1e-5..=1.0;
pub const BATCH: RangeInclusive<usize> = 1..=4096;
/// The online mode's optimisers, by URL name.
pub const ONLINE_METHODS: [(&str, &str); 3] = [("best-of-n", "best-of-n, n = 1 … 1024"), ("rl", "RL at decreasing β (RLOO's optimum)"), ("rloo", "RLOO live at β = 0.01, iteration by iteration")];
/// The online mode's proxy labels N.
pub const LABELS: RangeInclusive<usize> = 2..=10_000;
pub const NOISE: RangeInclusive<f64> = 0.01..=10.0;
pub const PAIRS: RangeInclusive<usize> = 10..=20_000;
pub const K: RangeInclusive<usize> = 1..=8;
pub const TAU: RangeInclusive<f64> = 0.01..=10.0;
pub const GRID: RangeInclusive<usize> = 5..=81;
pub const OBJECTIVES: RangeInclusive<usize> = 2..=8;
pub const SHOTS: RangeInclusive<usize> = 0..=ScenarioKind::CONTEXT_PAIRS;
/// The policy slider's positions: β from 0.05 to 10.
pub const BETA_X: RangeInclusive<i32> = -13..=10;

/// β at a slider position, to three significant digits (what the URL shows).
pub fn beta_of(x: i32) -> f64 {
    let b = 10f64.powf(x as f64 / 10.0);
    let mag = 10f64.powf(b.log10().floor() - 2.0);
    (b / mag).round() * mag
}

impl Default for Settings {
    fn default() -> Self {
        let base = RunConfig::new(ScenarioKind::Cyclic, ModelKind::Gpm);
        Self {
            scenario: ScenarioKind::Cyclic,
            model: ModelKind::Gpm,
            normalize: base.model.normalize,
            dr: base.train.loss.dr,
            seed: base.seed,
            steps: base.train.steps,
            backend: BackendChoice::Auto,
            tab: Tab::Reward,
            lr: base.train.lr,
            batch: base.train.batch,
            noise: base.scenario.noise,
            pairs: base.scenario.n_pairs,
            k: base.model.k,
            tau: base.model.tau,
            direction: 0,
            context: 0,
            objectives: 2,
            shots: base.scenario.shots,
            weights: vec![],
            plane: Plane::Random,
            grid: 41,
            log_scale: false,
            closed: vec![],
            beta_x: -3,
            online_labels: 300,
            online_method: "best-of-n".into(),
        }
    }
}

/// Parse `value` as a number within `range`, or warn and keep the default.
fn number<T: FromStr + PartialOrd + Display>(key: &str, value: &str, range: RangeInclusive<T>, warnings: &mut Vec<String>) -> Option<T> {
    match value.parse::<T>() {
        Ok(v) if range.contains(&v) => Some(v),
        _ => {
            warnings.push(format!("{key}: expected a number in {}..={}, got `{value}`", range.start(), range.end()));
            None
        }
    }
}

fn flag(key: &str, value: &str, warnings: &mut Vec<String>) -> Option<bool> {
    match value {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => {
            warnings.push(format!("{key}: expected true or false, got `{value}`"));
            None
        }
    }
}

impl Settings {
    /// Parse a query string (with or without the leading `?`). Unknown or malformed values keep
    /// their default and produce a warning for the page to show; unknown keys are ignored.
    pub fn from_query(query: &str) -> (Self, Vec<String>) {
        let mut s = Settings::default();
        let mut warnings = vec![];
        for part in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let (key, value) = (decode(key), decode(value));
            match key.as_str() {
                "scenario" => match ScenarioKind::parse(&value) {
                    Ok(k) => s.scenario = k,
                    Err(e) => warnings.push(e.to_string()),
                },
                "model" => match ModelKind::parse(&value) {
                    Ok(k) => s.model = k,
                    Err(e) => warnings.push(e.to_string()),
                },
                "normalize" | "normalise" => s.normalize = flag(&key, &value, &mut warnings).unwrap_or(s.normalize),
                "dr" => s.dr = flag(&key, &value, &mut warnings).unwrap_or(s.dr),
                "seed" => match value.parse() {
                    Ok(v) => s.seed = v,
                    Err(_) => warnings.push(format!("seed: expected a whole number ≥ 0, got `{value}`")),
                },
                "steps" => match value.parse::<usize>() {
                    Ok(v) if (1..=MAX_STEPS).contains(&v) => s.steps = v,
                    _ => warnings.push(format!("steps: expected a whole number in 1..={MAX_STEPS}, got `{value}`")),
                },
                "backend" => match value.as_str() {
                    "cpu" => s.backend = BackendChoice::Cpu,
                    "webgpu" | "gpu" => s.backend = BackendChoice::WebGpu,
                    "auto" | "" => s.backend = BackendChoice::Auto,
                    _ => warnings.push(format!("backend: expected cpu, webgpu or auto, got `{value}`")),
                },
                "tab" => match value.as_str() {
                    "reward" | "" => s.tab = Tab::Reward,
                    "policy" => s.tab = Tab::Policy,
                    _ => warnings.push(format!("tab: expected reward or policy, got `{value}`")),
                },
                "lr" => s.lr = number(&key, &value, LR, &mut warnings).unwrap_or(s.lr),
                "batch" => s.batch = number(&key, &value, BATCH, &mut warnings).unwrap_or(s.batch),
                "noise" => s.noise = number(&key, &value, NOISE, &mut warnings).unwrap_or(s.noise),
                "pairs" => s.pairs = number(&key, &value, PAIRS, &mut warnings).unwrap_or(s.pairs),
                "k" => s.k = number(&key, &value, K, &mut warnings).unwrap_or(s.k),
                "tau" => s.tau = number(&key, &value, TAU, &mut warnings).unwrap_or(s.tau),
                "dir" => s.direction = number(&key, &value, 0..=359, &mut warnings).unwrap_or(s.direction),
                "ctx" => s.context = number(&key, &value, 0..=4095, &mut warnings).unwrap_or(s.context),
                "obj" => s.objectives = number(&key, &value, OBJECTIVES, &mut warnings).unwrap_or(s.objectives),
                "shots" => s.shots = number(&key, &value, SHOTS, &mut warnings).unwrap_or(s.shots),
                "w" => match value.split(',').map(str::parse::<u32>).collect::<Result<Vec<_>, _>>() {
                    Ok(w) if w.len() >= 2 && w.iter().sum::<u32>() == 100 => s.weights = w,
                    _ => warnings.push(format!("w: expected whole-percent weights summing to 100 (e.g. 50,30,20), got `{value}`")),
                },
                "plane" => match Plane::parse(&value) {
                    Some(p) => s.plane = p,
                    None => warnings.push(format!("plane: expected random or pca, got `{value}`")),
                },
                "grid" => match number(&key, &value, GRID, &mut warnings) {
                    Some(n) if n % 2 == 1 => s.grid = n,
                    Some(n) => warnings.push(format!("grid: expected an odd number (the centre is a grid point), got {n}")),
                    None => {}
                },
                "beta" => match value.parse::<f64>() {
                    Ok(b) if b > 0.0 && BETA_X.contains(&((10.0 * b.log10()).round() as i32)) => s.beta_x = (10.0 * b.log10()).round() as i32,
                    _ => warnings.push(format!("beta: expected a number in {}..={}, got `{value}`", beta_of(*BETA_X.start()), beta_of(*BETA_X.end()))),
                },
                "log" => s.log_scale = flag(&key, &value, &mut warnings).unwrap_or(s.log_scale),
                "labels" => {
                    if let Some(n) = number(&key, &value, LABELS, &mut warnings) {
                        s.online_labels = n;
                    }
                }
                "online" => match ONLINE_METHODS.iter().find(|(k, _)| *k == value) {
                    Some((k, _)) => s.online_method = k.to_string(),
                    None => warnings.push(format!("online: expected best-of-n, rl or rloo, got `{value}`")),
                },
                "closed" => {
                    s.closed.clear();
                    for name in value.split(',').filter(|n| !n.is_empty()) {
                        match Panel::ALL.into_iter().find(|p| p.name() == name) {
                            Some(p) if !s.closed.contains(&p) => s.closed.push(p),
                            Some(_) => {}
                            None => warnings.push(format!("closed: unknown panel `{name}`")),
                        }
                    }
                }
                _ => {}
            }
        }
        (s, warnings)
    }

    /// The canonical query string (starts with `?`); settings other than scenario, model, seed
    /// and steps only when they differ from their defaults, so links stay short.
    pub fn to_query(&self) -> String {
        let d = Settings::default();
        let mut q = format!("?scenario={}&model={}", self.scenario.name(), self.model.name());
        if self.normalize != d.normalize {
            q.push_str(&format!("&normalize={}", self.normalize));
        }
        if self.dr != d.dr {
            q.push_str(&format!("&dr={}", self.dr));
        }
        q.push_str(&format!("&seed={}&steps={}", self.seed, self.steps));
        if self.backend != BackendChoice::Auto {
            q.push_str(&format!("&backend={}", self.backend.name()));
        }
        if self.tab == Tab::Policy {
            q.push_str("&tab=policy");
        }
        let mut extra = |key: &str, value: String, default: String| {
            if value != default {
                q.push_str(&format!("&{key}={value}"));
            }
        };
        extra("lr", self.lr.to_string(), d.lr.to_string());
        extra("batch", self.batch.to_string(), d.batch.to_string());
        extra("noise", self.noise.to_string(), d.noise.to_string());
        extra("pairs", self.pairs.to_string(), d.pairs.to_string());
        extra("k", self.k.to_string(), d.k.to_string());
        extra("tau", self.tau.to_string(), d.tau.to_string());
        extra("dir", self.direction.to_string(), d.direction.to_string());
        extra("ctx", self.context.to_string(), d.context.to_string());
        extra("obj", self.objectives.to_string(), d.objectives.to_string());
        extra("shots", self.shots.to_string(), d.shots.to_string());
        extra("w", self.weights.iter().map(u32::to_string).collect::<Vec<_>>().join(","), String::new());
        extra("plane", self.plane.name().into(), d.plane.name().into());
        extra("grid", self.grid.to_string(), d.grid.to_string());
        extra("log", self.log_scale.to_string(), d.log_scale.to_string());
        extra("beta", beta_of(self.beta_x).to_string(), beta_of(d.beta_x).to_string());
        extra("labels", self.online_labels.to_string(), d.online_labels.to_string());
        extra("online", self.online_method.clone(), d.online_method.clone());
        let closed: Vec<&str> = Panel::ALL.into_iter().filter(|p| self.closed.contains(p)).map(Panel::name).collect();
        extra("closed", closed.join(","), String::new());
        q
    }

    pub fn is_open(&self, panel: Panel) -> bool {
        !self.closed.contains(&panel)
    }

    /// Open or close a panel, keeping `closed` in page order so the URL is canonical.
    pub fn set_open(&mut self, panel: Panel, open: bool) {
        self.closed.retain(|&p| p != panel);
        if !open {
            self.closed.push(panel);
            self.closed.sort_by_key(|p| Panel::ALL.iter().position(|q| q == p));
        }
    }

    /// The dial's direction as a unit vector v = (cos θ, sin θ).
    pub fn direction_vector(&self) -> [f64; 2] {
        let t = (self.direction as f64).to_radians();
        [t.cos(), t.sin()]
    }

    /// What the multi-objective score weighs `k` rewards by: the dial's unit vector for two, the
    /// simplex weights (fractions summing to 1) for more.
    pub fn score_vector(&self, k: usize) -> Vec<f64> {
        if k <= 2 {
            return self.direction_vector().to_vec();
        }
        crate::dial::fractions(&crate::dial::weights_or_equal(&self.weights, k))
    }

    /// What the decision surface weighs a field of `k` outputs by: for context-bt the chosen
    /// context, one-hot (the field holds r(c, x) for every context); otherwise the dial's v.
    pub fn surface_vector(&self, k: usize) -> Vec<f64> {
        if self.model == ModelKind::ContextBt {
            return (0..k).map(|j| if j == self.context { 1.0 } else { 0.0 }).collect();
        }
        self.score_vector(k)
    }

    /// The same page on the CPU backend: where a fatal GPU error sends the user.
    pub fn cpu_fallback_query(query: &str) -> String {
        let (mut s, _) = Settings::from_query(query);
        s.backend = BackendChoice::Cpu;
        s.to_query()
    }

    /// The core's run configuration for these settings.
    pub fn run_config(&self) -> RunConfig {
        let mut cfg = RunConfig::new(self.scenario, self.model);
        cfg.seed = self.seed;
        cfg.train.steps = self.steps;
        cfg.model.normalize = self.normalize;
        // The term needs a scalar reward: the page offers it for Bradley–Terry only.
        cfg.train.loss.dr = self.dr && self.model == ModelKind::Bt;
        cfg.train.lr = self.lr;
        cfg.train.batch = self.batch;
        cfg.scenario.noise = self.noise;
        cfg.scenario.n_pairs = self.pairs;
        cfg.model.k = self.k;
        cfg.model.tau = self.tau;
        cfg.scenario.objectives = self.objectives;
        cfg.model.objectives = self.objectives;
        // Only few-shot-users has the key (the core refuses it elsewhere).
        if self.scenario == ScenarioKind::FewShotUsers {
            cfg.scenario.shots = self.shots;
        }
        cfg
    }
}

/// Percent-decoding for query components (`+` is a space); invalid escapes are kept verbatim.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_cyclic_gpm_showcase() {
        let (s, w) = Settings::from_query("");
        assert!(w.is_empty());
        assert_eq!(s, Settings::default());
        assert_eq!((s.scenario, s.model, s.seed, s.steps), (ScenarioKind::Cyclic, ModelKind::Gpm, 0, 300));
    }

    #[test]
    fn parses_every_setting() {
        let (s, w) = Settings::from_query("?backend=cpu&scenario=cyclic-abcd&model=bt&seed=7&steps=50&normalize=true&dr=true&x=1");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.backend, BackendChoice::Cpu);
        assert_eq!(s.scenario, ScenarioKind::CyclicAbcd);
        assert_eq!(s.model, ModelKind::Bt);
        assert_eq!((s.seed, s.steps, s.normalize), (7, 50, true));
        let cfg = s.run_config();
        assert_eq!((cfg.seed, cfg.train.steps, cfg.model.normalize, cfg.train.loss.dr), (7, 50, true, true));
        assert!(s.to_query().contains("&dr=true"), "{}", s.to_query());
        // On a model without a scalar reward the setting is kept but not applied.
        let (s, _) = Settings::from_query("?model=gpm&dr=true");
        assert!(s.dr && !s.run_config().train.loss.dr);
        assert_eq!(Settings::from_query("backend=webgpu").0.backend, BackendChoice::WebGpu);
    }

    #[test]
    fn bad_values_warn_and_keep_defaults() {
        let (s, w) = Settings::from_query("scenario=circle&steps=0&seed=-1&backend=tpu&normalize=maybe&tab=values");
        assert_eq!(s, Settings::default());
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(w[0].contains("circle"));
        assert!(w[1].starts_with("steps"));
    }

    #[test]
    fn query_round_trips() {
        for scenario in ScenarioKind::ALL {
            for model in ModelKind::ALL {
                let tab = if model == ModelKind::Bt { Tab::Policy } else { Tab::Reward };
                let s = Settings { scenario, model, normalize: model == ModelKind::Gpm, seed: 3, steps: 120, backend: BackendChoice::Cpu, tab, ..Settings::default() };
                assert_eq!(Settings::from_query(&s.to_query()), (s, vec![]));
            }
        }
    }

    #[test]
    fn hyper_parameters_and_views_round_trip_and_reach_the_run_config() {
        let q = "?scenario=multi-objective&model=multi-objective&seed=2&steps=80&lr=0.003&batch=64&noise=0.25&pairs=500&k=3&tau=0.5&dir=90&plane=pca&grid=21&log=true&closed=charts,surface";
        let (s, w) = Settings::from_query(q);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s.lr, s.batch, s.noise, s.pairs, s.k, s.tau), (0.003, 64, 0.25, 500, 3, 0.5));
        assert_eq!((s.direction, s.plane, s.grid, s.log_scale), (90, Plane::Pca, 21, true));
        assert_eq!(s.closed, vec![Panel::Charts, Panel::Surface]);
        assert!(!s.is_open(Panel::Charts) && s.is_open(Panel::Landscape));
        assert_eq!(s.to_query(), q, "canonical order, defaults left out");
        let cfg = s.run_config();
        assert_eq!((cfg.train.lr, cfg.train.batch, cfg.scenario.noise, cfg.scenario.n_pairs, cfg.model.k, cfg.model.tau), (0.003, 64, 0.25, 500, 3, 0.5));
        let v = s.direction_vector();
        assert!(v[0].abs() < 1e-12 && (v[1] - 1.0).abs() < 1e-12);
        // Defaults stay out of the URL.
        assert_eq!(Settings::default().to_query(), "?scenario=cyclic&model=gpm&seed=0&steps=300");
    }

    #[test]
    fn shots_round_trip_and_reach_few_shot_users_only() {
        let s = Settings::from_query("?scenario=few-shot-users&model=in-context&shots=2").0;
        assert_eq!((s.shots, s.run_config().scenario.shots), (2, 2));
        assert_eq!(Settings::from_query(&s.to_query()).0.shots, 2);
        assert!(s.run_config().validate().is_ok());
        // Elsewhere the key stays at its default, so the config stays valid.
        let other = Settings::from_query("?scenario=linear&shots=2").0;
        assert_eq!(other.run_config().scenario.shots, ScenarioKind::CONTEXT_PAIRS);
        assert!(other.run_config().validate().is_ok());
        let (_, warnings) = Settings::from_query("?shots=9");
        assert!(warnings.iter().any(|w| w.starts_with("shots:")), "{warnings:?}");
    }

    #[test]
    fn objectives_and_simplex_weights_round_trip_and_reach_the_run_config() {
        let q = "?scenario=multi-objective&model=multi-objective&seed=0&steps=300&obj=3&w=50,30,20";
        let (s, w) = Settings::from_query(q);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s.objectives, s.weights.as_slice()), (3, [50, 30, 20].as_slice()));
        assert_eq!(s.to_query(), q);
        let cfg = s.run_config();
        assert_eq!((cfg.scenario.objectives, cfg.model.objectives), (3, 3));
        let (s, w) = Settings::from_query("obj=9&w=50,30&w=a,b");
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn the_cpu_fallback_keeps_every_setting() {
        let q = "?scenario=cyclic&model=gpm&seed=4&steps=5000&backend=webgpu&lr=0.003&closed=charts";
        assert_eq!(Settings::cpu_fallback_query(q), "?scenario=cyclic&model=gpm&seed=4&steps=5000&backend=cpu&lr=0.003&closed=charts");
        assert_eq!(Settings::cpu_fallback_query(""), "?scenario=cyclic&model=gpm&seed=0&steps=300&backend=cpu");
    }

    #[test]
    fn out_of_range_views_warn() {
        let (s, w) = Settings::from_query("lr=0&batch=0&k=99&dir=360&grid=40&plane=hessian&log=2&closed=charts,nope,charts");
        assert_eq!(w.len(), 8, "{w:?}");
        assert!(w.iter().any(|m| m.contains("odd")), "{w:?}");
        assert_eq!(s.closed, vec![Panel::Charts], "duplicates collapse, unknown names warn");
        assert_eq!(Settings { closed: vec![], ..s }, Settings::default());
    }

    #[test]
    fn beta_round_trips_at_every_slider_position() {
        for x in BETA_X {
            let s = Settings { beta_x: x, tab: Tab::Policy, ..Settings::default() };
            assert_eq!(Settings::from_query(&s.to_query()), (s, vec![]), "x = {x}");
        }
        assert_eq!(Settings::from_query("beta=0.1").0.beta_x, -10);
        let (s, w) = Settings::from_query("tab=policy&labels=30&online=rl");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s.online_labels, s.online_method.as_str()), (30, "rl"));
        assert_eq!(Settings::from_query(&s.to_query()), (s, vec![]));
        let (_, w) = Settings::from_query("labels=1&online=ppo");
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(Settings::from_query("beta=100").1.len(), 1);
    }

    #[test]
    fn panels_toggle_in_page_order() {
        let mut s = Settings::default();
        s.set_open(Panel::Surface, false);
        s.set_open(Panel::Charts, false);
        assert_eq!(s.closed, vec![Panel::Charts, Panel::Surface]);
        s.set_open(Panel::Charts, true);
        assert_eq!(s.to_query(), "?scenario=cyclic&model=gpm&seed=0&steps=300&closed=surface");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode("cyclic%2Dabcd"), "cyclic-abcd");
        assert_eq!(decode("a+b%"), "a b%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
