//! Picking the backend in the browser and driving a trainer on it (in the compute worker).
//!
//! WebGPU is used when `navigator.gpu` exists and `requestAdapter()` returns an adapter; burn's
//! WebGPU runtime is then initialised once, asynchronously (its sync `init_setup` panics on
//! wasm). Otherwise the page trains on the CPU ([`CpuInner`], named by [`CPU_CRATE`]) and says so.

use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, graphics::WebGpu, init_setup_async};
use burn::backend::{Autodiff, Flex, Wgpu};
use burn::module::AutodiffModule;
use js_sys::{Function, Promise, Reflect};
use prefscope_core::reward::checkpoint::{PreferenceCheckpoint, load_preference_model};
use prefscope_core::{PairDataset, PreferenceModel, Result, RunConfig, StepMetrics, Trainer};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::settings::BackendChoice;

pub type GpuBackend = Autodiff<Wgpu>;
/// The page's CPU backend, the one place it is chosen (with its name and device below).
pub type CpuInner = Flex;
pub type CpuBackend = Autodiff<CpuInner>;
/// The CPU backend's crate, as the badge and notices name it.
pub const CPU_CRATE: &str = "flex";
const CPU_LABEL: &str = "CPU (flex)";

/// The CPU backend's device.
pub fn cpu_device() -> burn::backend::flex::FlexDevice {
    Default::default()
}

/// The backend the page trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ComputeBackend {
    WebGpu,
    Cpu,
}

impl ComputeBackend {
    /// Machine-readable name (`window.__prefscope.backend`).
    pub fn id(self) -> &'static str {
        match self {
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }

    /// What the badge says.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebGpu => "WebGPU",
            Self::Cpu => CPU_LABEL,
        }
    }
}

/// The outcome of backend selection.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Selected {
    pub backend: ComputeBackend,
    /// The adapter's description, when WebGPU is used.
    pub adapter: Option<String>,
    /// Shown prominently when the page did not get WebGPU.
    pub notice: Option<String>,
}

/// Choose and initialise the backend for `choice`. `Err` only for `?backend=webgpu` without an adapter.
pub async fn select(choice: BackendChoice) -> std::result::Result<Selected, String> {
    if choice == BackendChoice::Cpu {
        return Ok(Selected {
            backend: ComputeBackend::Cpu,
            adapter: None,
            notice: Some(format!("Training on the CPU ({CPU_CRATE}) because the URL says ?backend=cpu. Same results as WebGPU, usually slower.")),
        });
    }
    match request_adapter().await {
        Ok(adapter) => {
            init_setup_async::<WebGpu>(&WgpuDevice::default(), RuntimeOptions::default()).await;
            Ok(Selected { backend: ComputeBackend::WebGpu, adapter: Some(adapter), notice: None })
        }
        Err(why) if choice == BackendChoice::WebGpu => Err(format!("WebGPU was required by ?backend=webgpu, but {why}")),
        Err(why) => Ok(Selected {
            backend: ComputeBackend::Cpu,
            adapter: None,
            notice: Some(format!("WebGPU is not available here ({why}), so training runs on the CPU ({CPU_CRATE}) instead: same results, usually slower.")),
        }),
    }
}

/// Ask the browser for a WebGPU adapter; `Ok` holds a short description of it.
async fn request_adapter() -> std::result::Result<String, String> {
    // `self.navigator`: the worker's (WorkerNavigator), or the window's.
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
    let gpu = Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("navigator.gpu is missing".into());
    }
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("navigator.gpu.requestAdapter is not a function")?;
    let promise: Promise = request.call0(&gpu).map_err(|e| format!("requestAdapter() threw {e:?}"))?.unchecked_into();
    let adapter = JsFuture::from(promise).await.map_err(|e| format!("requestAdapter() failed: {e:?}"))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("requestAdapter() returned null".into());
    }
    Ok(describe_adapter(&adapter))
}

fn describe_adapter(adapter: &JsValue) -> String {
    let info = Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let text = |key: &str| {
        Reflect::get(&info, &key.into()).ok().and_then(|v| v.as_string()).filter(|s| !s.is_empty())
    };
    let fallback = [&info, adapter]
        .iter()
        .any(|o| Reflect::get(o, &"isFallbackAdapter".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false));
    let mut parts: Vec<String> = ["vendor", "architecture", "description"].iter().filter_map(|k| text(k)).collect();
    parts.dedup();
    if fallback {
        parts.push("software fallback adapter".into());
    }
    if parts.is_empty() { "adapter details hidden by the browser".into() } else { parts.join(", ") }
}

/// A trainer on whichever backend was selected.
pub enum AnyTrainer {
    Gpu(Box<Trainer<GpuBackend>>),
    Cpu(Box<Trainer<CpuBackend>>),
}

impl AnyTrainer {
    /// A trainer on the run's data, which the worker built once for the run (from the scenario
    /// or from an uploaded file): the trainer does not build it again.
    pub fn with_dataset(backend: ComputeBackend, config: RunConfig, dataset: PairDataset) -> Result<Self> {
        Ok(match backend {
            ComputeBackend::WebGpu => Self::Gpu(Box::new(Trainer::with_dataset(config, dataset, &WgpuDevice::default())?)),
            ComputeBackend::Cpu => Self::Cpu(Box::new(Trainer::with_dataset(config, dataset, &cpu_device())?)),
        })
    }

    /// The current weights as a checkpoint (`model.safetensors`, with the run config inside),
    /// the format the native binary writes and reads.
    /// Continue from a checkpoint's weights (see `Trainer::start_from`).
    pub fn start_from(&mut self, bytes: Vec<u8>) -> Result<()> {
        match self {
            Self::Gpu(t) => t.start_from(bytes),
            Self::Cpu(t) => t.start_from(bytes),
        }
    }

    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        match self {
            Self::Gpu(t) => t.checkpoint_bytes(),
            Self::Cpu(t) => t.checkpoint_bytes(),
        }
    }

    pub async fn step(&mut self) -> Result<StepMetrics> {
        match self {
            Self::Gpu(t) => t.step().await,
            Self::Cpu(t) => t.step().await,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            Self::Gpu(t) => t.is_done(),
            Self::Cpu(t) => t.is_done(),
        }
    }

    pub fn steps_done(&self) -> usize {
        match self {
            Self::Gpu(t) => t.steps_done(),
            Self::Cpu(t) => t.steps_done(),
        }
    }

    /// The current weights without the autodiff graph: a cheap copy the views can evaluate while
    /// training goes on.
    pub fn snapshot(&self) -> AnyModel {
        match self {
            Self::Gpu(t) => AnyModel::Gpu(t.model().valid()),
            Self::Cpu(t) => AnyModel::Cpu(t.model().valid()),
        }
    }
}

/// A trained model on whichever backend was selected, for the views.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // a handful alive at a time: boxing would only add indirection
pub enum AnyModel {
    Gpu(PreferenceModel<Wgpu>),
    Cpu(PreferenceModel<CpuInner>),
}

impl AnyModel {
    /// Rebuild a model from checkpoint bytes (config and widths come from the file) on `backend`.
    pub fn from_checkpoint(backend: ComputeBackend, bytes: Vec<u8>) -> Result<(PreferenceCheckpoint, Self)> {
        Ok(match backend {
            ComputeBackend::WebGpu => {
                let (head, m) = load_preference_model::<Wgpu>(bytes, &WgpuDevice::default())?;
                (head, Self::Gpu(m))
            }
            ComputeBackend::Cpu => {
                let (head, m) = load_preference_model::<CpuInner>(bytes, &cpu_device())?;
                (head, Self::Cpu(m))
            }
        })
    }
}

/// Run a backend-generic async function on an [`AnyModel`] with its device:
/// `on_model!(model, |m, device| body)`.
macro_rules! on_model {
    ($model:expr, |$m:ident, $device:ident| $body:expr) => {
        match $model {
            $crate::backend::AnyModel::Gpu($m) => {
                let $device = &burn::backend::wgpu::WgpuDevice::default();
                $body
            }
            $crate::backend::AnyModel::Cpu($m) => {
                let $device = &$crate::backend::cpu_device();
                $body
            }
        }
    };
}
pub(crate) use on_model;
