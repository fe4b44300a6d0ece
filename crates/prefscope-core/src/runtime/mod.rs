//! What every other folder runs on: the backend traits and fused CPU kernels, mixed precision,
//! the seeded generator and host-side weight initialisation. Nothing here knows about preferences.
//!
//! * [`kernels`]: the `Backend`/`AutodiffBackend` traits the core is generic over, and fused ops.
//! * [`precision`]: half-precision compute over full-precision master weights, loss scaling.
//! * [`rng`]: a small seeded generator that gives the same numbers on every target.
//! * [`host_init`]: a module's weights redrawn from that generator, so a start depends on the seed.
//! * [`safetensors`]: the file container: metadata, bounds-checked loading, canonical headers.

pub mod host_init;
pub mod kernels;
pub mod precision;
pub mod rng;
pub mod safetensors;
