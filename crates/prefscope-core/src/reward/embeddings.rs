//! Embedding files: text pairs embedded by a sentence encoder (`prefscope embed`), in the same
//! safetensors container as checkpoints (kind `pair-embeddings`), so the page trains heads on them.

use crate::reward::data::PairDataset;
use crate::runtime::safetensors::{KIND_KEY, bad, canonical_header, parse, read_metadata, require};
use std::collections::HashMap;

use crate::Result;

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
