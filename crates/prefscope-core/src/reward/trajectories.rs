//! Trajectory-segment preferences in a small gridworld: regret vs partial return (Knox et al.,
//! arXiv 2206.02231) and HERON's hierarchical labels.
//!
//! People asked to compare two short clips of behaviour seem to judge how *good a decision* each
//! clip shows (its regret), not how much reward happened to be collected in it (its partial
//! return). Knox et al. show that if labels come from regret, fitting the partial-return model
//! can recover a reward whose optimal policy is wrong, while fitting the regret model recovers
//! the right one. [`GridWorld::standard`] is built so that this happens (see its doc comment);
//! the tests check the claim end to end.
//!
//! Everything about the MDP (values, segments, labels) is exact f64 arithmetic on the host;
//! only the two reward models are burn modules, so they train on any backend. The regret model
//! computes V* of its *learned* reward inside the forward pass by soft value iteration.

use std::cmp::Ordering;

use burn::module::{AutodiffModule, Module, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData, activation::softmax};

use crate::reward::loss::pairwise_logistic_loss;
use crate::runtime::rng::Rng;
use crate::{Error, Result, config_error};

/// Features of a transition: `[step, goal, mud]`.
pub const N_FEATURES: usize = 3;
pub const FEATURE_NAMES: [&str; N_FEATURES] = ["step", "goal", "mud"];
/// The known reward r = w·φ: every step costs 1, reaching the goal pays 2, ending a step in
/// mud costs 1.5 more. 1.5 < 2 is what makes the mud shortcut worth it (see [`GridWorld::standard`]).
pub const TRUE_WEIGHTS: [f64; N_FEATURES] = [-1.0, 2.0, -1.5];
/// Actions: up, down, left, right.
pub const N_ACTIONS: usize = 4;
pub const ACTION_ARROWS: [char; N_ACTIONS] = ['↑', '↓', '←', '→'];
/// Every segment has this many actions; random ones take them all before any terminal, so the
/// step feature sums to this in every random segment.
pub const SEGMENT_LEN: usize = 3;
/// HERON's importance order over the factors: reaching the goal first, then avoiding mud, then
/// taking fewer steps.
pub const HERON_HIERARCHY: [usize; N_FEATURES] = [1, 2, 0];
/// HERON's σ_ℓ per level: a level decides only if the factors differ by more than σ_ℓ · std.
pub const HERON_SIGMA: [f64; N_FEATURES] = [0.5, 0.5, 0.5];
/// Actions whose Q values are this close to the best are all optimal.
const TIE: f64 = 1e-6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    Floor,
    Mud,
    Goal,
}

/// A deterministic gridworld with absorbing goal cells and linear rewards r(s, a, s') = w·φ(s, a, s').
#[derive(Clone, Debug)]
pub struct GridWorld {
    width: usize,
    height: usize,
    /// (x, y) of each state.
    cells: Vec<(usize, usize)>,
    kind: Vec<Cell>,
    /// s' = next[s][a].
    next: Vec<[usize; N_ACTIONS]>,
}

/// A segment of `actions.len()` steps; `states[0] == start` and `states[t + 1]` follows `actions[t]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub actions: Vec<usize>,
    pub states: Vec<usize>,
}

impl Segment {
    pub fn end(&self) -> usize {
        *self.states.last().expect("a segment has at least its start state")
    }
}

/// How synthetic labels are produced from the true reward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelRule {
    #[default]
    /// P(σ1 ≻ σ2) = σ(Δer(σ1) − Δer(σ2)), Δer = Σ r + V*(s_end) − V*(s_start) (negated regret).
    Regret,
    /// P(σ1 ≻ σ2) = σ(Σ r(σ1) − Σ r(σ2)).
    PartialReturn,
    /// HERON's deterministic hierarchical comparison of the feature sums.
    Heron,
}

/// Labelled segment pairs ready for a pair dataset.
#[derive(Clone, Debug)]
pub struct TrajectoryPairs {
    pub segments: Vec<Segment>,
    /// Row-major `segments.len() × item_dim` rows of [`GridWorld::item_features`].
    pub items: Vec<f32>,
    pub item_dim: usize,
    /// (preferred, other) indices into `segments`.
    pub pairs: Vec<(usize, usize)>,
}

impl GridWorld {
    /// The demonstration map (5 × 5, 22 states), `~` mud, `G` goal, `#` wall:
    ///
    /// ```text
    /// . . . . .
    /// . . . . .
    /// # # ~ # .
    /// . . . . .
    /// . . G . .
    /// ```
    ///
    /// Why partial return fails here with regret-generated labels (Knox et al.'s identifiability
    /// argument: with equal-length segments that do not end early, partial return cannot see a
    /// reward that is constant per step):
    /// * Every random segment has exactly [`SEGMENT_LEN`] non-terminal steps (see
    ///   [`Self::random_segment`]), so the step feature sums to [`SEGMENT_LEN`] in every segment and
    ///   cancels from every partial-return difference: its gradient is exactly 0 and the fitted
    ///   weight stays at its initial 0. The goal (entered on a last step) and the mud are learnt.
    /// * Regret sees the step cost through V*(s_end) − V*(s_start), the progress toward the goal,
    ///   so the regret fit recovers it. (What regret cannot see is the goal bonus: every optimal
    ///   path ends in the goal, so it adds the same amount to V* of every non-terminal state and
    ///   cancels from Δer. That leaves the optimal policy unchanged, which is all that matters.)
    /// * From the cells above the wall the true optimum crosses through the mud gap, since the
    ///   mud-free east gap is at least 2 steps longer and 2 steps cost more than the mud's 1.5
    ///   (from the east column the two routes are equally long, so it takes the east gap). With no
    ///   step cost, wandering is free and the mud is not: the partial-return reward never walks
    ///   through the mud and is indifferent between all other moves, a different optimal policy.
    ///
    /// Without the redraw, the few segments that end in the goal early do tell partial return about
    /// the step cost: in our runs it then recovered about 60% of it, and its policy came out wrong
    /// for some samples and right for others, a less clear-cut demonstration.
    pub fn standard() -> Self {
        Self::from_map(&[".....", ".....", "##~#.", ".....", "..G.."]).expect("the standard map is valid")
    }

    /// Parse a map of `.` floor, `~` mud, `G` goal (absorbing) and `#` wall; rows top to bottom.
    pub fn from_map(rows: &[&str]) -> Result<Self> {
        let height = rows.len();
        let width = rows.first().map_or(0, |r| r.chars().count());
        if height == 0 || width == 0 || rows.iter().any(|r| r.chars().count() != width) {
            return Err(config_error("map", "rows must be non-empty and of equal length"));
        }
        let mut index = vec![None; width * height];
        let (mut cells, mut kind) = (vec![], vec![]);
        for (y, row) in rows.iter().enumerate() {
            for (x, c) in row.chars().enumerate() {
                let k = match c {
                    '.' => Cell::Floor,
                    '~' => Cell::Mud,
                    'G' => Cell::Goal,
                    '#' => continue,
                    _ => return Err(config_error("map", format!("unknown cell `{c}` (expected . ~ G #)"))),
                };
                index[y * width + x] = Some(cells.len());
                cells.push((x, y));
                kind.push(k);
            }
        }
        if !kind.contains(&Cell::Goal) {
            return Err(config_error("map", "needs at least one goal `G`"));
        }
        let next = cells
            .iter()
            .enumerate()
            .map(|(s, &(x, y))| {
                let go = |dx: isize, dy: isize| {
                    if kind[s] == Cell::Goal {
                        return s; // absorbing
                    }
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    let inside = (0..width as isize).contains(&nx) && (0..height as isize).contains(&ny);
                    // Bumping into a wall or the border leaves the agent where it is.
                    inside.then(|| index[ny as usize * width + nx as usize]).flatten().unwrap_or(s)
                };
                [go(0, -1), go(0, 1), go(-1, 0), go(1, 0)]
            })
            .collect();
        Ok(Self { width, height, cells, kind, next })
    }

    pub fn n_states(&self) -> usize {
        self.cells.len()
    }

    /// Length of a segment's item row: `[Σφ (F), one-hot(start) (S), one-hot(end) (S)]`.
    pub fn item_dim(&self) -> usize {
        N_FEATURES + 2 * self.n_states()
    }

    /// Value-iteration sweeps. Any simple path has fewer than S steps, so when every step costs
    /// (no loop pays) the values have converged well before 2S sweeps; rewards whose loops pay
    /// (possible for learned weights) get the 2S-step finite-horizon values instead of diverging.
    pub fn horizon(&self) -> usize {
        2 * self.n_states()
    }

    pub fn is_terminal(&self, s: usize) -> bool {
        self.kind[s] == Cell::Goal
    }

    pub fn step(&self, s: usize, a: usize) -> usize {
        self.next[s][a]
    }

    /// φ(s, a, s'): zero from a terminal (the episode is over), else `[1, s' is goal, s' is mud]`.
    pub fn features(&self, s: usize, a: usize) -> [f64; N_FEATURES] {
        if self.is_terminal(s) {
            return [0.0; N_FEATURES];
        }
        let k = self.kind[self.step(s, a)];
        [1.0, f64::from(k == Cell::Goal), f64::from(k == Cell::Mud)]
    }

    fn reward(&self, w: &[f64], s: usize, a: usize) -> f64 {
        self.features(s, a).iter().zip(w).map(|(f, w)| f * w).sum()
    }

    fn q(&self, w: &[f64], v: &[f64], s: usize, a: usize) -> f64 {
        self.reward(w, s, a) + v[self.step(s, a)]
    }

    /// V* of r = w·φ by undiscounted value iteration from V = 0, terminals pinned to 0, for at
    /// most [`Self::horizon`] sweeps (stopping early once a sweep changes nothing).
    pub fn optimal_values(&self, w: &[f64]) -> Vec<f64> {
        assert_eq!(w.len(), N_FEATURES, "one weight per feature");
        let mut v = vec![0.0; self.n_states()];
        for _ in 0..self.horizon() {
            let new: Vec<f64> = (0..self.n_states())
                .map(|s| if self.is_terminal(s) { 0.0 } else { (0..N_ACTIONS).map(|a| self.q(w, &v, s, a)).fold(f64::NEG_INFINITY, f64::max) })
                .collect();
            let done = new.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-12);
            v = new;
            if done {
                break;
            }
        }
        v
    }

    /// The optimal actions of every state (ties within 1e-6); empty for terminals.
    pub fn optimal_actions(&self, w: &[f64]) -> Vec<Vec<usize>> {
        let v = self.optimal_values(w);
        (0..self.n_states())
            .map(|s| {
                if self.is_terminal(s) {
                    return vec![];
                }
                let q: Vec<f64> = (0..N_ACTIONS).map(|a| self.q(w, &v, s, a)).collect();
                let best = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (0..N_ACTIONS).filter(|&a| q[a] >= best - TIE).collect()
            })
            .collect()
    }

    /// The segment that takes `actions` from `start` (staying put once in a terminal).
    pub fn segment(&self, start: usize, actions: &[usize]) -> Segment {
        let mut states = vec![start];
        for &a in actions {
            states.push(self.step(*states.last().unwrap(), a));
        }
        Segment { start, actions: actions.to_vec(), states }
    }

    /// A uniformly random non-terminal start and [`SEGMENT_LEN`] uniformly random actions, redrawn
    /// (up to 1000 times) while the segment would reach a terminal before its last step, so that
    /// every segment has exactly [`SEGMENT_LEN`] non-terminal steps (see [`Self::standard`]).
    pub fn random_segment(&self, rng: &mut Rng) -> Segment {
        let starts: Vec<usize> = (0..self.n_states()).filter(|&s| !self.is_terminal(s)).collect();
        let mut draw = || {
            let start = starts[rng.below(starts.len())];
            let actions: Vec<usize> = (0..SEGMENT_LEN).map(|_| rng.below(N_ACTIONS)).collect();
            self.segment(start, &actions)
        };
        let mut seg = draw();
        for _ in 0..1000 {
            if !seg.states[..SEGMENT_LEN].iter().any(|&s| self.is_terminal(s)) {
                break;
            }
            seg = draw();
        }
        seg
    }

    /// Σ_t φ(s_t, a_t) over the segment.
    pub fn feature_sums(&self, seg: &Segment) -> [f64; N_FEATURES] {
        let mut sum = [0.0; N_FEATURES];
        for (&s, &a) in seg.states.iter().zip(&seg.actions) {
            for (acc, f) in sum.iter_mut().zip(self.features(s, a)) {
                *acc += f;
            }
        }
        sum
    }

    /// The partial return Σ_t r_t of the segment under weights `w`.
    pub fn segment_return(&self, seg: &Segment, w: &[f64]) -> f64 {
        self.feature_sums(seg).iter().zip(w).map(|(f, w)| f * w).sum()
    }

    /// Δer(σ) = Σ r_t + V(s_end) − V(s_start) with `v` the optimal values of `w`; the negated
    /// regret in a deterministic MDP, so 0 exactly for segments that act optimally throughout.
    pub fn delta_er(&self, seg: &Segment, w: &[f64], v: &[f64]) -> f64 {
        self.segment_return(seg, w) + v[seg.end()] - v[seg.start]
    }

    /// The segment as an item row `[Σφ (F), one-hot(start) (S), one-hot(end) (S)]`.
    pub fn item_features(&self, seg: &Segment) -> Vec<f32> {
        let s = self.n_states();
        let mut row = vec![0.0f32; self.item_dim()];
        for (r, f) in row.iter_mut().zip(self.feature_sums(seg)) {
            *r = f as f32;
        }
        row[N_FEATURES + seg.start] = 1.0;
        row[N_FEATURES + s + seg.end()] = 1.0;
        row
    }

    /// HERON's factors: the feature sums oriented by the sign of the true weight, so that larger
    /// is better for every factor (more goal, less mud, fewer steps).
    pub fn heron_factors(&self, seg: &Segment) -> [f64; N_FEATURES] {
        let mut f = self.feature_sums(seg);
        for (x, w) in f.iter_mut().zip(TRUE_WEIGHTS) {
            *x *= w.signum();
        }
        f
    }

    /// `n_segments` random segments and `n_pairs` random pairs of distinct segments, labelled by
    /// `rule` under [`TRUE_WEIGHTS`]. Pairs the rule cannot order are dropped, so there may be
    /// fewer than `n_pairs`: for Regret and PartialReturn, ties after rounding the compared values
    /// to 2 decimals (as Knox et al.'s generator); for HERON, pairs no level decides.
    pub fn label_pairs(&self, n_segments: usize, n_pairs: usize, rule: LabelRule, rng: &mut Rng) -> TrajectoryPairs {
        let segments: Vec<Segment> = (0..n_segments).map(|_| self.random_segment(rng)).collect();
        let items = segments.iter().flat_map(|s| self.item_features(s)).collect();
        let v = self.optimal_values(&TRUE_WEIGHTS);
        let score: Vec<f64> = segments
            .iter()
            .map(|s| match rule {
                LabelRule::Regret => self.delta_er(s, &TRUE_WEIGHTS, &v),
                LabelRule::PartialReturn | LabelRule::Heron => self.segment_return(s, &TRUE_WEIGHTS),
            })
            .collect();
        let factors: Vec<[f64; N_FEATURES]> = segments.iter().map(|s| self.heron_factors(s)).collect();
        // σ_ℓ times the batch's (population) std of the factor at level ℓ.
        let margins: Vec<f64> = HERON_HIERARCHY.iter().zip(HERON_SIGMA).map(|(&k, sigma)| sigma * std_dev(factors.iter().map(|f| f[k]))).collect();
        let mut pairs = vec![];
        for _ in 0..if n_segments >= 2 { n_pairs } else { 0 } {
            let i = rng.below(n_segments);
            let j = (i + 1 + rng.below(n_segments - 1)) % n_segments;
            let i_wins = match rule {
                LabelRule::Heron => match heron_compare(&factors[i], &factors[j], &HERON_HIERARCHY, &margins) {
                    Some(o) => o == Ordering::Greater,
                    None => continue,
                },
                _ => {
                    if (score[i] * 100.0).round() == (score[j] * 100.0).round() {
                        continue;
                    }
                    rng.uniform() < sigmoid(score[i] - score[j])
                }
            };
            pairs.push(if i_wins { (i, j) } else { (j, i) });
        }
        TrajectoryPairs { segments, items, item_dim: self.item_dim(), pairs }
    }

    /// The policy as text, one cell per state: its optimal arrows (`~` marks mud, `G` goal).
    pub fn render_policy(&self, actions: &[Vec<usize>]) -> String {
        let mut out = String::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let cell = match self.cells.iter().position(|&c| c == (x, y)) {
                    None => "#####".to_string(),
                    Some(s) if self.is_terminal(s) => "  G  ".to_string(),
                    Some(s) => {
                        let arrows: String = actions[s].iter().map(|&a| ACTION_ARROWS[a]).collect();
                        let mark = if self.kind[s] == Cell::Mud { '~' } else { ' ' };
                        format!("{mark}{arrows:<4}")
                    }
                };
                out.push_str(&cell);
                out.push(' ');
            }
            out.push('\n');
        }
        out
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn std_dev(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = xs.clone().count().max(1) as f64;
    let mean = xs.clone().sum::<f64>() / n;
    (xs.map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// HERON's comparison of factor vectors `a` and `b`: walk `hierarchy` (most important factor
/// first); at level ℓ, a ≻ b if a[h_ℓ] > b[h_ℓ] + margins[ℓ], b ≻ a if the reverse, else go on.
/// `Greater` means a is preferred; None if no level decides.
pub fn heron_compare(a: &[f64], b: &[f64], hierarchy: &[usize], margins: &[f64]) -> Option<Ordering> {
    hierarchy.iter().zip(margins).find_map(|(&k, &m)| {
        if a[k] > b[k] + m {
            Some(Ordering::Greater)
        } else if b[k] > a[k] + m {
            Some(Ordering::Less)
        } else {
            None
        }
    })
}

/// A reward model over segment item rows, as [`fit`] trains it.
pub trait SegmentModel<B: Backend>: Module<B> {
    /// ℓ = log-odds that each chosen segment is preferred to its rejected one.
    fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>) -> Tensor<B, 1>;
    /// The learned linear reward weights w.
    fn weights(&self) -> Vec<f64>;
}

fn read_weights<B: Backend>(w: &Param<Tensor<B, 1>>) -> Vec<f64> {
    w.val().into_data().iter::<f64>().collect()
}

/// Partial-return model: P(σ1 ≻ σ2) = σ(w·(Σφ(σ1) − Σφ(σ2))).
#[derive(Module, Debug)]
pub struct PartialReturnModel<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
}

impl<B: Backend> PartialReturnModel<B> {
    /// w = 0.
    pub fn new(device: &B::Device) -> Self {
        Self { weight: Param::from_tensor(Tensor::zeros([N_FEATURES], device)) }
    }

    pub fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = chosen.dims()[0];
        (chosen - rejected).narrow(1, 0, N_FEATURES).matmul(self.weight.val().unsqueeze_dim(1)).reshape([n])
    }

    pub fn weights(&self) -> Vec<f64> {
        read_weights(&self.weight)
    }
}

impl<B: Backend> SegmentModel<B> for PartialReturnModel<B> {
    fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>) -> Tensor<B, 1> {
        PartialReturnModel::logits(self, chosen, rejected)
    }
    fn weights(&self) -> Vec<f64> {
        PartialReturnModel::weights(self)
    }
}

/// Regret model: P(σ1 ≻ σ2) = σ(Δer(σ1) − Δer(σ2)) with Δer = w·Σφ + V(s_end) − V(s_start) and
/// V the soft optimal values of the learned w, recomputed (differentiably) in every forward pass.
#[derive(Module, Debug)]
pub struct RegretModel<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    /// φ(s, a) in row s·A + a: `[S·A, F]` (constant).
    pub features: Tensor<B, 2>,
    /// s' of (s, a) in row s·A + a: `[S·A]` (constant).
    pub next: Tensor<B, 1, Int>,
    /// 1 for non-terminal states, 0 for terminals, whose value is pinned to 0: `[S]` (constant).
    pub live: Tensor<B, 1>,
    /// Soft-max temperature T of the value backup.
    #[module(skip)]
    pub temperature: f64,
    /// Number of backups H from V = 0.
    #[module(skip)]
    pub horizon: usize,
}

impl<B: Backend> RegretModel<B> {
    /// w = 0, T = 0.05 (close to the hard max on this map's value gaps of ≥ 0.5, yet smooth),
    /// H = [`GridWorld::horizon`].
    pub fn new(world: &GridWorld, device: &B::Device) -> Self {
        let (s, a) = (world.n_states(), N_ACTIONS);
        let feats: Vec<f64> = (0..s * a).flat_map(|k| world.features(k / a, k % a)).collect();
        let next: Vec<i64> = (0..s * a).map(|k| world.step(k / a, k % a) as i64).collect();
        let live: Vec<f64> = (0..s).map(|s| f64::from(!world.is_terminal(s))).collect();
        Self {
            weight: Param::from_tensor(Tensor::zeros([N_FEATURES], device)),
            features: Tensor::from_data(TensorData::new(feats, [s * a, N_FEATURES]), device),
            next: Tensor::from_data(TensorData::new(next, [s * a]), device),
            live: Tensor::from_data(TensorData::new(live, [s]), device),
            temperature: 0.05,
            horizon: world.horizon(),
        }
    }

    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = temperature;
        self
    }

    /// Soft value iteration: Q(s, a) = w·φ(s, a) + V(s'), V(s) = Σ_a softmax(Q(s, ·)/T)_a Q(s, a)
    /// (Knox et al.'s form: unlike T·logsumexp it adds nothing for tied actions, so it tends to
    /// V* as T → 0 without a T·log(#ties) bias per backup). `[S]`.
    pub fn soft_values(&self) -> Tensor<B, 1> {
        let [s] = self.live.dims();
        let a = self.features.dims()[0] / s;
        // The constants follow the weights' type (a mixed-precision step casts only the weights).
        let w = self.weight.val();
        let live = self.live.clone().cast(w.dtype());
        let r = self.features.clone().cast(w.dtype()).matmul(w.unsqueeze_dim(1)).reshape([s * a]);
        let mut v = live.zeros_like();
        for _ in 0..self.horizon {
            let q = (r.clone() + v.select(0, self.next.clone())).reshape([s, a]);
            let p = softmax(q.clone().div_scalar(self.temperature), 1);
            v = (p * q).sum_dim(1).reshape([s]) * live.clone();
        }
        v
    }

    /// Δer(chosen) − Δer(rejected). Δer is linear in the item row [Σφ, e_start, e_end] for a fixed
    /// V, so this is (chosen − rejected)·[w, −V, V]: V(s_start) and V(s_end) come from the one-hot
    /// columns by one matmul.
    pub fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = chosen.dims()[0];
        let v = self.soft_values();
        let coef = Tensor::cat(vec![self.weight.val(), v.clone().neg(), v], 0);
        (chosen - rejected).matmul(coef.unsqueeze_dim(1)).reshape([n])
    }

    pub fn weights(&self) -> Vec<f64> {
        read_weights(&self.weight)
    }
}

impl<B: Backend> SegmentModel<B> for RegretModel<B> {
    fn logits(&self, chosen: Tensor<B, 2>, rejected: Tensor<B, 2>) -> Tensor<B, 1> {
        RegretModel::logits(self, chosen, rejected)
    }
    fn weights(&self) -> Vec<f64> {
        RegretModel::weights(self)
    }
}

/// What [`fit`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    pub weights: Vec<f64>,
    /// Mean −log σ(ℓ) over the pairs, evaluated at the start of the last step.
    pub final_loss: f64,
}

/// Full-batch Adam on mean −log σ(ℓ) over all pairs (the data set is small, so every step sees
/// the exact objective).
pub fn fit<B: AutodiffBackend, M: SegmentModel<B> + AutodiffModule<B>>(mut model: M, data: &TrajectoryPairs, steps: usize, lr: f64, device: &B::Device) -> Result<Fit> {
    if data.pairs.is_empty() {
        return Err(config_error("pairs", "no labelled pairs to fit"));
    }
    if steps == 0 || !(lr > 0.0 && lr.is_finite()) {
        return Err(config_error("steps/lr", "need at least one step and a positive learning rate"));
    }
    let n = data.segments.len();
    if data.item_dim == 0 || data.items.len() != n * data.item_dim || data.pairs.iter().any(|&(c, r)| c.max(r) >= n) {
        return Err(config_error("items", "need one item row of item_dim values per segment, and pairs that index them"));
    }
    let items = Tensor::<B, 2>::from_data(TensorData::new(data.items.clone(), [n, data.item_dim]), device);
    let idx = |f: fn(&(usize, usize)) -> usize| {
        let v: Vec<i64> = data.pairs.iter().map(|p| f(p) as i64).collect();
        Tensor::<B, 1, Int>::from_data(TensorData::new(v, [data.pairs.len()]), device)
    };
    let chosen = items.clone().select(0, idx(|p| p.0));
    let rejected = items.select(0, idx(|p| p.1));
    let mut optim = AdamConfig::new().init();
    let mut final_loss = f64::NAN;
    for step in 1..=steps {
        let loss = pairwise_logistic_loss(model.logits(chosen.clone(), rejected.clone()));
        final_loss = loss.clone().into_scalar().elem::<f64>();
        if !final_loss.is_finite() {
            return Err(Error::NonFinite { step, value: final_loss as f32 });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    Ok(Fit { weights: model.weights(), final_loss })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};

    type Ad = Autodiff<NdArray<f64>>;

    /// Fits both models to the same regret labels; returns (regret fit, partial-return fit).
    fn fit_both<B: AutodiffBackend>(world: &GridWorld, data: &TrajectoryPairs) -> (Fit, Fit) {
        let device = Default::default();
        let regret = fit::<B, _>(RegretModel::new(world, &device), data, 300, 0.05, &device).unwrap();
        let pr = fit::<B, _>(PartialReturnModel::new(&device), data, 300, 0.05, &device).unwrap();
        (regret, pr)
    }

    #[test]
    fn regret_fit_recovers_the_optimal_policy_and_partial_return_does_not() {
        let world = GridWorld::standard();
        let data = world.label_pairs(300, 2000, LabelRule::Regret, &mut Rng::new(11));
        let truth = world.optimal_actions(&TRUE_WEIGHTS);
        eprintln!("{} pairs; features {FEATURE_NAMES:?}; true w {TRUE_WEIGHTS:?}", data.pairs.len());
        eprintln!("true policy:\n{}", world.render_policy(&truth));
        // f64 for the record; f32 because that is what the trainer's backends run.
        for (precision, (regret, pr)) in [("f64", fit_both::<Ad>(&world, &data)), ("f32", fit_both::<Autodiff<Flex>>(&world, &data))] {
            let (by_regret, by_pr) = (world.optimal_actions(&regret.weights), world.optimal_actions(&pr.weights));
            eprintln!("[{precision}] regret fit w = {:.3?} (loss {:.4}):\n{}", regret.weights, regret.final_loss, world.render_policy(&by_regret));
            eprintln!("[{precision}] partial-return fit w = {:.3?} (loss {:.4}):\n{}", pr.weights, pr.final_loss, world.render_policy(&by_pr));
            assert_eq!(by_regret, truth, "[{precision}] the regret model's reward must induce the true optimal actions");
            let wrong = (0..world.n_states()).filter(|&s| by_pr[s] != truth[s]).count();
            eprintln!("[{precision}] partial return's optimal actions differ from the truth in {wrong} of {} states", world.n_states());
            assert!(wrong > 0, "[{precision}] the partial-return model should get some state wrong");
            // Where the true optimum walks into the mud, the partial-return reward takes the detour.
            let into_mud = |s: usize, a: usize| world.kind[world.step(s, a)] == Cell::Mud && world.step(s, a) != s;
            let mut mud_moves = 0;
            for s in 0..world.n_states() {
                for &a in truth[s].iter().filter(|&&a| into_mud(s, a)) {
                    assert!(!by_pr[s].contains(&a), "[{precision}] state {s}: partial return should avoid the mud");
                    mud_moves += 1;
                }
            }
            assert!(mud_moves > 0, "the map must have an optimal path through the mud");
            assert!(regret.final_loss < pr.final_loss, "[{precision}] the well-specified model fits the labels better");
        }
    }

    #[test]
    fn partial_return_labels_fit_by_partial_return_recover_all_but_the_step_cost() {
        let world = GridWorld::standard();
        let data = world.label_pairs(300, 2000, LabelRule::PartialReturn, &mut Rng::new(11));
        let device = Default::default();
        let w = fit::<Ad, _>(PartialReturnModel::new(&device), &data, 300, 0.05, &device).unwrap().weights;
        eprintln!("partial-return labels, partial-return fit: w = {w:.3?} (true {TRUE_WEIGHTS:?})");
        assert_eq!(w[0], 0.0, "the step feature never varies between segments");
        assert!((w[1] - TRUE_WEIGHTS[1]).abs() < 0.4 && (w[2] - TRUE_WEIGHTS[2]).abs() < 0.4, "{w:?}");
    }

    #[test]
    fn soft_values_approach_exact_values_at_low_temperature() {
        let world = GridWorld::standard();
        let device = Default::default();
        let mut model = RegretModel::<NdArray<f64>>::new(&world, &device).with_temperature(0.01);
        model.weight = Param::from_tensor(Tensor::from_data(TensorData::new(TRUE_WEIGHTS.to_vec(), [N_FEATURES]), &device));
        let soft: Vec<f64> = model.soft_values().into_data().iter::<f64>().collect();
        let exact = world.optimal_values(&TRUE_WEIGHTS);
        for (s, (a, b)) in soft.iter().zip(&exact).enumerate() {
            assert!((a - b).abs() < 0.05, "state {s}: soft {a} vs exact {b}");
        }
    }

    fn regret_model<B: Backend>(world: &GridWorld, w: &[f64], device: &B::Device) -> RegretModel<B> {
        let mut model = RegretModel::<B>::new(world, device).with_temperature(0.1);
        model.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w.to_vec(), [N_FEATURES]), device));
        model
    }

    fn pair_loss<B: Backend>(model: &RegretModel<B>, data: &TrajectoryPairs, device: &B::Device) -> Tensor<B, 1> {
        let items = Tensor::<B, 2>::from_data(TensorData::new(data.items.clone(), [data.segments.len(), data.item_dim]), device);
        let pick = |f: fn(&(usize, usize)) -> usize| {
            let v: Vec<i64> = data.pairs.iter().map(|p| f(p) as i64).collect();
            items.clone().select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(v, [data.pairs.len()]), device))
        };
        pairwise_logistic_loss(model.logits(pick(|p| p.0), pick(|p| p.1)))
    }

    #[test]
    fn regret_gradient_matches_finite_differences() {
        let world = GridWorld::standard();
        let data = world.label_pairs(40, 120, LabelRule::Regret, &mut Rng::new(3));
        let device = Default::default();
        let w0 = [-0.6, 0.8, -1.1];
        let model = regret_model::<Ad>(&world, &w0, &device);
        let grads = pair_loss(&model, &data, &device).backward();
        let g: Vec<f64> = model.weight.grad(&grads).unwrap().into_data().iter::<f64>().collect();
        let h = 1e-5;
        for k in 0..N_FEATURES {
            let at = |d: f64| {
                let mut w = w0;
                w[k] += d;
                pair_loss(&regret_model::<NdArray<f64>>(&world, &w, &device), &data, &device).into_scalar()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            eprintln!("∂L/∂w[{k}]: autodiff {:.9}, finite difference {fd:.9}", g[k]);
            assert!((g[k] - fd).abs() < 1e-6 * g[k].abs().max(1.0), "w[{k}]: {} vs {fd}", g[k]);
        }
        // ∂L/∂w_goal ≈ 0 by design (the goal bonus cancels from Δer, see `GridWorld::standard`);
        // the step and mud components carry the check.
        assert!(g[0].abs() > 1e-3 && g[2].abs() > 1e-3, "a vanishing gradient would make the check vacuous: {g:?}");
    }

    #[test]
    fn heron_decides_by_the_first_separating_level() {
        // Factors [a, b, c], hierarchy b, then c, then a; margins 0.5, 1.0, 0.1.
        let (h, m) = ([1, 2, 0], [0.5, 1.0, 0.1]);
        // Level 0 decides: b differs by 1 > 0.5, whatever the rest says.
        assert_eq!(heron_compare(&[0.0, 2.0, 0.0], &[9.0, 1.0, 9.0], &h, &m), Some(Ordering::Greater));
        assert_eq!(heron_compare(&[9.0, 1.0, 9.0], &[0.0, 2.0, 0.0], &h, &m), Some(Ordering::Less));
        // b within 0.5 (a tie at level 0); c differs by 1.5 > 1.0: level 1 decides.
        assert_eq!(heron_compare(&[0.0, 1.4, 0.0], &[5.0, 1.0, 1.5], &h, &m), Some(Ordering::Less));
        // b and c both within their margins; a differs by 0.05 < 0.1: nothing decides.
        assert_eq!(heron_compare(&[0.05, 1.4, 1.0], &[0.0, 1.0, 1.9], &h, &m), None);
        // … but 0.2 > 0.1 at the last level does.
        assert_eq!(heron_compare(&[0.2, 1.4, 1.0], &[0.0, 1.0, 1.9], &h, &m), Some(Ordering::Greater));

        // Generated labels: the factors are integers and every σ_ℓ·std is below 1, so HERON is the
        // strict lexicographic order of the factors in hierarchy order; undecided means equal.
        let world = GridWorld::standard();
        let data = world.label_pairs(200, 1000, LabelRule::Heron, &mut Rng::new(5));
        let factors: Vec<[f64; N_FEATURES]> = data.segments.iter().map(|s| world.heron_factors(s)).collect();
        for (l, &k) in HERON_HIERARCHY.iter().enumerate() {
            assert!(HERON_SIGMA[l] * std_dev(factors.iter().map(|f| f[k])) < 1.0);
        }
        let key = |i: usize| HERON_HIERARCHY.map(|k| factors[i][k]);
        assert!(data.pairs.len() > 100, "enough pairs are decided: {}", data.pairs.len());
        for &(win, lose) in &data.pairs {
            assert_eq!(key(win).partial_cmp(&key(lose)), Some(Ordering::Greater), "{:?} vs {:?}", key(win), key(lose));
        }
    }

    #[test]
    fn delta_er_is_zero_for_optimal_segments_and_negative_otherwise() {
        let world = GridWorld::standard();
        let v = world.optimal_values(&TRUE_WEIGHTS);
        let best = world.optimal_actions(&TRUE_WEIGHTS);
        let follow = |mut s: usize, first: Option<usize>| {
            let mut actions = vec![];
            for t in 0..SEGMENT_LEN {
                let a = match (t, first) {
                    (0, Some(a)) => a,
                    _ => best[s].first().copied().unwrap_or(0), // any action once terminal
                };
                actions.push(a);
                s = world.step(s, a);
            }
            actions
        };
        let mut suboptimal = 0;
        for s in (0..world.n_states()).filter(|&s| !world.is_terminal(s)) {
            let opt = world.segment(s, &follow(s, None));
            assert!(world.delta_er(&opt, &TRUE_WEIGHTS, &v).abs() < 1e-9, "state {s}: {opt:?}");
            for a in (0..N_ACTIONS).filter(|a| !best[s].contains(a)) {
                let seg = world.segment(s, &follow(s, Some(a)));
                let d = world.delta_er(&seg, &TRUE_WEIGHTS, &v);
                // Regret of one bad action, then optimal: exactly V*(s) − Q*(s, a) > 0.
                let q = TRUE_WEIGHTS.iter().zip(world.features(s, a)).map(|(w, f)| w * f).sum::<f64>() + v[world.step(s, a)];
                assert!(d < -0.1 && (d - (q - v[s])).abs() < 1e-9, "state {s}, action {a}: Δer {d}, Q − V {}", q - v[s]);
                suboptimal += 1;
            }
        }
        assert!(suboptimal > 20);
    }

    #[test]
    fn standard_map_moves_blocks_and_absorbs() {
        let world = GridWorld::standard();
        assert_eq!(world.n_states(), 22);
        assert_eq!(world.item_dim(), 3 + 44);
        let at = |x, y| world.cells.iter().position(|&c| c == (x, y)).unwrap();
        assert_eq!(world.step(at(0, 1), 1), at(0, 1), "the wall below blocks");
        assert_eq!(world.step(at(0, 0), 0), at(0, 0), "the border blocks");
        assert_eq!(world.step(at(2, 1), 1), at(2, 2), "the mud gap is open");
        assert_eq!(world.features(at(2, 1), 1), [1.0, 0.0, 1.0]);
        assert_eq!(world.features(at(2, 3), 1), [1.0, 1.0, 0.0]);
        let goal = at(2, 4);
        assert!(world.is_terminal(goal));
        assert!((0..N_ACTIONS).all(|a| world.step(goal, a) == goal && world.features(goal, a) == [0.0; N_FEATURES]));
        let seg = world.segment(at(2, 3), &[1, 0, 0]);
        assert_eq!(seg.states, vec![at(2, 3), goal, goal, goal]);
        let row = world.item_features(&seg);
        assert_eq!(&row[..3], &[1.0, 1.0, 0.0]);
        assert_eq!(row[3 + at(2, 3)] + row[3 + 22 + goal], 2.0);
        assert_eq!(row.iter().sum::<f32>(), 4.0);
        // Random segments never end before their last step.
        let mut rng = Rng::new(1);
        for _ in 0..500 {
            let seg = world.random_segment(&mut rng);
            assert_eq!(world.feature_sums(&seg)[0], SEGMENT_LEN as f64, "{seg:?}");
        }
        // The construction: mud from the top-left cells, the east gap from the top-right column.
        let truth = world.optimal_actions(&TRUE_WEIGHTS);
        assert_eq!(truth[at(3, 1)], vec![2], "mud is 0.5 better than the 2-step-longer detour");
        assert_eq!(truth[at(4, 1)], vec![1], "equal length: the mud-free gap");
        assert_eq!(world.optimal_actions(&[-0.1, 2.0, -1.5])[at(3, 1)], vec![3], "cheap steps: the detour");
    }
}
