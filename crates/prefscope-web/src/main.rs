//! The prefscope playground: a Yew page that trains preference models in the browser, on
//! WebGPU where the browser offers it and on the CPU (burn-flex, with WebAssembly SIMD) otherwise.
//! The page's thread renders; training and evaluation run in a Web Worker ([`worker`]) that runs
//! this same binary.
//!
//! Built with Trunk (`trunk build` at the repository root; see `Trunk.toml` and `web/index.html`).
//! On other targets this is an empty binary; the browser-independent parts are the library
//! (`lib.rs`), whose tests run on the host.

// The library's modules under their own names, so `crate::plot::…` reads the same everywhere.
#[cfg(target_arch = "wasm32")]
use prefscope_web::{charts, dial, landscape, plot, settings, surface, upload};

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod backend;
#[cfg(target_arch = "wasm32")]
mod by_ptr;
#[cfg(target_arch = "wasm32")]
mod charts_panel;
#[cfg(target_arch = "wasm32")]
mod compute;
#[cfg(target_arch = "wasm32")]
mod dial_panel;
#[cfg(target_arch = "wasm32")]
mod embedding_panel;
#[cfg(target_arch = "wasm32")]
mod landscape_panel;
#[cfg(target_arch = "wasm32")]
mod online_panel;
#[cfg(target_arch = "wasm32")]
mod policy;
#[cfg(target_arch = "wasm32")]
mod profiles_panel;
#[cfg(target_arch = "wasm32")]
mod surface_panel;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
fn main() {
    // In the compute worker there is no window: serve the page's requests.
    if web_sys::window().is_none() {
        worker::register();
        return;
    }
    yew::set_custom_panic_hook(Box::new(|info| {
        let text = format!("panic: {info}");
        web_sys::console::error_1(&text.clone().into());
        show_fatal(&text);
    }));
    yew::Renderer::<app::App>::new().render();
}

/// Show a panic (the page's own, or the worker's: `text` starts with "panic: ") as the page's
/// status, so a test fails fast instead of timing out, and say what happened with a way out.
#[cfg(target_arch = "wasm32")]
fn show_fatal(text: &str) {
    let text = format!("error: {text}");
    let Some(window) = web_sys::window() else { return };
    if let Ok(hook) = js_sys::Reflect::get(&window, &"__prefscope".into())
        && hook.is_object()
    {
        let _ = js_sys::Reflect::set(&hook, &"status".into(), &text.clone().into());
    }
    let Some(document) = window.document() else { return };
    if let Some(el) = document.query_selector("[data-testid=status]").ok().flatten() {
        el.set_text_content(Some(&text));
    }
    // A wasm instance cannot go on after a panic: say what happened and offer a way out. A
    // lost GPU device (driver reset, GPU removed, the tab's device destroyed) shows up as a
    // failed buffer mapping or a device error inside the wgpu runtime.
    let gpu = ["BufferAsyncError", "Device", "device", "lost", "wgpu", "cubecl"].iter().any(|k| text.contains(k));
    let query = window.location().search().unwrap_or_default();
    let cpu = settings::Settings::cpu_fallback_query(&query);
    let (testid, what) = if gpu {
        ("device-lost", "The GPU device was lost (or failed) during the run, so training stopped; this tab cannot use it again.")
    } else {
        ("fatal-error", "The page hit an internal error and stopped; the details are in the status line and the console.")
    };
    if document.query_selector(&format!("[data-testid={testid}]")).ok().flatten().is_none()
        && let Ok(notice) = document.create_element("div")
    {
        let _ = notice.set_attribute("class", "notice error fatal");
        let _ = notice.set_attribute("data-testid", testid);
        let _ = notice.set_attribute("role", "alert");
        notice.set_inner_html(&format!("{what} <a href=\"{cpu}\">Continue on the CPU</a> (same settings, same results, usually slower) or <a href=\"\">reload</a> to try the GPU again."));
        if let Some(body) = document.body() {
            let _ = body.prepend_with_node_1(&notice);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("prefscope-web is the browser playground: build it with `trunk build` (see Trunk.toml).");
}
