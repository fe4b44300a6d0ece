//! Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").
//!
//! The loss is a function of the flattened weights θ; a landscape is its value on a plane
//! θ + a·d₁ + b·d₂ through the current weights. Two choices of plane:
//! * random directions, **filter-normalised**: each output neuron's slice of a random direction
//!   is rescaled to the norm of the same neuron's weights, and the bias entries are zeroed, so that
//!   a step of 1 means "as far as the weights themselves" in every layer and landscapes of
//!   differently scaled nets compare;
//! * the top two principal directions of the training trajectory (snapshots of θ), on which the
//!   trajectory itself can be drawn, since they capture most of its movement.
//!
//! A whole grid of points is evaluated as one batched forward pass: the weights of G points are a
//! `[G, P]` tensor, each layer a batched matmul `[G, n, d_in] × [G, d_in, d_out]` over every
//! item at once; pairs then only gather item outputs. This covers the models whose parameters are
//! one MLP (Bradley–Terry, GPM without a gate, multi-objective without a gate); the loss is the
//! mean −log σ(ℓ) over the given pairs, the same value [`crate::reward::train::evaluate`] reports.

use burn::tensor::{Int, Tensor, TensorData, activation};
use crate::runtime::kernels::Backend;

use crate::reward::data::PairDataset;
use crate::reward::model::{Mlp, PreferenceModel};
use crate::runtime::rng::Rng;
use crate::{Error, Result, config_error};

/// Rescale each filter of `direction` to the norm of the same filter of `weights`
/// (‖d_f‖ → ‖w_f‖; a zero direction filter stays zero). `filter_of(i)` names the filter of flat
/// index i: `i / cols` for PyTorch's `[out, in]` rows, `i % out` for burn's `[in, out]` columns.
pub fn filter_normalize(weights: &[f32], direction: &mut [f32], n_filters: usize, filter_of: impl Fn(usize) -> usize) {
    let mut w_norm = vec![0f64; n_filters];
    let mut d_norm = vec![0f64; n_filters];
    for (i, (&w, &d)) in weights.iter().zip(direction.iter()).enumerate() {
        w_norm[filter_of(i)] += (w as f64).powi(2);
        d_norm[filter_of(i)] += (d as f64).powi(2);
    }
    for (i, d) in direction.iter_mut().enumerate() {
        let f = filter_of(i);
        let scale = if d_norm[f] > 0.0 { (w_norm[f] / d_norm[f]).sqrt() } else { 0.0 };
        *d = (*d as f64 * scale) as f32;
    }
}

/// The parameter layout of a plain MLP as flattened here: per layer its `[d_in, d_out]` weight
/// (row-major) then its `[d_out]` bias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub layers: Vec<(usize, usize)>,
}

impl Layout {
    fn of<B: Backend>(mlp: &Mlp<B>) -> Result<Self> {
        if mlp.layers.iter().any(|l| l.bias.is_none()) {
            return Err(config_error("model", "the landscape needs every layer to have a bias"));
        }
        Ok(Self { layers: mlp.layers.iter().map(|l| { let [i, o] = l.weight.val().dims(); (i, o) }).collect() })
    }

    /// Number of parameters P.
    pub fn len(&self) -> usize {
        self.layers.iter().map(|&(i, o)| i * o + o).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A random Gaussian direction, filter-normalised against `weights` (neurons are the columns
    /// of burn's `[d_in, d_out]` weights), with zero bias entries.
    pub fn random_direction(&self, weights: &[f32], rng: &mut Rng) -> Vec<f32> {
        let mut d = Vec::with_capacity(self.len());
        let mut at = 0;
        for &(i, o) in &self.layers {
            let mut w: Vec<f32> = (0..i * o).map(|_| rng.normal() as f32).collect();
            filter_normalize(&weights[at..at + i * o], &mut w, o, |k| k % o);
            d.extend(w);
            d.extend(std::iter::repeat_n(0.0, o));
            at += i * o + o;
        }
        d
    }
}

/// The random plane of a landscape: two filter-normalised directions drawn from the `landscape`
/// stream of `seed`, so the page and the CLI draw the same plane for the same run and seed.
pub fn random_plane(layout: &Layout, theta: &[f32], seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::stream(seed, "landscape");
    let d1 = layout.random_direction(theta, &mut rng);
    let d2 = layout.random_direction(theta, &mut rng);
    (d1, d2)
}

/// How a model turns its MLP's outputs into pair logits.
#[derive(Clone, Copy, Debug)]
enum Head {
    /// ℓ = r(c) − r(r).
    Reward,
    /// ℓ = s(c ≻ r)/τ, GPM's block score, on unit embeddings when `normalize`.
    Gpm { tau: f64, normalize: bool },
    /// ℓ = v·(r(c) − r(r)) with v the pair's prompt, or the mean over objectives without one.
    Objectives,
}

/// The MLP that holds all of a model's parameters, with its head; an error for other models.
fn mlp_and_head<B: Backend>(model: &PreferenceModel<B>) -> Result<(&Mlp<B>, Head)> {
    match model {
        PreferenceModel::Bt(m) => Ok((&m.mlp, Head::Reward)),
        PreferenceModel::Gpm(m) if m.gate.is_none() => Ok((&m.mlp, Head::Gpm { tau: m.tau, normalize: m.normalize })),
        PreferenceModel::MultiObjective(m) if m.gate.is_none() => Ok((&m.mlp, Head::Objectives)),
        other => Err(config_error(
            "model",
            format!("the loss landscape covers models whose weights are one MLP (bt, gpm and multi-objective without a gate), not {}", other.kind().name()),
        )),
    }
}

/// The model's weights flattened in [`Layout`] order, as one tensor on its device.
pub fn flat_weights<B: Backend>(model: &PreferenceModel<B>) -> Result<Tensor<B, 1>> {
    let (mlp, _) = mlp_and_head(model)?;
    Layout::of(mlp)?;
    let parts = mlp
        .layers
        .iter()
        .flat_map(|l| {
            let w = l.weight.val();
            let [i, o] = w.dims();
            [w.reshape([i * o]), l.bias.as_ref().expect("checked by Layout::of").val()]
        })
        .collect();
    Ok(Tensor::cat(parts, 0))
}

/// [`flat_weights`] read back to the host.
pub async fn read_weights<B: Backend>(model: &PreferenceModel<B>) -> Result<Vec<f32>> {
    read(flat_weights(model)?).await
}

async fn read<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(|e| Error::Backend(format!("{e:?}")))?;
    data.convert::<f32>().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// A model's loss as a function of its flattened weights, on a fixed set of pairs, with the
/// data resident on the device.
pub struct Surface<B: Backend> {
    pub layout: Layout,
    head: Head,
    items: Tensor<B, 2>,
    chosen: Tensor<B, 1, Int>,
    rejected: Tensor<B, 1, Int>,
    /// Per-pair directions v for [`Head::Objectives`].
    prompts: Option<Tensor<B, 2>>,
    device: B::Device,
}

/// Points per batch are capped so that one layer's activations stay near this many floats.
const BATCH_FLOATS: usize = 1 << 22;

impl<B: Backend> Surface<B> {
    /// The surface of `model`'s architecture on the given pairs of `ds` (usually `ds.train`).
    pub fn new(model: &PreferenceModel<B>, ds: &PairDataset, pairs: &[usize], device: &B::Device) -> Result<Self> {
        let (mlp, head) = mlp_and_head(model)?;
        let layout = Layout::of(mlp)?;
        if pairs.is_empty() {
            return Err(config_error("scenario", "the landscape needs at least one pair"));
        }
        let index = |v: Vec<i32>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device);
        let chosen = index(pairs.iter().map(|&p| ds.pairs[p].0 as i32).collect());
        let rejected = index(pairs.iter().map(|&p| ds.pairs[p].1 as i32).collect());
        let prompts = match head {
            Head::Objectives if ds.prompt_dim > 0 => {
                let rows: Vec<f32> = pairs.iter().flat_map(|&p| ds.prompts[p * ds.prompt_dim..(p + 1) * ds.prompt_dim].iter().copied()).collect();
                Some(Tensor::from_data(TensorData::new(rows, [pairs.len(), ds.prompt_dim]), device))
            }
            _ => None,
        };
        let items = Tensor::from_data(TensorData::new(ds.items.clone(), [ds.n_items(), ds.dim]), device);
        Ok(Self { layout, head, items, chosen, rejected, prompts, device: device.clone() })
    }

    /// The loss at θ = `base` + a·`d1` + b·`d2` for every `[a, b]` of `coords`, evaluated in
    /// batches of points with a single read-back at the end.
    pub async fn losses(&self, base: &[f32], d1: &[f32], d2: &[f32], coords: &[[f32; 2]]) -> Result<Vec<f32>> {
        let p = self.layout.len();
        if [base.len(), d1.len(), d2.len()].iter().any(|&l| l != p) {
            return Err(config_error("landscape", format!("weights and directions need {p} entries each")));
        }
        if coords.is_empty() {
            return Ok(vec![]);
        }
        let row = |v: &[f32]| Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [p]), &self.device).reshape([1, p]);
        let (base, d1, d2) = (row(base), row(d1), row(d2));
        let n = self.items.dims()[0];
        let widest = self.layout.layers.iter().map(|&(i, o)| i.max(o)).max().unwrap_or(1);
        let per_batch = (BATCH_FLOATS / (n * widest).max(1)).clamp(1, 1024);
        let mut out = Vec::with_capacity(coords.len().div_ceil(per_batch));
        for chunk in coords.chunks(per_batch) {
            let g = chunk.len();
            let col = |k: usize| Tensor::<B, 1>::from_data(TensorData::new(chunk.iter().map(|c| c[k]).collect::<Vec<f32>>(), [g]), &self.device).reshape([g, 1]);
            let theta = base.clone() + col(0) * d1.clone() + col(1) * d2.clone();
            out.push(self.batch_losses(theta));
        }
        read(Tensor::cat(out, 0)).await
    }

    /// Mean −log σ(ℓ) over the pairs for each row of `theta` (`[G, P]`), as `[G]`.
    fn batch_losses(&self, theta: Tensor<B, 2>) -> Tensor<B, 1> {
        let g = theta.dims()[0];
        let [n, d] = self.items.dims();
        let mut x = self.items.clone().reshape([1, n, d]).repeat_dim(0, g);
        let mut at = 0;
        let last = self.layout.layers.len() - 1;
        for (l, &(i, o)) in self.layout.layers.iter().enumerate() {
            let w = theta.clone().narrow(1, at, i * o).reshape([g, i, o]);
            let b = theta.clone().narrow(1, at + i * o, o).reshape([g, 1, o]);
            at += i * o + o;
            x = x.matmul(w) + b;
            if l < last {
                x = crate::runtime::kernels::gelu(x);
            }
        }
        let out = x.dims()[2];
        if let Head::Gpm { normalize: true, .. } = self.head {
            let norm = x.clone().powi_scalar(2).sum_dim(2).sqrt().clamp_min(1e-12);
            x = x / norm;
        }
        let side = |idx: &Tensor<B, 1, Int>| x.clone().select(1, idx.clone());
        let logits: Tensor<B, 2> = match self.head {
            Head::Reward => (side(&self.chosen) - side(&self.rejected)).reshape([g, self.chosen.dims()[0]]),
            Head::Gpm { tau, .. } => {
                let m = self.chosen.dims()[0];
                let k = out / 2;
                let c = side(&self.chosen).reshape([g, m, k, 2]);
                let r = side(&self.rejected).reshape([g, m, k, 2]);
                let s = c.clone().narrow(3, 0, 1) * r.clone().narrow(3, 1, 1) - c.narrow(3, 1, 1) * r.narrow(3, 0, 1);
                s.sum_dim(2).reshape([g, m]).div_scalar(tau)
            }
            Head::Objectives => {
                let m = self.chosen.dims()[0];
                let diff = side(&self.chosen) - side(&self.rejected);
                match &self.prompts {
                    Some(v) => (diff * v.clone().reshape([1, m, out])).sum_dim(2).reshape([g, m]),
                    None => diff.mean_dim(2).reshape([g, m]),
                }
            }
        };
        activation::log_sigmoid(logits).mean_dim(1).neg().reshape([g])
    }
}

/// `n × n` grid coordinates over `[a0, a1] × [b0, b1]`, row-major with b (the vertical axis)
/// outer and increasing, so row 0 is the bottom edge.
pub fn grid(n: usize, a: (f32, f32), b: (f32, f32)) -> Vec<[f32; 2]> {
    let at = |(lo, hi): (f32, f32), k: usize| if n < 2 { (lo + hi) / 2.0 } else { lo + (hi - lo) * k as f32 / (n - 1) as f32 };
    (0..n).flat_map(|j| (0..n).map(move |i| [at(a, i), at(b, j)])).collect()
}

/// The PCA plane's extent: the trajectory's reach along each axis with a margin, so that the whole
/// path is on the picture; never smaller than `floor`.
pub fn pca_extent(coords: &[[f64; 2]], floor: f64) -> (f32, f32) {
    let reach = |k: usize| coords.iter().map(|c| c[k].abs()).fold(floor, f64::max) * 1.25;
    (reach(0) as f32, reach(1) as f32)
}

/// How often a run's weights are kept for the PCA plane: about 100 snapshots over `steps`, the
/// initial weights first and the last step's too (the page's rule, which `prefscope landscape
/// --plane pca` replays).
pub fn snapshot_every(steps: usize) -> usize {
    (steps / 100).max(1)
}

/// The top two principal directions of a training trajectory and the trajectory in them.
#[derive(Clone, Debug, PartialEq)]
pub struct TrajectoryPca {
    /// Unit-length, orthogonal directions in weight space.
    pub directions: [Vec<f32>; 2],
    /// Fraction of the trajectory's variance along each direction.
    pub explained: [f64; 2],
    /// Each snapshot's coordinates relative to `centre`: ((θ_i − centre)·d₁, (θ_i − centre)·d₂).
    pub coords: Vec<[f64; 2]>,
}

/// PCA of the snapshots (as scikit-learn's: mean-centred), projected relative to `centre` (the
/// current weights, as Li et al. do with the final ones). `None` with fewer than 3 snapshots or
/// when they do not span two directions.
pub fn trajectory_pca(snapshots: &[Vec<f32>], centre: &[f32]) -> Option<TrajectoryPca> {
    let t = snapshots.len();
    let p = centre.len();
    if t < 3 || snapshots.iter().any(|s| s.len() != p) {
        return None;
    }
    let mean: Vec<f64> = (0..p).map(|k| snapshots.iter().map(|s| s[k] as f64).sum::<f64>() / t as f64).collect();
    let rows: Vec<Vec<f64>> = snapshots.iter().map(|s| s.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect()).collect();
    // Eigenvectors of the small t × t Gram matrix K = M Mᵀ give those of Mᵀ M: d = Mᵀ u / ‖Mᵀ u‖.
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut gram: Vec<Vec<f64>> = rows.iter().map(|a| rows.iter().map(|b| dot(a, b)).collect()).collect();
    let trace: f64 = (0..t).map(|i| gram[i][i]).sum();
    if trace <= 0.0 {
        return None;
    }
    let mut directions: Vec<Vec<f32>> = vec![];
    let mut explained = [0.0; 2];
    for (j, share) in explained.iter_mut().enumerate() {
        // Power iteration with deflation; the start vector is fixed so results are reproducible.
        let mut u: Vec<f64> = (0..t).map(|i| 1.0 + (i as f64 * (j as f64 + 1.7)).sin()).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let ku: Vec<f64> = gram.iter().map(|r| dot(r, &u)).collect();
            let norm = dot(&ku, &ku).sqrt();
            if norm == 0.0 {
                return None;
            }
            u = ku.iter().map(|x| x / norm).collect();
            let next = dot(&u, &gram.iter().map(|r| dot(r, &u)).collect::<Vec<_>>());
            let converged = (next - lambda).abs() <= 1e-12 * trace;
            lambda = next;
            if converged {
                break;
            }
        }
        if lambda <= 1e-9 * trace {
            return None;
        }
        *share = lambda / trace;
        let d: Vec<f64> = (0..p).map(|k| (0..t).map(|i| u[i] * rows[i][k]).sum()).collect();
        let norm = dot(&d, &d).sqrt();
        directions.push(d.iter().map(|x| (x / norm) as f32).collect());
        for a in 0..t {
            for b in 0..t {
                gram[a][b] -= lambda * u[a] * u[b];
            }
        }
    }
    let coords = snapshots
        .iter()
        .map(|s| {
            let proj = |d: &[f32]| s.iter().zip(centre).zip(d).map(|((&x, &c), &dk)| (x as f64 - c as f64) * dk as f64).sum::<f64>();
            [proj(&directions[0]), proj(&directions[1])]
        })
        .collect();
    let [d1, d2]: [Vec<f32>; 2] = directions.try_into().ok()?;
    Some(TrajectoryPca { directions: [d1, d2], explained, coords })
}

/// A NumPy .npy file (format 1.0) of little-endian f32 in C order.
pub fn npy(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}{}), }}", if shape.len() == 1 { "," } else { "" });
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in \n.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::model::{ModelConfig, ModelKind};
    use crate::reward::train::evaluate;
    use crate::{RunConfig, ScenarioKind};
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn filter_normalisation_matches_the_hand_computed_example() {
        // Filters as rows (PyTorch's [out, in]): ‖w₀‖ = 3, ‖d₀‖ = 1 → ×3; ‖w₁‖ = 5, ‖d₁‖ = 2 → ×2.5.
        let w = [1.0, 2.0, 2.0, 0.0, 3.0, 4.0];
        let mut d = [1.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        filter_normalize(&w, &mut d, 2, |i| i / 3);
        assert_eq!(d, [3.0, 0.0, 0.0, 0.0, 0.0, 5.0]);
        // The same matrices in burn's [in, out] layout: filters are the columns.
        let wt = [1.0, 0.0, 2.0, 3.0, 2.0, 4.0];
        let mut dt = [1.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        filter_normalize(&wt, &mut dt, 2, |i| i % 2);
        assert_eq!(dt, [3.0, 0.0, 0.0, 0.0, 0.0, 5.0]);
        // A zero filter of the direction stays zero instead of dividing by zero.
        let mut z = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        filter_normalize(&w, &mut z, 2, |i| i / 3);
        assert_eq!(z, [0.0, 0.0, 0.0, 5.0, 0.0, 0.0]);
    }

    #[test]
    fn random_directions_have_each_neurons_norm_and_no_bias() {
        let layout = Layout { layers: vec![(2, 3), (3, 1)] };
        let weights: Vec<f32> = (0..layout.len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let d = layout.random_direction(&weights, &mut Rng::new(4));
        assert_eq!(d.len(), layout.len());
        // Layer 0: weight entries 0..6 ([2, 3]: neuron j is column j), bias 6..9.
        for j in 0..3 {
            let norm = |v: &[f32]| [j, j + 3].iter().map(|&k| v[k].powi(2)).sum::<f32>().sqrt();
            assert!((norm(&d) - norm(&weights)).abs() < 1e-5);
        }
        assert_eq!(&d[6..9], &[0.0; 3]);
        assert_eq!(d[12], 0.0, "the last layer's bias");
    }

    fn model_and_data(scenario: ScenarioKind, kind: ModelKind, seed: u64) -> (PreferenceModel<B>, PairDataset) {
        let mut cfg = RunConfig::new(scenario, kind);
        cfg.scenario.n_items = 40;
        cfg.scenario.n_pairs = 300;
        let ds = cfg.scenario.build(0).unwrap();
        let model = ModelConfig { hidden: vec![8, 8], ..cfg.model.clone() }.init::<B>(ds.dim, ds.prompt_dim, seed, &Default::default()).unwrap();
        (model, ds)
    }

    #[test]
    fn batched_grid_matches_the_models_own_loss() {
        for (scenario, kind) in [(ScenarioKind::Linear, ModelKind::Bt), (ScenarioKind::Cyclic, ModelKind::Gpm), (ScenarioKind::MultiObjective, ModelKind::MultiObjective)] {
            let dev = Default::default();
            let (model, ds) = model_and_data(scenario, kind, 1);
            let (other, _) = model_and_data(scenario, kind, 2);
            let surface = Surface::new(&model, &ds, &ds.train, &dev).unwrap();
            let theta = pollster::block_on(read_weights(&model)).unwrap();
            let theta2 = pollster::block_on(read_weights(&other)).unwrap();
            // d₁ leads from this model's weights to the other model's: (1, 0) is the other model.
            let d1: Vec<f32> = theta2.iter().zip(&theta).map(|(a, b)| a - b).collect();
            let d2 = surface.layout.random_direction(&theta, &mut Rng::new(3));
            let coords = [[0.0, 0.0], [1.0, 0.0], [0.3, -0.4]];
            let got = pollster::block_on(surface.losses(&theta, &d1, &d2, &coords)).unwrap();
            let own = pollster::block_on(evaluate(&model, &ds, &ds.train, &dev)).unwrap().loss;
            let others = pollster::block_on(evaluate(&other, &ds, &ds.train, &dev)).unwrap().loss;
            assert!((got[0] - own).abs() < 1e-5, "{kind:?} centre: {} vs {own}", got[0]);
            assert!((got[1] - others).abs() < 1e-4, "{kind:?} at (1, 0): {} vs {others}", got[1]);
            assert!(got[2].is_finite() && (got[2] - own).abs() > 1e-6, "{kind:?}: a displaced point has its own loss");
        }
    }

    #[test]
    fn batches_split_large_grids_without_changing_values() {
        let dev = Default::default();
        let (model, ds) = model_and_data(ScenarioKind::Linear, ModelKind::Bt, 1);
        let surface = Surface::new(&model, &ds, &ds.train, &dev).unwrap();
        let theta = pollster::block_on(read_weights(&model)).unwrap();
        let mut rng = Rng::new(9);
        let (d1, d2) = (surface.layout.random_direction(&theta, &mut rng), surface.layout.random_direction(&theta, &mut rng));
        let coords = grid(41, (-1.0, 1.0), (-1.0, 1.0));
        let all = pollster::block_on(surface.losses(&theta, &d1, &d2, &coords)).unwrap();
        assert_eq!(all.len(), 41 * 41);
        for k in [0, 500, 840, 1680] {
            let one = pollster::block_on(surface.losses(&theta, &d1, &d2, &coords[k..k + 1])).unwrap();
            assert!((one[0] - all[k]).abs() < 1e-5);
        }
        assert!((all[20 * 41 + 20] - pollster::block_on(evaluate(&model, &ds, &ds.train, &dev)).unwrap().loss).abs() < 1e-5, "the grid's centre");
    }

    #[test]
    fn models_outside_the_mlp_family_are_refused_by_name() {
        let mut cfg = RunConfig::new(ScenarioKind::Mixture, ModelKind::Mixture);
        cfg.scenario.n_pairs = 50;
        let ds = cfg.scenario.build(0).unwrap();
        let model = cfg.model.init::<B>(ds.dim, ds.prompt_dim, 0, &Default::default()).unwrap();
        let err = Surface::new(&model, &ds, &ds.train, &Default::default()).err().unwrap().to_string();
        assert!(err.contains("mixture"), "{err}");
    }

    #[test]
    fn grid_is_row_major_from_the_bottom_left() {
        let g = grid(3, (-1.0, 1.0), (0.0, 2.0));
        assert_eq!(g[0], [-1.0, 0.0]);
        assert_eq!(g[2], [1.0, 0.0]);
        assert_eq!(g[4], [0.0, 1.0]);
        assert_eq!(g[8], [1.0, 2.0]);
    }

    #[test]
    fn pca_recovers_a_planar_trajectory() {
        // Snapshots on a curve in the plane of e₀ and e₂ (plus nothing else) in 5-D.
        let snaps: Vec<Vec<f32>> = (0..20).map(|i| {
            let s = i as f32 / 19.0;
            vec![3.0 * s, 0.0, (s * 3.0).sin(), 0.0, 0.0]
        }).collect();
        let centre = snaps.last().unwrap().clone();
        let pca = trajectory_pca(&snaps, &centre).unwrap();
        let [d1, d2] = &pca.directions;
        let dot: f32 = d1.iter().zip(d2).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-4, "orthogonal: {dot}");
        for d in [d1, d2] {
            assert!((d.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
            assert!(d[1].abs() + d[3].abs() + d[4].abs() < 1e-4, "stays in the plane: {d:?}");
        }
        assert!(pca.explained[0] > pca.explained[1]);
        assert!((pca.explained[0] + pca.explained[1] - 1.0).abs() < 1e-6, "a planar curve is all in two components");
        assert_eq!(pca.coords.last().unwrap(), &[0.0, 0.0], "the centre projects to the origin");
        // Projections keep distances: the first snapshot is 3.0 along e₀ and sin(0) − sin(3) along e₂ from the centre.
        let [a, b] = pca.coords[0];
        let expected = (9.0 + (3f64).sin().powi(2)).sqrt();
        assert!(((a * a + b * b).sqrt() - expected).abs() < 1e-4);
        assert!(trajectory_pca(&snaps[..2], &centre).is_none());
    }

    #[test]
    fn npy_header_is_aligned_and_describes_the_array() {
        let bytes = npy(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") && header.ends_with('\n'), "{header:?}");
        assert_eq!(&bytes[10 + len..10 + len + 4], &1f32.to_le_bytes());
        assert_eq!(bytes.len(), 10 + len + 24);
    }
}
