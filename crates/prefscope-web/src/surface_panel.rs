//! Computes a model's decision surface on the page's backend and paints it under the data plot.

use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::compute::surface::N;
use crate::by_ptr::ByPtr;
use crate::surface::DecisionSurface;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub surface: ByPtr<DecisionSurface>,
    /// The dial's direction or weights v, for the multi-objective model's v·r.
    pub direction: Vec<f64>,
}

/// The surface as a canvas; the data plot is laid over it.
#[function_component(SurfaceCanvas)]
pub fn surface_canvas(props: &Props) -> Html {
    let canvas = use_node_ref();
    {
        let canvas = canvas.clone();
        // Bits, so the dependency compares exactly (f64 is not Eq).
        use_effect_with((props.surface.clone(), props.direction.iter().map(|x| x.to_bits()).collect::<Vec<u64>>()), move |(surface, v)| {
            if let Some(c) = canvas.cast::<HtmlCanvasElement>() {
                paint(&c, &surface.0, &v.iter().map(|&b| f64::from_bits(b)).collect::<Vec<_>>());
            }
        });
    }
    html! { <canvas ref={canvas} class="surface" width={N.to_string()} height={N.to_string()} aria-hidden="true"></canvas> }
}

fn paint(canvas: &HtmlCanvasElement, s: &DecisionSurface, v: &[f64]) {
    let pixels = s.pixels(v);
    if let Some(ctx) = canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        && let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), s.n as u32, s.n as u32)
    {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
}
