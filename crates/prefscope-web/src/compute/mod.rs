//! What the compute worker runs for the page: every view's numbers are computed here, off the
//! page's thread, and sent back as plain data. The panels only draw them; nothing here renders.
//!
//! * [`margins`]: held-out logits for the charts' margin histogram and calibration.
//! * [`landscape`]: loss-landscape slices.
//! * [`dial`]: the dial's candidates and their attribute rewards.
//! * [`embedding`]: GPM's embeddings and preference probabilities.
//! * [`surface`]: decision surfaces under the data plot.
//! * [`profiles`]: the attribute-attention model's per-community attention (PrefPalette).
//! * [`policy`]: the Policy tab's bandit runs.
//! * [`online`]: the Policy tab's online over-optimisation runs.

pub mod dial;
pub mod embedding;
pub mod landscape;
pub mod margins;
pub mod online;
pub mod policy;
pub mod profiles;
pub mod surface;
