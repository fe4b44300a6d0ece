//! Tests of the reward and preference models.
use super::*;
use burn::backend::Flex;

type B = Flex;

fn rows(v: &[f32], cols: usize) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), &Default::default())
}

#[test]
fn num_params_counts_what_init_allocates() {
    // Every kind, with and without gates, two hidden layers, prompts where a kind needs them.
    for kind in [ModelKind::Bt, ModelKind::Gpm, ModelKind::MultiObjective, ModelKind::Mixture, ModelKind::Vpl, ModelKind::ContextBt] {
        for gate in [false, true] {
            let cfg = ModelConfig { hidden: vec![5, 3], k: 3, objectives: 4, heads: 3, latent: 6, gate, verbosity_dim: 1, ..ModelConfig::new(kind) };
            let (input, prompt) = if kind == ModelKind::Vpl { (2, 8) } else { (7, 4) };
            let model = cfg.init::<B>(input, prompt, 0, &Default::default()).unwrap();
            assert_eq!(cfg.num_params(input, prompt), Some(model.num_params() as u128), "{kind:?} gate={gate}");
        }
    }
    assert_eq!(ModelConfig::new(ModelKind::Regret).num_params(1, 0), None);
}

#[test]
fn init_is_deterministic_and_seed_dependent() {
    let cfg = ModelConfig::new(ModelKind::Gpm);
    let x = rows(&[0.3, -0.7, 1.0, 0.2], 2);
    let y = rows(&[-0.5, 0.1, 0.4, 0.9], 2);
    let a: Vec<f32> = cfg.init::<B>(2, 0, 5, &Default::default()).unwrap().logits(x.clone(), y.clone(), None).into_data().convert::<f32>().to_vec().unwrap();
    let b: Vec<f32> = cfg.init::<B>(2, 0, 5, &Default::default()).unwrap().logits(x.clone(), y.clone(), None).into_data().convert::<f32>().to_vec().unwrap();
    let c: Vec<f32> = cfg.init::<B>(2, 0, 6, &Default::default()).unwrap().logits(x, y, None).into_data().convert::<f32>().to_vec().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn both_models_are_antisymmetric() {
    for kind in [ModelKind::Bt, ModelKind::Gpm, ModelKind::MultiObjective] {
        let m = ModelConfig::new(kind).init::<B>(2, 0, 1, &Default::default()).unwrap();
        let x = rows(&[0.3, -0.7, 1.0, 0.2, 0.0, 0.0], 2);
        let y = rows(&[-0.5, 0.1, 0.4, 0.9, 0.0, 0.0], 2);
        let ab: Vec<f32> = m.logits(x.clone(), y.clone(), None).into_data().convert::<f32>().to_vec().unwrap();
        let ba: Vec<f32> = m.logits(y, x, None).into_data().convert::<f32>().to_vec().unwrap();
        for (p, q) in ab.iter().zip(&ba) {
            assert!((p + q).abs() < 1e-5, "{kind:?}: {p} vs {q}");
        }
        assert_eq!(ab[2], 0.0, "{kind:?}: an item against itself must score 0");
    }
}

#[test]
fn all_pairs_table_needs_n_encoder_rows_and_matches_pairwise_scores() {
    let mut cfg = ModelConfig::new(ModelKind::Gpm);
    cfg.k = 3;
    cfg.gate = true;
    let m = cfg.init::<B>(2, 4, 9, &Default::default()).unwrap();
    let PreferenceModel::Gpm(g) = &m else { unreachable!() };
    let n = 5;
    let xs: Vec<f32> = (0..2 * n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
    let items = rows(&xs, 2);
    let prompt = rows(&[0.2, -1.0, 0.5, 0.3], 4);
    let lambda = g.gate_weights(Some(prompt.clone())).unwrap().reshape([3]);
    let mut encoded_rows = 0;
    let table = all_pairs_scores(items.clone(), |x| {
        encoded_rows += x.dims()[0];
        g.embed(x)
    }, Some(lambda), g.tau);
    assert_eq!(encoded_rows, n, "one embedding per response, not one per pair");
    let table: Vec<f32> = table.into_data().convert::<f32>().to_vec().unwrap();
    // Against the per-pair path (which embeds both sides of each of the n² pairs).
    for i in 0..n {
        for j in 0..n {
            let a = rows(&xs[2 * i..2 * i + 2], 2);
            let b = rows(&xs[2 * j..2 * j + 2], 2);
            let s: f32 = m.logits(a, b, Some(prompt.clone())).into_scalar();
            assert!((table[i * n + j] - s).abs() < 1e-4, "({i},{j}): {} vs {s}", table[i * n + j]);
        }
        assert!(table[i * n + i].abs() < 1e-6, "s(y ≻ y) = 0");
    }
    let scores: Vec<f32> = candidate_scores(rows(&table, n)).into_data().convert::<f32>().to_vec().unwrap();
    for i in 0..n {
        let expected = 2.0 * (0..n).map(|j| table[i * n + j]).sum::<f32>() / n as f32;
        assert!((scores[i] - expected).abs() < 1e-4);
    }
}

#[test]
fn mixture_and_vpl_objectives_have_the_gradient_of_their_value() {
    use crate::reward::loss::gradcheck::{AD, check};
    let dev = Default::default();
    let t2 = |v: Vec<f64>, cols: usize| Tensor::<AD, 2>::from_data(TensorData::new(v.clone(), [v.len() / cols, cols]), &dev);
    let rows = [0.3, -0.5, 1.2, 0.7, -0.4, 0.9, 0.1, -1.1];

    // No hidden layers: burn 0.21's f64 GELU gradient is off by ~4e-5 from finite differences
    // (0.73230 vs 0.73233 at x = 0.3), and the objectives, not the MLP, are under test here.
    let mut cfg = ModelConfig::new(ModelKind::Mixture);
    cfg.hidden = vec![];
    cfg.load_balance = 0.3;
    let PreferenceModel::Mixture(mix) = cfg.init::<AD>(2, 3, 4, &dev).unwrap() else { unreachable!() };
    let prompt = t2(vec![1.0, 0.0, 0.0, 0.2, 0.7, -0.4], 3);
    check("mixture_BT + load balance", &rows, [4, 2], |x| mix.mixture_loss(x.clone().narrow(0, 0, 2), x.narrow(0, 2, 2), prompt.clone()));

    // VPL's negative ELBO with a fixed ε, against the items and against the context pairs.
    let mut cfg = ModelConfig::new(ModelKind::Vpl);
    cfg.hidden = vec![];
    cfg.latent = 3;
    let PreferenceModel::Vpl(vpl) = cfg.init::<AD>(2, 8, 5, &dev).unwrap() else { unreachable!() };
    let context: Vec<f64> = (0..16).map(|i| ((i * 7 % 11) as f64 - 5.0) / 6.0).collect();
    let eps = t2(vec![0.4, -1.2, 0.3, 0.8, 0.1, -0.6], 3);
    let items = t2(rows.to_vec(), 2);
    check("vpl elbo (items)", &rows, [4, 2], |x| vpl.elbo(x.clone().narrow(0, 0, 2), x.narrow(0, 2, 2), t2(context.clone(), 8), eps.clone(), 0.5).1);
    check("vpl elbo (context)", &context, [2, 8], |c| vpl.elbo(items.clone().narrow(0, 0, 2), items.clone().narrow(0, 2, 2), c, eps.clone(), 0.5).1);
}

#[test]
fn gate_requires_prompt_features() {
    let mut cfg = ModelConfig::new(ModelKind::Gpm);
    cfg.gate = true;
    let err = cfg.init::<B>(2, 0, 0, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("model.gate"), "{err}");
    let m = cfg.init::<B>(2, 3, 0, &Default::default()).unwrap();
    let PreferenceModel::Gpm(g) = &m else { unreachable!() };
    let lambda: Vec<f32> = g.gate_weights(Some(rows(&[1.0, 2.0, 3.0], 3))).unwrap().into_data().convert::<f32>().to_vec().unwrap();
    assert_eq!(lambda.len(), 1);
    assert!((lambda[0] - 1.0).abs() < 1e-6, "one block gets all the weight");
}

#[test]
fn context_bt_reads_the_context_and_needs_one() {
    let cfg = ModelConfig::new(ModelKind::ContextBt);
    assert!(cfg.init::<B>(2, 0, 0, &Default::default()).is_err(), "no prompt features: refused");
    let m = cfg.init::<B>(2, 3, 0, &Default::default()).unwrap();
    let PreferenceModel::ContextBt(c) = &m else { unreachable!() };
    let (x, y) = (rows(&[0.3, -0.7, 1.0, 0.2], 2), rows(&[-0.5, 0.1, 0.4, 0.9], 2));
    let p = rows(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 3);
    // The logit is r(c, x) − r(c, y), with r the MLP over [c; y].
    let want: Vec<f32> = (c.mlp.forward(Tensor::cat(vec![p.clone(), x.clone()], 1)) - c.mlp.forward(Tensor::cat(vec![p.clone(), y.clone()], 1))).reshape([2]).into_data().to_vec().unwrap();
    let got: Vec<f32> = m.logits(x.clone(), y.clone(), Some(p.clone())).into_data().to_vec().unwrap();
    assert_eq!(want, got);
    // Another context gives another reward for the same responses.
    let q = rows(&[0.0, 1.0, 0.0, 0.0, 1.0, 0.0], 3);
    let other: Vec<f32> = m.logits(x, y, Some(q)).into_data().to_vec().unwrap();
    assert_ne!(got, other);
}
