//! What the page does with each of the compute worker's replies; replies for an older run are
//! dropped (each reset starts a new run).

use std::rc::Rc;

use super::*;

impl App {
    pub(super) fn on_output(&mut self, output: Output) {
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
            Output::Data(run, result) if run == current => {
                self.data_run = run;
                self.picture = result.as_ref().ok().and_then(|d| d.picture.clone()).map(Rc::new);
                self.dataset = Some(result.map(Rc::new));
            }
            Output::UploadRead(name, result) => match result {
                Ok(embeddings) => {
                    self.uploaded = Some(Upload { name, embeddings });
                    self.upload_error = None;
                    self.settings_changed();
                }
                Err(e) => self.upload_error = Some(e),
            },
            Output::Inspected(name, result) => {
                // A reply for a checkpoint since replaced by another leaves the newer one pending.
                let Some((pending, bytes)) = self.inspecting.take_if(|(n, _)| *n == name) else { return };
                if let Err(e) = result.and_then(|inspected| self.open_checkpoint(&pending, bytes, inspected)) {
                    self.checkpoint_note = Some(format!("error: {name}: {e}"));
                }
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
            Output::Profiles(run, result) if run == current => self.profiles = Some(result.map(Rc::new)),
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
}
