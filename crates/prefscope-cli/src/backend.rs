//! Backend selection: each command is generic over a burn backend and dispatched here.

use anyhow::{Result, bail};
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// burn-flex on the CPU, on all cores (rayon; `RAYON_NUM_THREADS` sets the thread count).
    Cpu,
    /// burn-ndarray on the CPU, one core: the previous CPU backend, kept for `bench` comparisons only.
    Ndarray,
    /// burn-wgpu: Vulkan, Metal or DX12 (cargo feature `wgpu`).
    Wgpu,
    /// burn-cuda on an NVIDIA GPU (cargo feature `cuda`; the driver is loaded at run time).
    Cuda,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// CPU worker threads the backend computes with (None for GPU backends).
    pub fn threads(self) -> Option<usize> {
        match self {
            Self::Cpu => Some(rayon::current_num_threads()),
            Self::Ndarray => Some(1),
            Self::Wgpu | Self::Cuda => None,
        }
    }

    /// What banners print: the backend, and for the CPU its crate and threads.
    pub fn describe(self) -> String {
        match self {
            Self::Cpu => match rayon::current_num_threads() {
                1 => "cpu (flex, 1 thread)".to_string(),
                n => format!("cpu (flex, {n} threads)"),
            },
            Self::Ndarray => "ndarray (1 thread)".to_string(),
            other => other.name().to_string(),
        }
    }
}

/// Code that can run on any autodiff backend; `dispatch` picks the backend at run time.
pub trait BackendJob {
    type Output;
    fn run<B: prefscope_core::AutodiffBackend>(self, device: B::Device, backend: BackendKind) -> Result<Self::Output>;
}

/// Run `f` with panics silenced and turned into an error: GPU runtimes panic when no driver or
/// adapter exists, and users deserve one clear line instead of a backtrace.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
fn probe<T>(what: &str, f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(f);
    std::panic::set_hook(hook);
    match out {
        Ok(v) => Ok(v),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            bail!("{what} ({})", msg.lines().next().unwrap_or("no details"))
        }
    }
}

pub fn dispatch<J: BackendJob>(kind: BackendKind, job: J) -> Result<J::Output> {
    use burn::backend::{Autodiff, Flex};
    match kind {
        BackendKind::Cpu => job.run::<Autodiff<Flex>>(Default::default(), kind),
        // Every job compiled for ndarray cost 37 % of the binary's compile (309 → 196 s alone) for
        // a one-core backend that only benchmarks compare against: `dispatch_precision` keeps it.
        BackendKind::Ndarray => bail!("--backend ndarray (burn-ndarray, one core) is kept for `prefscope bench` comparisons only; use --backend cpu (burn-flex)"),
        BackendKind::Wgpu => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::Wgpu;
                use burn::tensor::Tensor;
                let device = burn::backend::wgpu::WgpuDevice::default();
                let d = device.clone();
                probe("no GPU adapter found for wgpu (Vulkan/Metal/DX12); use --backend cpu", move || {
                    Tensor::<Wgpu, 1>::ones([1], &d).into_scalar()
                })?;
                job.run::<Autodiff<Wgpu>>(device, kind)
            }
            #[cfg(not(feature = "wgpu"))]
            bail!("this prefscope was built without the `wgpu` feature (cargo build --release -p prefscope-cli --features wgpu)")
        }
        BackendKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                use burn::backend::Cuda;
                use burn::tensor::Tensor;
                let device = burn::backend::cuda::CudaDevice::default();
                let d = device.clone();
                probe("no CUDA driver found (libcuda.so / an NVIDIA GPU is needed for --backend cuda)", move || {
                    Tensor::<Cuda, 1>::ones([1], &d).into_scalar()
                })?;
                job.run::<Autodiff<Cuda>>(device, kind)
            }
            #[cfg(not(feature = "cuda"))]
            bail!("this prefscope was built without the `cuda` feature (cargo build --release -p prefscope-cli --features cuda)")
        }
    }
}

/// Element type of a computation (`prefscope bench --precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    F32,
    /// The whole model in f16 (weights, moments and activations).
    F16,
    /// The whole model in bf16.
    Bf16,
    /// bf16 compute over f32 master weights and moments (autocast-style).
    Bf16Mixed,
    /// f16 compute over f32 master weights, with dynamic loss scaling.
    F16Mixed,
}

impl PrecisionArg {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Bf16Mixed => "bf16-mixed",
            Self::F16Mixed => "f16-mixed",
        }
    }

    /// The trainer's setting: mixed precision is done by the core on an f32 backend.
    pub fn mixed(self) -> prefscope_core::runtime::precision::Precision {
        use prefscope_core::runtime::precision::Precision as P;
        match self {
            Self::Bf16Mixed => P::Bf16Mixed,
            Self::F16Mixed => P::F16Mixed,
            _ => P::Full,
        }
    }
}

/// [`dispatch`] with a choice of float type, and the ndarray backend. Only the benchmark uses it:
/// every generic job is compiled once per backend type, so the half-precision types and ndarray
/// are not offered to the others.
pub fn dispatch_precision<J: BackendJob>(kind: BackendKind, precision: PrecisionArg, job: J) -> Result<J::Output> {
    match (kind, precision) {
        // Mixed precision runs on the f32 backend; the core casts inside each step (and says
        // clearly when the backend cannot hold the compute type).
        (BackendKind::Ndarray, PrecisionArg::F32 | PrecisionArg::Bf16Mixed | PrecisionArg::F16Mixed) => {
            job.run::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>(Default::default(), kind)
        }
        (_, PrecisionArg::F32 | PrecisionArg::Bf16Mixed | PrecisionArg::F16Mixed) => dispatch(kind, job),
        (BackendKind::Cpu | BackendKind::Ndarray, p) => bail!("the CPU backends compute in f32 only; {} needs --backend wgpu or cuda (or a -mixed precision)", p.name()),
        (BackendKind::Wgpu, PrecisionArg::Bf16) => bail!("wgpu (WebGPU/Vulkan shaders) has no bf16; use --precision f16"),
        (BackendKind::Wgpu, PrecisionArg::F16) => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::{Autodiff, Wgpu};
                use burn::tensor::{Tensor, f16};
                let device = burn::backend::wgpu::WgpuDevice::default();
                let d = device.clone();
                probe("no GPU adapter with f16 support found for wgpu; use --precision f32", move || Tensor::<Wgpu<f16, i32>, 1>::ones([1], &d).into_scalar())?;
                job.run::<Autodiff<Wgpu<f16, i32>>>(device, kind)
            }
            #[cfg(not(feature = "wgpu"))]
            dispatch(kind, job)
        }
        (BackendKind::Cuda, p) => {
            #[cfg(feature = "cuda")]
            {
                use burn::backend::{Autodiff, Cuda};
                use burn::tensor::{Tensor, bf16, f16};
                let device = burn::backend::cuda::CudaDevice::default();
                let d = device.clone();
                probe("no CUDA driver found (libcuda.so / an NVIDIA GPU is needed for --backend cuda)", move || Tensor::<Cuda, 1>::ones([1], &d).into_scalar())?;
                match p {
                    PrecisionArg::Bf16 => job.run::<Autodiff<Cuda<bf16, i32>>>(device, kind),
                    _ => job.run::<Autodiff<Cuda<f16, i32>>>(device, kind),
                }
            }
            #[cfg(not(feature = "cuda"))]
            {
                let _ = p;
                dispatch(kind, job)
            }
        }
    }
}
