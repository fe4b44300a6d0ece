//! Resume files: everything needed to continue a run bit-identically, packed as one file.

use burn::module::Module;
use burn::record::{DoublePrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::optim::{AdamWConfig, Optimizer};
use crate::runtime::kernels::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::runtime::precision::LossScaler;
use crate::runtime::rng::Rng;
use crate::{Error, Result};
use super::*;

impl<B: AutodiffBackend> Trainer<B> {
    /// Everything needed to continue this run bit-identically: step, batch order and generator,
    /// the weights and the optimiser's moments (both as burn records, which keep the parameter
    /// ids that tie moments to weights). The data is rebuilt from the config on resume.
    pub fn resume_bytes(&self) -> Result<Vec<u8>> {
        let recorder = NamedMpkBytesRecorder::<DoublePrecisionSettings>::default();
        let fail = |e: burn::record::RecorderError| Error::Backend(format!("could not serialise the run state: {e}"));
        let model = recorder.record(self.model().clone().into_record(), ()).map_err(fail)?;
        let optim = recorder.record(self.optim.to_record(), ()).map_err(fail)?;
        let best = self.best.as_ref().map(|b| recorder.record(b.model.clone().into_record(), ())).transpose().map_err(fail)?;
        let state = ResumeState {
            step: self.step,
            cursor: self.cursor,
            order: self.order.clone(),
            batch_rng: self.batch_rng.state(),
            loss_scaler: self.scaler.clone(),
            config: Some(self.config.to_toml()),
            best: self.best.as_ref().map(|b| (b.step, b.loss)),
        };
        let state = serde_json::to_vec(&state).expect("plain data serialises");
        Ok(match &best {
            Some(best) => pack_resume(&[&state, &model, &optim, best]),
            None => pack_resume(&[&state, &model, &optim]),
        })
    }

    /// Continue from [`Trainer::resume_bytes`] (taken from a trainer built with the same config).
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let [state, model, optim, best] = unpack_resume(bytes)?;
        let state: ResumeState = serde_json::from_slice(state).map_err(|e| Error::Checkpoint(format!("run state: {e}")))?;
        check_saved_config(state.config.as_deref(), &self.config.to_toml())?;
        let units = if self.config.train.loss.listwise.is_some() { self.dataset.train_lists.len() } else { self.dataset.train.len() };
        if state.step > self.config.train.steps || state.cursor > state.order.len() || (!state.order.is_empty() && state.order.len() != units) {
            return Err(Error::Checkpoint("the run state does not belong to this config and data".into()));
        }
        let recorder = NamedMpkBytesRecorder::<DoublePrecisionSettings>::default();
        let fail = |e: burn::record::RecorderError| Error::Checkpoint(format!("could not read the run state: {e}"));
        let model_record = recorder.load(model.to_vec(), &self.device).map_err(fail)?;
        let optim_record = recorder.load(optim.to_vec(), &self.device).map_err(fail)?;
        let skeleton = self.model.take().expect("model is only taken inside step");
        let load = |record| {
            let expected = skeleton.shapes();
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| skeleton.clone().load_record(record)))
                .map_err(|_| Error::Checkpoint("the saved weights do not match the configured architecture".into()))?;
            if loaded.shapes() != expected {
                return Err(Error::Checkpoint("the saved weights do not match the configured architecture".into()));
            }
            Ok(loaded)
        };
        let loaded = load(model_record).and_then(|model| {
            let best = match state.best {
                Some((step, loss)) => Some(Best { step, loss, model: recorder.load(best.to_vec(), &self.device).map_err(fail).and_then(&load)? }),
                None => None,
            };
            Ok((model, best))
        });
        match loaded {
            Ok((model, best)) => (self.model, self.best) = (Some(model), best),
            Err(e) => {
                self.model = Some(skeleton);
                return Err(e);
            }
        }
        let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init());
        self.optim = optim.load_record(optim_record);
        self.step = state.step;
        self.cursor = state.cursor;
        self.order = state.order;
        self.batch_rng = Rng::from_state(state.batch_rng);
        if self.scaler.is_some() {
            self.scaler = Some(state.loss_scaler.unwrap_or_default());
        }
        Ok(())
    }

    /// Continue training from a checkpoint's weights (`model.safetensors`, from `prefscope train`
    /// or the page): the step count goes on from the checkpoint's, while the optimiser's moments
    /// and the batch order start afresh, since a checkpoint does not hold them (`resume.state`
    /// does, for bit-identical resumption). The checkpoint must fit this run's model and data.
    pub fn start_from(&mut self, bytes: Vec<u8>) -> Result<()> {
        let head = crate::reward::checkpoint::inspect_preference_model(&bytes)?;
        crate::reward::checkpoint::check_fits(&head, &self.dataset)?;
        if head.config.model != self.config.model {
            let (theirs, ours) = (head.config.model.kind.name(), self.config.model.kind.name());
            let what = if theirs == ours { format!("a {theirs} model configured differently (widths, heads or gates)") } else { format!("a {theirs} model, not {ours}") };
            return Err(Error::Checkpoint(format!("the checkpoint holds a different model: {what}")));
        }
        if head.step >= self.config.train.steps {
            return Err(Error::Checkpoint(format!("the checkpoint is at step {} and this run stops at {}", head.step, self.config.train.steps)));
        }
        let skeleton = self.model.take().expect("model is only taken inside step");
        match crate::reward::checkpoint::load_into(skeleton.clone(), bytes) {
            Ok(model) => self.model = Some(model),
            Err(e) => {
                self.model = Some(skeleton);
                return Err(e);
            }
        }
        self.optim = AdamWConfig::new().with_weight_decay(self.config.train.weight_decay as f32).init();
        self.step = head.step;
        Ok(())
    }

    /// The current weights as a checkpoint (what `model.safetensors` holds).
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        crate::reward::checkpoint::save_preference_model(self.model(), &self.config, self.dataset.dim, self.dataset.prompt_dim, self.step)
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct ResumeState {
    pub(super) step: usize,
    pub(super) cursor: usize,
    pub(super) order: Vec<usize>,
    pub(super) batch_rng: u64,
    /// The loss scale reached (f16 mixed precision).
    #[serde(default)]
    pub(super) loss_scaler: Option<LossScaler>,
    /// The config the state was saved under, as TOML (absent in states from older versions), so
    /// that an edited config.toml is refused by the key that changed, not silently trained on.
    #[serde(default)]
    pub(super) config: Option<String>,
    /// With `keep_best`: the best evaluation's step and held-out loss (its weights are the fourth part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) best: Option<(usize, f32)>,
}

/// Refuse a run state saved under another config than the run's (an edited config.toml), by the
/// first key that changed. States from versions that did not keep their config pass.
pub(crate) fn check_saved_config(saved: Option<&str>, current: &str) -> Result<()> {
    let Some(saved) = saved else { return Ok(()) };
    let parse = |t: &str| toml::from_str::<toml::Value>(t).map_err(|e| Error::Checkpoint(format!("run state: its config: {e}")));
    if let Some(key) = first_difference(&parse(saved)?, &parse(current)?, "") {
        return Err(Error::Checkpoint(format!("the config differs at `{key}` from the one this run state was saved with (was config.toml edited?); put it back, or start a new run")));
    }
    Ok(())
}

/// The first dotted key at which two TOML documents differ.
pub(super) fn first_difference(a: &toml::Value, b: &toml::Value, prefix: &str) -> Option<String> {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, &key),
                    _ => Some(key),
                }
            })
        }
        _ if a == b => None,
        _ => Some(if prefix.is_empty() { "config".into() } else { prefix.into() }),
    }
}

pub(super) const RESUME_MAGIC: &[u8; 16] = b"prefscope-resume";

/// Length-prefixed blobs behind a magic string (the state, the weights, the optimiser's moments,
/// and with `keep_best` the best weights); written as one file, so one atomic rename publishes a
/// consistent state.
pub(crate) fn pack_resume(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = RESUME_MAGIC.to_vec();
    for part in parts {
        out.extend((part.len() as u64).to_le_bytes());
        out.extend(*part);
    }
    out
}

/// The blobs of [`pack_resume`]: the first three always, then `N - 3` optional ones (empty when
/// the file has fewer).
pub(crate) fn unpack_resume<const N: usize>(bytes: &[u8]) -> Result<[&[u8]; N]> {
    let truncated = || Error::Checkpoint("the run state file is truncated or not a prefscope run state".into());
    let mut rest = bytes.strip_prefix(RESUME_MAGIC.as_slice()).ok_or_else(truncated)?;
    let mut parts = [&[][..]; N];
    for (i, part) in parts.iter_mut().enumerate() {
        if i >= 3 && rest.is_empty() {
            break;
        }
        let (len, tail) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| truncated())?;
        if len > tail.len() {
            return Err(truncated());
        }
        (*part, rest) = tail.split_at(len);
    }
    if !rest.is_empty() {
        return Err(truncated());
    }
    Ok(parts)
}
