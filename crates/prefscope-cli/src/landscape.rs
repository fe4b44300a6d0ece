//! `prefscope landscape RUN`: the loss landscape of a trained run on its training pairs, with the
//! core code the page uses (`prefscope_core::landscape`): the same filter-normalised random plane
//! for the same seed, the same grid over [−1, 1]², the same batched loss.
//!
//! Writes `landscape.npy` (f32, shape [n, n], row 0 the bottom edge b = −1, column 0 a = −1),
//! `landscape.json` (the plane, the grid's extent, the seed, the loss at the centre and the
//! checkpoint) and `landscape.svg` or `.png`, a heatmap of log loss.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use prefscope_core::AutodiffBackend;
use prefscope_core::checkpoint::load_preference_model;
use prefscope_core::landscape::{Surface, grid, random_plane, read_weights};
use serde_json::json;

use crate::backend::{BackendJob, BackendKind, dispatch};
use crate::run::{read_checkpoint, write_atomic};

#[derive(clap::Args, Debug)]
pub struct LandscapeArgs {
    /// A run folder (or its model.safetensors) of a bt, gpm or multi-objective model without a gate.
    run: PathBuf,
    /// random: two filter-normalised Gaussian directions (Li et al. 2018). pca needs the training
    /// trajectory, which only the page keeps so far.
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
    /// The heatmap's format: svg or png.
    #[arg(long, default_value = "svg")]
    format: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: crate::BackendArgs,
}

struct LandscapeJob {
    weights: Vec<u8>,
    n: usize,
    seed: Option<u64>,
}

struct Computed {
    values: Vec<f32>,
    seed: u64,
    /// The model's own loss on the training pairs, by the training code's forward pass.
    model_loss: f64,
    train_pairs: usize,
    parameters: usize,
    step: usize,
}

impl BackendJob for LandscapeJob {
    type Output = Computed;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: BackendKind) -> Result<Computed> {
        let (head, model) = load_preference_model::<B>(self.weights, &device)?;
        let model = model.valid();
        let ds = head.config.dataset()?;
        let surface = Surface::new(&model, &ds, &ds.train, &device)?;
        let theta = pollster::block_on(read_weights(&model))?;
        let seed = self.seed.unwrap_or(head.config.seed);
        let (d1, d2) = random_plane(&surface.layout, &theta, seed);
        let values = pollster::block_on(surface.losses(&theta, &d1, &d2, &grid(self.n, (-1.0, 1.0), (-1.0, 1.0))))?;
        // The model's own loss on the same pairs, by the training code's path (not the batched one).
        let model_loss = pollster::block_on(prefscope_core::train::evaluate(&model, &ds, &ds.train, &device))?.loss as f64;
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            bail!("the loss is not finite at grid point {bad} ({}): the plane leaves the region where the model's outputs are finite", values[bad]);
        }
        Ok(Computed { values, seed, model_loss, train_pairs: ds.train.len(), parameters: surface.layout.len(), step: head.step })
    }
}

/// A NumPy .npy file (format 1.0) of little-endian f32 in C order.
fn npy(values: &[f32], shape: &[usize]) -> Vec<u8> {
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

fn heatmap<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, values: &[f32], n: usize, title: &str) -> Result<()> {
    use crate::plot::err;
    let logs: Vec<f64> = values.iter().map(|&v| (v as f64).max(1e-12).ln()).collect();
    let (lo, hi) = logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let mut chart = ChartBuilder::on(root).caption(title, (crate::plot::FAMILY, 15)).margin(12).x_label_area_size(32).y_label_area_size(40).build_cartesian_2d(-1f64..1f64, -1f64..1f64).map_err(err)?;
    chart.configure_mesh().disable_mesh().x_desc("a (direction 1)").y_desc("b (direction 2)").label_style((crate::plot::FAMILY, 12)).draw().map_err(err)?;
    let half = 1.0 / (n.max(2) - 1) as f64;
    let at = |k: usize| if n < 2 { 0.0 } else { -1.0 + 2.0 * k as f64 / (n - 1) as f64 };
    chart
        .draw_series((0..n).flat_map(|j| (0..n).map(move |i| (i, j))).map(|(i, j)| {
            let c = ViridisRGB.get_color_normalized(logs[j * n + i], lo, hi.max(lo + 1e-12));
            Rectangle::new([(at(i) - half, at(j) - half), (at(i) + half, at(j) + half)], c.filled())
        }))
        .map_err(err)?;
    chart.draw_series(std::iter::once(Cross::new((0.0, 0.0), 6, WHITE.stroke_width(2)))).map_err(err)?;
    Ok(())
}

pub fn landscape(args: LandscapeArgs) -> Result<()> {
    match args.plane.as_str() {
        "random" => {}
        "pca" => bail!("--plane pca needs the weights along the training trajectory, which run folders do not keep yet; the page's landscape panel has it (use --plane random here)"),
        other => bail!("--plane {other}: expected random or pca"),
    }
    if !(2..=201).contains(&args.grid) {
        bail!("--grid {}: between 2 and 201 points per side", args.grid);
    }
    let format = args.format.to_ascii_lowercase();
    if format != "svg" && format != "png" {
        bail!("--format {}: svg or png", args.format);
    }
    let (weights_path, weights) = read_checkpoint(&args.run)?;
    let meta = prefscope_core::checkpoint::read_metadata(&weights).with_context(|| weights_path.display().to_string())?;
    if meta.get(prefscope_core::checkpoint::KIND_KEY).map(String::as_str) == Some(prefscope_core::textrm::TEXT_REWARD_MODEL) {
        bail!("{}: a transformer reward model; the landscape covers models whose weights are one MLP (bt, gpm, multi-objective without a gate)", weights_path.display());
    }
    let c = dispatch(args.backend.backend, LandscapeJob { weights, n: args.grid, seed: args.seed })?;
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
        "plane": "random",
        "seed": c.seed,
        "grid": n,
        "a": [-1.0, 1.0],
        "b": [-1.0, 1.0],
        "layout": "row-major [b][a], row 0 at b = -1, column 0 at a = -1",
        "pairs": "training",
        "train_pairs": c.train_pairs,
        "parameters": c.parameters,
        "centre_loss": centre,
        "model_loss": c.model_loss,
        "min": lo,
        "max": hi,
    });
    write_atomic(&out.join("landscape.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    let title = format!("log loss on the training pairs, random plane (seed {}), step {}", c.seed, c.step);
    let figure = out.join(format!("landscape.{format}"));
    crate::plot::render(&figure, (620, 580), |root| heatmap(root, &c.values, n, &title), |root| heatmap(root, &c.values, n, &title))?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn npy_header_is_aligned_and_describes_the_array() {
        let bytes = super::npy(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") && header.ends_with('\n'), "{header:?}");
        assert_eq!(&bytes[10 + len..10 + len + 4], &1f32.to_le_bytes());
        assert_eq!(bytes.len(), 10 + len + 24);
    }
}
