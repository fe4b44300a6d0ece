//! A tiny-LM policy as a reward model. A DPO-style policy carries an implicit reward,
//! r(x, y) = β (log π(y|x) − log π_ref(y|x)), the one its loss fits; RewardBench scores policies
//! by it. A policy run keeps its policy and reference in one checkpoint ([`save_lm_policy`]) so
//! that `eval --benchmark rewardbench2` can rank each prompt's responses by it.

use burn::module::Module;

use super::lm::{Encoded, TinyLm, TinyLmConfig, sequence_logps, token_logps};
use crate::runtime::kernels::Backend;
use crate::runtime::safetensors::{CONFIG_KEY, KIND_KEY, bad, load_into, read_metadata, require, to_safetensors};
use crate::{Error, Result};

/// The checkpoint kind of a policy run's weights: the policy and the reference it was trained
/// against (the SFT model), both needed for the implicit reward.
pub const LM_POLICY_KIND: &str = "lm-policy";
/// Metadata key: the β of the run's loss, the implicit reward's scale.
pub const BETA_KEY: &str = "prefscope.beta";

/// A policy and its reference, saved and loaded together.
#[derive(Module, Debug)]
pub struct LmPolicyPair<B: Backend> {
    pub policy: TinyLm<B>,
    pub reference: TinyLm<B>,
}

/// The checkpoint bytes of a policy run: both models, the run's config (TOML) and β.
pub fn save_lm_policy<B: Backend>(policy: &TinyLm<B>, reference: &TinyLm<B>, beta: f64, config_toml: &str) -> Result<Vec<u8>> {
    if !(beta.is_finite() && beta > 0.0) {
        return Err(bad(format!("the implicit reward needs a positive β, got {beta}")));
    }
    let pair = LmPolicyPair { policy: policy.clone(), reference: reference.clone() };
    to_safetensors(&pair, &[(KIND_KEY, LM_POLICY_KIND.to_string()), (CONFIG_KEY, config_toml.to_string()), (BETA_KEY, beta.to_string())])
}

/// Is this checkpoint a policy run's ([`save_lm_policy`])?
pub fn is_lm_policy(bytes: &[u8]) -> bool {
    read_metadata(bytes).is_ok_and(|m| m.get(KIND_KEY).map(String::as_str) == Some(LM_POLICY_KIND))
}

/// Load a policy run's checkpoint: the two models and β.
pub fn load_lm_policy<B: Backend>(bytes: Vec<u8>, device: &B::Device) -> Result<(LmPolicyPair<B>, f64)> {
    let meta = read_metadata(&bytes)?;
    let kind = require(&meta, KIND_KEY)?;
    if kind != LM_POLICY_KIND {
        return Err(bad(format!("this checkpoint holds a `{kind}`, not a tiny-LM policy (`{LM_POLICY_KIND}`)")));
    }
    let beta: f64 = require(&meta, BETA_KEY)?.parse().map_err(|_| bad(format!("`{BETA_KEY}` is not a number")))?;
    if !(beta.is_finite() && beta > 0.0) {
        return Err(bad(format!("`{BETA_KEY}` must be a positive number, got {beta}")));
    }
    let cfg = TinyLmConfig::default();
    let skeleton = LmPolicyPair { policy: cfg.init::<B>(0, device), reference: cfg.init::<B>(0, device) };
    Ok((load_into(skeleton, bytes)?, beta))
}

/// The bytes of (prompt, response) that a context of `max_len` bytes holds: the prompt's last
/// bytes, up to half the context (at least one, so the response's first byte is predicted),
/// then as much of the response's start as fits.
pub fn fit_window(prompt: &[u8], response: &[u8], max_len: usize) -> (Vec<u8>, Vec<u8>) {
    let p = prompt.len().min((max_len / 2).max(1));
    let c = response.len().min(max_len - p);
    // A short response leaves room for more of the prompt.
    let p = prompt.len().min(max_len - c);
    (prompt[prompt.len() - p..].to_vec(), response[..c].to_vec())
}

/// Rows per forward pass.
const BATCH: usize = 64;

/// β (log π(y|x) − log π_ref(y|x)) of each (prompt, response), summed over the response's bytes
/// that fit the model's context ([`fit_window`]).
pub fn implicit_rewards<B: Backend>(pair: &LmPolicyPair<B>, beta: f64, items: &[(&str, &str)], device: &B::Device) -> Result<Vec<f64>> {
    let max_len = TinyLmConfig::default().max_len;
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(BATCH) {
        let windows: Vec<(Vec<u8>, Vec<u8>)> = chunk.iter().map(|(p, y)| fit_window(p.as_bytes(), y.as_bytes(), max_len)).collect();
        let (tokens, mask) = Encoded::from_bytes(&windows, max_len)?.tensors::<B>(device);
        let logp = |lm: &TinyLm<B>| sequence_logps(token_logps(lm.logits(tokens.clone()), tokens.clone()), mask.clone());
        let ratio = (logp(&pair.policy) - logp(&pair.reference)).into_data().convert::<f64>().to_vec::<f64>().map_err(|e| Error::Backend(format!("{e:?}")))?;
        out.extend(ratio.into_iter().map(|r| beta * r));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Int, Tensor, TensorData};

    type B = Flex;

    #[test]
    fn the_window_keeps_the_prompts_end_and_the_responses_start() {
        assert_eq!(fit_window(b"abcdef", b"xyz", 24), (b"abcdef".to_vec(), b"xyz".to_vec()));
        // Both long: half the context each, the prompt's end and the response's start.
        let (p, c) = fit_window(&[b'p'; 40], &[b'r'; 40], 24);
        assert_eq!((p.len(), c.len()), (12, 12));
        let (p, c) = fit_window(b"0123456789abcdefghij", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 24);
        assert_eq!((p.as_slice(), c.as_slice()), (&b"89abcdefghij"[..], &b"ABCDEFGHIJKL"[..]));
        // A short response gives the prompt the rest; a short prompt gives it to the response.
        assert_eq!(fit_window(&[b'p'; 40], b"ok", 24).0.len(), 22);
        assert_eq!(fit_window(b"q", &[b'r'; 40], 24), (b"q".to_vec(), vec![b'r'; 23]));
    }

    /// The implicit reward against the same figure computed by hand in f64: the models' logits
    /// at each response position, log-softmax, the next byte's entry, summed and differenced.
    #[test]
    fn implicit_reward_is_beta_times_the_summed_log_ratio() {
        let device = Default::default();
        let cfg = TinyLmConfig::default();
        let pair = LmPolicyPair { policy: cfg.init::<B>(1, &device), reference: cfg.init::<B>(2, &device) };
        let items = [("say cat:", " cat!\n"), ("a prompt longer than half of the context", " and a response that is longer too")];
        let got = implicit_rewards(&pair, 0.3, &items, &device).unwrap();
        for ((prompt, response), got) in items.iter().zip(got) {
            let (p, c) = fit_window(prompt.as_bytes(), response.as_bytes(), cfg.max_len);
            let seq: Vec<i64> = p.iter().chain(&c).map(|&b| b as i64).collect();
            let t = seq.len();
            let by_hand = |lm: &TinyLm<B>| -> f64 {
                let logits: Vec<f64> = lm.logits(Tensor::<B, 2, Int>::from_data(TensorData::new(seq.clone(), [1, t]), &device)).into_data().convert::<f64>().to_vec().unwrap();
                let vocab = logits.len() / t;
                (p.len()..t)
                    .map(|i| {
                        let row = &logits[(i - 1) * vocab..i * vocab];
                        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
                        row[seq[i] as usize] - lse
                    })
                    .sum()
            };
            let want = 0.3 * (by_hand(&pair.policy) - by_hand(&pair.reference));
            assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "{prompt:?}: {got} vs {want}");
            assert!(want.abs() > 1e-2, "two different models give a non-zero reward");
        }
    }

    /// A policy that never moved from its reference prefers nothing: every reward is exactly 0,
    /// and the checkpoint round trip keeps the weights and β.
    #[test]
    fn an_unmoved_policy_scores_zero_and_the_checkpoint_round_trips() {
        let device = Default::default();
        let lm = TinyLmConfig::default().init::<B>(3, &device);
        let bytes = save_lm_policy(&lm, &lm, 0.25, "seed = 3\n").unwrap();
        assert!(is_lm_policy(&bytes));
        let (pair, beta) = load_lm_policy::<B>(bytes.clone(), &device).unwrap();
        assert_eq!(beta, 0.25);
        let items = [("say dog:", " dog.\n"), ("say dog:", " dog!\n"), ("", "no prompt at all")];
        assert_eq!(implicit_rewards(&pair, beta, &items, &device).unwrap(), vec![0.0; 3]);
        let other = TinyLmConfig::default().init::<B>(4, &device);
        let moved = load_lm_policy::<B>(save_lm_policy(&other, &lm, 0.25, "").unwrap(), &device).unwrap().0;
        assert!(implicit_rewards(&moved, 0.25, &items, &device).unwrap().iter().all(|r| *r != 0.0));
        // Not a policy checkpoint, or a broken β, is refused by name.
        let head = crate::runtime::safetensors::to_safetensors(&lm, &[(KIND_KEY, "preference-model".into())]).unwrap();
        assert!(!is_lm_policy(&head));
        assert!(load_lm_policy::<B>(head, &device).unwrap_err().to_string().contains("not a tiny-LM policy"));
        assert!(save_lm_policy(&lm, &lm, 0.0, "").is_err());
    }
}
