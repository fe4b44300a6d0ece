//! Preferences over real text: the pair-file readers, the transformer reward model on token ids,
//! its trainer (tokenizer included), and the pretrained MiniLM sentence encoder.
//!
//! * [`pairs`]: TRL standard/conversational and hh-rlhf readers, streamed, with line-exact errors.
//! * [`rewardbench2`]: RewardBench 2's layout (several responses per prompt) and its scoring.
//! * [`transformer`]: a causal transformer reward model on token ids (BT or GPM head).
//! * `trainer` (feature `text`): training that model on a pair file, tokenizer included.
//! * `minilm` (feature `text`): all-MiniLM-L6-v2, for reward heads on sentence embeddings.

#[cfg(feature = "text")]
pub mod minilm;
pub mod pairs;
pub mod rewardbench2;
#[cfg(feature = "text")]
pub mod trainer;
pub mod transformer;
