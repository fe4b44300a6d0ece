//! Computes a model's decision surface on the page's backend and paints it under the data plot.

use burn::tensor::{Tensor, TensorData};
use prefscope_core::PreferenceModel;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::backend::{AnyModel, on_model};
use crate::by_ptr::ByPtr;
use crate::surface::{Field, Surface, grid_points};

/// Grid points per side; the browser smooths the small canvas when it scales it up.
pub const N: usize = 64;

/// The model's field on the grid over `[-extent, extent]²`; an error for models without one.
pub async fn compute(model: AnyModel, extent: f32, step: usize) -> Result<Surface, String> {
    let points: Vec<f32> = grid_points(N, extent).into_iter().flatten().collect();
    let field = on_model!(&model, |m, device| {
        let x = Tensor::from_data(TensorData::new(points.clone(), [N * N, 2]), device);
        let (t, kind) = match m {
            PreferenceModel::Bt(b) => (b.reward(x).reshape([N * N]), 0),
            PreferenceModel::MultiObjective(mo) => {
                let r = mo.rewards(x);
                let k = r.dims()[1];
                (r.reshape([N * N * k]), k)
            }
            PreferenceModel::Gpm(g) => {
                let e = g.embed(x).narrow(1, 0, 2);
                let (ex, ey) = (e.clone().narrow(1, 0, 1), e.narrow(1, 1, 1));
                (ey.atan2(ex).reshape([N * N]), usize::MAX)
            }
            other => return Err(format!("no decision surface for the {} model", other.kind().name())),
        };
        let data = t.into_data_async().await.map_err(|e| format!("{e:?}"))?;
        let v = data.convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        match kind {
            0 => Field::Reward(v),
            usize::MAX => Field::Angle(v),
            k => Field::Objectives { k, values: v },
        }
    });
    Ok(Surface { n: N, extent, field, step })
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub surface: ByPtr<Surface>,
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

fn paint(canvas: &HtmlCanvasElement, s: &Surface, v: &[f64]) {
    let pixels = s.pixels(v);
    if let Some(ctx) = canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        && let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), s.n as u32, s.n as u32)
    {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
}
