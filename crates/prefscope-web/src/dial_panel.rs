//! The preference-direction dial for the multi-objective model (Directional Preference Alignment):
//! a direction v = (cos θ, sin θ) turns the model's two attribute rewards into one, v·r. Turning
//! the dial re-ranks a fixed set of candidate responses at once, with no retraining: the rewards
//! are computed once per model snapshot and only the dot products change.

use std::rc::Rc;

use burn::tensor::{Tensor, TensorData};
use prefscope_core::model::argmax_by_direction;
use prefscope_core::{PairDataset, PreferenceModel};
use web_sys::{Element, KeyboardEvent, PointerEvent};
use yew::prelude::*;

use crate::backend::{AnyModel, on_model};
use crate::by_ptr::ByPtr;
use crate::dial::{after_key, angle_of, pareto_front, ranking};
use crate::plot::{nice_ticks, polyline, scale, tick_label};

/// The first this-many items of the data are the candidates.
pub const CANDIDATES: usize = 12;

/// Each candidate's two attribute rewards under the model, with its label and true ratings.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidates {
    pub labels: Vec<String>,
    pub rewards: Vec<[f64; 2]>,
    /// The data's (noisy) ratings of the same responses, when it has two objectives.
    pub ratings: Vec<[f64; 2]>,
    pub step: usize,
}

/// The model's rewards for the candidates; an error for models without two attribute rewards.
pub async fn candidates(model: AnyModel, ds: Rc<PairDataset>, step: usize) -> Result<Candidates, String> {
    let n = CANDIDATES.min(ds.n_items());
    let rewards = on_model!(&model, |m, device| {
        let PreferenceModel::MultiObjective(mo) = m else {
            return Err("the dial needs the multi-objective model (its two attribute rewards)".to_string());
        };
        let x = Tensor::from_data(TensorData::new(ds.items[..n * ds.dim].to_vec(), [n, ds.dim]), device);
        let r = mo.rewards(x);
        if r.dims()[1] != 2 {
            return Err(format!("the dial turns between two objectives; this model has {}", r.dims()[1]));
        }
        let data = r.into_data_async().await.map_err(|e| format!("{e:?}"))?;
        data.convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?
    });
    let pairs = |v: &[f32]| v.chunks(2).map(|c| [c[0] as f64, c[1] as f64]).collect::<Vec<_>>();
    let ratings = if ds.n_objectives == 2 { pairs(&ds.ratings[..2 * n]) } else { vec![] };
    Ok(Candidates { labels: ds.item_labels[..n].to_vec(), rewards: pairs(&rewards), ratings, step })
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub candidates: Option<ByPtr<Candidates>>,
    /// Why there are no candidates (wrong model, not computed yet).
    pub note: String,
    pub direction: u32,
    pub on_direction: Callback<u32>,
}

const DIAL: f64 = 220.0;
const RADIUS: f64 = 84.0;
/// Rim colours for the argmax segments, cycled.
const SEGMENT_COLOURS: [&str; 6] = ["#2f5fd0", "#e0761a", "#1d7f46", "#a23bb0", "#c9a400", "#d0455b"];

#[function_component(DirectionDial)]
pub fn direction_dial(props: &Props) -> Html {
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
    let on_down = {
        let (dragging, cb, svg) = (dragging.clone(), props.on_direction.clone(), svg.clone());
        Callback::from(move |e: PointerEvent| {
            if let Some(el) = svg.cast::<Element>() {
                let _ = el.set_pointer_capture(e.pointer_id());
            }
            dragging.set(true);
            if let Some(a) = pointer_angle(&svg, &e) {
                cb.emit(a);
            }
        })
    };
    let on_move = {
        let (dragging, cb, svg) = (dragging.clone(), props.on_direction.clone(), svg.clone());
        Callback::from(move |e: PointerEvent| {
            if *dragging && let Some(a) = pointer_angle(&svg, &e) {
                cb.emit(a);
            }
        })
    };
    let on_up = {
        let dragging = dragging.clone();
        Callback::from(move |_: PointerEvent| dragging.set(false))
    };
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
        let segs = argmax_by_direction(&cands.0.rewards);
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
            { for props.candidates.as_ref().map(|cands| ranking_list(&cands.0, v)) }
        </>
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
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
    let best = ranking(&c.rewards, v)[0];
    // The level line v·r = v·r_best through the winner, perpendicular to v: nothing lies beyond it.
    let (bx, by) = (c.rewards[best][0], c.rewards[best][1]);
    let span = (t1 - t0) * 2.0;
    let level_line = ((bx - v[1] * span, by + v[0] * span), (bx + v[1] * span, by - v[0] * span));
    html! {
        <svg class="chart rewards" data-testid="dial-rewards" viewBox={format!("0 0 {w} {w}")} role="img" aria-label="candidates by their two rewards, Pareto front and the best under the direction">
            <defs><clipPath id="dial-clip"><rect x={fmt(pad)} y="8" width={fmt(w - 8.0 - pad)} height={fmt(w - pad - 8.0)} /></clipPath></defs>
            { for ticks.iter().map(|&t| html! {
                <g>
                    <text class="tick" x={fmt(x(t))} y={fmt(w - pad + 14.0)} text-anchor="middle">{ tick_label(t, spacing) }</text>
                    <text class="tick" x={fmt(pad - 4.0)} y={fmt(y(t) + 4.0)} text-anchor="end">{ tick_label(t, spacing) }</text>
                </g>
            }) }
            <line class="axis" x1={fmt(pad)} x2={fmt(w - 8.0)} y1={fmt(w - pad)} y2={fmt(w - pad)} />
            <line class="axis" x1={fmt(pad)} x2={fmt(pad)} y1="8" y2={fmt(w - pad)} />
            <text class="title" x={fmt(w - 8.0)} y={fmt(w - 4.0)} text-anchor="end">{ "r₁ (objective 1) →" }</text>
            <text class="title" transform={format!("translate(10 {}) rotate(-90)", fmt(w / 2.0))} text-anchor="middle">{ "r₂ (objective 2) →" }</text>
            <g clip-path="url(#dial-clip)">
                <line class="level" x1={fmt(x(level_line.0.0))} y1={fmt(y(level_line.0.1))} x2={fmt(x(level_line.1.0))} y2={fmt(y(level_line.1.1))} />
                <polyline class="front" data-testid="dial-front" points={polyline(front.iter().map(|&i| (x(c.rewards[i][0]), y(c.rewards[i][1]))))} />
            </g>
            { for c.rewards.iter().enumerate().map(|(i, r)| html! {
                <circle class={classes!("candidate", (i == best).then_some("best"), front.contains(&i).then_some("pareto"))}
                    cx={fmt(x(r[0]))} cy={fmt(y(r[1]))} r={if i == best { "7" } else { "4.5" }}>
                    <title>{ format!("{}: r = ({:.2}, {:.2})", c.labels[i], r[0], r[1]) }</title>
                </circle>
            }) }
        </svg>
    }
}

/// The ranking under the current direction.
fn ranking_list(c: &Candidates, v: [f64; 2]) -> Html {
    let order = ranking(&c.rewards, v);
    html! {
        <ol class="ranking" data-testid="dial-ranking">
            { for order.iter().enumerate().map(|(k, &i)| {
                let score = v[0] * c.rewards[i][0] + v[1] * c.rewards[i][1];
                html! {
                    <li class={classes!((k == 0).then_some("best"))} data-item={i.to_string()}>
                        <span class="name">{ c.labels[i].clone() }</span>
                        <span class="score">{ format!("v·r = {score:.3}") }</span>
                        <span class="parts">{ format!("r = ({:.2}, {:.2})", c.rewards[i][0], c.rewards[i][1]) }</span>
                    </li>
                }
            }) }
        </ol>
    }
}
