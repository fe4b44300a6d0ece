//! The page's settings and their URL form (`?scenario=cyclic&model=gpm&seed=0&steps=300…`).
//!
//! Plain Rust with no browser types, so it is unit-tested on the host.

use prefscope_core::{ModelKind, RunConfig, ScenarioKind};

/// Which backend the URL asks for (`?backend=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU when the browser offers an adapter, else the CPU with a visible notice.
    Auto,
    /// `?backend=cpu`: always the CPU (ndarray).
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

/// Everything the user picks on the page; round-trips through the query string.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub scenario: ScenarioKind,
    pub model: ModelKind,
    /// GPM only: unit-length embeddings (the core's `model.normalize`).
    pub normalize: bool,
    pub seed: u64,
    pub steps: usize,
    pub backend: BackendChoice,
    pub tab: Tab,
}

pub const MAX_STEPS: usize = 100_000;

impl Default for Settings {
    fn default() -> Self {
        let base = RunConfig::new(ScenarioKind::Cyclic, ModelKind::Gpm);
        Self {
            scenario: ScenarioKind::Cyclic,
            model: ModelKind::Gpm,
            normalize: base.model.normalize,
            seed: base.seed,
            steps: base.train.steps,
            backend: BackendChoice::Auto,
            tab: Tab::Reward,
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
                "normalize" | "normalise" => match value.as_str() {
                    "1" | "true" | "on" | "yes" => s.normalize = true,
                    "0" | "false" | "off" | "no" => s.normalize = false,
                    _ => warnings.push(format!("{key}: expected true or false, got `{value}`")),
                },
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
                _ => {}
            }
        }
        (s, warnings)
    }

    /// The canonical query string (starts with `?`); `normalize` and `backend` only when they
    /// differ from their defaults (true, auto).
    pub fn to_query(&self) -> String {
        let mut q = format!("?scenario={}&model={}", self.scenario.name(), self.model.name());
        if !self.normalize {
            q.push_str("&normalize=false");
        }
        q.push_str(&format!("&seed={}&steps={}", self.seed, self.steps));
        if self.backend != BackendChoice::Auto {
            q.push_str(&format!("&backend={}", self.backend.name()));
        }
        if self.tab == Tab::Policy {
            q.push_str("&tab=policy");
        }
        q
    }

    /// The core's run configuration for these settings.
    pub fn run_config(&self) -> RunConfig {
        let mut cfg = RunConfig::new(self.scenario, self.model);
        cfg.seed = self.seed;
        cfg.train.steps = self.steps;
        cfg.model.normalize = self.normalize;
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
        let (s, w) = Settings::from_query("?backend=cpu&scenario=cyclic-abcd&model=bt&seed=7&steps=50&normalize=false&x=1");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.backend, BackendChoice::Cpu);
        assert_eq!(s.scenario, ScenarioKind::CyclicAbcd);
        assert_eq!(s.model, ModelKind::Bt);
        assert_eq!((s.seed, s.steps, s.normalize), (7, 50, false));
        let cfg = s.run_config();
        assert_eq!((cfg.seed, cfg.train.steps, cfg.model.normalize), (7, 50, false));
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
                let s = Settings { scenario, model, normalize: model == ModelKind::Gpm, seed: 3, steps: 120, backend: BackendChoice::Cpu, tab };
                assert_eq!(Settings::from_query(&s.to_query()), (s, vec![]));
            }
        }
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode("cyclic%2Dabcd"), "cyclic-abcd");
        assert_eq!(decode("a+b%"), "a b%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
