//! The playground: pick a scenario and a model, train in the tab, watch the loss fall.
//!
//! Training, evaluation and the landscape grid run in the compute worker ([`crate::worker`]);
//! this thread renders and handles input only. Each reset starts a new run (`App::run`, sent to
//! the worker with the run's config); replies for an older run are dropped. Pause asks the
//! worker to stop after the step in flight.
//!
//! Test hooks: `data-testid` on the controls and read-outs, and `window.__prefscope`, an object
//! `{ backend: "webgpu"|"cpu"|null, adapter, status, steps, losses: [f32 per step],
//!    stepTimes: [Date.now() per step], evals: [{step, accuracy, loss}], accuracy: number|null }`
//! kept current after every step.

use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use gloo_worker::WorkerBridge;
use prefscope_core::{ModelKind, RunConfig, ScenarioKind};
use wasm_bindgen::JsValue;
use web_sys::File;
use yew::prelude::*;

use crate::backend::{ComputeBackend, Selected};
use crate::compute::dial::Candidates;
use crate::compute::embedding::Embeddings;
use crate::compute::profiles::Profiles;
use crate::worker::{ComputeWorker, Input, Inspected, Output, RunSpec, Views};
use crate::landscape::Slice;
use crate::landscape_panel::PanelState;
use crate::plot::{DataPicture, DataView};
use crate::online_panel::OnlinePanel;
use crate::policy::PolicyPanel;
use crate::settings::{Panel, Plane, Settings, Tab};
use crate::surface::{DecisionSurface, Field};

mod hook;
mod output;
mod parts;
mod view;

use parts::{Upload, download_bytes, export_png, file_bytes};



/// Where training stands; `label()` is the exact text of `data-testid="status"`.
#[derive(Clone, Debug, PartialEq)]
enum Status {
    Idle,
    Training,
    Paused,
    Done,
    Error(String),
}

impl Status {
    fn label(&self) -> String {
        match self {
            Self::Idle => "idle".into(),
            Self::Training => "training".into(),
            Self::Paused => "paused".into(),
            Self::Done => "done".into(),
            Self::Error(e) => format!("error: {e}"),
        }
    }
}

enum BackendState {
    Detecting,
    Ready(Selected),
    Failed(String),
}

pub enum Msg {
    /// A reply from the compute worker.
    Worker(Output),
    SetScenario(String),
    SetModel(String),
    SetNormalize(bool),
    SetDr(bool),
    SetContext(usize),
    SetTab(Tab),
    Train,
    Pause,
    Reset,
    SetPlane(Plane),
    SetGrid(usize),
    SetLog(bool),
    ComputeLandscape,
    TogglePanel(Panel),
    SetDirection(u32),
    SetWeights(Vec<u32>),
    SetBeta(i32),
    SetOnlineLabels(usize),
    SetOnlineMethod(String),
    /// Change settings that define the run (hyper-parameters, seed, steps): a new run.
    Edit(Rc<dyn Fn(&mut Settings)>),
    Step,
    ExportModel,
    ExportPng(String),
    Upload(File),
    /// A dropped file's name and bytes, for the worker to read.
    UploadBytes(Result<(String, Vec<u8>), String>),
    ClearUpload,
    OpenCheckpoint(File),
    CheckpointRead(String, Result<Vec<u8>, String>),
}


pub struct App {
    settings: Settings,
    url_warnings: Vec<String>,
    backend: BackendState,
    /// The worker's view of a run's data (none before its first reply), and that run.
    dataset: Option<Result<Rc<DataView>, String>>,
    data_run: u64,
    picture: Option<Rc<DataPicture>>,
    status: Status,
    pausing: bool,
    /// The compute worker, or why it could not start.
    worker: Result<WorkerBridge<ComputeWorker>, String>,
    /// The current run's id: bumped by every reset, sent with the run's spec.
    run: u64,
    /// The latest landscape request (bumped to cancel one in flight).
    landscape_request: u64,
    losses: Vec<f32>,
    evals: Vec<(usize, f32, f32)>,
    final_accuracy: Option<f32>,
    /// (wall-clock ms, steps done) when the current stretch of training began, for the speed.
    stretch_start: Option<(f64, usize)>,
    ms_per_step: Option<f64>,
    /// `window.__prefscope` and its `losses` array.
    hook: Object,
    hook_losses: Array,
    /// `Date.now()` when each step's metrics arrived (`window.__prefscope.stepTimes`).
    hook_times: Array,
    /// `window.__prefscope.evals`, appended to as evaluations arrive.
    hook_evals: Array,
    /// `window.__prefscope.charts.trainAccuracy`, appended to per step.
    hook_train_accuracy: Array,
    /// The hook's larger parts (landscape, surface, dial, embedding, margins) with the version
    /// of the state each was made from: `publish` runs after every update, and remaking them
    /// each time made a dial drag's pointer moves long tasks.
    hook_parts: std::cell::RefCell<std::collections::HashMap<&'static str, (u64, JsValue)>>,
    landscape: Option<Rc<Slice>>,
    landscape_state: PanelState,
    /// The dial's candidates and the GPM embeddings of the latest model; an error says why not.
    candidates: Option<Result<Rc<Candidates>, String>>,
    embeddings: Option<Result<Rc<Embeddings>, String>>,
    /// The attribute-attention model's per-community attention (PrefPalette's view).
    profiles: Option<Result<Rc<Profiles>, String>>,
    /// Minibatch accuracy per step.
    train_accuracy: Vec<f32>,
    surface: Option<Result<Rc<DecisionSurface>, String>>,
    /// Held-out logits of the latest model and the step they are from.
    margins: Option<(Rc<Vec<f32>>, usize)>,
    /// A pair or embedding file dropped on the page, used instead of the scenario.
    uploaded: Option<Upload>,
    upload_error: Option<String>,
    /// What the last opened checkpoint was, or why it could not be opened.
    checkpoint_note: Option<String>,
    /// The opened checkpoint (name, bytes) that Train continues from, until the run is reset.
    opened: Option<(String, Vec<u8>)>,
    /// A checkpoint the worker is checking before the page adopts its settings.
    inspecting: Option<(String, Vec<u8>)>,
    /// The child components' callbacks, made once: Yew compares callbacks by pointer, so a
    /// callback made in `view` would re-render every panel on every update (a dial drag
    /// re-rendered the landscape panel at each pointer move).
    cb: Callbacks,
}

struct Callbacks {
    beta: Callback<i32>,
    direction: Callback<u32>,
    weights: Callback<Vec<u32>>,
    online_labels: Callback<usize>,
    online_method: Callback<String>,
    plane: Callback<Plane>,
    grid: Callback<usize>,
    log: Callback<bool>,
    compute: Callback<()>,
}

impl Callbacks {
    fn new(link: &yew::html::Scope<App>) -> Self {
        Self {
            beta: link.callback(Msg::SetBeta),
            direction: link.callback(Msg::SetDirection),
            weights: link.callback(Msg::SetWeights),
            online_labels: link.callback(Msg::SetOnlineLabels),
            online_method: link.callback(Msg::SetOnlineMethod),
            plane: link.callback(Msg::SetPlane),
            grid: link.callback(Msg::SetGrid),
            log: link.callback(Msg::SetLog),
            compute: link.callback(|_| Msg::ComputeLandscape),
        }
    }
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let query = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
        let (settings, url_warnings) = Settings::from_query(&query);
        let choice = settings.backend;
        let on_output = ctx.link().callback(Msg::Worker);
        let worker = crate::worker::spawn(move |o| on_output.emit(o));
        if let Ok(w) = &worker {
            w.send(Input::Select(choice));
        }
        let hook = Object::new();
        if let Some(w) = web_sys::window() {
            let _ = Reflect::set(&w, &"__prefscope".into(), &hook);
        }
        let mut app = Self {
            settings,
            url_warnings,
            backend: match &worker {
                Ok(_) => BackendState::Detecting,
                Err(e) => BackendState::Failed(format!("the compute worker did not start: {e}")),
            },
            dataset: None,
            data_run: 0,
            picture: None,
            status: Status::Idle,
            pausing: false,
            worker,
            run: 0,
            landscape_request: 0,
            losses: vec![],
            evals: vec![],
            final_accuracy: None,
            stretch_start: None,
            ms_per_step: None,
            hook,
            hook_losses: Array::new(),
            hook_times: Array::new(),
            hook_evals: Array::new(),
            hook_train_accuracy: Array::new(),
            hook_parts: Default::default(),
            landscape: None,
            landscape_state: PanelState::Idle,
            candidates: None,
            embeddings: None,
            profiles: None,
            train_accuracy: vec![],
            surface: None,
            margins: None,
            uploaded: None,
            upload_error: None,
            checkpoint_note: None,
            opened: None,
            inspecting: None,
            cb: Callbacks::new(ctx.link()),
        };
        app.send_run();
        app.publish();
        app
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Worker(output) => self.on_output(output),
            Msg::SetScenario(name) => {
                if let Ok(kind) = ScenarioKind::parse(&name)
                    && kind != self.settings.scenario
                {
                    self.settings.scenario = kind;
                    self.settings_changed();
                }
            }
            Msg::SetModel(name) => {
                if let Ok(kind) = ModelKind::parse(&name)
                    && kind != self.settings.model
                {
                    self.settings.model = kind;
                    self.settings_changed();
                }
            }
            Msg::SetNormalize(on) => {
                if on != self.settings.normalize {
                    self.settings.normalize = on;
                    self.settings_changed();
                }
            }
            Msg::SetDr(on) => {
                if on != self.settings.dr {
                    self.settings.dr = on;
                    self.settings_changed();
                }
            }
            Msg::SetContext(c) => {
                if c != self.settings.context {
                    self.settings.context = c;
                    self.write_url();
                }
            }
            Msg::SetTab(tab) => {
                if tab != self.settings.tab {
                    self.settings.tab = tab;
                    self.write_url();
                }
            }
            Msg::Train => match self.status {
                Status::Training => {
                    // Train while a pause is pending cancels the pause.
                    self.pausing = false;
                    self.post(Input::Train { snapshot_every: self.snapshot_every() });
                }
                Status::Idle | Status::Paused => self.start(false),
                Status::Done | Status::Error(_) => {
                    self.reset();
                    self.start(false);
                }
            },
            Msg::Pause => {
                if self.status == Status::Training {
                    self.post(Input::Pause);
                    self.pausing = true;
                }
            }
            Msg::Reset => self.reset(),
            Msg::SetPlane(plane) => {
                if plane != self.settings.plane {
                    self.settings.plane = plane;
                    self.write_url();
                    self.compute_landscape();
                }
            }
            Msg::SetGrid(n) => {
                if n != self.settings.grid && crate::settings::GRID.contains(&n) && n % 2 == 1 {
                    self.settings.grid = n;
                    self.write_url();
                    self.compute_landscape();
                }
            }
            Msg::SetLog(on) => {
                self.settings.log_scale = on;
                self.write_url();
            }
            Msg::ComputeLandscape => self.compute_landscape(),
            Msg::SetDirection(deg) => {
                if deg != self.settings.direction {
                    self.settings.direction = deg;
                    self.write_url();
                }
            }
            Msg::SetWeights(w) => {
                if w != self.settings.weights && w.iter().sum::<u32>() == 100 {
                    self.settings.weights = w;
                    self.write_url();
                }
            }
            Msg::SetOnlineLabels(n) => {
                if n != self.settings.online_labels && crate::settings::LABELS.contains(&n) {
                    self.settings.online_labels = n;
                    self.write_url();
                }
            }
            Msg::SetOnlineMethod(m) => {
                if m != self.settings.online_method {
                    self.settings.online_method = m;
                    self.write_url();
                }
            }
            Msg::SetBeta(x) => {
                if x != self.settings.beta_x && crate::settings::BETA_X.contains(&x) {
                    self.settings.beta_x = x;
                    self.write_url();
                }
            }
            Msg::Edit(edit) => {
                let mut next = self.settings.clone();
                edit(&mut next);
                if next != self.settings {
                    self.settings = next;
                    self.settings_changed();
                }
            }
            Msg::Step => {
                if matches!(self.status, Status::Idle | Status::Paused) {
                    self.start(true);
                }
            }
            Msg::ExportModel => self.post(Input::Export),
            Msg::ExportPng(testid) => export_png(&testid, &format!("prefscope-{testid}-{}.png", self.settings.scenario.name())),
            Msg::Upload(file) => ctx.link().send_future(async move { Msg::UploadBytes(file_bytes(&file).await) }),
            Msg::UploadBytes(Ok((name, bytes))) => self.post(Input::ReadUpload { name, bytes, config: self.settings.run_config().to_toml() }),
            Msg::UploadBytes(Err(e)) => self.upload_error = Some(e),
            Msg::OpenCheckpoint(file) => {
                let name = file.name();
                ctx.link().send_future(async move {
                    let bytes = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map(|b| js_sys::Uint8Array::new(&b).to_vec()).map_err(|_| "could not read the file".to_string());
                    Msg::CheckpointRead(name, bytes)
                });
            }
            Msg::CheckpointRead(name, bytes) => match bytes {
                Ok(bytes) if self.ready_backend().is_some() => {
                    self.inspecting = Some((name.clone(), bytes.clone()));
                    self.post(Input::Inspect { name, bytes });
                }
                Ok(_) => self.checkpoint_note = Some(format!("error: {name}: no backend yet")),
                Err(e) => self.checkpoint_note = Some(format!("error: {name}: {e}")),
            },
            Msg::ClearUpload => {
                self.uploaded = None;
                self.upload_error = None;
                self.settings_changed();
            }
            Msg::TogglePanel(panel) => {
                let open = !self.settings.is_open(panel);
                self.settings.set_open(panel, open);
                self.write_url();
            }
        }
        self.publish();
        true
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        html! {
            <div class="page">
                <header class="top">
                    <div>
                        <h1>{ "prefscope playground" }</h1>
                        <p class="tagline">{ "Train a preference model in this tab and compare Bradley–Terry with the General Preference Model." }</p>
                    </div>
                    { self.view_badge() }
                </header>
                { self.view_notices() }
                <nav class="tabs" role="tablist">
                    <button role="tab" data-testid="reward-tab" aria-selected={(self.settings.tab == Tab::Reward).to_string()}
                        class={classes!((self.settings.tab == Tab::Reward).then_some("active"))}
                        onclick={link.callback(|_| Msg::SetTab(Tab::Reward))}>{ "Reward models" }</button>
                    <button role="tab" data-testid="policy-tab" aria-selected={(self.settings.tab == Tab::Policy).to_string()}
                        class={classes!((self.settings.tab == Tab::Policy).then_some("active"))}
                        onclick={link.callback(|_| Msg::SetTab(Tab::Policy))}>{ "Policy" }</button>
                </nav>
                if self.settings.tab == Tab::Policy {
                    <main class="single">
                        <PolicyPanel beta_x={self.settings.beta_x} on_beta={self.cb.beta.clone()} direction={self.settings.direction} on_direction={self.cb.direction.clone()} />
                        <OnlinePanel labels={self.settings.online_labels} method={self.settings.online_method.clone()} seed={self.settings.seed}
                            on_labels={self.cb.online_labels.clone()} on_method={self.cb.online_method.clone()} />
                    </main>
                } else {
                    <main class="grid">
                        { self.view_setup(link) }
                        <div class="column">
                            { self.view_training() }
                            { self.view_data(link) }
                        </div>
                    </main>
                    <div class="panels">
                        { self.view_panel(link, Panel::Charts, "Charts", "charts-panel", || self.view_charts()) }
                        { self.view_panel(link, Panel::Landscape, "Loss landscape", "landscape-panel", || self.view_landscape()) }
                        { self.view_panel(link, Panel::Dial, "Preference direction", "dial-panel", || self.view_dial()) }
                        { self.view_panel(link, Panel::Embedding, "GPM embeddings", "gpm-embedding", || self.view_embedding()) }
                        { self.view_panel(link, Panel::Profiles, "Community profiles", "profiles-panel", || self.view_profiles()) }
                    </div>
                }
                <footer>
                    { "Everything random comes from the seed, so the same settings give the same loss curve on WebGPU and on the CPU. Settings live in the URL: " }
                    <code>{ self.settings.to_query() }</code>
                </footer>
            </div>
        }
    }
}

impl App {
    /// The objectives the multi-objective model has in this run: the uploaded file's rated
    /// attributes, else the setting.
    /// The weights the decision surface's pixels give its field (see `Settings::surface_vector`).
    fn surface_vector(&self) -> Vec<f64> {
        match self.surface.as_ref().and_then(|s| s.as_ref().ok()).map(|s| &s.field) {
            Some(Field::Objectives { k, .. }) if self.settings.model == ModelKind::ContextBt => self.settings.surface_vector(*k),
            _ => self.settings.score_vector(self.objectives_now()),
        }
    }

    fn objectives_now(&self) -> usize {
        let rated = matches!(self.settings.model, ModelKind::AttributeAttention | ModelKind::ExpertMixture);
        match (&self.uploaded, self.fresh_data()) {
            (Some(_), Some(ds)) if ds.n_objectives > 0 => ds.n_objectives,
            // attribute-attention and expert-mixture read every attribute the data rates.
            (_, Some(ds)) if rated && ds.n_objectives > 0 => ds.n_objectives,
            _ if rated => prefscope_core::ModelConfig::new(self.settings.model).objectives,
            _ => self.settings.objectives,
        }
    }

    /// The run config, with the model's objectives following an uploaded file's ratings.
    fn run_config(&self) -> RunConfig {
        let mut cfg = self.settings.run_config();
        cfg.model.objectives = self.objectives_now();
        cfg
    }

    fn ready_backend(&self) -> Option<ComputeBackend> {
        match &self.backend {
            BackendState::Ready(s) => Some(s.backend),
            _ => None,
        }
    }

    /// The latest data view, of this run or an earlier one (shown until the new one arrives).
    fn data(&self) -> Option<&DataView> {
        self.dataset.as_ref().and_then(|d| d.as_ref().ok()).map(Rc::as_ref)
    }

    /// The data view of the current run, once the worker sent it.
    fn fresh_data(&self) -> Option<&DataView> {
        self.data().filter(|_| self.data_run == self.run)
    }

    fn settings_changed(&mut self) {
        self.reset();
        self.write_url();
    }

    fn write_url(&self) {
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&self.settings.to_query()));
        }
    }

    /// Drop the curve and the views and start a new run in the worker (which drops its trainer;
    /// a step in flight is discarded).
    fn reset(&mut self) {
        self.clear_run();
        self.send_run();
    }

    fn clear_run(&mut self) {
        self.pausing = false;
        self.losses.clear();
        self.evals.clear();
        self.final_accuracy = None;
        self.stretch_start = None;
        self.ms_per_step = None;
        self.hook_losses = Array::new();
        self.hook_times = Array::new();
        self.hook_evals = Array::new();
        self.hook_train_accuracy = Array::new();
        self.hook_parts.borrow_mut().clear();
        self.landscape = None;
        self.landscape_state = PanelState::Idle;
        self.landscape_request += 1;
        self.candidates = None;
        self.embeddings = None;
        self.profiles = None;
        self.surface = None;
        self.margins = None;
        self.train_accuracy.clear();
        self.checkpoint_note = None;
        self.opened = None;
        if !matches!(self.backend, BackendState::Failed(_)) {
            self.status = Status::Idle;
        }
    }

    /// Send the worker a new run: the run config, the dropped file and the opened checkpoint.
    fn send_run(&mut self) {
        self.run += 1;
        let spec = RunSpec {
            run: self.run,
            config: self.run_config().to_toml(),
            upload: self.uploaded.as_ref().map(|u| u.name.clone()),
            checkpoint: self.opened.clone(),
        };
        self.post(Input::Run(spec));
    }

    fn post(&self, input: Input) {
        if let Ok(w) = &self.worker {
            w.send(input);
        }
    }

    /// About 100 weight snapshots over the run, enough for a smooth PCA path; none (and no
    /// read-backs slowing the steps) while the landscape panel is closed.
    fn snapshot_every(&self) -> usize {
        if self.settings.is_open(Panel::Landscape) { prefscope_core::studies::landscape::snapshot_every(self.settings.steps) } else { 0 }
    }

    /// Start or resume training (`one`: a single step, then pause).
    fn start(&mut self, one: bool) {
        if self.ready_backend().is_none() {
            return;
        }
        // The weights are about to move: a landscape of the paused ones is not worth waiting for.
        self.cancel_landscape();
        self.pausing = false;
        self.status = Status::Training;
        self.stretch_start = Some((js_sys::Date::now(), self.losses.len()));
        let snapshot_every = self.snapshot_every();
        self.post(if one { Input::Step { snapshot_every } } else { Input::Train { snapshot_every } });
    }

    /// Download checkpoint bytes from the worker as the native binary writes them (`prefscope eval` opens it).
    fn download_model(&self, step: usize, bytes: &[u8]) {
        let name = format!("prefscope-{}-{}-seed{}-step{step}.safetensors", self.settings.scenario.name(), self.settings.model.name(), self.settings.seed);
        download_bytes(&js_sys::Uint8Array::from(bytes), &name, "application/octet-stream");
    }

    /// Show a checkpoint's model in every view: its config sets the page (scenario, model,
    /// hyper-parameters) and its data is the file on the page when the model fits it (a model
    /// exported after an upload), else the scenario rebuilt from its config and seed. Train then
    /// continues from its weights (to the run's last step, or for as many steps again when it
    /// had finished). The worker checked the header and the fit ([`Input::Inspect`]) and loads
    /// the weights.
    fn open_checkpoint(&mut self, name: &str, bytes: Vec<u8>, inspected: Inspected) -> Result<(), String> {
        let cfg = RunConfig::from_toml(name, &inspected.config).map_err(|e| e.to_string())?;
        let cfg = &cfg;
        let upload_fits = inspected.upload_fits && self.uploaded.is_some();
        let head_step = inspected.step;
        let s = &mut self.settings;
        (s.scenario, s.model, s.seed, s.steps, s.normalize, s.dr) = (cfg.scenario.kind, cfg.model.kind, cfg.seed, cfg.train.steps, cfg.model.normalize, cfg.train.loss.dr);
        (s.lr, s.batch, s.noise, s.pairs, s.k, s.tau) = (cfg.train.lr, cfg.train.batch, cfg.scenario.noise, cfg.scenario.n_pairs, cfg.model.k, cfg.model.tau);
        s.objectives = cfg.scenario.objectives.clamp(2, 8);
        s.shots = cfg.scenario.shots;
        if head_step >= cfg.train.steps {
            s.steps = (2 * head_step).clamp(head_step + 1, crate::settings::MAX_STEPS.max(head_step + 1));
        }
        let steps = s.steps;
        if !upload_fits {
            self.uploaded = None;
        }
        self.write_url();
        // The page's settings cannot express every config field (hidden widths, losses…): say so.
        let mut mine = self.run_config();
        mine.train.steps = cfg.train.steps;
        mine.embeddings.clone_from(&cfg.embeddings);
        let differs = mine != *cfg;
        let note = format!(
            "Opened {name}: {} on {}, seed {}, step {}{}. The views show it; Train continues it to step {steps} (the optimiser's moments start afresh), Reset starts a new run.",
            cfg.model.kind.name(),
            if upload_fits { self.uploaded.as_ref().map_or("the file", |u| u.name.as_str()) } else { cfg.scenario.kind.name() },
            cfg.seed,
            head_step,
            if differs { " (its config has settings the page cannot set, so a new run here differs)" } else { "" }
        );
        // A new run that starts from the checkpoint; the worker answers `Opened` once it loaded.
        self.clear_run();
        self.opened = Some((name.to_string(), bytes));
        self.checkpoint_note = Some(note);
        self.send_run();
        Ok(())
    }

    /// Evaluate the landscape of the latest weights (the initial ones before training).
    fn compute_landscape(&mut self) {
        if !self.settings.is_open(Panel::Landscape) || self.ready_backend().is_none() {
            return;
        }
        self.landscape_request += 1;
        self.landscape_state = PanelState::Computing;
        let (request, plane, n, snapshot_every) = (self.landscape_request, self.settings.plane, self.settings.grid, self.snapshot_every());
        self.post(Input::Landscape { request, plane, n, snapshot_every });
    }

    /// Stop a landscape computation in flight (at its next batch) and drop its result: on a
    /// software GPU a large grid takes minutes and would hold up resumed training.
    fn cancel_landscape(&mut self) {
        self.landscape_request += 1;
        self.post(Input::CancelLandscape { request: self.landscape_request });
        if self.landscape_state == PanelState::Computing {
            self.landscape_state = PanelState::Idle;
        }
    }

    /// Ask the worker for the dial's candidates, the GPM embeddings, the decision surface and
    /// the held-out margins of the latest weights, for the panels that are open.
    fn refresh_views(&self) {
        let open = |p| self.settings.is_open(p);
        self.post(Input::Views(Views {
            candidates: self.settings.model == ModelKind::MultiObjective && open(Panel::Dial),
            embeddings: self.settings.model == ModelKind::Gpm && open(Panel::Embedding),
            profiles: self.settings.model == ModelKind::AttributeAttention && open(Panel::Profiles),
            surface: self.picture.as_ref().map(|p| p.extent).filter(|_| open(Panel::Surface)),
            margins: open(Panel::Charts),
        }));
    }
}
