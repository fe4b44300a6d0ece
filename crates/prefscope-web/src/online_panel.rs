//! The Policy tab's online mode: reward over-optimisation (Gao et al. 2022), live.
//!
//! A proxy reward model (the core's Bradley–Terry MLP) trains in a compute worker of the panel's
//! own on N comparisons of the `overopt` scenario that the hidden gold reward labelled. Then a
//! policy optimises the proxy,
//! point by point: best-of-n for n = 1 … 1024, or RL at decreasing β (the KL-regularised optimum
//! π_ref·exp(r̂/β)/Z, which RLOO reaches), or RLOO itself at β = 0.01, live, one point per
//! iteration (its expected gradient, as [`live_rloo`] says). The chart grows as it goes: gold and proxy reward
//! (relative to π_ref) against d = √KL(π‖π_ref), with the gold peak marked and the point where the
//! two curves part. The method and N live in the URL (`online=`, `labels=`).

use std::rc::Rc;

use gloo_worker::WorkerBridge;
use prefscope_core::policy::overoptimisation::{CurvePoint, OveroptConfig};
use yew::prelude::*;

use crate::compute::online::{Phase, Update};
use crate::worker::{ComputeWorker, Input, Output};
use crate::plot::{polyline, scale};
use crate::settings::ONLINE_METHODS as METHODS;

/// The numbers of labels offered (any in `settings::LABELS` is accepted from the URL).
const LABEL_CHOICES: [usize; 4] = [30, 100, 300, 3000];

#[derive(Properties, PartialEq)]
pub struct Props {
    pub labels: usize,
    pub method: String,
    pub seed: u64,
    pub on_labels: Callback<usize>,
    pub on_method: Callback<String>,
}

/// The gold curve's highest point.
fn peak(points: &[CurvePoint]) -> Option<usize> {
    (0..points.len()).max_by(|&a, &b| points[a].gold.total_cmp(&points[b].gold))
}

/// Where the curves part: the first point whose gold gain per unit d has fallen below half of the
/// first step's, while the proxy's has not (relative to their own first steps).
fn parting(points: &[CurvePoint]) -> Option<usize> {
    let slope = |i: usize, f: fn(&CurvePoint) -> f64| (f(&points[i]) - f(&points[i - 1])) / (points[i].d - points[i - 1].d).max(1e-12);
    if points.len() < 3 {
        return None;
    }
    let (g0, p0) = (slope(1, |p| p.gold), slope(1, |p| p.proxy));
    (2..points.len()).find(|&i| slope(i, |p| p.gold) / g0.max(1e-12) < 0.5 * slope(i, |p| p.proxy) / p0.max(1e-12))
}

#[function_component(OnlinePanel)]
pub fn online_panel(props: &Props) -> Html {
    let phase = use_state(|| Phase::Idle);
    let points = use_state(|| Rc::new(Vec::<CurvePoint>::new()));
    let error = use_state(|| None::<String>);
    let busy = matches!(*phase, Phase::Proxy { .. } | Phase::Optimising);
    let worker = use_mut_ref(|| None::<WorkerBridge<ComputeWorker>>);
    let on_run = {
        let (phase, points, error) = (phase.clone(), points.clone(), error.clone());
        let (labels, method, seed) = (props.labels, props.method.clone(), props.seed);
        Callback::from(move |_| {
            points.set(Rc::new(vec![]));
            error.set(None);
            phase.set(Phase::Proxy { step: 0, of: OveroptConfig::default().steps });
            let on_output = {
                let (phase, points, error) = (phase.clone(), points.clone(), error.clone());
                move |output: Output| match output {
                    Output::Online(Update::Phase(p)) => phase.set(p),
                    Output::Online(Update::Points(p)) => points.set(Rc::new(p)),
                    Output::Online(Update::Error(e)) => error.set(Some(e)),
                    _ => {}
                }
            };
            if let Err(e) = crate::worker::send_lazily(&worker, on_output, Input::Online { labels, method: method.clone(), seed }) {
                error.set(Some(e));
            }
        })
    };
    let on_labels = props.on_labels.reform(|e: Event| e.target_unchecked_into::<web_sys::HtmlSelectElement>().value().parse().unwrap_or(300));
    let on_method = props.on_method.reform(|e: Event| e.target_unchecked_into::<web_sys::HtmlSelectElement>().value());
    let status = match &*phase {
        Phase::Idle => "Pick N and a method, then run: the proxy trains here, then the policy optimises it.".to_string(),
        Phase::Proxy { step, of } => format!("training the proxy reward model on {} gold labels: step {step} of {of}", props.labels),
        Phase::Optimising => format!("optimising against the proxy: {} points", points.len()),
        Phase::Done { accuracy } => format!("done: the proxy agrees with gold on {:.0} % of held-out pairs", 100.0 * accuracy),
    };
    let mut labels_offered: Vec<usize> = LABEL_CHOICES.to_vec();
    if !labels_offered.contains(&props.labels) {
        labels_offered.push(props.labels);
        labels_offered.sort();
    }
    html! {
        <section class="card policy" data-testid="online-panel">
            <h2>{ "Online: over-optimising a proxy reward" }</h2>
            <p class="desc">{ "Gao, Schulman & Hilton (2022): a policy that optimises a learned reward model gains proxy reward without end, while the true (gold) reward rises, peaks and falls. Here 4,096 candidate responses have a hidden gold reward that rewards two qualities but punishes extremes; a proxy reward model learns from N comparisons that gold labelled. Few labels: the proxy extrapolates, and hard optimisation finds its mistakes early. More labels move the peak out." }</p>
            <div class="row">
                <label class="field">
                    <span>{ "Proxy labels N" }</span>
                    <select data-testid="online-labels" onchange={on_labels} disabled={busy}>
                        { for labels_offered.iter().map(|n| html! { <option value={n.to_string()} selected={*n == props.labels}>{ n.to_string() }</option> }) }
                    </select>
                </label>
                <label class="field">
                    <span>{ "Optimiser" }</span>
                    <select data-testid="online-method" onchange={on_method} disabled={busy}>
                        { for METHODS.iter().map(|(k, t)| html! { <option value={*k} selected={*k == props.method}>{ *t }</option> }) }
                    </select>
                </label>
                <button class="primary" data-testid="online-run" onclick={on_run} disabled={busy}>{ "Train proxy, then optimise" }</button>
            </div>
            <p class="caption" data-testid="online-status" data-done={matches!(*phase, Phase::Done { .. }).to_string()}>{ status }</p>
            if let Some(e) = error.as_ref() { <p class="notice error">{ e }</p> }
            { chart(&points) }
        </section>
    }
}

/// Gold (left axis) and proxy (right axis) reward against d, each on its own scale, with the gold
/// peak and the parting point marked.
fn chart(points: &[CurvePoint]) -> Html {
    let (w, h, pad) = (560.0, 240.0, 36.0);
    if points.is_empty() {
        return html! {};
    }
    let d_max = points.iter().map(|p| p.d).fold(0.5, f64::max) * 1.05;
    let span = |f: fn(&CurvePoint) -> f64| points.iter().map(f).fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (g_lo, g_hi) = span(|p| p.gold);
    let (p_lo, p_hi) = span(|p| p.proxy);
    let x = |d: f64| scale(d, (0.0, d_max), (pad, w - pad));
    let yg = |v: f64| scale(v, (g_lo, g_hi.max(g_lo + 1e-9)), (h - pad, pad));
    let yp = |v: f64| scale(v, (p_lo, p_hi.max(p_lo + 1e-9)), (h - pad, pad));
    let peak = peak(points);
    let part = parting(points);
    // The two labels sit at different heights so that they never overlap.
    let mark = |i: Option<usize>, class: &'static str, label: &'static str, testid: &'static str, dy: f64| {
        i.map(|i| {
            let p = &points[i];
            html! {
                <g class={class} data-testid={testid} data-d={p.d.to_string()}>
                    <line x1={x(p.d).to_string()} x2={x(p.d).to_string()} y1={pad.to_string()} y2={(h - pad).to_string()} />
                    <text x={(x(p.d) + 4.0).to_string()} y={(pad + dy).to_string()}>{ format!("{label} d = {:.2}", p.d) }</text>
                </g>
            }
        })
    };
    html! {
        <svg viewBox={format!("0 0 {w} {h}")} class="chart" data-testid="online-chart" data-points={points.len().to_string()} role="img" aria-label="gold and proxy reward against the square root of the KL to the reference">
            <polyline class="proxy" points={polyline(points.iter().map(|p| (x(p.d), yp(p.proxy))))} />
            <polyline class="gold" points={polyline(points.iter().map(|p| (x(p.d), yg(p.gold))))} />
            { for points.iter().map(|p| html! { <circle class="gold" cx={x(p.d).to_string()} cy={yg(p.gold).to_string()} r="2.5" data-d={p.d.to_string()} data-gold={p.gold.to_string()} data-proxy={p.proxy.to_string()} /> }) }
            { for mark(part, "parting", "curves part", "online-parting", 150.0) }
            { for mark(peak, "peak", "gold peak", "online-peak", 12.0) }
            <text x={pad.to_string()} y="16">{ "gold (orange, left scale) and proxy (blue, right scale) reward, relative to π_ref" }</text>
            <text x={pad.to_string()} y={(h - 8.0).to_string()}>{ format!("gold {g_lo:.2} … {g_hi:.2} · proxy {p_lo:.2} … {p_hi:.2}") }</text>
            <text x={(w - pad).to_string()} y={(h - 8.0).to_string()} text-anchor="end">{ format!("d = √KL up to {d_max:.2}") }</text>
        </svg>
    }
}
