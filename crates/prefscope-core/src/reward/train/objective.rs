//! The per-model objective on a minibatch: pairwise (with margins, smoothing, centering) or
//! listwise, and ArmoRM's switch between its two stages.

use burn::module::{AutodiffModule, Param};
use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::reward::loss::{
    bradley_terry_loss, centering_penalty, direct_reward_loss, kl_anneal, plackett_luce_loss, ranklist_loss,
};
use crate::reward::model::{PreferenceModel, VERBOSITY_CORR_THRESHOLD, verbosity_penalties, verbosity_transform};
use crate::Result;
use super::*;

impl<B: AutodiffBackend> Trainer<B> {
    /// The objective on a minibatch of pairs: (logits, loss).
    pub(super) fn pair_objective(&mut self, model: &PreferenceModel<B>, idx: &[usize]) -> (Tensor<B, 1>, Tensor<B, 1>) {
        self.pair_objective_on(model, idx, None)
    }

    /// [`Self::pair_objective`] with the batch taken from a data replica (`Some(i)`: the device
    /// of `replicas[i]`, where `model` must live too).
    pub(super) fn pair_objective_on(&mut self, model: &PreferenceModel<B>, idx: &[usize], replica: Option<usize>) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let (data, device) = match replica {
            Some(i) => (&self.replicas[i].1, self.replicas[i].0.clone()),
            None => (&self.data, self.device.clone()),
        };
        let ac = self.autocast;
        let mut batch = data.gather(&self.dataset, idx, &device).down(&ac);
        let n = idx.len();
        // FSPO-style shot dropout: each pair keeps a random number of its context's shots (0 to
        // all), so the in-context model learns to serve any number of them; then it trains as
        // any pairwise model does.
        if let PreferenceModel::InContext(_) = model {
            let two_d = 2 * self.dataset.dim;
            let shots = self.dataset.prompt_dim / two_d;
            let mask = crate::reward::few_shot::shot_mask(n, shots, two_d, &mut self.batch_rng);
            let mask = ac.down(Tensor::from_data(TensorData::new(mask, [n, shots * two_d]), &device));
            batch.prompts = Some(batch.prompts.expect("checked: the in-context model has context") * mask);
        }
        let lc = &self.config.train.loss;
        let margin = lc.margins(n, batch.strengths.clone(), &device);
        let weight = if lc.scaled { batch.strengths.clone() } else { None };
        match (model, batch.ratings) {
            // ArmoRM stage 2: rewards frozen, the gate learns from the preferences.
            (PreferenceModel::MultiObjective(m), _) if m.gate.is_some() && self.step >= self.armo_stage_two() => {
                let gate = m.gate.as_ref().expect("matched");
                // The frozen rewards are computed off the autodiff graph: the reward MLP gets no
                // gradient in this stage, so its weights stay the same graph leaves from step to
                // step, and burn-autodiff 0.21 kept every step's untrained forward nodes in its
                // registry, which it scans at each backward pass (600 ArmoRM steps: 1.5 ms a step
                // before stage 2, 25 ms by its end). The same values as `.detach()` of the graph's.
                let frozen = m.mlp.valid();
                let rewards = |x: Tensor<B, 2>| Tensor::<B, 2>::from_inner(frozen.forward(x.inner()));
                let d = rewards(batch.chosen) - rewards(batch.rejected);
                let logits = ac.up(gate.score(d, batch.prompts.expect("checked: the gate has prompts")));
                (logits.clone(), lc.pairwise_loss(logits, margin, weight, || None))
            }
            // DPA (and ArmoRM stage 1): learn the attribute rewards by regression on the ratings.
            (PreferenceModel::MultiObjective(m), Some((rating_c, rating_r))) => {
                let (pred_c, pred_r) = (m.rewards(batch.chosen), m.rewards(batch.rejected));
                let logits = ac.up(m.logits_from_rewards(pred_c.clone(), pred_r.clone(), batch.prompts));
                let (pred_c, pred_r) = (ac.up(pred_c), ac.up(pred_r));
                let loss = ((pred_c - rating_c).powi_scalar(2).mean() + (pred_r - rating_r).powi_scalar(2).mean()).div_scalar(2.0);
                (logits.detach(), loss)
            }
            // PrefPalette: the preference loss, plus the attribute predictors' loss on the
            // teacher's order of each pair on each attribute (the ratings).
            (PreferenceModel::AttributeAttention(m), Some((rating_c, rating_r))) => {
                let context = batch.prompts.expect("checked: attribute-attention has context");
                let logits = ac.up(m.logits(batch.chosen.clone(), batch.rejected.clone(), context));
                let attributes = ac.up(m.attribute_loss(batch.chosen, batch.rejected, ac.down(rating_c), ac.down(rating_r)));
                (logits.clone(), lc.pairwise_loss(logits, margin, weight, || None) + attributes)
            }
            // DMoERM: the router on each pair's task, the task's experts on the rated orders, and
            // the aggregator on the preference with the experts frozen.
            (PreferenceModel::ExpertMixture(m), Some((rating_c, rating_r))) => {
                let t = m.tasks();
                let onehot = crate::reward::experts::task_one_hot(&self.dataset, idx, t);
                let task = ac.down(Tensor::from_data(TensorData::new(onehot, [n, t]), &device));
                let prompt = batch.prompts.expect("checked: expert-mixture has prompts");
                let (logits, loss) = m.loss(batch.chosen, batch.rejected, prompt, task, (ac.down(rating_c), ac.down(rating_r)), |l| {
                    lc.pairwise_loss(ac.up(l), margin, weight, || None)
                });
                (ac.up(logits), ac.up(loss))
            }
            (PreferenceModel::Mixture(m), _) => {
                let p = batch.prompts.clone().expect("the mixture model is only built for data with prompts");
                let loss = ac.up(m.mixture_loss(batch.chosen.clone(), batch.rejected.clone(), p));
                (ac.up(model.logits(batch.chosen, batch.rejected, batch.prompts)), loss)
            }
            (PreferenceModel::Vpl(m), _) => {
                let latent = m.latent();
                let eps: Vec<f32> = (0..n * latent).map(|_| self.batch_rng.normal() as f32).collect();
                let eps = ac.down(Tensor::from_data(TensorData::new(eps, [n, latent]), &device));
                let kl_scale = kl_anneal(self.step, self.config.train.steps, 0.1);
                let (logits, loss) = m.elbo(batch.chosen, batch.rejected, batch.prompts.expect("checked: VPL has context"), eps, kl_scale);
                (ac.up(logits), ac.up(loss))
            }
            (PreferenceModel::Bt(m), ratings) if lc.center_coef > 0.0 || lc.regression_coef > 0.0 || lc.dr => {
                let (rc, rr) = (ac.up(m.reward(batch.chosen)), ac.up(m.reward(batch.rejected)));
                let logits = rc.clone() - rr.clone();
                let mut loss = lc.pairwise_loss(logits.clone(), margin, weight, || Some((rc.clone(), rr.clone())));
                if lc.regression_coef > 0.0 {
                    let (tc, tr) = ratings.expect("checked: regression needs ratings");
                    let first = |t: Tensor<B, 2>| t.narrow(1, 0, 1).reshape([n]);
                    let mse = ((rc - first(tc)).powi_scalar(2).mean() + (rr - first(tr)).powi_scalar(2).mean()).div_scalar(2.0);
                    loss = loss + mse.mul_scalar(lc.regression_coef);
                }
                (logits, loss)
            }
            _ => {
                let logits = ac.up(model.logits(batch.chosen, batch.rejected, batch.prompts));
                (logits.clone(), lc.pairwise_loss(logits, margin, weight, || None))
            }
        }
    }

    /// The listwise objective on a minibatch of lists; the "logits" are the adjacent-pair margins.
    pub(super) fn listwise_objective(&self, model: &PreferenceModel<B>, lists: &[usize], kind: Listwise) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let PreferenceModel::Bt(m) = model else { unreachable!("checked: listwise losses need a scalar reward") };
        let l = self.dataset.lists[lists[0]].len();
        let items = self.autocast.down(self.data.gather_lists(&self.dataset, lists, &self.device));
        let scores = self.autocast.up(m.reward(items)).reshape([lists.len(), l]);
        let adjacent = (scores.clone().narrow(1, 0, l - 1) - scores.clone().narrow(1, 1, l - 1)).reshape([lists.len() * (l - 1)]);
        let loss = match kind {
            Listwise::PlackettLuce => plackett_luce_loss(scores, self.config.train.loss.top_k),
            Listwise::RankList => ranklist_loss(scores),
        };
        (adjacent, loss)
    }

    /// ArmoRM's step between its stages: read the stage-1 rewards of every item, find the
    /// verbosity penalties and fix T in the model.
    pub(super) async fn fix_verbosity_transform(&mut self) -> Result<()> {
        let mc = &self.config.model;
        let Some(PreferenceModel::MultiObjective(m)) = self.model.as_mut() else { return Ok(()) };
        let Some(gate) = m.gate.as_mut() else { return Ok(()) };
        let k = mc.objectives;
        let t = if mc.decorrelate_verbosity {
            let r = read(m.mlp.forward(self.data.items.clone()).detach()).await?;
            let rows: Vec<Vec<f64>> = r.chunks(k).map(|c| c.iter().map(|&x| x as f64).collect()).collect();
            verbosity_transform(&verbosity_penalties(&rows, mc.verbosity_dim, VERBOSITY_CORR_THRESHOLD), mc.verbosity_dim)
        } else {
            (0..k * k).map(|i| if i / k == i % k { 1.0 } else { 0.0 }).collect()
        };
        let t: Vec<f32> = t.into_iter().map(|x| x as f32).collect();
        gate.transform = Param::from_tensor(Tensor::from_data(TensorData::new(t, [k, k]), &self.device));
        Ok(())
    }
}

/// The pairwise objective both trainers share (the feature-vector [`Trainer`] and the text
/// trainer): Bradley–Terry with TRL's margin, label smoothing and per-pair weights, plus reward
/// centering and Eurus's direct reward term when the model has scalar rewards.
impl LossConfig {
    /// The margin m in −log σ(ℓ − m), per pair: the constant `margin`, plus each pair's strength
    /// with `margin_from_data` (`strengths` must then be given).
    pub fn margins<B: Backend>(&self, n: usize, strengths: Option<Tensor<B, 1>>, device: &B::Device) -> Option<Tensor<B, 1>> {
        let margin = (self.margin != 0.0).then(|| Tensor::full([n], self.margin, device));
        if !self.margin_from_data {
            return margin;
        }
        let s = strengths.expect("checked at init: margin_from_data needs per-pair strengths");
        Some(margin.map_or(s.clone(), |m| m + s))
    }

    /// The loss on a minibatch's logits; `rewards` (called after the Bradley–Terry term, so the
    /// graph is built in one order) gives the chosen and rejected rewards to centre, if any.
    pub fn pairwise_loss<B: Backend>(&self, logits: Tensor<B, 1>, margin: Option<Tensor<B, 1>>, weight: Option<Tensor<B, 1>>, rewards: impl FnOnce() -> Option<(Tensor<B, 1>, Tensor<B, 1>)>) -> Tensor<B, 1> {
        let loss = bradley_terry_loss(logits, margin, self.label_smoothing, weight);
        match rewards() {
            Some((chosen, rejected)) if self.dr => loss + centering_penalty(chosen.clone(), rejected.clone(), self.center_coef) + direct_reward_loss(chosen, rejected),
            Some((chosen, rejected)) => loss + centering_penalty(chosen, rejected, self.center_coef),
            None => loss,
        }
    }
}
