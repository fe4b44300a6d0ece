//! The Policy tab's bandit run, as the compute worker trains it: the core's
//! `train_bandit_recorded` on the CPU backend, with snapshots every few steps for the replay slider.

use serde::{Deserialize, Serialize};

use crate::backend::{CpuBackend, cpu_device};
use crate::dial::{BANDIT_OBJECTIVES, directed};
use prefscope_core::policy::bandit::{BanditConfig, BanditSummary, train_bandit_recorded};
use prefscope_core::policy::losses::{LossSettings, build};

pub(crate) const STEPS: usize = 1500;
const SNAPSHOT_EVERY: usize = 25;

/// A finished bandit run.
#[derive(PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub(crate) summary: BanditSummary,
    pub(crate) snapshots: Vec<(usize, Vec<f64>)>,
    pub(crate) beta: f64,
    /// The direction (degrees) of a two-objective run.
    pub(crate) direction: Option<u32>,
    /// MODPO's weight on the preference reward, for a MODPO run.
    pub(crate) modpo_w1: Option<f64>,
}

/// Train the bandit (in the worker).
pub fn train(loss: &str, beta: f64, direction: Option<u32>, use_weighting: bool, modpo_w1: f64) -> Result<Run, String> {
    let mut settings = LossSettings::new(beta);
    let modpo_w1 = (loss == "modpo").then_some(modpo_w1);
    settings.weights = modpo_w1.map(|w| vec![w, 1.0 - w]);
    // Names come from the core's table (the menu lists its bandit entries), so build cannot miss.
    let mut cfg = BanditConfig::new(build(loss, &settings).map_err(|e| e.to_string())?);
    cfg.steps = STEPS;
    cfg.use_weighting = use_weighting;
    cfg.rewards = direction.map(|d| directed(&BANDIT_OBJECTIVES, unit(d)));
    let (summary, snapshots) = train_bandit_recorded::<CpuBackend>(&cfg, &cpu_device(), SNAPSHOT_EVERY, |_, _| {}).map_err(|e| e.to_string())?;
    Ok(Run { summary, snapshots, beta, direction, modpo_w1 })
}

/// v = (cos θ, sin θ), as the dial makes it.
fn unit(deg: u32) -> [f64; 2] {
    let t = (deg as f64).to_radians();
    [t.cos(), t.sin()]
}

