//! A model's decision surface on a grid over the data's plane.

use burn::tensor::{Tensor, TensorData};
use prefscope_core::PreferenceModel;

use crate::backend::{AnyModel, on_model};
use crate::surface::{DecisionSurface, Field, grid_points};

/// Grid points per side; the browser smooths the small canvas when it scales it up.
pub const N: usize = 64;

/// The model's field on the grid over `[-extent, extent]²`; an error for models without one.
pub async fn compute(model: AnyModel, extent: f32, step: usize) -> Result<DecisionSurface, String> {
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
            // The reward under every one-hot context, point-major: [r(c₀, x), r(c₁, x), …] per
            // point, which the page weighs by the chosen context (a one-hot v).
            PreferenceModel::ContextBt(c) => {
                let k = c.mlp.layers[0].weight.val().dims()[0].saturating_sub(2);
                if k == 0 {
                    return Err("the context-aware model has no context features".to_string());
                }
                let rows: Vec<f32> = points.chunks(2).flat_map(|p| (0..k).flat_map(move |j| (0..k).map(move |i| if i == j { 1.0 } else { 0.0 }).chain(p.iter().copied()))).collect();
                let input = Tensor::from_data(TensorData::new(rows, [N * N * k, k + 2]), device);
                (c.mlp.forward(input).reshape([N * N * k]), k)
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
    Ok(DecisionSurface { n: N, extent, field, step })
}
