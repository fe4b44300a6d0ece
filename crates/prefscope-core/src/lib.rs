//! prefscope-core: the backend-generic heart of prefscope.
//!
//! Everything here runs on any burn backend (the CPU, wgpu/WebGPU, CUDA) and knows nothing about a
//! front end: the CLI and the page both drive the same [`Trainer`] and listen to the same
//! [`StepMetrics`] stream. The folders are layers; each imports only from those above it here:
//!
//! * [`runtime`]: backend traits, fused kernels, mixed precision, the seeded generator.
//! * [`reward`]: preference data, the reward models and their losses, the trainer, evaluation,
//!   checkpoints: the spine.
//! * [`text`]: preferences over real text: readers, the transformer RM and its trainer, MiniLM.
//! * [`policy`]: what a reward model is for: the DPO family, the bandit, the tiny LM, online RLHF,
//!   over-optimisation.
//! * [`studies`]: experiments over many runs or inside one: landscapes, scaling, probes, noisy
//!   labels, rankings, sweep grids, claims over seeds.

pub mod runtime;
pub mod reward;
pub mod text;
pub mod policy;
pub mod studies;

pub use reward::data::PairDataset;
pub use reward::scenarios::{ScenarioConfig, ScenarioKind};
pub use reward::model::{ModelConfig, ModelKind, PreferenceModel};
pub use reward::train::{LossConfig, RunConfig, StepMetrics, TrainConfig, Trainer};
pub use runtime::kernels::{AutodiffBackend, Backend};

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
