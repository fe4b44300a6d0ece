//! The page's compute thread: a dedicated Web Worker that owns the backend (WebGPU or the CPU),
//! the trainer and the latest weights. It trains step by step and evaluates the views and the
//! landscape grid, so the main thread only renders and handles input.
//!
//! The page and the worker run the same wasm binary: `main` registers [`ComputeWorker`] when it
//! finds no `window`, and [`spawn`] starts it from the page's own module (`import.meta.url`), so
//! Trunk builds and hashes one bundle. Messaging is gloo-worker's actor bridge with its bincode
//! codec: each message crosses as one `Uint8Array` (floats as raw little-endian words, never
//! JSON). The run config crosses as its TOML text, the format the CLI reads.
//!
//! Every reply about a run carries the run's id ([`RunSpec::run`]); the page drops replies for a
//! run it has reset. Landscape replies carry their request id instead.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_worker::{HandlerId, Registrable, Spawnable, Worker, WorkerBridge, WorkerScope};
use prefscope_core::reward::train::EvalMetrics;
use prefscope_core::{PairDataset, RunConfig, StepMetrics};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::wasm_bindgen;

use crate::backend::{AnyModel, AnyTrainer, ComputeBackend, Selected};
use crate::compute::dial::Candidates;
use crate::compute::embedding::Embeddings;
use crate::landscape::Slice;
use crate::plot::DataView;
use crate::settings::{BackendChoice, Plane};
use crate::surface::DecisionSurface;
use crate::upload::Dropped;

/// Step metrics are sent in batches at most this often (and at once on evaluation steps, pause
/// and the end), so a fast CPU run does not make the page re-render hundreds of times a second.
const FLUSH_MS: f64 = 33.0;
/// The training loop yields to the worker's event loop (to take Pause, Step and view requests)
/// after at most this long; yielding after every step would cost a clamped 4 ms timer each.
const YIELD_MS: f64 = 8.0;

/// What the page asks of the worker.
#[derive(Serialize, Deserialize)]
pub enum Input {
    /// Choose and initialise the backend (the first message).
    Select(BackendChoice),
    /// Read a dropped file for the runs to come (the run config gives an embedding file's split
    /// check); answered by [`Output::UploadRead`]. A file that fails to read replaces nothing.
    ReadUpload { name: String, bytes: Vec<u8>, config: String },
    /// Check a checkpoint before the page adopts its settings: its header, and which data it fits
    /// (the current run's file, else its own scenario); answered by [`Output::Inspected`].
    Inspect { name: String, bytes: Vec<u8> },
    /// Start a new run: drops the trainer, the weights and everything computed from them.
    /// Answered by [`Output::Data`].
    Run(RunSpec),
    /// Train (building the trainer first if needed) until done or paused; cancels a pending pause.
    /// `snapshot_every` applies when the trainer is built (0: no trajectory snapshots).
    Train { snapshot_every: usize },
    /// One step, then pause.
    Step { snapshot_every: usize },
    /// Stop after the step in flight.
    Pause,
    /// The loss landscape of the latest weights; supersedes any earlier request.
    Landscape { request: u64, plane: Plane, n: usize, snapshot_every: usize },
    /// Drop landscape work in flight (it stops at its next batch).
    CancelLandscape { request: u64 },
    /// Recompute the views of the latest weights.
    Views(Views),
    /// The trainer's weights as a checkpoint.
    Export,
    /// The Policy tab: a bandit policy trained with a DPO-family loss.
    /// `modpo_w1`: MODPO's weight on the preference reward (the second gets 1 − w₁).
    Bandit { loss: String, beta: f64, direction: Option<u32>, use_weighting: bool, modpo_w1: f64 },
    /// The Policy tab's online mode: a proxy reward model, then a policy optimising it.
    Online { labels: usize, method: String, seed: u64 },
}

/// Everything that defines a run.
#[derive(Serialize, Deserialize)]
pub struct RunSpec {
    pub run: u64,
    /// The run config as TOML.
    pub config: String,
    /// The dropped file the run trains on instead of the scenario: the name of the file the
    /// worker read last ([`Input::ReadUpload`]).
    pub upload: Option<String>,
    /// A checkpoint (name, bytes) whose weights the run starts from.
    pub checkpoint: Option<(String, Vec<u8>)>,
}

/// Which views to compute.
#[derive(Serialize, Deserialize, Default)]
pub struct Views {
    pub candidates: bool,
    pub embeddings: bool,
    /// The decision surface over `[-extent, extent]²`.
    pub surface: Option<f32>,
    pub margins: bool,
    pub profiles: bool,
}

/// One step's metrics ([`StepMetrics`] skips absent fields for JSON, which bincode cannot read).
#[derive(Serialize, Deserialize)]
pub struct Metrics {
    pub step: usize,
    pub loss: f32,
    pub train_accuracy: f32,
    pub eval: Option<EvalMetrics>,
}

impl From<StepMetrics> for Metrics {
    fn from(m: StepMetrics) -> Self {
        Self { step: m.step, loss: m.loss, train_accuracy: m.train_accuracy, eval: m.eval }
    }
}

/// What the worker reports.
#[derive(Serialize, Deserialize)]
pub enum Output {
    Backend(Result<Selected, String>),
    /// What the page shows of the run's data, or why there is none.
    Data(u64, Result<DataView, String>),
    /// A dropped file was read (whether it is an embedding file), or why not.
    UploadRead(String, Result<bool, String>),
    /// A checkpoint's header and the data it fits, or why it cannot be opened.
    Inspected(String, Result<Inspected, String>),
    Steps(u64, Vec<Metrics>),
    Paused(u64),
    Done(u64),
    Failed(u64, String),
    /// The run's checkpoint was loaded, or why not.
    Opened(u64, Result<(), String>),
    Landscape(u64, Result<Slice, String>),
    Candidates(u64, Result<Candidates, String>),
    Embeddings(u64, Result<Embeddings, String>),
    Profiles(u64, Result<crate::compute::profiles::Profiles, String>),
    Surface(u64, Result<DecisionSurface, String>),
    /// Held-out logits and the step they are from.
    Margins(u64, usize, Result<Vec<f32>, String>),
    /// Checkpoint bytes and the step they are from.
    Checkpoint(u64, Result<(usize, Vec<u8>), String>),
    /// The worker panicked (a lost GPU device shows up so): it cannot go on.
    Fatal(String),
    Bandit(Result<crate::compute::policy::Run, String>),
    /// Progress of the online mode, as it happens.
    Online(crate::compute::online::Update),
}

/// A checkpoint the page may open.
#[derive(Serialize, Deserialize)]
pub struct Inspected {
    /// Steps its weights were trained for.
    pub step: usize,
    /// Its run config as TOML.
    pub config: String,
    /// It fits the current run's dropped file (else it fits its own scenario).
    pub upload_fits: bool,
}

/// Sends replies to the page.
#[derive(Clone)]
struct Reply {
    scope: WorkerScope<ComputeWorker>,
    id: HandlerId,
}

impl Reply {
    fn send(&self, output: Output) {
        self.scope.respond(self.id, output);
    }
}

thread_local! {
    /// Where the panic hook reports to.
    static REPLY: RefCell<Option<Reply>> = const { RefCell::new(None) };
}

/// The run's state, shared by the message handlers and the loops they start.
#[derive(Default)]
struct State {
    backend: Cell<Option<ComputeBackend>>,
    run: Cell<u64>,
    config: RefCell<Option<RunConfig>>,
    /// The run's data; an error says why there is none.
    dataset: RefCell<Option<Result<Rc<PairDataset>, String>>>,
    /// The data came from a dropped file (the trainer takes it as is).
    uploaded: Cell<bool>,
    /// The file dropped last, parsed once; each run splits it by its own seed.
    file: RefCell<Option<Dropped>>,
    checkpoint: RefCell<Option<(String, Vec<u8>)>>,
    /// The trainer between steps (taken out while a step is in flight).
    slot: RefCell<Option<AnyTrainer>>,
    /// A loop of the current run is going.
    running: Cell<bool>,
    pause: Cell<bool>,
    /// Pause after the next step.
    step_once: Cell<bool>,
    /// The weights after the latest step (without autodiff), for the views, with the step.
    latest: RefCell<Option<(AnyModel, usize)>>,
    /// Flattened weights every `snapshot_every` steps, the initial ones first: the landscape's
    /// PCA trajectory and the start of its interpolation line.
    snapshots: RefCell<Vec<Rc<Vec<f32>>>>,
    snapshot_every: Cell<usize>,
    landscape_request: Cell<u64>,
}

impl State {
    fn dataset(&self) -> Result<Rc<PairDataset>, String> {
        self.dataset.borrow().clone().unwrap_or_else(|| Err("no run yet".into()))
    }

    fn new_run(&self, spec: RunSpec) -> Result<(), String> {
        self.run.set(spec.run);
        self.slot.borrow_mut().take();
        self.latest.borrow_mut().take();
        self.snapshots.borrow_mut().clear();
        self.running.set(false);
        self.pause.set(false);
        self.step_once.set(false);
        // The page never uses this request id: landscape work in flight stops.
        self.landscape_request.set(u64::MAX);
        let config = RunConfig::from_toml("the page's settings", &spec.config).map_err(|e| e.to_string());
        let dataset = config.as_ref().map_err(Clone::clone).and_then(|cfg| match &spec.upload {
            Some(name) => match self.file.borrow().as_ref() {
                Some(file) if &file.name == name => file.run_data(cfg),
                _ => Err(format!("{name}: the compute worker has not read this file")),
            },
            None => cfg.scenario.build(cfg.seed).map_err(|e| e.to_string()),
        });
        // The model's objectives follow an uploaded file's ratings.
        let config = config.map(|mut cfg| {
            if let (Some(_), Ok(ds)) = (&spec.upload, &dataset)
                && ds.n_objectives > 0
            {
                cfg.model.objectives = ds.n_objectives;
            }
            cfg
        });
        self.uploaded.set(spec.upload.is_some());
        *self.dataset.borrow_mut() = Some(dataset.map(Rc::new));
        *self.config.borrow_mut() = config.clone().ok();
        *self.checkpoint.borrow_mut() = spec.checkpoint.clone();
        config?;
        let Some((_, bytes)) = spec.checkpoint else { return Ok(()) };
        let backend = self.backend.get().ok_or("no backend yet")?;
        let (head, model) = AnyModel::from_checkpoint(backend, bytes).map_err(|e| e.to_string())?;
        *self.latest.borrow_mut() = Some((model, head.step));
        Ok(())
    }

    /// What the page shows of the run's data.
    fn data_view(&self) -> Result<DataView, String> {
        let ds = self.dataset()?;
        let kind = self.config.borrow().as_ref().map(|c| c.scenario.kind).ok_or("no run yet")?;
        Ok(DataView::of(&ds, kind))
    }

    /// Whether a checkpoint can be opened, and on which data: the current run's dropped file when
    /// the model fits it (one exported after that upload), else the scenario its config names.
    fn inspect(&self, bytes: &[u8]) -> Result<Inspected, String> {
        use prefscope_core::reward::checkpoint::{check_fits, inspect_preference_model};
        let head = inspect_preference_model(bytes).map_err(|e| e.to_string())?;
        head.config.model.validate().map_err(|e| e.to_string())?;
        let upload_fits = self.uploaded.get() && self.dataset().is_ok_and(|ds| check_fits(&head, &ds).is_ok());
        if !upload_fits {
            let ds = head.config.scenario.build(head.config.seed).map_err(|e| e.to_string())?;
            check_fits(&head, &ds).map_err(|e| format!("{e}. A model trained on a pair or embedding file opens after that file is dropped on the page"))?;
        }
        Ok(Inspected { step: head.step, config: head.config.to_toml(), upload_fits })
    }

    /// Build the trainer if there is none (and no step in flight).
    fn ensure_trainer(&self, snapshot_every: usize) -> Result<(), String> {
        if self.slot.borrow().is_some() || self.running.get() {
            return Ok(());
        }
        let backend = self.backend.get().ok_or("no backend yet")?;
        let config = self.config.borrow().clone().ok_or("no run yet")?;
        // A scenario's config is checked whole, as `Trainer::new` would; an upload's data is the
        // file's, whatever its scenario fields say.
        if !self.uploaded.get() {
            config.validate().map_err(|e| e.to_string())?;
        }
        let mut trainer = AnyTrainer::with_dataset(backend, config, self.dataset()?.as_ref().clone()).map_err(|e| e.to_string())?;
        if let Some((name, bytes)) = self.checkpoint.borrow_mut().take() {
            trainer.start_from(bytes).map_err(|e| format!("cannot continue from {name}: {e}"))?;
        }
        *self.latest.borrow_mut() = Some((trainer.snapshot(), trainer.steps_done()));
        self.snapshot_every.set(snapshot_every);
        *self.slot.borrow_mut() = Some(trainer);
        Ok(())
    }

    /// The latest weights, building the trainer (for its initial weights) when there are none.
    fn latest(&self, snapshot_every: usize) -> Result<(AnyModel, usize), String> {
        if self.latest.borrow().is_none() {
            self.ensure_trainer(snapshot_every)?;
        }
        self.latest.borrow().clone().ok_or_else(|| "no weights yet".into())
    }
}

/// The compute worker (see the module docs).
pub struct ComputeWorker {
    state: Rc<State>,
}

impl Worker for ComputeWorker {
    type Message = ();
    type Input = Input;
    type Output = Output;

    fn create(_scope: &WorkerScope<Self>) -> Self {
        Self { state: Rc::default() }
    }

    fn update(&mut self, _scope: &WorkerScope<Self>, _msg: ()) {}

    fn received(&mut self, scope: &WorkerScope<Self>, msg: Input, id: HandlerId) {
        let reply = Reply { scope: scope.clone(), id };
        REPLY.with(|r| *r.borrow_mut() = Some(reply.clone()));
        let state = self.state.clone();
        let run = state.run.get();
        let step = matches!(msg, Input::Step { .. });
        match msg {
            Input::Select(choice) => wasm_bindgen_futures::spawn_local(async move {
                let selected = crate::backend::select(choice).await;
                if let Ok(s) = &selected {
                    state.backend.set(Some(s.backend));
                }
                reply.send(Output::Backend(selected));
            }),
            Input::Run(spec) => {
                let (run, opening) = (spec.run, spec.checkpoint.is_some());
                let result = state.new_run(spec);
                reply.send(Output::Data(run, state.data_view()));
                if opening {
                    reply.send(Output::Opened(run, result));
                } else if let Err(e) = result {
                    reply.send(Output::Failed(run, e));
                }
            }
            Input::Train { snapshot_every } | Input::Step { snapshot_every } => {
                if step {
                    state.step_once.set(true);
                }
                if let Err(e) = state.ensure_trainer(snapshot_every) {
                    reply.send(Output::Failed(run, e));
                    return;
                }
                state.pause.set(false);
                if !state.running.replace(true) {
                    wasm_bindgen_futures::spawn_local(train_loop(state, run, reply));
                }
            }
            Input::ReadUpload { name, bytes, config } => {
                let read = RunConfig::from_toml("the page's settings", &config).map_err(|e| e.to_string()).and_then(|cfg| Dropped::read(&name, &bytes, &cfg));
                let result = read.map(|file| {
                    let embeddings = file.embeddings;
                    *state.file.borrow_mut() = Some(file);
                    embeddings
                });
                reply.send(Output::UploadRead(name, result));
            }
            Input::Inspect { name, bytes } => reply.send(Output::Inspected(name, state.inspect(&bytes))),
            Input::Pause => state.pause.set(true),
            Input::Landscape { request, plane, n, snapshot_every } => {
                state.landscape_request.set(request);
                let inputs = state.latest(snapshot_every).and_then(|latest| Ok((latest, state.dataset()?)));
                let ((model, step), ds) = match inputs {
                    Ok(x) => x,
                    Err(e) => return reply.send(Output::Landscape(request, Err(e))),
                };
                let seed = state.config.borrow().as_ref().map_or(0, |c| c.seed);
                let req = crate::compute::landscape::Request { plane, n, seed, trajectory: state.snapshots.borrow().clone(), step };
                wasm_bindgen_futures::spawn_local(async move {
                    let current = state.clone();
                    let superseded = move || current.landscape_request.get() != request;
                    let result = crate::compute::landscape::compute(model, ds, req, &superseded).await;
                    if !superseded() {
                        reply.send(Output::Landscape(request, result));
                    }
                });
            }
            Input::CancelLandscape { request } => state.landscape_request.set(request),
            Input::Views(views) => {
                let (Some((model, step)), Ok(ds)) = (state.latest.borrow().clone(), state.dataset()) else { return };
                wasm_bindgen_futures::spawn_local(compute_views(model, step, ds, views, run, reply));
            }
            Input::Export => {
                let bytes = match state.slot.borrow().as_ref() {
                    Some(t) => t.checkpoint_bytes().map(|b| (t.steps_done(), b)).map_err(|e| e.to_string()),
                    None => Err("there is no trained model to export yet".into()),
                };
                // With the landscape open the run kept its trajectory: it travels in the file, so
                // `prefscope landscape --plane pca` draws the plane the page drew.
                let snapshots: Vec<Vec<f32>> = state.snapshots.borrow().iter().map(|s| s.as_ref().clone()).collect();
                let bytes = match bytes {
                    Ok((step, b)) if !snapshots.is_empty() => prefscope_core::reward::checkpoint::attach_trajectory(&b, &snapshots).map(|b| (step, b)).map_err(|e| e.to_string()),
                    other => other,
                };
                reply.send(Output::Checkpoint(run, bytes));
            }
            Input::Bandit { loss, beta, direction, use_weighting, modpo_w1 } => reply.send(Output::Bandit(crate::compute::policy::train(&loss, beta, direction, use_weighting, modpo_w1))),
            Input::Online { labels, method, seed } => wasm_bindgen_futures::spawn_local(async move {
                crate::compute::online::run(labels, method, seed, |u| reply.send(Output::Online(u))).await;
            }),
        }
    }
}

async fn compute_views(model: AnyModel, step: usize, ds: Rc<PairDataset>, views: Views, run: u64, reply: Reply) {
    if views.candidates {
        reply.send(Output::Candidates(run, crate::compute::dial::candidates(model.clone(), ds.clone(), step).await));
    }
    if views.embeddings {
        reply.send(Output::Embeddings(run, crate::compute::embedding::embeddings(model.clone(), ds.clone(), step).await));
    }
    if views.profiles {
        reply.send(Output::Profiles(run, crate::compute::profiles::profiles(model.clone(), ds.clone(), step).await));
    }
    if let Some(extent) = views.surface {
        reply.send(Output::Surface(run, crate::compute::surface::compute(model.clone(), extent, step).await));
    }
    if views.margins {
        reply.send(Output::Margins(run, step, crate::compute::margins::held_out_logits(model, ds).await));
    }
}

/// Step metrics waiting to be sent.
struct StepBatch {
    run: u64,
    metrics: Vec<Metrics>,
    sent_at: f64,
}

impl StepBatch {
    fn push(&mut self, m: StepMetrics, reply: &Reply) {
        let eval = m.eval.is_some();
        self.metrics.push(m.into());
        if eval || js_sys::Date::now() - self.sent_at >= FLUSH_MS {
            self.flush(reply);
        }
    }

    fn flush(&mut self, reply: &Reply) {
        if !self.metrics.is_empty() {
            reply.send(Output::Steps(self.run, std::mem::take(&mut self.metrics)));
        }
        self.sent_at = js_sys::Date::now();
    }
}

/// One step at a time until done, paused or superseded by a new run.
async fn train_loop(state: Rc<State>, run: u64, reply: Reply) {
    let mut batch = StepBatch { run, metrics: vec![], sent_at: js_sys::Date::now() };
    let mut yielded_at = js_sys::Date::now();
    loop {
        if state.run.get() != run {
            return;
        }
        if state.pause.get() {
            state.running.set(false);
            batch.flush(&reply);
            reply.send(Output::Paused(run));
            return;
        }
        let Some(mut trainer) = state.slot.borrow_mut().take() else {
            state.running.set(false);
            return;
        };
        let every = state.snapshot_every.get();
        if every > 0 && trainer.steps_done() == 0 && state.snapshots.borrow().is_empty() {
            snapshot(&state, &trainer).await;
        }
        let result = trainer.step().await;
        if state.run.get() != run {
            return; // a new run began while the step was in flight: drop this trainer
        }
        let done = trainer.is_done();
        *state.latest.borrow_mut() = Some((trainer.snapshot(), trainer.steps_done()));
        if every > 0 && result.is_ok() && (trainer.steps_done().is_multiple_of(every) || done) {
            snapshot(&state, &trainer).await;
        }
        if state.run.get() != run {
            return;
        }
        *state.slot.borrow_mut() = Some(trainer);
        if state.step_once.replace(false) {
            state.pause.set(true);
        }
        match result {
            Ok(m) => batch.push(m, &reply),
            Err(e) => {
                state.running.set(false);
                batch.flush(&reply);
                reply.send(Output::Failed(run, e.to_string()));
                return;
            }
        }
        if done {
            state.running.set(false);
            batch.flush(&reply);
            reply.send(Output::Done(run));
            return;
        }
        if js_sys::Date::now() - yielded_at >= YIELD_MS || state.pause.get() {
            gloo_timers::future::TimeoutFuture::new(0).await;
            yielded_at = js_sys::Date::now();
        }
    }
}

/// Record the trainer's flattened weights; models the landscape does not cover record nothing.
async fn snapshot(state: &State, trainer: &AnyTrainer) {
    let model = trainer.snapshot();
    let weights = crate::backend::on_model!(&model, |m, _device| prefscope_core::studies::landscape::read_weights(m).await);
    if let Ok(w) = weights {
        state.snapshots.borrow_mut().push(Rc::new(w));
    }
}

/// Run the worker in this (worker) thread: called by `main` when there is no `window`.
pub fn register() {
    std::panic::set_hook(Box::new(|info| {
        let text = format!("panic: {info}");
        web_sys::console::error_1(&format!("prefscope worker: {text}").into());
        REPLY.with(|r| {
            if let Ok(r) = r.try_borrow()
                && let Some(reply) = r.as_ref()
            {
                reply.send(Output::Fatal(text.clone()));
            }
        });
    }));
    ComputeWorker::registrar().register();
}

#[wasm_bindgen]
extern "C" {
    /// The URL of this module (the page's wasm-bindgen glue), which the worker imports too.
    #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
    static MODULE_URL: String;
}

/// Start the worker from the page: a classic worker whose script imports this same module and
/// initialises it (its `main` then calls [`register`]). The script also keeps every GPU device
/// the worker creates in `self.__gpuDevices`, the test hook that simulates a lost device.
pub fn spawn(on_output: impl Fn(Output) + 'static) -> Result<WorkerBridge<ComputeWorker>, String> {
    let module = MODULE_URL.with(Clone::clone);
    // Trunk renames wasm-bindgen's output, so the glue's default wasm path is wrong: name it
    // after the module, as Trunk does (`<name>-<hash>.js` beside `<name>-<hash>_bg.wasm`).
    let wasm = format!("{}_bg.wasm", module.strip_suffix(".js").ok_or_else(|| format!("unexpected module URL {module}"))?);
    let script = format!(
        "self.__gpuDevices = [];\n\
         if (self.GPUAdapter) {{\n\
           const request = GPUAdapter.prototype.requestDevice;\n\
           GPUAdapter.prototype.requestDevice = async function (...args) {{ const d = await request.apply(this, args); self.__gpuDevices.push(d); return d; }};\n\
         }}\n\
         import({module:?}).then((m) => m.default({{ module_or_path: {wasm:?} }})).catch((e) => {{ console.error('prefscope worker: could not start:', e); self.close(); }});\n"
    );
    let parts = js_sys::Array::of1(&script.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    Ok(ComputeWorker::spawner().callback(on_output).spawn_with_loader(&url))
}

/// Send a panel's compute worker a request, starting the worker (with `on_output` for its
/// replies) on first use. The bridge is never cloned: a dropped clone tells the worker its page
/// went away.
pub fn send_lazily(slot: &Rc<RefCell<Option<WorkerBridge<ComputeWorker>>>>, on_output: impl Fn(Output) + 'static, input: Input) -> Result<(), String> {
    let mut slot = slot.borrow_mut();
    if slot.is_none() {
        *slot = Some(spawn(on_output)?);
    }
    slot.as_ref().expect("just set").send(input);
    Ok(())
}
