//! `prefscope plot`: figures from run and sweep folders, with plotters (SVG or PNG by the
//! extension of `--out`).
//!
//! * a run folder: its loss, and train and held-out accuracy, against the step (metrics.jsonl);
//! * a sweep folder with a `fit.json` (`prefscope fit`): each group's points on log-log axes,
//!   the fitted law L∞ + (x_c/x)^α and its 95 % bootstrap band.
//!
//! Text is laid out with the Hack font compiled into the binary, so a fresh machine needs no
//! system fonts.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// A run folder (metrics.jsonl) or a sweep folder (its points, and the fitted law when fit.json
    /// is there). Several run folders: their curves overlaid in one figure.
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
    /// The figure: .svg or .png (default: PATH/plot.svg; a sweep's: PATH/fit.svg; several runs':
    /// A-vs-B….svg beside the first). (`--out` is a
    /// hidden alias from before; it names a folder in every other command.)
    #[arg(long, alias = "out", value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TrueType file compiled in; registering it cannot fail at run time.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, epaint_default_fonts::HACK_REGULAR);
    });
}

/// Render into an SVG or PNG back end by the file's extension.
pub(crate) fn render(out: &Path, size: (u32, u32), draw: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()> + Copy, draw_png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<()> {
    register_font();
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
                draw(&root)?;
                root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            crate::run_folder::write_atomic(out, text.as_bytes())
        }
        Some("png") => {
            // Drawn into a temporary file beside it, then renamed: a killed plot leaves no half figure.
            let name = out.file_name().and_then(|f| f.to_str()).unwrap_or("figure");
            let tmp = out.with_file_name(format!(".{name}.partial.png"));
            {
                let root = BitMapBackend::new(&tmp, size).into_drawing_area();
                root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
                draw_png(&root)?;
                root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
            }
            fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))
        }
        _ => bail!("--output {}: the figure must end in .svg or .png", out.display()),
    }
}

pub fn plot(args: PlotArgs) -> Result<()> {
    if args.paths.len() > 1 {
        return plot_runs(&args.paths, args.output.as_deref());
    }
    let p = &args.paths[0];
    if p.join("results.jsonl").is_file() {
        let out = args.output.clone().unwrap_or_else(|| p.join("fit.svg"));
        plot_sweep(p, &out)?;
        println!("wrote {}", out.display());
    } else if p.join("metrics.jsonl").is_file() {
        let out = args.output.clone().unwrap_or_else(|| p.join("plot.svg"));
        plot_run(p, &out)?;
        println!("wrote {}", out.display());
        // After `prefscope eval`: its reliability diagram, beside the curves.
        if p.join("eval.json").is_file() {
            let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("plot");
            let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("svg");
            let diagram = out.with_file_name(format!("{stem}-reliability.{ext}"));
            plot_reliability(&p.join("eval.json"), &diagram)?;
            println!("wrote {}", diagram.display());
            let margins = out.with_file_name(format!("{stem}-margins.{ext}"));
            plot_margins(&p.join("eval.json"), &margins)?;
            println!("wrote {}", margins.display());
        }
        // After `prefscope probe`: its accuracies per attribute and representation.
        if p.join("probe.json").is_file() {
            let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("plot");
            let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("svg");
            let bars = out.with_file_name(format!("{stem}-probes.{ext}"));
            plot_probes(&p.join("probe.json"), &bars)?;
            println!("wrote {}", bars.display());
        }
    } else {
        bail!("{}: neither a run folder (metrics.jsonl) nor a sweep folder (results.jsonl)", p.display());
    }
    Ok(())
}

/// A run's curves: per step loss and train accuracy, and the held-out accuracy where evaluated.
struct RunCurves {
    loss: Vec<(f64, f64)>,
    train_acc: Vec<(f64, f64)>,
    eval_acc: Vec<(f64, f64)>,
}

fn read_run(dir: &Path) -> Result<RunCurves> {
    let path = dir.join("metrics.jsonl");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut c = RunCurves { loss: vec![], train_acc: vec![], eval_acc: vec![] };
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let step = v["step"].as_f64().with_context(|| format!("{}:{}: step: missing", path.display(), n + 1))?;
        let loss = v["loss"].as_f64().with_context(|| format!("{}:{}: loss: missing or not finite", path.display(), n + 1))?;
        c.loss.push((step, loss));
        if let Some(a) = v["train_accuracy"].as_f64() {
            c.train_acc.push((step, a));
        }
        if let Some(a) = v["eval"]["accuracy"].as_f64() {
            c.eval_acc.push((step, a));
        }
    }
    if c.loss.is_empty() {
        bail!("{}: no steps to plot", path.display());
    }
    Ok(c)
}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

/// A chart against the step (0 to `steps`) on `area`, its mesh drawn: the frame of every curve
/// figure of a run.
fn step_chart<'a, DB: DrawingBackend>(area: &'a DrawingArea<DB, Shift>, caption: &str, steps: f64, y: std::ops::Range<f64>, y_desc: &str) -> Result<ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area).caption(caption, (FAMILY, 16)).margin(10).x_label_area_size(32).y_label_area_size(48).build_cartesian_2d(0f64..steps, y).map_err(err)?;
    chart.configure_mesh().x_desc("step").y_desc(y_desc).x_label_formatter(&|v| format!("{v:.0}")).max_light_lines(2).label_style((FAMILY, 12)).draw().map_err(err)?;
    Ok(chart)
}

/// The loss axis: every loss value, padded by 5 % of their range.
fn loss_range<'a>(losses: impl Iterator<Item = &'a (f64, f64)>) -> std::ops::Range<f64> {
    let (lo, hi) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad)..(hi + pad)
}

fn draw_run<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &RunCurves, title: &str) -> Result<()> {
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let steps = c.loss.last().map(|p| p.0).unwrap_or(1.0).max(1.0);
    let mut chart = step_chart(&left, &format!("{title}: loss"), steps, loss_range(c.loss.iter()), "loss")?;
    chart.draw_series(LineSeries::new(c.loss.iter().copied(), BLUE.stroke_width(1))).map_err(err)?.label("training loss").legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    chart.configure_series_labels().label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;

    let mut acc = step_chart(&right, &format!("{title}: accuracy"), steps, 0f64..1f64, "accuracy")?;
    let orange = RGBColor(230, 120, 20);
    acc.draw_series(LineSeries::new(c.train_acc.iter().copied(), BLUE.mix(0.6).stroke_width(1))).map_err(err)?.label("train (minibatch)").legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    acc.draw_series(LineSeries::new(c.eval_acc.iter().copied(), orange.stroke_width(2))).map_err(err)?.label("held out").legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], orange));
    acc.draw_series(c.eval_acc.iter().map(|&p| Circle::new(p, 3, orange.filled()))).map_err(err)?;
    acc.configure_series_labels().position(SeriesLabelPosition::LowerRight).label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

/// Several runs' curves in one figure: training loss and held-out accuracy against the step, one
/// colour per run (GPM against Bradley–Terry on the same scenario, say).
fn plot_runs(dirs: &[PathBuf], out: Option<&Path>) -> Result<()> {
    let mut runs = Vec::with_capacity(dirs.len());
    for d in dirs {
        if !d.join("metrics.jsonl").is_file() {
            bail!("{}: not a run folder (no metrics.jsonl); several paths are overlaid as runs", d.display());
        }
        let name = d.file_name().and_then(|f| f.to_str()).unwrap_or("run").to_string();
        runs.push((name, read_run(d)?));
    }
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => {
            let names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
            dirs[0].parent().unwrap_or(Path::new(".")).join(format!("{}.svg", names.join("-vs-")))
        }
    };
    render(&out, (960, 380), |root| draw_runs(root, &runs), |root| draw_runs(root, &runs))?;
    println!("wrote {}", out.display());
    Ok(())
}

fn draw_runs<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, runs: &[(String, RunCurves)]) -> Result<()> {
    const PALETTE: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(230, 120, 20), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(100, 100, 100)];
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let steps = runs.iter().filter_map(|(_, c)| c.loss.last().map(|p| p.0)).fold(1.0, f64::max);
    let mut chart = step_chart(&left, "training loss", steps, loss_range(runs.iter().flat_map(|(_, c)| c.loss.iter())), "loss")?;
    let mut acc = step_chart(&right, "held-out accuracy", steps, 0f64..1f64, "accuracy")?;
    for (i, (name, c)) in runs.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart.draw_series(LineSeries::new(c.loss.iter().copied(), colour.stroke_width(1))).map_err(err)?.label(name.as_str()).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        acc.draw_series(LineSeries::new(c.eval_acc.iter().copied(), colour.stroke_width(2))).map_err(err)?.label(name.as_str()).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        acc.draw_series(c.eval_acc.iter().map(move |&p| Circle::new(p, 3, colour.filled()))).map_err(err)?;
    }
    chart.configure_series_labels().label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    acc.configure_series_labels().position(SeriesLabelPosition::LowerRight).label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

fn plot_run(dir: &Path, out: &Path) -> Result<()> {
    let c = read_run(dir)?;
    let title = dir.file_name().and_then(|f| f.to_str()).unwrap_or("run").to_string();
    render(out, (960, 380), |root| draw_run(root, &c, &title), |root| draw_run(root, &c, &title))
}

/// One group of a sweep's fit: points, the fitted curve and its band on a grid of x.
struct FitFigure {
    group: String,
    points: Vec<(f64, f64)>,
    curve: Vec<(f64, f64, f64, f64)>,
    alpha: f64,
}

/// A sweep without a fit (`prefscope fit` not run yet): its held-out loss against its first axis
/// (other than the seed), one colour per value of a second axis if it has one.
fn plot_sweep_points(dir: &Path, out: &Path) -> Result<()> {
    let path = dir.join("results.jsonl");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let first: Value = text.lines().find(|l| !l.trim().is_empty()).map(serde_json::from_str).transpose()?.with_context(|| format!("{}: no finished points", path.display()))?;
    let axes: Vec<String> = first["axes"].as_object().map(|o| o.keys().filter(|k| *k != "seed").cloned().collect()).unwrap_or_default();
    let Some(x) = axes.first() else { bail!("{}: the sweep varies only the seed; there is no axis to plot against", path.display()) };
    let y = "eval_loss";
    let (groups, _) = crate::sweep::read_points(dir, x, y, axes.get(1).map(String::as_str))?;
    let figs: Vec<FitFigure> = groups
        .iter()
        .map(|(group, (xs, ys))| FitFigure { group: group.clone(), points: xs.iter().copied().zip(ys.iter().copied()).collect(), curve: vec![], alpha: f64::NAN })
        .collect();
    println!("no fit.json: the points alone (`prefscope fit {} --x {x}` adds the fitted law)", dir.display());
    render(out, (820, 520), |root| draw_sweep(root, &figs, x, y), |root| draw_sweep(root, &figs, x, y))
}

fn draw_sweep<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figs: &[FitFigure], x: &str, y: &str) -> Result<()> {
    let xs = figs.iter().flat_map(|f| f.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    // The y range is the points' (and the fitted curves'), widened a little; a band that reaches
    // beyond it (or to zero, which a log axis cannot show) is drawn clipped to it.
    let ys = figs.iter().flat_map(|f| f.points.iter().map(|p| p.1).chain(f.curve.iter().map(|c| c.1)));
    let (y_lo, y_hi) = ys.filter(|v| v.is_finite() && *v > 0.0).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (y_lo, y_hi) = (y_lo / 1.3, y_hi * 1.3);
    let clip = |v: f64| if v.is_finite() { v.clamp(y_lo, y_hi) } else { y_lo };
    let mut chart = ChartBuilder::on(root)
        .caption(if figs.iter().any(|f| !f.curve.is_empty()) { format!("{y} against {x}: L = L∞ + (x_c / x)^α, 95 % bootstrap band") } else { format!("{y} against {x}") }, (FAMILY, 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((x_lo / 1.2..x_hi * 1.2).log_scale().with_key_points(log_ticks(x_lo / 1.2, x_hi * 1.2)), (y_lo..y_hi).log_scale().with_key_points(log_ticks(y_lo, y_hi)))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .max_light_lines(1)
        .label_style((FAMILY, 12))
        .draw()
        .map_err(err)?;
    for (i, f) in figs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        if f.curve.is_empty() {
            chart.draw_series(f.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?.label(f.group.clone()).legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
            continue;
        }
        let band: Vec<(f64, f64)> = f.curve.iter().map(|c| (c.0, clip(c.2))).chain(f.curve.iter().rev().map(|c| (c.0, clip(c.3)))).collect();
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15)))).map_err(err)?;
        chart.draw_series(LineSeries::new(f.curve.iter().map(|c| (c.0, clip(c.1))), color.stroke_width(2))).map_err(err)?.label(format!("{} (α = {:.3})", f.group, f.alpha)).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        chart.draw_series(f.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
    }
    chart.configure_series_labels().label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

/// Labels for a log axis: 1, 2, 3 and 5 times the powers of ten inside [lo, hi] (plotters' own
/// key points of a log axis are the powers of ten, and a range inside one decade gets none).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = vec![];
    for e in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
        for m in [1.0, 2.0, 3.0, 5.0] {
            let v = m * 10f64.powi(e);
            if (lo..=hi).contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// A tick label without float noise: 2000, 0.3, 0.05.
fn tick(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn plot_sweep(dir: &Path, out: &Path) -> Result<()> {
    use prefscope_core::studies::scaling::{FitPoints, PowerLawFit, prediction_band};
    let fit_path = dir.join("fit.json");
    if !fit_path.is_file() {
        return plot_sweep_points(dir, out);
    }
    let text = fs::read_to_string(&fit_path).with_context(|| format!("cannot read {}", fit_path.display()))?;
    let fit: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", fit_path.display()))?;
    let field = |k: &str| fit[k].as_str().map(str::to_string).with_context(|| format!("{}: `{k}` missing", fit_path.display()));
    let (x, y) = (field("x")?, field("y")?);
    let by = fit["by"].as_str();
    let resamples = fit["resamples"].as_u64().unwrap_or(1000) as usize;
    let mode: FitPoints = serde_json::from_value(fit["points"].clone()).unwrap_or(FitPoints::Runs);
    let (groups, _) = crate::sweep::read_points(dir, &x, &y, by)?;
    let mut figs = vec![];
    for (group, (xs, ys)) in &groups {
        let f: PowerLawFit = serde_json::from_value(fit["fits"][group].clone()).with_context(|| format!("{}: no fit for `{group}`; run `prefscope fit` again", fit_path.display()))?;
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let grid: Vec<f64> = (0..=60).map(|i| lo * (hi / lo).powf(i as f64 / 60.0)).collect();
        let band = prediction_band(xs, ys, mode, &grid, resamples, 0);
        let curve = grid.iter().zip(band).map(|(&g, (a, b))| (g, f.fit.predict(g), a, b)).collect();
        figs.push(FitFigure { group: group.clone(), points: xs.iter().copied().zip(ys.iter().copied()).collect(), curve, alpha: f.fit.alpha });
    }
    render(out, (820, 520), |root| draw_sweep(root, &figs, &x, &y), |root| draw_sweep(root, &figs, &x, &y))
}

/// One bin of eval's reliability table.
struct ReliabilityRow {
    lo: f64,
    hi: f64,
    count: u64,
    accuracy: f64,
    confidence: f64,
}

/// A JSON report (`eval --json`, `probe --json`).
fn read_report(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// The rows of a report's array `key`, each read by `read(number, row)`, where `number(field)`
/// is the row's numeric field or an error naming the file, the row and the field. `hint` follows
/// the error when the array itself is missing.
fn report_rows<T>(v: &Value, path: &Path, key: &str, hint: &str, read: impl Fn(&dyn Fn(&str) -> Result<f64>, &Value) -> Result<T>) -> Result<Vec<T>> {
    let rows = v[key].as_array().with_context(|| format!("{}: {key}: missing{hint}", path.display()))?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| read(&|k: &str| r[k].as_f64().with_context(|| format!("{}: {key}[{i}].{k}: missing", path.display())), r))
        .collect()
}

fn draw_reliability<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, bins: &[ReliabilityRow], title: &str) -> Result<()> {
    let mut chart = ChartBuilder::on(root).caption(title, (FAMILY, 15)).margin(12).x_label_area_size(36).y_label_area_size(48).build_cartesian_2d(0.5f64..1f64, 0f64..1f64).map_err(err)?;
    chart.configure_mesh().x_desc("confidence P(chosen ≻ rejected)").y_desc("accuracy").max_light_lines(1).label_style((FAMILY, 12)).draw().map_err(err)?;
    let blue = RGBColor(60, 110, 200);
    chart.draw_series(bins.iter().filter(|b| b.count > 0).map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.accuracy)], blue.mix(0.45).filled()))).map_err(err)?.label("accuracy per bin").legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], blue.mix(0.45).filled()));
    chart.draw_series(LineSeries::new([(0.5, 0.5), (1.0, 1.0)], BLACK.mix(0.6).stroke_width(1))).map_err(err)?.label("perfect calibration").legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
    chart.draw_series(bins.iter().filter(|b| b.count > 0).map(|b| Circle::new((b.confidence, b.accuracy), 3, BLACK.filled()))).map_err(err)?;
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

/// Eval's reliability diagram: per confidence bin its accuracy (bars), its mean confidence (dots)
/// and the diagonal of perfect calibration.
fn plot_reliability(eval: &Path, out: &Path) -> Result<()> {
    let v = read_report(eval)?;
    let bins = report_rows(&v, eval, "reliability", "", |f, r| {
        Ok(ReliabilityRow { lo: f("lo")?, hi: f("hi")?, count: r["count"].as_u64().unwrap_or(0), accuracy: f("accuracy")?, confidence: f("mean_confidence")? })
    })?;
    let title = format!("reliability on {} ({} pairs): ECE {:.4}", v["data"].as_str().unwrap_or("the held-out pairs"), v["n"].as_u64().unwrap_or(0), v["ece"].as_f64().unwrap_or(f64::NAN));
    render(out, (620, 480), |root| draw_reliability(root, &bins, &title), |root| draw_reliability(root, &bins, &title))
}

fn draw_margins<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, bins: &[(f64, f64, u64)], title: &str) -> Result<()> {
    let (lo, hi) = (bins.first().map_or(-1.0, |b| b.0), bins.last().map_or(1.0, |b| b.1));
    let top = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(root).caption(title, (FAMILY, 15)).margin(12).x_label_area_size(36).y_label_area_size(56).build_cartesian_2d(lo..hi, 0f64..top).map_err(err)?;
    chart.configure_mesh().x_desc("margin r(chosen) − r(rejected)").y_desc("pairs").max_light_lines(1).label_style((FAMILY, 12)).draw().map_err(err)?;
    let (right, wrong) = (RGBColor(60, 110, 200), RGBColor(200, 70, 60));
    // A bar straddling 0 is split at 0, so the wrong side's colour is exactly the mass below 0.
    let bar = |b: &(f64, f64, u64), from: f64, to: f64, c: RGBColor| Rectangle::new([(from, 0.0), (to, b.2 as f64)], c.mix(0.6).filled());
    chart.draw_series(bins.iter().filter(|b| b.2 > 0 && b.1 > 0.0).map(|b| bar(b, b.0.max(0.0), b.1, right))).map_err(err)?.label("chosen ranked higher").legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], right.mix(0.6).filled()));
    chart.draw_series(bins.iter().filter(|b| b.2 > 0 && b.0 < 0.0).map(|b| bar(b, b.0, b.1.min(0.0), wrong))).map_err(err)?.label("rejected ranked higher").legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], wrong.mix(0.6).filled()));
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

/// Eval's margin histogram: how far apart the model puts chosen and rejected responses.
fn plot_margins(eval: &Path, out: &Path) -> Result<()> {
    let v = read_report(eval)?;
    let bins = report_rows(&v, eval, "margin_histogram", " (evaluate again with this version)", |f, r| Ok((f("lo")?, f("hi")?, r["count"].as_u64().unwrap_or(0))))?;
    let title = format!("margins on {} ({} pairs): mean {:.3}", v["data"].as_str().unwrap_or("the held-out pairs"), v["n"].as_u64().unwrap_or(0), v["mean_margin"].as_f64().unwrap_or(f64::NAN));
    render(out, (620, 480), |root| draw_margins(root, &bins, &title), |root| draw_margins(root, &bins, &title))
}

/// One probe's bar: attribute index, representation index, accuracy and its interval.
struct ProbeBar {
    attribute: usize,
    representation: usize,
    accuracy: f64,
    ci: (f64, f64),
}

const PROBE_REPRESENTATIONS: [&str; 3] = ["trained", "random", "input"];

fn draw_probes<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, names: &[String], bars: &[ProbeBar], title: &str) -> Result<()> {
    let n = names.len() as f64;
    let mut chart = ChartBuilder::on(root).caption(title, (FAMILY, 15)).margin(12).x_label_area_size(36).y_label_area_size(48).build_cartesian_2d(-0.5f64..n - 0.5, 0f64..1.15f64).map_err(err)?;
    let labels = names.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&move |v| {
            let k = v.round();
            if (v - k).abs() < 1e-6 && k >= 0.0 { labels.get(k as usize).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_desc("held-out probe accuracy")
        .max_light_lines(1)
        .label_style((FAMILY, 12))
        .draw()
        .map_err(err)?;
    let colours = [RGBColor(60, 110, 200), RGBColor(160, 160, 160), RGBColor(230, 150, 40)];
    for (r, name) in PROBE_REPRESENTATIONS.iter().enumerate() {
        let c = colours[r];
        let x0 = |b: &ProbeBar| b.attribute as f64 - 0.36 + 0.24 * b.representation as f64;
        let mine: Vec<&ProbeBar> = bars.iter().filter(|b| b.representation == r).collect();
        chart.draw_series(mine.iter().map(|b| Rectangle::new([(x0(b), 0.0), (x0(b) + 0.22, b.accuracy)], c.mix(0.7).filled()))).map_err(err)?.label(*name).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.mix(0.7).filled()));
        chart.draw_series(mine.iter().map(|b| PathElement::new([(x0(b) + 0.11, b.ci.0), (x0(b) + 0.11, b.ci.1)], BLACK.stroke_width(1)))).map_err(err)?;
    }
    chart.draw_series(LineSeries::new([(-0.5, 0.5), (n - 0.5, 0.5)], BLACK.mix(0.5))).map_err(err)?;
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).label_font((FAMILY, 12)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    Ok(())
}

/// Probe's accuracies: a bar per attribute and representation, with its 95 % interval.
fn plot_probes(probe: &Path, out: &Path) -> Result<()> {
    let v = read_report(probe)?;
    let names: Vec<String> = v["attributes"].as_array().with_context(|| format!("{}: attributes: missing", probe.display()))?.iter().map(|a| a["name"].as_str().unwrap_or("?").to_string()).collect();
    let mut bars = vec![];
    for (r, rep) in PROBE_REPRESENTATIONS.iter().enumerate() {
        let rows = v["representations"][rep]["probes"].as_array().with_context(|| format!("{}: representations.{rep}.probes: missing", probe.display()))?;
        for (k, row) in rows.iter().enumerate() {
            let f = |x: &Value| x.as_f64().with_context(|| format!("{}: representations.{rep}.probes[{k}]: not a number", probe.display()));
            bars.push(ProbeBar { attribute: k, representation: r, accuracy: f(&row["accuracy"])?, ci: (f(&row["accuracy_ci95"][0])?, f(&row["accuracy_ci95"][1])?) });
        }
    }
    let title = format!("linear probes on {} ({} items)", v["data"].as_str().unwrap_or("the run's data"), v["items"].as_u64().unwrap_or(0));
    render(out, (720, 480), |root| draw_probes(root, &names, &bars, &title), |root| draw_probes(root, &names, &bars, &title))
}
