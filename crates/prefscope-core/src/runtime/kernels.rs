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

    /// Causal multi-head attention, softmax(Q·Kᵀ/√d_k + causal mask)·V, with the heads taken from
    /// the model axis: q, k, v `[n, t, heads·d_k]` → `[n, t, heads·d_k]`. The backend's kernel
    /// where it has one, else burn's `MultiHeadAttention` arithmetic op for op.
    fn fused_causal_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        match Self::causal_attention_kernel(&q, &k, &v, heads) {
            Some((out, _)) => out,
            None => composed_attention_primitive::<Self>(q, k, v, heads),
        }
    }

    /// The attention as one kernel, when the backend has one for these tensors: the output and the
    /// attention probabilities `[n, heads, t, t]`, which its backward reads. `None`: compose.
    fn causal_attention_kernel(
        _q: &FloatTensor<Self>,
        _k: &FloatTensor<Self>,
        _v: &FloatTensor<Self>,
        _heads: usize,
    ) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        None
    }

    /// Gradients of the attention with respect to q, k and v, given the probabilities of the
    /// forward pass and the output's gradient. The default composes burn's ops.
    fn causal_attention_kernel_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
    ) -> [FloatTensor<Self>; 3] {
        composed_attention_backward_primitive::<Self>(q, k, v, probs, grad, heads)
    }
}

/// [`causal_attention_composed`]'s output, on primitives.
fn composed_attention_primitive<B: burn::tensor::backend::Backend>(q: FloatTensor<B>, k: FloatTensor<B>, v: FloatTensor<B>, heads: usize) -> FloatTensor<B> {
    let t = |x| Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(x));
    causal_attention_composed(t(q), t(k), t(v), heads).0.into_primitive().tensor()
}

/// [`causal_attention_backward_composed`] on primitives.
fn composed_attention_backward_primitive<B: burn::tensor::backend::Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    probs: FloatTensor<B>,
    grad: FloatTensor<B>,
    heads: usize,
) -> [FloatTensor<B>; 3] {
    let t = |x| Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(x));
    let p = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(probs));
    causal_attention_backward_composed(t(q), t(k), t(v), p, t(grad), heads).map(|g| g.into_primitive().tensor())
}

/// `[n, t, h·d]` → `[n, h, t, d]`, as burn's attention splits heads.
fn split_heads<B: burn::tensor::backend::Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [n, t, d] = x.dims();
    x.reshape([n, t, heads, d / heads]).swap_dims(1, 2)
}

fn merge_heads<B: burn::tensor::backend::Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [n, h, t, d] = x.dims();
    x.swap_dims(1, 2).reshape([n, t, h * d])
}

/// Causal attention from burn's ops, exactly as `MultiHeadAttention::forward` computes it (scores
/// scaled by 1/√d_k, the future filled with its `min_float` −1e4, softmax): the output and the
/// probabilities.
pub fn causal_attention_composed<B: burn::tensor::backend::Backend>(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>, heads: usize) -> (Tensor<B, 3>, Tensor<B, 4>) {
    let [n, t, d] = q.dims();
    let scores = split_heads(q, heads).matmul(split_heads(k, heads).transpose()).div_scalar(((d / heads) as f32).sqrt());
    let mask = burn::nn::attention::generate_autoregressive_mask::<B>(n, t, &scores.device()).reshape([n, 1, t, t]);
    let probs = burn::tensor::activation::softmax(scores.mask_fill(mask, -1.0e4), 3);
    (merge_heads(probs.clone().matmul(split_heads(v, heads))), probs)
}

/// The attention's backward from burn's ops: dV = Pᵀ·dO, dS = P ⊙ (dP − Σ_j dP ⊙ P)/√d_k with
/// dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q (masked entries have P = 0, so they pass no gradient).
pub fn causal_attention_backward_composed<B: burn::tensor::backend::Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    probs: Tensor<B, 4>,
    grad: Tensor<B, 3>,
    heads: usize,
) -> [Tensor<B, 3>; 3] {
    let d_k = q.dims()[2] / heads;
    let (q, k, v, g) = (split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), split_heads(grad, heads));
    let dv = probs.clone().transpose().matmul(g.clone());
    let dp = g.matmul(v.transpose());
    let row = (dp.clone() * probs.clone()).sum_dim(3);
    let ds = (probs * (dp - row)).div_scalar((d_k as f32).sqrt());
    let dq = ds.clone().matmul(k);
    let dk = ds.transpose().matmul(q);
    [merge_heads(dq), merge_heads(dk), merge_heads(dv)]
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

/// Causal multi-head attention through the backend's kernel: q, k, v `[n, t, heads·d_k]` (the
/// projections, before heads are split) → the heads' outputs merged, `[n, t, heads·d_k]`.
pub fn causal_attention<B: Backend>(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let p = |x: Tensor<B, 3>| x.into_primitive().tensor();
    Tensor::from_primitive(TensorPrimitive::Float(B::fused_causal_attention(p(q), p(k), p(v), heads)))
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

    fn fused_causal_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl<B: Backend> Backward<B, 3> for AttentionBackward {
            // q, k, v, the probabilities and the head count.
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, usize);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_q, node_k, node_v] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (q, k, v, probs, heads) = ops.state;
                let [dq, dk, dv] = B::causal_attention_kernel_backward(q, k, v, probs, grad, heads);
                for (node, g) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        // Without a kernel for these tensors, burn's ops record their own graph.
        let Some((out, probs)) = B::causal_attention_kernel(&q.primitive, &k.primitive, &v.primitive, heads) else {
            return composed_attention_primitive::<Self>(q, k, v, heads);
        };
        match AttentionBackward.prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((q.primitive, k.primitive, v.primitive, probs, heads), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
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

    fn causal_attention_kernel(
        q: &FloatTensor<Self>,
        k: &FloatTensor<Self>,
        v: &FloatTensor<Self>,
        heads: usize,
    ) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        flex::attention(q, k, v, heads)
    }

    fn causal_attention_kernel_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
    ) -> [FloatTensor<Self>; 3] {
        flex::attention_backward(&q, &k, &v, &probs, &grad, heads).unwrap_or_else(|| composed_attention_backward_primitive::<Self>(q, k, v, probs, grad, heads))
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

    /// The values of an f32 tensor of `dims` dimensions, contiguous (copied only if it is not).
    fn f32_values(t: &FlexTensor, dims: usize) -> Option<FlexTensor> {
        (t.dtype() == DType::F32 && t.layout().shape().num_dims() == dims).then(|| t.to_contiguous())
    }

    /// A pointer that units of work on other threads write through, each to its own region.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: every unit writes a region no other unit touches (its batch row's block of its head's
    // columns, or its own t × t block), and the buffer outlives the parallel loop.
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}

    impl Out {
        /// The pointer `offset` elements in (a method, so closures capture the whole `Out`).
        unsafe fn at(self, offset: usize) -> *mut f32 {
            // SAFETY: the caller stays within the buffer.
            unsafe { self.0.add(offset) }
        }
    }

    /// Runs `f(unit)` for every unit, on rayon's threads when the crate has them. Units are
    /// independent and each is computed by one thread, so the result does not depend on the
    /// thread count.
    fn for_each_unit(units: usize, f: impl Fn(usize) + Send + Sync) {
        #[cfg(feature = "threads")]
        {
            use rayon::prelude::*;
            (0..units).into_par_iter().for_each(f);
        }
        #[cfg(not(feature = "threads"))]
        (0..units).for_each(f);
    }

    /// dst = beta·lhs·rhs (m × k times k × n), each matrix given by its pointer and its row and
    /// column strides, in elements.
    #[allow(clippy::too_many_arguments)]
    unsafe fn matmul(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, lhs: *const f32, lhs_rs: usize, lhs_cs: usize, rhs: *const f32, rhs_rs: usize, rhs_cs: usize, beta: f32) {
        // SAFETY: the caller passes pointers valid for the strided m × k, k × n and m × n blocks.
        unsafe {
            gemm::gemm(
                m, n, k, dst, 1, dst_rs as isize, false, lhs, lhs_cs as isize, lhs_rs as isize, rhs, rhs_cs as isize, rhs_rs as isize, 0.0, beta, false, false,
                false, gemm::Parallelism::None,
            )
        }
    }

    /// Causal attention of f32 tensors `[n, t, h·d]`: the output and the probabilities
    /// `[n, h, t, t]` (zero above the diagonal). One unit of work per (row, head): two GEMMs on
    /// the head's strided columns, with the causal softmax between them, so heads are never
    /// split into copies.
    pub fn attention(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, heads: usize) -> Option<(FlexTensor, FlexTensor)> {
        let shape = q.layout().shape().clone();
        if k.layout().shape() != &shape || v.layout().shape() != &shape || heads == 0 || shape[2] % heads != 0 {
            return None;
        }
        let (q, k, v) = (f32_values(q, 3)?, f32_values(k, 3)?, f32_values(v, 3)?);
        let (n, t, d) = (shape[0], shape[1], shape[2]);
        let d_k = d / heads;
        let scale = 1.0 / (d_k as f32).sqrt();
        let (qs, ks, vs) = (q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>());
        let mut out = vec![0.0f32; n * t * d];
        let mut probs = vec![0.0f32; n * heads * t * t];
        let (o, p) = (Out(out.as_mut_ptr()), Out(probs.as_mut_ptr()));
        for_each_unit(n * heads, |unit| {
            let (b, h) = (unit / heads, unit % heads);
            let col = b * t * d + h * d_k;
            // SAFETY: unit (b, h) writes rows b·t.. of columns h·d_k.. of `out` and its own t × t
            // block of `probs`; the inputs are read only.
            unsafe {
                let pu = std::slice::from_raw_parts_mut(p.at(unit * t * t), t * t);
                matmul(t, t, d_k, pu.as_mut_ptr(), t, qs.as_ptr().add(col), d, 1, ks.as_ptr().add(col), 1, d, scale);
                super::cpu::causal_softmax(pu, t);
                matmul(t, d_k, t, o.at(col), d, pu.as_ptr(), t, 1, vs.as_ptr().add(col), d, 1, 1.0);
            }
        });
        Some((FlexTensor::from_data(TensorData::new(out, shape)), FlexTensor::from_data(TensorData::new(probs, [n, heads, t, t]))))
    }

    /// dq, dk, dv of [`attention`] from its probabilities and the output's gradient.
    pub fn attention_backward(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, probs: &FlexTensor, grad: &FlexTensor, heads: usize) -> Option<[FlexTensor; 3]> {
        let shape = q.layout().shape().clone();
        if grad.layout().shape() != &shape {
            return None;
        }
        let (q, k, v, probs, g) = (f32_values(q, 3)?, f32_values(k, 3)?, f32_values(v, 3)?, f32_values(probs, 4)?, f32_values(grad, 3)?);
        let (n, t, d) = (shape[0], shape[1], shape[2]);
        let d_k = d / heads;
        let scale = 1.0 / (d_k as f32).sqrt();
        let (qs, ks, vs, ps, gs) = (q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>(), probs.storage::<f32>(), g.storage::<f32>());
        let mut dq = vec![0.0f32; n * t * d];
        let mut dk = vec![0.0f32; n * t * d];
        let mut dv = vec![0.0f32; n * t * d];
        // dP and then dS, one t × t block per unit.
        let mut scratch = vec![0.0f32; n * heads * t * t];
        let (oq, ok, ov, s) = (Out(dq.as_mut_ptr()), Out(dk.as_mut_ptr()), Out(dv.as_mut_ptr()), Out(scratch.as_mut_ptr()));
        for_each_unit(n * heads, |unit| {
            let (b, h) = (unit / heads, unit % heads);
            let col = b * t * d + h * d_k;
            // SAFETY: as in `attention`: each unit writes only its own rows and columns of dq, dk,
            // dv and its own block of the scratch buffer.
            unsafe {
                let pu = ps.as_ptr().add(unit * t * t);
                let su = std::slice::from_raw_parts_mut(s.at(unit * t * t), t * t);
                // dV = Pᵀ·dO
                matmul(t, d_k, t, ov.at(col), d, pu, 1, t, gs.as_ptr().add(col), d, 1, 1.0);
                // dP = dO·Vᵀ, then dS in place
                matmul(t, t, d_k, su.as_mut_ptr(), t, gs.as_ptr().add(col), d, 1, vs.as_ptr().add(col), 1, d, 1.0);
                super::cpu::causal_softmax_backward(su, std::slice::from_raw_parts(pu, t * t), t, scale);
                // dQ = dS·K, dK = dSᵀ·Q
                matmul(t, d_k, t, oq.at(col), d, su.as_ptr(), t, 1, ks.as_ptr().add(col), d, 1, 1.0);
                matmul(t, d_k, t, ok.at(col), d, su.as_ptr(), 1, t, qs.as_ptr().add(col), d, 1, 1.0);
            }
        });
        let tensor = |x: Vec<f32>| FlexTensor::from_data(TensorData::new(x, shape.clone()));
        Some([tensor(dq), tensor(dk), tensor(dv)])
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

    /// Row i of the t × t scores becomes softmax over columns 0..=i, and 0 after (the causal mask).
    #[inline(always)]
    fn causal_softmax_body(s: &mut [f32], t: usize) {
        for (i, row) in s.chunks_exact_mut(t).enumerate() {
            let (live, future) = row.split_at_mut(i + 1);
            let max = live.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0f32;
            for x in live.iter_mut() {
                *x = exp(*x - max);
                sum += *x;
            }
            let inv = 1.0 / sum;
            live.iter_mut().for_each(|x| *x *= inv);
            future.fill(0.0);
        }
    }

    /// dP (in `ds`) becomes dS = P ⊙ (dP − Σ_j dP ⊙ P) · scale, row by row; 0 above the diagonal.
    #[inline(always)]
    fn causal_softmax_backward_body(ds: &mut [f32], p: &[f32], t: usize, scale: f32) {
        for (i, (row, prow)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
            let (live, future) = row.split_at_mut(i + 1);
            let dot: f32 = live.iter().zip(&prow[..=i]).map(|(a, b)| a * b).sum();
            for (x, &pv) in live.iter_mut().zip(&prow[..=i]) {
                *x = pv * (*x - dot) * scale;
            }
            future.fill(0.0);
        }
    }

    /// As `dispatched!`, for the softmax kernels' signatures.
    macro_rules! dispatched_rows {
        ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
            pub fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512($($arg: $ty),*) {
                        $body($($arg),*)
                    }
                    #[target_feature(enable = "avx2")]
                    fn avx2($($arg: $ty),*) {
                        $body($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has the instructions the function was compiled for.
                        return unsafe { avx512($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: as above.
                        return unsafe { avx2($($arg),*) };
                    }
                }
                $body($($arg),*)
            }
        };
    }

    dispatched_rows!(causal_softmax, causal_softmax_body, (s: &mut [f32], t: usize));
    dispatched_rows!(causal_softmax_backward, causal_softmax_backward_body, (ds: &mut [f32], p: &[f32], t: usize, scale: f32));
}

#[cfg(test)]
#[path = "kernels_tests.rs"]
mod tests;
