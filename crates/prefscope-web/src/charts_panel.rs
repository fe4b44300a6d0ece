//! The charts panel: train/eval loss and accuracy by step, held-out reward margins, calibration.


use yew::prelude::*;

use crate::charts::{histogram, margin_range, reliability};
use crate::plot::{coord, nice_ticks, polyline, scale, tick_label};

/// Reliability bins.
const BINS: usize = 10;
/// Margin histogram bins.
const MARGIN_BINS: usize = 24;

/// What the charts show.
pub struct Series<'a> {
    pub total_steps: usize,
    pub losses: &'a [f32],
    pub train_accuracy: &'a [f32],
    /// (step, accuracy, loss) of each held-out evaluation.
    pub evals: &'a [(usize, f32, f32)],
    /// Held-out logits of the latest model, with the step they were computed at.
    pub margins: Option<(&'a [f32], usize)>,
}

const W: f64 = 300.0;
const H: f64 = 180.0;
const PAD_L: f64 = 36.0;
const PAD_B: f64 = 24.0;

/// Grid lines, y tick labels and the title of a small chart.
fn frame(title: &str, y_ticks: &[f64], y_label_spacing: f64, sy: &dyn Fn(f64) -> f64) -> Html {
    html! {
        <>
            { for y_ticks.iter().map(|&t| html! {
                <g>
                    <line class="grid" x1={coord(PAD_L)} x2={coord(W - 6.0)} y1={coord(sy(t))} y2={coord(sy(t))} />
                    <text class="tick" x={coord(PAD_L - 4.0)} y={coord(sy(t) + 4.0)} text-anchor="end">{ tick_label(t, y_label_spacing) }</text>
                </g>
            }) }
            <text class="title" x={coord(PAD_L)} y="12">{ title.to_string() }</text>
        </>
    }
}

pub fn charts(s: &Series) -> Html {
    let steps = s.total_steps.max(1) as f64;
    let sx = |step: f64| scale(step, (0.0, steps), (PAD_L, W - 6.0));
    // Losses: training per step, held-out per evaluation.
    let top = s.losses.iter().chain(s.evals.iter().map(|e| &e.2)).filter(|v| v.is_finite()).fold(0.8f32, |a, &b| a.max(b)) as f64;
    let loss_ticks = nice_ticks(0.0, top, 4);
    let loss_top = *loss_ticks.last().unwrap_or(&1.0);
    let sy_loss = |v: f64| scale(v, (0.0, loss_top), (H - PAD_B, 20.0));
    let sy_acc = |v: f64| scale(v, (0.0, 1.0), (H - PAD_B, 20.0));
    let acc_ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    let x_axis = html! { <text class="tick" x={coord(W - 6.0)} y={coord(H - 6.0)} text-anchor="end">{ format!("step (of {})", s.total_steps) }</text> };
    let loss_chart = html! {
        <svg class="chart small" data-testid="chart-loss" viewBox={format!("0 0 {W} {H}")} role="img" aria-label="training and held-out loss by step">
            { frame("loss: train (line), held-out (dots)", &loss_ticks, loss_ticks.get(1).copied().unwrap_or(1.0), &sy_loss) }
            <polyline class="series loss" points={polyline(s.losses.iter().enumerate().map(|(i, &l)| (sx(i as f64 + 1.0), sy_loss(l as f64))))} />
            <polyline class="series eval" points={polyline(s.evals.iter().map(|e| (sx(e.0 as f64), sy_loss(e.2 as f64))))} />
            { for s.evals.iter().map(|e| html! { <circle class="dot eval" cx={coord(sx(e.0 as f64))} cy={coord(sy_loss(e.2 as f64))} r="2.5" /> }) }
            { x_axis.clone() }
        </svg>
    };
    let acc_chart = html! {
        <svg class="chart small" data-testid="chart-accuracy" viewBox={format!("0 0 {W} {H}")} role="img" aria-label="training and held-out accuracy by step">
            // Label spacing 0.01: two decimals, so 0.25 does not read 0.2.
            { frame("pairwise accuracy: train (line), held-out (dots)", &acc_ticks, 0.01, &sy_acc) }
            <polyline class="series acc thin" points={polyline(s.train_accuracy.iter().enumerate().map(|(i, &a)| (sx(i as f64 + 1.0), sy_acc(a as f64))))} />
            <polyline class="series eval" points={polyline(s.evals.iter().map(|e| (sx(e.0 as f64), sy_acc(e.1 as f64))))} />
            { for s.evals.iter().map(|e| html! { <circle class="dot eval" cx={coord(sx(e.0 as f64))} cy={coord(sy_acc(e.1 as f64))} r="2.5" /> }) }
            { x_axis }
        </svg>
    };
    let (margin_chart, calibration_chart) = match s.margins {
        Some((m, step)) if !m.is_empty() => (margins_chart(m, step), calibration(m, step)),
        _ => {
            let note = html! { <p class="caption">{ "Held-out margins and calibration appear at the first evaluation." }</p> };
            (note.clone(), note)
        }
    };
    html! {
        <>
            <p class="desc">{ "Loss and pairwise accuracy on the minibatches (per step) and on the held-out pairs (every evaluation). The margin ℓ = log-odds that the chosen response wins: its histogram on the held-out pairs (orange: ordered wrongly). Calibration: predicted P against how often it came true, each pair counted both ways round; the diagonal is perfect calibration, ECE the weighted gap." }</p>
            <div class="charts-grid">{ loss_chart }{ acc_chart }{ margin_chart }{ calibration_chart }</div>
        </>
    }
}

fn margins_chart(m: &[f32], step: usize) -> Html {
    let r = margin_range(m);
    let counts = histogram(m, -r, r, MARGIN_BINS);
    let most = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mean = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
    let right = m.iter().filter(|&&v| v > 0.0).count() as f64 / m.len() as f64;
    let sx = |v: f64| scale(v, (-r, r), (PAD_L, W - 6.0));
    let sy = |c: f64| scale(c, (0.0, most), (H - PAD_B, 20.0));
    let width = (W - 6.0 - PAD_L) / MARGIN_BINS as f64;
    html! {
        <svg class="chart small" data-testid="chart-margins" viewBox={format!("0 0 {W} {H}")} role="img" aria-label="histogram of held-out reward margins"
            data-mean={format!("{mean:.6}")} data-positive={format!("{right:.6}")}>
            <text class="title" x={coord(PAD_L)} y="12">{ format!("held-out margins at step {step}: mean {mean:.2}") }</text>
            { for counts.iter().enumerate().map(|(b, &c)| {
                let x = PAD_L + b as f64 * width;
                let wrong = x + width / 2.0 < sx(0.0);
                html! { <rect class={classes!("bar", wrong.then_some("wrong"))} x={coord(x + 0.5)} width={coord(width - 1.0)} y={coord(sy(c as f64))} height={coord(H - PAD_B - sy(c as f64))} /> }
            }) }
            <line class="axis" x1={coord(sx(0.0))} x2={coord(sx(0.0))} y1="20" y2={coord(H - PAD_B)} />
            <text class="tick" x={coord(PAD_L)} y={coord(H - 8.0)}>{ format!("−{r}") }</text>
            <text class="tick" x={coord(sx(0.0))} y={coord(H - 8.0)} text-anchor="middle">{ "ℓ = 0" }</text>
            <text class="tick" x={coord(W - 6.0)} y={coord(H - 8.0)} text-anchor="end">{ format!("{r}") }</text>
        </svg>
    }
}

fn calibration(m: &[f32], step: usize) -> Html {
    let rel = reliability(m, BINS);
    let sx = |p: f64| scale(p, (0.0, 1.0), (PAD_L, W - 6.0));
    let sy = |p: f64| scale(p, (0.0, 1.0), (H - PAD_B, 20.0));
    let used: Vec<_> = rel.bins.iter().filter(|b| b.count > 0).collect();
    html! {
        <svg class="chart small" data-testid="chart-calibration" viewBox={format!("0 0 {W} {H}")} role="img" aria-label="reliability diagram of held-out predictions"
            data-ece={format!("{:.6}", rel.ece)}>
            { frame(&format!("calibration at step {step}: ECE {:.3}", rel.ece), &[0.0, 0.5, 1.0], 0.5, &sy) }
            <line class="chance" x1={coord(sx(0.0))} y1={coord(sy(0.0))} x2={coord(sx(1.0))} y2={coord(sy(1.0))} />
            <polyline class="series loss" points={polyline(used.iter().map(|b| (sx(b.predicted), sy(b.observed))))} />
            { for used.iter().map(|b| html! {
                <circle class="dot calib" cx={coord(sx(b.predicted))} cy={coord(sy(b.observed))} r={coord((b.count as f64).sqrt().clamp(2.0, 6.0))}>
                    <title>{ format!("predicted {:.2}, observed {:.2}, {} outcomes", b.predicted, b.observed, b.count) }</title>
                </circle>
            }) }
            <text class="tick" x={coord(W - 6.0)} y={coord(H - 8.0)} text-anchor="end">{ "predicted P →" }</text>
        </svg>
    }
}
