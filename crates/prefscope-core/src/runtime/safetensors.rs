//! The safetensors container every prefscope file uses: parameters under burn's module paths,
//! and header metadata that says what the file holds and how to rebuild its module. Loading
//! trusts nothing: the header is parsed and bounds-checked by the `safetensors` crate, every
//! parameter must be present with its exact shape, and extra tensors are refused.

use std::collections::HashMap;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::runtime::kernels::Backend;
use crate::{Error, Result};

/// Metadata key: what the file holds (`preference-model`, `text-reward-model`, …).
pub const KIND_KEY: &str = "prefscope.kind";
/// Metadata key: the config the module was built from, as TOML.
pub const CONFIG_KEY: &str = "prefscope.config";
/// Metadata key: input widths, `"<input_dim>,<prompt_dim>"`.
pub const DIMS_KEY: &str = "prefscope.dims";
/// Metadata key: the training step the weights are from.
pub const STEP_KEY: &str = "prefscope.step";

/// Tensor name of a preference model's training trajectory ([`attach_trajectory`]): not a
/// parameter, so loading skips it.
pub const TRAJECTORY_TENSOR: &str = "__trajectory__";

pub(crate) fn bad(message: impl Into<String>) -> Error {
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
pub(crate) fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
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
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(&rest[len..]);
    Ok(out)
}

/// Parse a safetensors file: a well-formed header, and every tensor's byte range inside the file.
pub(crate) fn parse(bytes: &[u8]) -> Result<safetensors::SafeTensors<'_>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))
}

/// The header metadata of a safetensors file, after checking that the header is well formed and
/// every tensor lies inside the file.
pub fn read_metadata(bytes: &[u8]) -> Result<HashMap<String, String>> {
    // `read_metadata` gives the metadata; only `parse` checks each tensor's byte range.
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    parse(bytes)?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Load `bytes` into `skeleton` (a freshly built module of the expected architecture). Every
/// parameter must be in the file with its exact shape and no tensor may be left over.
pub fn load_into<B: Backend, M: Module<B>>(mut skeleton: M, bytes: Vec<u8>) -> Result<M> {
    // Every parameter is a float tensor; burn's loader panics on any other dtype.
    {
        use safetensors::Dtype::{BF16, F16, F32, F64};
        let file = parse(&bytes)?;
        if let Some((name, t)) = file.tensors().into_iter().find(|(_, t)| !matches!(t.dtype(), F16 | BF16 | F32 | F64)) {
            return Err(bad(format!("tensor `{name}` is {:?}; model weights are floats", t.dtype())));
        }
    }
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = skeleton.load_from(&mut store).map_err(|e| bad(format!("the weights do not fit the model: {e}")))?;
    if !result.errors.is_empty() {
        let first: Vec<String> = result.errors.iter().take(3).map(|e| format!("{e:?}")).collect();
        return Err(bad(format!("the weights do not fit the model: {}", first.join("; "))));
    }
    if !result.missing.is_empty() {
        return Err(bad(format!("the file lacks parameters the model needs: {}", short_list(result.missing.iter().map(|m| format!("{m:?}"))))));
    }
    let unused: Vec<&String> = result.unused.iter().filter(|u| u.as_str() != TRAJECTORY_TENSOR).collect();
    if !unused.is_empty() {
        return Err(bad(format!("the file holds tensors the model does not have: {}", short_list(unused.into_iter().cloned()))));
    }
    Ok(skeleton)
}

pub(crate) fn short_list(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    let mut s = all.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > 4 {
        s.push_str(&format!(" and {} more", all.len() - 4));
    }
    s
}

pub(crate) fn require<'a>(meta: &'a HashMap<String, String>, key: &str) -> Result<&'a str> {
    meta.get(key).map(String::as_str).ok_or_else(|| bad(format!("not a prefscope checkpoint: the header has no `{key}`")))
}

/// Add a training trajectory to a checkpoint: the flattened weights
/// (`studies::landscape::read_weights`) at the snapshots the page keeps for its PCA plane, oldest
/// first, as one f32 tensor [snapshots, weights]. `prefscope landscape --plane pca` then uses them
/// instead of replaying the run, which a checkpoint trained in the page could not (the page's wasm
/// arithmetic and the native one part after a step, so a native replay ends elsewhere).
pub fn attach_trajectory(bytes: &[u8], snapshots: &[Vec<f32>]) -> Result<Vec<u8>> {
    let width = snapshots.first().map_or(0, Vec::len);
    if width == 0 || snapshots.iter().any(|s| s.len() != width) {
        return Err(bad("a trajectory needs snapshots of one non-zero length"));
    }
    let file = parse(bytes)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let data: Vec<u8> = snapshots.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = file.tensors().into_iter().filter(|(name, _)| name != TRAJECTORY_TENSOR).collect();
    views.push((TRAJECTORY_TENSOR.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![snapshots.len(), width], &data).map_err(|e| bad(format!("cannot serialise the trajectory: {e}")))?));
    let out = safetensors::serialize(views, meta.metadata().clone()).map_err(|e| bad(format!("cannot serialise the trajectory: {e}")))?;
    canonical_header(out)
}

/// The trajectory [`attach_trajectory`] stored, if any, one snapshot per row.
pub fn read_trajectory(bytes: &[u8]) -> Result<Option<Vec<Vec<f32>>>> {
    let file = parse(bytes)?;
    let Ok(t) = file.tensor(TRAJECTORY_TENSOR) else { return Ok(None) };
    let [rows, width] = t.shape()[..] else {
        return Err(bad(format!("`{TRAJECTORY_TENSOR}` has shape {:?}; expected [snapshots, weights]", t.shape())));
    };
    if t.dtype() != safetensors::Dtype::F32 || rows == 0 || width == 0 {
        return Err(bad(format!("`{TRAJECTORY_TENSOR}` must be a non-empty f32 [snapshots, weights] tensor")));
    }
    let values: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Some(values.chunks(width).map(<[f32]>::to_vec).collect()))
}

/// The number of values the file's tensors hold, by their headers (bounded by the file's size,
/// since every tensor's byte range was checked to lie inside it).
pub fn stored_values(bytes: &[u8]) -> Result<u128> {
    Ok(parse(bytes)?.tensors().iter().filter(|(name, _)| name != TRAJECTORY_TENSOR).map(|(_, t)| t.shape().iter().map(|&d| d as u128).product::<u128>()).sum())
}

/// Refuse, before the model is built, a header whose config needs more weights than the file
/// holds: such a file cannot load, and building its skeleton could exhaust memory first.
pub fn check_size(bytes: &[u8], needed: u128) -> Result<()> {
    let stored = stored_values(bytes)?;
    if needed > stored {
        return Err(bad(format!("its config describes a model of {needed} weights but the file holds {stored} values")));
    }
    Ok(())
}
