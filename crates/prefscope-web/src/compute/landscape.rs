//! A loss-landscape slice of the current model on its training pairs, in batches between yields.

use std::rc::Rc;

use prefscope_core::studies::landscape::{Surface, grid, pca_extent, random_plane, read_weights, trajectory_pca};
use prefscope_core::reward::train::evaluate;
use prefscope_core::{Backend, PairDataset, PreferenceModel};

use crate::backend::{AnyModel, on_model};
use crate::landscape::Slice;
use crate::settings::Plane;

/// About this many grid points (whole rows) are evaluated per batch between yields.
const POINTS_PER_BATCH: usize = 128;
/// Points of the 1-D interpolation, t from −0.5 to 1.5.
const LINE_POINTS: usize = 61;

/// What a computation needs besides the model.
pub struct Request {
    pub plane: Plane,
    pub n: usize,
    pub seed: u64,
    /// Weight snapshots taken during training, oldest (the initial weights) first.
    pub trajectory: Vec<Rc<Vec<f32>>>,
    pub step: usize,
}

/// Compute the landscape of `model` on the training pairs of `ds`; gives up between batches once
/// `superseded()` says so.
pub async fn compute(model: AnyModel, ds: Rc<PairDataset>, req: Request, superseded: impl Fn() -> bool) -> Result<Slice, String> {
    on_model!(&model, |m, device| compute_on(m, device, &ds, req, &superseded).await)
}

async fn compute_on<B: Backend>(model: &PreferenceModel<B>, device: &B::Device, ds: &PairDataset, req: Request, superseded: &dyn Fn() -> bool) -> Result<Slice, String> {
    let text = |e: prefscope_core::Error| e.to_string();
    let surface = Surface::new(model, ds, &ds.train, device).map_err(text)?;
    let theta = read_weights(model).await.map_err(text)?;
    let current_loss = evaluate(model, ds, &ds.train, device).await.map_err(text)?.loss;
    let (d1, d2, a, b, trajectory, explained) = match req.plane {
        Plane::Random => {
            // Seeded by the run's seed: the same link gives the same picture (and `prefscope
            // landscape` the same grid).
            let (d1, d2) = random_plane(&surface.layout, &theta, req.seed);
            (d1, d2, (-1.0, 1.0), (-1.0, 1.0), vec![], None)
        }
        Plane::Pca => {
            let mut snapshots: Vec<Vec<f32>> = req.trajectory.iter().map(|s| s.as_ref().clone()).collect();
            snapshots.push(theta.clone());
            let pca = trajectory_pca(&snapshots, &theta).ok_or("the PCA plane needs a training trajectory: train a few steps first")?;
            let (ra, rb) = pca_extent(&pca.coords, 1e-3);
            let [d1, d2] = pca.directions;
            (d1, d2, (-ra, ra), (-rb, rb), pca.coords, Some(pca.explained))
        }
    };
    // A few grid rows at a time, yielding in between: on the CPU backend every batch runs
    // synchronously on the page's thread, and the page must keep answering.
    let coords = grid(req.n, a, b);
    let mut values = Vec::with_capacity(coords.len());
    // Small batches also keep the GPU queue short, so resumed training steps (and other tabs)
    // do not wait behind the whole grid.
    for rows in coords.chunks(req.n * (POINTS_PER_BATCH / req.n).max(1)) {
        values.extend(surface.losses(&theta, &d1, &d2, rows).await.map_err(text)?);
        gloo_timers::future::TimeoutFuture::new(0).await;
        if superseded() {
            return Err("superseded".into());
        }
    }
    // From the initial weights θ₀ (t = 0) through the current ones (t = 1).
    let line = match req.trajectory.first() {
        Some(start) if start.len() == theta.len() => {
            let dir: Vec<f32> = theta.iter().zip(start.iter()).map(|(t, s)| t - s).collect();
            let ts: Vec<f32> = (0..LINE_POINTS).map(|i| -0.5 + 2.0 * i as f32 / (LINE_POINTS - 1) as f32).collect();
            let coords: Vec<[f32; 2]> = ts.iter().map(|&t| [t, 0.0]).collect();
            let losses = surface.losses(start, &dir, &vec![0.0; dir.len()], &coords).await.map_err(text)?;
            ts.into_iter().zip(losses).collect()
        }
        _ => vec![],
    };
    Ok(Slice { plane: req.plane, n: req.n, a, b, values, current_loss, trajectory, explained, line, step: req.step })
}
