//! The App's view: the setup column, the training card, the data plot and the panels.

use std::rc::Rc;

use prefscope_core::{ModelKind, ScenarioKind};
use web_sys::{DragEvent, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::backend::{ComputeBackend, Selected};
use crate::charts_panel::{Series, charts};
use crate::by_ptr::{ByPtr, Memo, version};
use crate::dial_panel::DirectionDial;
use crate::embedding_panel::EmbeddingView;
use crate::landscape_panel::LandscapePanel;
use crate::settings::{Panel, SHOTS, Settings};
use crate::surface_panel::SurfaceCanvas;

use super::parts::{BATCHES, DataPlot, PAIR_COUNTS, SetBy, capitalise, loss_chart, model_title, round_sig, scenario_title};
use super::*;

impl App {
    pub(super) fn view_badge(&self) -> Html {
        let (class, text, title) = match &self.backend {
            BackendState::Detecting => ("badge pending", "detecting backend…".to_string(), String::new()),
            BackendState::Ready(s) => (
                if s.backend == ComputeBackend::WebGpu { "badge gpu" } else { "badge cpu" },
                s.backend.label().to_string(),
                s.adapter.clone().unwrap_or_else(|| format!("burn's {} backend, compiled to WebAssembly", crate::backend::CPU_CRATE)),
            ),
            BackendState::Failed(_) => ("badge failed", "no backend".to_string(), String::new()),
        };
        html! { <span class={class} data-testid="backend-badge" title={title}>{ text }</span> }
    }

    pub(super) fn view_notices(&self) -> Html {
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

    pub(super) fn view_setup(&self, link: &yew::html::Scope<Self>) -> Html {
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
                <label class={classes!("check", (s.model != ModelKind::Bt).then_some("disabled"))}>
                    <input type="checkbox" data-testid="dr-checkbox" checked={s.dr}
                        disabled={s.model != ModelKind::Bt} onchange={link.callback(|e: Event| Msg::SetDr(e.target_unchecked_into::<HtmlInputElement>().checked()))} />
                    { "direct reward term: right above zero, wrong below (Eurus; BT)" }
                </label>
                if s.model == ModelKind::ContextBt {
                    <label class="field">
                        <span>{ "Context shown" }</span>
                        <select data-testid="context-select" onchange={link.callback(|e: Event| Msg::SetContext(e.target_unchecked_into::<web_sys::HtmlSelectElement>().value().parse().unwrap_or(0)))}>
                            { for super::parts::context_names(s.scenario, self.data().map_or(0, |ds| ds.prompt_dim)).into_iter().enumerate().map(|(j, name)| html! {
                                <option value={j.to_string()} selected={j == s.context}>{ name }</option>
                            }) }
                        </select>
                    </label>
                }
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
    pub(super) fn view_hyper(&self, link: &yew::html::Scope<Self>) -> Html {
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
                { slider("shots", format!("new users show {} labelled pairs", s.shots), s.shots as i32, (*SHOTS.start() as i32, *SHOTS.end() as i32), s.scenario == ScenarioKind::FewShotUsers && self.uploaded.is_none(), Rc::new(|s, x| s.shots = (x.max(0) as usize).clamp(*SHOTS.start(), *SHOTS.end()))) }
                <div class="row">
                    { number("seed", "seed", s.seed.to_string(), Rc::new(|s, v| s.seed = v)) }
                    { number("steps", "steps", s.steps.to_string(), Rc::new(|s, v| s.steps = (v as usize).clamp(1, crate::settings::MAX_STEPS))) }
                </div>
            </div>
        }
    }

    /// Drop zone and file picker for a JSONL pair file (GPM's `chosen`/`reject` lines) or a
    /// pair-embedding file written by `prefscope embed`.
    pub(super) fn view_upload(&self, link: &yew::html::Scope<Self>) -> Html {
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
                if let (Some(u), Some(ds)) = (&self.uploaded, self.fresh_data()) {
                    <p class="notice" data-testid="upload-status">
                        { format!("Training on {}: {} responses{}, {} pairs ({} train, {} held out). ", u.name, ds.n_items,
                            if u.embeddings { format!(" as {}-dimensional embeddings", ds.dim) } else { String::new() }, ds.pairs, ds.train, ds.eval) }
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
    pub(super) fn view_panel(&self, link: &yew::html::Scope<Self>, panel: Panel, title: &str, testid: &str, body: impl FnOnce() -> Html) -> Html {
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

    pub(super) fn view_landscape(&self) -> Html {
        let s = &self.settings;
        html! {
            <LandscapePanel
                slice={self.landscape.clone().map(ByPtr)}
                state={self.landscape_state.clone()}
                plane={s.plane} grid={s.grid} log={s.log_scale}
                webgpu={self.ready_backend() == Some(ComputeBackend::WebGpu)}
                on_plane={self.cb.plane.clone()}
                on_grid={self.cb.grid.clone()}
                on_log={self.cb.log.clone()}
                on_compute={self.cb.compute.clone()} />
        }
    }

    pub(super) fn view_charts(&self) -> Html {
        let (total_steps, losses, train_accuracy, evals, margins) = (self.settings.steps, self.losses.clone(), self.train_accuracy.clone(), self.evals.clone(), self.margins.clone());
        let version = version((self.run, total_steps, self.curve_progress(), evals.len(), margins.as_ref().map(|(m, step)| (Rc::as_ptr(m), *step))));
        let view: Rc<dyn Fn() -> Html> = Rc::new(move || {
            charts(&Series { total_steps, losses: &losses, train_accuracy: &train_accuracy, evals: &evals, margins: margins.as_ref().map(|(m, step)| (m.as_slice(), *step)) })
        });
        html! { <Memo {version} {view} /> }
    }

    pub(super) fn view_dial(&self) -> Html {
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
    pub(super) fn curve_progress(&self) -> (usize, bool) {
        (self.losses.len() * 1000 / self.settings.steps.max(1), self.status == Status::Training)
    }

    pub(super) fn view_embedding(&self) -> Html {
        let (embeddings, note) = match (&self.embeddings, self.settings.model) {
            (Some(Ok(e)), _) => (Some(ByPtr(e.clone())), String::new()),
            (Some(Err(e)), _) => (None, e.clone()),
            (None, ModelKind::Gpm) => (None, "Train (or pause) to see the learnt embeddings.".into()),
            (None, _) => (None, "This view shows the General Preference Model's embeddings: pick the gpm model.".into()),
        };
        let colours: Vec<String> = self.picture.as_ref().map(|p| p.items.iter().map(|i| i.colour.clone()).collect()).unwrap_or_default();
        html! { <EmbeddingView {embeddings} {note} {colours} /> }
    }

    pub(super) fn view_profiles(&self) -> Html {
        let note = match (&self.profiles, self.settings.model) {
            (Some(Err(e)), _) => e.clone(),
            (None, ModelKind::AttributeAttention) => "Train (or pause) to see each community's attention over the attributes.".into(),
            _ => "This view shows the attribute-attention model's attention per community (PrefPalette): pick the communities scenario and the attribute-attention model.".into(),
        };
        crate::profiles_panel::profiles_view(self.profiles.as_ref().and_then(|p| p.as_ref().ok()).map(|p| &**p), &note)
    }

    pub(super) fn view_training(&self) -> Html {
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

    pub(super) fn surface_step(&self) -> String {
        match &self.surface {
            Some(Ok(s)) => s.step.to_string(),
            _ => String::new(),
        }
    }

    pub(super) fn surface_caption(&self) -> String {
        match (&self.surface, self.settings.model) {
            (Some(Err(e)), _) => format!("Decision surface: {e}."),
            (_, ModelKind::Bt) => "Background: the learnt reward r(x), purple low → yellow high (as TensorFlow Playground draws a classifier).".into(),
            (_, ModelKind::MultiObjective) => "Background: the learnt v·r(x) for the dial's direction or weights v (purple low → yellow high); it turns with the dial.".into(),
            (_, ModelKind::ContextBt) => "Background: the learnt reward r(c, x) under the chosen context c (purple low → yellow high). A criterion asks for more of its direction, so the colours turn as you change it: the same two responses swap places.".into(),
            (_, ModelKind::Gpm) => "Background: the angle of the learnt embedding (block 1) as a hue; on the cyclic data it should match the items' colours.".into(),
            _ => "Train to paint the model's decision surface behind the data.".into(),
        }
    }

    pub(super) fn view_data(&self, link: &yew::html::Scope<Self>) -> Html {
        let body = match (&self.dataset, &self.picture) {
            (None, _) => html! { <p class="caption">{ "Building the data…" }</p> },
            (Some(Err(e)), _) => html! { <p class="notice error">{ format!("Could not build the data: {e}") }</p> },
            (Some(Ok(ds)), Some(pic)) => html! {
                <div class="data-body">
                    <div class="surface-stack" data-testid="decision-surface" data-step={self.surface_step()}>
                        if let (Some(Ok(surface)), true) = (&self.surface, self.settings.is_open(Panel::Surface)) {
                            <SurfaceCanvas surface={ByPtr(surface.clone())} direction={self.surface_vector()} />
                        }
                        <DataPlot picture={ByPtr(pic.clone())} />
                    </div>
                    <p class="caption">
                        { format!("{} items, {} pairs ({} train, {} held out). ", ds.n_items, ds.pairs, ds.train, ds.eval) }
                        <br/><br/>{ capitalise(&pic.colour_legend) }{ "." }
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
            (Some(Ok(ds)), None) => html! {
                <>
                    <p class="caption">{ format!("{} items with {}-dimensional features (no 2-D picture). The comparisons:", ds.n_items, ds.dim) }</p>
                    <ul class="pairs">
                        { for ds.listed.iter().map(|pair| html! { <li>{ pair.clone() }</li> }) }
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
