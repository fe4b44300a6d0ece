//! A causal transformer reward model trained from scratch on token ids (the `tfm-rm` workload of
//! `bench/README.md`, and smaller).
//!
//! A sequence is `<s> prompt <sep> response </s>`; the reward is read at the last real token
//! (the `</s>`) after a final LayerNorm, as sequence-classification reward models do. Sequences
//! are right-padded and attention is causal, so padding never reaches a real position and no
//! padding mask is needed. A too-long sequence loses tokens from the *left of the prompt*: the
//! response and the end of the conversation are what the reward is about.
//!
//! Heads: Bradley–Terry (one reward, logit r_c − r_r) or GPM (2k-dim embedding, unit-normalised,
//! logit s(c ≻ r)/τ with the skew-symmetric score of [`crate::reward::loss::gpm_score`]).

use burn::module::Module;
use burn::nn::activation::Activation;
use burn::nn::attention::{MhaInput, generate_autoregressive_mask};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use crate::runtime::kernels::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::runtime::host_init::HostInit;
use crate::reward::loss::{gpm_score, unit_normalize};
use crate::runtime::rng::Rng;
use crate::{Result, config_error};

/// Which preference head sits on the last token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TfmHead {
    #[default]
    Bt,
    Gpm,
}

/// Shape of the transformer reward model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfmRmConfig {
    /// Vocabulary size (including special tokens); set from the tokenizer when training on text.
    pub vocab: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Longest sequence in tokens.
    pub max_len: usize,
    #[serde(default)]
    pub head: TfmHead,
    /// GPM: number of 2-D blocks.
    #[serde(default = "default_k")]
    pub k: usize,
    /// GPM: temperature τ of P = σ(s/τ).
    #[serde(default = "default_tau")]
    pub tau: f64,
}

fn default_k() -> usize {
    4
}
fn default_tau() -> f64 {
    0.1
}

impl Default for TfmRmConfig {
    /// A small model that trains on a laptop CPU in minutes.
    fn default() -> Self {
        Self { vocab: 4096, d_model: 128, n_layers: 2, n_heads: 4, d_ff: 512, max_len: 256, head: TfmHead::Bt, k: default_k(), tau: default_tau() }
    }
}

impl TfmRmConfig {
    /// The `tfm-rm` benchmark shape: vocab 8192, d_model 512, 6 layers, 8 heads, FFN 2048, seq 256.
    pub fn workload() -> Self {
        Self { vocab: 8192, d_model: 512, n_layers: 6, n_heads: 8, d_ff: 2048, max_len: 256, ..Self::default() }
    }

    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, field: &str, msg: &str| if ok { Ok(()) } else { Err(config_error(field, msg)) };
        check(self.vocab >= 8, "model.vocab", "must be at least 8")?;
        check(self.d_model > 0 && self.n_heads > 0 && self.d_model.is_multiple_of(self.n_heads), "model.n_heads", "must divide d_model")?;
        check(self.n_layers > 0, "model.n_layers", "must be positive")?;
        check(self.d_ff > 0, "model.d_ff", "must be positive")?;
        check(self.max_len >= 4, "model.max_len", "must be at least 4 (special tokens plus one of each text)")?;
        check(self.k > 0, "model.k", "must be positive")?;
        check(self.tau > 0.0 && self.tau.is_finite(), "model.tau", "must be positive")
    }

    fn out_dim(&self) -> usize {
        match self.head {
            TfmHead::Bt => 1,
            TfmHead::Gpm => 2 * self.k,
        }
    }

    /// How many weights [`TfmRmConfig::init`] allocates, computed without allocating (checked
    /// against burn's own count in a test).
    pub fn num_params(&self) -> u128 {
        let (d, f) = (self.d_model as u128, self.d_ff as u128);
        let layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * (2 * d);
        (self.vocab as u128 + self.max_len as u128) * d + self.n_layers as u128 * layer + 2 * d + d * self.out_dim() as u128 + self.out_dim() as u128
    }

    /// A model whose weights depend only on `seed` (drawn on the host, see [`HostInit`]).
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> TfmRewardModel<B> {
        TfmRewardModel {
            token: EmbeddingConfig::new(self.vocab, self.d_model).init(device),
            position: EmbeddingConfig::new(self.max_len, self.d_model).init(device),
            blocks: TransformerEncoderConfig::new(self.d_model, self.d_ff, self.n_heads, self.n_layers).with_dropout(0.0).with_norm_first(true).init(device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            head: LinearConfig::new(self.d_model, self.out_dim()).init(device),
        }
        .map(&mut HostInit::new(Rng::stream(seed, "tfm-init")))
    }

    /// Forward + backward FLOPs of one pair (two sequences of `max_len`), by 6·params·tokens plus
    /// the attention matmuls (12·layers·T²·d per sequence), for the benchmark's TFLOP/s.
    pub fn flops_per_pair(&self) -> f64 {
        let (d, t, l) = (self.d_model as f64, self.max_len as f64, self.n_layers as f64);
        let per_layer = 4.0 * d * d + 2.0 * d * self.d_ff as f64;
        let params = l * per_layer + self.vocab as f64 * d + d * self.out_dim() as f64;
        2.0 * (6.0 * params * t + 12.0 * l * t * t * d)
    }
}

#[derive(Module, Debug)]
pub struct TfmRewardModel<B: Backend> {
    pub token: Embedding<B>,
    pub position: Embedding<B>,
    pub blocks: TransformerEncoder<B>,
    pub norm: LayerNorm<B>,
    pub head: Linear<B>,
}

impl<B: Backend> TfmRewardModel<B> {
    /// Head outputs at each row's last real token, `[n, out]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, last: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.head.forward(self.last_token_states(tokens, last))
    }

    /// The last hidden representation: the final layer's state at each row's last real token,
    /// after the closing LayerNorm (what the head reads), `[n, d_model]`.
    pub fn last_token_states(&self, tokens: Tensor<B, 2, Int>, last: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let [n, t] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<B, 1, Int>::arange(0..t as i64, &device).reshape([1, t]).repeat_dim(0, n);
        let x = self.token.forward(tokens) + self.position.forward(positions);
        let h = encoder_forward(&self.blocks, x);
        let d = h.dims()[2];
        let index = last.reshape([n, 1, 1]).repeat_dim(2, d);
        let at_last: Tensor<B, 2> = h.gather(1, index).reshape([n, d]);
        self.norm.forward(at_last)
    }

    /// The mean of the token embeddings over each row's real tokens (`last` + 1 of them),
    /// `[n, d_model]`: a bag of the row's tokens, linearly projected.
    pub fn mean_token_embedding(&self, tokens: Tensor<B, 2, Int>, last: &[i64]) -> Tensor<B, 2> {
        let [n, t] = tokens.dims();
        let device = tokens.device();
        let mask: Vec<f32> = last.iter().flat_map(|&l| (0..t as i64).map(move |j| if j <= l { 1.0 / (l + 1) as f32 } else { 0.0 })).collect();
        let weights = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, t]), &device).reshape([n, t, 1]);
        let d = self.token.weight.dims()[1];
        (self.token.forward(tokens) * weights).sum_dim(1).reshape([n, d])
    }

    /// Logits of P(chosen ≻ rejected) for a batch whose first half are the chosen sequences and
    /// second half the rejected ones (one forward pass for both).
    pub fn pair_logits(&self, batch: &TokenBatch, config: &TfmRmConfig, device: &B::Device) -> Tensor<B, 1> {
        let (tokens, last) = batch.tensors::<B>(device);
        let out = self.forward(tokens, last);
        let n = batch.rows / 2;
        let c = out.clone().narrow(0, 0, n);
        let r = out.narrow(0, n, n);
        match config.head {
            TfmHead::Bt => (c - r).reshape([n]),
            TfmHead::Gpm => gpm_score(unit_normalize(c), unit_normalize(r), None).div_scalar(config.tau),
        }
    }
}

/// burn's `TransformerEncoder::forward` with a causal mask (pre- or post-norm, as configured),
/// with the feed-forward GELU and the attention through the core's fused kernels
/// ([`crate::runtime::kernels::gelu`], [`crate::runtime::kernels::causal_attention`]). The modules and parameters
/// are burn's, so records and checkpoints are unchanged; burn's own forward would call the
/// backend's generic GELU, the slowest op of a CPU step, and split heads into strided copies.
pub fn encoder_forward<B: Backend>(blocks: &TransformerEncoder<B>, mut x: Tensor<B, 3>) -> Tensor<B, 3> {
    for layer in &blocks.layers {
        let attn_in = if layer.norm_first { layer.norm_2.forward(x.clone()) } else { x.clone() };
        let mha = &layer.mha;
        let context = if mha.quiet_softmax || mha.dropout.prob > 0.0 || mha.min_float != -1.0e4 {
            // Not the arithmetic the kernel implements: burn's own module.
            let [n, t, _] = attn_in.dims();
            let mask = generate_autoregressive_mask(n, t, &attn_in.device());
            mha.forward(MhaInput::self_attn(attn_in).mask_attn(mask)).context
        } else {
            let heads = crate::runtime::kernels::causal_attention(mha.query.forward(attn_in.clone()), mha.key.forward(attn_in.clone()), mha.value.forward(attn_in), mha.n_heads);
            mha.output.forward(heads)
        };
        x = x + layer.dropout.forward(context);
        let ff_in = if layer.norm_first {
            layer.norm_1.forward(x.clone())
        } else {
            x = layer.norm_1.forward(x);
            x.clone()
        };
        let ff = match &layer.pwff.activation {
            Activation::Gelu(_) => {
                let pwff = &layer.pwff;
                pwff.linear_outer.forward(pwff.dropout.forward(crate::runtime::kernels::gelu(pwff.linear_inner.forward(ff_in))))
            }
            _ => layer.pwff.forward(ff_in),
        };
        x = x + layer.dropout.forward(ff);
        if !layer.norm_first {
            x = layer.norm_2.forward(x);
        }
    }
    x
}

/// Special token ids every tokenizer used with the model provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub pad: u32,
    pub bos: u32,
    pub sep: u32,
    pub eos: u32,
}

/// `<s> prompt <sep> response </s>` within `max_len` tokens: the response keeps up to
/// `max_len − 3` tokens (its start), the prompt fills what is left from its *end*.
pub fn assemble(prompt: &[u32], response: &[u32], max_len: usize, sp: SpecialTokens) -> Vec<u32> {
    let budget = max_len.saturating_sub(3);
    let response = &response[..response.len().min(budget)];
    let keep = prompt.len().min(budget - response.len());
    let prompt = &prompt[prompt.len() - keep..];
    let mut out = Vec::with_capacity(prompt.len() + response.len() + 3);
    out.push(sp.bos);
    out.extend_from_slice(prompt);
    out.push(sp.sep);
    out.extend_from_slice(response);
    out.push(sp.eos);
    out
}

/// Right-padded token rows and the index of each row's last real token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    pub tokens: Vec<i64>,
    pub last: Vec<i64>,
    pub rows: usize,
    pub len: usize,
}

impl TokenBatch {
    pub fn new(rows: &[Vec<u32>], pad: u32) -> Self {
        let len = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut tokens = Vec::with_capacity(rows.len() * len);
        let mut last = Vec::with_capacity(rows.len());
        for r in rows {
            tokens.extend(r.iter().map(|&t| t as i64));
            tokens.extend(std::iter::repeat_n(pad as i64, len - r.len()));
            last.push(r.len().max(1) as i64 - 1);
        }
        Self { tokens, last, rows: rows.len(), len }
    }

    /// Chosen rows then rejected rows, padded together.
    pub fn pairs(chosen: &[Vec<u32>], rejected: &[Vec<u32>], pad: u32) -> Self {
        Self::new(&[chosen, rejected].concat(), pad)
    }

    pub fn tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 1, Int>) {
        (Tensor::from_data(TensorData::new(self.tokens.clone(), [self.rows, self.len]), device), Tensor::from_data(TensorData::new(self.last.clone(), [self.rows]), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    // Other tests in this process use NdArray<f64>; burn keys the default float type by device,
    // so reads convert explicitly.
    type B = Flex;
    const SP: SpecialTokens = SpecialTokens { pad: 0, bos: 1, sep: 2, eos: 3 };

    fn tiny(head: TfmHead) -> TfmRmConfig {
        TfmRmConfig { vocab: 32, d_model: 16, n_layers: 2, n_heads: 2, d_ff: 32, max_len: 12, head, k: 2, tau: 0.1 }
    }

    #[test]
    fn num_params_counts_what_init_allocates() {
        for head in [TfmHead::Bt, TfmHead::Gpm] {
            let cfg = TfmRmConfig { d_ff: 24, n_layers: 3, ..tiny(head) };
            assert_eq!(cfg.num_params(), cfg.init::<B>(0, &Default::default()).num_params() as u128, "{head:?}");
        }
    }

    #[test]
    fn encoder_forward_equals_burns_encoder_with_its_gradients() {
        use burn::backend::Autodiff;
        use burn::nn::transformer::TransformerEncoderInput;
        use burn::tensor::Distribution;
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        /// Moves every parameter off its initial value (LayerNorms start as γ = 1, β = 0, where
        /// mixing up norm_1 and norm_2 would go unnoticed).
        struct Jitter;
        impl<B: Backend> burn::module::ModuleMapper<B> for Jitter {
            fn map_float<const D: usize>(&mut self, p: burn::module::Param<Tensor<B, D>>) -> burn::module::Param<Tensor<B, D>> {
                let t = p.into_value();
                let noise = Tensor::random(t.dims(), Distribution::Normal(0.0, 0.3), &t.device());
                burn::module::Param::from_tensor((t + noise).detach())
            }
        }
        for norm_first in [true, false] {
            let blocks = TransformerEncoderConfig::new(16, 48, 4, 2).with_dropout(0.0).with_norm_first(norm_first).init::<Ad>(&device).map(&mut Jitter);
            let x = Tensor::<Ad, 3>::random([3, 7, 16], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let mask = generate_autoregressive_mask::<Ad>(3, 7, &device);
            let ours = encoder_forward(&blocks, x.clone());
            let theirs = blocks.forward(TransformerEncoderInput::new(x.clone()).mask_attn(mask));
            let diff = |a: Tensor<Flex, 3>, b: Tensor<Flex, 3>| (a - b).abs().max().into_scalar();
            assert!(diff(ours.clone().inner(), theirs.clone().inner()) < 1e-5, "norm_first {norm_first}: outputs differ");
            // A weighted sum, so every output position sends back a different gradient.
            let w = Tensor::<Ad, 3>::random([3, 7, 16], Distribution::Normal(0.0, 1.0), &device);
            let (g_ours, g_theirs) = ((ours * w.clone()).sum().backward(), (theirs * w).sum().backward());
            let dx = diff(x.grad(&g_ours).unwrap(), x.grad(&g_theirs).unwrap());
            let dw = |w: &burn::module::Param<Tensor<Ad, 2>>| (w.grad(&g_ours).unwrap() - w.grad(&g_theirs).unwrap()).abs().max().into_scalar();
            let layer = &blocks.layers[0];
            for (name, w) in [("ffn", &layer.pwff.linear_inner.weight), ("query", &layer.mha.query.weight), ("key", &layer.mha.key.weight), ("value", &layer.mha.value.weight)] {
                let d = dw(w);
                assert!(dx < 1e-4 && d < 1e-4, "norm_first {norm_first}: gradients differ (x {dx:e}, {name} weight {d:e})");
            }
        }
    }

    #[test]
    fn assemble_truncates_the_prompt_from_the_left() {
        assert_eq!(assemble(&[10, 11, 12], &[20, 21], 12, SP), vec![1, 10, 11, 12, 2, 20, 21, 3]);
        // Budget 8 − 3 = 5: the response keeps its 2 tokens, the prompt its last 3 of 6.
        assert_eq!(assemble(&[10, 11, 12, 13, 14, 15], &[20, 21], 8, SP), vec![1, 13, 14, 15, 2, 20, 21, 3]);
        // A response longer than the budget keeps its start and the prompt is dropped.
        assert_eq!(assemble(&[10, 11], &[20, 21, 22, 23, 24, 25, 26], 7, SP), vec![1, 2, 20, 21, 22, 23, 3]);
    }

    #[test]
    fn reward_reads_the_last_real_token_and_ignores_padding() {
        let cfg = tiny(TfmHead::Bt);
        let model = cfg.init::<B>(0, &Default::default());
        let a = assemble(&[5, 6], &[7], 12, SP);
        let b = assemble(&[5, 6, 8, 9, 10], &[7, 11], 12, SP);
        let alone = TokenBatch::new(std::slice::from_ref(&a), SP.pad);
        let padded = TokenBatch::new(&[a.clone(), b], SP.pad);
        assert_eq!(padded.last, vec![a.len() as i64 - 1, 9]);
        let device = Default::default();
        let (t, l) = alone.tensors::<B>(&device);
        let r_alone: Vec<f32> = model.forward(t, l).into_data().convert::<f32>().to_vec().unwrap();
        let (t, l) = padded.tensors::<B>(&device);
        let r_padded: Vec<f32> = model.forward(t, l).into_data().convert::<f32>().to_vec().unwrap();
        assert!((r_alone[0] - r_padded[0]).abs() < 1e-5, "{r_alone:?} vs {r_padded:?}");
        // Changing a token after the last real one (padding) changes nothing; changing the
        // response does.
        let mut other = padded.clone();
        other.tokens[a.len()] = 17;
        let (t, l) = other.tensors::<B>(&device);
        let r_other: Vec<f32> = model.forward(t, l).into_data().convert::<f32>().to_vec().unwrap();
        assert!((r_other[0] - r_padded[0]).abs() < 1e-6);
        other.tokens[a.len() - 2] = 17;
        let (t, l) = other.tensors::<B>(&device);
        let r_changed: Vec<f32> = model.forward(t, l).into_data().convert::<f32>().to_vec().unwrap();
        assert!((r_changed[0] - r_padded[0]).abs() > 1e-4);
    }

    #[test]
    fn gpm_head_is_skew_symmetric_and_bt_head_antisymmetric() {
        for head in [TfmHead::Bt, TfmHead::Gpm] {
            let cfg = tiny(head);
            let model = cfg.init::<B>(3, &Default::default());
            let x = assemble(&[5], &[7, 8], 12, SP);
            let y = assemble(&[5], &[9], 12, SP);
            let device = Default::default();
            let fwd: Vec<f32> = model.pair_logits(&TokenBatch::pairs(&[x.clone(), x.clone()], &[y.clone(), x.clone()], SP.pad), &cfg, &device).into_data().convert::<f32>().to_vec().unwrap();
            let back: Vec<f32> = model.pair_logits(&TokenBatch::pairs(std::slice::from_ref(&y), std::slice::from_ref(&x), SP.pad), &cfg, &device).into_data().convert::<f32>().to_vec().unwrap();
            assert!((fwd[0] + back[0]).abs() < 1e-5, "{head:?}: {fwd:?} {back:?}");
            assert!(fwd[1].abs() < 1e-6, "{head:?}: a response against itself");
            assert!(fwd[0].abs() > 1e-6, "{head:?}: distinct responses get a nonzero logit");
        }
    }

    #[test]
    fn same_seed_same_weights() {
        let cfg = tiny(TfmHead::Bt);
        let a = cfg.init::<B>(5, &Default::default());
        let b = cfg.init::<B>(5, &Default::default());
        let c = cfg.init::<B>(6, &Default::default());
        let w = |m: &TfmRewardModel<B>| m.head.weight.val().into_data().convert::<f32>().to_vec::<f32>().unwrap();
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
    }
}
