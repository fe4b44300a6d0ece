//! The loss-landscape panel's pure parts: what a computed slice holds, the colour scale (the same
//! polynomial viridis and contour rule as `shaders/landscape.wgsl`), and the canvas fallback's
//! rasteriser. No browser types, so it is unit-tested on the host.

use serde::{Deserialize, Serialize};

use crate::settings::Plane;

/// Contour lines per colour scale (at every 1/CONTOURS of the normalised value).
pub const CONTOURS: f32 = 12.0;

/// A computed landscape: the loss on an `n × n` grid around the current weights, and the loss
/// along the straight line from the initial to the current weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub plane: Plane,
    pub n: usize,
    /// Coordinate ranges along d₁ (horizontal) and d₂ (vertical); symmetric about 0.
    pub a: (f32, f32),
    pub b: (f32, f32),
    /// Row-major, bottom row first (see `prefscope_core::studies::landscape::grid`).
    pub values: Vec<f32>,
    /// The model's own loss on the training pairs (`train::evaluate`), for comparison with the
    /// grid's centre.
    pub current_loss: f32,
    /// The training trajectory in the plane's coordinates (PCA plane only), oldest first.
    pub trajectory: Vec<[f64; 2]>,
    /// Share of the trajectory's variance along d₁ and d₂ (PCA plane only).
    pub explained: Option<[f64; 2]>,
    /// (t, loss) along θ₀ + t (θ − θ₀): t = 0 the initial weights, t = 1 the current ones.
    pub line: Vec<(f32, f32)>,
    /// Training steps done when it was computed.
    pub step: usize,
}

impl Slice {
    /// The loss at the current weights, the grid's middle point.
    pub fn centre(&self) -> f32 {
        self.values[(self.n / 2) * self.n + self.n / 2]
    }

    /// The smallest and largest finite value of the grid.
    pub fn range(&self) -> (f32, f32) {
        let finite = self.values.iter().copied().filter(|v| v.is_finite());
        finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }
}

/// Maps losses to [0, 1] for colouring, linearly or logarithmically.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColourScale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl ColourScale {
    /// A scale over the slice's range; a log scale needs positive values (losses −log σ are).
    pub fn new((lo, hi): (f32, f32), log: bool) -> Self {
        let (mut lo, mut hi) = (lo as f64, hi as f64);
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 1.0);
        }
        if log {
            lo = lo.max(1e-6);
            hi = hi.max(lo * (1.0 + 1e-6));
        } else if hi <= lo {
            hi = lo + 1e-6;
        }
        Self { lo, hi, log }
    }

    /// Position of `v` on the scale, clamped to [0, 1].
    pub fn t(&self, v: f64) -> f64 {
        let t = if self.log { (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln()) } else { (v - self.lo) / (self.hi - self.lo) };
        if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) }
    }
}

/// The viridis colour map as the polynomial fit used in the shader (Matt Zucker's), `t` ∈ [0, 1].
pub fn viridis(t: f64) -> [u8; 3] {
    const C: [[f64; 3]; 7] = [
        [0.277_727_327_223_417_7, 0.005_407_344_544_966_578, 0.334_099_805_335_306_1],
        [0.105_093_043_108_577_4, 1.404_613_529_898_575, 1.384_590_162_594_685],
        [-0.330_861_828_725_556_3, 0.214_847_559_468_213, 0.095_095_163_028_236_59],
        [-4.634_230_498_983_486, -5.799_100_973_351_585, -19.332_440_956_279_87],
        [6.228_269_936_347_081, 14.179_933_366_805_09, 56.690_552_600_681_05],
        [4.776_384_997_670_288, -13.745_145_377_746_01, -65.353_032_633_372_34],
        [-5.435_455_855_934_631, 4.645_852_612_178_535, 26.312_435_249_583_2],
    ];
    let t = t.clamp(0.0, 1.0);
    let mut rgb = [0u8; 3];
    for (k, out) in rgb.iter_mut().enumerate() {
        let v = C.iter().rev().fold(0.0, |acc, c| acc * t + c[k]);
        *out = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    rgb
}

/// A CSS colour for position `t` of the scale.
pub fn css_colour(t: f64) -> String {
    let [r, g, b] = viridis(t);
    format!("rgb({r},{g},{b})")
}

/// Bilinear sample of an `n × n` grid (bottom row first) at `(u, v)` ∈ [0, 1]², v upward.
pub fn sample(values: &[f32], n: usize, u: f64, v: f64) -> f64 {
    let at = |i: usize, j: usize| values[j * n + i] as f64;
    if n < 2 {
        return at(0, 0);
    }
    let (x, y) = (u.clamp(0.0, 1.0) * (n - 1) as f64, v.clamp(0.0, 1.0) * (n - 1) as f64);
    let (i, j) = ((x.floor() as usize).min(n - 2), (y.floor() as usize).min(n - 2));
    let (fx, fy) = (x - i as f64, y - j as f64);
    let bottom = at(i, j) * (1.0 - fx) + at(i + 1, j) * fx;
    let top = at(i, j + 1) * (1.0 - fx) + at(i + 1, j + 1) * fx;
    bottom * (1.0 - fy) + top * fy
}

/// RGBA pixels (`size × size`, top row first) of the heatmap with contour lines: what the WGSL
/// shader draws, for browsers without WebGPU. The shader's `fwidth` is the change of the contour
/// coordinate to the next pixel here.
#[cfg(test)]
pub fn rasterise(values: &[f32], n: usize, size: usize, scale: &ColourScale) -> Vec<u8> {
    rasterise_rows(values, n, size, scale, 0..size)
}

/// The pixels of rows `rows` of [`rasterise`], the same bytes: the page draws the picture a band
/// at a time, so that no task on its thread runs long.
pub fn rasterise_rows(values: &[f32], n: usize, size: usize, scale: &ColourScale, rows: std::ops::Range<usize>) -> Vec<u8> {
    // The contour coordinate of one row.
    let f_row = |py: usize| -> Vec<f64> {
        (0..size)
            .map(|px| {
                let (u, v) = ((px as f64 + 0.5) / size as f64, 1.0 - (py as f64 + 0.5) / size as f64);
                scale.t(sample(values, n, u, v)) * CONTOURS as f64
            })
            .collect()
    };
    let mut out = Vec::with_capacity(rows.len() * size * 4);
    let Some(first) = rows.clone().next() else { return out };
    let mut f = f_row(first);
    for py in rows {
        // The next row down, or (on the last row) the one above, as the shader's fwidth.
        let below = f_row(if py + 1 < size { py + 1 } else { py.saturating_sub(1) });
        for px in 0..size {
            let right = if px + 1 < size { f[px + 1] } else { f[px.saturating_sub(1)] };
            let width = (right - f[px]).abs() + (below[px] - f[px]).abs();
            let distance = ((f[px] + 0.5).fract() - 0.5).abs();
            let line = 1.0 - smoothstep(0.0, 1.5 * width.max(1e-9), distance);
            let [r, g, b] = viridis(f[px] / CONTOURS as f64);
            let mix = |c: u8| (c as f64 + (255.0 - c as f64) * 0.55 * line).round() as u8;
            out.extend([mix(r), mix(g), mix(b), 255]);
        }
        f = below;
    }
    out
}

fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Legend ticks for a log scale: 1, 2 and 5 × 10ⁿ within [lo, hi] (None when fewer than two
/// fit, for the caller to fall back to linear ticks).
pub fn log_ticks(lo: f64, hi: f64) -> Option<Vec<f64>> {
    if !(lo > 0.0 && hi > lo) {
        return None;
    }
    let ticks: Vec<f64> = (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .filter(|&t| t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9))
        .collect();
    (ticks.len() >= 2).then_some(ticks)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_are_dark_purple_and_yellow() {
        let [r, g, b] = viridis(0.0);
        assert!(r < 80 && g < 10 && b > 70, "{r} {g} {b}");
        let [r, g, b] = viridis(1.0);
        assert!(r > 230 && g > 200 && b < 60, "{r} {g} {b}");
        assert_eq!(viridis(-3.0), viridis(0.0));
    }

    #[test]
    fn log_scale_spreads_small_losses() {
        let lin = ColourScale::new((0.01, 10.0), false);
        let log = ColourScale::new((0.01, 10.0), true);
        assert!((lin.t(0.1) - 0.09 / 9.99).abs() < 1e-6);
        assert!((log.t(0.1) - 1.0 / 3.0).abs() < 1e-6, "one decade of three");
        assert_eq!(log.t(0.0), 0.0);
        assert_eq!(lin.t(100.0), 1.0);
        // A flat landscape does not divide by zero.
        assert_eq!(ColourScale::new((2.0, 2.0), false).t(2.0), 0.0);
    }

    #[test]
    fn bilinear_sampling_hits_grid_points_and_interpolates_between() {
        // 3 × 3, bottom row first: value = 10·row + column.
        let v: Vec<f32> = (0..9).map(|k| (10 * (k / 3) + k % 3) as f32).collect();
        assert_eq!(sample(&v, 3, 0.0, 0.0), 0.0);
        assert_eq!(sample(&v, 3, 1.0, 1.0), 22.0);
        assert_eq!(sample(&v, 3, 0.5, 0.5), 11.0);
        assert!((sample(&v, 3, 0.25, 0.75) - 15.5).abs() < 1e-12);
    }

    #[test]
    fn raster_has_contours_where_the_value_crosses_a_level() {
        // A left-to-right ramp from 0 to 1: the 12 levels cross it, so some pixels of each row are
        // lightened toward white and most are plain viridis.
        let n = 5;
        let values: Vec<f32> = (0..n * n).map(|k| (k % n) as f32 / (n - 1) as f32).collect();
        let size = 96;
        let px = rasterise(&values, n, size, &ColourScale::new((0.0, 1.0), false));
        assert_eq!(px.len(), size * size * 4);
        let row: Vec<[u8; 3]> = (0..size).map(|x| [px[4 * x], px[4 * x + 1], px[4 * x + 2]]).collect();
        let plain = row.iter().enumerate().filter(|(x, c)| **c == viridis(((*x as f64 + 0.5) / size as f64) * 1.0)).count();
        assert!(plain > size / 2, "most pixels are the plain colour ({plain})");
        let lines = row.iter().enumerate().filter(|(x, c)| c[1] > viridis((*x as f64 + 0.5) / size as f64)[1].saturating_add(20)).count();
        assert!(lines >= 8, "contour pixels: {lines}");
        // Rows are identical: the value does not change vertically.
        assert_eq!(&px[..size * 4], &px[(size - 1) * size * 4..]);
    }

    #[test]
    fn bands_of_rows_put_together_are_the_whole_raster() {
        let n = 7;
        let values: Vec<f32> = (0..n * n).map(|k| ((k * 37 % 11) as f32).sin()).collect();
        let (size, scale) = (50, ColourScale::new((-1.0, 1.0), false));
        let whole = rasterise(&values, n, size, &scale);
        let bands: Vec<u8> = [0..13, 13..14, 14..40, 40..50].into_iter().flat_map(|r| rasterise_rows(&values, n, size, &scale, r)).collect();
        assert_eq!(bands, whole);
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        let t = log_ticks(0.05, 3.1).unwrap();
        let want = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0];
        assert!(t.len() == want.len() && t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{t:?}");
        assert_eq!(log_ticks(0.3, 0.4), None, "nothing to mark between");
        assert_eq!(log_ticks(0.0, 1.0), None);
    }

    #[test]
    fn slice_centre_and_range() {
        let s = Slice {
            plane: Plane::Random,
            n: 3,
            a: (-1.0, 1.0),
            b: (-1.0, 1.0),
            values: vec![3.0, 2.0, 3.0, 2.0, 0.5, 2.0, f32::NAN, 2.0, 9.0],
            current_loss: 0.5,
            trajectory: vec![],
            explained: None,
            line: vec![],
            step: 0,
        };
        assert_eq!(s.centre(), 0.5);
        assert_eq!(s.range(), (0.5, 9.0));
        assert_eq!(prefscope_core::studies::landscape::pca_extent(&[[0.0, 0.0], [-2.0, 0.4]], 0.1), (2.5, 0.5));
    }
}

#[cfg(test)]
mod shader_tests {
    /// The WGSL parses and validates (what the browser's `createShaderModule` would reject).
    #[test]
    fn landscape_shader_is_valid_wgsl() {
        let source = include_str!("../../../shaders/landscape.wgsl");
        let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{}", e.emit_to_string(source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let entries: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(entries, ["vs", "fs"]);
    }
}
