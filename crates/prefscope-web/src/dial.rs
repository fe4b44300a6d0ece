//! The preference-direction dial's pure parts: ranking candidates by v·r, their Pareto front, and
//! turning pointer positions and keys into a direction. No browser types (host unit tests).

/// Candidates by the directed reward v·r, best first (ties keep index order).
pub fn ranking(rewards: &[[f64; 2]], v: [f64; 2]) -> Vec<usize> {
    let score = |i: usize| v[0] * rewards[i][0] + v[1] * rewards[i][1];
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

/// The non-dominated candidates (no other is at least as good on both objectives and better on
/// one), ordered by the first objective descending, so they trace the front from one end to the
/// other.
pub fn pareto_front(rewards: &[[f64; 2]]) -> Vec<usize> {
    let dominates = |a: &[f64; 2], b: &[f64; 2]| a[0] >= b[0] && a[1] >= b[1] && (a[0] > b[0] || a[1] > b[1]);
    let mut front: Vec<usize> = (0..rewards.len()).filter(|&i| !rewards.iter().any(|o| dominates(o, &rewards[i]))).collect();
    front.sort_by(|&a, &b| rewards[b][0].total_cmp(&rewards[a][0]));
    front
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
        assert_eq!(ranking(&R, [1.0, 0.0]), [0, 2, 3, 1]);
        assert_eq!(ranking(&R, [0.0, 1.0]), [1, 2, 3, 0]);
        let diagonal = std::f64::consts::FRAC_1_SQRT_2;
        assert_eq!(ranking(&R, [diagonal, diagonal])[0], 2, "the balanced response wins at 45°");
        assert_eq!(ranking(&R, [-1.0, 0.0])[0], 1, "ties (1 and … ) break by index");
    }

    #[test]
    fn the_bandit_objectives_crown_a_different_response_per_direction() {
        let deg = |d: f64| [d.to_radians().cos(), d.to_radians().sin()];
        let best: Vec<usize> = [0.0, 24.0, 45.0, 66.0, 90.0].iter().map(|&d| ranking(&BANDIT_OBJECTIVES, deg(d))[0]).collect();
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
