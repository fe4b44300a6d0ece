//! The preference-direction dial's pure parts: ranking candidates by v·r, their Pareto front,
//! turning pointer positions and keys into a direction on the circle (two objectives) or weights
//! on the simplex (three or more). No browser types (host unit tests).

/// v·r.
pub fn dot(v: &[f64], r: &[f64]) -> f64 {
    v.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// Candidates by the directed reward v·r, best first (ties keep index order).
pub fn ranking<R: AsRef<[f64]>>(rewards: &[R], v: &[f64]) -> Vec<usize> {
    let score = |i: usize| dot(v, rewards[i].as_ref());
    let mut order: Vec<usize> = (0..rewards.len()).collect();
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    order
}

/// The policy tab's candidates in its two-objective mode, (r1, r2) each: the ends of the front,
/// a balanced response that wins near 45°, two leaning ones that win in narrow ranges (about
/// 21°–27° and 63°–69°) and three dominated ones. At 0°, 45° and 90° the best leads the next by
/// at least 0.28, so a small β makes it the policy's favourite whatever the reference policy.
pub const BANDIT_OBJECTIVES: [[f64; 2]; 8] = [[3.0, 0.0], [0.0, 3.0], [2.1, 2.1], [2.5, 1.3], [1.3, 2.5], [1.0, 1.0], [1.5, 0.3], [0.3, 1.5]];

/// The scalar rewards v·r that the policy is trained on for direction `v`.
pub fn directed(rewards: &[[f64; 2]], v: [f64; 2]) -> Vec<f64> {
    rewards.iter().map(|r| v[0] * r[0] + v[1] * r[1]).collect()
}

/// The non-dominated candidates (no other is at least as good on every objective and better on
/// one), ordered by the first objective descending, so with two objectives they trace the front
/// from one end to the other.
pub fn pareto_front<R: AsRef<[f64]>>(rewards: &[R]) -> Vec<usize> {
    let dominates = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x >= y) && a.iter().zip(b).any(|(x, y)| x > y);
    let mut front: Vec<usize> = (0..rewards.len()).filter(|&i| !rewards.iter().any(|o| dominates(o.as_ref(), rewards[i].as_ref()))).collect();
    front.sort_by(|&a, &b| rewards[b].as_ref()[0].total_cmp(&rewards[a].as_ref()[0]));
    front
}

/// Simplex weights in whole percent for `k` objectives: `w` when it has `k` entries summing to
/// 100, else equal shares (the first ones take the remainder).
pub fn weights_or_equal(w: &[u32], k: usize) -> Vec<u32> {
    if w.len() == k && w.iter().sum::<u32>() == 100 {
        return w.to_vec();
    }
    (0..k as u32).map(|j| 100 / k as u32 + u32::from(j < 100 % k as u32)).collect()
}

/// Weights as fractions summing to 1 (the score is w·r).
pub fn fractions(w: &[u32]) -> Vec<f64> {
    w.iter().map(|&x| x as f64 / 100.0).collect()
}

/// Set objective `j`'s weight to `x`% and share the rest among the others in proportion to their
/// weights (equally when they are all 0), in whole percent summing to 100.
pub fn set_weight(w: &[u32], j: usize, x: u32) -> Vec<u32> {
    let x = x.min(100);
    let rest = 100 - x;
    let others: u32 = w.iter().enumerate().filter(|&(i, _)| i != j).map(|(_, &v)| v).sum();
    let n_others = w.len().saturating_sub(1).max(1) as f64;
    let share = |i: usize| if others == 0 { rest as f64 / n_others } else { rest as f64 * w[i] as f64 / others as f64 };
    round_to_100(&(0..w.len()).map(|i| if i == j { x as f64 } else { share(i) }).collect::<Vec<_>>(), j)
}

/// Largest-remainder rounding of percentages that sum to 100, keeping entry `keep` exact.
fn round_to_100(p: &[f64], keep: usize) -> Vec<u32> {
    let mut out: Vec<u32> = p.iter().map(|x| x.floor().max(0.0) as u32).collect();
    let short = 100u32.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| i != keep || p.len() == 1).collect();
    order.sort_by(|&a, &b| (p[b] - p[b].floor()).total_cmp(&(p[a] - p[a].floor())).then(a.cmp(&b)));
    for &i in order.iter().cycle().take(short as usize) {
        out[i] += 1;
    }
    out
}

/// The simplex of three weights drawn as a triangle: objective 1 at the bottom left, 2 at the
/// bottom right, 3 at the top, in a `size`-wide box (y down) with `pad` around it.
pub fn simplex_corners(size: f64, pad: f64) -> [(f64, f64); 3] {
    let side = size - 2.0 * pad;
    let h = side * 3f64.sqrt() / 2.0;
    let bottom = pad + (size - 2.0 * pad + h) / 2.0;
    [(pad, bottom), (size - pad, bottom), (size / 2.0, bottom - h)]
}

/// The point of weights `w` (fractions summing to 1) in the triangle.
pub fn simplex_point(corners: &[(f64, f64); 3], w: &[f64]) -> (f64, f64) {
    (0..3).fold((0.0, 0.0), |(x, y), j| (x + w[j] * corners[j].0, y + w[j] * corners[j].1))
}

/// The weights (whole percent, summing to 100) of the triangle point nearest to (x, y):
/// barycentric coordinates, clamped to the triangle.
pub fn simplex_weights(corners: &[(f64, f64); 3], x: f64, y: f64) -> Vec<u32> {
    let [(x0, y0), (x1, y1), (x2, y2)] = *corners;
    let det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2);
    let a = ((y1 - y2) * (x - x2) + (x2 - x1) * (y - y2)) / det;
    let b = ((y2 - y0) * (x - x2) + (x0 - x2) * (y - y2)) / det;
    let raw = [a, b, 1.0 - a - b].map(|v| v.max(0.0));
    let total: f64 = raw.iter().sum();
    round_to_100(&raw.map(|v| 100.0 * v / total), usize::MAX)
}

/// Which candidate wins (largest w·r) over the simplex of three weights, on a triangular grid of
/// `n` steps per side: each small triangle as its three corner weights and its winner (taken at
/// its centroid), so the picture shows each candidate's region of the simplex.
pub fn simplex_winners<R: AsRef<[f64]>>(rewards: &[R], n: usize) -> Vec<([[f64; 3]; 3], usize)> {
    let at = |i: usize, j: usize| {
        let (a, b) = (i as f64 / n as f64, j as f64 / n as f64);
        [1.0 - a - b, a, b]
    };
    let mut out = Vec::with_capacity(n * n);
    for j in 0..n {
        for i in 0..n - j {
            let mut tris = vec![[at(i, j), at(i + 1, j), at(i, j + 1)]];
            if i + j + 1 < n {
                tris.push([at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)]);
            }
            for t in tris {
                let centroid: Vec<f64> = (0..3).map(|k| (t[0][k] + t[1][k] + t[2][k]) / 3.0).collect();
                out.push((t, ranking(rewards, &centroid)[0]));
            }
        }
    }
    out
}

/// The weights after a key press on the simplex, or None for keys it ignores: arrows move 1
/// point (Shift: 10) toward an objective (Right: 2, Left: 1, Up: 3, Down: away from 3), Home,
/// End and PageUp put all weight on objective 1, 2 and 3, `0` shares it equally.
pub fn simplex_after_key(key: &str, shift: bool, w: &[u32]) -> Option<Vec<u32>> {
    let by = if shift { 10 } else { 1 };
    let toward = |j: usize, d: i64| Some(set_weight(w, j, (w[j] as i64 + d).clamp(0, 100) as u32));
    match key {
        "ArrowRight" => toward(1, by),
        "ArrowLeft" => toward(0, by),
        "ArrowUp" => toward(2, by),
        "ArrowDown" => toward(2, -by),
        "Home" => Some(vec![100, 0, 0]),
        "End" => Some(vec![0, 100, 0]),
        "PageUp" => Some(vec![0, 0, 100]),
        "0" => Some(weights_or_equal(&[], 3)),
        _ => None,
    }
}

/// The direction (whole degrees, counter-clockwise from +x, in [0, 360)) of a pointer at
/// (`dx`, `dy`) from the dial's centre in screen coordinates (y down).
pub fn angle_of(dx: f64, dy: f64) -> u32 {
    ((-dy).atan2(dx).to_degrees().round() as i64).rem_euclid(360) as u32
}

/// The direction after a key press, or None for keys the dial ignores: arrows turn by 1°
/// (Shift: 10°), Page Up/Down by 15°, Home and End jump to the first and the second objective.
pub fn after_key(key: &str, shift: bool, deg: u32) -> Option<u32> {
    let by = |d: i64| Some(((deg as i64 + d).rem_euclid(360)) as u32);
    let small = if shift { 10 } else { 1 };
    match key {
        "ArrowUp" | "ArrowRight" => by(small),
        "ArrowDown" | "ArrowLeft" => by(-small),
        "PageUp" => by(15),
        "PageDown" => by(-15),
        "Home" => Some(0),
        "End" => Some(90),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: [[f64; 2]; 4] = [[3.0, 0.0], [0.0, 3.0], [2.0, 2.0], [1.0, 1.0]];

    #[test]
    fn ranking_follows_the_direction() {
        assert_eq!(ranking(&R, &[1.0, 0.0]), [0, 2, 3, 1]);
        assert_eq!(ranking(&R, &[0.0, 1.0]), [1, 2, 3, 0]);
        let diagonal = std::f64::consts::FRAC_1_SQRT_2;
        assert_eq!(ranking(&R, &[diagonal, diagonal])[0], 2, "the balanced response wins at 45°");
        assert_eq!(ranking(&R, &[-1.0, 0.0])[0], 1, "ties (1 and … ) break by index");
    }

    #[test]
    fn the_bandit_objectives_crown_a_different_response_per_direction() {
        let deg = |d: f64| [d.to_radians().cos(), d.to_radians().sin()];
        let best: Vec<usize> = [0.0, 24.0, 45.0, 66.0, 90.0].iter().map(|&d| ranking(&BANDIT_OBJECTIVES, &deg(d))[0]).collect();
        assert_eq!(best, [0, 3, 2, 4, 1]);
        for d in [0.0, 45.0, 90.0] {
            let mut r = directed(&BANDIT_OBJECTIVES, deg(d));
            r.sort_by(|a, b| b.total_cmp(a));
            assert!(r[0] - r[1] >= 0.28, "at {d}° the best leads by only {}", r[0] - r[1]);
        }
    }

    #[test]
    fn pareto_front_drops_dominated_candidates() {
        assert_eq!(pareto_front(&R), [0, 2, 1]);
        assert_eq!(pareto_front(&[[1.0, 1.0], [1.0, 1.0]]), [0, 1], "equal points do not dominate each other");
        // Three objectives: (1,1,1) is dominated by (2,1,1) only.
        let r3 = [[2.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]];
        assert_eq!(pareto_front(&r3), [0, 2, 3]);
        assert_eq!(ranking(&r3, &[0.0, 0.0, 1.0])[0], 3);
    }

    const R3: [[f64; 3]; 4] = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [1.2, 1.2, 1.2]];

    #[test]
    fn weights_stay_whole_percent_summing_to_100() {
        assert_eq!(weights_or_equal(&[], 3), [34, 33, 33]);
        assert_eq!(weights_or_equal(&[50, 50], 3), [34, 33, 33], "wrong length: equal shares");
        assert_eq!(weights_or_equal(&[60, 30, 20], 3), [34, 33, 33], "not summing to 100");
        assert_eq!(weights_or_equal(&[60, 30, 10], 3), [60, 30, 10]);
        assert_eq!(set_weight(&[60, 30, 10], 0, 40), [40, 45, 15], "the rest keeps its 3:1 proportion");
        assert_eq!(set_weight(&[100, 0, 0], 0, 40), [40, 30, 30], "all others at 0 share equally");
        assert_eq!(set_weight(&[34, 33, 33], 2, 100), [0, 0, 100]);
        for (w, j, x) in [([25, 25, 25, 25], 1, 37), ([1, 2, 97, 0], 3, 55), ([33, 33, 34, 0], 0, 1)] {
            let out = set_weight(&w, j, x);
            assert_eq!((out.iter().sum::<u32>(), out[j]), (100, x), "{w:?} → {out:?}");
        }
        assert_eq!(fractions(&[50, 25, 25]), [0.5, 0.25, 0.25]);
    }

    #[test]
    fn simplex_points_and_weights_invert() {
        let c = simplex_corners(200.0, 20.0);
        assert_eq!(simplex_weights(&c, c[0].0, c[0].1), [100, 0, 0]);
        assert_eq!(simplex_weights(&c, c[2].0, c[2].1), [0, 0, 100]);
        for w in [[50u32, 30, 20], [10, 10, 80], [0, 100, 0], [34, 33, 33]] {
            let (x, y) = simplex_point(&c, &fractions(&w));
            assert_eq!(simplex_weights(&c, x, y), w);
        }
        // Outside the triangle (below the bottom edge's middle): clamped onto the edge.
        assert_eq!(simplex_weights(&c, 100.0, c[0].1 + 40.0), [50, 50, 0]);
    }

    #[test]
    fn simplex_regions_belong_to_each_objectives_best() {
        let cells = simplex_winners(&R3, 12);
        assert_eq!(cells.len(), 144, "n² small triangles");
        let winner_at = |w: [f64; 3]| cells.iter().find(|(t, _)| t.iter().any(|c| c.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-12))).map(|c| c.1);
        assert_eq!(winner_at([1.0, 0.0, 0.0]), Some(0));
        assert_eq!(winner_at([0.0, 1.0, 0.0]), Some(1));
        assert_eq!(winner_at([0.0, 0.0, 1.0]), Some(2));
        // The balanced candidate (1.2 each, above 3/3 = 1) wins in the middle.
        let middle = cells.iter().min_by(|a, b| {
            let d = |t: &[[f64; 3]; 3]| (0..3).map(|k| ((t[0][k] + t[1][k] + t[2][k]) / 3.0 - 1.0 / 3.0).powi(2)).sum::<f64>();
            d(&a.0).total_cmp(&d(&b.0))
        });
        assert_eq!(middle.unwrap().1, 3);
        for (t, best) in &cells {
            for corner in t {
                assert!((corner.iter().sum::<f64>() - 1.0).abs() < 1e-12 && corner.iter().all(|&x| x >= -1e-12));
            }
            let centroid: Vec<f64> = (0..3).map(|k| (t[0][k] + t[1][k] + t[2][k]) / 3.0).collect();
            assert!(R3.iter().all(|r| dot(&centroid, r) <= dot(&centroid, &R3[*best]) + 1e-12));
        }
    }

    #[test]
    fn simplex_keys_move_weight_between_objectives() {
        assert_eq!(simplex_after_key("ArrowRight", false, &[34, 33, 33]), Some(vec![33, 34, 33]));
        assert_eq!(simplex_after_key("ArrowUp", true, &[34, 33, 33]), Some(vec![29, 28, 43]));
        assert_eq!(simplex_after_key("ArrowDown", false, &[50, 50, 0]), Some(vec![50, 50, 0]), "already 0");
        assert_eq!(simplex_after_key("End", false, &[34, 33, 33]), Some(vec![0, 100, 0]));
        assert_eq!(simplex_after_key("x", false, &[34, 33, 33]), None);
    }

    #[test]
    fn pointer_angles_are_counter_clockwise_with_y_down() {
        assert_eq!(angle_of(10.0, 0.0), 0);
        assert_eq!(angle_of(0.0, -10.0), 90, "above the centre");
        assert_eq!(angle_of(-10.0, 0.0), 180);
        assert_eq!(angle_of(0.0, 10.0), 270);
        assert_eq!(angle_of(10.0, 0.1), 359);
    }

    #[test]
    fn keys_turn_and_wrap() {
        assert_eq!(after_key("ArrowUp", false, 359), Some(0));
        assert_eq!(after_key("ArrowLeft", true, 5), Some(355));
        assert_eq!(after_key("PageUp", false, 80), Some(95));
        assert_eq!(after_key("End", false, 10), Some(90));
        assert_eq!(after_key("a", false, 10), None);
    }
}
