//! The prefscope playground: a Yew page that trains preference models in the browser tab, on
//! WebGPU where the browser offers it and on the CPU (burn's ndarray backend) otherwise.
//!
//! Built with Trunk (`trunk build` at the repository root; see `Trunk.toml` and `web/index.html`).
//! On other targets this is an empty binary, so `cargo test --workspace` covers the
//! browser-independent parts ([`settings`], [`plot`]) on the host.

// On the host only the unit tests use these modules.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod charts;
mod dial;
mod landscape;
mod plot;
mod settings;
mod surface;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod backend;
#[cfg(target_arch = "wasm32")]
mod by_ptr;
#[cfg(target_arch = "wasm32")]
mod charts_panel;
#[cfg(target_arch = "wasm32")]
mod dial_panel;
#[cfg(target_arch = "wasm32")]
mod embedding_panel;
#[cfg(target_arch = "wasm32")]
mod landscape_panel;
#[cfg(target_arch = "wasm32")]
mod policy;
#[cfg(target_arch = "wasm32")]
mod surface_panel;

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::set_custom_panic_hook(Box::new(report_panic));
    yew::Renderer::<app::App>::new().render();
}

/// Log the panic and show it as the page's status, so a test fails fast instead of timing out.
#[cfg(target_arch = "wasm32")]
fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let text = format!("error: panic: {info}");
    web_sys::console::error_1(&text.clone().into());
    let Some(window) = web_sys::window() else { return };
    if let Ok(hook) = js_sys::Reflect::get(&window, &"__prefscope".into())
        && hook.is_object()
    {
        let _ = js_sys::Reflect::set(&hook, &"status".into(), &text.clone().into());
    }
    if let Some(el) = window.document().and_then(|d| d.query_selector("[data-testid=status]").ok().flatten()) {
        el.set_text_content(Some(&text));
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("prefscope-web is the browser playground: build it with `trunk build` (see Trunk.toml).");
}
