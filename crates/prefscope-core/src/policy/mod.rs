//! The policy side: what a reward model is for.
//!
//! * [`dpo`]: offline preference-optimisation losses on log-probabilities (DPO and its family).
//! * [`fdpo`]: f-DPO's divergences, their scores and their closed-form bandit optima.
//! * [`grpo`]: GRPO's loss types, reward scaling and importance-sampling levels (TRL's).
//! * [`wpo`]: WPO's on-policy weighting of each pair (TRL's `use_weighting`).
//! * [`bandit`]: one prompt, n candidates, π = softmax(θ), trained on exact preferences.
//! * [`losses`]: the loss names the front ends offer, and each built from a name and settings.
//! * [`lm`]: a tiny byte-level causal transformer LM, SFT then any loss of [`dpo`].
//! * [`lm_scoring`]: a tiny-LM policy's implicit reward β log π/π_ref, and its checkpoint.
//! * [`lm_online`]: online RLHF on the tiny LM: a transformer reward model, then RLOO, PPO or GRPO.
//! * [`online`]: online RLHF on the bandit: RLOO, GRPO, online DPO, XPO, VPO, best-of-n.
//! * [`rso`]: RSO's statistical rejection sampling and best-of-n selection among samples.
//! * [`overoptimisation`]: reward over-optimisation (Gao et al. 2022): a proxy RM, best-of-n and RL curves.

pub mod bandit;
#[cfg(test)]
mod bandit_losses;
pub mod dpo;
pub mod fdpo;
pub mod grpo;
pub mod lm;
pub mod lm_scoring;
pub mod losses;
pub mod online;
pub mod lm_online;
pub mod overoptimisation;
pub mod rso;
pub mod wpo;
