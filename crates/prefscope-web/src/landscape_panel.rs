//! The loss-landscape panel: computes a [`Slice`] on the page's backend and draws it.
//!
//! The grid is evaluated by the core's batched [`Surface::losses`] on the model's own backend
//! (WebGPU or the CPU). The heatmap is rendered by `shaders/landscape.wgsl` on WebGPU when the
//! page trains on WebGPU (offscreen, then shown on a 2-D canvas: see `heatmap.js`), otherwise by
//! [`rasterise`] on the CPU; an SVG on top carries the trajectory, the current weights and the axes.


use js_sys::{Float32Array, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlInputElement, HtmlSelectElement, ImageData};
use yew::prelude::*;

use crate::by_ptr::ByPtr;
use crate::landscape::{CONTOURS, ColourScale, Slice, css_colour, log_ticks, rasterise_rows};
use crate::plot::{coord, nice_ticks, polyline, scale, tick_label};
use crate::settings::{GRID, Plane};

const SHADER: &str = include_str!("../../../shaders/landscape.wgsl");
/// Canvas pixels per side.
const SIZE: usize = 360;
#[wasm_bindgen(module = "/src/heatmap.js")]
extern "C" {
    /// Renders with the shader and puts the pixels on the 2-D `canvas`; resolves to '' or why not.
    #[wasm_bindgen(js_name = drawHeatmapWebGpu)]
    fn draw_heatmap_webgpu(canvas: &HtmlCanvasElement, code: &str, values: &Float32Array, n: u32, lo: f32, hi: f32, log_scale: bool, contours: f32) -> js_sys::Promise;
}

/// Where the panel stands.
#[derive(Clone, Debug, PartialEq)]
pub enum PanelState {
    Idle,
    Computing,
    Failed(String),
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub slice: Option<ByPtr<Slice>>,
    pub state: PanelState,
    pub plane: Plane,
    pub grid: usize,
    pub log: bool,
    /// Render with the WGSL shader (the page trains on WebGPU) or on the CPU.
    pub webgpu: bool,
    pub on_plane: Callback<Plane>,
    pub on_grid: Callback<usize>,
    pub on_log: Callback<bool>,
    pub on_compute: Callback<()>,
}

#[function_component(LandscapePanel)]
pub fn landscape_panel(props: &Props) -> Html {
    let canvas = use_node_ref();
    // Who drew the picture: "webgpu" (the shader), "canvas2d" (the CPU) or "" before the first.
    let renderer = use_state(String::new);
    {
        let (canvas, renderer) = (canvas.clone(), renderer.clone());
        use_effect_with((props.slice.clone(), props.log, props.webgpu), move |(slice, log, webgpu)| {
            if let Some(slice) = slice.clone() {
                let (log, webgpu) = (*log, *webgpu);
                wasm_bindgen_futures::spawn_local(async move {
                    let used = draw(&slice.0, log, webgpu, &canvas).await;
                    set_hook("landscapeRenderer", &JsValue::from_str(&used));
                    renderer.set(used);
                });
            }
        });
    }

    let on_plane = props.on_plane.reform(|e: Event| Plane::parse(&e.target_unchecked_into::<HtmlSelectElement>().value()).unwrap_or_default());
    let on_grid = props.on_grid.reform(|e: Event| e.target_unchecked_into::<HtmlSelectElement>().value().parse().unwrap_or(41));
    let on_log = props.on_log.reform(|e: Event| e.target_unchecked_into::<HtmlInputElement>().checked());
    let on_compute = props.on_compute.reform(|_| ());
    let status = match &props.state {
        PanelState::Computing => "computing".to_string(),
        PanelState::Failed(e) => format!("error: {e}"),
        PanelState::Idle if props.slice.is_some() => "ready".into(),
        PanelState::Idle => "not computed yet".into(),
    };
    let grids = [21usize, 31, 41, 61].into_iter().filter(|n| GRID.contains(n)).chain((![21, 31, 41, 61].contains(&props.grid)).then_some(props.grid));
    html! {
        <>
            <p class="desc">{ "The training loss (mean −log σ over all training pairs) on a plane through the current weights θ: θ + a·d₁ + b·d₂. Random planes use filter-normalised directions (Li et al. 2018: each neuron's direction scaled to that neuron's weight norm, biases zero); the PCA plane spans the training trajectory's two main directions, with the path drawn on it. The whole grid is one batched forward pass on this page's backend. Recomputed on pause and at the end of training." }</p>
            <div class="row controls">
                <label class="field">
                    <span>{ "Plane" }</span>
                    <select data-testid="landscape-plane" onchange={on_plane}>
                        <option value="random" selected={props.plane == Plane::Random}>{ "random (filter-normalised)" }</option>
                        <option value="pca" selected={props.plane == Plane::Pca}>{ "PCA of the trajectory" }</option>
                    </select>
                </label>
                <label class="field">
                    <span>{ "Grid" }</span>
                    <select data-testid="landscape-grid" onchange={on_grid}>
                        { for grids.map(|n| html! { <option value={n.to_string()} selected={n == props.grid}>{ format!("{n} × {n}") }</option> }) }
                    </select>
                </label>
                <label class="check">
                    <input type="checkbox" data-testid="landscape-log" checked={props.log} onchange={on_log} />{ "log colour scale" }
                </label>
                <button data-testid="landscape-compute" disabled={props.state == PanelState::Computing} onclick={on_compute}>{ "Compute" }</button>
            </div>
            <p class="caption" data-testid="landscape-status" aria-live="polite">{ status }</p>
            <div class="landscape-body">
                <div class="heatmap" data-testid="landscape-canvas" data-renderer={(*renderer).clone()}>
                    <canvas ref={canvas} width={SIZE.to_string()} height={SIZE.to_string()} aria-hidden="true"></canvas>
                    if let Some(s) = &props.slice { { overlay(&s.0) } }
                </div>
                if let Some(s) = &props.slice {
                    <div class="landscape-side">
                        { legend(&s.0, props.log) }
                        { stats(&s.0) }
                        { interpolation(&s.0) }
                    </div>
                }
            </div>
        </>
    }
}

/// Render with the shader when asked and possible, else on the CPU; returns which did.
async fn draw(slice: &Slice, log: bool, webgpu: bool, node: &NodeRef) -> String {
    let scale = ColourScale::new(slice.range(), log);
    let Some(canvas) = node.cast::<HtmlCanvasElement>() else { return String::new() };
    if webgpu {
        let values = Float32Array::from(slice.values.as_slice());
        let promise = draw_heatmap_webgpu(&canvas, SHADER, &values, slice.n as u32, scale.lo as f32, scale.hi as f32, log, CONTOURS);
        match wasm_bindgen_futures::JsFuture::from(promise).await.map(|v| v.as_string().unwrap_or_default()) {
            Ok(why) if why.is_empty() => return "webgpu".into(),
            Ok(why) => web_sys::console::warn_1(&format!("landscape: WebGPU rendering failed ({why}); drawing on the CPU").into()),
            Err(e) => web_sys::console::warn_1(&e),
        }
    }
    let Some(ctx) = canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok()) else { return String::new() };
    // A band of rows per task: the whole 360 × 360 picture at once held the page's thread for
    // tens of milliseconds (a long task) on a busy machine.
    for start in (0..SIZE).step_by(BAND) {
        if start > 0 {
            gloo_timers::future::TimeoutFuture::new(0).await;
        }
        let rows = start..(start + BAND).min(SIZE);
        let pixels = rasterise_rows(&slice.values, slice.n, SIZE, &scale, rows.clone());
        let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), SIZE as u32, rows.len() as u32) else { return String::new() };
        let _ = ctx.put_image_data(&img, 0.0, start as f64);
    }
    "canvas2d".into()
}

/// Rows of the CPU-drawn heatmap per task.
const BAND: usize = 60;

/// Set `window.__prefscope[key]`.
pub fn set_hook(key: &str, value: &JsValue) {
    if let Some(hook) = web_sys::window().and_then(|w| Reflect::get(&w, &"__prefscope".into()).ok()).filter(JsValue::is_object) {
        let _ = Reflect::set(&hook, &key.into(), value);
    }
}

/// Trajectory, current weights and axis labels over the heatmap.
fn overlay(s: &Slice) -> Html {
    let size = SIZE as f64;
    let x = |a: f64| scale(a, (s.a.0 as f64, s.a.1 as f64), (0.0, size));
    let y = |b: f64| scale(b, (s.b.0 as f64, s.b.1 as f64), (size, 0.0));
    let (cx, cy) = (x(0.0), y(0.0));
    let path = polyline(s.trajectory.iter().map(|c| (x(c[0]), y(c[1]))));
    let (ax, bx) = match s.explained {
        Some([e1, e2]) => (format!("PC1 ({:.0} % of the path's variance)", 100.0 * e1), format!("PC2 ({:.0} %)", 100.0 * e2)),
        None => ("d₁".to_string(), "d₂".to_string()),
    };
    html! {
        <svg viewBox={format!("0 0 {SIZE} {SIZE}")} role="img" aria-label="loss landscape around the current weights">
            if !s.trajectory.is_empty() {
                <polyline class="trajectory" data-testid="landscape-trajectory" points={path} data-points={s.trajectory.len().to_string()} />
                { for s.trajectory.first().map(|c| html! { <circle class="start" cx={coord(x(c[0]))} cy={coord(y(c[1]))} r="4"><title>{ "initial weights" }</title></circle> }) }
            }
            <path class="here" d={format!("M {} {} h 12 M {} {} v 12", coord(cx - 6.0), coord(cy), coord(cx), coord(cy - 6.0))} />
            <text class="axis-label" x={coord(size - 6.0)} y={coord(size - 6.0)} text-anchor="end">{ format!("{ax}: {:.2} … {:.2}", s.a.0, s.a.1) }</text>
            <text class="axis-label" x="6" y="14">{ format!("{bx}: {:.2} … {:.2}", s.b.0, s.b.1) }</text>
        </svg>
    }
}

const BANDS: usize = 60;

/// A horizontal colour bar with loss ticks.
fn legend(s: &Slice, log: bool) -> Html {
    let sc = ColourScale::new(s.range(), log);
    let (w, bar) = (300.0, 14.0);
    let (ticks, spacing) = match log.then(|| log_ticks(sc.lo, sc.hi)).flatten() {
        // Labels as precise as the smallest tick needs.
        Some(t) => {
            let s = t[0];
            (t, s)
        }
        None => {
            let t = nice_ticks(sc.lo, sc.hi, 6);
            let s = if t.len() > 1 { t[1] - t[0] } else { 1.0 };
            (t, s)
        }
    };
    html! {
        <svg class="legend-bar" data-testid="landscape-legend" viewBox={format!("0 0 {w} 40")} role="img" aria-label="colour scale of the loss">
            // Narrow bands rather than a gradient: exact colours, and nothing to reference by id.
            { for (0..BANDS).map(|k| {
                let t = (k as f64 + 0.5) / BANDS as f64;
                html! { <rect x={coord(k as f64 * w / BANDS as f64)} y="0" width={coord(w / BANDS as f64 + 0.6)} height={bar.to_string()} fill={css_colour(t)} /> }
            }) }
            { for ticks.iter().filter(|&&t| t >= sc.lo && t <= sc.hi).map(|&t| {
                let px = sc.t(t) * w;
                html! {
                    <g>
                        <line class="axis" x1={coord(px)} x2={coord(px)} y1={bar.to_string()} y2={(bar + 4.0).to_string()} />
                        <text class="tick" x={coord(px.clamp(8.0, w - 8.0))} y="32" text-anchor="middle">{ tick_label(t, spacing) }</text>
                    </g>
                }
            }) }
        </svg>
    }
}

fn stats(s: &Slice) -> Html {
    let (lo, hi) = s.range();
    html! {
        <div class="stats compact">
            <div class="stat"><span class="k">{ "grid centre" }</span><span class="v" data-testid="landscape-centre">{ format!("{:.5}", s.centre()) }</span></div>
            <div class="stat"><span class="k">{ "model's loss" }</span><span class="v" data-testid="landscape-current">{ format!("{:.5}", s.current_loss) }</span></div>
            <div class="stat"><span class="k">{ "range" }</span><span class="v">{ format!("{lo:.3} – {hi:.3}") }</span></div>
            <div class="stat"><span class="k">{ "at step" }</span><span class="v">{ s.step }</span></div>
        </div>
    }
}

/// The loss along the line from the initial weights (t = 0) to the current ones (t = 1).
fn interpolation(s: &Slice) -> Html {
    if s.line.is_empty() {
        return html! { <p class="caption">{ "Train to see the loss on the straight line from the initial to the current weights." }</p> };
    }
    let (w, h, pad) = (300.0, 150.0, 30.0);
    let hi = s.line.iter().map(|p| p.1 as f64).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let ticks = nice_ticks(0.0, hi, 3);
    let top = *ticks.last().unwrap_or(&1.0);
    let x = |t: f64| scale(t, (-0.5, 1.5), (pad, w - 8.0));
    let y = |v: f64| scale(v, (0.0, top), (h - 22.0, 8.0));
    let spacing = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
    html! {
        <svg class="chart small" data-testid="landscape-line" viewBox={format!("0 0 {w} {h}")} role="img" aria-label="loss from the initial to the current weights">
            { for ticks.iter().map(|&t| html! {
                <g>
                    <line class="grid" x1={coord(pad)} x2={coord(w - 8.0)} y1={coord(y(t))} y2={coord(y(t))} />
                    <text class="tick" x={coord(pad - 4.0)} y={coord(y(t) + 4.0)} text-anchor="end">{ tick_label(t, spacing) }</text>
                </g>
            }) }
            { for [(0.0, "θ₀"), (1.0, "θ")].iter().map(|&(t, label)| html! {
                <g>
                    <line class="marker" x1={coord(x(t))} x2={coord(x(t))} y1="8" y2={coord(h - 22.0)} />
                    <text class="tick" x={coord(x(t))} y={coord(h - 6.0)} text-anchor="middle">{ label }</text>
                </g>
            }) }
            <polyline class="series loss" points={polyline(s.line.iter().map(|&(t, v)| (x(t as f64), y((v as f64).min(top)))))} />
        </svg>
    }
}
