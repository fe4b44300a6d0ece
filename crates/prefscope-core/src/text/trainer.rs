//! Training the transformer reward model ([`crate::text::transformer`]) on a pair file: tokenizer, streamed
//! batches, held-out split, evaluation and self-contained checkpoints. Native only (feature
//! `text`, for Hugging Face's `tokenizers`).
//!
//! The file is never held in memory: training pairs come through a seeded shuffle buffer over a
//! [`PairReader`] that reopens the file each epoch, and each line's split (train or held out) is a
//! hash of the seed and the line number, so it is the same in every pass and every run.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::{AdamW, AdamWConfig, Optimizer, adaptor::OptimizerAdaptor};
use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::reward::checkpoint::{CONFIG_KEY, KIND_KEY, STEP_KEY, load_into, read_metadata, to_safetensors};
use crate::reward::loss::{bradley_terry_loss, pairwise_accuracy, preference_probability};
use crate::reward::metrics::PairScore;
use crate::runtime::rng::Rng;
use crate::text::pairs::{OnError, PairReader, TextFormat, TextPair};
use crate::text::transformer::{SpecialTokens, TfmHead, TfmRewardModel, TfmRmConfig, TokenBatch, assemble};
use crate::reward::train::{EvalMetrics, StepMetrics, TrainConfig};
use crate::{Error, Result, config_error};

/// `KIND_KEY` of a transformer reward model checkpoint.
pub const TEXT_REWARD_MODEL: &str = "text-reward-model";
/// Metadata key holding the tokenizer (its `tokenizer.json`), so a checkpoint is self-contained.
pub const TOKENIZER_KEY: &str = "prefscope.tokenizer";

/// Where the pairs come from and how they are split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextDataConfig {
    /// A `.jsonl` or `.jsonl.gz` pair file (see [`crate::text::pairs`]).
    pub path: PathBuf,
    #[serde(default)]
    pub format: TextFormat,
    #[serde(default)]
    pub on_error: OnError,
    /// Share of lines held out for evaluation (never trained on).
    #[serde(default = "default_eval_fraction")]
    pub eval_fraction: f64,
    /// At most this many held-out pairs are kept for the periodic evaluation.
    #[serde(default = "default_eval_max")]
    pub eval_max: usize,
}

fn default_eval_fraction() -> f64 {
    0.2
}
fn default_eval_max() -> usize {
    2000
}

/// The tokenizer: a `tokenizer.json` to load, or a byte-level BPE trained on the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Vocabulary size of a trained BPE (special tokens included).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Training pairs read to learn the BPE merges.
    #[serde(default = "default_bpe_pairs")]
    pub bpe_pairs: usize,
}

fn default_vocab_size() -> usize {
    4096
}
fn default_bpe_pairs() -> usize {
    20_000
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self { path: None, vocab_size: default_vocab_size(), bpe_pairs: default_bpe_pairs() }
    }
}

/// Everything one text run depends on; `config.toml` of its run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRunConfig {
    #[serde(default)]
    pub seed: u64,
    pub data: TextDataConfig,
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    #[serde(default)]
    pub model: TfmRmConfig,
    #[serde(default = "default_text_train")]
    pub train: TrainConfig,
}

/// Defaults that train the small model from scratch: AdamW 3e-4, 16 pairs, 300 steps.
pub fn default_text_train() -> TrainConfig {
    TrainConfig { steps: 300, batch: 16, lr: 3e-4, eval_every: 50, ..TrainConfig::default() }
}

impl TextRunConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            seed: 0,
            data: TextDataConfig { path: path.into(), format: TextFormat::Auto, on_error: OnError::Stop, eval_fraction: default_eval_fraction(), eval_max: default_eval_max() },
            tokenizer: TokenizerConfig::default(),
            model: TfmRmConfig::default(),
            train: default_text_train(),
        }
    }

    pub fn from_toml(source_name: &str, text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start).unwrap_or(0);
            Error::Data { source_name: source_name.into(), line: text[..start].matches('\n').count() + 1, field: "config".into(), message: e.message().to_string() }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a TextRunConfig always serialises")
    }

    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.data.eval_fraction) {
            return Err(config_error("data.eval_fraction", "must be in [0, 1)"));
        }
        if self.tokenizer.path.is_none() && !(64..=1 << 20).contains(&self.tokenizer.vocab_size) {
            return Err(config_error("tokenizer.vocab_size", "must be in 64..=1048576"));
        }
        if self.train.loss.listwise.is_some() || self.train.loss.regression_coef > 0.0 || self.train.loss.scaled {
            return Err(config_error("train.loss", "the text reward model supports margin, label_smoothing, center_coef, dr and margin_from_data"));
        }
        if self.train.loss.dr && self.model.head != TfmHead::Bt {
            return Err(config_error("train.loss.dr", "the direct reward term needs a scalar reward: use head `bt`"));
        }
        if self.train.epochs.is_some() {
            return Err(config_error("train.epochs", "text runs stream their file and take `steps`; set train.steps instead"));
        }
        if self.train.keep_best {
            return Err(config_error("train.keep_best", "text runs keep their last weights; pick a step from their evaluations instead"));
        }
        self.model.validate()?;
        self.train.validate()
    }
}

pub use crate::reward::data::is_held_out;

/// Parse a `tokenizer.json`. The text is checked to be JSON first: tokenizers 0.22 panics
/// (`expect("Helper")` in its decoder) on some malformed input instead of returning an error.
pub(crate) fn parse_tokenizer(json: &str) -> std::result::Result<Tokenizer, String> {
    serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|e| e.to_string())?;
    json.parse::<Tokenizer>().map_err(|e| e.to_string())
}

const SPECIALS: [&str; 4] = ["<pad>", "<s>", "<sep>", "</s>"];

/// A Hugging Face tokenizer plus the special tokens the model's sequences use.
#[derive(Clone)]
pub struct PairTokenizer {
    tokenizer: Tokenizer,
    pub special: SpecialTokens,
}

impl PairTokenizer {
    /// Train a byte-level BPE (GPT-2 style pre-tokenisation) on texts.
    pub fn train(texts: impl Iterator<Item = String> + Send, vocab_size: usize) -> Result<Self> {
        let fail = |e: tokenizers::Error| config_error("tokenizer", format!("BPE training failed: {e}"));
        let mut trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(vocab_size)
            .min_frequency(2)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(SPECIALS.iter().map(|s| AddedToken::from(s.to_string(), true)).collect())
            .build();
        let mut tokenizer = TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_normalizer(None::<tokenizers::NormalizerWrapper>)
            .with_pre_tokenizer(Some(ByteLevel::default()))
            .with_post_processor(None::<tokenizers::PostProcessorWrapper>)
            .with_decoder(Some(ByteLevel::default()))
            .build()
            .map_err(fail)?;
        tokenizer.train(&mut trainer, texts).map_err(fail)?;
        Self::with_specials(Tokenizer::from(tokenizer))
    }

    /// Load a `tokenizer.json` (its text); the special tokens are added if it lacks them.
    pub fn from_json(source_name: &str, json: &str) -> Result<Self> {
        let tokenizer = parse_tokenizer(json).map_err(|e| config_error("tokenizer.path", format!("{source_name}: not a tokenizer.json: {e}")))?;
        Self::with_specials(tokenizer)
    }

    fn with_specials(mut tokenizer: Tokenizer) -> Result<Self> {
        tokenizer.add_special_tokens(&SPECIALS.map(|s| AddedToken::from(s.to_string(), true)));
        // Ids index the model's embedding rows, one token each: a gap or a shared id would make
        // the saved tokenizer (which keeps one token per id) disagree with the model.
        let n = tokenizer.get_vocab_size(true);
        let ids: std::collections::BTreeSet<u32> = tokenizer.get_vocab(true).into_values().collect();
        if ids.len() != n || ids.last().is_some_and(|&id| id as usize >= n) {
            return Err(config_error("tokenizer", format!("its token ids are not 0..{n}, one token each")));
        }
        let id = |s: &str| tokenizer.token_to_id(s).ok_or_else(|| config_error("tokenizer", format!("the tokenizer has no `{s}` token")));
        let special = SpecialTokens { pad: id("<pad>")?, bos: id("<s>")?, sep: id("<sep>")?, eos: id("</s>")? };
        Ok(Self { tokenizer, special })
    }

    pub fn to_json(&self) -> String {
        self.tokenizer.to_string(false).expect("a tokenizer serialises")
    }

    /// Vocabulary size including added tokens: the model's embedding rows.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false).map_err(|e| Error::Backend(format!("tokenizer: {e}")))?.get_ids().to_vec())
    }

    /// The chosen and rejected sequences of a pair, within `max_len`.
    pub fn encode_pair(&self, p: &TextPair, max_len: usize) -> Result<(Vec<u32>, Vec<u32>)> {
        let prompt = self.encode(&p.prompt)?;
        Ok((assemble(&prompt, &self.encode(&p.chosen)?, max_len, self.special), assemble(&prompt, &self.encode(&p.rejected)?, max_len, self.special)))
    }
}

/// Training pairs in a seeded shuffled order, streamed epoch after epoch.
struct TrainStream {
    data: TextDataConfig,
    seed: u64,
    reader: PairReader<Box<dyn std::io::BufRead>>,
    buffer: Vec<TextPair>,
    rng: Rng,
    read_this_epoch: usize,
    epoch: usize,
    /// Pairs handed out so far: replaying that many draws restores the stream exactly.
    drawn: usize,
}

const SHUFFLE_BUFFER: usize = 8192;

impl TrainStream {
    fn new(data: &TextDataConfig, seed: u64) -> Result<Self> {
        Ok(Self {
            reader: PairReader::open(&data.path, data.format, data.on_error)?,
            data: data.clone(),
            seed,
            buffer: vec![],
            rng: Rng::stream(seed, "text-batches"),
            read_this_epoch: 0,
            epoch: 0,
            drawn: 0,
        })
    }

    /// The next training pair: top up the buffer, then take a random element of it.
    fn next(&mut self) -> Result<TextPair> {
        while self.buffer.len() < SHUFFLE_BUFFER {
            match self.reader.next() {
                Some(p) => {
                    let p = p?;
                    if !is_held_out(self.seed, p.line, self.data.eval_fraction) {
                        self.read_this_epoch += 1;
                        self.buffer.push(p);
                    }
                }
                None if self.buffer.is_empty() => {
                    if self.read_this_epoch == 0 {
                        return Err(config_error("data.path", format!("{} has no training pairs", self.data.path.display())));
                    }
                    self.reader = PairReader::open(&self.data.path, self.data.format, self.data.on_error)?;
                    self.read_this_epoch = 0;
                    self.epoch += 1;
                }
                None => break,
            }
        }
        let i = self.rng.below(self.buffer.len());
        self.drawn += 1;
        Ok(self.buffer.swap_remove(i))
    }
}

/// Pairs already tokenised, with what the report needs about each.
pub struct EncodedPairs {
    pub chosen: Vec<Vec<u32>>,
    pub rejected: Vec<Vec<u32>>,
    pub lengths: Vec<(usize, usize)>,
    pub categories: Vec<Option<String>>,
}

impl EncodedPairs {
    pub fn new(tok: &PairTokenizer, pairs: &[TextPair], max_len: usize) -> Result<Self> {
        let mut out = Self { chosen: vec![], rejected: vec![], lengths: vec![], categories: vec![] };
        for p in pairs {
            let (c, r) = tok.encode_pair(p, max_len)?;
            out.chosen.push(c);
            out.rejected.push(r);
            out.lengths.push((p.chosen.chars().count(), p.rejected.chars().count()));
            out.categories.push(p.category.clone());
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.chosen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chosen.is_empty()
    }
}

/// Logits of every pair, in batches, without gradients.
pub fn score_pairs<B: Backend>(model: &TfmRewardModel<B>, config: &TfmRmConfig, pad: u32, pairs: &EncodedPairs, batch: usize, device: &B::Device) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(pairs.len());
    for start in (0..pairs.len()).step_by(batch.max(1)) {
        let end = (start + batch).min(pairs.len());
        let b = TokenBatch::pairs(&pairs.chosen[start..end], &pairs.rejected[start..end], pad);
        let logits: Vec<f32> = model.pair_logits(&b, config, device).into_data().convert::<f32>().to_vec().map_err(|e| Error::Backend(format!("{e:?}")))?;
        out.extend(logits);
    }
    Ok(out)
}

/// Per-pair scores for [`crate::reward::metrics::evaluate_scores`].
pub fn pair_scores(logits: &[f32], pairs: &EncodedPairs) -> Vec<PairScore> {
    logits
        .iter()
        .zip(&pairs.lengths)
        .zip(&pairs.categories)
        .map(|((&logit, &(chosen_len, rejected_len)), category)| PairScore { logit, chosen_len, rejected_len, category: category.clone() })
        .collect()
}

/// The held-out pairs of a file (at most `max`), in file order.
pub fn held_out_pairs(data: &TextDataConfig, seed: u64, max: usize) -> Result<Vec<TextPair>> {
    let mut out = vec![];
    for p in PairReader::open(&data.path, data.format, data.on_error)? {
        let p = p?;
        if is_held_out(seed, p.line, data.eval_fraction) {
            out.push(p);
            if out.len() >= max {
                break;
            }
        }
    }
    Ok(out)
}

/// One run of the transformer reward model on a pair file.
pub struct TextTrainer<B: AutodiffBackend> {
    pub config: TextRunConfig,
    pub tokenizer: PairTokenizer,
    model: Option<TfmRewardModel<B>>,
    optim: OptimizerAdaptor<AdamW, TfmRewardModel<B>, B>,
    stream: TrainStream,
    pub eval: EncodedPairs,
    step: usize,
    device: B::Device,
    autocast: crate::runtime::precision::Autocast,
    scaler: Option<crate::runtime::precision::LossScaler>,
}

impl<B: AutodiffBackend> TextTrainer<B> {
    /// Load or train the tokenizer, read the held-out split and build the model. The model's
    /// `vocab` is set from the tokenizer.
    pub fn new(mut config: TextRunConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let tokenizer = match &config.tokenizer.path {
            Some(p) => PairTokenizer::from_json(&p.display().to_string(), &std::fs::read_to_string(p).map_err(|e| config_error("tokenizer.path", format!("{}: {e}", p.display())))?)?,
            None => {
                let mut texts = vec![];
                for p in PairReader::open(&config.data.path, config.data.format, config.data.on_error)? {
                    let p = p?;
                    if !is_held_out(config.seed, p.line, config.data.eval_fraction) {
                        texts.extend([p.prompt, p.chosen, p.rejected]);
                        if texts.len() >= 3 * config.tokenizer.bpe_pairs {
                            break;
                        }
                    }
                }
                PairTokenizer::train(texts.into_iter(), config.tokenizer.vocab_size)?
            }
        };
        config.model.vocab = tokenizer.vocab_size();
        let eval_pairs = held_out_pairs(&config.data, config.seed, config.data.eval_max)?;
        if eval_pairs.is_empty() && config.data.eval_fraction > 0.0 {
            return Err(config_error("data.eval_fraction", "no line was held out; raise it or use a larger file"));
        }
        let eval = EncodedPairs::new(&tokenizer, &eval_pairs, config.model.max_len)?;
        let model = config.model.init::<B>(config.seed, device);
        let optim = AdamWConfig::new().with_weight_decay(config.train.weight_decay as f32).init();
        let stream = TrainStream::new(&config.data, config.seed)?;
        let autocast = crate::runtime::precision::Autocast::new::<B>(config.train.precision, device)?;
        let scaler = config.train.precision.loss_scaling().then(crate::runtime::precision::LossScaler::default);
        Ok(Self { tokenizer, model: Some(model), optim, stream, eval, step: 0, device: device.clone(), config, autocast, scaler })
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.config.train.steps
    }

    pub fn model(&self) -> &TfmRewardModel<B> {
        self.model.as_ref().expect("model is only taken inside step")
    }

    /// Malformed lines skipped so far (with `on_error = "skip"`).
    pub fn skipped(&self) -> (usize, &[String]) {
        (self.stream.reader.skipped, &self.stream.reader.skip_messages)
    }

    /// One AdamW step on a minibatch of training pairs.
    pub fn step(&mut self) -> Result<StepMetrics> {
        let n = self.config.train.batch;
        let pairs = (0..n).map(|_| self.stream.next()).collect::<Result<Vec<_>>>()?;
        let max_len = self.config.model.max_len;
        let (mut chosen, mut rejected) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for p in &pairs {
            let (c, r) = self.tokenizer.encode_pair(p, max_len)?;
            chosen.push(c);
            rejected.push(r);
        }
        let batch = TokenBatch::pairs(&chosen, &rejected, self.tokenizer.special.pad);
        let lc = &self.config.train.loss;
        let model = self.model.take().expect("model present between steps");
        // Mixed precision: forward on a copy cast inside the graph (see `crate::runtime::precision`).
        let compute = self.autocast.module(&model);
        let logits = self.autocast.up(compute.pair_logits(&batch, &self.config.model, &self.device));
        let strengths = lc.margin_from_data.then(|| {
            let m: Vec<f32> = pairs.iter().map(|p| p.margin.unwrap_or(0.0)).collect();
            Tensor::<B, 1>::from_data(TensorData::new(m, [n]), &self.device)
        });
        let margin = lc.margins(n, strengths, &self.device);
        let loss = lc.pairwise_loss(logits.clone(), margin, None, || {
            ((lc.center_coef > 0.0 || lc.dr) && self.config.model.head == TfmHead::Bt).then(|| {
                let (tokens, last) = batch.tensors::<B>(&self.device);
                let r = self.autocast.up(compute.forward(tokens, last)).reshape([2 * n]);
                (r.clone().narrow(0, 0, n), r.narrow(0, n, n))
            })
        });
        let loss_value: f32 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            self.model = Some(model);
            return Err(Error::NonFinite { step: self.step + 1, value: loss_value });
        }
        let acc: f32 = pairwise_accuracy(logits.detach()).into_scalar().elem();
        let (grads, overflow_check) = crate::runtime::precision::backward(self.scaler.as_ref(), loss, &model);
        let apply = crate::runtime::precision::step_allowed(self.scaler.as_mut(), overflow_check);
        // A loss-scaled step whose gradients overflowed is skipped (the scale was halved).
        self.model = Some(if apply { self.optim.step(self.config.train.lr, model, grads) } else { model });
        self.step += 1;
        let eval = (self.step % self.config.train.eval_every == 0 || self.is_done()).then(|| self.evaluate()).transpose()?;
        Ok(StepMetrics { step: self.step, loss: loss_value, train_accuracy: acc, eval })
    }

    /// Held-out figures of the current model.
    pub fn evaluate(&self) -> Result<EvalMetrics> {
        let logits = self.eval_logits()?;
        let t = Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(logits.clone(), [logits.len()]), &self.device);
        let n = logits.len().max(1) as f32;
        let loss: f32 = bradley_terry_loss(t.clone(), None, 0.0, None).into_scalar().elem();
        let probability: f32 = preference_probability(t).sum().into_scalar().elem::<f32>() / n;
        let accuracy = logits.iter().filter(|&&l| l > 0.0).count() as f32 / n;
        Ok(EvalMetrics { accuracy, loss, probability, n: logits.len() })
    }

    /// Logits of the held-out pairs.
    pub fn eval_logits(&self) -> Result<Vec<f32>> {
        score_pairs(&self.model().valid(), &self.config.model, self.tokenizer.special.pad, &self.eval, 32, &self.device)
    }

    /// Everything needed to continue bit-identically: the weights and AdamW moments (burn
    /// records), the step, and how many pairs the stream has handed out (the stream is rebuilt
    /// by replaying that many draws, which re-reads but does not re-tokenise the file).
    pub fn resume_bytes(&self) -> Result<Vec<u8>> {
        use burn::module::Module;
        use burn::record::{DoublePrecisionSettings, NamedMpkBytesRecorder, Recorder};
        let recorder = NamedMpkBytesRecorder::<DoublePrecisionSettings>::default();
        let fail = |e: burn::record::RecorderError| Error::Backend(format!("could not serialise the run state: {e}"));
        let model = recorder.record(self.model().clone().into_record(), ()).map_err(fail)?;
        let optim = recorder.record(self.optim.to_record(), ()).map_err(fail)?;
        let state = serde_json::json!({ "step": self.step, "drawn": self.stream.drawn, "tokenizer": self.tokenizer.to_json(), "loss_scaler": self.scaler, "config": self.config.to_toml() });
        Ok(crate::reward::train::pack_resume(&[state.to_string().as_bytes(), &model, &optim]))
    }

    /// Continue from [`TextTrainer::resume_bytes`] (taken from a trainer with the same config).
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        use burn::module::Module;
        use burn::record::{DoublePrecisionSettings, NamedMpkBytesRecorder, Recorder};
        let [state, model, optim] = crate::reward::train::unpack_resume(bytes)?;
        let state: serde_json::Value = serde_json::from_slice(state).map_err(|e| Error::Checkpoint(format!("run state: {e}")))?;
        let (Some(step), Some(drawn), Some(tok)) = (state["step"].as_u64(), state["drawn"].as_u64(), state["tokenizer"].as_str()) else {
            return Err(Error::Checkpoint("the run state lacks step, drawn or tokenizer".into()));
        };
        crate::reward::train::check_saved_config(state["config"].as_str(), &self.config.to_toml())?;
        if step as usize > self.config.train.steps {
            return Err(Error::Checkpoint("the run state does not belong to this config".into()));
        }
        // The tokenizer was trained at the start of the run; keep exactly that one.
        self.tokenizer = PairTokenizer::from_json("run state", tok)?;
        if self.tokenizer.vocab_size() != self.config.model.vocab {
            return Err(Error::Checkpoint("the run state's tokenizer does not fit the model".into()));
        }
        let recorder = NamedMpkBytesRecorder::<DoublePrecisionSettings>::default();
        let fail = |e: burn::record::RecorderError| Error::Checkpoint(format!("could not read the run state: {e}"));
        let model_record = recorder.load(model.to_vec(), &self.device).map_err(fail)?;
        let optim_record = recorder.load(optim.to_vec(), &self.device).map_err(fail)?;
        let skeleton = self.model.take().expect("model present between steps");
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| skeleton.load_record(model_record)))
            .map_err(|_| Error::Checkpoint("the saved weights do not match the configured architecture".into()))?;
        self.model = Some(loaded);
        let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init());
        self.optim = optim.load_record(optim_record);
        self.stream = TrainStream::new(&self.config.data, self.config.seed)?;
        for _ in 0..drawn {
            self.stream.next()?;
        }
        self.step = step as usize;
        if self.scaler.is_some() {
            self.scaler = Some(serde_json::from_value(state["loss_scaler"].clone()).unwrap_or_default());
        }
        Ok(())
    }

    /// A self-contained checkpoint: weights, config and tokenizer.
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        save_text_model(self.model(), &self.config, &self.tokenizer, self.step)
    }
}


pub fn save_text_model<B: Backend>(model: &TfmRewardModel<B>, config: &TextRunConfig, tok: &PairTokenizer, step: usize) -> Result<Vec<u8>> {
    to_safetensors(
        model,
        &[(KIND_KEY, TEXT_REWARD_MODEL.to_string()), (CONFIG_KEY, config.to_toml()), (TOKENIZER_KEY, tok.to_json()), (STEP_KEY, step.to_string())],
    )
}

/// Rebuild a transformer reward model, its config and tokenizer from checkpoint bytes.
pub fn load_text_model<B: Backend>(bytes: Vec<u8>, device: &B::Device) -> Result<(TextRunConfig, PairTokenizer, TfmRewardModel<B>)> {
    let meta = read_metadata(&bytes)?;
    let get = |k: &str| meta.get(k).ok_or_else(|| Error::Checkpoint(format!("not a prefscope checkpoint: the header has no `{k}`")));
    if get(KIND_KEY)? != TEXT_REWARD_MODEL {
        return Err(Error::Checkpoint(format!("this checkpoint holds a `{}`, not a `{TEXT_REWARD_MODEL}`", get(KIND_KEY)?)));
    }
    let config = TextRunConfig::from_toml(CONFIG_KEY, get(CONFIG_KEY)?)?;
    let tok = PairTokenizer::from_json(TOKENIZER_KEY, get(TOKENIZER_KEY)?)?;
    if tok.vocab_size() != config.model.vocab {
        return Err(Error::Checkpoint(format!("the tokenizer has {} tokens but the model {}", tok.vocab_size(), config.model.vocab)));
    }
    crate::reward::checkpoint::check_size(&bytes, config.model.num_params())?;
    let model = load_into(config.model.init::<B>(config.seed, device), bytes)?;
    Ok((config, tok, model))
}

/// Whether two paths name the same file (to refuse evaluating on training pairs).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The text trainer steps on the host's thread; its future is ready when returned.
impl<B: AutodiffBackend> crate::reward::train::RunLoop for TextTrainer<B> {
    fn step(&mut self) -> impl std::future::Future<Output = Result<StepMetrics>> {
        std::future::ready(TextTrainer::step(self))
    }
    fn is_done(&self) -> bool {
        TextTrainer::is_done(self)
    }
    fn steps_done(&self) -> usize {
        TextTrainer::steps_done(self)
    }
    fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        TextTrainer::checkpoint_bytes(self)
    }
    fn resume_bytes(&self) -> Result<Vec<u8>> {
        TextTrainer::resume_bytes(self)
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        TextTrainer::restore(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type B = Autodiff<Flex>;

    /// A pair file where the chosen answer is polite and the rejected one rude, with varied
    /// filler so that only the polite/rude words carry the preference.
    fn polite_file(name: &str, n: usize) -> PathBuf {
        let mut rng = Rng::new(1);
        let fillers = ["the weather", "my homework", "a recipe", "the train", "some music", "the garden", "a movie", "the news"];
        let mut lines = vec![];
        for _ in 0..n {
            let f = fillers[rng.below(fillers.len())];
            let g = fillers[rng.below(fillers.len())];
            lines.push(serde_json::json!({
                "prompt": format!("Human: tell me about {f}"),
                "chosen": format!("Thank you for asking, happy to help with {g}."),
                "rejected": format!("Go away, I will not talk about {g}."),
            }).to_string());
        }
        let dir = std::env::temp_dir().join(format!("prefscope-textrm-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pairs.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    fn small(path: PathBuf) -> TextRunConfig {
        let mut cfg = TextRunConfig::new(path);
        cfg.tokenizer.vocab_size = 300;
        cfg.model = TfmRmConfig { d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 48, ..TfmRmConfig::default() };
        cfg.train = TrainConfig { steps: 40, batch: 8, lr: 2e-3, eval_every: 20, ..TrainConfig::default() };
        cfg
    }

    #[test]
    fn bpe_tokenizer_trains_round_trips_and_has_the_special_tokens() {
        let texts = ["hello world, hello there", "the world is wide", "hello hello world"].map(String::from);
        let tok = PairTokenizer::train(texts.into_iter().cycle().take(60), 300).unwrap();
        let ids = tok.encode("hello world").unwrap();
        assert!(ids.len() < "hello world".len(), "merges learnt: {ids:?}");
        let again = PairTokenizer::from_json("t.json", &tok.to_json()).unwrap();
        assert_eq!(again.encode("hello world").unwrap(), ids);
        assert_eq!(again.special, tok.special);
        let specials = [tok.special.pad, tok.special.bos, tok.special.sep, tok.special.eos];
        assert!(specials.iter().all(|&s| (s as usize) < tok.vocab_size()));
        let e = PairTokenizer::from_json("bad.json", "{").err().unwrap().to_string();
        assert!(e.contains("bad.json: not a tokenizer.json"), "{e}");
    }

    #[test]
    fn held_out_lines_are_stable_and_about_the_asked_share() {
        let held: Vec<bool> = (1..=5000).map(|l| is_held_out(7, l, 0.2)).collect();
        let again: Vec<bool> = (1..=5000).map(|l| is_held_out(7, l, 0.2)).collect();
        assert_eq!(held, again);
        let share = held.iter().filter(|&&h| h).count() as f64 / 5000.0;
        assert!((share - 0.2).abs() < 0.02, "{share}");
        let other: Vec<bool> = (1..=5000).map(|l| is_held_out(8, l, 0.2)).collect();
        assert_ne!(held, other);
    }

    #[test]
    fn claim_learns_a_textual_preference_and_the_checkpoint_reproduces_it() {
        let file = polite_file("learn", 200);
        let train = |seed: u64| {
            let mut cfg = small(file.clone());
            cfg.seed = seed;
            let mut t = TextTrainer::<B>::new(cfg, &Default::default()).unwrap();
            assert!(!t.eval.is_empty());
            let first = t.evaluate().unwrap();
            let mut last = None;
            while !t.is_done() {
                last = Some(t.step().unwrap());
            }
            (t, first.accuracy, last.unwrap().eval.unwrap().accuracy)
        };
        crate::studies::seeds::assert_on_every_seed("polite text: (held-out accuracy before, after), after ≥ 0.95 from under 0.9", crate::studies::seeds::CLAIM_SEEDS.skip(1), |s| {
            let (_, first, after) = train(s);
            (first, after)
        }, |&(first, after)| after >= 0.95 && first < 0.9);
        let cfg = small(file.clone());
        let (mut t, first, after) = train(0);
        assert!(after >= 0.95 && first < 0.9, "seed 0: held-out accuracy {after} (from {first})");
        // Held-out lines never reach training: every training pair's line is on the train side.
        for _ in 0..50 {
            let p = t.stream.next().unwrap();
            assert!(!is_held_out(cfg.seed, p.line, cfg.data.eval_fraction));
        }

        let bytes = t.checkpoint_bytes().unwrap();
        let (config, tok, model) = load_text_model::<Flex>(bytes.clone(), &Default::default()).unwrap();
        assert_eq!(config.model.vocab, t.tokenizer.vocab_size());
        let logits = score_pairs(&model, &config.model, tok.special.pad, &t.eval, 7, &Default::default()).unwrap();
        assert_eq!(logits, t.eval_logits().unwrap());
        // The wrong kind of checkpoint is named.
        let e = crate::reward::checkpoint::inspect_preference_model(&bytes).unwrap_err().to_string();
        assert!(e.contains("holds a `text-reward-model`"), "{e}");
    }

    #[test]
    fn restoring_mid_run_continues_bit_identically() {
        let mut cfg = small(polite_file("resume", 120));
        cfg.train.steps = 12;
        cfg.train.eval_every = 4;
        let mut straight = TextTrainer::<B>::new(cfg.clone(), &Default::default()).unwrap();
        let all: Vec<StepMetrics> = (0..12).map(|_| straight.step().unwrap()).collect();
        let mut first = TextTrainer::<B>::new(cfg.clone(), &Default::default()).unwrap();
        for _ in 0..5 {
            first.step().unwrap();
        }
        let saved = first.resume_bytes().unwrap();
        let mut second = TextTrainer::<B>::new(cfg, &Default::default()).unwrap();
        second.restore(&saved).unwrap();
        let rest: Vec<StepMetrics> = (0..7).map(|_| second.step().unwrap()).collect();
        assert_eq!(rest, all[5..]);
        assert_eq!(second.checkpoint_bytes().unwrap(), straight.checkpoint_bytes().unwrap());
    }

    #[test]
    fn gpm_head_trains_on_text_too() {
        let mut cfg = small(polite_file("gpm", 200));
        cfg.model.head = TfmHead::Gpm;
        let mut t = TextTrainer::<B>::new(cfg, &Default::default()).unwrap();
        let mut last = None;
        while !t.is_done() {
            last = Some(t.step().unwrap());
        }
        let e = last.unwrap().eval.unwrap();
        assert!(e.accuracy >= 0.95, "{}", e.accuracy);
    }
}
