//! PrefPalette (Li et al. 2025): a reward model that reads a response through attribute
//! predictors and weighs them by an attention that depends on the community.
//!
//! * Attribute predictors p_i(y), one score per attribute, learn from a teacher's order of each
//!   pair on each attribute (Bradley–Terry per attribute, PrefPalette's contrastive
//!   distillation). The preference loss does not move them: in PrefPalette they are trained
//!   first and frozen.
//! * Context attention (Bahdanau-style): the query is the pair's context (the community), each
//!   key an attribute's embedding E_i, e_i = w_aᵀ tanh(W_q c + W_k E_i), a = softmax_i(e).
//! * The attribute summary h_attr = Σ_i a_i p_i(y) joins the content's reward:
//!   r = v·h_c(y) + b + s·h_attr (s learnable, from 0.5).
//!
//! Toy-scale choices: the query reads the context alone (PrefPalette's reads the content, in
//! which the subreddit is written), and the keys read each attribute's embedding, so a
//! community's attention is one distribution over attributes: its profile. The value of
//! attribute i is its predictor's score (PrefPalette's is the predictor's last hidden state,
//! which its value head reads through h_c's space): with a free value vector per attribute, an
//! attention that sums to 1 can meet a community's weights with either sign, and on a third of
//! seeds it settled on profiles that anti-correlate with the truth.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData, activation};

use crate::reward::data::PairDataset;
use crate::reward::layers::{Dense, Mlp};
use crate::runtime::kernels::Backend;

#[derive(Module, Debug)]
pub struct AttributeAttentionModel<B: Backend> {
    /// h_c(y): the content representation.
    pub content: Mlp<B>,
    /// p(y): one score per attribute.
    pub predictors: Mlp<B>,
    /// E: `[attributes, width]`, each attribute's embedding (the attention's keys read it).
    pub embed: Param<Tensor<B, 2>>,
    /// W_q: the context into the attention's space.
    pub query: Dense<B>,
    /// W_k: an attribute embedding into the attention's space.
    pub key: Dense<B>,
    /// w_a: the attention score (no bias: softmax ignores it).
    pub score: Dense<B>,
    /// s: the attribute summary's scale.
    pub scale: Param<Tensor<B, 1>>,
    /// The content's reward head, on h_c.
    pub value: Dense<B>,
}

impl<B: Backend> AttributeAttentionModel<B> {
    pub fn attributes(&self) -> usize {
        self.embed.val().dims()[0]
    }

    /// a(c): `[n, attributes]`, each row a distribution over the attributes; `context` is
    /// `[n, prompt_dim]`.
    pub fn attention(&self, context: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = context.dims()[0];
        let (a, w) = (self.attributes(), self.query.weight.val().dims()[1]);
        let q = self.query.forward(context).reshape([n, 1, w]);
        let k = self.key.forward(self.embed.val()).reshape([1, a, w]);
        let e = self.score.forward(activation::tanh(q + k).reshape([n * a, w])).reshape([n, a]);
        activation::softmax(e, 1)
    }

    /// p(y): `[n, attributes]`.
    pub fn attribute_scores(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.predictors.forward(x)
    }

    /// r(c, y) per row. The attribute scores enter detached: only the teacher's orders train
    /// the predictors.
    pub fn reward(&self, x: Tensor<B, 2>, context: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        let h_attr = (self.attention(context) * self.attribute_scores(x.clone()).detach()).sum_dim(1).reshape([n]);
        self.value.forward(self.content.forward(x)).reshape([n]) + h_attr * self.scale.val()
    }

    /// r(c, y₁) − r(c, y₂) per row.
    pub fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>, context: Tensor<B, 2>) -> Tensor<B, 1> {
        self.reward(chosen, context.clone()) - self.reward(rejected, context)
    }

    /// The predictors' loss on the teacher's orders: the mean over pairs and attributes of
    /// −log σ(sᵢ·(pᵢ(y₁) − pᵢ(y₂))), sᵢ the sign of the rated difference (ties count 0).
    pub fn attribute_loss(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>, rated_chosen: Tensor<B, 2>, rated_rejected: Tensor<B, 2>) -> Tensor<B, 1> {
        rated_order_loss(self.attribute_scores(chosen) - self.attribute_scores(rejected), rated_chosen, rated_rejected)
    }
}

/// Bradley–Terry on rated orders: the mean over rows and columns of −log σ(sᵢ·dᵢ), sᵢ the sign of
/// the rated difference (columns rated alike count 0); `d` holds the score differences.
pub fn rated_order_loss<B: Backend>(d: Tensor<B, 2>, rated_chosen: Tensor<B, 2>, rated_rejected: Tensor<B, 2>) -> Tensor<B, 1> {
    let sign = (rated_chosen - rated_rejected).sign();
    let weight = sign.clone().abs();
    let per = activation::softplus(d.neg() * sign, 1.0) * weight.clone();
    per.sum().div(weight.sum().clamp_min(1.0)).reshape([1])
}

/// One context's attention over the attributes: a community's profile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Profile {
    /// The community's name where the data is `communities`, else "context i" (in the order the
    /// contexts first occur in the data).
    pub context: String,
    /// (attribute, attention), the attributes named where the data is `communities`.
    pub attention: Vec<(String, f64)>,
}

/// Every distinct context's profile in `ds`.
pub async fn profiles<B: Backend>(model: &AttributeAttentionModel<B>, ds: &PairDataset, device: &B::Device) -> crate::Result<Vec<Profile>> {
    use crate::reward::scenarios::communities::{ATTRIBUTES, COMMUNITIES};
    let contexts = crate::reward::context::distinct_contexts(ds);
    if contexts.is_empty() {
        return Ok(vec![]);
    }
    let rows = Tensor::from_data(TensorData::new(contexts.concat(), [contexts.len(), ds.prompt_dim]), device);
    let attention = model.attention(rows).into_data_async().await.map_err(|e| crate::Error::Backend(format!("{e:?}")))?;
    let attention = attention.convert::<f32>().to_vec::<f32>().map_err(|e| crate::Error::Backend(format!("{e:?}")))?;
    let a = model.attributes();
    let named = ds.prompt_dim == COMMUNITIES.len() && a == ATTRIBUTES.len();
    Ok(contexts
        .iter()
        .zip(attention.chunks(a))
        .enumerate()
        .map(|(i, (c, row))| {
            let hot = c.iter().position(|&x| x == 1.0).filter(|_| c.iter().filter(|&&x| x != 0.0).count() == 1);
            let context = match hot {
                Some(k) if named => COMMUNITIES[k].to_string(),
                _ => format!("context {i}"),
            };
            let name = |j: usize| if named { ATTRIBUTES[j].to_string() } else { format!("attribute {j}") };
            Profile { context, attention: row.iter().enumerate().map(|(j, &x)| (name(j), x as f64)).collect() }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    use crate::reward::model::{ModelKind, PreferenceModel};

    type B = NdArray<f64>;

    fn model(seed: u64) -> AttributeAttentionModel<B> {
        let mut cfg = crate::ModelConfig::new(ModelKind::AttributeAttention);
        cfg.hidden = vec![8];
        cfg.objectives = 3;
        match cfg.init::<B>(3, 2, seed, &Default::default()).unwrap() {
            PreferenceModel::AttributeAttention(m) => m,
            _ => unreachable!("asked for attribute-attention"),
        }
    }

    fn t(rows: &[f64], cols: usize) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len() / cols, cols]), &Default::default())
    }

    fn host<const D: usize>(x: Tensor<B, D>) -> Vec<f64> {
        x.into_data().to_vec::<f64>().unwrap()
    }

    /// The reward written out by hand from the parts: v·h_c + b + s·Σᵢ aᵢ pᵢ, with the
    /// attention a softmax over attributes that depends on the context only.
    #[test]
    fn the_reward_is_the_content_plus_the_attention_weighted_attributes() {
        let m = model(4);
        let (y, c) = (t(&[0.3, -1.1, 0.7], 3), t(&[1.0, 0.0], 2));
        let a = host(m.attention(c.clone()));
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12 && a.iter().all(|&x| x > 0.0));
        // The attention reads the context, not the response.
        assert_eq!(host(m.attention(t(&[1.0, 0.0, 1.0, 0.0], 2))), [a.clone(), a.clone()].concat());
        assert_ne!(host(m.attention(t(&[0.0, 1.0], 2))), a);
        let (p, hc) = (host(m.attribute_scores(y.clone())), host(m.content.forward(y.clone())));
        let (v, b, s) = (host(m.value.weight.val()), host(m.value.bias.as_ref().unwrap().val())[0], host(m.scale.val())[0]);
        assert_eq!(s, 0.5);
        let by_hand = hc.iter().zip(&v).map(|(x, w)| x * w).sum::<f64>() + b + s * (0..3).map(|i| a[i] * p[i]).sum::<f64>();
        assert!((host(m.reward(y, c))[0] - by_hand).abs() < 1e-12);
    }

    /// The attribute loss by hand on two pairs, a tie skipped; and its gradient against finite
    /// differences in the predictors' last layer.
    #[test]
    fn the_attribute_loss_is_bradley_terry_per_attribute_and_its_gradient_checks() {
        let m = model(9);
        let (y1, y2) = (t(&[0.2, 0.5, -0.3, 1.0, -1.0, 0.4], 3), t(&[-0.6, 0.1, 0.9, 0.0, 0.3, -0.8], 3));
        let (r1, r2) = (t(&[0.9, 0.1, 0.5, 0.2, 0.2, -0.4], 3), t(&[0.1, 0.3, 0.5, 0.7, 0.1, -0.9], 3));
        let (p1, p2) = (host(m.attribute_scores(y1.clone())), host(m.attribute_scores(y2.clone())));
        let signs = [1.0, -1.0, 0.0, -1.0, 1.0, 1.0];
        let softplus = |x: f64| (1.0 + x.exp()).ln();
        let by_hand = (0..6).filter(|&k| signs[k] != 0.0).map(|k| softplus(-signs[k] * (p1[k] - p2[k]))).sum::<f64>() / 5.0;
        assert!((host(m.attribute_loss(y1.clone(), y2.clone(), r1.clone(), r2.clone()))[0] - by_hand).abs() < 1e-12);

        type A = Autodiff<B>;
        let ad = |x: Tensor<B, 2>| Tensor::<A, 2>::from_inner(x);
        let ma: AttributeAttentionModel<A> = {
            let mut cfg = crate::ModelConfig::new(ModelKind::AttributeAttention);
            (cfg.hidden, cfg.objectives) = (vec![8], 3);
            match cfg.init::<A>(3, 2, 9, &Default::default()).unwrap() {
                PreferenceModel::AttributeAttention(m) => m,
                _ => unreachable!(),
            }
        };
        let loss = ma.attribute_loss(ad(y1.clone()), ad(y2.clone()), ad(r1.clone()), ad(r2.clone()));
        let grads = loss.backward();
        // The biases cancel in p(y₁) − p(y₂): check the last layer's weights.
        let last = ma.predictors.layers.last().unwrap();
        let g = host(last.weight.grad(&grads).unwrap());
        let weight = host(m.predictors.layers.last().unwrap().weight.val());
        assert!(g.iter().any(|&x| x.abs() > 1e-3), "{g:?}");
        for at_index in [0, 4, 10, 17, 23] {
            let at = |h: f64| {
                let mut m = m.clone();
                let mut w = weight.clone();
                w[at_index] += h;
                m.predictors.layers.last_mut().unwrap().weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [8, 3]), &Default::default()));
                host(m.attribute_loss(y1.clone(), y2.clone(), r1.clone(), r2.clone()))[0]
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!((g[at_index] - fd).abs() < 1e-7, "weight {at_index}: {} vs {fd}", g[at_index]);
        }
    }

    /// A trained run on `communities` at its defaults.
    fn trained(kind: ModelKind, seed: u64, steps: usize) -> crate::Trainer<Autodiff<burn::backend::Flex>> {
        use crate::reward::scenarios::ScenarioKind;
        let mut cfg = crate::RunConfig::new(ScenarioKind::Communities, kind);
        (cfg.seed, cfg.train.steps) = (seed, steps);
        let mut t = crate::Trainer::<Autodiff<burn::backend::Flex>>::new(cfg, &Default::default()).unwrap();
        while !t.is_done() {
            pollster::block_on(t.step()).unwrap();
        }
        t
    }

    fn held_out(t: &crate::Trainer<Autodiff<burn::backend::Flex>>) -> f64 {
        use burn::module::AutodiffModule;
        let ds = &t.dataset;
        pollster::block_on(crate::reward::train::evaluate(&t.model().valid(), ds, &ds.eval, &Default::default())).unwrap().accuracy as f64
    }

    /// Each community's profile, as `eval` reports it, and its Spearman ρ with the community's
    /// true weights.
    fn rho_by_community(t: &crate::Trainer<Autodiff<burn::backend::Flex>>) -> Vec<f64> {
        use crate::reward::scenarios::communities::{ATTRIBUTES, COMMUNITIES, WEIGHTS};
        use burn::module::AutodiffModule;
        let PreferenceModel::AttributeAttention(m) = t.model().valid() else { unreachable!("asked for attribute-attention") };
        let found = pollster::block_on(profiles(&m, &t.dataset, &Default::default())).unwrap();
        assert_eq!(found.len(), COMMUNITIES.len());
        found
            .iter()
            .map(|p| {
                let c = COMMUNITIES.iter().position(|&n| n == p.context).unwrap_or_else(|| panic!("{p:?}"));
                assert!(p.attention.iter().map(|(n, _)| n.as_str()).eq(ATTRIBUTES), "{p:?}");
                crate::reward::loss::spearman(&p.attention.iter().map(|a| a.1).collect::<Vec<_>>(), &WEIGHTS[c])
            })
            .collect()
    }

    /// PrefPalette's claim at toy scale (`communities`, 500 pairs per community, 600 steps): on
    /// held-out pairs the attribute-attention model is at least 0.05 above one reward for
    /// everyone (`bt`), and each community's attention ranks the attributes as its true weights
    /// do (Spearman ρ ≥ 0.7 for every one of the six communities). Before training the same
    /// models' attention fails that (some community below 0.7) on every seed.
    ///
    /// Measured (seeds 0–7 while building it): 0.833–0.873 against bt's 0.627–0.715; ρ 0.82–0.94.
    /// context-bt, which reads the community without attributes, is as accurate (0.835–0.877):
    /// the gain over bt is from reading the community, and what the attributes add is the
    /// profile.
    #[test]
    fn claim_attribute_attention_beats_bt_and_its_attention_is_each_communitys_profile() {
        use crate::studies::seeds::{CLAIM_SEEDS, SeedStats, assert_on_every_seed};
        let figures = assert_on_every_seed(
            "communities: (attribute-attention held-out accuracy, bt's, the least ρ over communities, the least ρ before training); attribute-attention ≥ bt + 0.05 and every ρ ≥ 0.7, untrained some ρ below",
            CLAIM_SEEDS,
            |seed| {
                let untrained = trained(ModelKind::AttributeAttention, seed, 1);
                let aa = trained(ModelKind::AttributeAttention, seed, 600);
                let least = |t: &crate::Trainer<Autodiff<burn::backend::Flex>>| rho_by_community(t).into_iter().fold(f64::INFINITY, f64::min);
                (held_out(&aa), held_out(&trained(ModelKind::Bt, seed, 600)), least(&aa), least(&untrained))
            },
            |&(aa, bt, rho, rho0)| aa >= bt + 0.05 && rho >= 0.7 && rho0 < 0.7,
        );
        let stats = |get: fn(&(f64, f64, f64, f64)) -> f64| SeedStats::of(&figures.iter().map(get).collect::<Vec<_>>());
        eprintln!("attribute-attention {}; bt {}; least ρ {}; untrained {}", stats(|f| f.0), stats(|f| f.1), stats(|f| f.2), stats(|f| f.3));
    }
}
