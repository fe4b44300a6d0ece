//! One optimiser step, on one device, on several devices, or as one rank of several processes.

use burn::module::{Module, Param};
use burn::optim::Optimizer;
use crate::runtime::kernels::AutodiffBackend;
use burn::tensor::Tensor;

use crate::reward::loss::pairwise_accuracy;
use crate::runtime::precision;
use crate::{Error, Result, config_error};
use super::*;

impl<B: AutodiffBackend> Trainer<B> {
    /// One optimiser step; evaluates on the held-out pairs every `eval_every` steps and at the end.
    pub async fn step(&mut self) -> Result<StepMetrics> {
        if self.step == self.armo_stage_two() {
            self.fix_verbosity_transform().await?;
        }
        let idx = self.next_batch();
        self.step_on(&idx).await
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
        let mut read_back = vec![loss.detach().inner(), accuracy.inner()];
        // One read-back per step: loss and accuracy, queued after the update so the device is
        // never idle waiting for it; with loss scaling the gradient check must come first.
        let v = match (self.scaler.as_mut(), overflow_check) {
            (Some(scaler), Some(check)) => {
                read_back.push(check);
                let v = read(Tensor::cat(read_back, 0)).await?;
                // A step whose gradients overflowed is skipped (the scale was halved).
                let apply = scaler.update(v[2].is_finite());
                self.model = Some(if apply { self.optim.step(self.config.train.lr, model, grads) } else { model });
                v
            }
            _ => {
                self.model = Some(self.optim.step(self.config.train.lr, model, grads));
                read(Tensor::cat(read_back, 0)).await?
            }
        };
        self.step += 1;
        if !v[0].is_finite() {
            return Err(Error::NonFinite { step: self.step, value: v[0] });
        }
        let eval = self.scheduled_eval().await?;
        Ok(StepMetrics { step: self.step, loss: v[0], train_accuracy: v[1], eval })
    }

    /// One data-parallel step over `devices` (burn's multi-device optimiser step): the minibatch
    /// is split into one shard per device, each device computes the gradients of its shard's
    /// loss (weighted by its share of the batch) on its own copy of the model, and
    /// `Optimizer::step_multi` sums them, so the update equals the single-device step on the
    /// whole batch up to floating-point summation order. Pair losses only (not listwise).
    pub async fn step_parallel(&mut self, devices: &[B::Device]) -> Result<StepMetrics> {
        use burn::optim::MultiGradientsParams;
        use burn::tensor::backend::DeviceOps;
        if devices.len() <= 1 {
            return self.step().await;
        }
        if self.config.train.loss.listwise.is_some() {
            return Err(config_error("train.loss.listwise", "data-parallel steps support pair losses only"));
        }
        if self.step == self.armo_stage_two() {
            self.fix_verbosity_transform().await?;
        }
        for (i, d) in devices.iter().enumerate() {
            if self.replicas.get(i).is_none_or(|(have, _)| have != d) {
                self.replicas.truncate(i);
                self.replicas.push((d.clone(), DeviceData::new(&self.dataset, d)));
            }
        }
        let idx = self.next_batch();
        let per = idx.len().div_ceil(devices.len());
        let model = self.model.take().expect("model present between steps");
        let mut multi = MultiGradientsParams::default();
        let (mut loss_sum, mut acc_sum, mut grads_finite) = (0.0f32, 0.0f32, true);
        for (i, shard) in idx.chunks(per).enumerate() {
            let share = shard.len() as f64 / idx.len() as f64;
            let local = model.clone().fork(&devices[i]);
            let (logits, loss) = self.pair_objective_on(&self.autocast.module(&local), shard, Some(i));
            let loss = loss.mul_scalar(share);
            let (grads, overflow_check) = precision::backward(self.scaler.as_ref(), loss.clone(), &local);
            let mut read_back = vec![loss.detach().inner(), pairwise_accuracy(logits.detach()).inner().mul_scalar(share)];
            read_back.extend(overflow_check);
            let v = read(Tensor::cat(read_back, 0)).await?;
            loss_sum += v[0];
            acc_sum += v[1];
            grads_finite &= v.get(2).is_none_or(|t| t.is_finite());
            multi.grads.push((grads, devices[i].id()));
        }
        let apply = self.scaler.as_mut().is_none_or(|s| s.update(grads_finite));
        self.model = Some(if apply { self.optim.step_multi(self.config.train.lr, model, multi) } else { model });
        self.step += 1;
        if !loss_sum.is_finite() {
            return Err(Error::NonFinite { step: self.step, value: loss_sum });
        }
        let eval = self.scheduled_eval().await?;
        Ok(StepMetrics { step: self.step, loss: loss_sum, train_accuracy: acc_sum, eval })
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
        use burn::module::ModuleVisitor;
        use burn::optim::GradientsParams;
        if rank >= ranks {
            return Err(config_error("node_rank", format!("rank {rank} is not below the number of processes ({ranks})")));
        }
        if self.config.train.loss.listwise.is_some() {
            return Err(config_error("train.loss.listwise", "multi-process steps support pair losses only"));
        }
        if self.step == self.armo_stage_two() {
            self.fix_verbosity_transform().await?;
        }
        let idx = self.next_batch();
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
        let mut grads = grads;
        let mut flat = Flatten::<B> { grads: &mut grads, parts: vec![], present: vec![] };
        model.visit(&mut flat);
        let Flatten { mut parts, present, .. } = flat;
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
        let (flags, [loss_sum, acc_sum, overflow]) = (&tail[..n_params], [tail[n_params], tail[n_params + 1], tail[n_params + 2]]);

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
        let apply = self.scaler.as_mut().is_none_or(|s| s.update(overflow.is_finite()));
        self.model = Some(if apply { self.optim.step(self.config.train.lr, model, unflat.grads) } else { model });
        self.step += 1;
        if !loss_sum.is_finite() {
            return Err(Error::NonFinite { step: self.step, value: loss_sum });
        }
        let eval = self.scheduled_eval().await?;
        Ok(StepMetrics { step: self.step, loss: loss_sum, train_accuracy: acc_sum, eval })
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
