//! Studies built on the reward side: experiments that train many models or look inside one.
//!
//! * [`landscape`]: loss landscapes: filter-normalised directions, trajectory PCA, batched grids.
//! * [`scaling`]: power-law fits of loss against data and model size (WorldPM), with bootstrap.
//! * [`probe`]: linear probes of a trained model's hidden state for each hidden objective.
//! * [`noise`]: noisy labels: ensemble preference strength and collaborative reward modelling.
//! * [`rank`]: maximum-likelihood item strengths from comparisons (Bradley–Terry, Plackett–Luce).
//! * [`grid`]: sweep grids over config keys: axes, every combination, each point's folder name.
//! * [`seeds`]: claims over many seeds: seed lists, spreads, the exact binomial bound.

pub mod grid;
pub mod landscape;
pub mod noise;
pub mod probe;
pub mod rank;
pub mod scaling;
pub mod seeds;
