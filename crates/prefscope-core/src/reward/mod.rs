//! The reward side: preference data over feature vectors, the reward and preference models, their
//! losses, the one training loop, evaluation reports and checkpoints.
//!
//! * [`data`]: preference pairs, deterministic splits, the synthetic scenarios, embedding files.
//! * [`model`]: Bradley–Terry, GPM, multi-objective (DPA/ArmoRM), mixtures (MiCRo), VPL, regret.
//! * [`loss`]: the pairwise and listwise losses and scores, as plain tensor functions.
//! * [`train`]: the run configuration, the trainer and its metrics stream.
//! * [`metrics`]: evaluation reports: accuracy with CI, calibration, length bias, RewardBench.
//! * [`checkpoint`]: self-describing safetensors checkpoints shared by the CLI and the page.
//! * [`embeddings`]: embedding files (text pairs embedded by a sentence encoder) as datasets.

pub mod checkpoint;
pub mod data;
pub mod embeddings;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod train;
