//! Weights drawn on the host from a seeded [`Rng`], so a model's start depends on its seed and
//! shapes only, on every backend and target.

use burn::module::{ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use crate::runtime::kernels::Backend;
use crate::runtime::rng::Rng;

/// Re-draws every weight from our host generator, N(0, σ²) with the spread of burn's default
/// initialiser for that layer (Linear: Kaiming-uniform with bound 1/√fan_in, so σ = 1/√(3·fan_in);
/// Embedding: σ = 1); constants (LayerNorm's γ = 1, β = 0) stay. Backend RNGs are global and shared
/// between threads, so drawing here is what makes a start reproducible: the result depends on
/// the seed and the shapes only.
pub(crate) struct HostInit {
    rng: Rng,
    /// The field being mapped and the module type holding it (from `enter_module`).
    field: (String, String),
    /// Fan-in of the last Linear weight, for its bias.
    fan_in: usize,
}

impl HostInit {
    pub(crate) fn new(rng: Rng) -> Self {
        Self { rng, field: Default::default(), fan_in: 1 }
    }
}

impl<B: Backend> ModuleMapper<B> for HostInit {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.field = (name.to_string(), container_type.to_string());
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let tensor = param.into_value();
        let dims = tensor.dims();
        let std = match (self.field.1.as_str(), self.field.0.as_str()) {
            ("Struct:Embedding", _) => 1.0,
            ("Struct:Linear", "weight") => {
                self.fan_in = dims[0];
                (3.0 * dims[0] as f64).sqrt().recip()
            }
            ("Struct:Linear", "bias") => (3.0 * self.fan_in as f64).sqrt().recip(),
            _ => return Param::from_tensor(tensor),
        };
        let n: usize = dims.iter().product();
        let redrawn: Vec<f32> = (0..n).map(|_| (std * self.rng.normal()) as f32).collect();
        let fresh = Tensor::from_data(TensorData::new(redrawn, dims), &tensor.device());
        // A new parameter, trainable (the optimiser has not seen the old one).
        Param::from_tensor(fresh)
    }
}
