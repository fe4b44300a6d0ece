//! Mixed precision with full-precision master weights, the way PyTorch's autocast + GradScaler
//! train: the weights and AdamW's moments stay in the backend's float type, each step casts the
//! weights to a narrower type *inside the autodiff graph*, runs the forward and backward passes
//! there, and the cast's backward brings every gradient back to the master type. Losses are
//! computed in the master type. Updates far smaller than the narrow type's resolution therefore
//! still accumulate in the master copy, which pure low-precision training loses.
//!
//! f16 has a narrow exponent, so its gradients are protected by dynamic loss scaling
//! ([`LossScaler`]): the loss is multiplied by S before backward, the gradients divided by S
//! after, and a step whose gradients overflowed is skipped and S halved.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use crate::runtime::kernels::{AutodiffBackend, Backend};
use burn::tensor::{FloatDType, Tensor, get_device_settings};
use serde::{Deserialize, Serialize};

use crate::{Result, config_error};

/// The number type of the forward and backward passes (`train.precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// The backend's own float type throughout.
    #[default]
    Full,
    /// Compute in f32 over f64 master weights (f64 backends; how the CPU tests check the scheme).
    F32Mixed,
    /// Compute in bf16 over f32 master weights (CUDA).
    Bf16Mixed,
    /// Compute in f16 over f32 master weights, with dynamic loss scaling (CUDA, wgpu with f16).
    F16Mixed,
}

impl Precision {
    pub const ALL: [Precision; 4] = [Self::Full, Self::F32Mixed, Self::Bf16Mixed, Self::F16Mixed];

    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::F32Mixed => "f32-mixed",
            Self::Bf16Mixed => "bf16-mixed",
            Self::F16Mixed => "f16-mixed",
        }
    }

    /// The compute type, `None` for [`Precision::Full`].
    pub fn compute(self) -> Option<FloatDType> {
        match self {
            Self::Full => None,
            Self::F32Mixed => Some(FloatDType::F32),
            Self::Bf16Mixed => Some(FloatDType::BF16),
            Self::F16Mixed => Some(FloatDType::F16),
        }
    }

    pub fn loss_scaling(self) -> bool {
        self == Self::F16Mixed
    }
}

fn narrower(precision: Precision, compute: FloatDType, master: FloatDType) -> Result<()> {
    if bits(compute) >= bits(master) {
        return Err(config_error("train.precision", format!("{} computes in {compute:?}, which is not narrower than this backend's {master:?} weights", precision.name())));
    }
    Ok(())
}

fn bits(d: FloatDType) -> usize {
    match d {
        FloatDType::F64 => 64,
        FloatDType::F32 | FloatDType::Flex32 => 32,
        FloatDType::F16 | FloatDType::BF16 => 16,
    }
}

/// Where values cross between the master type and the compute type during one step. With
/// [`Precision::Full`] both are the same and every method returns its input untouched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Autocast {
    pub master: FloatDType,
    pub compute: FloatDType,
}

impl Autocast {
    /// The casts for `precision` on `device`, whose default float type holds the master weights.
    /// Errors, naming `train.precision`, when the compute type is not narrower than the master
    /// type or the backend cannot hold it (ndarray has no half types; wgpu has no bf16).
    pub fn new<B: Backend>(precision: Precision, device: &B::Device) -> Result<Self> {
        let master = get_device_settings::<B>(device).float_dtype;
        let Some(compute) = precision.compute() else { return Ok(Self { master, compute: master }) };
        narrower(precision, compute, master)?;
        if !supports::<B>(device, compute) {
            return Err(config_error("train.precision", format!("this backend cannot compute in {compute:?} (the CPU backend has f32 and f64 only, wgpu has no bf16): use {}, or --backend cuda", Precision::Full.name())));
        }
        Ok(Self { master, compute })
    }

    pub fn active(&self) -> bool {
        self.master != self.compute
    }

    /// Into the compute type (inputs of the model).
    pub fn down<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        if self.active() { t.cast(self.compute) } else { t }
    }

    /// Back into the master type (outputs of the model, before any loss).
    pub fn up<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        if self.active() { t.cast(self.master) } else { t }
    }

    /// The module to run the forward pass on: at full precision a clone of `module`; in mixed
    /// precision a copy whose weights are cast into the compute type inside the graph. Either
    /// way the gradients of a loss on its outputs reach `module`'s own (master) weights.
    pub fn module<B: Backend, M: Module<B> + Clone>(&self, module: &M) -> M {
        // burn initialises weights lazily and a clone of an uninitialised weight initialises
        // on its own, apart from the original: materialise them first.
        struct Materialise;
        impl<B: Backend> ModuleVisitor<B> for Materialise {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let _ = param.val();
            }
        }
        struct CastWeights(FloatDType);
        impl<B: Backend> ModuleMapper<B> for CastWeights {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
                let (id, tensor, mapper) = param.consume();
                Param::from_mapped_value(id, tensor.cast(self.0), mapper)
            }
        }
        module.visit(&mut Materialise);
        if self.active() { module.clone().map(&mut CastWeights(self.compute)) } else { module.clone() }
    }
}

/// Whether the backend can cast into and compute in `dtype` (backends that cannot panic inside
/// the cast, which is caught here; in the browser, where panics abort, it is assumed).
fn supports<B: Backend>(device: &B::Device, dtype: FloatDType) -> bool {
    let probe = || {
        let t = Tensor::<B, 1>::ones([2], device).cast(dtype);
        (t.clone() * t).sum().cast(FloatDType::F32).into_data().to_vec::<f32>().map(|v| v[0] == 2.0).unwrap_or(false)
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(probe)).unwrap_or(false);
        std::panic::set_hook(hook);
        ok
    }
    #[cfg(target_arch = "wasm32")]
    probe()
}

/// Dynamic loss scaling with PyTorch GradScaler's defaults: start at 2^16, halve on overflow
/// (skipping that step), double after 2000 steps in a row without one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f32,
    good_steps: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self { scale: 65536.0, good_steps: 0 }
    }
}

const GROWTH_INTERVAL: u32 = 2000;

/// The gradients of `loss` with respect to `module`'s (master) weights. With a scaler, the
/// backward pass runs on the scaled loss and the gradients are unscaled; the second value is
/// then the overflow check of [`LossScaler::unscale`], to be read back and passed to
/// [`LossScaler::update`] before the optimiser step.
pub fn backward<B: AutodiffBackend, M: AutodiffModule<B>>(scaler: Option<&LossScaler>, loss: Tensor<B, 1>, module: &M) -> (GradientsParams, Option<Tensor<B::InnerBackend, 1>>) {
    match scaler {
        None => (GradientsParams::from_grads(loss.backward(), module), None),
        Some(s) => {
            let mut grads = GradientsParams::from_grads(loss.mul_scalar(s.scale as f64).backward(), module);
            let total = s.unscale(module, &mut grads);
            (grads, total)
        }
    }
}

impl LossScaler {
    /// Divide every gradient of `module` by the scale. Returns the sum of all (unscaled)
    /// gradient entries, which is NaN or infinite exactly when some gradient overflowed; read
    /// it together with the loss and pass its finiteness to [`LossScaler::update`].
    pub fn unscale<B: AutodiffBackend, M: AutodiffModule<B>>(&self, module: &M, grads: &mut GradientsParams) -> Option<Tensor<B::InnerBackend, 1>> {
        struct Unscale<'a, B: AutodiffBackend> {
            grads: &'a mut GradientsParams,
            inv: f64,
            total: Option<Tensor<B::InnerBackend, 1>>,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Unscale<'_, B> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let id: ParamId = param.id;
                if let Some(g) = self.grads.remove::<B::InnerBackend, D>(id) {
                    let g = g.mul_scalar(self.inv);
                    let s = g.clone().sum();
                    self.total = Some(match self.total.take() {
                        Some(t) => t + s,
                        None => s,
                    });
                    self.grads.register::<B::InnerBackend, D>(id, g);
                }
            }
        }
        let mut v = Unscale::<B> { grads, inv: 1.0 / self.scale as f64, total: None };
        module.visit(&mut v);
        v.total
    }

    /// Record whether this step's gradients were finite; returns whether to apply the step.
    pub fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.good_steps = 0;
        }
        finite
    }
}

/// Whether to apply this step's update: reads [`backward`]'s overflow check back (a blocking
/// read; the async trainer reads it with its loss instead) and updates the scaler.
pub fn step_allowed<B: Backend>(scaler: Option<&mut LossScaler>, overflow_check: Option<Tensor<B, 1>>) -> bool {
    use burn::tensor::ElementConversion;
    match (scaler, overflow_check) {
        (Some(s), Some(total)) => s.update(total.into_scalar().elem::<f32>().is_finite()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{DType, TensorData};

    use crate::reward::scenarios::ScenarioKind;
    use crate::studies::landscape::flat_weights;
    use crate::reward::model::ModelKind;
    use crate::reward::train::{Listwise, RunConfig, StepMetrics, Trainer};

    // Master weights in f64, compute in f32: the same scheme as f32 / bf16 on a GPU, checkable
    // on the CPU. These tests run in a process of their own (`cargo xtask test`), because burn
    // keys the default float type by device and other tests make it f32.
    type B = Autodiff<NdArray<f64>>;

    fn f64_device() -> burn::backend::ndarray::NdArrayDevice {
        let device = Default::default();
        assert_eq!(get_device_settings::<B>(&device).float_dtype, FloatDType::F64, "run the precision tests in their own process");
        device
    }

    #[test]
    fn gradients_through_the_cast_copy_reach_the_master_weights_in_its_type() {
        let device = f64_device();
        let ac = Autocast::new::<B>(Precision::F32Mixed, &device).unwrap();
        let master: Linear<B> = LinearConfig::new(3, 2).init(&device);
        let x = Tensor::<B, 2>::from_data(TensorData::new(vec![0.5f64, -1.0, 2.0, 1.5, 0.25, -0.75], [2, 3]), &device);
        let compute = ac.module(&master);
        assert_eq!(compute.weight.val().dtype(), DType::F32);
        let out = compute.forward(ac.down(x.clone()));
        assert_eq!(out.dtype(), DType::F32);
        let loss = ac.up(out).powi_scalar(2).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &master);
        let g = grads.get::<NdArray<f64>, 2>(master.weight.id).expect("the master weight has a gradient");
        assert_eq!(g.dtype(), DType::F64);
        // Against the gradient of the same loss computed wholly in f64.
        let reference = GradientsParams::from_grads(master.forward(x).powi_scalar(2).sum().backward(), &master);
        let r = reference.get::<NdArray<f64>, 2>(master.weight.id).unwrap();
        let (g, r): (Vec<f64>, Vec<f64>) = (g.into_data().to_vec().unwrap(), r.into_data().to_vec().unwrap());
        for (a, b) in g.iter().zip(&r) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "mixed {a} vs f64 {b}");
            assert_ne!(a, b, "the mixed gradient went through f32 arithmetic and should not be exact");
        }
    }

    fn run(mut cfg: RunConfig, precision: Precision) -> (Trainer<B>, Vec<StepMetrics>) {
        cfg.train.precision = precision;
        let mut t = Trainer::<B>::new(cfg, &f64_device()).unwrap();
        let mut out = vec![];
        while !t.is_done() {
            out.push(pollster::block_on(t.step()).unwrap());
        }
        (t, out)
    }

    fn weights(t: &Trainer<B>) -> Vec<f64> {
        flat_weights(&t.model().valid()).unwrap().into_data().to_vec().unwrap()
    }

    /// Every model and loss path of the trainer runs with f32 compute (ndarray panics on any
    /// op that mixes f32 and f64, so a missed cast fails here), and its losses follow the
    /// full-precision run's closely without being equal to them.
    #[test]
    fn every_model_and_loss_trains_with_f32_compute_and_tracks_full_precision() {
        let with = |mut cfg: RunConfig, f: fn(&mut RunConfig)| {
            f(&mut cfg);
            cfg
        };
        let cases = [
            ("bt", RunConfig::new(ScenarioKind::Linear, ModelKind::Bt)),
            ("bt + centering + margin", with(RunConfig::new(ScenarioKind::Linear, ModelKind::Bt), |c| {
                c.train.loss.center_coef = 0.01;
                c.train.loss.margin = 0.5;
            })),
            ("gpm", RunConfig::new(ScenarioKind::Cyclic, ModelKind::Gpm)),
            ("multi-objective", RunConfig::new(ScenarioKind::MultiObjective, ModelKind::MultiObjective)),
            ("armo (both stages)", with(RunConfig::new(ScenarioKind::MultiObjective, ModelKind::MultiObjective), |c| c.model.gate = true)),
            ("mixture", RunConfig::new(ScenarioKind::Mixture, ModelKind::Mixture)),
            ("vpl", RunConfig::new(ScenarioKind::FewShotUsers, ModelKind::Vpl)),
            ("plackett-luce", with(RunConfig::new(ScenarioKind::Rankings, ModelKind::Bt), |c| c.train.loss.listwise = Some(Listwise::PlackettLuce))),
            ("regret", RunConfig::new(ScenarioKind::Gridworld, ModelKind::Regret)),
        ];
        for (name, mut cfg) in cases {
            cfg.train.steps = 40;
            cfg.train.eval_every = 40;
            let (_, full) = run(cfg.clone(), Precision::Full);
            let (_, mixed) = run(cfg, Precision::F32Mixed);
            let gap = full.iter().zip(&mixed).map(|(a, b)| ((a.loss - b.loss) / a.loss.abs().max(1.0)).abs()).fold(0.0f32, f32::max);
            let (ea, eb) = (full[39].eval.unwrap().accuracy, mixed[39].eval.unwrap().accuracy);
            eprintln!("{name}: largest relative loss gap {gap:.2e}, held-out accuracy {ea:.3} full vs {eb:.3} mixed");
            assert!(gap < 1e-3, "{name}: the mixed run drifted from the full-precision one ({gap})");
            assert!((ea - eb).abs() <= 0.02, "{name}: accuracy {ea} vs {eb}");
            assert!(full.iter().zip(&mixed).any(|(a, b)| a.loss != b.loss), "{name}: the mixed run should compute in f32, not f64");
        }
    }

    /// Data-parallel steps cast each device's copy and sum master-type gradients: over two and
    /// three devices they follow the single-device mixed run.
    #[test]
    fn data_parallel_mixed_steps_match_the_single_device_mixed_step() {
        let mut cfg = RunConfig::new(ScenarioKind::Cyclic, ModelKind::Gpm);
        cfg.train.steps = 15;
        cfg.train.batch = 100;
        cfg.train.eval_every = 15;
        let (_, single) = run(cfg.clone(), Precision::F32Mixed);
        cfg.train.precision = Precision::F32Mixed;
        for n_devices in [2, 3] {
            let mut t = Trainer::<B>::new(cfg.clone(), &f64_device()).unwrap();
            let devices = vec![f64_device(); n_devices];
            let mut parallel = vec![];
            while !t.is_done() {
                parallel.push(pollster::block_on(t.step_parallel(&devices)).unwrap());
            }
            for (a, b) in single.iter().zip(&parallel) {
                assert!((a.loss - b.loss).abs() < 1e-4 * a.loss.abs().max(1.0), "{n_devices} devices: {a:?} vs {b:?}");
            }
        }
    }

    /// The point of master weights: an AdamW step of 1e-10 is far below f32's resolution at
    /// weights of size 0.1 and more, so a pure-f32 model would drop it; the f64 master copy
    /// keeps every one of them.
    #[test]
    fn master_weights_keep_updates_below_the_compute_types_resolution() {
        let mut cfg = RunConfig::new(ScenarioKind::Linear, ModelKind::Bt);
        cfg.train.lr = 1e-10;
        cfg.train.steps = 1;
        let before = weights(&Trainer::<B>::new(cfg.clone(), &f64_device()).unwrap());
        let (t, _) = run(cfg.clone(), Precision::F32Mixed);
        let after = weights(&t);
        let mut lost_in_f32 = 0;
        for (b, a) in before.iter().zip(&after) {
            let d = a - b;
            // (The output bias cancels in r(chosen) − r(rejected): its gradient is exactly 0.)
            assert!(d.abs() < 2e-10, "each weight moves by at most about lr: {d}");
            if b.abs() > 0.1 && d != 0.0 {
                assert_eq!(*b as f32 + d as f32, *b as f32, "f32 cannot hold this update");
                lost_in_f32 += 1;
            }
        }
        assert!(lost_in_f32 >= 10, "enough large weights to make the point: {lost_in_f32}");
        cfg.train.steps = 20;
        let (t, _) = run(cfg, Precision::F32Mixed);
        let moved = weights(&t).iter().zip(&before).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 1e-9, "twenty steps accumulate in the master copy: {moved}");
    }

    /// The transformer reward model (burn's embedding, attention with its causal mask, layer
    /// norms; BT and GPM heads) runs in f32 over f64 weights, and its gradients match the f64
    /// ones to f32 accuracy.
    #[test]
    fn transformer_reward_model_gradients_in_f32_compute_match_f64() {
        use crate::reward::loss::pairwise_logistic_loss;
        use crate::text::transformer::{TfmHead, TfmRmConfig, TokenBatch};
        let device = f64_device();
        let ac = Autocast::new::<B>(Precision::F32Mixed, &device).unwrap();
        for head in [TfmHead::Bt, TfmHead::Gpm] {
            let cfg = TfmRmConfig { vocab: 32, d_model: 16, n_layers: 2, n_heads: 2, d_ff: 32, max_len: 12, head, k: 2, tau: 0.5 };
            let model = cfg.init::<B>(3, &device);
            let rows: Vec<Vec<u32>> = (0..8u32).map(|i| (0..4 + i % 5).map(|j| 4 + (i * 7 + j * 3) % 28).collect()).collect();
            let batch = TokenBatch::new(&rows, 0);
            let grads = |m: &crate::text::transformer::TfmRewardModel<B>, via: Option<&Autocast>| {
                let logits = match via {
                    Some(ac) => ac.up(ac.module(m).pair_logits(&batch, &cfg, &device)),
                    None => m.pair_logits(&batch, &cfg, &device),
                };
                let loss = pairwise_logistic_loss(logits);
                let g = GradientsParams::from_grads(loss.backward(), m);
                let head: Vec<f64> = g.get::<NdArray<f64>, 2>(m.head.weight.id).unwrap().into_data().to_vec().unwrap();
                let token: Vec<f64> = g.get::<NdArray<f64>, 2>(m.token.weight.id).unwrap().into_data().to_vec().unwrap();
                [head, token].concat()
            };
            let (mixed, full) = (grads(&model, Some(&ac)), grads(&model, None));
            let scale = full.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let worst = mixed.iter().zip(&full).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            eprintln!("{head:?}: largest gradient {scale:.3e}, largest mixed − f64 difference {worst:.3e}");
            assert!(scale > 1e-4 && worst < 1e-5 * scale, "{head:?}: {worst} against {scale}");
            assert!(worst > 0.0, "the mixed pass should have run in f32");
        }
    }

    #[test]
    fn settings_the_backend_cannot_hold_are_refused_by_name() {
        let device = f64_device();
        for p in [Precision::Bf16Mixed, Precision::F16Mixed] {
            let e = Autocast::new::<B>(p, &device).unwrap_err().to_string();
            assert!(e.contains("train.precision") && e.contains("cannot compute"), "{e}");
        }
        let e = narrower(Precision::F32Mixed, FloatDType::F32, FloatDType::F32).unwrap_err().to_string();
        assert!(e.contains("train.precision: f32-mixed computes in F32, which is not narrower than this backend's F32 weights"), "{e}");
        assert!(narrower(Precision::Bf16Mixed, FloatDType::BF16, FloatDType::F32).is_ok());
        assert!(!Autocast::new::<B>(Precision::Full, &device).unwrap().active());
    }

    #[test]
    fn loss_scaler_unscales_skips_overflow_halves_and_grows() {
        let device = f64_device();
        let model: Linear<B> = LinearConfig::new(2, 1).init(&device);
        let x = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f64, 2.0], [1, 2]), &device);
        let mut scaler = LossScaler::default();
        let scaled = model.forward(x.clone()).sum().mul_scalar(scaler.scale as f64);
        let mut grads = GradientsParams::from_grads(scaled.backward(), &model);
        let total = scaler.unscale(&model, &mut grads).unwrap().into_scalar();
        // d(w·x + b)/dw = x, d/db = 1: the unscaled gradients and their sum.
        let gw: Vec<f64> = grads.get::<NdArray<f64>, 2>(model.weight.id).unwrap().into_data().to_vec().unwrap();
        assert_eq!(gw, vec![1.0, 2.0]);
        assert_eq!(total, 4.0);
        // An overflow: skip the step and halve; then 2000 good steps double it.
        assert!(!scaler.update(f64::INFINITY.is_finite()));
        assert_eq!(scaler.scale, 32768.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            assert!(scaler.update(true));
        }
        assert_eq!(scaler.scale, 32768.0);
        scaler.update(true);
        assert_eq!(scaler.scale, 65536.0);
    }
}
