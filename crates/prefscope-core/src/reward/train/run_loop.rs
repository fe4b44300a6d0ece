//! The one interface a run is driven through, whatever trains it: the feature-vector
//! [`Trainer`] and the text trainer implement it, and so can a front end's wrapper that spreads a
//! trainer's steps over devices or processes. The CLI's run-folder loop is written against it.

use std::future::Future;

use crate::reward::train::{StepMetrics, Trainer};
use crate::runtime::kernels::AutodiffBackend;
use crate::Result;

pub trait RunLoop {
    /// One optimiser step. A future because on WebGPU tensors are read back asynchronously; a
    /// native driver blocks on it.
    fn step(&mut self) -> impl Future<Output = Result<StepMetrics>>;
    fn is_done(&self) -> bool;
    fn steps_done(&self) -> usize;
    /// The current weights as a checkpoint file.
    fn checkpoint_bytes(&self) -> Result<Vec<u8>>;
    /// Everything needed to continue bit-identically (see [`Trainer::resume_bytes`]).
    fn resume_bytes(&self) -> Result<Vec<u8>>;
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}

impl<B: AutodiffBackend> RunLoop for Trainer<B> {
    fn step(&mut self) -> impl Future<Output = Result<StepMetrics>> {
        Trainer::step(self)
    }
    fn is_done(&self) -> bool {
        Trainer::is_done(self)
    }
    fn steps_done(&self) -> usize {
        Trainer::steps_done(self)
    }
    fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        Trainer::checkpoint_bytes(self)
    }
    fn resume_bytes(&self) -> Result<Vec<u8>> {
        Trainer::resume_bytes(self)
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        Trainer::restore(self, bytes)
    }
}
