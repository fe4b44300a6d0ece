//! RLHF on the tiny LM: a transformer reward model learns the shout task's preferences, then the
//! SFT policy optimises it online with RLOO, PPO or GRPO, KL-regularised toward the SFT model.
//!
//! Completions are sampled at temperature 1 (the policy's own distribution, which the gradient
//! estimators assume) up to the task's width and end at their first newline, as TRL truncates at
//! the EOS token; the bytes after it are neither scored nor trained on. The judge is the hidden
//! [`ShoutTask::reward`], never seen by the learner; the reward model only saw shouted-versus-
//! quiet pairs of the right word.
//!
//! * RLOO: k samples per prompt, r̃ = RM − β·(log π − log π_ref) summed over the completion, the
//!   leave-one-out baseline, one REINFORCE step on Σ log π (TRL `RLOOTrainer`).
//! * GRPO (TRL `GRPOTrainer`, [`super::grpo`]): k samples per prompt, advantages scaled per
//!   group, per batch or not at all, a clipped surrogate per token or per sequence (GSPO), a k3
//!   KL penalty β·(e^{ref − lp} − (ref − lp) − 1) per token, averaged by the chosen `loss_type`;
//!   `inner_steps` reuses each batch (TRL's `num_iterations`, 1 by default, where the ratio is 1).
//! * PPO (TRL `PPOTrainer` defaults: γ = 1, λ = 0.95, clip 0.2, value clip 0.2, vf_coef 0.1,
//!   4 epochs, whitened advantages): per-token reward −β·(log π_old − log π_ref) plus the RM score
//!   on the last completion token; a value head on a copy of the SFT transformer; GAE.

use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::runtime::kernels::{AutodiffBackend, Backend};
use crate::runtime::host_init::HostInit;
use crate::policy::lm::{Encoded, LmAlignConfig, ShoutTask, TinyLm, TinyLmConfig, completion_width, judge, sample_bytes, sequence_logps, sft_lm, task_prompt, token_logps};
use crate::policy::grpo::{GrpoLoss, ImportanceSampling, ScaleRewards, advantages, aggregate, per_token_loss};
use crate::policy::online::best_of_n_kl;
use crate::policy::overoptimisation::{CurvePoint, GaoFit, best_of_n_expectation, fit_best_of_n, fit_rl};
use crate::runtime::rng::Rng;
use crate::text::transformer::{SpecialTokens, TfmHead, TfmRewardModel, TfmRmConfig, TokenBatch, assemble};
use crate::{Error, Result, config_error};

/// Byte tokens 0–255 and the reward model's special tokens.
const SP: SpecialTokens = SpecialTokens { pad: 256, bos: 257, sep: 258, eos: 259 };

/// The online method for the tiny LM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LmRlMethod {
    Rloo { k: usize },
    Ppo { epochs: usize, cliprange: f64, cliprange_value: f64, vf_coef: f64, gamma: f64, lam: f64 },
    Grpo { k: usize, loss: GrpoLoss, scale_rewards: ScaleRewards, importance_sampling: ImportanceSampling, epsilon: f64, inner_steps: usize },
}

impl LmRlMethod {
    pub fn rloo() -> Self {
        Self::Rloo { k: 4 }
    }

    /// TRL `PPOConfig`'s defaults.
    pub fn ppo() -> Self {
        Self::Ppo { epochs: 4, cliprange: 0.2, cliprange_value: 0.2, vf_coef: 0.1, gamma: 1.0, lam: 0.95 }
    }

    /// TRL `GRPOConfig`'s defaults (8 generations, `dapo`, group scaling, token-level ratios, ε 0.2,
    /// one step per batch); its KL weight is the run's β, where TRL's default is 0 (no KL term).
    pub fn grpo() -> Self {
        Self::Grpo { k: 8, loss: GrpoLoss::default(), scale_rewards: ScaleRewards::default(), importance_sampling: ImportanceSampling::default(), epsilon: 0.2, inner_steps: 1 }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Rloo { .. } => "rloo",
            Self::Ppo { .. } => "ppo",
            Self::Grpo { .. } => "grpo",
        }
    }
}

/// Which reward the policy optimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LmReward {
    /// A transformer reward model trained here on the task's preference pairs.
    #[default]
    RewardModel,
    /// The hidden judge itself.
    Gold,
}

/// One RLHF run on the tiny LM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmRlConfig {
    /// SFT and judging settings (its `loss` is unused); `lr` is the policy's learning rate.
    pub base: LmAlignConfig,
    #[serde(flatten)]
    pub method: LmRlMethod,
    pub reward: LmReward,
    /// KL coefficient (TRL's RLOO and PPO default 0.05).
    pub beta: f64,
    pub iterations: usize,
    /// Prompts per iteration.
    pub prompts: usize,
    /// Reward-model training: steps of `base.batch` pairs, and its learning rate.
    pub rm_steps: usize,
    pub rm_lr: f64,
}

impl LmRlConfig {
    pub fn new(method: LmRlMethod) -> Self {
        let mut base = LmAlignConfig::new(crate::policy::dpo::PolicyLoss::Sigmoid { beta: 0.1 });
        base.lr = 1e-3;
        Self { base, method, reward: LmReward::RewardModel, beta: 0.05, iterations: 40, prompts: 16, rm_steps: 200, rm_lr: 1e-3 }
    }

    /// The β of the run's implicit reward β·log π/π_ref (what its checkpoint is scored by): the KL
    /// coefficient, or 1 where GRPO ran without a KL term (β = 0).
    pub fn implicit_reward_beta(&self) -> f64 {
        if self.beta > 0.0 { self.beta } else { 1.0 }
    }

    pub fn validate(&self) -> Result<()> {
        self.base.validate()?;
        // GRPO's KL term may be off (TRL's default β = 0); RLOO and PPO shape their rewards with it.
        let least = if matches!(self.method, LmRlMethod::Grpo { .. }) { 0.0 } else { f64::MIN_POSITIVE };
        if !(self.beta >= least && self.beta.is_finite()) {
            return Err(config_error("beta", if least == 0.0 { "must be a number ≥ 0" } else { "must be a positive number" }));
        }
        if self.iterations == 0 || self.prompts == 0 {
            return Err(config_error("iterations", "iterations and prompts must be at least 1"));
        }
        match &self.method {
            LmRlMethod::Rloo { k } if *k < 2 => Err(config_error("k", "needs at least 2 samples per prompt")),
            LmRlMethod::Ppo { epochs, cliprange, .. } if *epochs == 0 || !(*cliprange > 0.0) => Err(config_error("epochs", "epochs must be ≥ 1 and cliprange positive")),
            LmRlMethod::Grpo { k, .. } if *k < 2 => Err(config_error("k", "GRPO needs at least 2 samples per prompt for a group baseline")),
            LmRlMethod::Grpo { epsilon, inner_steps, .. } if !(*epsilon > 0.0) || *inner_steps == 0 => Err(config_error("epsilon", "epsilon must be positive and inner_steps at least 1")),
            _ => Ok(()),
        }
    }
}

/// What one iteration reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmRlMetrics {
    pub iteration: usize,
    /// Mean reward being optimised, and the judge's, over the iteration's samples.
    pub reward: f64,
    pub gold: f64,
    /// Mean Σ_t (log π − log π_ref) over the samples: an unbiased estimate of KL(π‖π_ref).
    pub kl: f64,
    /// Mean completion length in bytes over the samples (through the newline that ends one).
    pub length: f64,
}

/// What a run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmRlSummary {
    pub method: String,
    pub rm_accuracy: f64,
    pub win_rate: f64,
    pub reference_reward: f64,
    pub policy_reward: f64,
    pub last: LmRlMetrics,
    /// KL(π‖π_ref) estimated on `base.eval_samples` fresh samples of the final policy (at
    /// temperature 1), and the mean optimised reward and judge's reward on the same samples.
    pub final_kl: f64,
    pub final_reward: f64,
    pub final_gold: f64,
    pub policy_samples: Vec<String>,
    pub reference_samples: Vec<String>,
}

fn rm_rows(examples: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u32>> {
    examples.iter().map(|(p, c)| assemble(&p.iter().map(|&b| u32::from(b)).collect::<Vec<_>>(), &c.iter().map(|&b| u32::from(b)).collect::<Vec<_>>(), 32, SP)).collect()
}

fn rm_config() -> TfmRmConfig {
    TfmRmConfig { vocab: 260, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 32, head: TfmHead::Bt, k: 1, tau: 1.0 }
}

/// Train the transformer reward model on the task's pairs; returns it and its accuracy on fresh
/// pairs.
pub fn train_reward_model<B: AutodiffBackend>(cfg: &LmRlConfig, device: &B::Device) -> Result<(TfmRewardModel<B::InnerBackend>, f64)> {
    let rmc = rm_config();
    let mut rm = rmc.init::<B>(cfg.base.seed, device);
    let task = ShoutTask { shout_rate: cfg.base.shout_rate };
    let mut rng = Rng::stream(cfg.base.seed, "lm-rm");
    let mut optim = AdamConfig::new().init();
    let batch_of = |pairs: &[(String, String, String)]| {
        let chosen: Vec<(Vec<u8>, Vec<u8>)> = pairs.iter().map(|(p, c, _)| (p.clone().into_bytes(), c.clone().into_bytes())).collect();
        let rejected: Vec<(Vec<u8>, Vec<u8>)> = pairs.iter().map(|(p, _, r)| (p.clone().into_bytes(), r.clone().into_bytes())).collect();
        TokenBatch::pairs(&rm_rows(&chosen), &rm_rows(&rejected), SP.pad)
    };
    for step in 1..=cfg.rm_steps {
        let batch = batch_of(&task.pairs(cfg.base.batch, &mut rng));
        let loss = log_sigmoid(rm.pair_logits(&batch, &rmc, device)).mean().neg();
        let v = loss.clone().into_scalar().elem::<f64>();
        if !v.is_finite() {
            return Err(Error::NonFinite { step, value: v as f32 });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &rm);
        rm = optim.step(cfg.rm_lr, rm, grads);
    }
    let rm = rm.valid();
    let held_out = batch_of(&task.pairs(200, &mut rng));
    let logits = host(rm.pair_logits(&held_out, &rmc, device))?;
    Ok((rm, logits.iter().filter(|&&l| l > 0.0).count() as f64 / logits.len() as f64))
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f64>> {
    t.into_data().convert::<f64>().to_vec().map_err(|e| Error::Backend(format!("{e:?}")))
}

use burn::tensor::ElementConversion;

/// The completion the policy is scored and trained on: through the first newline.
fn through_newline(s: &[u8]) -> Vec<u8> {
    match s.iter().position(|&b| b == b'\n') {
        Some(i) => s[..=i].to_vec(),
        None => s.to_vec(),
    }
}

/// The hidden judge on a byte completion.
fn gold_of((p, c): &(Vec<u8>, Vec<u8>)) -> f64 {
    ShoutTask::reward(&String::from_utf8_lossy(p), &String::from_utf8_lossy(c))
}

/// PPO's critic: a copy of the SFT transformer with a scalar head on its hidden states.
#[derive(Module, Debug)]
pub struct Critic<B: Backend> {
    pub body: TinyLm<B>,
    pub value: Linear<B>,
}

impl<B: Backend> Critic<B> {
    /// V at every position, `[n, T]`.
    pub fn values(&self, tokens: Tensor<B, 2, burn::tensor::Int>) -> Tensor<B, 2> {
        let [n, t] = tokens.dims();
        self.value.forward(self.body.hidden(tokens)).reshape([n, t])
    }
}

/// SFT, the reward model, then `iterations` of RLOO or PPO; `on_iteration` sees each one.
pub fn rlhf_lm<B: AutodiffBackend>(cfg: &LmRlConfig, device: &B::Device, on_iteration: impl FnMut(&LmRlMetrics)) -> Result<LmRlSummary> {
    Ok(rlhf_lm_models::<B>(cfg, device, on_iteration)?.summary)
}

/// An RL-trained tiny LM: the run's report, the policy, and the SFT model it was held near.
pub struct LmRlTrained<B: AutodiffBackend> {
    pub summary: LmRlSummary,
    pub policy: TinyLm<B::InnerBackend>,
    pub reference: TinyLm<B::InnerBackend>,
}

/// [`rlhf_lm`], keeping the models (a run folder saves them for `eval`'s implicit reward: the
/// KL-regularised optimum satisfies r = β log π*/π_ref + c(x), so RL's policy carries one too).
pub fn rlhf_lm_models<B: AutodiffBackend>(cfg: &LmRlConfig, device: &B::Device, on_iteration: impl FnMut(&LmRlMetrics)) -> Result<LmRlTrained<B>> {
    cfg.validate()?;
    let sft = sft_lm::<B>(&cfg.base, device, |_, _, _| {})?;
    let (rm, rm_accuracy) = match cfg.reward {
        LmReward::RewardModel => {
            let (rm, acc) = train_reward_model::<B>(cfg, device)?;
            (Some(rm), acc)
        }
        LmReward::Gold => (None, f64::NAN),
    };
    rlhf_from_models(cfg, sft.lm, rm.as_ref(), rm_accuracy, device, on_iteration)
}

/// Scores of (prompt, completion) byte pairs: the reward model's, or the judge's without one.
fn score<B: Backend>(rm: Option<&TfmRewardModel<B>>, examples: &[(Vec<u8>, Vec<u8>)], device: &B::Device) -> Result<Vec<f64>> {
    match rm {
        Some(rm) => {
            let batch = TokenBatch::new(&rm_rows(examples), SP.pad);
            let (t, l) = batch.tensors::<B>(device);
            host(rm.forward(t, l))
        }
        None => Ok(examples.iter().map(gold_of).collect()),
    }
}

/// Fresh prompts and the policy's completions at temperature 1, cut at their first newline.
fn rollouts<B: Backend>(policy: &TinyLm<B>, prompts: Vec<String>, rng: &mut Rng, device: &B::Device) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let sampled = sample_bytes(policy, &prompts, completion_width(), 1.0, rng, device)?;
    Ok(prompts.into_iter().map(String::into_bytes).zip(sampled.iter().map(|s| through_newline(s))).collect())
}

/// The RL phase of [`rlhf_lm`] from a given SFT policy and reward (None: the judge), so that
/// several runs can share them.
pub fn rlhf_from<B: AutodiffBackend>(cfg: &LmRlConfig, sft: TinyLm<B>, rm: Option<&TfmRewardModel<B::InnerBackend>>, rm_accuracy: f64, device: &B::Device, on_iteration: impl FnMut(&LmRlMetrics)) -> Result<LmRlSummary> {
    Ok(rlhf_from_models(cfg, sft, rm, rm_accuracy, device, on_iteration)?.summary)
}

/// [`rlhf_from`], keeping the policy and the reference.
pub fn rlhf_from_models<B: AutodiffBackend>(cfg: &LmRlConfig, sft: TinyLm<B>, rm: Option<&TfmRewardModel<B::InnerBackend>>, rm_accuracy: f64, device: &B::Device, mut on_iteration: impl FnMut(&LmRlMetrics)) -> Result<LmRlTrained<B>> {
    cfg.validate()?;
    let max_len = TinyLmConfig::default().max_len;
    let mut policy = sft;
    let reference = policy.valid();
    let mut critic = match cfg.method {
        // The value head from the run's seed: burn's own initialiser draws from the backend's
        // unseeded generator, which made PPO runs of one seed differ from each other.
        LmRlMethod::Ppo { .. } => Some(Critic {
            body: policy.clone(),
            value: LinearConfig::new(TinyLmConfig::default().d_model, 1).init(device).map(&mut HostInit::new(Rng::stream(cfg.base.seed, "lm-critic"))),
        }),
        LmRlMethod::Rloo { .. } | LmRlMethod::Grpo { .. } => None,
    };
    let mut optim = AdamConfig::new().init();
    let mut critic_optim = AdamConfig::new().init();
    let mut rng = Rng::stream(cfg.base.seed, "lm-rl");
    let mut last = LmRlMetrics { iteration: 0, reward: f64::NAN, gold: f64::NAN, kl: 0.0, length: f64::NAN };

    for iteration in 1..=cfg.iterations {
        let per_prompt = match cfg.method {
            LmRlMethod::Rloo { k } | LmRlMethod::Grpo { k, .. } => k,
            LmRlMethod::Ppo { .. } => 1,
        };
        let prompts: Vec<String> = (0..cfg.prompts).flat_map(|_| std::iter::repeat_n(task_prompt(&mut rng), per_prompt)).collect();
        let examples = rollouts(&policy.valid(), prompts, &mut rng, device)?;
        let scores = score(rm, &examples, device)?;
        let gold: Vec<f64> = examples.iter().map(gold_of).collect();

        let enc = Encoded::from_bytes(&examples, max_len)?;
        let (tokens, mask) = enc.tensors::<B>(device);
        let n = examples.len();
        let t1 = enc.len - 1;
        let m = mask.clone().narrow(1, 1, t1);
        let ref_tok = host(token_logps(Tensor::<B, 3>::from_inner(reference.logits(tokens.clone().inner())), tokens.clone()))?;
        let old_tok = host(token_logps(policy.valid().logits(tokens.clone().inner()), tokens.clone().inner()))?;
        let mask_h: Vec<f64> = host(m.clone())?;
        let seq_kl: Vec<f64> = (0..n).map(|i| (0..t1).map(|j| mask_h[i * t1 + j] * (old_tok[i * t1 + j] - ref_tok[i * t1 + j])).sum()).collect();

        match &cfg.method {
            LmRlMethod::Rloo { k } => {
                // r̃ = r − β·KL(sequence); the leave-one-out baseline within each prompt's k samples.
                let shaped: Vec<f64> = (0..n).map(|i| scores[i] - cfg.beta * seq_kl[i]).collect();
                let adv: Vec<f32> = (0..n)
                    .map(|i| {
                        let g = i / k * k;
                        let others: f64 = (g..g + k).filter(|&j| j != i).map(|j| shaped[j]).sum::<f64>() / (*k as f64 - 1.0);
                        (shaped[i] - others) as f32
                    })
                    .collect();
                let adv = Tensor::<B, 1>::from_data(TensorData::new(adv, [n]), device);
                let logp = (token_logps(policy.logits(tokens.clone()), tokens.clone()) * m.clone()).sum_dim(1).reshape([n]);
                let loss = (logp * adv).mean().neg();
                let grads = GradientsParams::from_grads(loss.backward(), &policy);
                policy = optim.step(cfg.base.lr, policy, grads);
            }
            LmRlMethod::Grpo { k, loss, scale_rewards, importance_sampling, epsilon, inner_steps } => {
                let t2 = |v: &[f64]| Tensor::<B, 2>::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n, t1]), device);
                let adv = advantages(&scores, *k, *scale_rewards);
                let adv = Tensor::<B, 1>::from_data(TensorData::new(adv.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n]), device);
                let (old_t, ref_t) = (t2(&old_tok), t2(&ref_tok));
                for _ in 0..*inner_steps {
                    let lp = token_logps(policy.logits(tokens.clone()), tokens.clone());
                    let d = ref_t.clone() - lp.clone();
                    let kl = (d.clone().exp() - d).sub_scalar(1.0);
                    let per = per_token_loss(lp, old_t.clone(), m.clone(), adv.clone(), *importance_sampling, *epsilon) + kl.mul_scalar(cfg.beta);
                    let objective = aggregate(per, m.clone(), *loss, completion_width());
                    let grads = GradientsParams::from_grads(objective.backward(), &policy);
                    policy = optim.step(cfg.base.lr, policy, grads);
                }
            }
            LmRlMethod::Ppo { epochs, cliprange, cliprange_value, vf_coef, gamma, lam } => {
                let c = critic.take().expect("PPO has a critic");
                let values_old = host(c.valid().values(tokens.clone().inner()).narrow(1, 0, t1))?;
                // Per-token rewards: −β(log π_old − log π_ref), plus the score at the last token.
                let (mut adv, mut ret) = (vec![0f64; n * t1], vec![0f64; n * t1]);
                for i in 0..n {
                    let pos: Vec<usize> = (0..t1).filter(|&j| mask_h[i * t1 + j] > 0.0).collect();
                    let mut next_adv = 0.0;
                    let mut next_value = 0.0;
                    for (q, &j) in pos.iter().enumerate().rev() {
                        let mut r = -cfg.beta * (old_tok[i * t1 + j] - ref_tok[i * t1 + j]);
                        if q + 1 == pos.len() {
                            r += scores[i];
                        }
                        let v = values_old[i * t1 + j];
                        let delta = r + gamma * next_value - v;
                        next_adv = delta + gamma * lam * next_adv;
                        adv[i * t1 + j] = next_adv;
                        ret[i * t1 + j] = next_adv + v;
                        next_value = v;
                    }
                }
                // Whiten the advantages over the batch's completion tokens.
                let count: f64 = mask_h.iter().sum();
                let mean = adv.iter().zip(&mask_h).map(|(a, w)| a * w).sum::<f64>() / count;
                let var = adv.iter().zip(&mask_h).map(|(a, w)| w * (a - mean).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
                let white: Vec<f32> = adv.iter().zip(&mask_h).map(|(a, w)| (w * (a - mean) / (var.sqrt() + 1e-8)) as f32).collect();
                let t2 = |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [n, t1]), device);
                let (adv_t, ret_t) = (t2(white), t2(ret.iter().map(|&x| x as f32).collect()));
                let (old_t, v_old_t) = (t2(old_tok.iter().map(|&x| x as f32).collect()), t2(values_old.iter().map(|&x| x as f32).collect()));
                let mut c = c;
                for _ in 0..*epochs {
                    let lp = token_logps(policy.logits(tokens.clone()), tokens.clone());
                    let ratio = (lp - old_t.clone()).exp();
                    let surrogate = (ratio.clone() * adv_t.clone()).min_pair(ratio.clamp(1.0 - cliprange, 1.0 + cliprange) * adv_t.clone());
                    let pg_loss = (surrogate * m.clone()).sum().neg() / count;
                    let grads = GradientsParams::from_grads(pg_loss.backward(), &policy);
                    policy = optim.step(cfg.base.lr, policy, grads);
                    let v = c.values(tokens.clone()).narrow(1, 0, t1);
                    let v_clip = v_old_t.clone() + (v.clone() - v_old_t.clone()).clamp(-cliprange_value, *cliprange_value);
                    let vf = (v - ret_t.clone()).powi_scalar(2).max_pair((v_clip - ret_t.clone()).powi_scalar(2));
                    let vf_loss = (vf * m.clone()).sum().mul_scalar(0.5 * vf_coef) / count;
                    let grads = GradientsParams::from_grads(vf_loss.backward(), &c);
                    c = critic_optim.step(cfg.base.lr, c, grads);
                }
                critic = Some(c);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let lengths: Vec<f64> = examples.iter().map(|(_, c)| c.len() as f64).collect();
        last = LmRlMetrics { iteration, reward: mean(&scores), gold: mean(&gold), kl: mean(&seq_kl), length: mean(&lengths) };
        if !last.reward.is_finite() || !last.kl.is_finite() {
            return Err(Error::NonFinite { step: iteration, value: last.kl as f32 });
        }
        on_iteration(&last);
    }
    let judged = judge(&policy.valid(), &reference, &cfg.base, device)?;
    // KL, reward and judge on the same fresh samples of the final policy.
    let (final_kl, final_reward, final_gold) = {
        let mut kl_rng = Rng::stream(cfg.base.seed, "lm-rl-kl");
        let prompts: Vec<String> = (0..cfg.base.eval_samples).map(|_| task_prompt(&mut kl_rng)).collect();
        let examples = rollouts(&policy.valid(), prompts, &mut kl_rng, device)?;
        let (tokens, mask) = Encoded::from_bytes(&examples, max_len)?.tensors::<B::InnerBackend>(device);
        let lp = sequence_logps(token_logps(policy.valid().logits(tokens.clone()), tokens.clone()), mask.clone());
        let lr = sequence_logps(token_logps(reference.logits(tokens.clone()), tokens), mask);
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        (host((lp - lr).mean())?[0], mean(score(rm, &examples, device)?), mean(examples.iter().map(gold_of).collect()))
    };
    let summary = LmRlSummary {
        final_kl,
        final_reward,
        final_gold,
        method: cfg.method.name().into(),
        rm_accuracy,
        win_rate: judged.win_rate,
        reference_reward: judged.reference_reward,
        policy_reward: judged.policy_reward,
        last,
        policy_samples: judged.policy_samples,
        reference_samples: judged.reference_samples,
    };
    Ok(LmRlTrained { summary, policy: policy.valid(), reference })
}

/// Gao et al.'s over-optimisation experiment on the tiny LM (the bandit's is
/// [`crate::policy::overoptimisation`]). The proxy is the transformer RM trained on the task's pairs; the
/// gold reward is the hidden judge. Best-of-n picks, among n SFT samples of a prompt, the one the
/// proxy scores highest, with the analytic KL log n − (n−1)/n; RL is RLOO against the proxy at
/// each β. Rewards are relative to the SFT policy's (at temperature 1, the π_ref of both curves).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmOveroptConfig {
    /// The RL runs' settings (their `beta` is each of `betas` in turn, their reward the RM).
    pub rl: LmRlConfig,
    /// Prompts of the best-of-n estimate, and SFT samples drawn per prompt.
    pub prompts: usize,
    pub pool: usize,
    pub best_of: Vec<usize>,
    /// The RL curve's β, largest first.
    pub betas: Vec<f64>,
}

impl Default for LmOveroptConfig {
    fn default() -> Self {
        Self { rl: LmRlConfig::new(LmRlMethod::rloo()), prompts: 32, pool: 256, best_of: (0..=8).map(|i| 1 << i).collect(), betas: vec![1.0, 0.3, 0.1, 0.03, 0.01] }
    }
}

impl LmOveroptConfig {
    pub fn validate(&self) -> Result<()> {
        self.rl.validate()?;
        if self.prompts == 0 || self.best_of.is_empty() || self.best_of.iter().any(|&n| n == 0 || n > self.pool) {
            return Err(config_error("best_of", format!("each n must be in 1..={} (the pool of samples per prompt), with at least one prompt", self.pool)));
        }
        crate::policy::overoptimisation::validate_betas(&self.betas)
    }
}

/// What the LM experiment gives for one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmOveroptResult {
    pub seed: u64,
    pub rm_accuracy: f64,
    /// The SFT policy's mean proxy and gold reward (the curves' zero).
    pub reference_proxy: f64,
    pub reference_gold: f64,
    pub best_of_n: Vec<CurvePoint>,
    pub rl: Vec<CurvePoint>,
    pub bon_fit: GaoFit,
    pub rl_fit: GaoFit,
}

/// SFT, the proxy RM, the best-of-n curve over a pool of SFT samples, then one RLOO run per β;
/// `on_point` sees each point as it is made.
pub fn overopt_lm<B: AutodiffBackend>(cfg: &LmOveroptConfig, device: &B::Device, on_point: impl FnMut(&CurvePoint)) -> Result<LmOveroptResult> {
    cfg.validate()?;
    let sft = sft_lm::<B>(&cfg.rl.base, device, |_, _, _| {})?;
    let (rm, rm_accuracy) = train_reward_model::<B>(&cfg.rl, device)?;
    overopt_lm_from(cfg, sft.lm, &rm, rm_accuracy, device, on_point)
}

/// [`overopt_lm`] from an SFT model and a proxy RM already trained for `cfg.rl` (by [`sft_lm`] on
/// `cfg.rl.base` and [`train_reward_model`] on `cfg.rl`), so a caller that also runs other methods
/// from them trains each once.
pub fn overopt_lm_from<B: AutodiffBackend>(
    cfg: &LmOveroptConfig,
    sft: TinyLm<B>,
    rm: &TfmRewardModel<B::InnerBackend>,
    rm_accuracy: f64,
    device: &B::Device,
    mut on_point: impl FnMut(&CurvePoint),
) -> Result<LmOveroptResult> {
    cfg.validate()?;
    let reference = sft.valid();
    let mut rng = Rng::stream(cfg.rl.base.seed, "lm-overopt");
    let (mut proxies, mut golds) = (vec![], vec![]);
    for _ in 0..cfg.prompts {
        let prompt = task_prompt(&mut rng);
        let examples = rollouts(&reference, vec![prompt; cfg.pool], &mut rng, device)?;
        proxies.push(score(Some(rm), &examples, device)?);
        golds.push(examples.iter().map(gold_of).collect::<Vec<f64>>());
    }
    let mean_over = |f: &dyn Fn(usize) -> f64| (0..cfg.prompts).map(f).sum::<f64>() / cfg.prompts as f64;
    let flat_mean = |v: &[Vec<f64>]| v.iter().flatten().sum::<f64>() / (cfg.prompts * cfg.pool) as f64;
    let (reference_proxy, reference_gold) = (flat_mean(&proxies), flat_mean(&golds));
    let mut bon = vec![];
    for &n in &cfg.best_of {
        let kl = best_of_n_kl(n);
        let p = CurvePoint {
            knob: n as f64,
            kl,
            d: kl.sqrt(),
            proxy: mean_over(&|i| best_of_n_expectation(&proxies[i], &proxies[i], n)) - reference_proxy,
            gold: mean_over(&|i| best_of_n_expectation(&proxies[i], &golds[i], n)) - reference_gold,
        };
        on_point(&p);
        bon.push(p);
    }
    let mut rl = vec![];
    for &beta in &cfg.betas {
        let run = LmRlConfig { beta, reward: LmReward::RewardModel, ..cfg.rl.clone() };
        let s = rlhf_from(&run, sft.clone(), Some(rm), rm_accuracy, device, |_| {})?;
        let kl = s.final_kl.max(0.0);
        let p = CurvePoint { knob: beta, kl, d: kl.sqrt(), proxy: s.final_reward - reference_proxy, gold: s.final_gold - reference_gold };
        on_point(&p);
        rl.push(p);
    }
    Ok(LmOveroptResult { seed: cfg.rl.base.seed, rm_accuracy, reference_proxy, reference_gold, bon_fit: fit_best_of_n(&bon), rl_fit: fit_rl(&rl), best_of_n: bon, rl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::seeds::assert_on_every_seed;
    use burn::backend::{Autodiff, Flex};

    /// RLOO or PPO from a seed's SFT model and RM at TRL's β = 0.05 and at β = 2 (on the scale of
    /// the RM's rewards, which span several nats): (RM accuracy, win rate over SFT, judged reward,
    /// SFT's, KL at β = 0.05, at 2).
    fn at_two_betas(method: LmRlMethod, seed: u64, sft: &TinyLm<Autodiff<Flex>>, rm: &TfmRewardModel<Flex>, rm_accuracy: f64) -> (f64, f64, f64, f64, f64, f64) {
        let mut cfg = LmRlConfig::new(method);
        cfg.base.seed = seed;
        let run = |beta| {
            let cfg = LmRlConfig { beta, ..cfg.clone() };
            rlhf_from(&cfg, sft.clone(), Some(rm), rm_accuracy, &Default::default(), |_| {}).unwrap()
        };
        let (low, high) = (run(0.05), run(2.0));
        (low.rm_accuracy, low.win_rate, low.policy_reward, low.reference_reward, low.final_kl, high.final_kl)
    }

    /// One seed of the tiny LM's pipeline, each stage trained once and shared by the claims below:
    /// the SFT model (the same for DPO's and RL's configs: SFT reads only the seed, its steps,
    /// batch and learning rate) and the transformer RM; then DPO and IRPO from the SFT model (each
    /// seed's SFT model is the reference of both), and RLOO and PPO against the RM.
    struct Pipeline {
        /// (DPO first loss, reference reward, DPO win rate, DPO reward, IRPO win rate, IRPO reward).
        dpo: (f64, f64, f64, f64, f64, f64),
        rloo: (f64, f64, f64, f64, f64, f64),
        ppo: (f64, f64, f64, f64, f64, f64),
        overopt: Overopt,
        eurus: Eurus,
    }

    /// (DPO's chosen reward, NCA's, KTO's, DPO's judged reward, NCA's, KTO's).
    type Eurus = (f64, f64, f64, f64, f64, f64);

    /// Eurus's reward dynamics (Yuan et al. 2024, §3): DPO, NCA and KTO from one SFT model at
    /// β = 0.1 (the paper's), 150 steps at lr 6e-4, each run's implicit reward of the chosen
    /// (shouted) completions over the task's prompts and its judged reward. (At 60 steps and the
    /// default lr 2e-4 DPO's chosen reward was still about +0.1 on seeds 0–3; at 100 steps and
    /// 6e-4 it was below 0 on 7 of seeds 0–7, seed 4 at +0.02; at 150 steps seed 4 is −0.02.)
    fn eurus_figures(seed: u64, sft: &crate::policy::lm::SftModel<Autodiff<Flex>>) -> Eurus {
        use crate::policy::lm::align_from_sft;
        use crate::policy::losses::{LossSettings, build};
        let run = |name: &str| {
            let mut cfg = LmAlignConfig::new(build(name, &LossSettings::new(0.1)).unwrap());
            (cfg.seed, cfg.steps, cfg.lr) = (seed, 150, 6e-4);
            let s = align_from_sft(&cfg, sft.clone(), &Default::default(), |_, _, _| {}).unwrap();
            (s.chosen_reward, s.policy_reward)
        };
        let (d, n, k) = (run("dpo"), run("nca-pair"), run("kto"));
        (d.0, n.0, k.0, d.1, n.1, k.1)
    }

    /// Per seed, Gao et al.'s experiment against the same RM: (best-of-n gold at n = 16, its proxy
    /// rising in n, RL gold at β = 1 and at β = 0.01, RL proxy at both, d at both, best-of-n gold at
    /// n = 256 minus its peak). Two β of the README's five keep it to seconds per seed.
    type Overopt = (f64, bool, f64, f64, f64, f64, f64, f64, f64);

    fn overopt_figures(rl: &LmRlConfig, sft: &TinyLm<Autodiff<Flex>>, rm: &TfmRewardModel<Flex>, rm_accuracy: f64) -> Overopt {
        let cfg = LmOveroptConfig { rl: rl.clone(), betas: vec![1.0, 0.01], ..Default::default() };
        let r = overopt_lm_from(&cfg, sft.clone(), rm, rm_accuracy, &Default::default(), |_| {}).unwrap();
        let at = |n: f64| r.best_of_n.iter().find(|p| p.knob == n).expect("n in best_of").gold;
        let rises = r.best_of_n.windows(2).all(|w| w[1].proxy >= w[0].proxy - 1e-9);
        let peak = r.best_of_n.iter().map(|p| p.gold).fold(f64::NEG_INFINITY, f64::max);
        let (hi, lo) = (&r.rl[0], &r.rl[1]);
        (at(16.0), rises, hi.gold, lo.gold, hi.proxy, lo.proxy, hi.d, lo.d, at(256.0) - peak)
    }

    fn pipeline(seed: u64) -> Pipeline {
        use crate::policy::dpo::PolicyLoss;
        use crate::policy::lm::align_from_sft;
        let device = Default::default();
        // β inside DPO's usual 0.1–0.5.
        let mut dpo = LmAlignConfig::new(PolicyLoss::Sigmoid { beta: 0.3 });
        dpo.seed = seed;
        let mut irpo = dpo.clone();
        irpo.loss = PolicyLoss::Irpo { beta: 0.3, alpha: PolicyLoss::IRPO_ALPHA };
        let mut rl = LmRlConfig::new(LmRlMethod::rloo());
        rl.base.seed = seed;
        let sft_fields = |c: &LmAlignConfig| (c.seed, c.sft_steps, c.batch, c.sft_lr, c.shout_rate);
        assert_eq!(sft_fields(&rl.base), sft_fields(&dpo), "one SFT model serves both configs");
        // Each stage's seconds go to stderr: where a seed's time goes, for the next cut.
        let mut clock = std::time::Instant::now();
        let mut lap = |stage: &str| eprintln!("seed {seed}: {stage} {:.1} s", std::mem::replace(&mut clock, std::time::Instant::now()).elapsed().as_secs_f64());
        let sft = sft_lm::<Autodiff<Flex>>(&dpo, &device, |_, _, _| {}).unwrap();
        lap("SFT");
        let (rm, rm_accuracy) = train_reward_model::<Autodiff<Flex>>(&rl, &device).unwrap();
        lap("RM");
        let d = align_from_sft(&dpo, sft.clone(), &device, |_, _, _| {}).unwrap();
        let i = align_from_sft(&irpo, sft.clone(), &device, |_, _, _| {}).unwrap();
        lap("DPO and IRPO");
        let eurus = eurus_figures(seed, &sft);
        lap("Eurus: DPO, NCA and KTO at β = 0.1");
        let rloo = at_two_betas(LmRlMethod::rloo(), seed, &sft.lm, &rm, rm_accuracy);
        lap("RLOO at two β");
        let ppo = at_two_betas(LmRlMethod::ppo(), seed, &sft.lm, &rm, rm_accuracy);
        lap("PPO at two β");
        let overopt = overopt_figures(&rl, &sft.lm, &rm, rm_accuracy);
        lap("over-optimisation (best-of-n, RLOO at two β)");
        Pipeline { dpo: (d.first_loss, d.reference_reward, d.win_rate, d.policy_reward, i.win_rate, i.policy_reward), rloo, ppo, overopt, eurus }
    }

    // Against a transformer RM trained on the shout task's pairs the policy beats the SFT model,
    // and β bounds how far it moves: the KL (on 200 fresh samples) is non-negative within noise,
    // and no larger at β = 2 than at 0.05 beyond that noise (0.1): where both runs settle on the
    // shouted word they share its KL.
    fn holds(&(acc, win, _, _, kl_low, kl_high): &(f64, f64, f64, f64, f64, f64)) -> bool {
        acc > 0.95 && win > 0.6 && kl_high >= -0.05 && kl_high < kl_low + 0.1
    }

    /// DPO, RLOO and PPO on the tiny LM over seeds 0–7 (a seed's pipeline takes about a minute),
    /// Eurus's reward dynamics (DPO against NCA and KTO), and Gao et al.'s over-optimisation
    /// against the same RM: one test so that each seed's SFT
    /// model and RM are trained once for all of them; they were four tests that each trained their
    /// own copies, the same figures in about twice the time. Each claim is asserted on its own.
    #[test]
    fn claim_tiny_lm_dpo_rloo_and_ppo_beat_the_sft_model_and_rl_over_optimises_its_rm() {
        use crate::studies::seeds::assert_on_fraction;
        let seeds = 0..8u64;
        let runs: Vec<Pipeline> = seeds.clone().map(pipeline).collect();
        let at = |s: u64| &runs[s as usize];
        // TRL's invariant: with policy = reference the first DPO loss is ln 2. The SFT model rarely
        // shouts; IRPO (DPO + NLL on the chosen side) makes it shout real words on every seed.
        assert_on_every_seed(
            "tiny LM: (DPO first loss, reference reward, DPO win rate, DPO reward, IRPO win rate, IRPO reward); first loss ln 2, reference < 0.3, IRPO win > 0.8 and reward > 0.7",
            seeds.clone(),
            |s| at(s).dpo,
            |&(first, reference, _, _, irpo_win, irpo_reward)| (first - std::f64::consts::LN_2).abs() < 1e-5 && reference < 0.3 && irpo_win > 0.8 && irpo_reward > 0.7,
        );
        // Plain DPO wins on most seeds; on the others it lowers the rejected completion by taking
        // mass from the words themselves (likelihood displacement: samples such as " \no\ne"),
        // which IRPO's NLL term prevents. (7 of seeds 0–7 above 0.6 when this was written; seed 5
        // is the displaced one.)
        assert_on_fraction("tiny LM: DPO beats the reference (win rate > 0.6)", seeds.clone(), 0.35, |s| at(s).dpo, |f| f.2 > 0.6);
        // Eurus: DPO widens the margin by pushing the chosen completions down too (their implicit
        // reward ends below 0, and the word is displaced: samples such as " !\nybe!"), while NCA's
        // and KTO's absolute terms keep it above 0 and the policy shouting the word.
        assert_on_every_seed(
            "tiny LM, Eurus's reward dynamics at β = 0.1: (DPO's chosen reward, NCA's, KTO's, DPO's judged reward, NCA's, KTO's); DPO's < 0 < 0.05 < NCA's and KTO's, whose judged reward beats DPO's by ≥ 0.3",
            seeds.clone(),
            |s| at(s).eurus,
            |&(d, n, k, dj, nj, kj)| d < 0.0 && n > 0.05 && k > 0.05 && nj > dj + 0.3 && kj > dj + 0.3,
        );
        assert_on_every_seed(
            "tiny LM, RLOO against the transformer RM: (RM accuracy, win rate over SFT, judged reward, SFT's, KL at β = 0.05, at β = 2); RM accuracy > 0.95, win > 0.6, KL ordered by β",
            seeds.clone(),
            |s| at(s).rloo,
            holds,
        );
        // PPO at β = 0.05 can over-optimise the RM: on some seeds it drifts far (KL ≈ 6) to
        // completions the RM scores high and the judge does not, and its KL at β = 2 need not be
        // below that. So the claim is on most seeds (the binomial bound), not every one.
        assert_on_fraction(
            "tiny LM, PPO against the transformer RM: (RM accuracy, win rate over SFT, judged reward, SFT's, KL at β = 0.05, at β = 2); RM accuracy > 0.95, win > 0.6, KL ordered by β",
            seeds.clone(),
            0.35,
            |s| at(s).ppo,
            holds,
        );
        // Over-optimisation: on every seed best-of-n against the RM first helps the judge, its
        // proxy rises in n, and RL at β = 0.01 keeps the RM's reward (within 0.5 of its ~6-nat gain
        // over SFT).
        assert_on_every_seed(
            "tiny LM over-optimisation: (bon gold at n = 16, bon proxy rises, RL gold β = 1, β = 0.01, RL proxy β = 1, β = 0.01, d β = 1, β = 0.01, bon gold n = 256 − peak); bon gold > 0.3, proxy kept",
            seeds.clone(),
            |s| at(s).overopt,
            |&(bon16, rises, _, _, p_hi, p_lo, _, _, _)| bon16 > 0.3 && rises && p_lo > p_hi - 0.5,
        );
        // On most seeds (7 of 8 when written; the binomial bound at 0.35, as the PPO claim) RL at
        // β = 0.01 moves further from SFT and the judge's reward falls by at least 0.1: the RM
        // rates shouted non-words (" nee!") as it rates the word. Seed 5 stayed near β = 1's
        // policy. Best-of-n's judged reward at n = 256 is below its peak on as many.
        assert_on_fraction("tiny LM: RL at β = 0.01 moves further and the judge's reward falls ≥ 0.1", seeds.clone(), 0.35, |s| at(s).overopt, |f| f.7 > f.6 && f.3 < f.2 - 0.1);
        assert_on_fraction("tiny LM: best-of-n's judged reward at n = 256 is below its peak", seeds, 0.35, |s| at(s).overopt, |f| f.8 < -1e-9);
    }

    #[test]
    fn the_implicit_reward_is_read_at_the_kl_coefficient_or_at_one_without_a_kl_term() {
        let mut cfg = LmRlConfig::new(LmRlMethod::ppo());
        assert_eq!(cfg.implicit_reward_beta(), 0.05);
        cfg.beta = 0.0;
        assert_eq!(cfg.implicit_reward_beta(), 1.0);
    }

    /// A PPO run is a function of its seed: two runs of one seed agree exactly, iteration by
    /// iteration. (The critic's value head once came from burn's unseeded initialiser, and the
    /// claim test above then saw different seeds pass on different runs.)
    #[test]
    fn a_ppo_run_is_a_function_of_its_seed() {
        let run = || {
            let mut cfg = LmRlConfig::new(LmRlMethod::ppo());
            // 50 SFT steps (of 600): determinism does not need a good SFT model.
            (cfg.base.seed, cfg.base.sft_steps, cfg.iterations) = (2, 50, 6);
            let mut curve = vec![];
            let s = rlhf_lm::<Autodiff<Flex>>(&cfg, &Default::default(), |m| curve.push((m.reward, m.gold, m.kl))).unwrap();
            (curve, s.win_rate, s.policy_reward, s.final_kl)
        };
        assert_eq!(run(), run());
    }
}
