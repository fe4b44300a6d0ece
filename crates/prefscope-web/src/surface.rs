//! The decision surface of a model over a 2-D feature space, as TensorFlow Playground draws it:
//! every point of a grid coloured by what the model computes there. Pure parts (host tests).

use serde::{Deserialize, Serialize};

/// What the model computes at each grid point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Field {
    /// A scalar reward r(x) (Bradley–Terry).
    Reward(Vec<f32>),
    /// Attribute rewards r(x) ∈ Rᵏ (multi-objective), `k` per point; coloured by v·r for the
    /// dial's v.
    Objectives { k: usize, values: Vec<f32> },
    /// The angle of the first GPM block's embedding: a cyclic preference is a hue wheel.
    Angle(Vec<f32>),
}

/// A model's field on an `n × n` grid over `[-extent, extent]²`, row-major, top row first
/// (the order of canvas pixels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionSurface {
    pub n: usize,
    pub extent: f32,
    pub field: Field,
    pub step: usize,
}

/// The grid's feature-space points, top row first.
pub fn grid_points(n: usize, extent: f32) -> Vec<[f32; 2]> {
    let at = |k: usize| if n < 2 { 0.0 } else { -extent + 2.0 * extent * k as f32 / (n - 1) as f32 };
    (0..n).flat_map(|row| (0..n).map(move |col| [at(col), at(n - 1 - row)])).collect()
}

impl DecisionSurface {
    /// The scalar each pixel shows: the reward, v·r, or the angle in turns [0, 1).
    pub fn scalars(&self, v: &[f64]) -> Vec<f64> {
        match &self.field {
            Field::Reward(r) => r.iter().map(|&x| x as f64).collect(),
            Field::Objectives { k, values } => values.chunks(*k).map(|x| x.iter().zip(v).map(|(&a, b)| a as f64 * b).sum()).collect(),
            Field::Angle(a) => a.iter().map(|&x| (x as f64 / std::f64::consts::TAU).rem_euclid(1.0)).collect(),
        }
    }

    /// RGBA pixels, `n × n`: rewards on viridis (low purple, high yellow), angles as hues.
    pub fn pixels(&self, v: &[f64]) -> Vec<u8> {
        let s = self.scalars(v);
        let (lo, hi) = s.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        s.iter()
            .flat_map(|&x| {
                let [r, g, b] = match self.field {
                    Field::Angle(_) => hsl_to_rgb(x, 0.7, 0.62),
                    _ => crate::landscape::viridis(if hi > lo { (x - lo) / (hi - lo) } else { 0.5 }),
                };
                [r, g, b, 255]
            })
            .collect()
    }
}

/// HSL (hue in turns) to RGB, as CSS `hsl()` does.
pub fn hsl_to_rgb(h: f64, s: f64, l: f64) -> [u8; 3] {
    let a = s * l.min(1.0 - l);
    let f = |n: f64| {
        let k = (n + h * 12.0).rem_euclid(12.0);
        let v = l - a * (k - 3.0).min(9.0 - k).clamp(-1.0, 1.0);
        (v * 255.0).round() as u8
    };
    [f(0.0), f(8.0), f(4.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_runs_left_to_right_then_top_to_bottom() {
        let g = grid_points(3, 1.0);
        assert_eq!(g[0], [-1.0, 1.0]);
        assert_eq!(g[2], [1.0, 1.0]);
        assert_eq!(g[4], [0.0, 0.0]);
        assert_eq!(g[8], [1.0, -1.0]);
    }

    #[test]
    fn objectives_follow_the_direction() {
        let pts = grid_points(5, 2.0);
        let s = DecisionSurface { n: 5, extent: 2.0, field: Field::Objectives { k: 2, values: pts.iter().flatten().copied().collect() }, step: 0 };
        // Row 2 (the middle), column 4 (the right edge) is the point (2, 0).
        assert_eq!(s.scalars(&[1.0, 0.0])[2 * 5 + 4], 2.0);
        // Row 1, column 2 is (0, 1).
        assert_eq!(s.scalars(&[0.0, 1.0])[5 + 2], 1.0);
        let px = s.pixels(&[1.0, 0.0]);
        assert_eq!(px.len(), 5 * 5 * 4);
        assert_eq!(&px[0..3], &crate::landscape::viridis(0.0), "the left edge is the lowest v·r");
        // Three objectives (x, y, x + y) weighed (0.5, 0, 0.5): at (2, 0) that is 1 + 1.
        let three = DecisionSurface { n: 5, extent: 2.0, field: Field::Objectives { k: 3, values: pts.iter().flat_map(|p| [p[0], p[1], p[0] + p[1]]).collect() }, step: 0 };
        assert_eq!(three.scalars(&[0.5, 0.0, 0.5])[2 * 5 + 4], 2.0);
    }

    #[test]
    fn angles_are_hues() {
        assert_eq!(hsl_to_rgb(0.0, 1.0, 0.5), [255, 0, 0]);
        assert_eq!(hsl_to_rgb(1.0 / 3.0, 1.0, 0.5), [0, 255, 0]);
        let s = DecisionSurface { n: 1, extent: 1.0, field: Field::Angle(vec![-std::f32::consts::FRAC_PI_2]), step: 0 };
        assert!((s.scalars(&[1.0, 0.0])[0] - 0.75).abs() < 1e-6, "−90° is three quarters of a turn");
    }
}
