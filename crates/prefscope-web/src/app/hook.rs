//! `window.__prefscope`, the page's state as the browser test reads it (see the parent module's
//! docs): kept current after every update, its large parts remade only when their state changes.

use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::JsValue;

use super::{App, BackendState};
use crate::by_ptr::version;
use crate::backend::Selected;
use crate::landscape_panel::PanelState;

impl App {
    /// Keep `window.__prefscope` current (see the module docs).
    pub(super) fn publish(&self) {
        let set = |k: &str, v: &JsValue| {
            let _ = Reflect::set(&self.hook, &k.into(), v);
        };
        let backend = self.ready_backend().map(|b| JsValue::from_str(b.id())).unwrap_or(JsValue::NULL);
        set("backend", &backend);
        let adapter = match &self.backend {
            BackendState::Ready(Selected { adapter: Some(a), .. }) => JsValue::from_str(a),
            _ => JsValue::NULL,
        };
        set("adapter", &adapter);
        set("status", &JsValue::from_str(&self.status.label()));
        set("steps", &JsValue::from_f64(self.settings.steps as f64));
        set("losses", &self.hook_losses);
        set("stepTimes", &self.hook_times);
        set("evals", &self.hook_evals);
        set("accuracy", &self.final_accuracy.map(|a| JsValue::from_f64(a as f64)).unwrap_or(JsValue::NULL));
        let part = |key: &'static str, version: u64, make: &dyn Fn() -> JsValue| -> JsValue {
            let mut parts = self.hook_parts.borrow_mut();
            match parts.get(key) {
                Some((v, value)) if *v == version => value.clone(),
                _ => {
                    let value = make();
                    parts.insert(key, (version, value.clone()));
                    value
                }
            }
        };
        let ptr = |o: Option<*const ()>| o.map_or(0, |p| p as usize);
        let landscape_version = version((ptr(self.landscape.as_ref().map(|l| Rc::as_ptr(l) as *const ())), format!("{:?}", self.landscape_state)));
        set("landscape", &part("landscape", landscape_version, &|| self.landscape_hook()));
        let score_bits: Vec<u64> = self.settings.score_vector(self.objectives_now()).iter().map(|x| x.to_bits()).collect();
        set("direction", &JsValue::from_f64(self.settings.direction as f64));
        let k = self.objectives_now();
        set("weights", &numbers(self.settings.score_vector(k).into_iter().filter(|_| k > 2)).into());
        let candidates_ptr = match &self.candidates {
            Some(Ok(c)) => Rc::as_ptr(c) as usize,
            _ => 0,
        };
        let dial = part("dial", version((candidates_ptr, &score_bits)), &|| match &self.candidates {
            Some(Ok(c)) => {
                let o = Object::new();
                let pairs = |v: &[Vec<f64>]| Array::from_iter(v.iter().map(|r| JsValue::from(numbers(r.iter().copied()))));
                let order = crate::dial::ranking(&c.rewards, &self.settings.score_vector(c.objectives()));
                let _ = Reflect::set(&o, &"rewards".into(), &pairs(&c.rewards));
                let _ = Reflect::set(&o, &"ratings".into(), &pairs(&c.ratings));
                let _ = Reflect::set(&o, &"ranking".into(), &numbers(order.iter().map(|&i| i as f64)));
                let _ = Reflect::set(&o, &"step".into(), &JsValue::from_f64(c.step as f64));
                o.into()
            }
            _ => JsValue::NULL,
        });
        set("dial", &dial);
        let embeddings_ptr = match &self.embeddings {
            Some(Ok(e)) => Rc::as_ptr(e) as usize,
            _ => 0,
        };
        let embedding = part("embedding", version(embeddings_ptr), &|| match &self.embeddings {
            Some(Ok(e)) => {
                let o = Object::new();
                let n = e.matrix.len();
                let m = Array::from_iter(e.matrix.iter().map(|&i| JsValue::from(numbers(e.matrix.iter().map(|&j| e.p(i, j) as f64)))));
                let _ = Reflect::set(&o, &"matrix".into(), &m);
                let _ = Reflect::set(&o, &"items".into(), &numbers(e.matrix.iter().map(|&i| i as f64)));
                let _ = Reflect::set(&o, &"k".into(), &JsValue::from_f64(e.k as f64));
                let _ = Reflect::set(&o, &"n".into(), &JsValue::from_f64(n as f64));
                let _ = Reflect::set(&o, &"step".into(), &JsValue::from_f64(e.step as f64));
                o.into()
            }
            _ => JsValue::NULL,
        });
        set("embedding", &embedding);
        let surface_ptr = match &self.surface {
            Some(Ok(s)) => Rc::as_ptr(s) as usize,
            _ => 0,
        };
        let picture_ptr = self.picture.as_ref().map_or(0, |p| Rc::as_ptr(p) as usize);
        let surface_bits: Vec<u64> = self.surface_vector().iter().map(|x| x.to_bits()).collect();
        set("surface", &part("surface", version((surface_ptr, picture_ptr, &surface_bits)), &|| self.surface_hook()));
        // The per-step accuracy array is appended to in place; a reset makes a new one and
        // clears these parts.
        let margins = self.margins.as_ref().map(|(m, step)| (Rc::as_ptr(m) as usize, *step));
        let charts = part("charts", version((self.run, margins)), &|| {
            let charts = Object::new();
            let _ = Reflect::set(&charts, &"trainAccuracy".into(), &self.hook_train_accuracy);
            if let Some((m, step)) = &self.margins {
                let _ = Reflect::set(&charts, &"margins".into(), &numbers(m.iter().map(|&v| v as f64)));
                let _ = Reflect::set(&charts, &"marginStep".into(), &JsValue::from_f64(*step as f64));
            }
            charts.into()
        });
        set("charts", &charts);
    }

    /// `window.__prefscope.surface`: `{ n, extent, step, values (top row first, what the pixels
    /// show), vector (what they weigh the field by), arrows: [[chosen x, y, rejected x, y]] }` or
    /// null.
    fn surface_hook(&self) -> JsValue {
        let (Some(Ok(s)), Some(pic)) = (&self.surface, &self.picture) else { return JsValue::NULL };
        let o = Object::new();
        let put = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        put("n", (s.n as f64).into());
        put("extent", (s.extent as f64).into());
        put("step", (s.step as f64).into());
        let v = self.surface_vector();
        put("values", numbers(s.scalars(&v)).into());
        // What the pixels weigh the field by: the dial's v, or context-bt's chosen context.
        put("vector", numbers(v).into());
        let arrows = pic.arrows.iter().map(|&(c, r)| {
            let (a, b) = (&pic.items[c], &pic.items[r]);
            JsValue::from(numbers([a.x, a.y, b.x, b.y].map(|v| v as f64)))
        });
        put("arrows", Array::from_iter(arrows).into());
        o.into()
    }

    /// `window.__prefscope.landscape`: `{ status, plane, n, values, centre, currentLoss, min, max,
    /// step, trajectory: [[a, b]], line: [[t, loss]] }` (only `status` before the first result).
    fn landscape_hook(&self) -> JsValue {
        let o = Object::new();
        let put = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        let status = match (&self.landscape_state, &self.landscape) {
            (PanelState::Computing, _) => "computing".to_string(),
            (PanelState::Failed(e), _) => format!("error: {e}"),
            (PanelState::Idle, Some(_)) => "ready".into(),
            (PanelState::Idle, None) => "idle".into(),
        };
        put("status", status.into());
        if let Some(s) = &self.landscape {
            let (lo, hi) = s.range();
            put("plane", s.plane.name().into());
            put("n", (s.n as f64).into());
            put("values", numbers(s.values.iter().map(|&v| v as f64)).into());
            put("centre", (s.centre() as f64).into());
            put("currentLoss", (s.current_loss as f64).into());
            put("min", (lo as f64).into());
            put("max", (hi as f64).into());
            put("step", (s.step as f64).into());
            put("trajectory", Array::from_iter(s.trajectory.iter().map(|c| JsValue::from(numbers(c.iter().copied())))).into());
            put("line", Array::from_iter(s.line.iter().map(|&(t, v)| JsValue::from(numbers([t as f64, v as f64])))).into());
        }
        o.into()
    }
}

/// A JS array of numbers made by one copy and one `Array.from`: the hook is rebuilt after every
/// update, and a crossing per number (tens of thousands of them: the landscape, the surface,
/// the per-step accuracy) made each pointer move of a dial drag a long task.
pub(super) fn numbers(values: impl IntoIterator<Item = f64>) -> Array {
    let v: Vec<f64> = values.into_iter().collect();
    Array::from(&js_sys::Float64Array::from(v.as_slice()))
}

