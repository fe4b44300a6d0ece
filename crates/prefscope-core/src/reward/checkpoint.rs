//! Preference-model checkpoints: one self-describing `.safetensors` file per model.
//!
//! The metadata carries what is needed to rebuild the module before loading its weights: the
//! kind of model ([`KIND_KEY`]), its run config as TOML ([`CONFIG_KEY`]) and the input widths
//! ([`DIMS_KEY`]). The same bytes are written by the CLI and opened by the page, so a file
//! trained natively loads in the tab. The container itself is [`crate::runtime::safetensors`].

use crate::runtime::kernels::Backend;

use crate::reward::data::PairDataset;
use crate::reward::model::PreferenceModel;
use crate::reward::train::RunConfig;
use crate::runtime::safetensors::{bad, require};
pub use crate::runtime::safetensors::{
    CONFIG_KEY, DIMS_KEY, KIND_KEY, STEP_KEY, TRAJECTORY_TENSOR, attach_trajectory, check_size, load_into, read_metadata, read_trajectory, stored_values, to_safetensors,
};
use crate::Result;

/// `KIND_KEY` of a feature-vector preference model ([`PreferenceModel`]).
pub const PREFERENCE_MODEL: &str = "preference-model";

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use crate::reward::embeddings::*;
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
            let got = pollster::block_on(crate::reward::train::evaluate(&loaded.valid(), &t.dataset, &t.dataset.eval, &Default::default())).unwrap();
            assert_eq!(want, got, "{model:?}");
        }
    }

    /// A trajectory rides along: read back exactly, skipped by loading (same logits, same
    /// header), replaced rather than duplicated, and malformed ones refused.
    #[test]
    fn a_trajectory_rides_along_without_changing_the_model() {
        let t = trained(ModelKind::Gpm, ScenarioKind::Cyclic);
        let bytes = t.checkpoint_bytes().unwrap();
        let theta = pollster::block_on(crate::studies::landscape::read_weights(&t.model().valid())).unwrap();
        let snapshots = vec![theta.iter().map(|x| x * 0.5).collect::<Vec<f32>>(), theta.clone()];
        let with = attach_trajectory(&bytes, &snapshots).unwrap();
        assert_eq!(read_trajectory(&with).unwrap().unwrap(), snapshots);
        assert_eq!(read_trajectory(&bytes).unwrap(), None);
        assert_eq!(inspect_preference_model(&with).unwrap(), inspect_preference_model(&bytes).unwrap());
        assert_eq!(stored_values(&with).unwrap(), stored_values(&bytes).unwrap());
        let (_, loaded) = load_preference_model::<B>(with.clone(), &Default::default()).unwrap();
        let want = pollster::block_on(t.evaluate()).unwrap();
        let got = pollster::block_on(crate::reward::train::evaluate(&loaded.valid(), &t.dataset, &t.dataset.eval, &Default::default())).unwrap();
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
