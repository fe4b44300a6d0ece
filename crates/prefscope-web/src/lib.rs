//! The playground's browser-independent parts: URL settings, chart axes, the data picture, the
//! preference dial, the loss landscape's grid, the decision surface and the upload readers. The
//! page and its worker (`main.rs`, wasm only) are built on them; their tests run on the host.

pub mod charts;
pub mod dial;
pub mod landscape;
pub mod plot;
pub mod settings;
pub mod surface;
pub mod upload;
