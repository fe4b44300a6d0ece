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
use prefscope_core::{ModelKind, PairDataset, RunConfig, ScenarioKind};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use web_sys::{DragEvent, File, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::backend::{Backend, Selected};
use crate::charts_panel::{Series, charts};
use crate::by_ptr::{ByPtr, Memo, version};
use crate::dial_panel::{Candidates, DirectionDial};
use crate::embedding_panel::{EmbeddingView, Embeddings};
use crate::worker::{ComputeWorker, Input, Output, RunSpec, Views};
use crate::landscape::Slice;
use crate::landscape_panel::{LandscapePanel, PanelState};
use crate::plot::{DataPicture, LossAxes, polyline, scale, tick_label};
use crate::online_panel::OnlinePanel;
use crate::policy::PolicyPanel;
use crate::settings::{Panel, Plane, Settings, Tab};
use crate::surface::Surface;
use crate::surface_panel::SurfaceCanvas;

mod hook;

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
    Uploaded(Result<Upload, String>),
    ClearUpload,
    OpenCheckpoint(File),
    CheckpointRead(String, Result<Vec<u8>, String>),
}

/// A file dropped on the page.
pub struct Upload {
    name: String,
    /// The file as dropped, for the worker to read the same way.
    bytes: Rc<Vec<u8>>,
    data: Rc<PairDataset>,
    /// An embedding file (`prefscope embed`): unsplit, because its held-out pairs follow the run's
    /// seed as `prefscope train --embeddings` splits them. A JSONL file comes split already.
    embeddings: bool,
}

pub struct App {
    settings: Settings,
    url_warnings: Vec<String>,
    backend: BackendState,
    dataset: Result<Rc<PairDataset>, String>,
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
    /// Minibatch accuracy per step.
    train_accuracy: Vec<f32>,
    surface: Option<Result<Rc<Surface>, String>>,
    /// Held-out logits of the latest model and the step they are from.
    margins: Option<(Rc<Vec<f32>>, usize)>,
    /// A pair or embedding file dropped on the page, used instead of the scenario.
    uploaded: Option<Upload>,
    upload_error: Option<String>,
    /// What the last opened checkpoint was, or why it could not be opened.
    checkpoint_note: Option<String>,
    /// The opened checkpoint (name, bytes) that Train continues from, until the run is reset.
    opened: Option<(String, Vec<u8>)>,
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
            dataset: Err(String::new()),
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
            train_accuracy: vec![],
            surface: None,
            margins: None,
            uploaded: None,
            upload_error: None,
            checkpoint_note: None,
            opened: None,
            cb: Callbacks::new(ctx.link()),
        };
        app.rebuild_dataset();
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
            Msg::Upload(file) => {
                let cfg = self.settings.run_config();
                ctx.link().send_future(async move { Msg::Uploaded(read_upload(&file, &cfg).await) });
            }
            Msg::Uploaded(result) => match result {
                Ok(upload) => {
                    self.uploaded = Some(upload);
                    self.upload_error = None;
                    self.settings_changed();
                }
                Err(e) => self.upload_error = Some(e),
            },
            Msg::OpenCheckpoint(file) => {
                let name = file.name();
                ctx.link().send_future(async move {
                    let bytes = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map(|b| js_sys::Uint8Array::new(&b).to_vec()).map_err(|_| "could not read the file".to_string());
                    Msg::CheckpointRead(name, bytes)
                });
            }
            Msg::CheckpointRead(name, bytes) => {
                if let Err(e) = bytes.and_then(|b| self.open_checkpoint(&name, b)) {
                    self.checkpoint_note = Some(format!("error: {name}: {e}"));
                }
            }
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
    fn objectives_now(&self) -> usize {
        match (&self.uploaded, &self.dataset) {
            (Some(_), Ok(ds)) if ds.n_objectives > 0 => ds.n_objectives,
            _ => self.settings.objectives,
        }
    }

    /// The run config, with the model's objectives following an uploaded file's ratings.
    fn run_config(&self) -> RunConfig {
        let mut cfg = self.settings.run_config();
        cfg.model.objectives = self.objectives_now();
        cfg
    }

    fn ready_backend(&self) -> Option<Backend> {
        match &self.backend {
            BackendState::Ready(s) => Some(s.backend),
            _ => None,
        }
    }

    fn rebuild_dataset(&mut self) {
        let cfg = self.settings.run_config();
        self.dataset = match &self.uploaded {
            Some(u) if u.embeddings => crate::upload::split_by_seed(&u.data, &cfg).map(Rc::new),
            Some(u) => Ok(u.data.clone()),
            None => cfg.scenario.build(cfg.seed).map(Rc::new).map_err(|e| e.to_string()),
        };
        self.picture = self.dataset.as_ref().ok().and_then(|ds| DataPicture::new(ds, self.settings.scenario, 60)).map(Rc::new);
    }

    fn settings_changed(&mut self) {
        self.rebuild_dataset();
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
            upload: self.uploaded.as_ref().map(|u| (u.name.clone(), u.bytes.as_ref().clone())),
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
    /// had finished). The header is checked here; the worker loads the weights.
    fn open_checkpoint(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.ready_backend().ok_or("no backend yet")?;
        let head = prefscope_core::reward::checkpoint::inspect_preference_model(&bytes).map_err(|e| e.to_string())?;
        head.config.model.validate().map_err(|e| e.to_string())?;
        let cfg = &head.config;
        let upload_fits = matches!((&self.uploaded, &self.dataset), (Some(_), Ok(ds)) if prefscope_core::reward::checkpoint::check_fits(&head, ds).is_ok());
        let scenario_data = if upload_fits {
            None
        } else {
            let ds = cfg.scenario.build(cfg.seed).map_err(|e| e.to_string())?;
            prefscope_core::reward::checkpoint::check_fits(&head, &ds).map_err(|e| {
                format!("{e}. A model trained on a pair or embedding file opens after that file is dropped on the page")
            })?;
            Some(ds)
        };
        let s = &mut self.settings;
        (s.scenario, s.model, s.seed, s.steps, s.normalize) = (cfg.scenario.kind, cfg.model.kind, cfg.seed, cfg.train.steps, cfg.model.normalize);
        (s.lr, s.batch, s.noise, s.pairs, s.k, s.tau) = (cfg.train.lr, cfg.train.batch, cfg.scenario.noise, cfg.scenario.n_pairs, cfg.model.k, cfg.model.tau);
        s.objectives = cfg.scenario.objectives.clamp(2, 8);
        if head.step >= cfg.train.steps {
            s.steps = (2 * head.step).clamp(head.step + 1, crate::settings::MAX_STEPS.max(head.step + 1));
        }
        let steps = s.steps;
        if scenario_data.is_some() {
            self.uploaded = None;
        }
        self.rebuild_dataset();
        self.write_url();
        if let Some(ds) = scenario_data {
            self.picture = DataPicture::new(&ds, cfg.scenario.kind, 60).map(Rc::new);
            self.dataset = Ok(Rc::new(ds));
        }
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
            head.step,
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
            surface: self.picture.as_ref().map(|p| p.extent).filter(|_| open(Panel::Surface)),
            margins: open(Panel::Charts),
        }));
    }

    fn on_output(&mut self, output: Output) {
        let current = self.run;
        match output {
            Output::Backend(result) => {
                self.backend = match result {
                    Ok(selected) => BackendState::Ready(selected),
                    Err(e) => {
                        self.status = Status::Error(e.clone());
                        BackendState::Failed(e)
                    }
                }
            }
            Output::Steps(run, metrics) if run == current => {
                let now = js_sys::Date::now();
                let mut evaluated = false;
                for m in metrics {
                    self.hook_losses.push(&JsValue::from_f64(m.loss as f64));
                    self.hook_times.push(&JsValue::from_f64(now));
                    self.losses.push(m.loss);
                    self.train_accuracy.push(m.train_accuracy);
                    self.hook_train_accuracy.push(&JsValue::from_f64(m.train_accuracy as f64));
                    if let Some(e) = m.eval {
                        self.evals.push((m.step, e.accuracy, e.loss));
                        let o = Object::new();
                        let _ = Reflect::set(&o, &"step".into(), &JsValue::from_f64(m.step as f64));
                        let _ = Reflect::set(&o, &"accuracy".into(), &JsValue::from_f64(e.accuracy as f64));
                        let _ = Reflect::set(&o, &"loss".into(), &JsValue::from_f64(e.loss as f64));
                        self.hook_evals.push(&o);
                        evaluated = true;
                    }
                }
                if evaluated {
                    self.refresh_views();
                }
                if let Some((t0, s0)) = self.stretch_start {
                    let n = self.losses.len().saturating_sub(s0);
                    if n > 0 {
                        self.ms_per_step = Some((now - t0) / n as f64);
                    }
                }
            }
            Output::Paused(run) if run == current => {
                self.pausing = false;
                self.status = Status::Paused;
                self.compute_landscape();
                self.refresh_views();
            }
            Output::Done(run) if run == current => {
                self.pausing = false;
                self.final_accuracy = self.evals.last().map(|e| e.1);
                self.status = Status::Done;
                self.compute_landscape();
                self.refresh_views();
            }
            Output::Failed(run, e) if run == current => {
                self.pausing = false;
                self.status = Status::Error(e);
            }
            Output::Opened(run, result) if run == current => match result {
                Ok(()) => {
                    self.compute_landscape();
                    self.refresh_views();
                }
                Err(e) => {
                    let name = self.opened.as_ref().map(|o| o.0.clone()).unwrap_or_default();
                    self.reset();
                    self.checkpoint_note = Some(format!("error: {name}: {e}"));
                }
            },
            Output::Landscape(request, result) if request == self.landscape_request => match result {
                Ok(slice) => {
                    self.landscape = Some(Rc::new(slice));
                    self.landscape_state = PanelState::Idle;
                }
                Err(e) => self.landscape_state = PanelState::Failed(e),
            },
            Output::Candidates(run, result) if run == current => self.candidates = Some(result.map(Rc::new)),
            Output::Embeddings(run, result) if run == current => self.embeddings = Some(result.map(Rc::new)),
            Output::Surface(run, result) if run == current => self.surface = Some(result.map(Rc::new)),
            Output::Margins(run, step, result) if run == current => match result {
                Ok(m) => self.margins = Some((Rc::new(m), step)),
                Err(e) => web_sys::console::warn_1(&format!("held-out margins: {e}").into()),
            },
            Output::Checkpoint(run, result) if run == current => match result {
                Ok((step, bytes)) => self.download_model(step, &bytes),
                Err(e) => web_sys::console::error_1(&format!("export: {e}").into()),
            },
            Output::Fatal(text) => {
                self.pausing = false;
                self.status = Status::Error(text.clone());
                crate::show_fatal(&text);
            }
            _ => {}
        }
    }

    fn view_badge(&self) -> Html {
        let (class, text, title) = match &self.backend {
            BackendState::Detecting => ("badge pending", "detecting backend…".to_string(), String::new()),
            BackendState::Ready(s) => (
                if s.backend == Backend::WebGpu { "badge gpu" } else { "badge cpu" },
                s.backend.label().to_string(),
                s.adapter.clone().unwrap_or_else(|| format!("burn's {} backend, compiled to WebAssembly", crate::backend::CPU_CRATE)),
            ),
            BackendState::Failed(_) => ("badge failed", "no backend".to_string(), String::new()),
        };
        html! { <span class={class} data-testid="backend-badge" title={title}>{ text }</span> }
    }

    fn view_notices(&self) -> Html {
        let notice = match &self.backend {
            BackendState::Ready(Selected { notice: Some(n), .. }) => {
                html! { <div class="notice" role="status" data-testid="fallback-notice">{ n }</div> }
            }
            BackendState::Failed(e) => html! { <div class="notice error" role="alert">{ e }</div> },
            _ => html! {},
        };
        let warnings = self.url_warnings.iter().map(|w| html! { <div class="notice warn">{ format!("Ignored in the URL: {w}") }</div> });
        html! { <>{ notice }{ for warnings }</> }
    }

    fn view_setup(&self, link: &yew::html::Scope<Self>) -> Html {
        let s = &self.settings;
        let on_scenario = link.callback(|e: Event| Msg::SetScenario(e.target_unchecked_into::<HtmlSelectElement>().value()));
        let on_model = link.callback(|e: Event| Msg::SetModel(e.target_unchecked_into::<HtmlSelectElement>().value()));
        let on_normalize = link.callback(|e: Event| Msg::SetNormalize(e.target_unchecked_into::<HtmlInputElement>().checked()));
        let ready = self.ready_backend().is_some();
        let training = self.status == Status::Training;
        let train_label = match self.status {
            Status::Paused => "Resume",
            Status::Done => "Train again",
            _ => "Train",
        };
        let cfg = s.run_config();
        html! {
            <section class="card setup">
                <h2>{ "Setup" }</h2>
                <label class="field">
                    <span>{ "Scenario" }</span>
                    <select data-testid="scenario-select" onchange={on_scenario}>
                        { for ScenarioKind::ALL.iter().map(|k| html! {
                            <option value={k.name()} selected={*k == s.scenario}>{ scenario_title(*k) }</option>
                        }) }
                    </select>
                </label>
                <p class="desc" data-testid="scenario-description">{ s.scenario.description() }</p>
                <label class="field">
                    <span>{ "Model" }</span>
                    <select data-testid="model-select" onchange={on_model}>
                        { for ModelKind::ALL.iter().map(|k| html! {
                            <option value={k.name()} selected={*k == s.model}>{ model_title(*k) }</option>
                        }) }
                    </select>
                </label>
                <p class="desc" data-testid="model-description">{ s.model.description() }</p>
                <label class={classes!("check", (s.model != ModelKind::Gpm).then_some("disabled"))}>
                    <input type="checkbox" data-testid="normalize-checkbox" checked={s.normalize}
                        disabled={s.model != ModelKind::Gpm} onchange={on_normalize} />
                    { "normalise embeddings to unit length (GPM)" }
                </label>
                if s.model == ModelKind::Gpm {
                    <p class="desc" data-testid="normalize-hint">{ "Unit length is the GPM paper's choice; it is off by default, as in the GPM training code. With one 2-D block, a unit-length embedding of the circle keeps the winding it starts with, and about a third of seeds (1, 6, 13, …) stall near chance; free length or k ≥ 2 fits every seed." }</p>
                }
                { self.view_hyper(link) }
                <p class="meta">{ format!("AdamW · eval every {} steps · everything is in the URL", cfg.train.eval_every) }</p>
                <div class="buttons">
                    <button class="primary" data-testid="train-button" disabled={!ready || (training && !self.pausing)}
                        onclick={link.callback(|_| Msg::Train)}>{ train_label }</button>
                    <button data-testid="pause-button" disabled={!training || self.pausing}
                        onclick={link.callback(|_| Msg::Pause)}>{ if self.pausing { "Pausing…" } else { "Pause" } }</button>
                    <button data-testid="step-button" disabled={!ready || training || self.status == Status::Done}
                        onclick={link.callback(|_| Msg::Step)} title="one training step">{ "Step" }</button>
                    <button data-testid="reset-button" disabled={!ready}
                        onclick={link.callback(|_| Msg::Reset)}>{ "Reset" }</button>
                </div>
                <div class="buttons secondary">
                    <button data-testid="export-model" disabled={training || self.losses.is_empty()}
                        onclick={link.callback(|_| Msg::ExportModel)} title="the current weights as a .safetensors checkpoint, as the native binary writes">{ "Export model" }</button>
                    <label class="button" title="a .safetensors checkpoint written by `prefscope train` or by this page">
                        { "Open checkpoint" }
                        <input type="file" accept=".safetensors" class="visually-hidden" data-testid="checkpoint-input" disabled={!ready || training}
                            onchange={link.batch_callback(|e: Event| e.target_unchecked_into::<HtmlInputElement>().files().and_then(|f| f.get(0)).map(Msg::OpenCheckpoint))} />
                    </label>
                </div>
                if let Some(note) = &self.checkpoint_note {
                    <p class={classes!("notice", note.starts_with("error").then_some("error"))} data-testid="checkpoint-status">{ note.clone() }</p>
                }
                { self.view_upload(link) }
            </section>
        }
    }

    /// Sliders and fields for the run's hyper-parameters; each change starts a new run.
    fn view_hyper(&self, link: &yew::html::Scope<Self>) -> Html {
        let s = &self.settings;
        // A slider whose integer position maps to a value; `change` (on release) applies it.
        let slider = |id: &str, label: String, pos: i32, range: (i32, i32), enabled: bool, apply: SetBy<i32>| {
            let on_change = link.callback(move |e: Event| {
                let x: i32 = e.target_unchecked_into::<HtmlInputElement>().value().parse().unwrap_or(0);
                let apply = apply.clone();
                Msg::Edit(Rc::new(move |s: &mut Settings| apply(s, x)))
            });
            html! {
                <label class={classes!("field", "slider", (!enabled).then_some("disabled"))}>
                    <span>{ label }</span>
                    <input type="range" data-testid={format!("{id}-slider")} min={range.0.to_string()} max={range.1.to_string()} value={pos.to_string()}
                        disabled={!enabled} onchange={on_change} aria-label={id.to_string()} />
                </label>
            }
        };
        let log10 = |v: f64| (10.0 * v.log10()).round() as i32;
        let gpm = s.model == ModelKind::Gpm;
        let number = |id: &str, label: &str, value: String, apply: SetBy<u64>| {
            let on_change = link.callback(move |e: Event| {
                let v = e.target_unchecked_into::<HtmlInputElement>().value().parse::<u64>().ok();
                let apply = apply.clone();
                Msg::Edit(Rc::new(move |s: &mut Settings| if let Some(v) = v { apply(s, v) }))
            });
            html! {
                <label class="field number">
                    <span>{ label.to_string() }</span>
                    <input type="number" min="0" data-testid={format!("{id}-input")} value={value} onchange={on_change} />
                </label>
            }
        };
        html! {
            <div class="sliders">
                { slider("lr", format!("learning rate {}", s.lr), log10(s.lr), (-40, 0), true, Rc::new(|s, x| s.lr = round_sig(10f64.powf(x as f64 / 10.0)))) }
                { slider("batch", format!("batch {}", s.batch), BATCHES.iter().position(|&b| b >= s.batch).unwrap_or(4) as i32, (0, BATCHES.len() as i32 - 1), true, Rc::new(|s, x| s.batch = BATCHES[x.clamp(0, BATCHES.len() as i32 - 1) as usize])) }
                { slider("noise", format!("label noise {}", s.noise), log10(s.noise), (-20, 10), true, Rc::new(|s, x| s.noise = round_sig(10f64.powf(x as f64 / 10.0)))) }
                { slider("pairs", format!("dataset {} pairs", s.pairs), PAIR_COUNTS.iter().position(|&p| p >= s.pairs).unwrap_or(4) as i32, (0, PAIR_COUNTS.len() as i32 - 1), true, Rc::new(|s, x| s.pairs = PAIR_COUNTS[x.clamp(0, PAIR_COUNTS.len() as i32 - 1) as usize])) }
                { slider("k", format!("GPM blocks k = {}", s.k), s.k as i32, (1, 8), gpm, Rc::new(|s, x| s.k = x.clamp(1, 8) as usize)) }
                { slider("tau", format!("GPM τ = {}", s.tau), log10(s.tau), (-20, 10), gpm, Rc::new(|s, x| s.tau = round_sig(10f64.powf(x as f64 / 10.0)))) }
                { slider("objectives", format!("objectives {}", s.objectives), s.objectives as i32, (2, 8), s.scenario == ScenarioKind::MultiObjective && self.uploaded.is_none(), Rc::new(|s, x| {
                    s.objectives = x.clamp(2, 8) as usize;
                    s.weights.clear();
                })) }
                <div class="row">
                    { number("seed", "seed", s.seed.to_string(), Rc::new(|s, v| s.seed = v)) }
                    { number("steps", "steps", s.steps.to_string(), Rc::new(|s, v| s.steps = (v as usize).clamp(1, crate::settings::MAX_STEPS))) }
                </div>
            </div>
        }
    }

    /// Drop zone and file picker for a JSONL pair file (GPM's `chosen`/`reject` lines) or a
    /// pair-embedding file written by `prefscope embed`.
    fn view_upload(&self, link: &yew::html::Scope<Self>) -> Html {
        let on_drop = link.batch_callback(|e: DragEvent| {
            e.prevent_default();
            e.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)).map(Msg::Upload)
        });
        let on_pick = link.batch_callback(|e: Event| e.target_unchecked_into::<HtmlInputElement>().files().and_then(|f| f.get(0)).map(Msg::Upload));
        html! {
            <div class="upload" data-testid="upload-zone" ondrop={on_drop} ondragover={Callback::from(|e: DragEvent| e.prevent_default())}>
                <label>
                    { "Drop a JSONL pair file or an embedding file here, or " }
                    <input type="file" accept=".jsonl,.json,.txt,.safetensors" data-testid="upload-input" onchange={on_pick} />
                </label>
                <p class="hint">{ "JSONL: one {\"chosen\": …, \"reject\": …} per line. Embeddings: the .safetensors of prefscope embed; bt, gpm and mixture train on it, held-out pairs by the seed. Read in this tab, never sent anywhere." }</p>
                if let (Some(u), Ok(ds)) = (&self.uploaded, &self.dataset) {
                    <p class="notice" data-testid="upload-status">
                        { format!("Training on {}: {} responses{}, {} pairs ({} train, {} held out). ", u.name, ds.n_items(),
                            if u.embeddings { format!(" as {}-dimensional embeddings", ds.dim) } else { String::new() }, ds.pairs.len(), ds.train.len(), ds.eval.len()) }
                        <button onclick={link.callback(|_| Msg::ClearUpload)}>{ "Back to the scenario" }</button>
                    </p>
                }
                if let Some(e) = &self.upload_error {
                    <p class="notice error" role="alert" data-testid="upload-error">{ e.clone() }</p>
                }
            </div>
        }
    }

    /// A collapsible card; whether it is open lives in the URL (`closed=`).
    fn view_panel(&self, link: &yew::html::Scope<Self>, panel: Panel, title: &str, testid: &str, body: impl FnOnce() -> Html) -> Html {
        let open = self.settings.is_open(panel);
        html! {
            <section class={classes!("card", "panel", panel.name())} data-testid={testid.to_string()}>
                <header class="panel-head">
                    <h2>{ title }</h2>
                    <span class="tools">
                        if open {
                            <button data-testid={format!("{testid}-png")} title="save this panel's pictures as PNG"
                                onclick={let id = testid.to_string(); link.callback(move |_| Msg::ExportPng(id.clone()))}>{ "PNG" }</button>
                        }
                        <button class="toggle" aria-expanded={open.to_string()} data-testid={format!("{testid}-toggle")}
                            onclick={link.callback(move |_| Msg::TogglePanel(panel))}>{ if open { "Hide" } else { "Show" } }</button>
                    </span>
                </header>
                if open { { body() } }
            </section>
        }
    }

    fn view_landscape(&self) -> Html {
        let s = &self.settings;
        html! {
            <LandscapePanel
                slice={self.landscape.clone().map(ByPtr)}
                state={self.landscape_state.clone()}
                plane={s.plane} grid={s.grid} log={s.log_scale}
                webgpu={self.ready_backend() == Some(Backend::WebGpu)}
                on_plane={self.cb.plane.clone()}
                on_grid={self.cb.grid.clone()}
                on_log={self.cb.log.clone()}
                on_compute={self.cb.compute.clone()} />
        }
    }

    fn view_charts(&self) -> Html {
        let (total_steps, losses, train_accuracy, evals, margins) = (self.settings.steps, self.losses.clone(), self.train_accuracy.clone(), self.evals.clone(), self.margins.clone());
        let version = version((self.run, total_steps, self.curve_progress(), evals.len(), margins.as_ref().map(|(m, step)| (Rc::as_ptr(m), *step))));
        let view: Rc<dyn Fn() -> Html> = Rc::new(move || {
            charts(&Series { total_steps, losses: &losses, train_accuracy: &train_accuracy, evals: &evals, margins: margins.as_ref().map(|(m, step)| (m.as_slice(), *step)) })
        });
        html! { <Memo {version} {view} /> }
    }

    fn view_dial(&self) -> Html {
        let (candidates, note) = match (&self.candidates, self.settings.model) {
            (Some(Ok(c)), _) => (Some(ByPtr(c.clone())), String::new()),
            (Some(Err(e)), _) => (None, e.clone()),
            (None, ModelKind::MultiObjective) => (None, "Train (or pause) to rank the candidates by the model's rewards.".into()),
            (None, _) => (None, "The dial turns the multi-objective model's rewards into one: pick scenario and model multi-objective.".into()),
        };
        html! {
            <DirectionDial {candidates} {note} objectives={self.objectives_now()} direction={self.settings.direction} on_direction={self.cb.direction.clone()}
                weights={self.settings.weights.clone()} on_weights={self.cb.weights.clone()} />
        }
    }

    /// How far the curves have got, in thousandths of the run and whether it is still training:
    /// the charts redraw when this changes, not at each batch of steps (every 33 ms, which
    /// re-rendered thousands of points at 30 Hz and kept the page's thread busy). A thousandth of
    /// the run is narrower than a pixel of any chart; pausing or finishing draws the last step.
    fn curve_progress(&self) -> (usize, bool) {
        (self.losses.len() * 1000 / self.settings.steps.max(1), self.status == Status::Training)
    }

    fn view_embedding(&self) -> Html {
        let (embeddings, note) = match (&self.embeddings, self.settings.model) {
            (Some(Ok(e)), _) => (Some(ByPtr(e.clone())), String::new()),
            (Some(Err(e)), _) => (None, e.clone()),
            (None, ModelKind::Gpm) => (None, "Train (or pause) to see the learnt embeddings.".into()),
            (None, _) => (None, "This view shows the General Preference Model's embeddings: pick the gpm model.".into()),
        };
        let colours: Vec<String> = self.picture.as_ref().map(|p| p.items.iter().map(|i| i.colour.clone()).collect()).unwrap_or_default();
        html! { <EmbeddingView {embeddings} {note} {colours} /> }
    }

    fn view_training(&self) -> Html {
        let total = self.settings.steps;
        let last_loss = self.losses.last().map(|l| format!("{l:.4}")).unwrap_or_else(|| "—".into());
        let accuracy = self.final_accuracy.map(|a| format!("{a:.4}")).unwrap_or_else(|| "—".into());
        let speed = self.ms_per_step.map(|ms| format!("{:.0} steps/s · {ms:.1} ms/step", 1000.0 / ms.max(1e-3))).unwrap_or_else(|| "—".into());
        let status_class = match self.status {
            Status::Done => "v status done",
            Status::Error(_) => "v status error",
            Status::Training => "v status training",
            _ => "v status",
        };
        let latest = match self.evals.last() {
            Some(&(step, acc, loss)) => format!("Latest held-out evaluation (step {step}): accuracy {acc:.4}, loss {loss:.4}."),
            None => "Held-out accuracy is measured every 25 steps and after the last step.".into(),
        };
        html! {
            <section class="card training">
                <h2>{ "Training" }</h2>
                <div class="stats">
                    <div class="stat"><span class="k">{ "status" }</span><span class={status_class} data-testid="status">{ self.status.label() }</span></div>
                    <div class="stat"><span class="k">{ "step" }</span><span class="v" data-testid="step">{ format!("{} / {total}", self.losses.len()) }</span></div>
                    <div class="stat"><span class="k">{ "loss" }</span><span class="v" data-testid="loss">{ last_loss }</span></div>
                    <div class="stat"><span class="k">{ "eval accuracy" }</span><span class="v big" data-testid="accuracy">{ accuracy }</span></div>
                    <div class="stat"><span class="k">{ "speed" }</span><span class="v" data-testid="speed">{ speed }</span></div>
                </div>
                <div class="legend">
                    <span class="key loss"></span>{ "training loss (per step)" }
                    <span class="key acc"></span>{ "held-out accuracy (every 25 steps)" }
                    <span class="key chance"></span>{ "chance level" }
                </div>
                {{
                    let (losses, evals) = (self.losses.clone(), self.evals.clone());
                    let version = version((self.run, total, self.curve_progress(), evals.len()));
                    let view: Rc<dyn Fn() -> Html> = Rc::new(move || loss_chart(total, &losses, &evals));
                    html! { <Memo {version} {view} /> }
                }}
                <p class="caption" data-testid="latest-eval">{ latest }</p>
            </section>
        }
    }

    fn surface_step(&self) -> String {
        match &self.surface {
            Some(Ok(s)) => s.step.to_string(),
            _ => String::new(),
        }
    }

    fn surface_caption(&self) -> String {
        match (&self.surface, self.settings.model) {
            (Some(Err(e)), _) => format!("Decision surface: {e}."),
            (_, ModelKind::Bt) => "Background: the learnt reward r(x), purple low → yellow high (as TensorFlow Playground draws a classifier).".into(),
            (_, ModelKind::MultiObjective) => "Background: the learnt v·r(x) for the dial's direction or weights v (purple low → yellow high); it turns with the dial.".into(),
            (_, ModelKind::Gpm) => "Background: the angle of the learnt embedding (block 1) as a hue; on the cyclic data it should match the items' colours.".into(),
            _ => "Train to paint the model's decision surface behind the data.".into(),
        }
    }

    fn view_data(&self, link: &yew::html::Scope<Self>) -> Html {
        let body = match (&self.dataset, &self.picture) {
            (Err(e), _) => html! { <p class="notice error">{ format!("Could not build the scenario: {e}") }</p> },
            (Ok(ds), Some(pic)) => html! {
                <div class="data-body">
                    <div class="surface-stack" data-testid="decision-surface" data-step={self.surface_step()}>
                        if let (Some(Ok(surface)), true) = (&self.surface, self.settings.is_open(Panel::Surface)) {
                            <SurfaceCanvas surface={ByPtr(surface.clone())} direction={self.settings.score_vector(self.objectives_now())} />
                        }
                        <DataPlot picture={ByPtr(pic.clone())} />
                    </div>
                    <p class="caption">
                        { format!("{} items, {} pairs ({} train, {} held out). ", ds.n_items(), ds.pairs.len(), ds.train.len(), ds.eval.len()) }
                        <br/><br/>{ capitalise(pic.colour_legend) }{ "." }
                        <br/><br/>{ format!("Arrows point from the chosen to the rejected item of {} sampled training pairs.", pic.arrows.len()) }
                        <br/><br/>{ self.surface_caption() }
                        <label class="check">
                            <input type="checkbox" data-testid="surface-toggle" checked={self.settings.is_open(Panel::Surface)}
                                onchange={link.callback(|_| Msg::TogglePanel(Panel::Surface))} />
                            { "show the model's decision surface" }
                        </label>
                    </p>
                </div>
            },
            (Ok(ds), None) => html! {
                <>
                    <p class="caption">{ format!("{} items with {}-dimensional features (no 2-D picture). The comparisons:", ds.n_items(), ds.dim) }</p>
                    <ul class="pairs">
                        { for ds.pairs.iter().take(40).map(|&(c, r)| html! {
                            <li>{ format!("{} ≻ {}", ds.item_labels[c], ds.item_labels[r]) }</li>
                        }) }
                    </ul>
                </>
            },
        };
        html! {
            <section class="card data">
                <h2>{ "Data" }</h2>
                { body }
            </section>
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn scenario_title(k: ScenarioKind) -> &'static str {
    match k {
        ScenarioKind::Linear => "linear — a hidden utility",
        ScenarioKind::Cyclic => "cyclic — rock–paper–scissors",
        ScenarioKind::CyclicAbcd => "cyclic-abcd — A ≻ B ≻ C ≻ D ≻ A",
        ScenarioKind::MultiObjective => "multi-objective — users with directions",
        ScenarioKind::Mixture => "mixture — two groups, opposed tastes",
        ScenarioKind::FewShotUsers => "few-shot-users — new users, 8 labels each",
        ScenarioKind::Rankings => "rankings — lists of five",
        ScenarioKind::Noisy => "noisy — 30 % flipped labels",
        ScenarioKind::Gridworld => "gridworld — trajectory segments",
        ScenarioKind::Overopt => "overopt — a proxy reward to over-optimise",
        ScenarioKind::Worldpm => "worldpm — three test sets for scaling",
    }
}

fn model_title(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Bt => "bt — Bradley–Terry reward model",
        ModelKind::Gpm => "gpm — General Preference Model",
        ModelKind::MultiObjective => "multi-objective — DPA reward vector",
        ModelKind::Mixture => "mixture — MiCRo heads + router",
        ModelKind::Vpl => "vpl — latent user (VPL)",
        ModelKind::Regret => "regret — Knox et al. regret model",
        ModelKind::PartialReturn => "partial-return — return-only model",
    }
}

/// Applies a control's value to the settings.
type SetBy<T> = Rc<dyn Fn(&mut Settings, T)>;

const BATCHES: [usize; 8] = [8, 16, 32, 64, 128, 256, 512, 1024];
const PAIR_COUNTS: [usize; 7] = [100, 200, 500, 1000, 2000, 5000, 10_000];

/// Two significant digits, so slider values read well in the URL.
fn round_sig(v: f64) -> f64 {
    let mag = 10f64.powf(v.abs().log10().floor() - 1.0);
    ((v / mag).round() * mag * 1e12).round() / 1e12
}

#[wasm_bindgen(module = "/src/files.js")]
extern "C" {
    #[wasm_bindgen(js_name = downloadBytes)]
    fn download_bytes(bytes: &js_sys::Uint8Array, filename: &str, mime: &str);
    #[wasm_bindgen(js_name = exportPng)]
    fn export_png_js(root: &web_sys::Element, filename: &str) -> js_sys::Promise;
}

/// Save the panel with this `data-testid` as a PNG.
fn export_png(testid: &str, filename: &str) {
    let root = web_sys::window().and_then(|w| w.document()).and_then(|d| d.query_selector(&format!("[data-testid={testid}]")).ok().flatten());
    if let Some(root) = root {
        let promise = export_png_js(&root, filename);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
                web_sys::console::error_1(&e);
            }
        });
    }
}

/// Read a dropped file ([`crate::upload::read`]). Errors name the file.
async fn read_upload(file: &File, cfg: &RunConfig) -> Result<Upload, String> {
    let name = file.name();
    let bytes = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map(|b| js_sys::Uint8Array::new(&b).to_vec()).map_err(|_| format!("{name}: could not read the file"))?;
    let embeddings = crate::upload::is_embeddings(&name, &bytes);
    let data = crate::upload::read(&name, &bytes, cfg)?;
    Ok(Upload { name, bytes: Rc::new(bytes), data: Rc::new(data), embeddings })
}

// ---------------------------------------------------------------------------------------------
// Charts

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 58.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 44.0;

/// The live chart: training loss per step (left axis), held-out accuracy (right axis, 0–1).
fn loss_chart(total_steps: usize, losses: &[f32], evals: &[(usize, f32, f32)]) -> Html {
    let axes = LossAxes::new(total_steps, losses, evals.iter().map(|e| e.2));
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let sx = |v: f64| scale(v, axes.x, (x0, x1));
    let sy = |v: f64| scale(v, axes.y, (y0, y1));
    let sa = |v: f64| scale(v, (0.0, 1.0), (y0, y1));
    let loss_points = polyline(losses.iter().enumerate().map(|(i, &l)| (sx(i as f64 + 1.0), sy(l as f64))));
    let acc_points = polyline(evals.iter().map(|&(s, a, _)| (sx(s as f64), sa(a as f64))));
    let chance = sy(std::f64::consts::LN_2);
    let (xs, ys) = (axes.x_spacing(), axes.y_spacing());
    html! {
        <svg class="chart" data-testid="loss-chart" viewBox={format!("0 0 {W} {H}")} role="img"
            aria-label="training loss and held-out accuracy by step">
            // Grid and y ticks (loss, left).
            { for axes.y_ticks.iter().map(|&t| html! {
                <g>
                    <line class="grid" x1={fmt(x0)} x2={fmt(x1)} y1={fmt(sy(t))} y2={fmt(sy(t))} />
                    <text class="tick" x={fmt(x0 - 8.0)} y={fmt(sy(t) + 4.0)} text-anchor="end">{ tick_label(t, ys) }</text>
                </g>
            }) }
            // Accuracy ticks (right).
            { for [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&t| html! {
                <text class="tick acc" x={fmt(x1 + 8.0)} y={fmt(sa(t) + 4.0)} text-anchor="start">{ format!("{t:.2}") }</text>
            }) }
            // x ticks.
            { for axes.x_ticks.iter().map(|&t| html! {
                <g>
                    <line class="axis" x1={fmt(sx(t))} x2={fmt(sx(t))} y1={fmt(y0)} y2={fmt(y0 + 5.0)} />
                    <text class="tick" x={fmt(sx(t))} y={fmt(y0 + 18.0)} text-anchor="middle">{ tick_label(t, xs) }</text>
                </g>
            }) }
            <line class="axis" x1={fmt(x0)} x2={fmt(x1)} y1={fmt(y0)} y2={fmt(y0)} />
            <line class="axis" x1={fmt(x0)} x2={fmt(x0)} y1={fmt(y0)} y2={fmt(y1)} />
            <line class="axis" x1={fmt(x1)} x2={fmt(x1)} y1={fmt(y0)} y2={fmt(y1)} />
            // Chance level: loss ln 2 when P = ½ for every pair.
            <line class="chance" x1={fmt(x0)} x2={fmt(x1)} y1={fmt(chance)} y2={fmt(chance)} />
            <text class="chance-label" x={fmt(x1 - 4.0)} y={fmt(chance - 5.0)} text-anchor="end">{ "chance (ln 2)" }</text>
            // Axis titles.
            <text class="title" x={fmt((x0 + x1) / 2.0)} y={fmt(H - 6.0)} text-anchor="middle">{ "step" }</text>
            <text class="title loss" transform={format!("translate(16 {}) rotate(-90)", fmt((y0 + y1) / 2.0))} text-anchor="middle">{ "training loss (−log σ)" }</text>
            <text class="title acc" transform={format!("translate({} {}) rotate(90)", fmt(W - 14.0), fmt((y0 + y1) / 2.0))} text-anchor="middle">{ "held-out accuracy" }</text>
            // Series.
            <polyline class="series loss" points={loss_points} />
            <polyline class="series acc" points={acc_points} />
            { for evals.iter().map(|&(s, a, _)| html! {
                <circle class="dot acc" cx={fmt(sx(s as f64))} cy={fmt(sa(a as f64))} r="3" />
            }) }
        </svg>
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[derive(Properties, PartialEq)]
pub struct DataPlotProps {
    pub picture: ByPtr<DataPicture>,
}

/// Items as coloured points, sampled pairs as arrows from chosen to rejected.
#[function_component(DataPlot)]
fn data_plot(props: &DataPlotProps) -> Html {
    let pic = &props.picture.0;
    const SIZE: f64 = 360.0;
    const PAD: f64 = 14.0;
    let e = pic.extent as f64;
    let px = |v: f32| scale(v as f64, (-e, e), (PAD, SIZE - PAD));
    let py = |v: f32| scale(v as f64, (-e, e), (SIZE - PAD, PAD));
    let radius = 3.5;
    let arrows = pic.arrows.iter().filter_map(|&(c, r)| {
        let (a, b) = (&pic.items[c], &pic.items[r]);
        let (ax, ay, bx, by) = (px(a.x), py(a.y), px(b.x), py(b.y));
        let len = ((bx - ax).powi(2) + (by - ay).powi(2)).sqrt();
        if len < 3.0 * radius {
            return None;
        }
        // Start and stop at the points' edges so the head is visible.
        let (ux, uy) = ((bx - ax) / len, (by - ay) / len);
        let (sx, sy, ex, ey) = (ax + ux * radius, ay + uy * radius, bx - ux * (radius + 1.0), by - uy * (radius + 1.0));
        Some(html! { <line class="arrow" x1={fmt(sx)} y1={fmt(sy)} x2={fmt(ex)} y2={fmt(ey)} marker-end="url(#arrowhead)" /> })
    });
    html! {
        <svg class="data-plot" data-testid="data-plot" viewBox={format!("0 0 {SIZE} {SIZE}")} role="img"
            aria-label="items as points, sampled pairs as arrows from chosen to rejected">
            <defs>
                <marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
                    <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
                </marker>
            </defs>
            <line class="axis-faint" x1={fmt(px(0.0))} x2={fmt(px(0.0))} y1={fmt(PAD)} y2={fmt(SIZE - PAD)} />
            <line class="axis-faint" y1={fmt(py(0.0))} y2={fmt(py(0.0))} x1={fmt(PAD)} x2={fmt(SIZE - PAD)} />
            { for arrows }
            { for pic.items.iter().map(|p| html! {
                <circle class="item" cx={fmt(px(p.x))} cy={fmt(py(p.y))} r={fmt(radius)} fill={p.colour.clone()}>
                    <title>{ p.label.clone() }</title>
                </circle>
            }) }
        </svg>
    }
}
