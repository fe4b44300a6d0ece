//! The loss names the front ends offer: one table for `align --loss`, the Policy tab's menu and the
//! docs, and [`build`], which turns a name and the user's settings into a [`PolicyLoss`].
//!
//! Every variant of [`PolicyLoss`] has a name here (a test checks it). Where a pipeline cannot
//! supply what a loss needs, the entry says why in a sentence, and the front end refuses the
//! loss with it before any training starts.

use super::dpo::PolicyLoss;
use super::fdpo::FDivergence;
use crate::{Result, config_error};

/// One loss a front end can name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossName {
    pub name: &'static str,
    /// Other names accepted for it (`sigmoid` is TRL's name for DPO's loss).
    pub aliases: &'static [&'static str],
    /// One line for `--help` and the page's menu.
    pub help: &'static str,
    /// Why the bandit cannot run it; None where it can.
    pub not_on_bandit: Option<&'static str>,
    /// Why the tiny LM cannot run it; None where it can.
    pub not_on_lm: Option<&'static str>,
}

impl LossName {
    /// The sentence the bandit's config check and the front ends refuse this loss with, or None
    /// where the bandit runs it.
    pub fn refused_on_bandit(&self) -> Option<String> {
        self.not_on_bandit.map(|why| format!("{} does not run on the bandit: {why}", self.name))
    }

    /// As [`Self::refused_on_bandit`], for the tiny LM.
    pub fn refused_on_lm(&self) -> Option<String> {
        self.not_on_lm.map(|why| format!("{} does not run on the tiny LM: {why}", self.name))
    }
}

const AOT_ON_BANDIT: &str = "AOT sorts the batch's log-ratios and matches them as two distributions, and the bandit's batch is every pair at once, each with its probability as a weight, which sorting would part from its pair; run it on the LM (--policy lm)";
const MARGINS_ON_LM: &str = "MODPO needs each pair's score under a second, margin reward model, which the LM pipeline does not train; run it on the bandit, which knows the second reward exactly";
const TARGET_ON_LM: &str = "SLiC-HF needs log π of an SFT target completion for each prompt, which the LM pipeline does not score; run it on the bandit";
const REF_SAMPLES_ON_LM: &str = "XPO needs log π_θ of samples drawn from π_ref, which the offline LM pipeline does not draw; use --online xpo";
const SCORES_ON_LM: &str = "GPO needs win scores against the current policy from a general preference model, which the LM pipeline does not have; run it on the bandit";

const fn entry(name: &'static str, aliases: &'static [&'static str], help: &'static str, not_on_bandit: Option<&'static str>, not_on_lm: Option<&'static str>) -> LossName {
    LossName { name, aliases, help, not_on_bandit, not_on_lm }
}

/// Every loss `align` accepts, in the order `--help` lists them.
pub const LOSS_NAMES: [LossName; 32] = [
    entry("dpo", &["sigmoid"], "DPO: −log σ(βh), h the chosen minus the rejected log-ratio", None, None),
    entry("cdpo", &[], "cDPO: DPO with label smoothing ε (default 0.1)", None, None),
    entry("robust", &[], "robust DPO: unbiased under a label-flip rate ε (default 0.1)", None, None),
    entry("hinge", &[], "hinge: max(0, 1 − βh) (SLiC's and RSO's hinge-norm)", None, None),
    entry("ipo", &[], "IPO on summed log-ratios: (h − 1/(2β))²", None, None),
    entry("ipo-normalised", &[], "IPO as TRL computes it: each log-ratio divided by its completion's length", None, None),
    entry("sigmoid-norm", &[], "DPO on length-normalised log-ratios", None, None),
    entry("exo-pair", &[], "EXO (pair): reverse KL to the ε-smoothed labels (ε default 1e-3)", None, None),
    entry("nca-pair", &[], "NCA (pair): absolute likelihood of the chosen response, not only the margin", None, None),
    entry("bco-pair", &[], "BCO (pair): chosen log-ratio up, rejected down, each through its own sigmoid", None, None),
    entry("sppo-hard", &[], "SPPO (hard labels): squares the log-ratios toward ±1/(2β)", None, None),
    entry("apo-zero", &[], "APO-zero: raises the chosen likelihood and lowers the rejected one", None, None),
    entry("apo-down", &[], "APO-down: lowers both, the rejected more", None, None),
    entry("discopop", &[], "DiscoPOP: a log-ratio-modulated mix of the logistic and exponential losses (τ = 0.05)", None, None),
    entry("aot", &[], "AOT (unpaired): sorted chosen against sorted rejected log-ratios over the batch", Some(AOT_ON_BANDIT), None),
    entry("aot-paired", &[], "AOT (paired): sorted policy margins against sorted reference margins", Some(AOT_ON_BANDIT), None),
    entry("sft", &[], "SFT: the chosen completion's mean token NLL (the rejected one is unused)", None, None),
    entry("simpo", &[], "SimPO: reference-free, length-normalised, with a margin γ = 0.25·β", None, None),
    entry("orpo", &[], "ORPO: NLL of the chosen completion plus λ·odds-ratio term, λ = --beta (TRL's ORPOConfig.beta)", None, None),
    entry("slic", &[], "SLiC-HF: max(0, δ − ℓ_c + ℓ_r) − λ log π(y_ref), δ = 1, λ = --alpha (default 0.1)", None, Some(TARGET_ON_LM)),
    entry("rso-hinge", &[], "RSO's hinge on raw log-probabilities: max(0, 1 − β(ℓ_c − ℓ_r))", None, None),
    entry("tdpo", &["tdpo2"], "TDPO2: DPO plus α times the per-token KL gap, the chosen side's detached (α = --alpha, 0.5)", None, None),
    entry("tdpo1", &[], "TDPO1: DPO plus the per-token KL gap", None, None),
    entry("modpo", &[], "MODPO: DPO on (βρ − w₂·margin reward)/w₁ (--weights W1,W2; default 0.5,0.5)", None, Some(MARGINS_ON_LM)),
    entry("irpo", &[], "IRPO: DPO plus α times the chosen completion's mean NLL (α = --alpha, 1)", None, None),
    entry("vpo", &[], "VPO, pessimistic (offline): DPO − αβρ_c (α = --alpha, 1); the optimistic form is online only (--online vpo), as offline its loss has no lower bound", None, None),
    entry("xpo", &[], "XPO: DPO plus α log π_θ of a sample from π_ref (α = --alpha, 1e-5)", None, Some(REF_SAMPLES_ON_LM)),
    entry("gpo", &[], "GPO: square loss toward the multiplicative-weights step of a general preference model's scores", None, Some(SCORES_ON_LM)),
    entry("kto", &[], "KTO: chosen as desirable, rejected as undesirable, each against the KL baseline z₀ (TRL's β is 0.1)", None, None),
    entry("fdpo-forward-kl", &[], "f-DPO with the forward KL: g(ρ) = −e^(−ρ)", None, None),
    entry("fdpo-js", &[], "f-DPO with the Jensen–Shannon divergence: g(ρ) = log σ(ρ)", None, None),
    entry("fdpo-alpha", &[], "f-DPO with the α-divergence: g(ρ) = e^((α−1)ρ)/(α−1) (α = --alpha, 0.5)", None, None),
];

/// The user's settings a loss is built from; each loss reads the ones it has.
#[derive(Clone, Debug, PartialEq)]
pub struct LossSettings {
    pub beta: f64,
    /// ε of cdpo, robust (default 0.1), exo-pair (1e-3), aot, aot-paired and simpo (0).
    pub label_smoothing: Option<f64>,
    /// α of irpo, vpo, xpo, tdpo, fdpo-alpha; λ of slic.
    pub alpha: Option<f64>,
    /// MODPO's weights, the preference objective's first.
    pub weights: Option<Vec<f64>>,
}

impl LossSettings {
    pub fn new(beta: f64) -> Self {
        Self { beta, label_smoothing: None, alpha: None, weights: None }
    }
}

/// The entry for a name or alias.
pub fn lookup(name: &str) -> Option<&'static LossName> {
    LOSS_NAMES.iter().find(|e| e.name == name || e.aliases.contains(&name))
}

/// The loss a name stands for, with the user's settings and each loss's defaults.
pub fn build(name: &str, s: &LossSettings) -> Result<PolicyLoss> {
    let entry = lookup(name).ok_or_else(|| config_error("loss", format!("`{name}` is not a loss (one of: {})", LOSS_NAMES.iter().map(|e| e.name).collect::<Vec<_>>().join(", "))))?;
    let beta = s.beta;
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(config_error("beta", format!("must be a positive number, got {beta}")));
    }
    let eps = |default: f64| s.label_smoothing.unwrap_or(default);
    let alpha = |default: f64| s.alpha.unwrap_or(default);
    if let Some(e) = s.label_smoothing
        && !(0.0..0.5).contains(&e)
    {
        return Err(config_error("label_smoothing", format!("must be in [0, 0.5), got {e}")));
    }
    if s.weights.is_some() && entry.name != "modpo" {
        return Err(config_error("weights", format!("--weights is MODPO's; `{}` has none", entry.name)));
    }
    Ok(match entry.name {
        "dpo" => PolicyLoss::Sigmoid { beta },
        "cdpo" => PolicyLoss::Cdpo { beta, label_smoothing: eps(0.1) },
        "robust" => PolicyLoss::Robust { beta, label_smoothing: eps(0.1) },
        "hinge" => PolicyLoss::Hinge { beta },
        "ipo" => PolicyLoss::IpoSummed { beta },
        "ipo-normalised" => PolicyLoss::Ipo { beta },
        "sigmoid-norm" => PolicyLoss::SigmoidNorm { beta },
        "exo-pair" => PolicyLoss::ExoPair { beta, epsilon: s.label_smoothing.filter(|&e| e > 0.0).unwrap_or(1e-3) },
        "nca-pair" => PolicyLoss::NcaPair { beta },
        "bco-pair" => PolicyLoss::BcoPair { beta },
        "sppo-hard" => PolicyLoss::SppoHard { beta },
        "apo-zero" => PolicyLoss::ApoZero { beta },
        "apo-down" => PolicyLoss::ApoDown { beta },
        "discopop" => PolicyLoss::DiscoPop { beta, tau: 0.05 },
        "aot" => PolicyLoss::AotUnpaired { beta, label_smoothing: eps(0.0) },
        "aot-paired" => PolicyLoss::Aot { beta, label_smoothing: eps(0.0) },
        "sft" => PolicyLoss::Sft,
        "simpo" => PolicyLoss::Simpo { beta, gamma_beta_ratio: 0.25, label_smoothing: eps(0.0) },
        "orpo" => PolicyLoss::Orpo { lambda: beta },
        "slic" => PolicyLoss::Slic { delta: 1.0, lambda: alpha(0.1) },
        "rso-hinge" => PolicyLoss::RsoHinge { gamma: beta },
        "tdpo" => PolicyLoss::Tdpo { beta, alpha: alpha(0.5), tdpo2: true },
        "tdpo1" => PolicyLoss::Tdpo { beta, alpha: 1.0, tdpo2: false },
        "modpo" => {
            let weights = s.weights.clone().unwrap_or_else(|| vec![0.5, 0.5]);
            check_modpo_weights(&weights)?;
            PolicyLoss::Modpo { beta, weights }
        }
        "irpo" => PolicyLoss::Irpo { beta, alpha: alpha(PolicyLoss::IRPO_ALPHA) },
        "vpo" => PolicyLoss::Vpo { beta, alpha: alpha(PolicyLoss::VPO_ALPHA), optimistic: false },
        "xpo" => PolicyLoss::Xpo { beta, alpha: alpha(PolicyLoss::XPO_ALPHA) },
        "gpo" => PolicyLoss::Gpo { beta },
        "kto" => PolicyLoss::Kto { beta, desirable_weight: PolicyLoss::KTO_WEIGHTS.0, undesirable_weight: PolicyLoss::KTO_WEIGHTS.1 },
        "fdpo-forward-kl" => PolicyLoss::FDpo { beta, divergence: FDivergence::ForwardKl, alpha: FDivergence::DEFAULT_ALPHA },
        "fdpo-js" => PolicyLoss::FDpo { beta, divergence: FDivergence::JsDivergence, alpha: FDivergence::DEFAULT_ALPHA },
        "fdpo-alpha" => PolicyLoss::FDpo { beta, divergence: FDivergence::AlphaDivergence, alpha: alpha(FDivergence::DEFAULT_ALPHA) },
        other => unreachable!("every LOSS_NAMES entry is built: {other}"),
    })
}

/// MODPO divides by the preference objective's weight, so it must be positive; the others must
/// be non-negative (weights on the simplex, as the paper sweeps them, or any positive scale).
pub fn check_modpo_weights(w: &[f64]) -> Result<()> {
    if w.len() < 2 || w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || w[0] <= 0.0 {
        return Err(config_error("weights", format!("MODPO takes one weight per objective, the preference objective's first and positive, the others non-negative; got {w:?}")));
    }
    Ok(())
}

impl PolicyLoss {
    /// This loss's entry in [`LOSS_NAMES`]. The match is exhaustive, so a new variant needs a
    /// name to compile. Optimistic VPO has none (it stays `--online vpo`, see the table); f-DPO
    /// with the reverse KL is DPO.
    pub fn name(&self) -> &'static str {
        use PolicyLoss::*;
        match self {
            Sigmoid { .. } => "dpo",
            Cdpo { .. } => "cdpo",
            Robust { .. } => "robust",
            Hinge { .. } => "hinge",
            Ipo { .. } => "ipo-normalised",
            IpoSummed { .. } => "ipo",
            ExoPair { .. } => "exo-pair",
            NcaPair { .. } => "nca-pair",
            BcoPair { .. } => "bco-pair",
            SppoHard { .. } => "sppo-hard",
            Aot { .. } => "aot-paired",
            AotUnpaired { .. } => "aot",
            ApoZero { .. } => "apo-zero",
            ApoDown { .. } => "apo-down",
            DiscoPop { .. } => "discopop",
            SigmoidNorm { .. } => "sigmoid-norm",
            Sft => "sft",
            Simpo { .. } => "simpo",
            Orpo { .. } => "orpo",
            Slic { .. } => "slic",
            RsoHinge { .. } => "rso-hinge",
            Tdpo { tdpo2: true, .. } => "tdpo",
            Tdpo { tdpo2: false, .. } => "tdpo1",
            Modpo { .. } => "modpo",
            Irpo { .. } => "irpo",
            Vpo { .. } => "vpo",
            Xpo { .. } => "xpo",
            Gpo { .. } => "gpo",
            Kto { .. } => "kto",
            FDpo { divergence: FDivergence::ReverseKl, .. } => "dpo",
            FDpo { divergence: FDivergence::ForwardKl, .. } => "fdpo-forward-kl",
            FDpo { divergence: FDivergence::JsDivergence, .. } => "fdpo-js",
            FDpo { divergence: FDivergence::AlphaDivergence, .. } => "fdpo-alpha",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant's place; the match is exhaustive, so a new variant cannot compile without one.
    fn variant(l: &PolicyLoss) -> usize {
        use PolicyLoss::*;
        match l {
            Sigmoid { .. } => 0,
            Cdpo { .. } => 1,
            Robust { .. } => 2,
            Hinge { .. } => 3,
            Ipo { .. } => 4,
            IpoSummed { .. } => 5,
            ExoPair { .. } => 6,
            NcaPair { .. } => 7,
            BcoPair { .. } => 8,
            SppoHard { .. } => 9,
            Aot { .. } => 10,
            AotUnpaired { .. } => 11,
            ApoZero { .. } => 12,
            ApoDown { .. } => 13,
            DiscoPop { .. } => 14,
            SigmoidNorm { .. } => 15,
            Sft => 16,
            Simpo { .. } => 17,
            Orpo { .. } => 18,
            Slic { .. } => 19,
            RsoHinge { .. } => 20,
            Tdpo { .. } => 21,
            Modpo { .. } => 22,
            Irpo { .. } => 23,
            Vpo { .. } => 24,
            Xpo { .. } => 25,
            Gpo { .. } => 26,
            FDpo { .. } => 27,
            Kto { .. } => 28,
        }
    }

    /// Every variant of the core's loss enum has a name, so nothing is reachable only from a TOML file.
    #[test]
    fn every_core_loss_has_a_name() {
        let reached: std::collections::BTreeSet<usize> = LOSS_NAMES.iter().map(|e| variant(&build(e.name, &LossSettings::new(0.1)).unwrap())).collect();
        assert_eq!(reached, (0..29).collect(), "a variant has no name");
        for e in &LOSS_NAMES {
            assert_eq!(lookup(e.name), Some(e));
            for a in e.aliases {
                assert_eq!(lookup(a).map(|x| x.name), Some(e.name));
            }
            assert_eq!(build(e.name, &LossSettings::new(0.3)).unwrap().name(), e.name, "round trip of {}", e.name);
        }
        let names: std::collections::HashSet<&str> = LOSS_NAMES.iter().flat_map(|e| std::iter::once(e.name).chain(e.aliases.iter().copied())).collect();
        assert_eq!(names.len(), LOSS_NAMES.len() + 2, "names and aliases are unique");
    }

    #[test]
    fn settings_reach_the_loss_and_bad_ones_are_refused() {
        let mut s = LossSettings::new(0.2);
        s.alpha = Some(0.7);
        assert_eq!(build("irpo", &s).unwrap(), PolicyLoss::Irpo { beta: 0.2, alpha: 0.7 });
        assert_eq!(build("slic", &s).unwrap(), PolicyLoss::Slic { delta: 1.0, lambda: 0.7 });
        assert_eq!(build("orpo", &s).unwrap(), PolicyLoss::Orpo { lambda: 0.2 });
        assert_eq!(build("cdpo", &LossSettings::new(0.2)).unwrap(), PolicyLoss::Cdpo { beta: 0.2, label_smoothing: 0.1 });
        s.weights = Some(vec![0.25, 0.75]);
        assert_eq!(build("modpo", &s).unwrap(), PolicyLoss::Modpo { beta: 0.2, weights: vec![0.25, 0.75] });
        assert!(build("dpo", &s).unwrap_err().to_string().contains("MODPO"));
        s.weights = Some(vec![0.0, 1.0]);
        assert!(build("modpo", &s).unwrap_err().to_string().contains("positive"));
        assert!(build("nope", &LossSettings::new(0.1)).unwrap_err().to_string().contains("dpo, cdpo"));
        assert!(build("dpo", &LossSettings::new(-1.0)).is_err());
        let mut e = LossSettings::new(0.1);
        e.label_smoothing = Some(0.5);
        assert!(build("cdpo", &e).unwrap_err().to_string().contains("[0, 0.5)"));
    }
}
