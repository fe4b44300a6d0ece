//! The reward side: preference data over feature vectors, the reward and preference models, their
//! losses, the one training loop, evaluation reports and checkpoints.
//!
//! * [`data`]: preference pairs and deterministic splits.
//! * [`scenarios`]: the synthetic scenarios, each with a hidden truth to check claims against.
//! * [`embeddings`]: embedding files (text pairs embedded by a sentence encoder) as datasets.
//! * [`model`]: Bradley–Terry, GPM, multi-objective (DPA/ArmoRM), mixtures (MiCRo), regret.
//! * [`experts`]: DMoERM's double-layer mixture of experts: a task router, capability experts, aggregators.
//! * [`layers`]: the dense layers and MLPs the models are built from.
//! * [`few_shot`]: serving a new user from a few of their labels: VPL and the in-context model.
//! * [`attributes`]: PrefPalette's attribute attention: attribute predictors weighed per community.
//! * [`context`]: context-aware reward models (CARM) and inferring a hidden context from labels.
//! * [`loss`]: the pairwise and listwise losses and scores, as plain tensor functions.
//! * [`train`]: the run configuration, the trainer and its metrics stream.
//! * [`metrics`]: evaluation reports: accuracy with CI, calibration, length bias, RewardBench.
//! * [`trajectories`]: segment preferences in a gridworld: regret against partial return, HERON.
//! * [`checkpoint`]: self-describing safetensors checkpoints shared by the CLI and the page.

pub mod attributes;
pub mod checkpoint;
pub mod context;
pub mod data;
pub mod embeddings;
pub mod experts;
pub mod few_shot;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod scenarios;
pub mod train;
pub mod trajectories;
