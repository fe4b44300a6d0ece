//! A tiny byte-level causal transformer LM, and the pipeline that aligns it: SFT on
//! demonstrations, then DPO (or any [`PolicyLoss`]) against a frozen copy as the reference.
//!
//! Sequence log-probabilities are summed over *completion* tokens only: the token at position t is
//! scored by the logits at t − 1, and `mask[t]` is 1 exactly where t holds a completion byte
//! (prompt and padding are 0), as TRL's `DPOTrainer` masks with `completion_mask`.

use burn::module::{AutodiffModule, Module};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::{log_softmax, softmax};
use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::policy::dpo::{PolicyBatch, PolicyLoss};
use crate::runtime::host_init::HostInit;
use crate::runtime::rng::Rng;
use crate::{Error, Result, config_error};

/// Bytes 0–255 plus one padding token.
pub const VOCAB: usize = 257;
pub const PAD: usize = 256;

/// Shape of the tiny LM (defaults: 2 pre-norm layers, width 64, 4 heads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TinyLmConfig {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Longest sequence (prompt + completion) in bytes.
    pub max_len: usize,
}

impl Default for TinyLmConfig {
    fn default() -> Self {
        Self { d_model: 64, n_layers: 2, n_heads: 4, d_ff: 128, max_len: 24 }
    }
}

#[derive(Module, Debug)]
pub struct TinyLm<B: Backend> {
    pub token: Embedding<B>,
    pub position: Embedding<B>,
    pub blocks: TransformerEncoder<B>,
    pub norm: LayerNorm<B>,
    pub head: Linear<B>,
}

impl TinyLmConfig {
    /// A model whose weights depend only on `seed` (see [`HostInit`]).
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> TinyLm<B> {
        self.init_shapes::<B>(device).map(&mut HostInit::new(Rng::stream(seed, "lm-init")))
    }

    fn init_shapes<B: Backend>(&self, device: &B::Device) -> TinyLm<B> {
        TinyLm {
            token: EmbeddingConfig::new(VOCAB, self.d_model).init(device),
            position: EmbeddingConfig::new(self.max_len, self.d_model).init(device),
            blocks: TransformerEncoderConfig::new(self.d_model, self.d_ff, self.n_heads, self.n_layers).with_dropout(0.0).with_norm_first(true).init(device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            head: LinearConfig::new(self.d_model, VOCAB).init(device),
        }
    }
}

impl<B: Backend> TinyLm<B> {
    /// Next-token logits at every position, `[n, T, VOCAB]`; position t sees tokens ≤ t only.
    pub fn logits(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.head.forward(self.hidden(tokens))
    }

    /// The final normed hidden state at every position, `[n, T, d_model]` (PPO's value head reads it).
    pub fn hidden(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [n, t] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<B, 1, Int>::arange(0..t as i64, &device).reshape([1, t]).repeat_dim(0, n);
        let x = self.token.forward(tokens) + self.position.forward(positions);
        let h = crate::text::transformer::encoder_forward(&self.blocks, x);
        self.norm.forward(h)
    }
}

/// log π(x_t | x_<t) for t = 1 … T − 1, `[n, T − 1]`.
pub fn token_logps<B: Backend>(logits: Tensor<B, 3>, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [n, t, _] = logits.dims();
    let lp = log_softmax(logits.narrow(1, 0, t - 1), 2);
    let targets = tokens.narrow(1, 1, t - 1).reshape([n, t - 1, 1]);
    lp.gather(2, targets).reshape([n, t - 1])
}

/// Σ_t mask[t] · log π(x_t | x_<t): the completion's log-probability per row, `[n]`.
pub fn sequence_logps<B: Backend>(token_logps: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, t1] = token_logps.dims();
    (token_logps * mask.narrow(1, 1, t1)).sum_dim(1).reshape([n])
}

/// TDPO's Σ_t KL(π_ref(·|x_<t) ‖ π_θ(·|x_<t)) over completion positions, `[n]`.
pub fn completion_kl<B: Backend>(ref_logits: Tensor<B, 3>, logits: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, t, _] = logits.dims();
    let lp_ref = log_softmax(ref_logits.narrow(1, 0, t - 1), 2);
    let lp = log_softmax(logits.narrow(1, 0, t - 1), 2);
    let kl: Tensor<B, 2> = (lp_ref.clone().exp() * (lp_ref - lp)).sum_dim(2).reshape([n, t - 1]);
    (kl * mask.narrow(1, 1, t - 1)).sum_dim(1).reshape([n])
}

/// LD-DPO's token weights (Liu et al. 2024; TRL's `ld_alpha`): for each pair, the first
/// min(|y_c|, |y_r|) completion tokens of both responses count fully and the rest by α, so the
/// longer response's extra tokens weigh less in its summed log-probability. Returns the chosen and
/// the rejected batch's weights, laid out as their masks (0 off the completion).
pub fn ld_weights(chosen: &Encoded, rejected: &Encoded, alpha: f64) -> (Vec<f32>, Vec<f32>) {
    let lens = |e: &Encoded| -> Vec<usize> { (0..e.rows).map(|i| e.mask[i * e.len..(i + 1) * e.len].iter().filter(|&&m| m > 0.0).count()).collect() };
    let (lc, lr) = (lens(chosen), lens(rejected));
    let weigh = |e: &Encoded| -> Vec<f32> {
        let mut out = vec![0f32; e.rows * e.len];
        for i in 0..e.rows {
            let shared = lc[i].min(lr[i]);
            let mut k = 0;
            for t in 0..e.len {
                if e.mask[i * e.len + t] > 0.0 {
                    k += 1;
                    out[i * e.len + t] = if k <= shared { 1.0 } else { alpha as f32 };
                }
            }
        }
        out
    };
    (weigh(chosen), weigh(rejected))
}

/// A padded batch of (prompt, completion) byte strings.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub tokens: Vec<i64>,
    /// 1 where the token is a completion byte.
    pub mask: Vec<f32>,
    pub rows: usize,
    pub len: usize,
}

impl Encoded {
    /// Right-pad every prompt + completion to the longest row; errors if one exceeds `max_len`.
    pub fn new(examples: &[(String, String)], max_len: usize) -> Result<Self> {
        let bytes: Vec<(Vec<u8>, Vec<u8>)> = examples.iter().map(|(p, c)| (p.as_bytes().to_vec(), c.as_bytes().to_vec())).collect();
        Self::from_bytes(&bytes, max_len)
    }

    /// [`Encoded::new`] on raw bytes.
    pub fn from_bytes(examples: &[(Vec<u8>, Vec<u8>)], max_len: usize) -> Result<Self> {
        let len = examples.iter().map(|(p, c)| p.len() + c.len()).max().unwrap_or(0).max(2);
        if len > max_len {
            return Err(config_error("lm.max_len", format!("a prompt + completion of {len} bytes exceeds max_len {max_len}")));
        }
        let (mut tokens, mut mask) = (vec![], vec![]);
        for (p, c) in examples {
            tokens.extend(p.iter().chain(c).map(|&b| i64::from(b)));
            mask.extend(std::iter::repeat_n(0.0, p.len()).chain(std::iter::repeat_n(1.0, c.len())));
            let pad = len - p.len() - c.len();
            tokens.extend(std::iter::repeat_n(PAD as i64, pad));
            mask.extend(std::iter::repeat_n(0.0, pad));
        }
        Ok(Self { tokens, mask, rows: examples.len(), len })
    }

    pub fn tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
        (
            Tensor::from_data(TensorData::new(self.tokens.clone(), [self.rows, self.len]), device),
            Tensor::from_data(TensorData::new(self.mask.clone(), [self.rows, self.len]), device),
        )
    }
}

/// The synthetic preference task: a prompt `"say <word>:"` and the completion `" <word>."` (usual)
/// or `" <word>!"` (shouted, the property users prefer), then a newline. The SFT demonstrations
/// shout only `shout_rate` of the time; every preference pair prefers the shouted completion.
/// Chosen and rejected share the word, so only the punctuation separates them, as in a
/// controlled-sentiment task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShoutTask {
    pub shout_rate: f64,
}

const WORDS: [&str; 8] = ["yes", "no", "ok", "sure", "fine", "maybe", "never", "later"];

impl ShoutTask {
    fn word(rng: &mut Rng) -> &'static str {
        WORDS[rng.below(WORDS.len())]
    }

    fn prompt(word: &str) -> String {
        format!("say {word}:")
    }

    /// The completion: the prompt's word with a full stop or, shouted, an exclamation mark; the
    /// newline ends it, so the model learns where to stop.
    fn completion(word: &str, shout: bool) -> String {
        format!(" {word}{}\n", if shout { '!' } else { '.' })
    }

    pub fn demonstrations(&self, n: usize, rng: &mut Rng) -> Vec<(String, String)> {
        (0..n)
            .map(|_| {
                let w = Self::word(rng);
                (Self::prompt(w), Self::completion(w, rng.uniform() < self.shout_rate))
            })
            .collect()
    }

    /// (prompt, chosen, rejected) triples: the shouted word over the quiet one.
    pub fn pairs(&self, n: usize, rng: &mut Rng) -> Vec<(String, String, String)> {
        (0..n)
            .map(|_| {
                let w = Self::word(rng);
                (Self::prompt(w), Self::completion(w, true), Self::completion(w, false))
            })
            .collect()
    }

    /// 1 for the prompt's word shouted ("say yes:" → " yes!"), 0 for anything else: quiet words
    /// and gibberish alike, so a policy cannot win by emitting random exclamation marks.
    pub fn reward(prompt: &str, completion: &str) -> f64 {
        let word = prompt.strip_prefix("say ").and_then(|p| p.strip_suffix(':')).unwrap_or("");
        let text = completion.split('\n').next().unwrap_or("");
        if !word.is_empty() && text == format!(" {word}!") { 1.0 } else { 0.0 }
    }
}

/// Sample `len` bytes after each prompt at the given temperature (host-side draws, so runs
/// reproduce), as text (bytes that are not UTF-8 shown as U+FFFD). RSO samples its SFT
/// candidates at 0.7.
pub fn sample<B: Backend>(lm: &TinyLm<B>, prompts: &[String], len: usize, temperature: f64, rng: &mut Rng, device: &B::Device) -> Result<Vec<String>> {
    Ok(sample_bytes(lm, prompts, len, temperature, rng, device)?.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect())
}

/// [`sample`]'s raw bytes: what a policy gradient must score, since a lossy round trip through
/// text would replace bytes ≥ 128 by three others the policy never drew.
pub fn sample_bytes<B: Backend>(lm: &TinyLm<B>, prompts: &[String], len: usize, temperature: f64, rng: &mut Rng, device: &B::Device) -> Result<Vec<Vec<u8>>> {
    let mut seqs: Vec<Vec<u8>> = prompts.iter().map(|p| p.as_bytes().to_vec()).collect();
    let mut out = vec![Vec::new(); prompts.len()];
    for _ in 0..len {
        // Rows have different lengths: right-pad and read each row's last real position.
        let width = seqs.iter().map(Vec::len).max().unwrap_or(1);
        let tokens: Vec<i64> = seqs.iter().flat_map(|s| s.iter().map(|&b| b as i64).chain(std::iter::repeat_n(PAD as i64, width - s.len()))).collect();
        let t = Tensor::<B, 2, Int>::from_data(TensorData::new(tokens, [seqs.len(), width]), device);
        // Only each row's last real position is sampled from: the head and the softmax run on
        // those rows alone (each row's values are the same as from the full `[n, T, VOCAB]`).
        let last: Vec<i64> = seqs.iter().enumerate().map(|(i, s)| (i * width + s.len() - 1) as i64).collect();
        let last = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [seqs.len()]), device);
        let hidden = lm.hidden(t).reshape([seqs.len() * width, lm.head.weight.dims()[0]]).select(0, last);
        let probs: Vec<f32> = softmax(lm.head.forward(hidden).div_scalar(temperature), 1).into_data().convert::<f32>().to_vec().map_err(|e| Error::Backend(format!("{e:?}")))?;
        for (i, s) in seqs.iter_mut().enumerate() {
            let row = &probs[i * VOCAB..(i + 1) * VOCAB];
            let u = rng.uniform() as f32;
            let mut acc = 0.0;
            // Sample among bytes only: padding is never a completion token.
            let total: f32 = row[..PAD].iter().sum();
            let byte = (0..PAD).find(|&b| {
                acc += row[b] / total;
                u < acc
            });
            let byte = byte.unwrap_or(b' ' as usize) as u8;
            s.push(byte);
            out[i].push(byte);
        }
    }
    Ok(out)
}

/// Temperature of the judged samples (RSO's for SFT candidates).
pub const SAMPLE_TEMPERATURE: f64 = 0.7;

/// Settings of one SFT → preference-optimisation run on [`ShoutTask`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmAlignConfig {
    pub seed: u64,
    pub sft_steps: usize,
    pub steps: usize,
    pub batch: usize,
    pub sft_lr: f64,
    pub lr: f64,
    pub loss: PolicyLoss,
    pub shout_rate: f64,
    /// Samples per side when measuring the win rate against the reference.
    pub eval_samples: usize,
    /// WPO: weight each pair's loss by the current policy's w_c·w_r ([`super::wpo`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_weighting: bool,
    /// LD-DPO: the weight α ∈ [0, 1] of the completion tokens past the shorter response's length
    /// in both responses' summed log-probabilities ([`ld_weights`]); None sums them all (α = 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ld_alpha: Option<f64>,
}

impl LmAlignConfig {
    pub fn new(loss: PolicyLoss) -> Self {
        Self { seed: 0, sft_steps: 600, steps: 60, batch: 32, sft_lr: 3e-3, lr: 2e-4, loss, shout_rate: 0.25, eval_samples: 200, use_weighting: false, ld_alpha: None }
    }

    pub fn validate(&self) -> Result<()> {
        if self.use_weighting && matches!(self.loss, PolicyLoss::Aot { .. } | PolicyLoss::AotUnpaired { .. }) {
            return Err(config_error("lm.use_weighting", super::wpo::AOT_REFUSAL));
        }
        if let Some(why) = super::losses::lookup(self.loss.name()).and_then(|e| e.refused_on_lm()) {
            return Err(config_error("lm.loss", why));
        }
        if self.ld_alpha.is_some() && matches!(self.loss, PolicyLoss::Kto { .. }) {
            return Err(config_error("lm.ld_alpha", "LD-DPO weights the tokens of a pair's longer response, and KTO scores each completion alone (its z₀ from mismatched pairs has no partner to split at); drop ld_alpha"));
        }
        if let Some(a) = self.ld_alpha
            && !(0.0..=1.0).contains(&a)
        {
            return Err(config_error("lm.ld_alpha", format!("must be in [0, 1] (the weight of the tokens past the shorter response), got {a}")));
        }
        if self.batch == 0 || self.eval_samples == 0 {
            return Err(config_error("lm.batch", "batch and eval_samples must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.shout_rate) {
            return Err(config_error("lm.shout_rate", "must be in [0, 1]"));
        }
        if !(self.lr > 0.0 && self.sft_lr > 0.0) {
            return Err(config_error("lm.lr", "learning rates must be positive"));
        }
        Ok(())
    }
}

/// The implicit reward β(log π − log π_ref) of the shouted (chosen) and of the quiet (rejected)
/// completion, each averaged over the task's eight prompts, which the task draws uniformly: TRL's
/// logged `rewards/chosen` and `rewards/rejected` in expectation, without a batch's noise.
pub fn task_implicit_rewards<B: Backend>(policy: &TinyLm<B>, reference: &TinyLm<B>, beta: f64, device: &B::Device) -> Result<(f64, f64)> {
    let max_len = TinyLmConfig::default().max_len;
    let side = |shout: bool| -> Result<f64> {
        let examples: Vec<(String, String)> = WORDS.iter().map(|w| (ShoutTask::prompt(w), ShoutTask::completion(w, shout))).collect();
        let (tokens, mask) = Encoded::new(&examples, max_len)?.tensors::<B>(device);
        let logps = |lm: &TinyLm<B>| sequence_logps(token_logps(lm.logits(tokens.clone()), tokens.clone()), mask.clone());
        let ratios: Vec<f64> = (logps(policy) - logps(reference)).into_data().convert::<f64>().to_vec::<f64>().map_err(|e| Error::Backend(format!("{e:?}")))?;
        Ok(beta * ratios.iter().sum::<f64>() / ratios.len() as f64)
    };
    Ok((side(true)?, side(false)?))
}

/// What an LM alignment run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmSummary {
    pub sft_final_loss: f64,
    /// The preference loss at step 1, where policy = reference (ln 2 for DPO).
    pub first_loss: f64,
    pub final_loss: f64,
    /// P(judge prefers a policy sample to a reference sample) + ½ P(tie).
    pub win_rate: f64,
    /// Mean judge reward of reference and policy samples.
    pub reference_reward: f64,
    pub policy_reward: f64,
    /// TRL's `rewards/chosen` and `rewards/rejected` at the end, in expectation: the implicit
    /// reward β(log π − log π_ref) of the shouted and of the quiet completion, averaged over the
    /// task's prompts ([`task_implicit_rewards`]).
    pub chosen_reward: f64,
    pub rejected_reward: f64,
    pub policy_samples: Vec<String>,
    pub reference_samples: Vec<String>,
}

/// SFT on demonstrations, then preference optimisation against a frozen copy of the SFT model.
/// `on_step(phase, step, loss)` sees both phases ("sft", "align").
pub fn align_lm<B: AutodiffBackend>(cfg: &LmAlignConfig, device: &B::Device, on_step: impl FnMut(&str, usize, f64)) -> Result<LmSummary> {
    Ok(align_lm_models::<B>(cfg, device, on_step)?.summary)
}

/// An aligned tiny LM: the run's report, the policy, and the reference it was trained against.
pub struct LmAligned<B: AutodiffBackend> {
    pub summary: LmSummary,
    pub policy: TinyLm<B::InnerBackend>,
    pub reference: TinyLm<B::InnerBackend>,
}

/// [`align_lm`], keeping the models (a run folder saves them for `eval`'s implicit reward).
pub fn align_lm_models<B: AutodiffBackend>(cfg: &LmAlignConfig, device: &B::Device, mut on_step: impl FnMut(&str, usize, f64)) -> Result<LmAligned<B>> {
    let sft = sft_lm::<B>(cfg, device, &mut on_step)?;
    align_from_sft_models(cfg, sft, device, on_step)
}

/// The SFT model of a run, with the data stream where SFT left it, so that several preference
/// losses can start from the same reference (`align_from_sft` on clones of it).
#[derive(Clone, Debug)]
pub struct SftModel<B: AutodiffBackend> {
    pub(crate) lm: TinyLm<B>,
    pub(crate) rng: Rng,
    pub(crate) final_loss: f64,
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> Result<f64> {
    let v: Vec<f64> = t.into_data().convert::<f64>().to_vec().map_err(|e| Error::Backend(format!("{e:?}")))?;
    let x = v[0];
    if x.is_finite() { Ok(x) } else { Err(Error::NonFinite { step: 0, value: x as f32 }) }
}

/// The SFT phase of [`align_lm`].
pub fn sft_lm<B: AutodiffBackend>(cfg: &LmAlignConfig, device: &B::Device, mut on_step: impl FnMut(&str, usize, f64)) -> Result<SftModel<B>> {
    cfg.validate()?;
    let lm_cfg = TinyLmConfig::default();
    let mut lm = lm_cfg.init::<B>(cfg.seed, device);
    let task = ShoutTask { shout_rate: cfg.shout_rate };
    let mut rng = Rng::stream(cfg.seed, "lm-data");
    let mut optim = AdamConfig::new().init();
    let mut sft_final_loss = f64::NAN;
    for step in 1..=cfg.sft_steps {
        let (tokens, mask) = Encoded::new(&task.demonstrations(cfg.batch, &mut rng), lm_cfg.max_len)?.tensors::<B>(device);
        let lp = token_logps(lm.logits(tokens.clone()), tokens);
        let m = mask.narrow(1, 1, lp.dims()[1]);
        let loss = (lp * m.clone()).sum().neg() / m.sum();
        sft_final_loss = scalar(loss.clone())?;
        on_step("sft", step, sft_final_loss);
        let grads = GradientsParams::from_grads(loss.backward(), &lm);
        lm = optim.step(cfg.sft_lr, lm, grads);
    }
    Ok(SftModel { lm, rng, final_loss: sft_final_loss })
}

/// The preference phase of [`align_lm`], from an SFT model of the same config.
pub fn align_from_sft<B: AutodiffBackend>(cfg: &LmAlignConfig, sft: SftModel<B>, device: &B::Device, on_step: impl FnMut(&str, usize, f64)) -> Result<LmSummary> {
    Ok(align_from_sft_models(cfg, sft, device, on_step)?.summary)
}

/// [`align_from_sft`], keeping the policy and the reference.
pub fn align_from_sft_models<B: AutodiffBackend>(cfg: &LmAlignConfig, sft: SftModel<B>, device: &B::Device, mut on_step: impl FnMut(&str, usize, f64)) -> Result<LmAligned<B>> {
    cfg.validate()?;
    let lm_cfg = TinyLmConfig::default();
    let task = ShoutTask { shout_rate: cfg.shout_rate };
    let SftModel { mut lm, mut rng, final_loss: sft_final_loss } = sft;
    let reference = lm.valid();
    let mut optim = AdamConfig::new().init();
    let (mut first_loss, mut final_loss) = (f64::NAN, f64::NAN);
    for step in 1..=cfg.steps {
        let pairs = task.pairs(cfg.batch, &mut rng);
        let chosen: Vec<(String, String)> = pairs.iter().map(|(p, c, _)| (p.clone(), c.clone())).collect();
        let rejected: Vec<(String, String)> = pairs.iter().map(|(p, _, r)| (p.clone(), r.clone())).collect();
        let (enc_c, enc_r) = (Encoded::new(&chosen, lm_cfg.max_len)?, Encoded::new(&rejected, lm_cfg.max_len)?);
        let ld = cfg.ld_alpha.map(|a| ld_weights(&enc_c, &enc_r, a));
        // `ld`: LD-DPO's token weights for the summed log-probs in place of the completion mask.
        let side = |enc: &Encoded, ld: Option<&Vec<f32>>| -> Result<_> {
            let (tokens, mask) = enc.tensors::<B>(device);
            let seq_mask = ld.map_or_else(|| mask.clone(), |w| Tensor::from_data(TensorData::new(w.clone(), [enc.rows, enc.len]), device));
            let ex_len = enc.rows;
            let logits = lm.logits(tokens.clone());
            let ref_logits = Tensor::<B, 3>::from_inner(reference.logits(tokens.clone().inner()));
            let token_lp = token_logps(logits.clone(), tokens.clone());
            let weights = cfg.use_weighting.then(|| super::wpo::sequence_weights(logits.clone(), token_lp.clone(), mask.clone()));
            let logps = sequence_logps(token_lp, seq_mask.clone());
            let ref_logps = sequence_logps(token_logps(ref_logits.clone(), tokens), seq_mask);
            let kl = completion_kl(ref_logits, logits, mask.clone());
            let len = mask.sum_dim(1).reshape([ex_len]);
            Ok((logps, ref_logps, kl, len, weights))
        };
        let (c_lp, c_ref, c_kl, c_len, c_w) = side(&enc_c, ld.as_ref().map(|w| &w.0))?;
        let (r_lp, r_ref, r_kl, r_len, r_w) = side(&enc_r, ld.as_ref().map(|w| &w.1))?;
        let mut batch = PolicyBatch::new(c_lp, r_lp, c_ref, r_ref, c_len, r_len);
        batch.chosen_kl = Some(c_kl);
        batch.rejected_kl = Some(r_kl);
        batch.pair_weights = c_w.zip(r_w).map(|(c, r)| c * r);
        if matches!(cfg.loss, PolicyLoss::Kto { .. }) {
            // TRL's z₀: each prompt with the next pair's chosen completion (mismatched), whose
            // mean log-ratio estimates KL(π_θ ‖ π_ref), clamped at 0 and detached.
            let n = chosen.len();
            let shifted: Vec<(String, String)> = (0..n).map(|i| (chosen[i].0.clone(), chosen[(i + 1) % n].1.clone())).collect();
            let (m_lp, m_ref, _, _, _) = side(&Encoded::new(&shifted, lm_cfg.max_len)?, None)?;
            let z0 = super::dpo::kto_z0((m_lp - m_ref).detach());
            batch.kl_baseline = Some(Tensor::full([n], z0, device));
        }
        if let Some(missing) = cfg.loss.missing_input(&batch) {
            return Err(config_error("loss", format!("{missing}, which the tiny-LM pipeline does not provide")));
        }
        let loss = cfg.loss.compute(&batch).loss;
        final_loss = scalar(loss.clone())?;
        if step == 1 {
            first_loss = final_loss;
        }
        on_step("align", step, final_loss);
        let grads = GradientsParams::from_grads(loss.backward(), &lm);
        lm = optim.step(cfg.lr, lm, grads);
    }

    let policy = lm.valid();
    let judged = judge(&policy, &reference, cfg, device)?;
    let (chosen_reward, rejected_reward) = task_implicit_rewards(&policy, &reference, cfg.loss.reward_beta(), device)?;
    let summary = LmSummary {
        sft_final_loss,
        first_loss,
        final_loss,
        win_rate: judged.win_rate,
        reference_reward: judged.reference_reward,
        policy_reward: judged.policy_reward,
        chosen_reward,
        rejected_reward,
        policy_samples: judged.policy_samples,
        reference_samples: judged.reference_samples,
    };
    Ok(LmAligned { summary, policy, reference })
}

/// The judge's verdict on a policy against the reference (see [`judge`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub win_rate: f64,
    pub reference_reward: f64,
    pub policy_reward: f64,
    pub policy_samples: Vec<String>,
    pub reference_samples: Vec<String>,
}

/// Bytes the judge samples after a prompt: the longest word, its space, mark and newline.
pub fn completion_width() -> usize {
    WORDS.iter().map(|w| w.len()).max().unwrap_or(1) + 3
}

/// A fresh prompt of the task (its word drawn from `rng`).
pub fn task_prompt(rng: &mut Rng) -> String {
    ShoutTask::prompt(ShoutTask::word(rng))
}

/// Policy samples against reference samples on the same fresh prompts (`cfg.eval_samples`, at
/// [`SAMPLE_TEMPERATURE`]), judged by [`ShoutTask::reward`]: P(policy wins) + ½ P(tie).
pub fn judge<B: Backend>(policy: &TinyLm<B>, reference: &TinyLm<B>, cfg: &LmAlignConfig, device: &B::Device) -> Result<Judged> {
    let mut eval_rng = Rng::stream(cfg.seed, "lm-eval");
    let prompts: Vec<String> = (0..cfg.eval_samples).map(|_| task_prompt(&mut eval_rng)).collect();
    let width = completion_width();
    let from_policy = sample(policy, &prompts, width, SAMPLE_TEMPERATURE, &mut eval_rng, device)?;
    let from_reference = sample(reference, &prompts, width, SAMPLE_TEMPERATURE, &mut eval_rng, device)?;
    let (mut wins, mut pr, mut rr) = (0.0, 0.0, 0.0);
    for ((p, r), prompt) in from_policy.iter().zip(&from_reference).zip(&prompts) {
        let (a, b) = (ShoutTask::reward(prompt, p), ShoutTask::reward(prompt, r));
        wins += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
        pr += a;
        rr += b;
    }
    let n = prompts.len() as f64;
    Ok(Judged {
        win_rate: wins / n,
        reference_reward: rr / n,
        policy_reward: pr / n,
        policy_samples: from_policy.into_iter().take(8).collect(),
        reference_samples: from_reference.into_iter().take(8).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f64>;

    #[test]
    fn completion_log_probs_count_completion_tokens_only() {
        // Hand-made logits over a 257-way vocabulary: at every position the next-token distribution
        // puts logit `l` on byte (t + 1) and 0 elsewhere, so log π(x_{t+1}) is known in closed form.
        let dev = Default::default();
        let enc = Encoded::new(&[("ab".into(), "cd".into()), ("a".into(), "b".into())], 16).unwrap();
        assert_eq!(enc.len, 4);
        assert_eq!(enc.mask, vec![0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(enc.tokens[6..], [PAD as i64, PAD as i64]);
        let (tokens, mask) = enc.tensors::<B>(&dev);
        let l = [2.0, 0.5, -1.0];
        let mut logits = vec![0.0f64; 2 * 4 * VOCAB];
        for row in 0..2 {
            for t in 0..3 {
                let next = enc.tokens[row * 4 + t + 1] as usize;
                logits[(row * 4 + t) * VOCAB + next] = l[t];
            }
        }
        let logits = Tensor::<B, 3>::from_data(TensorData::new(logits, [2, 4, VOCAB]), &dev);
        let lp_of = |x: f64| x - (x.exp() + (VOCAB - 1) as f64).ln();
        let got: Vec<f64> = sequence_logps(token_logps(logits, tokens), mask).into_data().to_vec().unwrap();
        // Row 0: completion tokens c (scored at t = 1) and d (t = 2); the prompt's b (t = 0) is not counted.
        let row0 = lp_of(l[1]) + lp_of(l[2]);
        assert!((got[0] - row0).abs() < 1e-12, "{} vs {row0}", got[0]);
        assert!((got[0] - (row0 + lp_of(l[0]))).abs() > 0.1, "a prompt-counting bug would change the value");
        // Row 1: only b (t = 0); the padding after it is not counted.
        assert!((got[1] - lp_of(l[0])).abs() < 1e-12, "{} vs {}", got[1], lp_of(l[0]));
    }

    #[test]
    fn the_model_is_causal_and_padding_does_not_change_a_rows_log_prob() {
        let dev = Default::default();
        let lm = TinyLmConfig::default().init::<B>(1, &dev);
        let (a, _) = Encoded::new(&[("say yes:".into(), " no.".into())], 24).unwrap().tensors::<B>(&dev);
        let (b, _) = Encoded::new(&[("say yes:".into(), " no!".into())], 24).unwrap().tensors::<B>(&dev);
        let la: Vec<f64> = lm.logits(a).narrow(1, 0, 9).into_data().to_vec().unwrap();
        let lb: Vec<f64> = lm.logits(b).narrow(1, 0, 9).into_data().to_vec().unwrap();
        assert_eq!(la, lb, "positions before the change see the same past");
        assert_eq!(ShoutTask::reward("say no:", " no!\nxx"), 1.0);
        assert_eq!(ShoutTask::reward("say no:", " no.\n"), 0.0);
        assert_eq!(ShoutTask::reward("say no:", " yes!\n"), 0.0);

        let alone = Encoded::new(&[("say ok:".into(), " ok".into())], 24).unwrap();
        let padded = Encoded::new(&[("say ok:".into(), " ok".into()), ("say never:".into(), " never".into())], 24).unwrap();
        let lp = |e: &Encoded| -> Vec<f64> {
            let (t, m) = e.tensors::<B>(&dev);
            sequence_logps(token_logps(lm.logits(t.clone()), t), m).into_data().to_vec().unwrap()
        };
        assert!((lp(&alone)[0] - lp(&padded)[0]).abs() < 1e-9, "right padding is invisible to a causal model");
    }

    /// Sampling reads only each row's last real position: its draws are those of the full
    /// `[n, T, VOCAB]` softmax, row by row, for prompts of different lengths (so rows are padded).
    #[test]
    fn sampling_from_the_last_positions_draws_what_the_full_softmax_draws() {
        use burn::backend::Flex;
        fn full<B: Backend>(lm: &TinyLm<B>, prompts: &[String], len: usize, rng: &mut Rng, dev: &B::Device) -> Vec<Vec<u8>> {
            let mut seqs: Vec<Vec<u8>> = prompts.iter().map(|p| p.as_bytes().to_vec()).collect();
            for _ in 0..len {
                let width = seqs.iter().map(Vec::len).max().unwrap();
                let tokens: Vec<i64> = seqs.iter().flat_map(|s| s.iter().map(|&b| b as i64).chain(std::iter::repeat_n(PAD as i64, width - s.len()))).collect();
                let t = Tensor::<B, 2, Int>::from_data(TensorData::new(tokens, [seqs.len(), width]), dev);
                let probs: Vec<f32> = softmax(lm.logits(t).div_scalar(0.7), 2).into_data().convert::<f32>().to_vec().unwrap();
                for (i, s) in seqs.iter_mut().enumerate() {
                    let row = &probs[(i * width + s.len() - 1) * VOCAB..(i * width + s.len()) * VOCAB];
                    let (u, total) = (rng.uniform() as f32, row[..PAD].iter().sum::<f32>());
                    let mut acc = 0.0;
                    let byte = (0..PAD).find(|&b| {
                        acc += row[b] / total;
                        u < acc
                    });
                    s.push(byte.unwrap_or(b' ' as usize) as u8);
                }
            }
            seqs.into_iter().zip(prompts).map(|(s, p)| s[p.len()..].to_vec()).collect()
        }
        fn check<B: Backend>(dev: &B::Device) {
            let lm = TinyLmConfig::default().init::<B>(4, dev);
            let prompts: Vec<String> = ["say ok:", "say never:", "a", "say maybe:"].map(String::from).to_vec();
            let got = sample_bytes(&lm, &prompts, 8, 0.7, &mut Rng::stream(9, "t"), dev).unwrap();
            assert_eq!(got, full(&lm, &prompts, 8, &mut Rng::stream(9, "t"), dev));
            assert!(got.iter().any(|g| g != &got[0]), "the rows differ, so a row mix-up would show");
        }
        check::<B>(&Default::default());
        check::<Flex>(&Default::default());
    }

    /// With WPO's weights the first step's loss is no longer DPO's ln 2 (policy = reference, but
    /// each pair counts w_c·w_r), and training runs; without them it is ln 2.
    #[test]
    fn wpo_weights_the_lm_pairs() {
        use burn::backend::{Autodiff, Flex};
        let run = |use_weighting| {
            let mut cfg = LmAlignConfig::new(PolicyLoss::Sigmoid { beta: 0.3 });
            (cfg.sft_steps, cfg.steps, cfg.eval_samples, cfg.use_weighting) = (30, 3, 8, use_weighting);
            align_lm::<Autodiff<Flex>>(&cfg, &Default::default(), |_, _, _| {}).unwrap()
        };
        let (plain, weighted) = (run(false), run(true));
        assert!((plain.first_loss - std::f64::consts::LN_2).abs() < 1e-5, "{}", plain.first_loss);
        assert!((weighted.first_loss - std::f64::consts::LN_2).abs() > 1e-3 && weighted.final_loss.is_finite(), "{}", weighted.first_loss);
    }

    /// The task's implicit rewards are 0 for the reference itself, and β times the mean
    /// log-ratio of the eight prompts' completions otherwise (checked against one row at a time).
    #[test]
    fn task_implicit_rewards_are_zero_at_the_reference_and_the_mean_log_ratio_otherwise() {
        let dev = Default::default();
        let (x, y) = (TinyLmConfig::default().init::<B>(2, &dev), TinyLmConfig::default().init::<B>(3, &dev));
        let (c, r) = task_implicit_rewards(&x, &x, 0.1, &dev).unwrap();
        assert!(c.abs() < 1e-12 && r.abs() < 1e-12, "{c} {r}");
        let one = |w: &str, shout: bool, lm: &TinyLm<B>| -> f64 {
            let (t, m) = Encoded::new(&[(ShoutTask::prompt(w), ShoutTask::completion(w, shout))], 24).unwrap().tensors::<B>(&dev);
            sequence_logps(token_logps(lm.logits(t.clone()), t), m).into_scalar()
        };
        let mean = |shout| 0.5 * WORDS.iter().map(|w| one(w, shout, &y) - one(w, shout, &x)).sum::<f64>() / WORDS.len() as f64;
        let (c, r) = task_implicit_rewards(&y, &x, 0.5, &dev).unwrap();
        assert!((c - mean(true)).abs() < 1e-9 && (r - mean(false)).abs() < 1e-9 && c.abs() > 1e-4, "{c} {r}");
    }

    #[test]
    fn tdpo_kl_is_zero_against_itself_and_positive_otherwise() {
        let dev = Default::default();
        let (x, y) = (TinyLmConfig::default().init::<B>(2, &dev), TinyLmConfig::default().init::<B>(3, &dev));
        let (t, m) = Encoded::new(&[("say no:".into(), " NO".into())], 24).unwrap().tensors::<B>(&dev);
        let same: f64 = completion_kl(x.logits(t.clone()), x.logits(t.clone()), m.clone()).into_scalar();
        let other: f64 = completion_kl(x.logits(t.clone()), y.logits(t), m).into_scalar();
        assert!(same.abs() < 1e-12 && other > 1e-3, "{same} {other}");
    }
    /// LD-DPO's weights on pairs of unequal lengths, by hand: 1 on the first min(|y_c|, |y_r|)
    /// completion tokens of each response, α after, 0 off the completion; the summed log-prob is
    /// then front + α·tail (every token's log-prob −1 here: −(2 + 3α) for a 5-token response
    /// whose partner has 2).
    #[test]
    fn ld_weights_count_the_shared_length_fully_and_the_tail_by_alpha() {
        let ex = |v: &[(&str, &str)]| Encoded::new(&v.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect::<Vec<_>>(), 16).unwrap();
        let (c, r) = (ex(&[("ab", "xyz12"), ("ab", "q")]), ex(&[("ab", "xy"), ("ab", "qrs")]));
        let alpha = 0.25;
        let (wc, wr) = ld_weights(&c, &r, alpha);
        let row = |w: &[f32], e: &Encoded, i: usize| -> Vec<f32> { (0..e.len).filter(|&t| e.mask[i * e.len + t] > 0.0).map(|t| w[i * e.len + t]).collect() };
        assert_eq!(row(&wc, &c, 0), vec![1.0, 1.0, 0.25, 0.25, 0.25]);
        assert_eq!(row(&wr, &r, 0), vec![1.0, 1.0]);
        assert_eq!(row(&wc, &c, 1), vec![1.0]);
        assert_eq!(row(&wr, &r, 1), vec![1.0, 0.25, 0.25]);
        assert!(wc.iter().zip(&c.mask).all(|(w, m)| *m > 0.0 || *w == 0.0), "0 off the completion");
        let d = Default::default();
        let lp = Tensor::<B, 2>::full([c.rows, c.len - 1], -1.0, &d);
        let w = Tensor::<B, 2>::from_data(TensorData::new(wc.clone(), [c.rows, c.len]), &d);
        let got: Vec<f64> = sequence_logps(lp, w).into_data().to_vec().unwrap();
        assert!((got[0] + (2.0 + 3.0 * alpha)).abs() < 1e-6 && (got[1] + 1.0).abs() < 1e-6, "{got:?}");
        // α = 1 is the plain mask.
        assert_eq!(ld_weights(&c, &r, 1.0).0, c.mask);
    }
}
