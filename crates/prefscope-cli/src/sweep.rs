//! `prefscope sweep`: one base config (the `train` command's flags and config file) trained at
//! every point of a grid of settings, in parallel, with one progress bar.
//!
//! Each point is an ordinary run folder (`SWEEP/<point>/`) named after its settings, so a point
//! can be evaluated, resumed or loaded in the page like any run. `SWEEP/results.jsonl` and
//! `results.csv` hold the axes and each point's summary figures (or its error). Running the same
//! command again resumes: finished points are read back, interrupted ones continue from their
//! `resume.state`, and a point that failed is tried again. A failing point is recorded and the
//! others go on.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use prefscope_core::studies::seeds::parse_seeds;
use serde_json::{Value, json};

use crate::backend::{BackendKind, dispatch};
use crate::run_config::TrainArgs;
use crate::run_folder::{RESUME_FILE, write_atomic};
use crate::seeds::{Base, SeedJob, plan_seed};
use prefscope_core::studies::grid::{Axis, parse_axis, point_name, points};

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// An axis: a dotted config key and its values, comma-separated TOML values
    /// (`--grid model.hidden=[16],[64],[256] --grid scenario.n_pairs=500,2000,8000`); repeat for
    /// more axes. The points are every combination. `--seeds 0..4` adds the seed axis. A
    /// `[sweep]` table in `--config` may hold the same (`grid = { "model.hidden" = [[16], [64]] }`,
    /// `seeds = "0..4"`, `jobs = 2`); flags are added to it.
    #[arg(long = "grid", value_name = "KEY=V1,V2,…")]
    grid: Vec<String>,
    /// Points trained at once. Default: the machine's cores over the backend's threads per run
    /// (RAYON_NUM_THREADS, else all cores, so one at a time); with --jobs and no
    /// RAYON_NUM_THREADS, each point gets cores / jobs threads.
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    train: TrainArgs,
}

/// The `[sweep]` table of a config file (its last table): axes, seeds and jobs.
fn sweep_table(path: &Path) -> Result<(Vec<Axis>, Option<String>, Option<usize>)> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
    let Some(start) = crate::run_config::sweep_table_start(&text) else { return Ok((vec![], None, None)) };
    let line = text[..start].matches('\n').count() + 1;
    let mut tail: toml::Table = text[start..].parse().map_err(|e: toml::de::Error| anyhow::anyhow!("{}:{line}: [sweep]: {}", path.display(), e.message()))?;
    let where_ = |field: &str| format!("{}:{line}: [sweep].{field}", path.display());
    let Some(toml::Value::Table(mut sweep)) = tail.remove("sweep") else { bail!("{}:{line}: `sweep` must be a table", path.display()) };
    if let Some(k) = tail.keys().next() {
        bail!("{}:{line}: [sweep] must be the file's last table (found `{k}` after it)", path.display());
    }
    let mut axes = vec![];
    if let Some(grid) = sweep.remove("grid") {
        let toml::Value::Table(grid) = grid else { bail!("{}: a table of \"key\" = [values]", where_("grid")) };
        for (key, values) in grid {
            let toml::Value::Array(values) = values else { bail!("{}: `{key}` must be an array of values", where_("grid")) };
            axes.push(Axis { key, values });
        }
    }
    let seeds = match sweep.remove("seeds") {
        None => None,
        Some(toml::Value::String(s)) => Some(s),
        Some(_) => bail!("{}: a string such as \"0..4\"", where_("seeds")),
    };
    let jobs = match sweep.remove("jobs") {
        None => None,
        Some(toml::Value::Integer(j)) if j >= 1 => Some(j as usize),
        Some(_) => bail!("{}: a number ≥ 1", where_("jobs")),
    };
    if let Some(k) = sweep.keys().next() {
        bail!("{}: unknown key (expected grid, seeds, jobs)", where_(k));
    }
    Ok((axes, seeds, jobs))
}

/// Threads per run on the CPU backend, and points at once.
fn parallelism(backend: BackendKind, jobs: Option<usize>) -> (Option<usize>, usize) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if !matches!(backend, BackendKind::Cpu) {
        // One device: points queue on it unless told otherwise.
        return (None, jobs.unwrap_or(1));
    }
    let env = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0);
    match (env, jobs) {
        (Some(t), j) => (Some(t), j.unwrap_or((cores / t).max(1))),
        (None, Some(j)) => (Some((cores / j).max(1)), j),
        (None, None) => (Some(cores), 1),
    }
}

pub fn sweep(mut args: SweepArgs) -> Result<()> {
    if args.train.resume.is_some() {
        bail!("sweep resumes by itself: run the same command again (--resume is for one run folder)");
    }
    if args.train.seed.is_some() && args.train.seeds.is_some() {
        bail!("--seed and --seeds exclude each other");
    }
    let (mut axes, mut seeds_spec, mut jobs) = (vec![], args.train.seeds.take(), args.jobs);
    if let Some(path) = &args.train.config {
        let (file_axes, file_seeds, file_jobs) = sweep_table(path)?;
        axes = file_axes;
        seeds_spec = seeds_spec.or(file_seeds);
        jobs = jobs.or(file_jobs);
    }
    for spec in &args.grid {
        let axis = parse_axis(spec).map_err(anyhow::Error::msg)?;
        axes.retain(|a| a.key != axis.key);
        axes.push(axis);
    }
    if let Some(spec) = &seeds_spec {
        if axes.iter().any(|a| a.key == "seed") {
            bail!("the seed is both a --grid axis and --seeds; give it once");
        }
        axes.push(Axis { key: "seed".into(), values: parse_seeds(spec)?.into_iter().map(|s| toml::Value::Integer(s as i64)).collect() });
    }
    if axes.is_empty() {
        bail!("nothing to sweep: give at least one --grid KEY=V1,V2 (or --seeds, or a [sweep] table in --config)");
    }
    if let Some(a) = axes.iter().find(|a| a.values.is_empty()) {
        bail!("--grid {}: no values", a.key);
    }
    if jobs == Some(0) {
        bail!("--jobs must be at least 1");
    }
    // The base config: the config file (without its [sweep] table), then the flags, exactly as
    // `train` reads them.
    let base = Base::resolve(&args.train)?;
    let dir = args.train.out.clone().unwrap_or_else(|| crate::default_run_dir(&format!("{}-sweep", base.stem())));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // Every point's config first: a bad key or value stops the sweep before anything trains.
    let grid = points(&axes);
    let mut names = BTreeSet::new();
    let mut planned = vec![];
    for settings in &grid {
        let mut name = point_name(settings);
        if !names.insert(name.clone()) {
            name = format!("{name}__{}", names.len());
            names.insert(name.clone());
        }
        let source = format!("--grid {}", settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
        let cfg = base.with_settings(settings, &source)?;
        planned.push((name, settings.clone(), cfg));
    }
    let (threads, jobs) = parallelism(args.train.backend.backend, jobs);
    let axes_line = axes.iter().map(|a| format!("{} ({})", a.key, a.values.len())).collect::<Vec<_>>().join(" × ");
    write_atomic(
        &dir.join("sweep.json"),
        serde_json::to_string_pretty(&json!({
            "base": base.to_toml(),
            "axes": axes.iter().map(|a| json!({"key": a.key, "values": a.values})).collect::<Vec<_>>(),
        }))?
        .as_bytes(),
    )?;

    let bar = crate::step_bar(0);
    let mut total = 0u64;
    let mut tasks = vec![];
    let mut results: Vec<Option<Result<Value, String>>> = vec![None; planned.len()];
    let (mut finished, mut resumed) = (0, 0);
    for (i, (name, _, cfg)) in planned.iter().enumerate() {
        let point_dir = dir.join(name);
        match plan_seed(&point_dir, cfg, args.train.overwrite)? {
            Some(summary) => {
                finished += 1;
                results[i] = Some(Ok(summary));
            }
            None => {
                let resume = point_dir.join(RESUME_FILE).exists();
                resumed += resume as usize;
                fs::create_dir_all(&point_dir).with_context(|| format!("cannot create {}", point_dir.display()))?;
                total += cfg.steps() as u64;
                tasks.push((i, SeedJob::new(cfg.clone(), point_dir, resume, &args.train, &bar)));
            }
        }
    }
    bar.set_length(total);
    if !args.train.json {
        let notes = crate::seeds::progress_notes(finished, resumed);
        let per_run = threads.map(|t| format!(", {t} thread{} each", if t == 1 { "" } else { "s" })).unwrap_or_default();
        bar.suspend(|| {
            println!("sweeping {} over {axes_line} = {} points on {}: {} to run, {jobs} at a time{per_run}{notes}; run folders in {}", base.stem(), planned.len(), args.train.backend.backend.describe(), tasks.len(), dir.display())
        });
    }

    // Workers take the next point from the queue; a panic is caught and recorded like an error.
    let queue = Mutex::new(tasks.into_iter());
    let results = Mutex::new(results);
    let backend = args.train.backend.backend;
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                let pool = threads.and_then(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build().ok());
                loop {
                    let Some((i, job)) = queue.lock().expect("queue").next() else { break };
                    let run = || catch_unwind(AssertUnwindSafe(|| dispatch(backend, job)));
                    let outcome = match &pool {
                        Some(p) => p.install(run),
                        None => run(),
                    };
                    let r = match outcome {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(panic) => Err(format!("panicked: {}", panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default())),
                    };
                    let name = &planned[i].0;
                    match &r {
                        Ok(v) => bar.println(format!("{name}: eval acc {:.4}, eval loss {:.4} ({:.1} s)", v["eval_accuracy"].as_f64().unwrap_or(f64::NAN), v["eval_loss"].as_f64().unwrap_or(f64::NAN), v["seconds"].as_f64().unwrap_or(f64::NAN))),
                        Err(e) => bar.println(format!("{name}: failed: {e}")),
                    }
                    results.lock().expect("results")[i] = Some(r);
                }
            });
        }
    });
    bar.finish_and_clear();
    let results: Vec<Result<Value, String>> = results.into_inner().expect("results").into_iter().map(|r| r.unwrap_or_else(|| Err("not run".into()))).collect();

    // results.jsonl / results.csv: the axes, then the summary figures or the error. Data with named
    // test sets (worldpm) adds each set's loss and accuracy, e.g. `adversarial_loss`.
    const BASE: [&str; 5] = ["eval_accuracy", "eval_loss", "eval_probability", "final_loss", "seconds"];
    let mut set_names: Vec<String> = Vec::new();
    for s in results.iter().flatten() {
        for name in s.get("test_sets").and_then(Value::as_object).into_iter().flat_map(|o| o.keys()) {
            if !set_names.contains(name) {
                set_names.push(name.clone());
            }
        }
    }
    // Figures only some data has (worldpm's style control).
    const OPTIONAL: [&str; 1] = ["subjective_length_weight"];
    let optional = OPTIONAL.iter().filter(|f| results.iter().flatten().any(|s| s.get(**f).is_some())).map(|f| f.to_string());
    let figures: Vec<String> = BASE.iter().map(|f| f.to_string()).chain(set_names.iter().flat_map(|n| [format!("{n}_loss"), format!("{n}_accuracy")])).chain(optional).collect();
    let figure = |s: &Value, f: &str| -> Value {
        if let Some(v) = s.get(f) {
            return v.clone();
        }
        let (set, stat) = f.rsplit_once('_').unwrap_or((f, ""));
        s.get("test_sets").and_then(|t| t.get(set)).and_then(|m| m.get(stat)).cloned().unwrap_or(Value::Null)
    };
    let (mut lines, mut csv) = (String::new(), String::new());
    csv.push_str(&["point".to_string()].into_iter().chain(axes.iter().map(|a| a.key.clone())).chain(figures.iter().cloned()).chain(["error".to_string()]).collect::<Vec<_>>().join(","));
    csv.push('\n');
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let quote = |s: String| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s };
    for ((name, settings, _), r) in planned.iter().zip(&results) {
        let axes_json: serde_json::Map<String, Value> = settings.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null))).collect();
        let mut row = json!({ "point": name, "run": dir.join(name).display().to_string(), "axes": axes_json });
        match r {
            Ok(s) => figures.iter().for_each(|f| row[f.as_str()] = figure(s, f)),
            Err(e) => row["error"] = json!(e),
        }
        lines.push_str(&serde_json::to_string(&row)?);
        lines.push('\n');
        let mut cells = vec![name.clone()];
        cells.extend(settings.iter().map(|(_, v)| cell(&serde_json::to_value(v).unwrap_or(Value::Null))));
        cells.extend(figures.iter().map(|f| cell(&row[f.as_str()])));
        cells.push(cell(&row["error"]));
        csv.push_str(&cells.into_iter().map(quote).collect::<Vec<_>>().join(","));
        csv.push('\n');
    }
    write_atomic(&dir.join("results.jsonl"), lines.as_bytes())?;
    write_atomic(&dir.join("results.csv"), csv.as_bytes())?;
    let failed: Vec<&str> = planned.iter().zip(&results).filter(|(_, r)| r.is_err()).map(|((n, _, _), _)| n.as_str()).collect();
    if args.train.json {
        println!("{}", json!({ "sweep": dir.display().to_string(), "points": planned.len(), "completed": planned.len() - failed.len(), "failed": failed }));
    } else {
        println!("{:<40}  {:>9}  {:>9}  {:>8}", "point", "eval acc", "eval loss", "seconds");
        for ((name, _, _), r) in planned.iter().zip(&results) {
            match r {
                Ok(s) => {
                    let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
                    println!("{name:<40}  {:>9.4}  {:>9.4}  {:>8.2}", f("eval_accuracy"), f("eval_loss"), f("seconds"));
                }
                Err(e) => println!("{name:<40}  error: {e}"),
            }
        }
        println!("results in {} and {}", dir.join("results.jsonl").display(), dir.join("results.csv").display());
    }
    if !failed.is_empty() {
        bail!("{} of {} points failed: {} (errors in {}; run the same command again to retry them)", failed.len(), planned.len(), failed.join(", "), dir.join("results.jsonl").display());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// A sweep folder (its results.jsonl).
    sweep: std::path::PathBuf,
    /// The axis on the x of the law: data (scenario.n_pairs) or model size (model.hidden, whose
    /// size is the sum of its widths).
    #[arg(long)]
    x: String,
    /// The figure fitted: eval_loss (default) or any numeric figure of results.jsonl.
    #[arg(long, default_value = "eval_loss")]
    y: String,
    /// Fit one law per value of this axis (e.g. model.hidden with --x scenario.n_pairs).
    #[arg(long)]
    by: Option<String>,
    /// Bootstrap resamples for the 95 % intervals.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Fit the mean over the runs at each x (its seeds) rather than every run; the bootstrap
    /// then redraws runs within each x, and R² measures the mean curve.
    #[arg(long)]
    means: bool,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
}

/// A numeric reading of an axis value: a number, or the sum of an array of numbers (a layer
/// list's width).
fn as_size(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Array(a) if !a.is_empty() => a.iter().map(|x| x.as_f64()).sum(),
        _ => None,
    }
}

/// Points (x, y) of a sweep's finished runs, grouped by the `by` axis ("all" without one), and
/// how many failed points were left out.
pub(crate) type Groups = std::collections::BTreeMap<String, (Vec<f64>, Vec<f64>)>;

pub(crate) fn read_points(sweep: &Path, x: &str, y: &str, by: Option<&str>) -> Result<(Groups, usize)> {
    let path = sweep.join("results.jsonl");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} a sweep folder?)", path.display(), sweep.display()))?;
    let mut groups = Groups::new();
    let mut skipped = 0;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        if row.get("error").is_some_and(|e| !e.is_null()) {
            skipped += 1;
            continue;
        }
        let axes = &row["axes"];
        let Some(xv) = axes.get(x) else { bail!("{}:{}: axes: no `{x}` (axes here: {})", path.display(), n + 1, axes.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()) };
        let xf = as_size(xv).with_context(|| format!("{}:{}: axes.{x}: {xv} is not a number or a list of numbers", path.display(), n + 1))?;
        let yf = row.get(y).and_then(Value::as_f64).with_context(|| format!("{}:{}: `{y}` is missing or not a number", path.display(), n + 1))?;
        let group = match by {
            Some(k) => format!("{k}={}", axes.get(k).with_context(|| format!("{}:{}: axes: no `{k}`", path.display(), n + 1))?),
            None => "all".into(),
        };
        let g = groups.entry(group).or_default();
        g.0.push(xf);
        g.1.push(yf);
    }
    if groups.is_empty() {
        bail!("{}: no finished points to fit", path.display());
    }
    Ok((groups, skipped))
}

/// `prefscope fit`: L = L∞ + (D_c/D)^α per group, with bootstrap intervals; writes fit.json.
pub fn fit(args: FitArgs) -> Result<()> {
    use prefscope_core::studies::scaling::{FitPoints, fit_points};
    let (groups, skipped) = read_points(&args.sweep, &args.x, &args.y, args.by.as_deref())?;
    let points = if args.means { FitPoints::Means } else { FitPoints::Runs };
    let mut fits = serde_json::Map::new();
    for (group, (xs, ys)) in &groups {
        let f = fit_points(xs, ys, points, args.resamples, 0).with_context(|| format!("{group}: {} points", xs.len()))?;
        fits.insert(group.clone(), serde_json::to_value(&f)?);
    }
    let out = json!({ "sweep": args.sweep.display().to_string(), "x": args.x, "y": args.y, "by": args.by, "resamples": args.resamples, "points": points, "law": "y = floor + (scale / x)^alpha", "skipped_failed_points": skipped, "fits": fits });
    write_atomic(&args.sweep.join("fit.json"), serde_json::to_string_pretty(&out)?.as_bytes())?;
    if args.json {
        println!("{out}");
        return Ok(());
    }
    let of = if args.means { "the mean over runs at each x" } else { "every run" };
    println!("{} = L∞ + (x_c / {})^α on {of}, least squares in log space, 95 % percentile-bootstrap intervals ({} resamples):", args.y, args.x, args.resamples);
    println!("{:<28}  {:>6}  {:>24}  {:>24}  {:>10}  {:>6}", "group", "points", "α (95 % interval)", "L∞ (95 % interval)", "x_c", "R²");
    for (group, f) in &fits {
        let f: prefscope_core::studies::scaling::PowerLawFit = serde_json::from_value(f.clone())?;
        println!(
            "{group:<28}  {:>6}  {:>24}  {:>24}  {:>10.4e}  {:>6.3}",
            f.points,
            format!("{:.3} ({:.3} – {:.3})", f.fit.alpha, f.alpha_ci.0, f.alpha_ci.1),
            format!("{:.4} ({:.4} – {:.4})", f.fit.floor, f.floor_ci.0, f.floor_ci.1),
            f.fit.scale,
            f.fit.r2
        );
    }
    println!("fits in {}", args.sweep.join("fit.json").display());
    Ok(())
}
