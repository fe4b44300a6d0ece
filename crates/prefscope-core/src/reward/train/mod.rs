//! The run configuration and the one training loop that both front ends drive.
//!
//! [`Trainer::step`] does one AdamW step on a minibatch and returns a [`StepMetrics`]; it is
//! `async` because on WebGPU tensors can only be read back asynchronously. The CLI drives it with
//! a blocking executor, the page awaits it and yields to the browser between steps.
//!
//! * `config`: [`RunConfig`] and its parts, read from and written to TOML.
//! * `batch`: the dataset resident on the device, and minibatches gathered from it.
//! * `trainer`: [`Trainer`]: a run's model, optimiser and batch order.
//! * `step`: one step; the gradients come from one device, several, or several processes.
//! * `objective`: the per-model objective on a minibatch.
//! * `eval`: [`StepMetrics`], [`EvalMetrics`] and held-out evaluation.
//! * `resume`: the resume file that lets a killed run continue bit-identically.
//! * `run_loop`: [`RunLoop`], the interface every trainer is driven through.

mod batch;
mod config;
mod eval;
mod objective;
mod resume;
mod run_loop;
mod step;
mod trainer;
#[cfg(test)]
mod tests;

use batch::DeviceData;
use config::check_loss_against_data;
use eval::read;
use trainer::Best;
pub use config::{Listwise, LossConfig, RunConfig, TrainConfig};
pub use eval::{EvalMetrics, StepMetrics, evaluate, pair_logits, sign_accuracy};
#[cfg_attr(not(feature = "text"), allow(unused_imports))]
pub(crate) use resume::{check_saved_config, pack_resume, unpack_resume};
pub use run_loop::RunLoop;
pub use trainer::Trainer;
