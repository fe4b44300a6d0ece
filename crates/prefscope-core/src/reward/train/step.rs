//! One optimiser step, on one device, on several devices, or as one rank of several processes:
//! one skeleton (`begin_step`, a gradient phase, `finish_step`) with three gradient phases.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use crate::runtime::kernels::AutodiffBackend;
use burn::tensor::Tensor;

use crate::reward::loss::pairwise_accuracy;
use crate::reward::model::PreferenceModel;
use crate::runtime::precision;
use crate::{Error, Result, config_error};
use super::*;

/// The gradients a step applies, in the form its optimiser step takes.
enum StepGradients {
    /// One device's (or the all-reduced sum over processes): `Optimizer::step`.
    One(GradientsParams),
    /// One set per device: `Optimizer::step_multi` sums them.
    Devices(MultiGradientsParams),
}

/// A step's figures: still on the device (loss, accuracy and, with loss scaling, the overflow
/// check), or already read back and summed over shards.
enum StepFigures<B: burn::tensor::backend::Backend> {
    OnDevice(Tensor<B, 1>),
    Read { loss: f32, accuracy: f32, grads_finite: bool },
}

/// A step's (loss, accuracy, gradients finite), read already or still on the device.
enum Figures<T> {
    Known(f32, f32, bool),
    Pending(T),
}

// Every step has one skeleton: `begin_step` (ArmoRM's stage switch, the minibatch), a gradient
// phase of its own (one device, shards over devices, or a shard per process with an all-reduce),
// then `finish_step` (the loss scaler's verdict, the optimiser step, the counters and the
// scheduled evaluation).
impl<B: AutodiffBackend> Trainer<B> {
    /// One optimiser step; evaluates on the held-out pairs every `eval_every` steps and at the end.
    pub async fn step(&mut self) -> Result<StepMetrics> {
        let idx = self.begin_step().await?;
        self.step_on(&idx).await
    }

    /// What every step does first: ArmoRM's switch to its second stage when due, then the next
    /// minibatch, drawn alike on every rank.
    async fn begin_step(&mut self) -> Result<Vec<usize>> {
        if self.step == self.armo_stage_two() {
            self.fix_verbosity_transform().await?;
        }
        Ok(self.next_batch())
    }

    /// What every step does last: apply the gradients unless the loss scaler found them
    /// overflowed, count the step, refuse a non-finite loss, and evaluate when due.
    async fn finish_step(&mut self, model: PreferenceModel<B>, grads: StepGradients, figures: StepFigures<B::InnerBackend>) -> Result<StepMetrics> {
        // Figures still on the device are read once, after the update is queued, so the device
        // is never idle waiting for them; with loss scaling the overflow check must come first.
        let figures = match figures {
            StepFigures::OnDevice(t) if self.scaler.is_some() => {
                let v = read(t).await?;
                Figures::Known(v[0], v[1], v.get(2).is_none_or(|c| c.is_finite()))
            }
            StepFigures::OnDevice(t) => Figures::Pending(t),
            StepFigures::Read { loss, accuracy, grads_finite } => Figures::Known(loss, accuracy, grads_finite),
        };
        let grads_finite = !matches!(figures, Figures::Known(_, _, false));
        // A step whose gradients overflowed is skipped (the scaler halved the scale).
        let apply = self.scaler.as_mut().is_none_or(|s| s.update(grads_finite));
        let lr = self.config.train.lr;
        self.model = Some(match (apply, grads) {
            (false, _) => model,
            (true, StepGradients::One(g)) => self.optim.step(lr, model, g),
            (true, StepGradients::Devices(g)) => self.optim.step_multi(lr, model, g),
        });
        let (loss, accuracy) = match figures {
            Figures::Known(loss, accuracy, _) => (loss, accuracy),
            Figures::Pending(t) => {
                let v = read(t).await?;
                (v[0], v[1])
            }
        };
        self.step += 1;
        if !loss.is_finite() {
            return Err(Error::NonFinite { step: self.step, value: loss });
        }
        let eval = self.scheduled_eval().await?;
        Ok(StepMetrics { step: self.step, loss, train_accuracy: accuracy, eval })
    }

    /// One optimiser step on the given training pairs (lists, for a listwise loss): what
    /// [`Trainer::step`] does with the next minibatch, open to schemes that choose their own
    /// pairs, such as collaborative reward modelling ([`crate::studies::noise::crm`]).
    pub async fn step_on(&mut self, idx: &[usize]) -> Result<StepMetrics> {
        if idx.is_empty() {
            return Err(config_error("train.batch", "a step needs at least one pair"));
        }
        let model = self.model.take().expect("model present between steps");
        // Mixed precision: the forward pass runs on a copy cast inside the graph, so the
        // gradients land on `model`'s master weights.
        let compute = self.autocast.module(&model);
        let (logits, loss) = match self.config.train.loss.listwise {
            Some(kind) => self.listwise_objective(&compute, idx, kind),
            None => self.pair_objective(&compute, idx),
        };
        let accuracy = pairwise_accuracy(logits.detach());
        let (grads, overflow_check) = precision::backward(self.scaler.as_ref(), loss.clone(), &model);
        let mut figures = vec![loss.detach().inner(), accuracy.inner()];
        figures.extend(overflow_check);
        self.finish_step(model, StepGradients::One(grads), StepFigures::OnDevice(Tensor::cat(figures, 0))).await
    }

    /// One data-parallel step over `devices` (burn's multi-device optimiser step): the minibatch
    /// is split into one shard per device, each device computes the gradients of its shard's
    /// loss (weighted by its share of the batch) on its own copy of the model, and
    /// `Optimizer::step_multi` sums them, so the update equals the single-device step on the
    /// whole batch up to floating-point summation order. Pair losses only (not listwise).
    pub async fn step_parallel(&mut self, devices: &[B::Device]) -> Result<StepMetrics> {
        use burn::tensor::backend::DeviceOps;
        if devices.len() <= 1 {
            return self.step().await;
        }
        if self.config.train.loss.listwise.is_some() {
            return Err(config_error("train.loss.listwise", "data-parallel steps support pair losses only"));
        }
        let idx = self.begin_step().await?;
        for (i, d) in devices.iter().enumerate() {
            if self.replicas.get(i).is_none_or(|(have, _)| have != d) {
                self.replicas.truncate(i);
                self.replicas.push((d.clone(), DeviceData::new(&self.dataset, d)));
            }
        }
        let per = idx.len().div_ceil(devices.len());
        let model = self.model.take().expect("model present between steps");
        let mut multi = MultiGradientsParams::default();
        let (mut loss, mut accuracy, mut grads_finite) = (0.0f32, 0.0f32, true);
        for (i, shard) in idx.chunks(per).enumerate() {
            let share = shard.len() as f64 / idx.len() as f64;
            let local = model.clone().fork(&devices[i]);
            let (logits, shard_loss) = self.pair_objective_on(&self.autocast.module(&local), shard, Some(i));
            let shard_loss = shard_loss.mul_scalar(share);
            let (grads, overflow_check) = precision::backward(self.scaler.as_ref(), shard_loss.clone(), &local);
            let mut figures = vec![shard_loss.detach().inner(), pairwise_accuracy(logits.detach()).inner().mul_scalar(share)];
            figures.extend(overflow_check);
            let v = read(Tensor::cat(figures, 0)).await?;
            loss += v[0];
            accuracy += v[1];
            grads_finite &= v.get(2).is_none_or(|t| t.is_finite());
            multi.grads.push((grads, devices[i].id()));
        }
        self.finish_step(model, StepGradients::Devices(multi), StepFigures::Read { loss, accuracy, grads_finite }).await
    }

    /// One data-parallel step as process `rank` of `ranks` (multi-process training: every rank
    /// holds the same trainer, built from the same config and seed). Each rank takes its slice
    /// of the minibatch that all ranks draw alike, computes the gradients of its loss weighted by
    /// its share of the batch, and hands them to `all_reduce` as one flat tensor, which must
    /// return the element-wise sum over the ranks. Every rank then applies the same AdamW step,
    /// so the run equals one process on the whole batch up to summation order. Pair losses only.
    ///
    /// The flat tensor is every parameter's gradient in the model's visit order (zeros where a
    /// parameter got none), then one presence flag per parameter, then the loss, the training
    /// accuracy and the loss scaler's overflow check: one all-reduce per step carries it all.
    pub async fn step_rank(&mut self, rank: usize, ranks: usize, all_reduce: impl FnOnce(Tensor<B::InnerBackend, 1>) -> Result<Tensor<B::InnerBackend, 1>>) -> Result<StepMetrics> {
        if rank >= ranks {
            return Err(config_error("node_rank", format!("rank {rank} is not below the number of processes ({ranks})")));
        }
        if self.config.train.loss.listwise.is_some() {
            return Err(config_error("train.loss.listwise", "multi-process steps support pair losses only"));
        }
        let idx = self.begin_step().await?;
        if idx.len() < ranks {
            return Err(config_error("train.batch", format!("a batch of {} pairs cannot be split over {ranks} processes", idx.len())));
        }
        // Balanced slices: sizes differ by at most one and none is empty.
        let shard = &idx[rank * idx.len() / ranks..(rank + 1) * idx.len() / ranks];
        let share = shard.len() as f64 / idx.len() as f64;
        let model = self.model.take().expect("model present between steps");
        let compute = self.autocast.module(&model);
        let (logits, loss) = self.pair_objective(&compute, shard);
        let loss = loss.mul_scalar(share);
        let accuracy = pairwise_accuracy(logits.detach()).mul_scalar(share);
        let (grads, overflow_check) = precision::backward(self.scaler.as_ref(), loss.clone(), &model);

        let (mut parts, present) = flatten_gradients(&model, grads);
        let device = loss.device();
        let n_params = present.len();
        let grad_len: usize = parts.iter().map(|p| p.dims()[0]).sum();
        parts.push(Tensor::from_floats(present.as_slice(), &device));
        parts.push(loss.detach().inner());
        parts.push(accuracy.inner());
        parts.push(overflow_check.unwrap_or_else(|| Tensor::zeros([1], &device)));
        let summed = all_reduce(Tensor::cat(parts, 0))?;
        if summed.dims()[0] != grad_len + n_params + 3 {
            return Err(Error::Collective(format!("the all-reduce returned {} values for {} sent", summed.dims()[0], grad_len + n_params + 3)));
        }
        let tail = read(summed.clone().slice(grad_len..grad_len + n_params + 3)).await?;
        let (flags, [loss, accuracy, overflow]) = (&tail[..n_params], [tail[n_params], tail[n_params + 1], tail[n_params + 2]]);
        let grads = unflatten_gradients(&model, summed, flags);
        self.finish_step(model, StepGradients::One(grads), StepFigures::Read { loss, accuracy, grads_finite: overflow.is_finite() }).await
    }

    /// The held-out evaluation due after a step (every `eval_every` steps and after the last).
    /// With `keep_best`, the run's last step swaps in the best weights seen, and its evaluation
    /// is theirs.
    pub(super) async fn scheduled_eval(&mut self) -> Result<Option<EvalMetrics>> {
        if !(self.step.is_multiple_of(self.config.train.eval_every) || self.is_done()) {
            return Ok(None);
        }
        let mut eval = self.evaluate().await?;
        if self.config.train.keep_best {
            // NaN never counts as better, so a diverged evaluation cannot become the best.
            if self.best.as_ref().is_none_or(|b| eval.loss < b.loss) {
                self.best = Some(Best { step: self.step, loss: eval.loss, model: self.model().clone() });
            } else if self.is_done() {
                let best = self.best.as_ref().expect("checked above");
                self.model = Some(best.model.clone());
                eval = self.evaluate().await?;
            }
        }
        Ok(Some(eval))
    }

    /// With `train.keep_best`: the step whose weights the run holds at its end (or, mid-run,
    /// the best so far).
    pub fn best_step(&self) -> Option<usize> {
        self.best.as_ref().map(|b| b.step)
    }
}

/// Every parameter's gradient as one flat tensor per parameter, in the model's visit order
/// (zeros where a parameter got none), with a presence flag (1 or 0) per parameter.
fn flatten_gradients<B: AutodiffBackend>(model: &PreferenceModel<B>, mut grads: GradientsParams) -> (Vec<Tensor<B::InnerBackend, 1>>, Vec<f32>) {
    struct Flatten<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        parts: Vec<Tensor<B::InnerBackend, 1>>,
        present: Vec<f32>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let n = param.val().shape().num_elements();
            match self.grads.remove::<B::InnerBackend, D>(param.id) {
                Some(g) => {
                    self.parts.push(g.reshape([n]));
                    self.present.push(1.0);
                }
                None => {
                    let device = param.val().device();
                    self.parts.push(Tensor::zeros([n], &device));
                    self.present.push(0.0);
                }
            }
        }
    }
    let mut flat = Flatten::<B> { grads: &mut grads, parts: vec![], present: vec![] };
    model.visit(&mut flat);
    (flat.parts, flat.present)
}

/// The inverse of [`flatten_gradients`] on the summed flat tensor: each parameter's slice,
/// reshaped, for the parameters some rank had a gradient for.
fn unflatten_gradients<B: AutodiffBackend>(model: &PreferenceModel<B>, summed: Tensor<B::InnerBackend, 1>, flags: &[f32]) -> GradientsParams {
    struct Unflatten<'a, B: AutodiffBackend> {
        summed: Tensor<B::InnerBackend, 1>,
        flags: &'a [f32],
        offset: usize,
        index: usize,
        grads: GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let dims = param.val().dims();
            let n: usize = dims.iter().product();
            // A parameter no rank has a gradient for (a frozen one) gets none: AdamW would
            // otherwise decay it.
            if self.flags[self.index] > 0.0 {
                self.grads.register::<B::InnerBackend, D>(param.id, self.summed.clone().slice(self.offset..self.offset + n).reshape(dims));
            }
            self.offset += n;
            self.index += 1;
        }
    }
    let mut unflat = Unflatten::<B> { summed, flags, offset: 0, index: 0, grads: GradientsParams::new() };
    model.visit(&mut unflat);
    unflat.grads
}
