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
}

/// Train the bandit (in the worker).
pub fn train(loss: &str, beta: f64, direction: Option<u32>, use_weighting: bool) -> Result<Run, String> {
    // Names come from the core's table (the menu lists its bandit entries), so build cannot miss.
    let mut cfg = BanditConfig::new(build(loss, &LossSettings::new(beta)).map_err(|e| e.to_string())?);
    cfg.steps = STEPS;
    cfg.use_weighting = use_weighting;
    cfg.rewards = direction.map(|d| directed(&BANDIT_OBJECTIVES, unit(d)));
    let (summary, snapshots) = train_bandit_recorded::<CpuBackend>(&cfg, &cpu_device(), SNAPSHOT_EVERY, |_, _| {}).map_err(|e| e.to_string())?;
    Ok(Run { summary, snapshots, beta, direction })
}

/// v = (cos θ, sin θ), as the dial makes it.
fn unit(deg: u32) -> [f64; 2] {
    let t = (deg as f64).to_radians();
    [t.cos(), t.sin()]
}

