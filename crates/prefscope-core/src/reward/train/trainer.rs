//! The trainer: one run's dataset, model, optimiser and batch order.

use burn::optim::{AdamW, AdamWConfig, adaptor::OptimizerAdaptor};
use crate::runtime::kernels::AutodiffBackend;

use crate::reward::data::PairDataset;
use crate::runtime::precision::{Autocast, LossScaler};
use crate::reward::model::{ModelKind, PreferenceModel};
use crate::runtime::rng::Rng;
use crate::{Result, config_error};
use super::*;

/// One training run: dataset, model, optimiser and batch order, advanced one step at a time.
pub struct Trainer<B: AutodiffBackend> {
    pub config: RunConfig,
    pub dataset: PairDataset,
    pub(super) model: Option<PreferenceModel<B>>,
    pub(super) optim: OptimizerAdaptor<AdamW, PreferenceModel<B>, B>,
    pub(super) data: DeviceData<B>,
    pub(super) device: B::Device,
    /// Copies of the data on the other devices of a data-parallel run (see `step_parallel`).
    pub(super) replicas: Vec<(B::Device, DeviceData<B>)>,
    pub(super) batch_rng: Rng,
    pub(super) order: Vec<usize>,
    pub(super) cursor: usize,
    pub(super) step: usize,
    /// Casts between the master weights and the compute type (identity at full precision).
    pub(super) autocast: Autocast,
    /// Dynamic loss scaling (f16 compute only).
    pub(super) scaler: Option<LossScaler>,
    /// With `train.keep_best`: the best evaluation so far (its step and held-out loss) and its weights.
    pub(super) best: Option<Best<B>>,
}

pub(super) struct Best<B: AutodiffBackend> {
    pub(super) step: usize,
    pub(super) loss: f32,
    pub(super) model: PreferenceModel<B>,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Build the scenario named in the config and a fresh model.
    pub fn new(config: RunConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let dataset = config.dataset()?;
        Self::with_dataset(config, dataset, device)
    }

    pub fn with_dataset(mut config: RunConfig, dataset: PairDataset, device: &B::Device) -> Result<Self> {
        config.train.validate()?;
        if dataset.train.is_empty() {
            return Err(config_error("scenario", "the training split is empty"));
        }
        // From here on `steps` is the run's length, whichever way it was given.
        config.train.steps = config.train.steps_for(config.training_units(&dataset));
        if config.model.kind == ModelKind::MultiObjective && dataset.n_objectives != config.model.objectives {
            return Err(config_error(
                "model.kind",
                format!(
                    "the multi-objective model learns {} attribute ratings, but this data has {} (use the multi-objective scenario)",
                    config.model.objectives, dataset.n_objectives
                ),
            ));
        }
        if config.model.kind == ModelKind::ExpertMixture {
            let tasks = dataset.pair_groups.iter().max().map_or(0, |&t| t + 1);
            if dataset.pair_groups.len() != dataset.pairs.len() || dataset.n_objectives != config.model.objectives || tasks > config.model.heads {
                return Err(config_error(
                    "model.kind",
                    format!(
                        "expert-mixture needs each pair's task and per-capability ratings: {} tasks and {} capabilities in the model, this data has {tasks} tasks and {} rated capabilities (try `capabilities`, or set model.heads and model.objectives)",
                        config.model.heads, config.model.objectives, dataset.n_objectives
                    ),
                ));
            }
        }
        if config.model.kind == ModelKind::AttributeAttention && dataset.n_objectives != config.model.objectives {
            return Err(config_error(
                "model.objectives",
                format!(
                    "the attribute-attention model predicts {} attributes, but this data rates {} (set model.objectives to it; `communities` rates 6)",
                    config.model.objectives, dataset.n_objectives
                ),
            ));
        }
        check_loss_against_data(&config, &dataset)?;
        let model = config.model.init::<B>(dataset.dim, dataset.prompt_dim, config.seed, device)?;
        let optim = AdamWConfig::new().with_weight_decay(config.train.weight_decay as f32).init();
        let data = DeviceData::new(&dataset, device);
        let autocast = Autocast::new::<B>(config.train.precision, device)?;
        Ok(Self {
            autocast,
            scaler: config.train.precision.loss_scaling().then(LossScaler::default),
            best: None,
            batch_rng: Rng::stream(config.seed, "batches"),
            order: vec![],
            cursor: 0,
            step: 0,
            model: Some(model),
            optim,
            data,
            replicas: vec![],
            device: device.clone(),
            config,
            dataset,
        })
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.config.train.steps
    }

    pub fn model(&self) -> &PreferenceModel<B> {
        self.model.as_ref().expect("model is only taken inside step")
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The next minibatch: an epoch-wise shuffle of the training pairs (of the training lists
    /// for a listwise loss).
    pub fn next_batch(&mut self) -> Vec<usize> {
        let units = if self.config.train.loss.listwise.is_some() { &self.dataset.train_lists } else { &self.dataset.train };
        let n = self.config.train.batch.min(units.len());
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.cursor >= self.order.len() {
                self.order = if self.config.train.loss.listwise.is_some() { self.dataset.train_lists.clone() } else { self.dataset.train.clone() };
                self.batch_rng.shuffle(&mut self.order);
                self.cursor = 0;
            }
            out.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    /// The step at which a gated multi-objective model (ArmoRM) switches from stage 1 (regression
    /// on ratings) to stage 2 (verbosity transform fixed, gate trained on preferences).
    pub fn armo_stage_two(&self) -> usize {
        self.config.train.steps / 2
    }
}
