//! Tests of [`super`]: the fused GELU and attention kernels against burn's ops, double precision and
//! central differences, forward and backward, on any thread count.

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

/// Causal attention in double precision, element by element: the reference.
fn attention_ref(q: &[f64], k: &[f64], v: &[f64], [n, t, d]: [usize; 3], heads: usize) -> Vec<f64> {
    let d_k = d / heads;
    let mut out = vec![0.0; n * t * d];
    for b in 0..n {
        for h in 0..heads {
            let at = |x: &[f64], i: usize, c: usize| x[b * t * d + i * d + h * d_k + c];
            for i in 0..t {
                let s: Vec<f64> = (0..=i).map(|j| (0..d_k).map(|c| at(q, i, c) * at(k, j, c)).sum::<f64>() / (d_k as f64).sqrt()).collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d_k {
                    out[b * t * d + i * d + h * d_k + c] = (0..=i).map(|j| e[j] / z * at(v, j, c)).sum();
                }
            }
        }
    }
    out
}

fn random_values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::runtime::rng::Rng::new(seed);
    (0..len).map(|_| rng.normal() as f32).collect()
}

#[test]
fn fused_attention_forward_and_backward_equal_burns_ops() {
    let device = Default::default();
    let shape = [3, 11, 12];
    let heads = 3;
    let len = 3 * 11 * 12;
    let leaf = |seed| Tensor::<Ad, 3>::from_data(TensorData::new(random_values(len, seed), shape), &device).mul_scalar(1.5).require_grad();
    let (q, k, v) = (leaf(1), leaf(2), leaf(3));
    let w = Tensor::<Ad, 3>::from_data(TensorData::new(random_values(len, 4), shape), &device);
    // Fused: one node, the kernel's backward.
    let fused = causal_attention(q.clone(), k.clone(), v.clone(), heads);
    let g_fused = (fused.clone() * w.clone()).sum().backward();
    // Unfused: burn's ops, as its MultiHeadAttention computes, and autodiff through them.
    let (plain, probs) = causal_attention_composed(q.clone(), k.clone(), v.clone(), heads);
    let g_plain = (plain.clone() * w.clone()).sum().backward();
    let close = |a: Tensor<Flex, 3>, b: Tensor<Flex, 3>, what: &str| {
        let worst = (a.clone() - b.clone()).abs().max().into_scalar() / (1.0 + b.abs().max().into_scalar());
        assert!(worst < 2e-6, "{what} differs by {worst:e}");
    };
    close(fused.inner(), plain.inner(), "output");
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        close(x.grad(&g_fused).unwrap(), x.grad(&g_plain).unwrap(), &format!("d{name}"));
    }
    // The composed backward (what a backend with only a forward kernel gets) equals autodiff too.
    let composed = causal_attention_backward_composed(q.clone().inner(), k.clone().inner(), v.clone().inner(), probs.inner(), w.inner(), heads);
    for ((name, x), g) in [("q", &q), ("k", &k), ("v", &v)].into_iter().zip(composed) {
        close(g, x.grad(&g_plain).unwrap(), &format!("composed d{name}"));
    }
    // The kernel's probabilities: rows sum to 1, nothing above the diagonal.
    let prim = |x: &Tensor<Ad, 3>| x.clone().inner().into_primitive().tensor();
    let (_, p) = <Flex as Backend>::causal_attention_kernel(&prim(&q), &prim(&k), &prim(&v), heads).unwrap();
    let p: Vec<f32> = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(p)).into_data().to_vec().unwrap();
    for (r, row) in p.chunks(11).enumerate() {
        let i = r % 11;
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6 && row[i + 1..].iter().all(|&x| x == 0.0), "row {r}: {row:?}");
    }
}

#[test]
fn fused_attention_matches_double_precision_and_central_differences() {
    let shape = [2, 6, 8];
    let heads = 2;
    let len = 2 * 6 * 8;
    let (qv, kv, vv) = (random_values(len, 11), random_values(len, 12), random_values(len, 13));
    let wv = random_values(len, 14);
    let device = Default::default();
    let leaf = |x: &Vec<f32>| Tensor::<Ad, 3>::from_data(TensorData::new(x.clone(), shape), &device).require_grad();
    let (q, k, v) = (leaf(&qv), leaf(&kv), leaf(&vv));
    let out = causal_attention(q.clone(), k.clone(), v.clone(), heads);
    let w = Tensor::<Ad, 3>::from_data(TensorData::new(wv.clone(), shape), &device);
    let grads = (out.clone() * w).sum().backward();
    let f64s = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (q64, k64, v64, w64) = (f64s(&qv), f64s(&kv), f64s(&vv), f64s(&wv));
    let want = attention_ref(&q64, &k64, &v64, shape, heads);
    let got: Vec<f32> = out.inner().into_data().to_vec().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 2e-6, "output {g} vs {w}");
    }
    // L = Σ w ⊙ attention(q, k, v); its gradient by central differences in f64.
    let loss = |q: &[f64], k: &[f64], v: &[f64]| attention_ref(q, k, v, shape, heads).iter().zip(&w64).map(|(a, b)| a * b).sum::<f64>();
    let h = 1e-6;
    for (which, x) in [q.clone(), k.clone(), v.clone()].iter().enumerate() {
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        for i in 0..len {
            let mut args = [q64.clone(), k64.clone(), v64.clone()];
            args[which][i] += h;
            let up = loss(&args[0], &args[1], &args[2]);
            args[which][i] -= 2.0 * h;
            let down = loss(&args[0], &args[1], &args[2]);
            let numeric = (up - down) / (2.0 * h);
            assert!((g[i] as f64 - numeric).abs() < 1e-5 * (1.0 + numeric.abs()), "d{}[{i}]: {} vs {numeric}", ["q", "k", "v"][which], g[i]);
        }
    }
}

#[cfg(feature = "threads")]
#[test]
fn fused_attention_is_the_same_on_any_thread_count() {
    let shape = [4, 33, 64];
    let len = 4 * 33 * 64;
    let t = |seed| Tensor::<Flex, 3>::from_data(TensorData::new(random_values(len, seed), shape), &Default::default()).into_primitive().tensor();
    let run = || {
        let (q, k, v, g) = (t(21), t(22), t(23), t(24));
        let (out, p) = flex::attention(&q, &k, &v, 4).unwrap();
        let grads = flex::attention_backward(&q, &k, &v, &p, &g, 4).unwrap();
        let values = |x: burn_flex::FlexTensor| x.storage::<f32>().to_vec();
        let mut all = values(out);
        grads.into_iter().for_each(|x| all.extend(values(x)));
        all
    };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(run);
    assert!(one == three, "the thread count changed the attention's bits");
}
