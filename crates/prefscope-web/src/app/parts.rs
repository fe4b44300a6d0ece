//! Pieces the App's view draws: titles, the loss chart, the data plot, PNG export.

use std::rc::Rc;

use prefscope_core::{ModelKind, ScenarioKind};
use wasm_bindgen::prelude::wasm_bindgen;
use web_sys::File;
use yew::prelude::*;

use crate::by_ptr::ByPtr;
use crate::plot::{DataPicture, LossAxes, coord, polyline, scale, tick_label};
use crate::settings::Settings;


pub(super) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

pub(super) fn scenario_title(k: ScenarioKind) -> &'static str {
    match k {
        ScenarioKind::Linear => "linear — a hidden utility",
        ScenarioKind::Cyclic => "cyclic — rock–paper–scissors",
        ScenarioKind::CyclicAbcd => "cyclic-abcd — A ≻ B ≻ C ≻ D ≻ A",
        ScenarioKind::MultiObjective => "multi-objective — users with directions",
        ScenarioKind::Mixture => "mixture — two groups, opposed tastes",
        ScenarioKind::FewShotUsers => "few-shot-users — new users, 8 labels each",
        ScenarioKind::Rankings => "rankings — lists of five",
        ScenarioKind::Noisy => "noisy — 30 % flipped labels",
        ScenarioKind::Gridworld => "gridworld — trajectory segments",
        ScenarioKind::Overopt => "overopt — a proxy reward to over-optimise",
        ScenarioKind::Worldpm => "worldpm — three test sets for scaling",
        ScenarioKind::Reasoning => "reasoning — right and wrong answers",
        ScenarioKind::ContextReversal => "context-reversal — criteria that reverse preferences",
        ScenarioKind::Communities => "communities — six communities, six attributes",
        ScenarioKind::Capabilities => "capabilities — tasks that weigh capabilities apart",
    }
}

/// The contexts context-bt can be shown under: the criteria of `context-reversal`, otherwise
/// one per prompt feature (each one-hot).
pub(super) fn context_names(scenario: ScenarioKind, width: usize) -> Vec<String> {
    use prefscope_core::reward::scenarios::context::CRITERIA;
    if scenario == ScenarioKind::ContextReversal && width == CRITERIA.len() {
        return CRITERIA.iter().map(|c| format!("\"{c}\"")).collect();
    }
    (0..width).map(|j| format!("context {j} (one-hot)")).collect()
}

pub(super) fn model_title(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Bt => "bt — Bradley–Terry reward model",
        ModelKind::Gpm => "gpm — General Preference Model",
        ModelKind::MultiObjective => "multi-objective — DPA reward vector",
        ModelKind::Mixture => "mixture — MiCRo heads + router",
        ModelKind::Vpl => "vpl — latent user (VPL)",
        ModelKind::Regret => "regret — Knox et al. regret model",
        ModelKind::PartialReturn => "partial-return — return-only model",
        ModelKind::ContextBt => "context-bt — context-aware RM (CARM)",
        ModelKind::InContext => "in-context — few-shot user model (FSPO)",
        ModelKind::AttributeAttention => "attribute-attention — attributes weighed per community (PrefPalette)",
        ModelKind::ExpertMixture => "expert-mixture — task router, capability experts (DMoERM)",
    }
}

/// Applies a control's value to the settings.
pub(super) type SetBy<T> = Rc<dyn Fn(&mut Settings, T)>;

pub(super) const BATCHES: [usize; 8] = [8, 16, 32, 64, 128, 256, 512, 1024];
pub(super) const PAIR_COUNTS: [usize; 7] = [100, 200, 500, 1000, 2000, 5000, 10_000];

/// Two significant digits, so slider values read well in the URL.
pub(super) fn round_sig(v: f64) -> f64 {
    let mag = 10f64.powf(v.abs().log10().floor() - 1.0);
    ((v / mag).round() * mag * 1e12).round() / 1e12
}

#[wasm_bindgen(module = "/src/files.js")]
extern "C" {
    #[wasm_bindgen(js_name = downloadBytes)]
    pub(super) fn download_bytes(bytes: &js_sys::Uint8Array, filename: &str, mime: &str);
    #[wasm_bindgen(js_name = exportPng)]
    fn export_png_js(root: &web_sys::Element, filename: &str) -> js_sys::Promise;
}

/// Save the panel with this `data-testid` as a PNG.
pub(super) fn export_png(testid: &str, filename: &str) {
    let root = web_sys::window().and_then(|w| w.document()).and_then(|d| d.query_selector(&format!("[data-testid={testid}]")).ok().flatten());
    if let Some(root) = root {
        let promise = export_png_js(&root, filename);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
                web_sys::console::error_1(&e);
            }
        });
    }
}

/// A file dropped on the page, which the compute worker has read.
pub struct Upload {
    pub(super) name: String,
    /// An embedding file (`prefscope embed`), whose held-out pairs follow the run's seed.
    pub(super) embeddings: bool,
}

/// A dropped file's name and bytes, for the compute worker to read. Errors name the file.
pub(super) async fn file_bytes(file: &File) -> Result<(String, Vec<u8>), String> {
    let name = file.name();
    let bytes = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map(|b| js_sys::Uint8Array::new(&b).to_vec()).map_err(|_| format!("{name}: could not read the file"))?;
    Ok((name, bytes))
}

// ---------------------------------------------------------------------------------------------
// Charts

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 58.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 44.0;

/// The live chart: training loss per step (left axis), held-out accuracy (right axis, 0–1).
pub(super) fn loss_chart(total_steps: usize, losses: &[f32], evals: &[(usize, f32, f32)]) -> Html {
    let axes = LossAxes::new(total_steps, losses, evals.iter().map(|e| e.2));
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let sx = |v: f64| scale(v, axes.x, (x0, x1));
    let sy = |v: f64| scale(v, axes.y, (y0, y1));
    let sa = |v: f64| scale(v, (0.0, 1.0), (y0, y1));
    let loss_points = polyline(losses.iter().enumerate().map(|(i, &l)| (sx(i as f64 + 1.0), sy(l as f64))));
    let acc_points = polyline(evals.iter().map(|&(s, a, _)| (sx(s as f64), sa(a as f64))));
    let chance = sy(std::f64::consts::LN_2);
    let (xs, ys) = (axes.x_spacing(), axes.y_spacing());
    html! {
        <svg class="chart" data-testid="loss-chart" viewBox={format!("0 0 {W} {H}")} role="img"
            aria-label="training loss and held-out accuracy by step">
            // Grid and y ticks (loss, left).
            { for axes.y_ticks.iter().map(|&t| html! {
                <g>
                    <line class="grid" x1={coord(x0)} x2={coord(x1)} y1={coord(sy(t))} y2={coord(sy(t))} />
                    <text class="tick" x={coord(x0 - 8.0)} y={coord(sy(t) + 4.0)} text-anchor="end">{ tick_label(t, ys) }</text>
                </g>
            }) }
            // Accuracy ticks (right).
            { for [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&t| html! {
                <text class="tick acc" x={coord(x1 + 8.0)} y={coord(sa(t) + 4.0)} text-anchor="start">{ format!("{t:.2}") }</text>
            }) }
            // x ticks.
            { for axes.x_ticks.iter().map(|&t| html! {
                <g>
                    <line class="axis" x1={coord(sx(t))} x2={coord(sx(t))} y1={coord(y0)} y2={coord(y0 + 5.0)} />
                    <text class="tick" x={coord(sx(t))} y={coord(y0 + 18.0)} text-anchor="middle">{ tick_label(t, xs) }</text>
                </g>
            }) }
            <line class="axis" x1={coord(x0)} x2={coord(x1)} y1={coord(y0)} y2={coord(y0)} />
            <line class="axis" x1={coord(x0)} x2={coord(x0)} y1={coord(y0)} y2={coord(y1)} />
            <line class="axis" x1={coord(x1)} x2={coord(x1)} y1={coord(y0)} y2={coord(y1)} />
            // Chance level: loss ln 2 when P = ½ for every pair.
            <line class="chance" x1={coord(x0)} x2={coord(x1)} y1={coord(chance)} y2={coord(chance)} />
            <text class="chance-label" x={coord(x1 - 4.0)} y={coord(chance - 5.0)} text-anchor="end">{ "chance (ln 2)" }</text>
            // Axis titles.
            <text class="title" x={coord((x0 + x1) / 2.0)} y={coord(H - 6.0)} text-anchor="middle">{ "step" }</text>
            <text class="title loss" transform={format!("translate(16 {}) rotate(-90)", coord((y0 + y1) / 2.0))} text-anchor="middle">{ "training loss (−log σ)" }</text>
            <text class="title acc" transform={format!("translate({} {}) rotate(90)", coord(W - 14.0), coord((y0 + y1) / 2.0))} text-anchor="middle">{ "held-out accuracy" }</text>
            // Series.
            <polyline class="series loss" points={loss_points} />
            <polyline class="series acc" points={acc_points} />
            { for evals.iter().map(|&(s, a, _)| html! {
                <circle class="dot acc" cx={coord(sx(s as f64))} cy={coord(sa(a as f64))} r="3" />
            }) }
        </svg>
    }
}

#[derive(Properties, PartialEq)]
pub struct DataPlotProps {
    pub picture: ByPtr<DataPicture>,
}

/// Items as coloured points, sampled pairs as arrows from chosen to rejected.
#[function_component(DataPlot)]
pub(super) fn data_plot(props: &DataPlotProps) -> Html {
    let pic = &props.picture.0;
    const SIZE: f64 = 360.0;
    const PAD: f64 = 14.0;
    let e = pic.extent as f64;
    let px = |v: f32| scale(v as f64, (-e, e), (PAD, SIZE - PAD));
    let py = |v: f32| scale(v as f64, (-e, e), (SIZE - PAD, PAD));
    let radius = 3.5;
    let arrows = pic.arrows.iter().filter_map(|&(c, r)| {
        let (a, b) = (&pic.items[c], &pic.items[r]);
        let (ax, ay, bx, by) = (px(a.x), py(a.y), px(b.x), py(b.y));
        let len = ((bx - ax).powi(2) + (by - ay).powi(2)).sqrt();
        if len < 3.0 * radius {
            return None;
        }
        // Start and stop at the points' edges so the head is visible.
        let (ux, uy) = ((bx - ax) / len, (by - ay) / len);
        let (sx, sy, ex, ey) = (ax + ux * radius, ay + uy * radius, bx - ux * (radius + 1.0), by - uy * (radius + 1.0));
        Some(html! { <line class="arrow" x1={coord(sx)} y1={coord(sy)} x2={coord(ex)} y2={coord(ey)} marker-end="url(#arrowhead)" /> })
    });
    html! {
        <svg class="data-plot" data-testid="data-plot" viewBox={format!("0 0 {SIZE} {SIZE}")} role="img"
            aria-label="items as points, sampled pairs as arrows from chosen to rejected">
            <defs>
                <marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
                    <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
                </marker>
            </defs>
            <line class="axis-faint" x1={coord(px(0.0))} x2={coord(px(0.0))} y1={coord(PAD)} y2={coord(SIZE - PAD)} />
            <line class="axis-faint" y1={coord(py(0.0))} y2={coord(py(0.0))} x1={coord(PAD)} x2={coord(SIZE - PAD)} />
            { for arrows }
            { for pic.items.iter().map(|p| html! {
                <circle class="item" cx={coord(px(p.x))} cy={coord(py(p.y))} r={coord(radius)} fill={p.colour.clone()}>
                    <title>{ p.label.clone() }</title>
                </circle>
            }) }
        </svg>
    }
}
