//! The preference-direction dial for the multi-objective model (Directional Preference Alignment):
//! with two objectives a direction v = (cos θ, sin θ) on a circle, with three or more weights w on
//! the simplex (a triangle for three, one slider per objective beyond), turns the model's
//! attribute rewards into one score. Turning it re-ranks a fixed set of candidate responses at
//! once, with no retraining: the rewards are computed once per model snapshot and only the dot
//! products change.

use std::rc::Rc;

use prefscope_core::reward::model::argmax_by_direction;
use web_sys::{Element, KeyboardEvent, PointerEvent};
use yew::prelude::*;

use crate::compute::dial::Candidates;
use crate::by_ptr::ByPtr;
use crate::dial::{after_key, angle_of, dot, fractions, pareto_front, ranking, set_weight, simplex_after_key, simplex_corners, simplex_point, simplex_weights, simplex_winners, weights_or_equal};
use crate::plot::{coord, nice_ticks, polyline, scale, tick_label};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub candidates: Option<ByPtr<Candidates>>,
    /// Why there are no candidates (wrong model, not computed yet).
    pub note: String,
    /// How many objectives the run has (the candidates' width once they are computed).
    pub objectives: usize,
    pub direction: u32,
    pub on_direction: Callback<u32>,
    /// Simplex weights in whole percent, for three or more objectives.
    pub weights: Vec<u32>,
    pub on_weights: Callback<Vec<u32>>,
}

/// The dial for the run's number of objectives.
#[function_component(DirectionDial)]
pub fn direction_dial(props: &Props) -> Html {
    let k = props.candidates.as_ref().map_or(props.objectives, |c| c.0.objectives());
    if k <= 2 {
        return html! { <CircleDial candidates={props.candidates.clone()} note={props.note.clone()} direction={props.direction} on_direction={props.on_direction.clone()} /> };
    }
    let w = weights_or_equal(&props.weights, k);
    let f = fractions(&w);
    html! {
        <>
            <p class="desc">{ format!("Multi-objective reward with {k} objectives: the model learns one reward per attribute from the ratings; a user's weights w (on the simplex: w ≥ 0, Σw = 1) make them one score w·r, as ArmoRM's gate does per prompt. {} The candidates re-rank at once; only the Pareto front can ever win.", if k == 3 { "Drag the point in the triangle (each corner is one objective; the colours show which candidate wins where), use the sliders, or focus the triangle and use the arrow keys (Home, End, Page Up: a corner; 0: equal weights)." } else { "Move the sliders: the others keep their proportions." }) }</p>
            <div class="dial-body">
                if k == 3 {
                    <SimplexDial candidates={props.candidates.clone()} weights={w.clone()} on_weights={props.on_weights.clone()} />
                }
                <div class="weights" data-testid="dial-weights">
                    { for (0..k).map(|j| {
                        let (cb, w2) = (props.on_weights.clone(), w.clone());
                        let oninput = Callback::from(move |e: InputEvent| {
                            if let Ok(x) = e.target_unchecked_into::<web_sys::HtmlInputElement>().value().parse::<u32>() {
                                cb.emit(set_weight(&w2, j, x));
                            }
                        });
                        html! {
                            <label class="weight">
                                <span>{ format!("w{} objective {}", subscript(j + 1), j + 1) }</span>
                                <input type="range" min="0" max="100" step="1" value={w[j].to_string()} {oninput}
                                    data-testid={format!("dial-weight-{j}")} aria-label={format!("weight of objective {}", j + 1)} />
                                <output>{ format!("{:.2}", f[j]) }</output>
                            </label>
                        }
                    }) }
                </div>
                { match &props.candidates {
                    Some(cands) => parallel_plot(&cands.0, &f),
                    None => html! { <p class="caption" data-testid="dial-note">{ props.note.clone() }</p> },
                } }
            </div>
            { for props.candidates.as_ref().map(|cands| ranking_list(&cands.0, &f, "w·r")) }
        </>
    }
}

fn subscript(n: usize) -> String {
    n.to_string().chars().map(|c| char::from_u32('₀' as u32 + c.to_digit(10).unwrap_or(0)).unwrap_or(c)).collect()
}

/// Pointer down / move / up handlers that drag a value: `at` reads it from a pointer position on
/// `svg`, the pointer is captured while the button is down, and `cb` gets each new value.
fn drag_handlers<T: 'static>(
    svg: &NodeRef,
    dragging: &UseStateHandle<bool>,
    cb: &Callback<T>,
    at: impl Fn(&NodeRef, &PointerEvent) -> Option<T> + 'static,
) -> [Callback<PointerEvent>; 3] {
    let at = Rc::new(at);
    let on_down = {
        let (dragging, cb, svg, at) = (dragging.clone(), cb.clone(), svg.clone(), at.clone());
        Callback::from(move |e: PointerEvent| {
            if let Some(el) = svg.cast::<Element>() {
                let _ = el.set_pointer_capture(e.pointer_id());
            }
            dragging.set(true);
            if let Some(v) = at(&svg, &e) {
                cb.emit(v);
            }
        })
    };
    let on_move = {
        let (dragging, cb, svg) = (dragging.clone(), cb.clone(), svg.clone());
        Callback::from(move |e: PointerEvent| {
            if *dragging && let Some(v) = at(&svg, &e) {
                cb.emit(v);
            }
        })
    };
    let on_up = {
        let dragging = dragging.clone();
        Callback::from(move |_: PointerEvent| dragging.set(false))
    };
    [on_down, on_move, on_up]
}

#[derive(Properties, PartialEq)]
struct CircleProps {
    candidates: Option<ByPtr<Candidates>>,
    note: String,
    direction: u32,
    on_direction: Callback<u32>,
}

const DIAL: f64 = 220.0;
const RADIUS: f64 = 84.0;
/// Rim colours for the argmax segments, cycled.
const SEGMENT_COLOURS: [&str; 6] = ["#2f5fd0", "#e0761a", "#1d7f46", "#a23bb0", "#c9a400", "#d0455b"];

#[function_component(CircleDial)]
fn circle_dial(props: &CircleProps) -> Html {
    let dragging = use_state(|| false);
    // The SVG itself: Yew delegates events, so an event's current target is the page's root.
    let svg = use_node_ref();
    let deg = props.direction;
    let v = [(deg as f64).to_radians().cos(), (deg as f64).to_radians().sin()];

    let pointer_angle = |svg: &NodeRef, e: &PointerEvent| {
        let rect = svg.cast::<Element>()?.get_bounding_client_rect();
        // The dial is drawn centred in its box at a uniform scale, so the angle about the box's
        // centre is the angle on the dial.
        let dx = e.client_x() as f64 - (rect.left() + rect.width() / 2.0);
        let dy = e.client_y() as f64 - (rect.top() + rect.height() / 2.0);
        Some(angle_of(dx, dy))
    };
    let [on_down, on_move, on_up] = drag_handlers(&svg, &dragging, &props.on_direction, pointer_angle);
    let on_key = {
        let cb = props.on_direction.clone();
        Callback::from(move |e: KeyboardEvent| {
            if let Some(a) = after_key(&e.key(), e.shift_key(), deg) {
                e.prevent_default();
                cb.emit(a);
            }
        })
    };

    let c = DIAL / 2.0;
    let at = |angle_deg: f64, r: f64| (c + r * angle_deg.to_radians().cos(), c - r * angle_deg.to_radians().sin());
    let (hx, hy) = at(deg as f64, RADIUS);
    let segments = props.candidates.as_ref().map(|cands| {
        let two: Vec<[f64; 2]> = cands.0.rewards.iter().map(|r| [r[0], r[1]]).collect();
        let segs = argmax_by_direction(&two);
        segs.iter()
            .enumerate()
            .map(|(k, &(start, best))| {
                let end = segs.get(k + 1).map_or(360.0, |s| s.0);
                let (x0, y0) = at(start, RADIUS);
                let (x1, y1) = at(end, RADIUS);
                let large = if end - start > 180.0 { 1 } else { 0 };
                let colour = SEGMENT_COLOURS[best % SEGMENT_COLOURS.len()];
                let (lx, ly) = at((start + end) / 2.0, RADIUS + 16.0);
                html! {
                    <g>
                        <path class="segment" d={format!("M {x0:.1} {y0:.1} A {RADIUS} {RADIUS} 0 {large} 0 {x1:.1} {y1:.1}")} stroke={colour} />
                        if end - start > 14.0 {
                            <text class="segment-label" x={format!("{lx:.1}")} y={format!("{:.1}", ly + 4.0)} text-anchor="middle" fill={colour}>{ cands.0.labels[best].clone() }</text>
                        }
                    </g>
                }
            })
            .collect::<Html>()
    });

    html! {
        <>
            <p class="desc">{ "Directional preference alignment: the model learns one reward per attribute from the ratings; a user's direction v = (cos θ, sin θ) makes them one score v·r. Drag the handle (or focus the dial and use the arrow keys, Page Up/Down, Home = 0°, End = 90°): the candidates re-rank at once. The rim shows which candidate wins in each range of directions; only the Pareto front ever wins." }</p>
            <div class="dial-body">
                <svg ref={svg} class="dial" data-testid="direction-dial" viewBox={format!("0 0 {DIAL} {DIAL}")} tabindex="0" role="slider"
                    aria-label="preference direction θ in degrees" aria-valuemin="0" aria-valuemax="359" aria-valuenow={deg.to_string()}
                    aria-valuetext={format!("{deg}°")} onpointerdown={on_down} onpointermove={on_move} onpointerup={on_up.clone()} onpointercancel={on_up} onkeydown={on_key}>
                    <circle class="rim" cx={c.to_string()} cy={c.to_string()} r={RADIUS.to_string()} />
                    { for segments }
                    <line class="hand" x1={c.to_string()} y1={c.to_string()} x2={format!("{hx:.1}")} y2={format!("{hy:.1}")} />
                    <circle class="handle" cx={format!("{hx:.1}")} cy={format!("{hy:.1}")} r="9" />
                    <text class="dial-value" x={c.to_string()} y={(c + 34.0).to_string()} text-anchor="middle" data-testid="dial-value">{ format!("{deg}°") }</text>
                </svg>
                { match &props.candidates {
                    Some(cands) => reward_plot(&cands.0, v),
                    None => html! { <p class="caption" data-testid="dial-note">{ props.note.clone() }</p> },
                } }
            </div>
            { for props.candidates.as_ref().map(|cands| ranking_list(&cands.0, &v, "v·r")) }
        </>
    }
}

/// Candidates in reward space with the Pareto front, the direction and the argmax.
fn reward_plot(c: &Candidates, v: [f64; 2]) -> Html {
    let (w, pad) = (260.0, 30.0);
    let (lo, hi) = c.rewards.iter().flat_map(|r| r.iter().copied()).fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let ticks = nice_ticks(lo, hi, 4);
    let (t0, t1) = (ticks[0], *ticks.last().unwrap_or(&1.0));
    let spacing = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
    let x = |r: f64| scale(r, (t0, t1), (pad, w - 8.0));
    let y = |r: f64| scale(r, (t0, t1), (w - pad, 8.0));
    let front = pareto_front(&c.rewards);
    let best = ranking(&c.rewards, &v)[0];
    // The level line v·r = v·r_best through the winner, perpendicular to v: nothing lies beyond it.
    let (bx, by) = (c.rewards[best][0], c.rewards[best][1]);
    let span = (t1 - t0) * 2.0;
    let level_line = ((bx - v[1] * span, by + v[0] * span), (bx + v[1] * span, by - v[0] * span));
    html! {
        <svg class="chart rewards" data-testid="dial-rewards" viewBox={format!("0 0 {w} {w}")} role="img" aria-label="candidates by their two rewards, Pareto front and the best under the direction">
            <defs><clipPath id="dial-clip"><rect x={coord(pad)} y="8" width={coord(w - 8.0 - pad)} height={coord(w - pad - 8.0)} /></clipPath></defs>
            { for ticks.iter().map(|&t| html! {
                <g>
                    <text class="tick" x={coord(x(t))} y={coord(w - pad + 14.0)} text-anchor="middle">{ tick_label(t, spacing) }</text>
                    <text class="tick" x={coord(pad - 4.0)} y={coord(y(t) + 4.0)} text-anchor="end">{ tick_label(t, spacing) }</text>
                </g>
            }) }
            <line class="axis" x1={coord(pad)} x2={coord(w - 8.0)} y1={coord(w - pad)} y2={coord(w - pad)} />
            <line class="axis" x1={coord(pad)} x2={coord(pad)} y1="8" y2={coord(w - pad)} />
            <text class="title" x={coord(w - 8.0)} y={coord(w - 4.0)} text-anchor="end">{ "r₁ (objective 1) →" }</text>
            <text class="title" transform={format!("translate(10 {}) rotate(-90)", coord(w / 2.0))} text-anchor="middle">{ "r₂ (objective 2) →" }</text>
            <g clip-path="url(#dial-clip)">
                <line class="level" x1={coord(x(level_line.0.0))} y1={coord(y(level_line.0.1))} x2={coord(x(level_line.1.0))} y2={coord(y(level_line.1.1))} />
                <polyline class="front" data-testid="dial-front" points={polyline(front.iter().map(|&i| (x(c.rewards[i][0]), y(c.rewards[i][1]))))} />
            </g>
            { for c.rewards.iter().enumerate().map(|(i, r)| html! {
                <circle class={classes!("candidate", (i == best).then_some("best"), front.contains(&i).then_some("pareto"))}
                    cx={coord(x(r[0]))} cy={coord(y(r[1]))} r={if i == best { "7" } else { "4.5" }}>
                    <title>{ format!("{}: r = ({:.2}, {:.2})", c.labels[i], r[0], r[1]) }</title>
                </circle>
            }) }
        </svg>
    }
}

/// The ranking under the current direction or weights.
fn ranking_list(c: &Candidates, v: &[f64], score_name: &str) -> Html {
    let order = ranking(&c.rewards, v);
    let front = pareto_front(&c.rewards);
    let parts = |r: &[f64]| r.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
    html! {
        <ol class="ranking" data-testid="dial-ranking">
            { for order.iter().enumerate().map(|(k, &i)| {
                let score = dot(v, &c.rewards[i]);
                html! {
                    <li class={classes!((k == 0).then_some("best"), front.contains(&i).then_some("pareto"))} data-item={i.to_string()}>
                        <span class="name">{ c.labels[i].clone() }</span>
                        <span class="score">{ format!("{score_name} = {score:.3}") }</span>
                        <span class="parts">{ format!("r = ({})", parts(&c.rewards[i])) }</span>
                        if front.contains(&i) { <span class="tag" title="no other candidate is at least as good on every objective">{ "front" }</span> }
                    </li>
                }
            }) }
        </ol>
    }
}

#[derive(Properties, PartialEq)]
struct SimplexProps {
    candidates: Option<ByPtr<Candidates>>,
    weights: Vec<u32>,
    on_weights: Callback<Vec<u32>>,
}

const SIMPLEX: f64 = 240.0;
const SIMPLEX_PAD: f64 = 22.0;

/// Three objectives: the simplex of weights as a triangle, coloured by which candidate wins where,
/// with the current weights as a draggable point.
#[function_component(SimplexDial)]
fn simplex_dial(props: &SimplexProps) -> Html {
    let dragging = use_state(|| false);
    let svg = use_node_ref();
    let corners = simplex_corners(SIMPLEX, SIMPLEX_PAD);
    let to_weights = move |svg: &NodeRef, e: &PointerEvent| {
        let rect = svg.cast::<Element>()?.get_bounding_client_rect();
        let scale = SIMPLEX / rect.width().max(1.0);
        Some(simplex_weights(&corners, (e.client_x() as f64 - rect.left()) * scale, (e.client_y() as f64 - rect.top()) * scale))
    };
    let [on_down, on_move, on_up] = drag_handlers(&svg, &dragging, &props.on_weights, to_weights);
    let on_key = {
        let (cb, w) = (props.on_weights.clone(), props.weights.clone());
        Callback::from(move |e: KeyboardEvent| {
            if let Some(next) = simplex_after_key(&e.key(), e.shift_key(), &w) {
                e.prevent_default();
                cb.emit(next);
            }
        })
    };
    let f = fractions(&props.weights);
    let (px, py) = simplex_point(&corners, &f);
    let pt = |w: &[f64; 3]| {
        let (x, y) = simplex_point(&corners, w);
        format!("{x:.1},{y:.1}")
    };
    let regions = props.candidates.as_ref().map(|c| {
        simplex_winners(&c.0.rewards, 24)
            .into_iter()
            .map(|(t, best)| html! { <polygon class="region" points={format!("{} {} {}", pt(&t[0]), pt(&t[1]), pt(&t[2]))} fill={SEGMENT_COLOURS[best % SEGMENT_COLOURS.len()]} /> })
            .collect::<Html>()
    });
    // Each corner's winner, labelled beside the corner.
    let corner_labels = (0..3).map(|j| {
        let (x, y) = corners[j];
        let (dx, dy, anchor) = [(-2.0, 16.0, "start"), (2.0, 16.0, "end"), (0.0, -8.0, "middle")][j];
        let winner = props.candidates.as_ref().map(|c| {
            let mut e = [0.0; 3];
            e[j] = 1.0;
            format!(" → {}", c.0.labels[ranking(&c.0.rewards, &e)[0]])
        });
        html! { <text class="corner" x={format!("{:.1}", x + dx)} y={format!("{:.1}", y + dy)} text-anchor={anchor}>{ format!("objective {}{}", j + 1, winner.unwrap_or_default()) }</text> }
    });
    let [a, b, c] = corners;
    html! {
        <svg ref={svg} class="simplex" data-testid="direction-simplex" viewBox={format!("0 0 {SIMPLEX} {SIMPLEX}")} tabindex="0" role="slider"
            aria-label="preference weights of the three objectives" aria-valuetext={format!("w = ({:.2}, {:.2}, {:.2})", f[0], f[1], f[2])}
            onpointerdown={on_down} onpointermove={on_move} onpointerup={on_up.clone()} onpointercancel={on_up} onkeydown={on_key}>
            { for regions }
            <polygon class="outline" points={format!("{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", a.0, a.1, b.0, b.1, c.0, c.1)} />
            { for corner_labels }
            <circle class="handle" cx={format!("{px:.1}")} cy={format!("{py:.1}")} r="8" />
        </svg>
    }
}

/// Candidates' rewards on parallel axes, one per objective: the front in colour, the best thick.
fn parallel_plot(c: &Candidates, w: &[f64]) -> Html {
    let k = c.objectives();
    let (width, height, pad) = (300.0, 220.0, 28.0);
    let (lo, hi) = c.rewards.iter().flatten().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let ticks = nice_ticks(lo, hi, 4);
    let (t0, t1) = (ticks[0], *ticks.last().unwrap_or(&1.0));
    let spacing = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
    let x = |j: usize| scale(j as f64, (0.0, (k - 1) as f64), (pad + 6.0, width - 12.0));
    let y = |r: f64| scale(r, (t0, t1), (height - pad, 10.0));
    let front = pareto_front(&c.rewards);
    let best = ranking(&c.rewards, w)[0];
    let mut order: Vec<usize> = (0..c.rewards.len()).collect();
    // Dominated first, the best last, so the highlighted lines are on top.
    order.sort_by_key(|&i| (i == best, front.contains(&i)));
    html! {
        <svg class="chart rewards parallel" data-testid="dial-rewards" viewBox={format!("0 0 {width} {height}")} role="img" aria-label="candidates' rewards on one axis per objective; the Pareto front in colour and the best under the weights thick">
            { for ticks.iter().map(|&t| html! {
                <text class="tick" x={coord(pad)} y={coord(y(t) + 4.0)} text-anchor="end">{ tick_label(t, spacing) }</text>
            }) }
            { for (0..k).map(|j| html! {
                <g>
                    <line class="axis" x1={coord(x(j))} x2={coord(x(j))} y1="10" y2={coord(height - pad)} />
                    <text class="title" x={coord(x(j))} y={coord(height - pad + 16.0)} text-anchor="middle">{ format!("r{}", subscript(j + 1)) }</text>
                </g>
            }) }
            <g data-testid="dial-front" data-count={front.len().to_string()}>
                { for order.iter().map(|&i| html! {
                    <polyline class={classes!("line", (i == best).then_some("best"), front.contains(&i).then_some("pareto"))}
                        points={polyline((0..k).map(|j| (x(j), y(c.rewards[i][j]))))}>
                        <title>{ format!("{}: r = ({})", c.labels[i], c.rewards[i].iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(", ")) }</title>
                    </polyline>
                }) }
            </g>
        </svg>
    }
}
