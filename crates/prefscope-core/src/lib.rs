//! prefscope-core: the backend-generic heart of prefscope.
//!
//! Everything here runs on any burn backend (ndarray on the CPU, wgpu/WebGPU, CUDA) and knows
//! nothing about a front end: the CLI and the page both drive the same [`train::Trainer`] and
//! listen to the same [`train::StepMetrics`] stream.
//!
//! * [`data`]: preference pairs over feature vectors, deterministic splits, synthetic scenarios.
//! * [`model`]: Bradley–Terry and General Preference (GPM) models with their configs.
//! * [`landscape`]: loss landscapes: filter-normalised directions, trajectory PCA, batched grids.
//! * [`loss`]: the pairwise losses and scores, as plain tensor functions.
//! * [`train`]: the run configuration, the one training loop and its metrics.
//! * [`metrics`]: evaluation reports: accuracy with CI, calibration, length bias, RewardBench.
//! * [`policy`]: the policy side: the DPO family, the bandit, the tiny LM, online RLHF.
//! * [`noise`]: noisy labels: ensemble preference strength and collaborative reward modelling.
//! * [`precision`]: mixed precision: half-precision compute over full-precision master weights.
//! * [`grid`]: sweep grids over config keys: axes, every combination, each point's folder name.
//! * [`rank`]: maximum-likelihood item strengths from comparisons (Bradley–Terry).
//! * [`traj`]: trajectory-segment preferences in a gridworld: regret vs partial return, HERON labels.
//! * [`checkpoint`]: self-describing safetensors checkpoints shared by the CLI and the page.
//! * [`text`]: preference pairs as text: TRL standard/conversational and hh-rlhf readers, streamed.
//! * [`tfm`]: a causal transformer reward model on token ids (BT or GPM head).
//! * `textrm` (feature `text`): training the transformer RM on a pair file, tokenizer included.
//! * `minilm` (feature `text`): the pretrained all-MiniLM-L6-v2 sentence encoder, for heads on real text.
//! * [`rng`]: a small seeded generator that gives the same numbers on every target.
//! * [`seeds`]: claims over many seeds: seed lists, spreads, the exact binomial bound.

pub mod checkpoint;
pub mod data;
pub mod grid;
pub mod kernels;
pub mod landscape;
pub mod loss;
pub mod metrics;
#[cfg(feature = "text")]
pub mod minilm;
pub mod model;
pub mod noise;
pub mod policy;
pub mod precision;
pub mod probe;
pub mod rank;
pub mod rng;
pub mod scaling;
pub mod seeds;
pub mod text;
#[cfg(feature = "text")]
pub mod textrm;
pub mod tfm;
pub mod train;
pub mod traj;

pub use data::{PairDataset, ScenarioConfig, ScenarioKind};
pub use kernels::{AutodiffBackend, Backend};
pub use model::{ModelConfig, ModelKind, PreferenceModel};
pub use train::{LossConfig, RunConfig, StepMetrics, TrainConfig, Trainer};

/// Everything that can go wrong in the core, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent; names the field.
    #[error("invalid config: {field}: {message}")]
    Config { field: String, message: String },
    /// A data file could not be parsed; names the source, line and field.
    #[error("{source_name}:{line}: {field}: {message}")]
    Data { source_name: String, line: usize, field: String, message: String },
    /// The loss became NaN or infinite.
    #[error("non-finite loss ({value}) at step {step}: lower the learning rate or check the data")]
    NonFinite { step: usize, value: f32 },
    /// A checkpoint file is malformed or does not fit the model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The backend failed to execute or read back a tensor.
    #[error("backend error: {0}")]
    Backend(String),
    /// A multi-process step failed to exchange gradients with the other processes.
    #[error("multi-process training: {0}")]
    Collective(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn config_error(field: &str, message: impl Into<String>) -> Error {
    Error::Config { field: field.to_string(), message: message.into() }
}
