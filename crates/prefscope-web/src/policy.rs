//! The Policy tab: a DPO-family loss trains a softmax policy over a few candidate responses whose
//! rewards are known, so the learned policy can be set beside its closed-form optimum and beside
//! the KL–reward frontier that DPO's optimum traces as β moves.
//!
//! Training is the core's `train_bandit_recorded` on the CPU backend (the problem is tiny), run
//! in a compute worker of the panel's own; snapshots every few steps let the slider replay the
//! distribution moving.
//!
//! In the two-objective mode each candidate has two rewards (r1, r2) and the policy is trained on
//! v·(r1, r2), v the dial's direction (`?dir=`, shared with the reward tab's dial): turning it
//! and training again moves the policy to another response, as DPA steers a policy by direction.

use std::rc::Rc;

use gloo_worker::WorkerBridge;

use crate::compute::policy::{Run, STEPS};
use crate::worker::{ComputeWorker, Input, Output};
use prefscope_core::policy::bandit::{BanditSummary, dpo_frontier, modpo_front};
use prefscope_core::policy::losses::LOSS_NAMES;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::dial::BANDIT_OBJECTIVES;
use crate::plot::{polyline, scale};

/// The menu: every loss of the core's table that runs on the bandit, labelled by its name and
/// the head of its one-line description. Those with a closed-form optimum show it beside π_θ.
fn losses() -> impl Iterator<Item = (&'static str, &'static str)> {
    LOSS_NAMES.iter().filter(|e| e.not_on_bandit.is_none()).map(|e| (e.name, e.help.split(": ").next().unwrap_or(e.help)))
}

#[derive(Properties, PartialEq)]
pub struct Props {
    /// β on the log slider, β = 10^(x/10); kept in the URL by the page.
    pub beta_x: i32,
    pub on_beta: Callback<i32>,
    /// The dial's direction θ in degrees (`?dir=`), for the two-objective mode.
    pub direction: u32,
    pub on_direction: Callback<u32>,
}

#[function_component(PolicyPanel)]
pub fn policy_panel(props: &Props) -> Html {
    let loss = use_state(|| "dpo".to_string());
    // β on a log slider: β = 10^(x/10), x ∈ [−13, 10] ≈ [0.05, 10].
    let beta_x = props.beta_x;
    let run = use_state(|| None::<Rc<Run>>);
    let frame = use_state(|| 0usize);
    let error = use_state(|| None::<String>);
    let objectives = use_state(|| false);
    let weighting = use_state(|| false);
    // MODPO's weight on the preference reward, w₁ = x/20 (w₁ > 0: MODPO divides by it).
    let modpo_x = use_state(|| 10u32);
    let modpo_w1 = *modpo_x as f64 / 20.0;
    let beta = 10f64.powf(beta_x as f64 / 10.0);
    let deg = props.direction;
    let direction = objectives.then_some(deg);

    let on_loss = {
        let loss = loss.clone();
        Callback::from(move |e: Event| loss.set(e.target_unchecked_into::<HtmlSelectElement>().value()))
    };
    let on_beta = props.on_beta.reform(move |e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value().parse().unwrap_or(beta_x));
    let on_objectives = {
        let objectives = objectives.clone();
        Callback::from(move |e: Event| objectives.set(e.target_unchecked_into::<HtmlInputElement>().checked()))
    };
    let on_weighting = {
        let weighting = weighting.clone();
        Callback::from(move |e: Event| weighting.set(e.target_unchecked_into::<HtmlInputElement>().checked()))
    };
    let on_modpo = {
        let modpo_x = modpo_x.clone();
        Callback::from(move |e: InputEvent| {
            if let Ok(v) = e.target_unchecked_into::<HtmlInputElement>().value().parse() {
                modpo_x.set(v);
            }
        })
    };
    let on_direction = props.on_direction.reform(move |e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value().parse().unwrap_or(deg));
    let worker = use_mut_ref(|| None::<WorkerBridge<ComputeWorker>>);
    let busy = use_state(|| false);
    let on_train = {
        let (loss, run, frame, error, busy, weighting) = (loss.clone(), run.clone(), frame.clone(), error.clone(), busy.clone(), weighting.clone());
        Callback::from(move |_| {
            let on_output = {
                let (run, frame, error, busy) = (run.clone(), frame.clone(), error.clone(), busy.clone());
                move |output: Output| {
                    let Output::Bandit(result) = output else { return };
                    busy.set(false);
                    match result {
                        Ok(r) => {
                            frame.set(r.snapshots.len() - 1);
                            run.set(Some(Rc::new(r)));
                            error.set(None);
                        }
                        Err(e) => error.set(Some(e)),
                    }
                }
            };
            match crate::worker::send_lazily(&worker, on_output, Input::Bandit { loss: (*loss).clone(), beta, direction, use_weighting: *weighting, modpo_w1 }) {
                Ok(()) => busy.set(true),
                Err(e) => error.set(Some(e)),
            }
        })
    };
    let on_frame = {
        let frame = frame.clone();
        Callback::from(move |e: InputEvent| {
            if let Ok(v) = e.target_unchecked_into::<HtmlInputElement>().value().parse() {
                frame.set(v);
            }
        })
    };

    let body = match run.as_ref() {
        None => html! { <p class="caption">{ "Pick a loss and β, then train: the policy starts at π_ref and moves toward what the loss rewards." }</p> },
        Some(r) => {
            let f = (*frame).min(r.snapshots.len() - 1);
            let (step, probs) = &r.snapshots[f];
            // Rounding can leave a KL a hair below 0; it is 0 then.
            let kl_opt = r.summary.kl_to_optimum.map(|k| format!("{:.2e}", k.max(0.0))).unwrap_or_else(|| "— (no closed form)".into());
            html! {
                <>
                    <div class="stats">
                        <div class="stat"><span class="k">{ "KL(π_θ ‖ optimum)" }</span><span class="v" data-testid="policy-kl-optimum">{ kl_opt }</span></div>
                        <div class="stat"><span class="k">{ "KL(π_θ ‖ π_ref)" }</span><span class="v" data-testid="policy-kl-reference">{ format!("{:.4}", r.summary.kl_to_reference) }</span></div>
                        <div class="stat"><span class="k">{ "E[r]" }</span><span class="v" data-testid="policy-expected-reward">{ format!("{:.4}", r.summary.expected_reward) }</span></div>
                    </div>
                    <label class="field">
                        <span>{ format!("after {step} of {STEPS} steps") }</span>
                        <input type="range" min="0" max={(r.snapshots.len() - 1).to_string()} value={f.to_string()}
                            data-testid="policy-frame" oninput={on_frame} aria-label="training step to show" />
                    </label>
                    if r.direction != direction {
                        <p class="notice" data-testid="policy-stale">{ match r.direction {
                            Some(d) => format!("Trained for θ = {d}°; train again to follow the direction."),
                            None => "Trained on the hidden rewards; train again for the two objectives.".to_string(),
                        } }</p>
                    }
                    { bars(&r.summary, probs, r.direction.is_some()) }
                    if let (Some(w1), Some(r2)) = (r.modpo_w1, r.summary.margin_rewards.as_deref()) {
                        { pareto(&r.summary, r2, r.beta, w1, modpo_w1) }
                    } else {
                        { frontier(&r.summary, r.beta) }
                    }
                </>
            }
        }
    };
    html! {
        <section class="card policy" data-testid="policy-panel">
            <h2>{ "Policy: the DPO family on a bandit" }</h2>
            <p class="desc">{ "Eight candidate responses whose rewards the policy never sees: one hidden reward, or with two objectives the score v·(r1, r2) for the dial's direction v. Pairs come from the reference policy and are labelled by Bradley–Terry on the rewards, and the loss is minimised exactly (its expectation over all pairs). DPO's optimum is π_ref·exp(r/β): small β chases reward, large β stays near π_ref. IPO regularises toward its own optimum, GPO takes one multiplicative-weights step on GPM-style scores, MODPO adds a second reward through its margin; the optimum bars appear for every loss with a closed form here. WPO weighting multiplies each pair's loss by how likely the current policy is to produce both responses." }</p>
            <div class="row">
                <label class="field">
                    <span>{ "Loss" }</span>
                    <select data-testid="policy-loss-select" onchange={on_loss}>
                        { for losses().map(|(k, t)| html! { <option value={k} selected={k == loss.as_str()}>{ format!("{k}: {t}") }</option> }) }
                    </select>
                </label>
                <label class="field">
                    <span>{ format!("β = {beta:.3}") }</span>
                    <input type="range" min="-13" max="10" value={beta_x.to_string()} data-testid="policy-beta" oninput={on_beta} aria-label="beta, log scale" />
                </label>
                <button class="primary" data-testid="policy-train" onclick={on_train} disabled={*busy}>{ if *busy { "Training…" } else { "Train policy" } }</button>
            </div>
            <div class="row">
                <label class="check">
                    <input type="checkbox" data-testid="policy-objectives" checked={*objectives} onchange={on_objectives} />
                    { "two objectives: reward r = v·(r1, r2), v the dial's direction" }
                </label>
                <label class="check">
                    <input type="checkbox" data-testid="policy-weighting" checked={*weighting} onchange={on_weighting} />
                    { "WPO weighting (use_weighting)" }
                </label>
                if loss.as_str() == "modpo" {
                    <label class="field">
                        <span>{ format!("MODPO weights w = ({modpo_w1:.2}, {:.2}): preference reward, second reward", 1.0 - modpo_w1) }</span>
                        <input type="range" min="1" max="20" value={modpo_x.to_string()} data-testid="policy-modpo-weight" oninput={on_modpo} aria-label="MODPO's weight on the preference reward" />
                    </label>
                }
                if *objectives {
                    <label class="field">
                        <span>{ format!("direction θ = {deg}° (the reward tab's dial)") }</span>
                        <input type="range" min="0" max="359" value={deg.to_string()} data-testid="policy-direction" oninput={on_direction} aria-label="preference direction in degrees" />
                    </label>
                }
            </div>
            if let Some(e) = error.as_ref() { <p class="notice error">{ e }</p> }
            { body }
        </section>
    }
}

/// π_ref, π_θ (at the chosen snapshot) and the optimum per candidate, candidates by reward. Each
/// candidate's group carries its index, probability and (in the two-objective mode) its two
/// rewards as data attributes; `data-best` on the chart is the most probable candidate.
fn bars(s: &BanditSummary, probs: &[f64], objectives: bool) -> Html {
    let n = s.rewards.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| s.rewards[a].total_cmp(&s.rewards[b]));
    let top = probs.iter().chain(&s.reference).chain(s.optimum.iter().flatten()).cloned().fold(0.0, f64::max).max(1e-9);
    let (w, h, pad) = (560.0, 200.0, 24.0);
    let slot = (w - 2.0 * pad) / n as f64;
    let y = |p: f64| scale(p, (0.0, top), (h - pad, pad));
    let best = (0..n).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(0);
    html! {
        <svg viewBox={format!("0 0 {w} {h}")} class="chart" data-testid="policy-bars" data-best={best.to_string()} role="img" aria-label="reference, policy and optimum probabilities per candidate">
            { for order.iter().enumerate().map(|(k, &i)| {
                let x = pad + k as f64 * slot;
                let opt = s.optimum.as_ref().map(|o| html! {
                    <line class="optimum" x1={(x + 2.0).to_string()} x2={(x + slot - 2.0).to_string()} y1={y(o[i]).to_string()} y2={y(o[i]).to_string()} />
                });
                let (r1, r2) = if objectives { (Some(BANDIT_OBJECTIVES[i][0].to_string()), Some(BANDIT_OBJECTIVES[i][1].to_string())) } else { (None, None) };
                html! {
                    <g data-candidate={i.to_string()} data-p={probs[i].to_string()} data-r1={r1} data-r2={r2}>
                        <rect class="ref" x={(x + 4.0).to_string()} y={y(s.reference[i]).to_string()} width={(slot / 2.0 - 5.0).to_string()} height={(h - pad - y(s.reference[i])).to_string()} />
                        <rect class="pol" x={(x + slot / 2.0).to_string()} y={y(probs[i]).to_string()} width={(slot / 2.0 - 5.0).to_string()} height={(h - pad - y(probs[i])).to_string()} />
                        { for opt }
                        <text x={(x + slot / 2.0).to_string()} y={(h - 6.0).to_string()} text-anchor="middle">{ format!("r {:.2}", s.rewards[i]) }</text>
                    </g>
                }
            }) }
            <text x={pad.to_string()} y="14">{ "grey: π_ref · blue: π_θ · line: the loss's optimum" }</text>
        </svg>
    }
}

/// MODPO's Pareto front over the two rewards (E[r1] across, E[r2] up) as the weighting turns,
/// with the optimum of the run's weighting as a ring, the slider's as a square, and the trained
/// policy as a dot. The dot's and ring's expected rewards are data attributes.
fn pareto(s: &BanditSummary, r2: &[f64], beta: f64, trained_w1: f64, chosen_w1: f64) -> Html {
    let w1s: Vec<f64> = (0..=40).map(|i| i as f64 / 40.0).collect();
    let curve = modpo_front(&s.rewards, r2, &s.reference, beta, &w1s);
    let ring = modpo_front(&s.rewards, r2, &s.reference, beta, &[trained_w1, chosen_w1]);
    let dot = (s.expected_reward, s.expected_margin_reward.unwrap_or(f64::NAN));
    let span = |f: &dyn Fn(&(f64, f64, f64)) -> f64, extra: f64| curve.iter().map(f).chain([extra]).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let ((x_lo, x_hi), (y_lo, y_hi)) = (span(&|c| c.1, dot.0), span(&|c| c.2, dot.1));
    let (w, h, pad) = (560.0, 240.0, 34.0);
    let x = |v: f64| scale(v, (x_lo - 0.05, x_hi + 0.05), (pad, w - pad));
    let y = |v: f64| scale(v, (y_lo - 0.05, y_hi + 0.05), (h - pad, pad));
    html! {
        <svg viewBox={format!("0 0 {w} {h}")} class="chart" data-testid="policy-pareto" role="img" aria-label="MODPO's Pareto front: expected first reward against expected second reward"
            data-trained-r1={dot.0.to_string()} data-trained-r2={dot.1.to_string()} data-optimum-r1={ring[0].1.to_string()} data-optimum-r2={ring[0].2.to_string()}>
            <polyline class="frontier" points={polyline(curve.iter().map(|c| (x(c.1), y(c.2))))} />
            <rect class="target" x={(x(ring[1].1) - 4.0).to_string()} y={(y(ring[1].2) - 4.0).to_string()} width="8" height="8" />
            <circle class="target" cx={x(ring[0].1).to_string()} cy={y(ring[0].2).to_string()} r="5" />
            <circle class="trained" cx={x(dot.0).to_string()} cy={y(dot.1).to_string()} r="4" />
            <text x={pad.to_string()} y="16">{ format!("MODPO's Pareto front (β = {beta:.3}): the optimum π_ref·exp((w₁r1 + w₂r2)/β)/Z, w₁ 0 → 1") }</text>
            <text x={pad.to_string()} y="32">{ format!("ring: trained weights w₁ = {trained_w1:.2} · square: the slider's · dot: the trained policy") }</text>
            <text x={(w - pad).to_string()} y={(h - 8.0).to_string()} text-anchor="end">{ "E[r1] (preference reward) →" }</text>
            <text x="6" y={(h / 2.0).to_string()}>{ "E[r2] ↑" }</text>
        </svg>
    }
}

/// DPO's KL–reward frontier over β, with this run's policy as a dot.
fn frontier(s: &BanditSummary, beta: f64) -> Html {
    let betas: Vec<f64> = (0..48).map(|i| 10f64.powf(1.2 - i as f64 * 0.06)).collect();
    let curve = dpo_frontier(&s.rewards, &s.reference, &betas);
    let here = dpo_frontier(&s.rewards, &s.reference, &[beta])[0];
    let kl_max = curve.iter().map(|c| c.1).fold(s.kl_to_reference, f64::max).max(1e-6) * 1.05;
    let (r_lo, r_hi) = curve.iter().map(|c| c.2).chain([s.expected_reward]).fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let (w, h, pad) = (560.0, 220.0, 30.0);
    let x = |k: f64| scale(k, (0.0, kl_max), (pad, w - pad));
    let y = |r: f64| scale(r, (r_lo - 0.05, r_hi + 0.05), (h - pad, pad));
    html! {
        <svg viewBox={format!("0 0 {w} {h}")} class="chart" data-testid="policy-frontier" role="img" aria-label="KL to the reference against expected reward">
            <polyline class="frontier" points={polyline(curve.iter().map(|c| (x(c.1), y(c.2))))} />
            <circle class="target" cx={x(here.1).to_string()} cy={y(here.2).to_string()} r="5" />
            <circle class="trained" cx={x(s.kl_to_reference).to_string()} cy={y(s.expected_reward).to_string()} r="4" />
            <text x={pad.to_string()} y="16">{ format!("E[r] vs KL(π ‖ π_ref) of DPO's optimum, β from 16 to 0.02") }</text>
            <text x={pad.to_string()} y="32">{ format!("ring: β = {beta:.3} · dot: the trained policy") }</text>
            <text x={(w - pad).to_string()} y={(h - 8.0).to_string()} text-anchor="end">{ format!("KL up to {kl_max:.2}") }</text>
        </svg>
    }
}
