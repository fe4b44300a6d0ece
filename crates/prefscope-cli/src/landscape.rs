//! `prefscope landscape RUN`: the loss landscape of a trained run on its training pairs, with the
//! core code the page uses (`prefscope_core::studies::landscape`): the same filter-normalised random plane
//! for the same seed, the same grid over [−1, 1]², the same batched loss; or the PCA plane of the
//! training trajectory (stored in a page-exported checkpoint, else replayed from the run's config),
//! over the trajectory's reach.
//!
//! Writes `landscape.npy` (f32, shape [n, n], row 0 the bottom edge, column 0 the left edge),
//! `landscape.json` (the plane, the grid's extent, the seed, the loss at the centre and the
//! checkpoint) and `landscape.svg` or `.png`, a heatmap of log loss.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use prefscope_core::AutodiffBackend;
use prefscope_core::reward::checkpoint::{load_preference_model, read_trajectory};
use prefscope_core::studies::landscape::{Surface, npy, grid, pca_extent, random_plane, read_weights, snapshot_every, trajectory_pca};
use prefscope_core::{RunConfig, Trainer};
use serde_json::json;

use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run_folder::{read_checkpoint, write_atomic};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ImageFormat {
    /// Scalable vector graphics.
    Svg,
    /// A bitmap.
    Png,
}

#[derive(clap::Args, Debug)]
pub struct LandscapeArgs {
    /// A run folder (or its model.safetensors) of a bt, gpm or multi-objective model without a gate.
    run: PathBuf,
    /// random: two filter-normalised Gaussian directions (Li et al. 2018). pca: the top two
    /// principal directions of the training trajectory: the one a page-exported checkpoint
    /// carries, or else replayed from the run's config (training is deterministic) and checked to
    /// end at the checkpoint's weights.
    #[arg(long, default_value = "random")]
    plane: String,
    /// Points per side.
    #[arg(long, default_value_t = 41)]
    grid: usize,
    /// Seed of the directions (default: the run's seed, as the page).
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder (default: RUN/landscape).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The heatmap's image format. (`--format` names a pair file's layout elsewhere; it is a
    /// hidden alias here.)
    #[arg(long, alias = "format", value_enum, default_value_t = ImageFormat::Svg)]
    image_format: ImageFormat,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: crate::BackendArgs,
}

#[derive(Clone, Copy, PartialEq)]
enum PlaneArg {
    Random,
    Pca,
}

struct LandscapeJob {
    weights: Vec<u8>,
    n: usize,
    seed: Option<u64>,
    plane: PlaneArg,
}

/// The run's weights along its training, as the page keeps them ([`snapshot_every`]): replayed
/// from its config, and refused unless the replay ends exactly at `theta` after `step` steps.
fn replay<B: AutodiffBackend>(config: &RunConfig, step: usize, theta: &[f32], device: &B::Device) -> Result<Vec<Vec<f32>>> {
    let mut t = Trainer::<B>::new(config.clone(), device)?;
    let every = snapshot_every(t.config.train.steps);
    let read = |t: &Trainer<B>| pollster::block_on(read_weights(&t.model().valid()));
    let mut snapshots = vec![read(&t)?];
    let bar = crate::step_bar(step);
    bar.set_message("replaying the run for its trajectory");
    while t.steps_done() < step && !t.is_done() {
        pollster::block_on(t.step())?;
        bar.inc(1);
        if t.steps_done().is_multiple_of(every) || t.is_done() {
            snapshots.push(read(&t)?);
        }
    }
    bar.finish_and_clear();
    if t.steps_done() != step || read(&t)? != theta {
        bail!("replaying the run's config for {step} steps does not reproduce the checkpoint's weights (the run continued from another checkpoint, or its data changed), so its trajectory is unknown; use --plane random");
    }
    Ok(snapshots)
}

struct Computed {
    values: Vec<f32>,
    seed: u64,
    /// The model's own loss on the training pairs, by the training code's forward pass.
    model_loss: f64,
    train_pairs: usize,
    parameters: usize,
    step: usize,
    /// The grid's extent along each direction.
    a: (f32, f32),
    b: (f32, f32),
    /// PCA: the trajectory in the plane, and the variance each direction explains.
    path: Vec<[f64; 2]>,
    explained: Option<[f64; 2]>,
    /// PCA: where the trajectory came from, "checkpoint" (stored by the page) or "replayed".
    source: Option<&'static str>,
}

impl BackendJob for LandscapeJob {
    type Output = Computed;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Computed> {
        let stored = read_trajectory(&self.weights)?;
        let (head, model) = load_preference_model::<B>(self.weights, &device)?;
        let model = model.valid();
        let ds = head.config.dataset()?;
        let surface = Surface::new(&model, &ds, &ds.train, &device)?;
        let theta = pollster::block_on(read_weights(&model))?;
        let seed = self.seed.unwrap_or(head.config.seed);
        let source = (self.plane == PlaneArg::Pca).then_some(if stored.is_some() { "checkpoint" } else { "replayed" });
        let (d1, d2, a, b, path, explained) = match self.plane {
            PlaneArg::Random => {
                let (d1, d2) = random_plane(&surface.layout, &theta, seed);
                (d1, d2, (-1.0, 1.0), (-1.0, 1.0), vec![], None)
            }
            // As the page: the snapshots and the current weights, projected around the latter.
            PlaneArg::Pca => {
                // A checkpoint exported by the page carries the trajectory it drew; others are replayed.
                let mut snapshots = match stored {
                    Some(t) if t.iter().all(|s| s.len() == theta.len()) => t,
                    Some(t) => bail!("the checkpoint's trajectory has snapshots of {} weights, its model {}", t[0].len(), theta.len()),
                    None => replay::<B>(&head.config, head.step, &theta, &device)?,
                };
                snapshots.push(theta.clone());
                let pca = trajectory_pca(&snapshots, &theta).context("the trajectory does not span two directions (too few steps?)")?;
                let (ra, rb) = pca_extent(&pca.coords, 1e-3);
                let [d1, d2] = pca.directions;
                (d1, d2, (-ra, ra), (-rb, rb), pca.coords, Some(pca.explained))
            }
        };
        let values = pollster::block_on(surface.losses(&theta, &d1, &d2, &grid(self.n, a, b)))?;
        // The model's own loss on the same pairs, by the training code's path (not the batched one).
        let model_loss = pollster::block_on(prefscope_core::reward::train::evaluate(&model, &ds, &ds.train, &device))?.loss as f64;
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            bail!("the loss is not finite at grid point {bad} ({}): the plane leaves the region where the model's outputs are finite", values[bad]);
        }
        Ok(Computed { values, seed, model_loss, train_pairs: ds.train.len(), parameters: surface.layout.len(), step: head.step, a, b, path, explained, source })
    }
}

fn heatmap<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, c: &Computed, n: usize, title: &str) -> Result<()> {
    let values = &c.values;
    let ((a0, a1), (b0, b1)) = ((c.a.0 as f64, c.a.1 as f64), (c.b.0 as f64, c.b.1 as f64));
    use crate::plot::err;
    let logs: Vec<f64> = values.iter().map(|&v| (v as f64).max(1e-12).ln()).collect();
    let (lo, hi) = logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let mut chart = ChartBuilder::on(root).caption(title, (crate::plot::FAMILY, 15)).margin(12).x_label_area_size(32).y_label_area_size(40).build_cartesian_2d(a0..a1, b0..b1).map_err(err)?;
    chart.configure_mesh().disable_mesh().x_desc("a (direction 1)").y_desc("b (direction 2)").label_style((crate::plot::FAMILY, 12)).draw().map_err(err)?;
    let (ha, hb) = ((a1 - a0) / 2.0 / (n.max(2) - 1) as f64, (b1 - b0) / 2.0 / (n.max(2) - 1) as f64);
    let at = |k: usize, lo: f64, hi: f64| if n < 2 { (lo + hi) / 2.0 } else { lo + (hi - lo) * k as f64 / (n - 1) as f64 };
    chart
        .draw_series((0..n).flat_map(|j| (0..n).map(move |i| (i, j))).map(|(i, j)| {
            let colour = ViridisRGB.get_color_normalized(logs[j * n + i], lo, hi.max(lo + 1e-12));
            let (x, y) = (at(i, a0, a1), at(j, b0, b1));
            Rectangle::new([(x - ha, y - hb), (x + ha, y + hb)], colour.filled())
        }))
        .map_err(err)?;
    if !c.path.is_empty() {
        chart.draw_series(std::iter::once(PathElement::new(c.path.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>(), WHITE.stroke_width(2)))).map_err(err)?;
        chart.draw_series(c.path.first().map(|p| Circle::new((p[0], p[1]), 4, WHITE.filled()))).map_err(err)?;
    }
    chart.draw_series(std::iter::once(Cross::new((0.0, 0.0), 6, WHITE.stroke_width(2)))).map_err(err)?;
    Ok(())
}

pub fn landscape(args: LandscapeArgs) -> Result<()> {
    let plane = match args.plane.as_str() {
        "random" => PlaneArg::Random,
        "pca" => PlaneArg::Pca,
        other => bail!("--plane {other}: expected random or pca"),
    };
    if !(2..=201).contains(&args.grid) {
        bail!("--grid {}: between 2 and 201 points per side", args.grid);
    }
    let format = match args.image_format {
        ImageFormat::Svg => "svg",
        ImageFormat::Png => "png",
    };
    let (weights_path, weights) = read_checkpoint(&args.run)?;
    let meta = prefscope_core::reward::checkpoint::read_metadata(&weights).with_context(|| weights_path.display().to_string())?;
    if meta.get(prefscope_core::reward::checkpoint::KIND_KEY).map(String::as_str) == Some(prefscope_core::text::trainer::TEXT_REWARD_MODEL) {
        bail!("{}: a transformer reward model; the landscape covers models whose weights are one MLP (bt, gpm, multi-objective without a gate)", weights_path.display());
    }
    let c = dispatch(args.backend.backend, LandscapeJob { weights, n: args.grid, seed: args.seed, plane })?;
    let run_dir: &Path = if args.run.is_file() { args.run.parent().unwrap_or(Path::new(".")) } else { &args.run };
    let out = args.out.clone().unwrap_or_else(|| run_dir.join("landscape"));
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let n = args.grid;
    write_atomic(&out.join("landscape.npy"), &npy(&c.values, &[n, n]))?;
    let (lo, hi) = c.values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    // The grid point at a = b = 0 (the weights themselves) for an odd n; the nearest one otherwise.
    let centre = c.values[(n / 2) * n + n / 2];
    let meta = json!({
        "checkpoint": weights_path.display().to_string(),
        "step": c.step,
        "plane": args.plane,
        "seed": c.seed,
        "grid": n,
        "a": [c.a.0, c.a.1],
        "b": [c.b.0, c.b.1],
        "trajectory": c.path,
        "trajectory_source": c.source,
        "explained_variance": c.explained,
        "layout": "row-major [b][a], row 0 at the lowest b, column 0 at the lowest a",
        "pairs": "training",
        "train_pairs": c.train_pairs,
        "parameters": c.parameters,
        "centre_loss": centre,
        "model_loss": c.model_loss,
        "min": lo,
        "max": hi,
    });
    write_atomic(&out.join("landscape.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    let title = match c.explained {
        Some([e1, e2]) => format!("log loss on the training pairs, PCA plane ({:.0} % + {:.0} %), step {}", 100.0 * e1, 100.0 * e2, c.step),
        None => format!("log loss on the training pairs, random plane (seed {}), step {}", c.seed, c.step),
    };
    let figure = out.join(format!("landscape.{format}"));
    crate::plot::render(&figure, (620, 580), |root| heatmap(root, &c, n, &title), |root| heatmap(root, &c, n, &title))?;
    if args.json {
        let mut v = meta;
        v["out"] = json!(out.display().to_string());
        println!("{v}");
    } else {
        println!("{n} × {n} landscape of {} ({} parameters, {} training pairs): loss {lo:.4} … {hi:.4}, {centre:.4} at the centre (the model's own {:.4})", weights_path.display(), c.parameters, c.train_pairs, c.model_loss);
        println!("wrote {}, landscape.json and {}", out.join("landscape.npy").display(), figure.display());
    }
    Ok(())
}
