//! The policy side: what a reward model is for.
//!
//! * [`dpo`]: offline preference-optimisation losses on log-probabilities (DPO and its family).
//! * [`bandit`]: one prompt, n candidates, π = softmax(θ), trained on exact preferences.
//! * [`lm`]: a tiny byte-level causal transformer LM, SFT then any loss of [`dpo`].

pub mod bandit;
pub mod dpo;
pub mod lm;
