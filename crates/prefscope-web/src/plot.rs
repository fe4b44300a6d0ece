//! Chart and picture geometry: ticks, scales, colours, sampled pairs.
//!
//! Pure functions with no browser types, so they are unit-tested on the host; the page turns
//! their output into SVG.

use prefscope_core::{PairDataset, ScenarioKind};
use serde::{Deserialize, Serialize};

/// An SVG coordinate or length as an attribute value: one decimal, enough at screen scale.
pub fn coord(v: f64) -> String {
    format!("{v:.1}")
}

/// About `target` round tick values (1, 2 or 5 × 10ⁿ apart) covering `[lo, hi]`, starting at or
/// below `lo` and ending at or above `hi`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * 0.999).unwrap_or(10.0 * mag);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v }).collect()
}

/// A tick label with as many decimals as the spacing needs.
pub fn tick_label(v: f64, spacing: f64) -> String {
    let decimals = if spacing >= 1.0 { 0 } else { (-spacing.log10()).ceil().max(0.0) as usize };
    format!("{v:.decimals$}")
}

/// Map `v` from the domain `[d0, d1]` onto the range `[r0, r1]`.
pub fn scale(v: f64, (d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> f64 {
    if d1 == d0 { (r0 + r1) / 2.0 } else { r0 + (v - d0) / (d1 - d0) * (r1 - r0) }
}

/// SVG `points` text for a polyline in screen coordinates. A run of consecutive points inside one
/// pixel column keeps only its first, lowest, highest and last point, in their order: what the
/// screen can show. So a 20,000-step loss curve costs the page about what a 600-step one does.
pub fn polyline(points: impl IntoIterator<Item = (f64, f64)>) -> String {
    fn push(out: &mut String, (x, y): (f64, f64)) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{x:.1},{y:.1}"));
    }
    // The open column's first, lowest, highest and last point, each with its index.
    fn flush(out: &mut String, mut kept: [(usize, (f64, f64)); 4]) {
        kept.sort_by_key(|k| k.0);
        for (i, k) in kept.iter().enumerate() {
            if i == 0 || k.0 != kept[i - 1].0 {
                push(out, k.1);
            }
        }
    }
    let mut out = String::new();
    let mut column: Option<(f64, [(usize, (f64, f64)); 4])> = None;
    for (i, p) in points.into_iter().enumerate() {
        match &mut column {
            Some((x, kept)) if *x == p.0.floor() => {
                if p.1 < kept[1].1.1 {
                    kept[1] = (i, p);
                }
                if p.1 > kept[2].1.1 {
                    kept[2] = (i, p);
                }
                kept[3] = (i, p);
            }
            _ => {
                if let Some((_, kept)) = column.take() {
                    flush(&mut out, kept);
                }
                column = Some((p.0.floor(), [(i, p); 4]));
            }
        }
    }
    if let Some((_, kept)) = column {
        flush(&mut out, kept);
    }
    out
}

/// The loss chart's axes: x over all planned steps, y from 0 to a round value above the losses.
pub struct LossAxes {
    pub x: (f64, f64),
    pub x_ticks: Vec<f64>,
    pub y: (f64, f64),
    pub y_ticks: Vec<f64>,
}

impl LossAxes {
    pub fn new(total_steps: usize, losses: &[f32], eval_losses: impl IntoIterator<Item = f32>) -> Self {
        let x_ticks = nice_ticks(0.0, total_steps.max(1) as f64, 6);
        let max = losses.iter().copied().chain(eval_losses).filter(|v| v.is_finite()).fold(0.8f32, f32::max) as f64;
        let y_ticks = nice_ticks(0.0, max, 5);
        Self { x: (0.0, *x_ticks.last().unwrap()), x_ticks, y: (0.0, *y_ticks.last().unwrap()), y_ticks }
    }

    pub fn x_spacing(&self) -> f64 {
        spacing(&self.x_ticks)
    }

    pub fn y_spacing(&self) -> f64 {
        spacing(&self.y_ticks)
    }
}

fn spacing(ticks: &[f64]) -> f64 {
    if ticks.len() >= 2 { ticks[1] - ticks[0] } else { 1.0 }
}

/// One item of a 2-D data set, ready to draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlotItem {
    pub x: f32,
    pub y: f32,
    /// A CSS colour.
    pub colour: String,
    pub label: String,
}

/// The picture of a 2-D scenario: items coloured by what decides the labels, some pairs as arrows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataPicture {
    pub items: Vec<PlotItem>,
    /// `(chosen, rejected)` item indices of a sample of training pairs.
    pub arrows: Vec<(usize, usize)>,
    /// Half the side of the square that holds every item (the picture spans `[-extent, extent]²`).
    pub extent: f32,
    /// What the colour shows, for the legend.
    pub colour_legend: String,
}

impl DataPicture {
    /// `None` unless the items are 2-D.
    pub fn new(ds: &PairDataset, kind: ScenarioKind, max_arrows: usize) -> Option<Self> {
        if ds.dim != 2 || ds.n_items() == 0 {
            return None;
        }
        let n = ds.n_items();
        let (colours, colour_legend): (Vec<String>, _) = if kind == ScenarioKind::Cyclic {
            let colours = (0..n)
                .map(|i| {
                    let p = ds.item(i);
                    let deg = (p[1] as f64).atan2(p[0] as f64).to_degrees().rem_euclid(360.0);
                    format!("hsl({deg:.0}, 70%, 48%)")
                })
                .collect();
            (colours, "colour: angle on the circle")
        } else {
            let w = preferred_direction(ds);
            let u: Vec<f64> = (0..n).map(|i| w[0] * ds.item(i)[0] as f64 + w[1] * ds.item(i)[1] as f64).collect();
            let (lo, hi) = u.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let colours = u.iter().map(|&v| viridis(scale(v, (lo, hi), (0.0, 1.0)))).collect();
            (colours, "colour: utility along the direction the labels prefer (purple low → yellow high)")
        };
        let extent = ds.items.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3) * 1.08;
        let items = colours
            .into_iter()
            .enumerate()
            .map(|(i, colour)| PlotItem { x: ds.item(i)[0], y: ds.item(i)[1], colour, label: ds.item_labels.get(i).cloned().unwrap_or_default() })
            .collect();
        Some(Self { items, arrows: sample_pairs(ds, max_arrows), extent, colour_legend: colour_legend.into() })
    }
}

/// Comparisons [`DataView`] lists when the data has no 2-D picture.
pub const LISTED_PAIRS: usize = 40;

/// What the page shows of a run's data. The compute worker owns the data: it builds each run's
/// dataset once and sends the page this, so no scenario is built or file parsed on the main thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataView {
    pub n_items: usize,
    pub dim: usize,
    pub pairs: usize,
    pub train: usize,
    pub eval: usize,
    /// Context features per pair (context-bt's choices).
    pub prompt_dim: usize,
    /// Rating columns per item (an uploaded file's, which the model's objectives follow).
    pub n_objectives: usize,
    /// The 2-D picture (60 sampled training pairs as arrows), if the items are 2-D.
    pub picture: Option<DataPicture>,
    /// "chosen ≻ rejected" for the first [`LISTED_PAIRS`] pairs, when there is no picture.
    pub listed: Vec<String>,
}

impl DataView {
    pub fn of(ds: &PairDataset, kind: ScenarioKind) -> Self {
        let picture = DataPicture::new(ds, kind, 60);
        let label = |i: usize| ds.item_labels.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        let listed = if picture.is_some() { vec![] } else { ds.pairs.iter().take(LISTED_PAIRS).map(|&(c, r)| format!("{} ≻ {}", label(c), label(r))).collect() };
        Self {
            n_items: ds.n_items(),
            dim: ds.dim,
            pairs: ds.pairs.len(),
            train: ds.train.len(),
            eval: ds.eval.len(),
            prompt_dim: ds.prompt_dim,
            n_objectives: ds.n_objectives,
            picture,
            listed,
        }
    }
}

/// The unit vector along the mean of (chosen − rejected): the direction the labels prefer.
pub fn preferred_direction(ds: &PairDataset) -> [f64; 2] {
    let mut w = [0f64; 2];
    for &(c, r) in &ds.pairs {
        for (j, wj) in w.iter_mut().enumerate() {
            *wj += (ds.item(c)[j] - ds.item(r)[j]) as f64;
        }
    }
    let norm = (w[0] * w[0] + w[1] * w[1]).sqrt();
    if norm > 0.0 { [w[0] / norm, w[1] / norm] } else { [1.0, 0.0] }
}

/// Up to `max` training pairs, evenly spread through the training split (deterministic).
pub fn sample_pairs(ds: &PairDataset, max: usize) -> Vec<(usize, usize)> {
    if max == 0 || ds.train.is_empty() {
        return vec![];
    }
    let stride = ds.train.len().div_ceil(max);
    ds.train.iter().step_by(stride).map(|&p| ds.pairs[p]).take(max).collect()
}

/// A viridis-like colour for `t` in [0, 1].
pub fn viridis(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 };
    let pos = t * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    format!("rgb({}, {}, {})", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefscope_core::ScenarioConfig;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 300.0, 6), vec![0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0]);
        let t = nice_ticks(0.0, 0.73, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 0.73 && t.len() <= 7, "{t:?}");
        assert_eq!(tick_label(0.2, 0.2), "0.2");
        assert_eq!(tick_label(150.0, 50.0), "150");
        assert_eq!(nice_ticks(1.0, 1.0, 5).first(), Some(&1.0));
    }

    #[test]
    fn scale_and_polyline() {
        assert_eq!(scale(5.0, (0.0, 10.0), (100.0, 200.0)), 150.0);
        assert_eq!(scale(1.0, (0.0, 1.0), (300.0, 0.0)), 0.0);
        assert_eq!(polyline([(1.0, 2.0), (3.25, 4.0)]), "1.0,2.0 3.2,4.0");
    }

    #[test]
    fn a_long_polyline_keeps_each_pixel_columns_extremes() {
        // 20,000 points over 600 pixels, a spike at point 7,001 (x = 210.03).
        let pts: Vec<(f64, f64)> = (0..20_000).map(|i| (i as f64 * 0.03, if i == 7001 { 500.0 } else { (i % 7) as f64 })).collect();
        let kept: Vec<(f64, f64)> = polyline(pts.iter().copied()).split(' ').map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        }).collect();
        assert!(kept.len() <= 4 * 600 && kept.len() >= 2 * 600, "{} points", kept.len());
        assert_eq!((kept[0], *kept.last().unwrap()), ((0.0, 0.0), (600.0, 0.0)), "the ends stay");
        assert!(kept.contains(&(210.0, 500.0)), "the spike stays");
        for column in 0..600 {
            let ys: Vec<f64> = kept.iter().filter(|p| p.0.floor() == column as f64 || (p.0 - column as f64 - 0.95).abs() < 0.06).map(|p| p.1).collect();
            assert!(ys.contains(&0.0) && ys.contains(&6.0) || column == 210, "column {column}: {ys:?}");
        }
        // Up to four points in a column are all kept, in order.
        assert_eq!(polyline([(0.0, 1.0), (1.5, 0.0), (3.0, 2.0), (3.5, 9.0), (3.7, -1.0), (3.9, 4.0)]), "0.0,1.0 1.5,0.0 3.0,2.0 3.5,9.0 3.7,-1.0 3.9,4.0");
    }

    #[test]
    fn loss_axes_hold_every_loss() {
        let a = LossAxes::new(300, &[2.7, 1.0, 0.4], [0.5]);
        assert_eq!(a.x, (0.0, 300.0));
        assert!(a.y.1 >= 2.7 && a.y.0 == 0.0);
        // Before any step the y axis still shows the chance level ln 2.
        assert!(LossAxes::new(300, &[], []).y.1 >= 0.7);
    }

    #[test]
    fn pictures_for_two_d_scenarios_only() {
        let cyc = ScenarioConfig::new(ScenarioKind::Cyclic).build(0).unwrap();
        let pic = DataPicture::new(&cyc, ScenarioKind::Cyclic, 60).unwrap();
        assert_eq!(pic.items.len(), 200);
        assert_eq!(pic.arrows.len(), 60);
        assert!(pic.extent > 1.0 && pic.extent < 1.2);
        assert!(pic.items[0].colour.starts_with("hsl("));
        let lin = ScenarioConfig::new(ScenarioKind::Linear).build(0).unwrap();
        let pic = DataPicture::new(&lin, ScenarioKind::Linear, 60).unwrap();
        assert!(pic.items.iter().all(|p| p.colour.starts_with("rgb(")));
        let abcd = ScenarioConfig::new(ScenarioKind::CyclicAbcd).build(0).unwrap();
        assert!(DataPicture::new(&abcd, ScenarioKind::CyclicAbcd, 60).is_none());
    }

    #[test]
    fn the_data_view_counts_the_data_and_lists_pairs_only_without_a_picture() {
        let cyc = ScenarioConfig::new(ScenarioKind::Cyclic).build(0).unwrap();
        let v = DataView::of(&cyc, ScenarioKind::Cyclic);
        assert_eq!((v.n_items, v.dim, v.pairs, v.train + v.eval), (cyc.n_items(), 2, cyc.pairs.len(), cyc.pairs.len()));
        assert_eq!(v.picture, DataPicture::new(&cyc, ScenarioKind::Cyclic, 60));
        assert!(v.listed.is_empty());
        let abcd = ScenarioConfig::new(ScenarioKind::CyclicAbcd).build(0).unwrap();
        let v = DataView::of(&abcd, ScenarioKind::CyclicAbcd);
        assert!(v.picture.is_none());
        assert_eq!(v.listed.len(), abcd.pairs.len().min(LISTED_PAIRS));
        let (c, r) = abcd.pairs[0];
        assert_eq!(v.listed[0], format!("{} ≻ {}", abcd.item_labels[c], abcd.item_labels[r]));
    }

    #[test]
    fn linear_direction_agrees_with_most_labels() {
        let ds = ScenarioConfig::new(ScenarioKind::Linear).build(2).unwrap();
        let w = preferred_direction(&ds);
        let agree = ds.pairs.iter().filter(|&&(c, r)| (0..2).map(|j| w[j] * (ds.item(c)[j] - ds.item(r)[j]) as f64).sum::<f64>() > 0.0).count();
        assert!(agree as f64 / ds.pairs.len() as f64 > 0.9);
    }

    #[test]
    fn viridis_ends() {
        assert_eq!(viridis(0.0), "rgb(68, 1, 84)");
        assert_eq!(viridis(1.0), "rgb(253, 231, 37)");
        assert_eq!(viridis(f64::NAN), viridis(0.5));
    }
}
