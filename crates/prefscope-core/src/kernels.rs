//! The core's backend: burn's `Backend` extended with fused kernels, each with a hand-written
//! backward pass (burn's backend-extension mechanism, as in its `custom-*-kernel` examples).
//!
//! Every model in the core is generic over [`Backend`] (this trait, not burn's), so a backend
//! can replace a chain of tensor ops with one kernel. The default methods are burn's own ops, so
//! the GPU backends and ndarray compute exactly what they computed before; burn-flex, the
//! native CPU backend, gets kernels of its own. [`Autodiff`] records each kernel as one node of
//! the graph whose backward pass is the matching backward kernel.
//!
//! Why GELU: burn-flex evaluates erf with scalar libm calls on one thread, which took 30 % of an
//! `mlp-bt` training step (perf, 2-core EPYC). The kernel here is branch-free f32 arithmetic that
//! the compiler vectorises (AVX-512, AVX2 or the baseline, picked at run time), split over rayon's
//! threads by fixed-size chunks, so its result does not depend on the thread count or the ISA.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ndarray::{FloatNdArrayElement, NdArray, NdArrayTensor, SharedArray};
use burn::tensor::ops::{ActivationOps, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

/// burn's backend plus the core's fused kernels. Defaults are burn's own ops.
pub trait Backend: burn::tensor::backend::Backend {
    /// GELU, exact (erf) form: x·Φ(x).
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }

    /// The gradient through GELU: `grad`·(Φ(x) + x·φ(x)). The default composes burn's ops. (burn's
    /// own `gelu_backward` is the derivative of GELU's tanh approximation, 2e-4 off the exact
    /// one at places: the CPU kernel is exact, and every backend must follow the same curve.)
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        gelu_backward_composed::<Self>(x, grad)
    }
}

/// `grad`·(Φ(x) + x·φ(x)) from burn's element-wise ops, for backends without a kernel.
pub fn gelu_backward_composed<B: burn::tensor::backend::Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    let cdf = B::float_mul_scalar(B::float_add_scalar(B::float_erf(B::float_mul_scalar(x.clone(), FRAC_1_SQRT_2.into())), 1.0.into()), 0.5.into());
    let square = B::float_mul(x.clone(), x.clone());
    let pdf = B::float_mul_scalar(B::float_exp(B::float_mul_scalar(square, (-0.5).into())), (1.0 / (2.0 * PI).sqrt()).into());
    B::float_mul(B::float_add(cdf, B::float_mul(x, pdf)), grad)
}

/// An autodiff backend whose inner backend also has the core's kernels.
pub trait AutodiffBackend: Backend + burn::tensor::backend::AutodiffBackend<InnerBackend: Backend> {}

impl<B> AutodiffBackend for B where B: Backend + burn::tensor::backend::AutodiffBackend<InnerBackend: Backend> {}

/// GELU through the backend's kernel.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::fused_gelu(x.into_primitive().tensor())))
}

impl<B: Backend, C: CheckpointStrategy> Backend for Autodiff<B, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluBackward;

        impl<B: Backend> Backward<B, 1> for GeluBackward {
            // The input: the backward kernel needs x, not the output.
            type State = FloatTensor<B>;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::fused_gelu_backward(x, grad));
            }
        }

        match GeluBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::fused_gelu(x.primitive.clone());
                prep.finish(x.primitive, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.primitive)),
        }
    }
}

impl<E: FloatNdArrayElement> Backend for NdArray<E>
where
    NdArrayTensor: From<SharedArray<E>>,
    NdArrayTensor: From<SharedArray<i64>>,
{
}

#[cfg(feature = "cubecl")]
impl<R, F, I, BT> Backend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    R::Server: burn_cubecl::cubecl::server::ComputeServer,
    R::Device: burn::tensor::backend::DeviceOps,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
{
}

impl Backend for burn_flex::Flex {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        flex::map(&x, None, cpu::gelu).unwrap_or_else(|| <Self as ActivationOps<Self>>::gelu(x))
    }

    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        flex::map(&x, Some(&grad), cpu::gelu_backward).unwrap_or_else(|| <Self as ActivationOps<Self>>::gelu_backward(x, grad))
    }
}

/// Element-wise kernels over burn-flex tensors.
mod flex {
    use burn::tensor::{DType, TensorData};
    use burn_flex::FlexTensor;

    /// A slice kernel: inputs x (and g), output.
    pub type Kernel = fn(&[f32], Option<&[f32]>, &mut [f32]);

    /// `f` over `x` (and `g`, of the same shape) into a new tensor of `x`'s shape, or None when a
    /// tensor is not f32 (the caller falls back to burn's op).
    pub fn map(x: &FlexTensor, g: Option<&FlexTensor>, f: Kernel) -> Option<FlexTensor> {
        let f32_of = |t: &FlexTensor| (t.dtype() == DType::F32).then(|| t.to_contiguous());
        let x_c = f32_of(x)?;
        let g_c = match g {
            Some(g) if g.layout().shape() == x.layout().shape() => Some(f32_of(g)?),
            Some(_) => return None,
            None => None,
        };
        // Contiguous and whole-buffer after `to_contiguous`: storage is exactly the values.
        let out = chunked(x_c.storage::<f32>(), g_c.as_ref().map(|g| g.storage::<f32>()), f);
        Some(FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone())))
    }

    /// `f` chunk by chunk, on rayon's threads when the crate has them. The chunks are fixed, so
    /// the result is the same on any number of threads.
    pub fn chunked(x: &[f32], g: Option<&[f32]>, f: Kernel) -> Vec<f32> {
        const CHUNK: usize = 16 * 1024;
        let mut out = vec![0.0f32; x.len()];
        let run = |(i, o): (usize, &mut [f32])| {
            let r = i * CHUNK..i * CHUNK + o.len();
            f(&x[r.clone()], g.map(|g| &g[r]), o)
        };
        #[cfg(feature = "threads")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(CHUNK).enumerate().for_each(run);
        }
        #[cfg(not(feature = "threads"))]
        out.chunks_mut(CHUNK).enumerate().for_each(run);
        out
    }
}

/// Branch-free f32 kernels over slices, compiled once per instruction set and chosen at run
/// time. Only IEEE add, mul, div and bit operations are used (no FMA contraction, no reciprocal
/// estimates), so every instruction set gives the same bits.
pub mod cpu {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const INV_SQRT_2PI: f32 = 0.398_942_3;

    /// e^x for x in [−87, 88] (clamped outside): Cody–Waite reduction by ln 2 and Cephes' degree-6
    /// polynomial; relative error about 1e-7.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        let x = x.clamp(-87.0, 88.0);
        // Round to the nearest integer without a libm call: adding 1.5·2^23 rounds in the FPU.
        const SHIFT: f32 = 12_582_912.0;
        let shifted = x * std::f32::consts::LOG2_E + SHIFT;
        let n = shifted - SHIFT;
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1;
        let e = p * r * r + r + 1.0;
        // 2^n from the integer in `shifted`'s low mantissa bits (integer ops vectorise; a float
        // to int cast would be scalarised for its saturation).
        let two_n = f32::from_bits(shifted.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23);
        e * two_n
    }

    /// Φ(x), the standard normal CDF, and φ(x), its density. Φ comes from erfc's Chebyshev fit
    /// (Numerical Recipes' `erfcc`, fractional error < 1.2e-7), so Φ keeps its relative accuracy
    /// far into the left tail, where GELU's value lives.
    #[inline(always)]
    pub fn cdf_pdf(x: f32) -> (f32, f32) {
        let z = x.abs() * SQRT_HALF;
        let t = 1.0 / (1.0 + 0.5 * z);
        let poly = -1.265_512_2
            + t * (1.000_023_7 + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
        let gauss = exp(-z * z);
        let erfc = t * gauss * exp(poly);
        let tail = 0.5 * erfc;
        let cdf = if x < 0.0 { tail } else { 1.0 - tail };
        (cdf, INV_SQRT_2PI * gauss)
    }

    #[inline(always)]
    fn gelu_body(x: &[f32], _: Option<&[f32]>, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * cdf_pdf(v).0;
        }
    }

    #[inline(always)]
    fn gelu_backward_body(x: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
        let g = g.expect("the backward kernel takes the gradient");
        for ((o, &v), &d) in out.iter_mut().zip(x).zip(g) {
            let (cdf, pdf) = cdf_pdf(v);
            *o = d * (cdf + v * pdf);
        }
    }

    /// Defines `$name` as `$body` compiled for AVX-512 and AVX2 as well as the baseline, with the
    /// widest the CPU has picked at run time.
    macro_rules! dispatched {
        ($name:ident, $body:ident) => {
            pub fn $name(x: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512(x: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
                        $body(x, g, out)
                    }
                    #[target_feature(enable = "avx2")]
                    fn avx2(x: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
                        $body(x, g, out)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has the instructions the function was compiled for.
                        return unsafe { avx512(x, g, out) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: as above.
                        return unsafe { avx2(x, g, out) };
                    }
                }
                $body(x, g, out)
            }
        };
    }

    dispatched!(gelu, gelu_body);
    dispatched!(gelu_backward, gelu_backward_body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, TensorData};

    type Ad = Autodiff<Flex>;

    /// Φ in double precision from libm's erfc (accurate in the left tail too).
    fn cdf_ref(x: f64) -> f64 {
        0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
    }

    fn gelu_ref(x: f64) -> f64 {
        x * cdf_ref(x)
    }

    #[test]
    fn exp_and_cdf_match_double_precision() {
        let mut worst_exp = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let rel = ((cpu::exp(x) as f64) - (x as f64).exp()).abs() / (x as f64).exp();
            worst_exp = worst_exp.max(rel);
        }
        assert!(worst_exp < 3e-7, "exp relative error {worst_exp:e}");
        // Φ over the range GELU sees, including the far left tail. There Φ's condition number is
        // about x² (an f32 x is itself only known to 6e-8 relative), so the bound scales with it.
        let mut worst_cdf = 0.0f64;
        for i in -1200..=1200 {
            let x = i as f32 * 0.01;
            let want = cdf_ref(x as f64);
            let got = cpu::cdf_pdf(x).0 as f64;
            worst_cdf = worst_cdf.max((got - want).abs() / want / (1.0 + (x as f64).powi(2)));
        }
        assert!(worst_cdf < 3e-7, "Φ relative error / (1 + x²) {worst_cdf:e}");
    }

    #[test]
    fn fused_gelu_forward_and_backward_equal_burns_ops() {
        let device = Default::default();
        let x = Tensor::<Ad, 2>::random([300, 77], Distribution::Normal(0.0, 3.0), &device).require_grad();
        let w = Tensor::<Ad, 2>::random([300, 77], Distribution::Normal(0.0, 1.0), &device);
        // Fused: one node with its own backward kernel.
        let fused = gelu(x.clone());
        let g_fused = (fused.clone() * w.clone()).sum().backward();
        // Unfused: burn-flex's gelu node (scalar libm erf) and its backward.
        let plain = burn::tensor::activation::gelu(x.clone());
        let g_plain = (plain.clone() * w).sum().backward();
        let (a, b): (Vec<f32>, Vec<f32>) = (fused.into_data().to_vec().unwrap(), plain.into_data().to_vec().unwrap());
        let worst = a.iter().zip(&b).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f32::max);
        assert!(worst < 1e-6, "forward differs by {worst:e}");
        let (a, b): (Vec<f32>, Vec<f32>) =
            (x.grad(&g_fused).unwrap().into_data().to_vec().unwrap(), x.grad(&g_plain).unwrap().into_data().to_vec().unwrap());
        let worst = a.iter().zip(&b).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f32::max);
        assert!(worst < 1e-6, "backward differs by {worst:e}");
    }

    #[test]
    fn other_backends_get_the_same_exact_gelu_gradient() {
        // The default of backends without a kernel (burn's ops composed) against the CPU kernel,
        // both on Flex; burn's tanh-based gelu_backward is 2e-4 off, beyond the 1e-4 by which the
        // wgpu and CPU curves must agree.
        let xs: Vec<f32> = (0..2000).map(|i| ((i * 7919) % 2001) as f32 * 0.006 - 6.0).collect();
        let g: Vec<f32> = (0..2000).map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5).collect();
        let t = |v: &[f32]| Tensor::<Flex, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default()).into_primitive().tensor();
        let values = |p| -> Vec<f32> { Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(p)).into_data().to_vec().unwrap() };
        let composed = values(gelu_backward_composed::<Flex>(t(&xs), t(&g)));
        let kernel = values(<Flex as Backend>::fused_gelu_backward(t(&xs), t(&g)));
        let worst = composed.iter().zip(&kernel).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "composed vs kernel: {worst:e}");
    }

    #[test]
    fn fused_gelu_gradient_matches_central_differences() {
        let xs: Vec<f32> = (-60..=60).map(|i| i as f32 * 0.1 + 0.013).collect();
        let x = Tensor::<Ad, 1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &Default::default()).require_grad();
        let grads = gelu(x.clone()).sum().backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        for (&v, &got) in xs.iter().zip(&g) {
            let h = 1e-4;
            let want = (gelu_ref(v as f64 + h) - gelu_ref(v as f64 - h)) / (2.0 * h);
            assert!((got as f64 - want).abs() < 2e-6, "d gelu/dx at {v}: {got} vs {want}");
        }
    }

    #[test]
    fn fused_gelu_is_exact_gelu_in_the_tails_and_the_same_on_any_thread_count() {
        let xs: Vec<f32> = vec![-14.0, -9.0, -5.0, -1.0, 0.0, 1e-3, 2.0, 7.5, 30.0, -0.0];
        let x = Tensor::<Flex, 1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &Default::default());
        let y: Vec<f32> = gelu(x).into_data().to_vec().unwrap();
        for (&v, &got) in xs.iter().zip(&y) {
            let want = gelu_ref(v as f64);
            // Relative accuracy (to Φ's conditioning, ~x²) even where GELU is 1e-44..1e-6, and
            // absolute below f32's smallest normal number.
            let bound = 3e-7 * (1.0 + (v as f64).powi(2)) * want.abs() + 1e-37;
            assert!((got as f64 - want).abs() <= bound, "gelu({v}) = {got}, want {want}");
        }
        // Many chunks: the threaded result equals the one-chunk-at-a-time serial kernel.
        let big: Vec<f32> = (0..100_003).map(|i| ((i * 7919) % 2001) as f32 * 0.005 - 5.0).collect();
        let threaded = flex::chunked(&big, None, cpu::gelu);
        let mut serial = vec![0.0; big.len()];
        cpu::gelu(&big, None, &mut serial);
        assert_eq!(threaded, serial);
    }
}
