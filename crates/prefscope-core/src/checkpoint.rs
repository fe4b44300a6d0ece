//! Checkpoints: one self-describing `.safetensors` file per model.
//!
//! The tensors are the module's parameters under burn's module paths; the safetensors header's
//! metadata carries what is needed to rebuild the module before loading them: the kind of model
//! ([`KIND_KEY`]), its config as TOML ([`CONFIG_KEY`]) and the input widths ([`DIMS_KEY`]). The
//! same bytes are written by the CLI and opened by the page, so a file trained natively loads in
//! the tab. Loading trusts nothing: the header is parsed and bounds-checked by the `safetensors`
//! crate, every parameter must be present with its exact shape, and extra tensors are refused.

use std::collections::HashMap;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::backend::Backend;

use crate::data::PairDataset;
use crate::model::PreferenceModel;
use crate::train::RunConfig;
use crate::{Error, Result};

/// Metadata key: what the file holds (`preference-model`, `text-reward-model`, …).
pub const KIND_KEY: &str = "prefscope.kind";
/// Metadata key: the config the module was built from, as TOML.
pub const CONFIG_KEY: &str = "prefscope.config";
/// Metadata key: input widths, `"<input_dim>,<prompt_dim>"`.
pub const DIMS_KEY: &str = "prefscope.dims";
/// Metadata key: the training step the weights are from.
pub const STEP_KEY: &str = "prefscope.step";

/// `KIND_KEY` of a feature-vector preference model ([`PreferenceModel`]).
pub const PREFERENCE_MODEL: &str = "preference-model";

fn bad(message: impl Into<String>) -> Error {
    Error::Checkpoint(message.into())
}

/// Serialise a module's parameters with the given metadata.
pub fn to_safetensors<B: Backend, M: Module<B>>(model: &M, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    for (k, v) in metadata {
        store = store.metadata(*k, v.clone());
    }
    model.save_into(&mut store).map_err(|e| bad(format!("could not serialise the model: {e}")))?;
    let bytes = store.get_bytes().map_err(|e| bad(format!("could not serialise the model: {e}")))?;
    canonical_header(bytes)
}

/// Rewrite the JSON header with sorted keys. The writer emits hash-map order, so equal weights
/// would give different files; a resumed run must reproduce an uninterrupted one byte for byte.
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let malformed = || bad("the serialised header is malformed");
    let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(malformed)?;
    let len = u64::from_le_bytes(*len) as usize;
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(rest.get(..len).ok_or_else(malformed)?).map_err(|_| malformed())?;
    let sorted: BTreeMap<String, serde_json::Value> = header
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::Object(o) => (k, serde_json::to_value(o.into_iter().collect::<BTreeMap<_, _>>()).expect("json")),
            v => (k, v),
        })
        .collect();
    let mut json = serde_json::to_vec(&sorted).expect("json");
    // The data section stays 8-byte aligned, as the format asks.
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(&rest[len..]);
    Ok(out)
}

/// The header metadata of a safetensors file, after checking that the header is well formed and
/// every tensor lies inside the file.
pub fn read_metadata(bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    // read_metadata checks the header; deserialize also checks each tensor's byte range.
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Load `bytes` into `skeleton` (a freshly built module of the expected architecture). Every
/// parameter must be in the file with its exact shape and no tensor may be left over.
pub fn load_into<B: Backend, M: Module<B>>(mut skeleton: M, bytes: Vec<u8>) -> Result<M> {
    read_metadata(&bytes)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = skeleton.load_from(&mut store).map_err(|e| bad(format!("the weights do not fit the model: {e}")))?;
    if !result.errors.is_empty() {
        let first: Vec<String> = result.errors.iter().take(3).map(|e| format!("{e:?}")).collect();
        return Err(bad(format!("the weights do not fit the model: {}", first.join("; "))));
    }
    if !result.missing.is_empty() {
        return Err(bad(format!("the file lacks parameters the model needs: {}", short_list(result.missing.iter().map(|m| format!("{m:?}"))))));
    }
    if !result.unused.is_empty() {
        return Err(bad(format!("the file holds tensors the model does not have: {}", short_list(result.unused.iter().cloned()))));
    }
    Ok(skeleton)
}

fn short_list(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    let mut s = all.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > 4 {
        s.push_str(&format!(" and {} more", all.len() - 4));
    }
    s
}

fn require<'a>(meta: &'a HashMap<String, String>, key: &str) -> Result<&'a str> {
    meta.get(key).map(String::as_str).ok_or_else(|| bad(format!("not a prefscope checkpoint: the header has no `{key}`")))
}

/// A preference model's checkpoint bytes: weights, run config, input widths and step.
pub fn save_preference_model<B: Backend>(model: &PreferenceModel<B>, config: &RunConfig, input_dim: usize, prompt_dim: usize, step: usize) -> Result<Vec<u8>> {
    to_safetensors(
        model,
        &[
            (KIND_KEY, PREFERENCE_MODEL.to_string()),
            (CONFIG_KEY, config.to_toml()),
            (DIMS_KEY, format!("{input_dim},{prompt_dim}")),
            (STEP_KEY, step.to_string()),
        ],
    )
}

/// What a preference-model checkpoint says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct PreferenceCheckpoint {
    pub config: RunConfig,
    pub input_dim: usize,
    pub prompt_dim: usize,
    pub step: usize,
}

/// Read and validate a preference-model checkpoint's header (nothing is loaded yet).
pub fn inspect_preference_model(bytes: &[u8]) -> Result<PreferenceCheckpoint> {
    let meta = read_metadata(bytes)?;
    let kind = require(&meta, KIND_KEY)?;
    if kind != PREFERENCE_MODEL {
        return Err(bad(format!("this checkpoint holds a `{kind}`, not a `{PREFERENCE_MODEL}`")));
    }
    let config = RunConfig::from_toml(CONFIG_KEY, require(&meta, CONFIG_KEY)?)?;
    let dims = require(&meta, DIMS_KEY)?;
    let parsed: Vec<usize> = dims.split(',').map(|d| d.trim().parse::<usize>()).collect::<std::result::Result<_, _>>().map_err(|_| bad(format!("`{DIMS_KEY}` is `{dims}`, expected `<input>,<prompt>`")))?;
    let [input_dim, prompt_dim] = parsed[..] else {
        return Err(bad(format!("`{DIMS_KEY}` is `{dims}`, expected `<input>,<prompt>`")));
    };
    if input_dim == 0 || input_dim > 1 << 20 || prompt_dim > 1 << 20 {
        return Err(bad(format!("`{DIMS_KEY}` is `{dims}`: implausible input widths")));
    }
    let step = meta.get(STEP_KEY).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(PreferenceCheckpoint { config, input_dim, prompt_dim, step })
}

/// Rebuild a preference model from checkpoint bytes alone.
pub fn load_preference_model<B: Backend>(bytes: Vec<u8>, device: &B::Device) -> Result<(PreferenceCheckpoint, PreferenceModel<B>)> {
    let head = inspect_preference_model(&bytes)?;
    let skeleton = head.config.model.init::<B>(head.input_dim, head.prompt_dim, head.config.seed, device)?;
    let model = load_into(skeleton, bytes)?;
    Ok((head, model))
}

/// Check that a checkpoint fits a dataset before evaluating it there.
pub fn check_fits(head: &PreferenceCheckpoint, data: &PairDataset) -> Result<()> {
    if head.input_dim != data.dim || head.prompt_dim != data.prompt_dim {
        return Err(bad(format!(
            "the model was trained on {}-wide items ({}-wide prompts) but this data has {}-wide items ({}-wide prompts)",
            head.input_dim, head.prompt_dim, data.dim, data.prompt_dim
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelKind, ScenarioKind, Trainer};
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;

    type B = Autodiff<NdArray<f32>>;

    fn trained(model: ModelKind, scenario: ScenarioKind) -> Trainer<B> {
        let mut cfg = RunConfig::new(scenario, model);
        cfg.train.steps = 20;
        let mut t = Trainer::<B>::new(cfg, &Default::default()).unwrap();
        while !t.is_done() {
            pollster::block_on(t.step()).unwrap();
        }
        t
    }

    #[test]
    fn round_trip_gives_the_same_logits_for_every_kind() {
        for (model, scenario) in [
            (ModelKind::Bt, ScenarioKind::Linear),
            (ModelKind::Gpm, ScenarioKind::Cyclic),
            (ModelKind::MultiObjective, ScenarioKind::MultiObjective),
            (ModelKind::Mixture, ScenarioKind::Mixture),
        ] {
            let t = trained(model, scenario);
            let bytes = t.checkpoint_bytes().unwrap();
            let (head, loaded) = load_preference_model::<B>(bytes, &Default::default()).unwrap();
            assert_eq!(head.config, t.config);
            assert_eq!(head.step, 20);
            assert_eq!(t.checkpoint_bytes().unwrap(), t.checkpoint_bytes().unwrap(), "the bytes are deterministic");
            let want = pollster::block_on(t.evaluate()).unwrap();
            let got = pollster::block_on(crate::train::evaluate(&loaded.valid(), &t.dataset, &t.dataset.eval, &Default::default())).unwrap();
            assert_eq!(want, got, "{model:?}");
        }
    }

    #[test]
    fn wrong_shapes_truncation_and_garbage_are_refused_with_a_reason() {
        let t = trained(ModelKind::Bt, ScenarioKind::Linear);
        let bytes = t.checkpoint_bytes().unwrap();

        // A config asking for a wider hidden layer than the weights have.
        let mut head = inspect_preference_model(&bytes).unwrap();
        head.config.model.hidden = vec![head.config.model.hidden[0] + 3];
        let skeleton = head.config.model.init::<B>(head.input_dim, head.prompt_dim, 0, &Default::default()).unwrap();
        let e = load_into(skeleton, bytes.clone()).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");

        let e = load_preference_model::<B>(bytes[..bytes.len() - 7].to_vec(), &Default::default()).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");
        let e = load_preference_model::<B>(b"\xff\xff\xff\xff\xff\xff\xff\x7fnonsense".to_vec(), &Default::default()).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");
        let e = load_preference_model::<B>(vec![], &Default::default()).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");

        // A valid safetensors file from elsewhere (no prefscope metadata).
        let foreign = to_safetensors(t.model(), &[]).unwrap();
        let e = load_preference_model::<B>(foreign, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("not a prefscope checkpoint"), "{e}");
    }
}
