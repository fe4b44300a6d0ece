//! Checkpoints: one self-describing `.safetensors` file per model.
//!
//! The tensors are the module's parameters under burn's module paths; the safetensors header's
//! metadata carries what is needed to rebuild the module before loading them: the kind of model
//! ([`KIND_KEY`]), its config as TOML ([`CONFIG_KEY`]) and the input widths ([`DIMS_KEY`]). The
//! same bytes are written by the CLI and opened by the page, so a file trained natively loads in
//! the tab. Loading trusts nothing: the header is parsed and bounds-checked by the `safetensors`
//! crate, every parameter must be present with its exact shape, and extra tensors are refused.
//!
//! Embedding files ([`write_pair_embeddings`], kind `pair-embeddings`) use the same container for
//! text pairs embedded by a sentence encoder (`prefscope embed`), so the page trains heads on them.

use std::collections::HashMap;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use crate::kernels::Backend;

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

/// Tensor name of a preference model's training trajectory ([`attach_trajectory`]): not a
/// parameter, so loading skips it.
pub const TRAJECTORY_TENSOR: &str = "__trajectory__";

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
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(&rest[len..]);
    Ok(out)
}

/// Parse a safetensors file: a well-formed header, and every tensor's byte range inside the file.
fn parse(bytes: &[u8]) -> Result<safetensors::SafeTensors<'_>> {
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

/// Add a training trajectory to a checkpoint: the flattened weights
/// ([`crate::landscape::read_weights`]) at the snapshots the page keeps for its PCA plane, oldest
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

/// Rebuild a preference model from checkpoint bytes alone.
pub fn load_preference_model<B: Backend>(bytes: Vec<u8>, device: &B::Device) -> Result<(PreferenceCheckpoint, PreferenceModel<B>)> {
    let head = inspect_preference_model(&bytes)?;
    head.config.model.validate()?;
    if let Some(needed) = head.config.model.num_params(head.input_dim, head.prompt_dim) {
        check_size(&bytes, needed)?;
    }
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

/// `KIND_KEY` of an embedding file: pairs of text embedded by a sentence encoder.
pub const PAIR_EMBEDDINGS: &str = "pair-embeddings";
/// Metadata key: the encoder that made an embedding file (e.g. `all-MiniLM-L6-v2`).
pub const ENCODER_KEY: &str = "prefscope.encoder";
/// Metadata key: the name of the pair file an embedding file was made from.
pub const SOURCE_KEY: &str = "prefscope.source";

/// An embedding file's bytes: F32 tensors `chosen` and `rejected` `[n, dim]` (row i is pair i's
/// response) and, when the data has prompt features, `prompt` `[n, prompt_dim]`; when it has them,
/// per-attribute ratings `chosen_ratings`/`rejected_ratings` `[n, objectives]` and the per-pair
/// `margin` `[n]` (its strengths). Rows are per pair,
/// not per distinct item, so the file is plain to read from any language; [`read_pair_embeddings`]
/// restores the sharing.
pub fn write_pair_embeddings(data: &PairDataset, encoder: &str, source: &str) -> Result<Vec<u8>> {
    let n = data.pairs.len();
    if n == 0 || data.dim == 0 {
        return Err(bad("there are no pairs to write"));
    }
    let rows = |side: fn(&(usize, usize)) -> usize| -> Vec<u8> { data.pairs.iter().flat_map(|p| data.item(side(p))).flat_map(|x| x.to_le_bytes()).collect() };
    let (chosen, rejected) = (rows(|p| p.0), rows(|p| p.1));
    let prompt: Vec<u8> = data.prompts.iter().flat_map(|x| x.to_le_bytes()).collect();
    fn view(bytes: &[u8], shape: Vec<usize>) -> Result<safetensors::tensor::TensorView<'_>> {
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes).map_err(|e| bad(format!("cannot serialise the embeddings: {e}")))
    }
    let k = data.n_objectives;
    let rated = |side: fn(&(usize, usize)) -> usize| -> Vec<u8> {
        data.pairs.iter().flat_map(|p| &data.ratings[side(p) * k..(side(p) + 1) * k]).flat_map(|x| x.to_le_bytes()).collect()
    };
    let has_ratings = k > 0 && data.ratings.len() == data.n_items() * k;
    let (chosen_ratings, rejected_ratings) = if has_ratings { (rated(|p| p.0), rated(|p| p.1)) } else { Default::default() };
    let margin: Vec<u8> = data.strengths.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut views = vec![("chosen", view(&chosen, vec![n, data.dim])?), ("rejected", view(&rejected, vec![n, data.dim])?)];
    if data.prompt_dim > 0 {
        views.push(("prompt", view(&prompt, vec![n, data.prompt_dim])?));
    }
    if has_ratings {
        views.push(("chosen_ratings", view(&chosen_ratings, vec![n, k])?));
        views.push(("rejected_ratings", view(&rejected_ratings, vec![n, k])?));
    }
    if data.strengths.len() == n {
        views.push(("margin", view(&margin, vec![n])?));
    }
    let i64s = |v: &mut dyn Iterator<Item = usize>| -> Vec<u8> { v.flat_map(|x| (x as i64).to_le_bytes()).collect() };
    let lines = i64s(&mut data.source_lines.iter().copied());
    let lengths = i64s(&mut data.response_lengths.iter().flat_map(|&(c, r)| [c, r]));
    let int_view = |bytes, shape| safetensors::tensor::TensorView::new(safetensors::Dtype::I64, shape, bytes).map_err(|e| bad(format!("cannot serialise the embeddings: {e}")));
    if data.source_lines.len() == n {
        views.push(("line", int_view(&lines, vec![n])?));
    }
    if data.response_lengths.len() == n {
        views.push(("length", int_view(&lengths, vec![n, 2])?));
    }
    let metadata: HashMap<String, String> =
        [(KIND_KEY, PAIR_EMBEDDINGS), (ENCODER_KEY, encoder), (SOURCE_KEY, source)].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| bad(format!("cannot serialise the embeddings: {e}")))?;
    canonical_header(bytes)
}

/// Read an embedding file (see [`write_pair_embeddings`]) into a [`PairDataset`] without a split.
/// Identical rows become one item, in order of first appearance (chosen before rejected). Refused
/// with a reason: another kind of file, a missing or unknown tensor, a dtype other than F32, rows
/// that disagree in number or width, non-finite values.
pub fn read_pair_embeddings(bytes: &[u8]) -> Result<PairDataset> {
    let meta = read_metadata(bytes)?;
    let kind = require(&meta, KIND_KEY)?;
    if kind != PAIR_EMBEDDINGS {
        return Err(bad(format!("this file holds a `{kind}`, not `{PAIR_EMBEDDINGS}`")));
    }
    let file = parse(bytes)?;
    if let Some(name) = file.names().into_iter().find(|n| !matches!(*n, "chosen" | "rejected" | "prompt" | "chosen_ratings" | "rejected_ratings" | "margin" | "line" | "length")) {
        return Err(bad(format!("unexpected tensor `{name}` in an embedding file (chosen, rejected, prompt, chosen_ratings, rejected_ratings, margin, line, length)")));
    }
    let matrix = |name: &str| -> Result<Option<(usize, usize, &[u8])>> {
        let t = match file.tensor(name) {
            Ok(t) => t,
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => return Ok(None),
            Err(e) => return Err(bad(format!("`{name}`: {e}"))),
        };
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!("`{name}` is {:?}, expected F32", t.dtype())));
        }
        // `margin` is one number per pair: read it as [pairs, 1].
        let (rows, cols) = match (t.shape(), name) {
            (&[rows], "margin") => (rows, 1),
            (&[rows, cols], _) if name != "margin" => (rows, cols),
            _ => return Err(bad(format!("`{name}` has shape {:?}, expected {}", t.shape(), if name == "margin" { "[pairs]" } else { "[pairs, width]" }))),
        };
        if rows == 0 || cols == 0 || cols > 1 << 20 {
            return Err(bad(format!("`{name}` has shape [{rows}, {cols}]: no pairs or an implausible width")));
        }
        if let Some(i) = t.data().chunks_exact(4).position(|b| !f32::from_le_bytes(b.try_into().expect("4 bytes")).is_finite()) {
            return Err(bad(format!("`{name}` has a non-finite value in row {}", i / cols)));
        }
        Ok(Some((rows, cols, t.data())))
    };
    let (Some(chosen), Some(rejected)) = (matrix("chosen")?, matrix("rejected")?) else {
        return Err(bad("an embedding file needs both `chosen` and `rejected`"));
    };
    let prompt = matrix("prompt")?;
    let (n, dim) = (chosen.0, chosen.1);
    if (rejected.0, rejected.1) != (n, dim) {
        return Err(bad(format!("`chosen` is [{n}, {dim}] but `rejected` is [{}, {}]", rejected.0, rejected.1)));
    }
    if let Some((rows, _, _)) = prompt
        && rows != n
    {
        return Err(bad(format!("`prompt` has {rows} rows for {n} pairs")));
    }
    let floats = |b: &[u8]| -> Vec<f32> { b.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect() };
    let row_bytes = dim * 4;
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut items = Vec::new();
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let mut ids = [0; 2];
        for (id, data) in ids.iter_mut().zip([chosen.2, rejected.2]) {
            let row = &data[i * row_bytes..(i + 1) * row_bytes];
            let next = index.len();
            *id = *index.entry(row).or_insert_with(|| {
                items.extend(floats(row));
                next
            });
        }
        pairs.push((ids[0], ids[1]));
    }
    let (prompt_dim, prompts) = prompt.map(|(_, cols, data)| (cols, floats(data))).unwrap_or_default();
    let mut ds = PairDataset { dim, items, pairs, prompt_dim, prompts, ..Default::default() };
    match (matrix("chosen_ratings")?, matrix("rejected_ratings")?) {
        (None, None) => {}
        (Some((rc, k, c)), Some((rr, kr, r))) => {
            if (rc, rr, kr) != (n, n, k) {
                return Err(bad(format!("`chosen_ratings` is [{rc}, {k}] and `rejected_ratings` [{rr}, {kr}] for {n} pairs")));
            }
            let (c, r) = (floats(c), floats(r));
            // Per item, from the first pair it appears in.
            let mut ratings: Vec<Option<&[f32]>> = vec![None; ds.n_items()];
            for (i, &(a, b)) in ds.pairs.iter().enumerate() {
                ratings[a].get_or_insert(&c[i * k..(i + 1) * k]);
                ratings[b].get_or_insert(&r[i * k..(i + 1) * k]);
            }
            ds.ratings = ratings.into_iter().flat_map(|x| x.expect("every item is in a pair").iter().copied()).collect();
            ds.n_objectives = k;
        }
        _ => return Err(bad("ratings need both `chosen_ratings` and `rejected_ratings`")),
    }
    if let Some((rows, _, data)) = matrix("margin")? {
        if rows != n {
            return Err(bad(format!("`margin` has {rows} values for {n} pairs")));
        }
        ds.strengths = floats(data);
    }
    // Integer columns: the source line of each pair (from 1; it decides the held-out split) and
    // the characters of its two responses (the eval report's length buckets).
    let ints = |name: &str, shape: &[usize], min: i64| -> Result<Option<Vec<usize>>> {
        let t = match file.tensor(name) {
            Ok(t) => t,
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => return Ok(None),
            Err(e) => return Err(bad(format!("`{name}`: {e}"))),
        };
        if t.dtype() != safetensors::Dtype::I64 || t.shape() != shape {
            return Err(bad(format!("`{name}` is {:?} {:?}, expected I64 {shape:?}", t.dtype(), t.shape())));
        }
        let v: Vec<i64> = t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        if let Some(i) = v.iter().position(|&x| x < min) {
            return Err(bad(format!("`{name}` has {} in row {}, below {min}", v[i], i / shape.get(1).copied().unwrap_or(1))));
        }
        Ok(Some(v.into_iter().map(|x| x as usize).collect()))
    };
    ds.source_lines = ints("line", &[n], 1)?.unwrap_or_default();
    ds.response_lengths = ints("length", &[n, 2], 0)?.map(|v| v.chunks_exact(2).map(|c| (c[0], c[1])).collect()).unwrap_or_default();
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelKind, ScenarioKind, Trainer};
    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;

    type B = Autodiff<Flex>;

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

    /// A trajectory rides along: read back exactly, skipped by loading (same logits, same
    /// header), replaced rather than duplicated, and malformed ones refused.
    #[test]
    fn a_trajectory_rides_along_without_changing_the_model() {
        let t = trained(ModelKind::Gpm, ScenarioKind::Cyclic);
        let bytes = t.checkpoint_bytes().unwrap();
        let theta = pollster::block_on(crate::landscape::read_weights(&t.model().valid())).unwrap();
        let snapshots = vec![theta.iter().map(|x| x * 0.5).collect::<Vec<f32>>(), theta.clone()];
        let with = attach_trajectory(&bytes, &snapshots).unwrap();
        assert_eq!(read_trajectory(&with).unwrap().unwrap(), snapshots);
        assert_eq!(read_trajectory(&bytes).unwrap(), None);
        assert_eq!(inspect_preference_model(&with).unwrap(), inspect_preference_model(&bytes).unwrap());
        assert_eq!(stored_values(&with).unwrap(), stored_values(&bytes).unwrap());
        let (_, loaded) = load_preference_model::<B>(with.clone(), &Default::default()).unwrap();
        let want = pollster::block_on(t.evaluate()).unwrap();
        let got = pollster::block_on(crate::train::evaluate(&loaded.valid(), &t.dataset, &t.dataset.eval, &Default::default())).unwrap();
        assert_eq!(want, got);
        // Attaching again replaces it; the file stays canonical.
        let again = attach_trajectory(&with, &snapshots[1..]).unwrap();
        assert_eq!(read_trajectory(&again).unwrap().unwrap(), snapshots[1..]);
        assert_eq!(attach_trajectory(&bytes, &snapshots[1..]).unwrap(), again);
        assert!(attach_trajectory(&bytes, &[vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(attach_trajectory(&bytes, &[]).is_err());
        // Any other extra tensor is still refused by name.
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let one = 1f32.to_le_bytes();
        let mut views: Vec<_> = file.tensors();
        views.push(("stray".to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &one).unwrap()));
        let stray = safetensors::serialize(views, meta.metadata().clone()).unwrap();
        let e = load_preference_model::<B>(stray, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("stray"), "{e}");
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

    #[test]
    fn a_header_asking_for_more_weights_than_the_file_holds_is_refused_before_building() {
        // 2^20 inputs into 65,536 hidden units: 68.7 G weights (275 GB) that building the
        // skeleton would allocate; the file holds a few thousand values.
        let t = trained(ModelKind::Bt, ScenarioKind::Linear);
        let mut cfg = t.config.clone();
        cfg.model.hidden = vec![1 << 16];
        let meta = [(KIND_KEY, PREFERENCE_MODEL.to_string()), (CONFIG_KEY, cfg.to_toml()), (DIMS_KEY, format!("{},0", 1 << 20)), (STEP_KEY, "20".into())];
        let bytes = to_safetensors(t.model(), &meta).unwrap();
        let needed = cfg.model.num_params(1 << 20, 0).unwrap();
        assert!(needed > 68_000_000_000, "{needed}");
        let e = load_preference_model::<B>(bytes, &Default::default()).unwrap_err().to_string();
        assert!(e.contains(&format!("describes a model of {needed} weights but the file holds")), "{e}");
    }

    fn embedded() -> PairDataset {
        // Items 0 and 2 are shared between pairs; prompts are per pair.
        let items = vec![0.5, -1.0, 0.25, 0.0, 1.0, 2.0, -0.5, 3.0, 0.125];
        let prompts = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
        PairDataset { dim: 3, items, pairs: vec![(0, 1), (2, 0), (0, 1)], prompt_dim: 2, prompts, ..Default::default() }
    }

    #[test]
    fn pair_embeddings_round_trip_and_name_their_source() {
        let ds = embedded();
        let bytes = write_pair_embeddings(&ds, "all-MiniLM-L6-v2", "pairs.jsonl").unwrap();
        assert_eq!(bytes, write_pair_embeddings(&ds, "all-MiniLM-L6-v2", "pairs.jsonl").unwrap(), "deterministic bytes");
        assert_eq!(read_pair_embeddings(&bytes).unwrap(), ds);
        let meta = read_metadata(&bytes).unwrap();
        assert_eq!(meta[KIND_KEY], PAIR_EMBEDDINGS);
        assert_eq!(meta[ENCODER_KEY], "all-MiniLM-L6-v2");
        assert_eq!(meta[SOURCE_KEY], "pairs.jsonl");
        // Without prompt features there is no `prompt` tensor.
        let bare = PairDataset { prompt_dim: 0, prompts: vec![], ..embedded() };
        assert_eq!(read_pair_embeddings(&write_pair_embeddings(&bare, "e", "s").unwrap()).unwrap(), bare);
        // Ratings (per item, two attributes) and margins (per pair) travel with the rows.
        let labelled = PairDataset { ratings: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], n_objectives: 2, strengths: vec![0.5, 1.0, 2.0], ..embedded() };
        let bytes = write_pair_embeddings(&labelled, "e", "s").unwrap();
        assert_eq!(read_pair_embeddings(&bytes).unwrap(), labelled);
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let rows = |name: &str| file.tensor(name).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<f32>>();
        // Pair 1 is (item 2, item 0): its rows are item 2's and item 0's ratings.
        assert_eq!(rows("chosen_ratings"), [1.0, 2.0, 5.0, 6.0, 1.0, 2.0]);
        assert_eq!(rows("rejected_ratings"), [3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(rows("margin"), [0.5, 1.0, 2.0]);
        // Source lines travel as I64, one per pair.
        let lined = PairDataset { source_lines: vec![2, 3, 7], response_lengths: vec![(10, 20), (0, 5), (10, 20)], ..embedded() };
        let bytes = write_pair_embeddings(&lined, "e", "s").unwrap();
        assert_eq!(read_pair_embeddings(&bytes).unwrap(), lined);
        assert_eq!(safetensors::SafeTensors::deserialize(&bytes).unwrap().tensor("line").unwrap().dtype(), safetensors::Dtype::I64);
    }

    #[test]
    fn bad_pair_embedding_files_are_refused_with_a_reason() {
        use safetensors::{Dtype, serialize, tensor::TensorView};
        let file = |tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], kind: &str| {
            let views: Vec<_> = tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
            serialize(views, Some(HashMap::from([(KIND_KEY.to_string(), kind.to_string())]))).unwrap()
        };
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let ok = f32s(&[1.0, 2.0, 3.0, 4.0]);
        let err = |bytes: Vec<u8>| read_pair_embeddings(&bytes).unwrap_err().to_string();

        let good = file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], f32s(&[0.0; 4]))], PAIR_EMBEDDINGS);
        assert_eq!(read_pair_embeddings(&good).unwrap().pairs, [(0, 1), (2, 1)]);
        for (bytes, want) in [
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone())], PAIR_EMBEDDINGS), "needs both `chosen` and `rejected`"),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![1, 4], ok.clone())], PAIR_EMBEDDINGS), "but `rejected` is [1, 4]"),
            (
                file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("prompt", Dtype::F32, vec![1, 4], ok.clone())], PAIR_EMBEDDINGS),
                "`prompt` has 1 rows for 2 pairs",
            ),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], f32s(&[0.0, 0.0, f32::NAN, 0.0]))], PAIR_EMBEDDINGS), "non-finite value in row 1"),
            (file(&[("chosen", Dtype::I32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone())], PAIR_EMBEDDINGS), "expected F32"),
            (file(&[("chosen", Dtype::F32, vec![4], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone())], PAIR_EMBEDDINGS), "expected [pairs, width]"),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("labels", Dtype::F32, vec![4], ok.clone())], PAIR_EMBEDDINGS), "unexpected tensor `labels`"),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone())], PREFERENCE_MODEL), "not `pair-embeddings`"),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("line", Dtype::F32, vec![2], f32s(&[1.0, 2.0]))], PAIR_EMBEDDINGS), "`line` is F32 [2], expected I64 [2]"),
            (
                file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("length", Dtype::I64, vec![2], [3i64, 4].iter().flat_map(|l| l.to_le_bytes()).collect())], PAIR_EMBEDDINGS),
                "`length` is I64 [2], expected I64 [2, 2]",
            ),
            (
                file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("line", Dtype::I64, vec![2], [3i64, 0].iter().flat_map(|l| l.to_le_bytes()).collect())], PAIR_EMBEDDINGS),
                "`line` has 0 in row 1, below 1",
            ),
            (good[..good.len() - 3].to_vec(), "not a valid safetensors file"),
            (
                file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("chosen_ratings", Dtype::F32, vec![2, 2], ok.clone())], PAIR_EMBEDDINGS),
                "need both `chosen_ratings` and `rejected_ratings`",
            ),
            (
                file(
                    &[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("chosen_ratings", Dtype::F32, vec![2, 2], ok.clone()), ("rejected_ratings", Dtype::F32, vec![4, 1], ok.clone())],
                    PAIR_EMBEDDINGS,
                ),
                "`rejected_ratings` [4, 1] for 2 pairs",
            ),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("margin", Dtype::F32, vec![4], ok.clone())], PAIR_EMBEDDINGS), "`margin` has 4 values for 2 pairs"),
            (file(&[("chosen", Dtype::F32, vec![2, 2], ok.clone()), ("rejected", Dtype::F32, vec![2, 2], ok.clone()), ("margin", Dtype::F32, vec![2, 2], ok.clone())], PAIR_EMBEDDINGS), "expected [pairs]"),
        ] {
            let e = err(bytes);
            assert!(e.contains(want), "{e} (expected: {want})");
        }
        // A model checkpoint is not an embedding file.
        let t = trained(ModelKind::Bt, ScenarioKind::Linear);
        assert!(err(t.checkpoint_bytes().unwrap()).contains("not `pair-embeddings`"));
    }
}
