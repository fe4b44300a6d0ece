//! DMoERM (Quan 2024): a double-layer mixture of experts. An outer router sends the prompt to one
//! task (top-1); inside the task, one expert per capability point scores the response, trained on
//! that point's labels; an aggregator turns the experts' scores into the reward, trained on the
//! overall preferences with the experts frozen.
//!
//! Toy-scale choices: the three of DMoERM's phases train together in one run, the experts
//! detached from the overall loss (DMoERM freezes them in its phase 3); the router learns from
//! each pair's task label, and while training each pair goes to its own task (routing by the
//! label, as DMoERM trains each inner MoE on its task's data); the experts of all tasks share one
//! network with one output per (task, capability), where DMoERM gives each a LoRA of one base.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData, activation};

use crate::reward::attributes::rated_order_loss;
use crate::reward::data::PairDataset;
use crate::reward::layers::Mlp;
use crate::runtime::kernels::Backend;

#[derive(Module, Debug)]
pub struct ExpertMixtureModel<B: Backend> {
    /// The outer router: prompt → one logit per task.
    pub router: Mlp<B>,
    /// Every task's capability experts: one score per (task, capability), task-major.
    pub experts: Mlp<B>,
    /// Each task's aggregator over its experts' scores.
    pub aggregators: Vec<Mlp<B>>,
}

impl<B: Backend> ExpertMixtureModel<B> {
    pub fn tasks(&self) -> usize {
        self.aggregators.len()
    }

    pub fn capabilities(&self) -> usize {
        self.aggregators[0].layers[0].weight.val().dims()[0]
    }

    /// The router's top-1 choice, one-hot: `[n, tasks]`.
    pub fn routed(&self, prompt: Tensor<B, 2>) -> Tensor<B, 2> {
        let logits = self.router.forward(prompt);
        let best = logits.clone().max_dim(1).repeat_dim(1, self.tasks());
        logits.equal(best).float()
    }

    /// The reward under every task, `[n, tasks]`; `frozen` detaches the experts.
    pub fn task_rewards(&self, x: Tensor<B, 2>, frozen: bool) -> Tensor<B, 2> {
        let scores = self.experts.forward(x);
        let scores = if frozen { scores.detach() } else { scores };
        let k = self.capabilities();
        Tensor::cat(self.aggregators.iter().enumerate().map(|(t, agg)| agg.forward(scores.clone().narrow(1, t * k, k))).collect(), 1)
    }

    /// r(x, y) under the task the router picks.
    pub fn reward(&self, x: Tensor<B, 2>, prompt: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        (self.task_rewards(x, false) * self.routed(prompt)).sum_dim(1).reshape([n])
    }

    /// r(x, y₁) − r(x, y₂) under the routed task.
    pub fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>, prompt: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = chosen.dims()[0];
        ((self.task_rewards(chosen, false) - self.task_rewards(rejected, false)) * self.routed(prompt)).sum_dim(1).reshape([n])
    }

    /// The three losses on a batch whose tasks are known (`task`, one-hot `[n, tasks]`): the
    /// router's cross-entropy, the pair's task's experts on the rated orders, and `pairwise` of
    /// the aggregated logits under the pair's task with the experts frozen. Returns those logits
    /// and the summed loss.
    pub fn loss(
        &self,
        chosen: Tensor<B, 2>,
        rejected: Tensor<B, 2>,
        prompt: Tensor<B, 2>,
        task: Tensor<B, 2>,
        rated: (Tensor<B, 2>, Tensor<B, 2>),
        pairwise: impl FnOnce(Tensor<B, 1>) -> Tensor<B, 1>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let [n, t] = task.dims();
        let k = self.capabilities();
        let router = (activation::log_softmax(self.router.forward(prompt), 1) * task.clone()).sum().neg().div_scalar(n as f64).reshape([1]);
        let d = (self.experts.forward(chosen.clone()) - self.experts.forward(rejected.clone())).reshape([n, t, k]);
        let d = (d * task.clone().reshape([n, t, 1])).sum_dim(1).reshape([n, k]);
        let experts = rated_order_loss(d, rated.0, rated.1);
        let logits = ((self.task_rewards(chosen, true) - self.task_rewards(rejected, true)) * task).sum_dim(1).reshape([n]);
        (logits.clone(), router + experts + pairwise(logits))
    }
}

/// `pair_groups` of `pairs` as one-hot rows `[pairs.len() · tasks]`.
pub fn task_one_hot(ds: &PairDataset, pairs: &[usize], tasks: usize) -> Vec<f32> {
    pairs.iter().flat_map(|&p| (0..tasks).map(move |t| if ds.pair_groups[p] == t { 1.0 } else { 0.0 })).collect()
}

/// The share of `pairs` whose prompt the router sends to the pair's own task (`pair_groups`).
pub async fn router_accuracy<B: Backend>(model: &ExpertMixtureModel<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> crate::Result<f64> {
    let w = ds.prompt_dim;
    let rows: Vec<f32> = pairs.iter().flat_map(|&p| ds.prompts[p * w..(p + 1) * w].iter().copied()).collect();
    let routed = model.routed(Tensor::from_data(TensorData::new(rows, [pairs.len(), w]), device));
    let truth = Tensor::from_data(TensorData::new(task_one_hot(ds, pairs, model.tasks()), [pairs.len(), model.tasks()]), device);
    let right = (routed * truth).sum().into_data_async().await.map_err(|e| crate::Error::Backend(format!("{e:?}")))?;
    let right = right.convert::<f32>().to_vec::<f32>().map_err(|e| crate::Error::Backend(format!("{e:?}")))?[0];
    Ok(right as f64 / pairs.len().max(1) as f64)
}

#[cfg(test)]
#[path = "experts_tests.rs"]
mod tests;
