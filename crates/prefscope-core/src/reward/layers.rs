//! The layers every reward model is built from: dense layers initialised from our own generator
//! (so every backend starts from the same point) and MLPs of them.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};

use crate::runtime::kernels::Backend;
use crate::runtime::rng::Rng;

/// A fully connected layer y = xW + b, initialised from our own generator: W ~ N(0, gain²/fan_in)
/// (He init for gain √2), b = 0.
///
/// Zero biases matter for GPM: with PyTorch's uniform bias init every item's embedding starts in
/// the same narrow cone, and on a 4-cycle the embeddings then collapse to the s ≡ 0 saddle.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Dense<B> {
    pub fn new(d_in: usize, d_out: usize, bias: bool, gain: f64, rng: &mut Rng, device: &B::Device) -> Self {
        let std = gain / (d_in as f64).sqrt();
        let w: Vec<f32> = (0..d_in * d_out).map(|_| (rng.normal() * std) as f32).collect();
        let weight = Tensor::from_data(TensorData::new(w, [d_in, d_out]), device);
        let bias = bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device)));
        Self { weight: Param::from_tensor(weight), bias }
    }

    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }
}

/// Dense layers with GELU between them (none after the last).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub layers: Vec<Dense<B>>,
}

impl<B: Backend> Mlp<B> {
    pub fn new(d_in: usize, hidden: &[usize], d_out: usize, rng: &mut Rng, device: &B::Device) -> Self {
        let widths: Vec<usize> = std::iter::once(d_in).chain(hidden.iter().copied()).chain([d_out]).collect();
        let last = widths.len() - 2;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::new(w[0], w[1], true, if i < last { std::f64::consts::SQRT_2 } else { 1.0 }, rng, device))
            .collect();
        Self { layers }
    }

    /// The last hidden layer's activations (the input itself without hidden layers): what a
    /// linear probe reads (MRMBench).
    pub fn hidden(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        for layer in &self.layers[..self.layers.len() - 1] {
            x = crate::runtime::kernels::gelu(layer.forward(x));
        }
        x
    }

    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = crate::runtime::kernels::gelu(x);
            }
        }
        x
    }
}
