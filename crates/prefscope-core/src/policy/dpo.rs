//! Preference-optimisation losses on policy log-probabilities: DPO and its family.
//!
//! Inputs are per-sequence log-probabilities summed over completion tokens only (the DPO paper's notation): ℓ_c, ℓ_r for the policy, ℓ^ref_c, ℓ^ref_r for the
//! reference, ρ = ℓ − ℓ^ref, h = ρ_c − ρ_r, and completion lengths. Formulas follow TRL's
//! `DPOTrainer` at HEAD unless a variant is named after the older form it keeps (cDPO = TRL v0.19's
//! smoothed `sigmoid`) or after the authors' code (SimPO, ORPO, KTO, TDPO, MODPO, SLiC, RSO).
//! RSO's statistical rejection sampling is in [`super::rso`].

use burn::tensor::{Tensor, activation::log_sigmoid};
use crate::runtime::kernels::Backend;

use crate::reward::loss::sigmoid;
use serde::{Deserialize, Serialize};

/// One batch of paired sequences; optional fields are needed by some losses only.
#[derive(Clone, Debug)]
pub struct PolicyBatch<B: Backend> {
    pub chosen_logps: Tensor<B, 1>,
    pub rejected_logps: Tensor<B, 1>,
    pub ref_chosen_logps: Tensor<B, 1>,
    pub ref_rejected_logps: Tensor<B, 1>,
    /// Completion token counts (IPO, sigmoid_norm, SimPO, ORPO, SFT use per-token averages).
    pub chosen_len: Tensor<B, 1>,
    pub rejected_len: Tensor<B, 1>,
    /// TDPO: Σ_t KL(π_ref ‖ π_θ) over the completion, per sequence.
    pub chosen_kl: Option<Tensor<B, 1>>,
    pub rejected_kl: Option<Tensor<B, 1>>,
    /// MODPO: the other objectives' margin rewards, `[n, objectives − 1]`.
    pub chosen_margins: Option<Tensor<B, 2>>,
    pub rejected_margins: Option<Tensor<B, 2>>,
    /// SLiC-HF: log π_θ(y_ref | x) of a reference (SFT target) completion.
    pub target_logps: Option<Tensor<B, 1>>,
    /// XPO: log π_θ(ỹ | x) summed over the tokens of a sample ỹ ∼ π_ref, one per pair.
    pub ref_sample_logps: Option<Tensor<B, 1>>,
    /// GPO: each response's win score s(y ≻ π_t | x) against the current policy π_t (the
    /// reference here), e.g. a GPM's mean score over K samples (§1.5 eq. 5.2), in nats.
    pub chosen_scores: Option<Tensor<B, 1>>,
    pub rejected_scores: Option<Tensor<B, 1>>,
    /// WPO: each pair's weight w_c·w_r ([`super::wpo`], detached); multiplies its loss.
    pub pair_weights: Option<Tensor<B, 1>>,
    /// KTO: the baseline z₀ ≈ KL(π_θ ‖ π_ref), one per pair, detached ([`kto_z0`] estimates it
    /// from mismatched prompt/completion pairs, as TRL does).
    pub kl_baseline: Option<Tensor<B, 1>>,
}

impl<B: Backend> PolicyBatch<B> {
    /// A batch with the log-probs and lengths every loss needs; the optional inputs are None.
    pub fn new(chosen_logps: Tensor<B, 1>, rejected_logps: Tensor<B, 1>, ref_chosen_logps: Tensor<B, 1>, ref_rejected_logps: Tensor<B, 1>, chosen_len: Tensor<B, 1>, rejected_len: Tensor<B, 1>) -> Self {
        Self {
            chosen_logps,
            rejected_logps,
            ref_chosen_logps,
            ref_rejected_logps,
            chosen_len,
            rejected_len,
            chosen_kl: None,
            rejected_kl: None,
            chosen_margins: None,
            rejected_margins: None,
            target_logps: None,
            ref_sample_logps: None,
            chosen_scores: None,
            rejected_scores: None,
            pair_weights: None,
            kl_baseline: None,
        }
    }
}

/// The loss kinds with their hyper-parameters (defaults in `default()` per kind's source).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyLoss {
    /// DPO: −log σ(βh).
    Sigmoid { beta: f64 },
    /// cDPO (TRL v0.19 `sigmoid` with label smoothing ε): −(1−ε) log σ(βh) − ε log σ(−βh).
    Cdpo { beta: f64, label_smoothing: f64 },
    /// Robust DPO: [−(1−ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε).
    Robust { beta: f64, label_smoothing: f64 },
    /// max(0, 1 − βh) (RSO's hinge-norm with β = γ).
    Hinge { beta: f64 },
    /// IPO, TRL's length-normalised form: (ρ_c/|y_c| − ρ_r/|y_r| − 1/(2β))².
    Ipo { beta: f64 },
    /// IPO on summed log-ratios: (h − 1/(2β))².
    IpoSummed { beta: f64 },
    /// EXO (pair): reverse KL between the model's and the ε-smoothed label distribution.
    ExoPair { beta: f64, epsilon: f64 },
    NcaPair { beta: f64 },
    /// BCO (pair), HEAD form without the running-mean shift.
    BcoPair { beta: f64 },
    SppoHard { beta: f64 },
    /// AOT (paired): distributional alignment of sorted policy vs reference log-ratios over the batch.
    Aot { beta: f64, label_smoothing: f64 },
    /// AOT (unpaired): sorted ρ_c against sorted ρ_r.
    AotUnpaired { beta: f64, label_smoothing: f64 },
    ApoZero { beta: f64 },
    ApoDown { beta: f64 },
    DiscoPop { beta: f64, tau: f64 },
    /// −log σ(β(ρ_c/|y_c| − ρ_r/|y_r|)).
    SigmoidNorm { beta: f64 },
    /// Mean token NLL of the chosen completion.
    Sft,
    /// SimPO (reference-free): −(1−ε) log σ(β(ℓ̄_c − ℓ̄_r) − γ) − ε log σ(−(…)), γ = ratio·β.
    Simpo { beta: f64, gamma_beta_ratio: f64, label_smoothing: f64 },
    /// ORPO: NLL(chosen) − λ log σ(log-odds(ℓ̄_c) − log-odds(ℓ̄_r)).
    Orpo { lambda: f64 },
    /// SLiC-HF: max(0, δ − ℓ_c + ℓ_r) − λ log π(y_ref).
    Slic { delta: f64, lambda: f64 },
    /// RSO eq. 9: max(0, 1 − γ(ℓ_c − ℓ_r)) on raw log-probabilities.
    RsoHinge { gamma: f64 },
    /// TDPO: logits = h + α'(kl_c − kl_r), α' = 1 (TDPO1) or α with kl_c detached (TDPO2).
    Tdpo { beta: f64, alpha: f64, tdpo2: bool },
    /// MODPO: r̂ = (βρ − w_{1:}·m)/w₀, loss −log σ(r̂_c − r̂_r).
    Modpo { beta: f64, weights: Vec<f64> },
    /// IRPO (Iterative Reasoning PO, Pang et al. 2024, arXiv 2404.19733; TRL v0.19 `rpo_alpha`,
    /// TRL HEAD `loss_type=["sigmoid","sft"]`, `loss_weights=[1, α]`): −log σ(βh) + α·NLL(y_c),
    /// NLL = −ℓ_c/|y_c|, the chosen completion's mean token NLL (default α = [`Self::IRPO_ALPHA`]).
    ///
    /// The NLL is averaged per sequence, as the paper's eq. 1 normalises by the chosen length;
    /// TRL takes one token-mean over the whole batch's chosen tokens (Σℓ_c/Σ|y_c|), which is the
    /// same whenever the batch's chosen lengths are equal. Not the listwise "In-context Ranking
    /// PO" (arXiv 2504.15477, also abbreviated IRPO, "positional aggregation"): TRL
    /// defines IRPO through `rpo_alpha` only, and we have no formula for that one.
    Irpo { beta: f64, alpha: f64 },
    /// VPO (Cen et al. 2024, arXiv 2405.19320) — **reading unverified** (from the paper's abstract
    /// only): −log σ(βh) + sign·α·β·ρ_c, sign = +1 optimistic (online), −1 pessimistic
    /// (offline); no default α in the reference ([`Self::VPO_ALPHA`] = 1 is ours).
    ///
    /// Derivation: VPO minimises ℓ_MLE(r) ∓ α·J*(r), J*(r) = max_π E_π[r] − β KL(π‖π_ref). With the
    /// implicit reward r = β log(π_θ/π_ref) + c(x), J*(r) = E_x c(x); calibrating E_{y∼π_cal} r = 0
    /// (the BT shift ambiguity) gives J* = −β E_{y∼π_cal}[ρ(y)], hence ℓ_DPO ± αβ E_cal[ρ]. We take
    /// π_cal = the chosen responses (available offline), so pessimism adds −αβρ_c (an SFT-like pull
    /// up on the data) and optimism +αβρ_c. With π_cal = π_ref instead, optimism is XPO's term
    /// ([`Self::Xpo`] with α_XPO = αβ).
    Vpo { beta: f64, alpha: f64, optimistic: bool },
    /// XPO (Xie et al. 2024; TRL `trl/experimental/xpo/xpo_trainer.py`): −log σ(βh) + α·log π_θ(ỹ),
    /// ỹ ∼ π_ref (`ref_sample_logps`, summed over tokens), default α = [`Self::XPO_ALPHA`], β 0.1.
    /// TRL draws the pair itself online from (y ∼ π_θ, ỹ) and ranks it by a reward model; here the
    /// pair is whatever the batch holds. TRL's list-valued α (a per-epoch schedule) is the caller's.
    Xpo { beta: f64, alpha: f64 },
    /// GPO (GPM paper §5 eq. 5.3), SPPO-style square loss on both responses of
    /// the pair, each a sample of π_t (= the reference): ½Σ_{y∈{c,r}} (ρ(y) − s(y ≻ π_t)/β)² with
    /// log Z = 0 — pass the scores with β log Z subtracted where it is known (the bandit does), and
    /// the minimiser is the multiplicative-weights step π ∝ π_t exp(s/β). With log Z dropped, as
    /// with an LM, targets are off by log Z = log E_{π_t} exp(s/β) ≥ 0 and the fit is biased.
    /// The GPM run script uses β = 0.001. **[UNVERIFIED]** the authors' `sppo_score` trainer.
    Gpo { beta: f64 },
    /// f-DPO: −log σ(β(g(ρ_c) − g(ρ_r))), g the f-divergence's score ([`super::fdpo`]); `alpha`
    /// is TRL's `f_alpha_divergence_coef`, read by the α-divergence only.
    FDpo { beta: f64, divergence: super::fdpo::FDivergence, alpha: f64 },
    /// KTO on a paired batch, unpaired as TRL's KTO trainer unpairs a preference set: the chosen
    /// completion is desirable, the rejected one undesirable, and the pair's loss is the mean of
    /// the two, ½[w_d(1 − σ(β(ρ_c − z₀))) + w_u(1 − σ(β(z₀ − ρ_r)))] ([`kto_loss`] on the two).
    Kto { beta: f64, desirable_weight: f64, undesirable_weight: f64 },
}

/// Loss and the figures TRL logs (implicit rewards β·ρ, margins, accuracy, log-probs).
#[derive(Clone, Debug)]
pub struct PolicyLossOutput<B: Backend> {
    /// Mean over the batch.
    pub loss: Tensor<B, 1>,
    /// The loss of each pair (for weighted objectives, e.g. expected losses over a known distribution).
    pub per_pair: Tensor<B, 1>,
    pub chosen_rewards: Tensor<B, 1>,
    pub rejected_rewards: Tensor<B, 1>,
    pub margins: Tensor<B, 1>,
    pub accuracy: Tensor<B, 1>,
}

impl PolicyLoss {
    /// IRPO's NLL weight ("paper recommends rpo_alpha=1.0", TRL v0.19).
    pub const IRPO_ALPHA: f64 = 1.0;
    /// VPO's regulariser weight: not in the reference; 1 keeps the term at β·ρ.
    pub const VPO_ALPHA: f64 = 1.0;
    /// XPO's exploration weight (TRL `XPOConfig.alpha`).
    pub const XPO_ALPHA: f64 = 1e-5;
    /// KTO's desirable and undesirable weights (TRL `KTOConfig` defaults).
    pub const KTO_WEIGHTS: (f64, f64) = (1.0, 1.0);

    /// β for the implicit reward β log π/π_ref, logged in training and scored by `eval` (1 where
    /// the loss has none).
    pub fn reward_beta(&self) -> f64 {
        match self {
            Self::Sigmoid { beta }
            | Self::Cdpo { beta, .. }
            | Self::Robust { beta, .. }
            | Self::Hinge { beta }
            | Self::Ipo { beta }
            | Self::IpoSummed { beta }
            | Self::ExoPair { beta, .. }
            | Self::NcaPair { beta }
            | Self::BcoPair { beta }
            | Self::SppoHard { beta }
            | Self::Aot { beta, .. }
            | Self::AotUnpaired { beta, .. }
            | Self::ApoZero { beta }
            | Self::ApoDown { beta }
            | Self::DiscoPop { beta, .. }
            | Self::SigmoidNorm { beta }
            | Self::Simpo { beta, .. }
            | Self::Tdpo { beta, .. }
            | Self::Modpo { beta, .. }
            | Self::FDpo { beta, .. }
            | Self::Irpo { beta, .. }
            | Self::Vpo { beta, .. }
            | Self::Xpo { beta, .. }
            | Self::Kto { beta, .. }
            | Self::Gpo { beta } => *beta,
            Self::Sft | Self::Orpo { .. } | Self::Slic { .. } | Self::RsoHinge { .. } => 1.0,
        }
    }

    /// The optional input of [`PolicyBatch`] this loss needs and `b` lacks, as a phrase for an
    /// error message; `None` when [`Self::compute`] can run. Callers check before computing, so a
    /// pipeline that cannot supply an input refuses the loss instead of panicking.
    pub fn missing_input<B: Backend>(&self, b: &PolicyBatch<B>) -> Option<&'static str> {
        match self {
            Self::Slic { .. } if b.target_logps.is_none() => Some("SLiC-HF needs target_logps (log π of the SFT target completion)"),
            Self::Tdpo { .. } if b.chosen_kl.is_none() || b.rejected_kl.is_none() => Some("TDPO needs chosen_kl and rejected_kl (the per-token KL to the reference, summed over each completion)"),
            Self::Modpo { .. } if b.chosen_margins.is_none() || b.rejected_margins.is_none() => Some("MODPO needs chosen_margins and rejected_margins (the other objectives' margin rewards)"),
            Self::Xpo { .. } if b.ref_sample_logps.is_none() => Some("XPO needs ref_sample_logps (log π_θ of a sample drawn from π_ref)"),
            Self::Gpo { .. } if b.chosen_scores.is_none() || b.rejected_scores.is_none() => Some("GPO needs chosen_scores and rejected_scores (win scores against the current policy)"),
            Self::Kto { .. } if b.kl_baseline.is_none() => Some("KTO needs kl_baseline (its z₀, an estimate of KL(π_θ ‖ π_ref) from mismatched prompt/completion pairs)"),
            _ => None,
        }
    }

    pub fn compute<B: Backend>(&self, b: &PolicyBatch<B>) -> PolicyLossOutput<B> {
        let rho_c = b.chosen_logps.clone() - b.ref_chosen_logps.clone();
        let rho_r = b.rejected_logps.clone() - b.ref_rejected_logps.clone();
        let h = rho_c.clone() - rho_r.clone();
        let len_c = b.chosen_len.clone().clamp_min(1.0);
        let len_r = b.rejected_len.clone().clamp_min(1.0);
        let nls = |x: Tensor<B, 1>| log_sigmoid(x).neg();
        let smoothed = |z: Tensor<B, 1>, eps: f64| nls(z.clone()).mul_scalar(1.0 - eps) + nls(z.neg()).mul_scalar(eps);
        let per_seq: Tensor<B, 1> = match self {
            Self::Sigmoid { beta } => nls(h.clone().mul_scalar(*beta)),
            Self::Cdpo { beta, label_smoothing } => smoothed(h.clone().mul_scalar(*beta), *label_smoothing),
            Self::Robust { beta, label_smoothing: e } => {
                let z = h.clone().mul_scalar(*beta);
                (nls(z.clone()).mul_scalar(1.0 - e) - nls(z.neg()).mul_scalar(*e)).div_scalar(1.0 - 2.0 * e)
            }
            Self::Hinge { beta } => h.clone().mul_scalar(-*beta).add_scalar(1.0).clamp_min(0.0),
            Self::Ipo { beta } => (rho_c.clone() / len_c.clone() - rho_r.clone() / len_r.clone()).sub_scalar(1.0 / (2.0 * beta)).powi_scalar(2),
            Self::IpoSummed { beta } => h.clone().sub_scalar(1.0 / (2.0 * beta)).powi_scalar(2),
            Self::ExoPair { beta, epsilon } => {
                let z = h.clone().mul_scalar(*beta);
                sigmoid(z.clone()) * (log_sigmoid(z.clone()).sub_scalar((1.0 - epsilon).ln()))
                    + sigmoid(z.clone().neg()) * (log_sigmoid(z.neg()).sub_scalar(epsilon.ln()))
            }
            Self::NcaPair { beta } => {
                nls(rho_c.clone().mul_scalar(*beta)) + nls(rho_c.clone().mul_scalar(-*beta)).mul_scalar(0.5) + nls(rho_r.clone().mul_scalar(-*beta)).mul_scalar(0.5)
            }
            Self::BcoPair { beta } => nls(rho_c.clone().mul_scalar(*beta)) + nls(rho_r.clone().mul_scalar(-*beta)),
            Self::SppoHard { beta } => {
                let half = 1.0 / (2.0 * beta);
                rho_c.clone().sub_scalar(half).powi_scalar(2) + rho_r.clone().add_scalar(half).powi_scalar(2)
            }
            Self::Aot { beta, label_smoothing } => {
                let delta = sort(b.chosen_logps.clone() - b.rejected_logps.clone()) - sort(b.ref_chosen_logps.clone() - b.ref_rejected_logps.clone());
                smoothed(delta.mul_scalar(*beta), *label_smoothing)
            }
            Self::AotUnpaired { beta, label_smoothing } => {
                let delta = sort(rho_c.clone()) - sort(rho_r.clone());
                smoothed(delta.mul_scalar(*beta), *label_smoothing)
            }
            Self::ApoZero { beta } => sigmoid(rho_c.clone().mul_scalar(*beta)).neg().add_scalar(1.0) + sigmoid(rho_r.clone().mul_scalar(*beta)),
            Self::ApoDown { beta } => sigmoid(rho_c.clone().mul_scalar(*beta)) + sigmoid(h.clone().mul_scalar(*beta)).neg().add_scalar(1.0),
            Self::DiscoPop { beta, tau } => {
                let z = h.clone().mul_scalar(*beta);
                let m = sigmoid(z.clone().div_scalar(*tau));
                nls(z.clone()) * m.clone().neg().add_scalar(1.0) + z.neg().exp() * m
            }
            Self::SigmoidNorm { beta } => nls((rho_c.clone() / len_c.clone() - rho_r.clone() / len_r.clone()).mul_scalar(*beta)),
            Self::Sft => (b.chosen_logps.clone() / len_c.clone()).neg(),
            Self::Simpo { beta, gamma_beta_ratio, label_smoothing } => {
                let avg = b.chosen_logps.clone() / len_c.clone() - b.rejected_logps.clone() / len_r.clone();
                smoothed(avg.sub_scalar(*gamma_beta_ratio).mul_scalar(*beta), *label_smoothing)
            }
            Self::Orpo { lambda } => {
                let a = b.chosen_logps.clone() / len_c.clone();
                let r = b.rejected_logps.clone() / len_r.clone();
                let log_odds = (a.clone() - r.clone()) - (log1mexp(a.clone()) - log1mexp(r));
                a.neg() + nls(log_odds).mul_scalar(*lambda)
            }
            Self::Slic { delta, lambda } => {
                let rank = (b.rejected_logps.clone() - b.chosen_logps.clone()).add_scalar(*delta).clamp_min(0.0);
                let target = b.target_logps.clone().expect("SLiC-HF needs target_logps (log π of the SFT target)");
                rank - target.mul_scalar(*lambda)
            }
            Self::RsoHinge { gamma } => (b.chosen_logps.clone() - b.rejected_logps.clone()).mul_scalar(-*gamma).add_scalar(1.0).clamp_min(0.0),
            Self::Tdpo { beta, alpha, tdpo2 } => {
                let kl_c = b.chosen_kl.clone().expect("TDPO needs chosen_kl");
                let kl_r = b.rejected_kl.clone().expect("TDPO needs rejected_kl");
                let logits = if *tdpo2 { h.clone() + (kl_c.detach() - kl_r).mul_scalar(*alpha) } else { h.clone() + (kl_c - kl_r) };
                nls(logits.mul_scalar(*beta))
            }
            Self::Modpo { beta, weights } => {
                let w0 = weights[0];
                let w_rest: Vec<f32> = weights[1..].iter().map(|&w| w as f32).collect();
                let device = h.device();
                let k = w_rest.len();
                let w = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(w_rest, [k, 1]), &device);
                let n = h.dims()[0];
                let mc = b.chosen_margins.clone().expect("MODPO needs chosen_margins").matmul(w.clone()).reshape([n]);
                let mr = b.rejected_margins.clone().expect("MODPO needs rejected_margins").matmul(w).reshape([n]);
                let rc = (rho_c.clone().mul_scalar(*beta) - mc).div_scalar(w0);
                let rr = (rho_r.clone().mul_scalar(*beta) - mr).div_scalar(w0);
                nls(rc - rr)
            }
            Self::Irpo { beta, alpha } => nls(h.clone().mul_scalar(*beta)) - (b.chosen_logps.clone() / len_c.clone()).mul_scalar(*alpha),
            Self::Vpo { beta, alpha, optimistic } => {
                let sign = if *optimistic { 1.0 } else { -1.0 };
                nls(h.clone().mul_scalar(*beta)) + rho_c.clone().mul_scalar(sign * alpha * beta)
            }
            Self::Xpo { beta, alpha } => {
                let sample = b.ref_sample_logps.clone().expect("XPO needs ref_sample_logps (log π_θ of a sample drawn from π_ref)");
                nls(h.clone().mul_scalar(*beta)) + sample.mul_scalar(*alpha)
            }
            Self::FDpo { beta, divergence, alpha } => {
                let score = |rho: &Tensor<B, 1>| super::fdpo::score(rho.clone(), *divergence, *alpha);
                nls((score(&rho_c) - score(&rho_r)).mul_scalar(*beta))
            }
            Self::Gpo { beta } => {
                let sc = b.chosen_scores.clone().expect("GPO needs chosen_scores (win scores s(y ≻ π_t), e.g. from a GPM)");
                let sr = b.rejected_scores.clone().expect("GPO needs rejected_scores (win scores s(y ≻ π_t), e.g. from a GPM)");
                ((rho_c.clone() - sc.div_scalar(*beta)).powi_scalar(2) + (rho_r.clone() - sr.div_scalar(*beta)).powi_scalar(2)).mul_scalar(0.5)
            }
            Self::Kto { beta, desirable_weight, undesirable_weight } => {
                let z0 = b.kl_baseline.clone().expect("KTO needs kl_baseline").detach();
                let des = sigmoid((rho_c.clone() - z0.clone()).mul_scalar(*beta)).neg().add_scalar(1.0).mul_scalar(*desirable_weight);
                let und = sigmoid((z0 - rho_r.clone()).mul_scalar(*beta)).neg().add_scalar(1.0).mul_scalar(*undesirable_weight);
                (des + und).mul_scalar(0.5)
            }
        };
        let per_seq = match &b.pair_weights {
            Some(w) => per_seq * w.clone(),
            None => per_seq,
        };
        let rb = self.reward_beta();
        let chosen_rewards = rho_c.mul_scalar(rb).detach();
        let rejected_rewards = rho_r.mul_scalar(rb).detach();
        let margins = chosen_rewards.clone() - rejected_rewards.clone();
        let accuracy = margins.clone().greater_elem(0.0).float().mean();
        PolicyLossOutput { loss: per_seq.clone().mean(), per_pair: per_seq, chosen_rewards, rejected_rewards, margins, accuracy }
    }
}

/// KTO (unpaired): each completion is labelled desirable or not; with ρ = ℓ − ℓ^ref,
/// desirable: w_d (1 − σ(β(ρ − z₀))), undesirable: w_u (1 − σ(β(z₀ − ρ))), averaged.
///
/// z₀ is TRL's KL baseline: clamp_min(mean over the batch of ρ on *mismatched* prompt/completion
/// pairs, 0), detached; pass it in (`kto_z0` computes it from those log-ratios).
pub fn kto_loss<B: Backend>(rho: Tensor<B, 1>, desirable: Tensor<B, 1>, z0: f64, beta: f64, desirable_weight: f64, undesirable_weight: f64) -> Tensor<B, 1> {
    let des = sigmoid(rho.clone().sub_scalar(z0).mul_scalar(beta)).neg().add_scalar(1.0).mul_scalar(desirable_weight);
    let und = sigmoid(rho.neg().add_scalar(z0).mul_scalar(beta)).neg().add_scalar(1.0).mul_scalar(undesirable_weight);
    (des * desirable.clone() + und * desirable.neg().add_scalar(1.0)).mean()
}

/// KTO's z₀ from the log-ratios of mismatched (shifted) prompt/completion pairs.
pub fn kto_z0<B: Backend>(mismatched_rho: Tensor<B, 1>) -> f64 {
    let m: f64 = mismatched_rho.mean().into_scalar().elem();
    m.max(0.0)
}

use burn::tensor::ElementConversion;

/// Ascending sort along the batch (AOT compares the two distributions' quantiles).
fn sort<B: Backend>(x: Tensor<B, 1>) -> Tensor<B, 1> {
    x.sort(0)
}

/// log(1 − eˣ) for x < 0, stable on both sides of −ln 2 (Mächler 2012).
fn log1mexp<B: Backend>(x: Tensor<B, 1>) -> Tensor<B, 1> {
    let near = x.clone().exp().neg().log1p(); // accurate for x < −ln 2
    // −expm1(x) = −2t/(1 − t) with t = tanh(x/2): no cancellation as x → 0⁻ (burn has no expm1).
    let t = x.clone().div_scalar(2.0).tanh();
    let far = (t.clone().mul_scalar(-2.0) / t.neg().add_scalar(1.0)).log(); // accurate for −ln 2 ≤ x < 0
    let use_far = x.greater_elem(-std::f64::consts::LN_2);
    near.mask_where(use_far, far)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::TensorData;

    type B = NdArray<f64>;

    fn t(v: f64) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(vec![v], [1]), &Default::default())
    }

    /// The worked examples' common inputs: ℓ_c = −10, ℓ_r = −12, ℓ^ref = −11, −11.5, lengths 5, 4.
    fn batch() -> PolicyBatch<B> {
        PolicyBatch {
            chosen_logps: t(-10.0),
            rejected_logps: t(-12.0),
            ref_chosen_logps: t(-11.0),
            ref_rejected_logps: t(-11.5),
            chosen_len: t(5.0),
            rejected_len: t(4.0),
            chosen_kl: Some(t(0.3)),
            rejected_kl: Some(t(0.8)),
            chosen_margins: Some(Tensor::from_data(TensorData::new(vec![0.5], [1, 1]), &Default::default())),
            rejected_margins: Some(Tensor::from_data(TensorData::new(vec![1.0], [1, 1]), &Default::default())),
            target_logps: Some(t(-9.0)),
            ref_sample_logps: Some(t(-8.0)),
            chosen_scores: Some(t(0.2)),
            rejected_scores: Some(t(-0.1)),
            pair_weights: None,
            kl_baseline: Some(t(0.2)),
        }
    }

    fn loss(kind: PolicyLoss, b: &PolicyBatch<B>) -> f64 {
        kind.compute(b).loss.into_scalar()
    }

    #[test]
    fn worked_values_of_algorithms_md() {
        let b = batch();
        let beta = 0.1;
        let cases: Vec<(PolicyLoss, f64)> = vec![
            (PolicyLoss::Sigmoid { beta }, 0.620957),
            (PolicyLoss::Cdpo { beta, label_smoothing: 0.1 }, 0.635957),
            (PolicyLoss::Robust { beta, label_smoothing: 0.1 }, 0.602207),
            (PolicyLoss::Hinge { beta }, 0.85),
            (PolicyLoss::Ipo { beta }, 21.855625),
            (PolicyLoss::IpoSummed { beta }, 12.25),
            (PolicyLoss::NcaPair { beta }, 1.35082),
            (PolicyLoss::BcoPair { beta }, 1.31286),
            (PolicyLoss::SppoHard { beta }, 36.25),
            (PolicyLoss::ApoZero { beta }, 0.962523),
            (PolicyLoss::ApoDown { beta }, 0.987549),
            (PolicyLoss::DiscoPop { beta, tau: 0.05 }, 0.849338),
            (PolicyLoss::ExoPair { beta, epsilon: 1e-3 }, 2.50552),
            (PolicyLoss::Tdpo { beta, alpha: 0.5, tdpo2: true }, 0.632599),
            (PolicyLoss::Tdpo { beta, alpha: 0.5, tdpo2: false }, 0.644397),
            (PolicyLoss::Modpo { beta, weights: vec![0.6, 0.4] }, 0.443426),
            (PolicyLoss::Slic { delta: 3.0, lambda: 0.5 }, 5.5),
            (PolicyLoss::RsoHinge { gamma: 0.05 }, 0.9),
            (PolicyLoss::Hinge { beta: 0.05 }, 0.925),
        ];
        for (kind, expected) in cases {
            let got = loss(kind.clone(), &b);
            assert!((got - expected).abs() < 1e-5, "{kind:?}: {got} vs {expected}");
        }
        // SimPO and ORPO use per-token averages: ℓ̄_c = −2, ℓ̄_r = −3 (lengths 1 here).
        let mut avg = batch();
        avg.chosen_logps = t(-2.0);
        avg.rejected_logps = t(-3.0);
        avg.chosen_len = t(1.0);
        avg.rejected_len = t(1.0);
        let simpo = loss(PolicyLoss::Simpo { beta: 2.0, gamma_beta_ratio: 0.25, label_smoothing: 0.0 }, &avg);
        assert!((simpo - 0.201413).abs() < 1e-5, "SimPO {simpo}");
        // ORPO total with NLL = 2 (= −ℓ̄_c) and λ = 0.1: 2 + 0.1·0.288751.
        let orpo = loss(PolicyLoss::Orpo { lambda: 0.1 }, &avg);
        assert!((orpo - 2.02888).abs() < 1e-5, "ORPO {orpo}");
        let log_odds: f64 = ((t(-2.0) - t(-3.0)) - (log1mexp(t(-2.0)) - log1mexp(t(-3.0)))).into_scalar();
        assert!((log_odds - 1.09434).abs() < 1e-5);
    }

    #[test]
    fn kto_worked_values() {
        // §8: desirable ρ = 1.0, z0 = 0.2 → 0.480011; undesirable ρ = −0.5, z0 = 0.2 → 0.482507.
        let d: f64 = kto_loss(t(1.0), t(1.0), 0.2, 0.1, 1.0, 1.0).into_scalar();
        let u: f64 = kto_loss(t(-0.5), t(0.0), 0.2, 0.1, 1.0, 1.0).into_scalar();
        assert!((d - 0.480011).abs() < 1e-5, "{d}");
        assert!((u - 0.482507).abs() < 1e-5, "{u}");
        let s = |v: Vec<f64>| Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [v.len()]), &Default::default());
        let both: f64 = kto_loss(s(vec![1.0, -0.5]), s(vec![1.0, 0.0]), 0.2, 0.1, 1.0, 1.0).into_scalar();
        assert!((both - (0.480011 + 0.482507) / 2.0).abs() < 1e-5);
        // The paired form on the worked batch (ρ_c = 1, ρ_r = −0.5, z₀ = 0.2) is the mean of the two.
        let paired = loss(PolicyLoss::Kto { beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.0 }, &batch());
        assert!((paired - (0.480011 + 0.482507) / 2.0).abs() < 1e-5, "{paired}");
        let mut without = batch();
        without.kl_baseline = None;
        assert!(PolicyLoss::Kto { beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.0 }.missing_input(&without).unwrap().contains("kl_baseline"));
        assert_eq!(kto_z0(s(vec![-0.3, 0.1])), 0.0);
        assert!((kto_z0(s(vec![0.5, 0.1])) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn policy_equal_to_reference_gives_ln2() {
        // TRL's invariant reference: step-1 DPO loss is ln 2 when π = π_ref.
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/trl_invariant_dpo_reference.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = v.pointer("/steps/0/loss").and_then(|x| x.as_f64()).expect("step-1 loss in the reference");
        let mut b = batch();
        b.ref_chosen_logps = b.chosen_logps.clone();
        b.ref_rejected_logps = b.rejected_logps.clone();
        let got = loss(PolicyLoss::Sigmoid { beta: 0.1 }, &b);
        assert!((got - std::f64::consts::LN_2).abs() < 1e-12);
        assert!((got - first).abs() < 1e-6, "TRL reference step 1: {first}");
    }

    #[test]
    fn log1mexp_is_accurate_on_both_branches() {
        // Both sides of the branch point −ln 2 ≈ −0.6931.
        for x in [-1e-8, -0.1, -0.6930, -0.6933, -1.0, -5.0, -40.0] {
            let got: f64 = log1mexp(t(x)).into_scalar();
            let exact = (-f64::exp_m1(x)).ln();
            assert!((got - exact).abs() <= 1e-9 * exact.abs().max(1.0), "{x}: {got} vs {exact}");
        }
    }

    /// Every loss's autodiff gradient w.r.t. the policy log-probs matches central differences (f64).
    #[test]
    fn gradients_match_finite_differences() {
        type A = Autodiff<B>;
        let kinds = vec![
            PolicyLoss::Sigmoid { beta: 0.1 },
            PolicyLoss::Cdpo { beta: 0.1, label_smoothing: 0.1 },
            PolicyLoss::Robust { beta: 0.1, label_smoothing: 0.1 },
            PolicyLoss::Hinge { beta: 0.1 },
            PolicyLoss::Ipo { beta: 0.1 },
            PolicyLoss::IpoSummed { beta: 0.1 },
            PolicyLoss::ExoPair { beta: 0.1, epsilon: 1e-3 },
            PolicyLoss::NcaPair { beta: 0.1 },
            PolicyLoss::BcoPair { beta: 0.1 },
            PolicyLoss::SppoHard { beta: 0.1 },
            PolicyLoss::ApoZero { beta: 0.1 },
            PolicyLoss::ApoDown { beta: 0.1 },
            PolicyLoss::DiscoPop { beta: 0.1, tau: 0.05 },
            PolicyLoss::SigmoidNorm { beta: 0.1 },
            PolicyLoss::Sft,
            PolicyLoss::Simpo { beta: 2.0, gamma_beta_ratio: 0.25, label_smoothing: 0.1 },
            PolicyLoss::Orpo { lambda: 0.1 },
            PolicyLoss::Slic { delta: 3.0, lambda: 0.5 },
            PolicyLoss::RsoHinge { gamma: 0.05 },
            PolicyLoss::Tdpo { beta: 0.1, alpha: 0.5, tdpo2: false },
            PolicyLoss::Modpo { beta: 0.1, weights: vec![0.6, 0.4] },
            PolicyLoss::Irpo { beta: 0.1, alpha: 1.0 },
            PolicyLoss::Vpo { beta: 0.1, alpha: 1.0, optimistic: true },
            PolicyLoss::Vpo { beta: 0.1, alpha: 1.0, optimistic: false },
            PolicyLoss::Xpo { beta: 0.1, alpha: 0.5 },
            PolicyLoss::Gpo { beta: 0.1 },
            PolicyLoss::Kto { beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.33 },
        ];
        let d = Default::default();
        let mk = |lc: f64, lr: f64| -> PolicyBatch<A> {
            let s = |v: f64| Tensor::<A, 1>::from_data(TensorData::new(vec![v], [1]), &d);
            PolicyBatch {
                chosen_logps: s(lc),
                rejected_logps: s(lr),
                ref_chosen_logps: s(-11.0),
                ref_rejected_logps: s(-11.5),
                chosen_len: s(5.0),
                rejected_len: s(4.0),
                chosen_kl: Some(s(0.3)),
                rejected_kl: Some(s(0.8)),
                chosen_margins: Some(Tensor::from_data(TensorData::new(vec![0.5], [1, 1]), &d)),
                rejected_margins: Some(Tensor::from_data(TensorData::new(vec![1.0], [1, 1]), &d)),
                target_logps: Some(s(-9.0)),
                ref_sample_logps: Some(s(-8.0)),
                chosen_scores: Some(s(0.2)),
                rejected_scores: Some(s(-0.1)),
                pair_weights: None,
                kl_baseline: Some(s(0.2)),
            }
        };
        for kind in kinds {
            let (lc, lr) = (-10.0, -12.0);
            let mut b = mk(lc, lr);
            b.chosen_logps = b.chosen_logps.require_grad();
            b.rejected_logps = b.rejected_logps.require_grad();
            let out = kind.compute(&b);
            let grads = out.loss.backward();
            // A loss that ignores an input (SFT ignores the rejected side) has no gradient for it.
            let gc: f64 = b.chosen_logps.grad(&grads).map_or(0.0, |g| g.into_scalar());
            let gr: f64 = b.rejected_logps.grad(&grads).map_or(0.0, |g| g.into_scalar());
            let f = |lc: f64, lr: f64| -> f64 { kind.compute(&mk(lc, lr)).loss.into_scalar() };
            let e = 1e-5;
            let fc = (f(lc + e, lr) - f(lc - e, lr)) / (2.0 * e);
            let fr = (f(lc, lr + e) - f(lc, lr - e)) / (2.0 * e);
            assert!((gc - fc).abs() < 1e-6 * fc.abs().max(1.0), "{kind:?} d/dℓ_c: {gc} vs {fc}");
            assert!((gr - fr).abs() < 1e-6 * fr.abs().max(1.0), "{kind:?} d/dℓ_r: {gr} vs {fr}");
        }
    }

    #[test]
    fn aot_sorts_over_the_batch() {
        // Two pairs whose policy margins are in the opposite order of the reference margins:
        // AOT compares quantiles, so swapping which pair holds which margin does not change it.
        let d = Default::default();
        let s = |v: Vec<f64>| Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [v.len()]), &d);
        let mut b = PolicyBatch::new(s(vec![-1.0, -2.0]), s(vec![-3.0, -2.5]), s(vec![-2.0, -2.0]), s(vec![-2.2, -3.0]), s(vec![1.0, 1.0]), s(vec![1.0, 1.0]));
        let kind = PolicyLoss::Aot { beta: 1.0, label_smoothing: 0.0 };
        let a: f64 = kind.compute(&b).loss.into_scalar();
        // sorted policy margins [0.5, 2.0], sorted reference margins [0.2, 1.0] → δ = [0.3, 1.0].
        let expected = (-(1.0 / (1.0 + (-0.3f64).exp())).ln() - (1.0 / (1.0 + (-1.0f64).exp())).ln()) / 2.0;
        assert!((a - expected).abs() < 1e-12, "{a} vs {expected}");
        b.ref_chosen_logps = s(vec![-2.0, -2.0]);
        b.ref_rejected_logps = s(vec![-3.0, -2.2]);
        let swapped: f64 = kind.compute(&b).loss.into_scalar();
        assert!((a - swapped).abs() < 1e-12);
    }

    /// −log σ(0.15) from the formula, the DPO part of IRPO/VPO/XPO on §8's inputs (0.620957).
    fn dpo_part() -> f64 {
        (1.0 + (-0.15f64).exp()).ln()
    }

    #[test]
    fn irpo_vpo_xpo_gpo_worked_values() {
        let b = batch();
        let beta = 0.1;
        assert!((dpo_part() - 0.620957).abs() < 1e-6);
        let cases: Vec<(PolicyLoss, f64)> = vec![
            // IRPO: NLL = −ℓ_c/|y_c| = 10/5 = 2 → 0.620957 + α·2.
            (PolicyLoss::Irpo { beta, alpha: 1.0 }, dpo_part() + 2.0),
            (PolicyLoss::Irpo { beta, alpha: 0.25 }, dpo_part() + 0.5),
            // VPO: ± α·β·ρ_c = ± 1·0.1·1.0.
            (PolicyLoss::Vpo { beta, alpha: 1.0, optimistic: true }, dpo_part() + 0.1),
            (PolicyLoss::Vpo { beta, alpha: 1.0, optimistic: false }, dpo_part() - 0.1),
            (PolicyLoss::Vpo { beta, alpha: 3.0, optimistic: false }, dpo_part() - 0.3),
            // XPO: + α·log π(ỹ) with log π(ỹ) = −8.
            (PolicyLoss::Xpo { beta, alpha: PolicyLoss::XPO_ALPHA }, dpo_part() - 8e-5),
            (PolicyLoss::Xpo { beta, alpha: 0.5 }, dpo_part() - 4.0),
            // GPO: targets s/β = 2, −1; ½[(1 − 2)² + (−0.5 + 1)²] = 0.625.
            (PolicyLoss::Gpo { beta }, 0.625),
            // β = 0.5: targets 0.4, −0.2; ½[0.36 + 0.09] = 0.225.
            (PolicyLoss::Gpo { beta: 0.5 }, 0.225),
        ];
        for (kind, expected) in cases {
            let got = loss(kind.clone(), &b);
            assert!((got - expected).abs() < 1e-9, "{kind:?}: {got} vs {expected}");
        }
        // Same logged figures as DPO: rewards β·ρ, margins, accuracy.
        let dpo = PolicyLoss::Sigmoid { beta }.compute(&b);
        for kind in [PolicyLoss::Irpo { beta, alpha: 1.0 }, PolicyLoss::Vpo { beta, alpha: 1.0, optimistic: true }, PolicyLoss::Xpo { beta, alpha: 1e-5 }, PolicyLoss::Gpo { beta }] {
            let out = kind.compute(&b);
            let v = |t: Tensor<B, 1>| -> f64 { t.into_scalar() };
            assert_eq!(v(out.chosen_rewards), v(dpo.chosen_rewards.clone()));
            assert_eq!(v(out.margins), v(dpo.margins.clone()));
            assert_eq!(v(out.accuracy), 1.0);
        }
    }

    #[test]
    fn irpo_nll_is_per_sequence_token_mean() {
        // Two pairs with different chosen lengths: NLL = mean(10/5, 6/2) = 2.5 (TRL's batch token-mean
        // would be 16/7). h = 0 for both, so the DPO part is ln 2.
        let s = |v: Vec<f64>| Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [v.len()]), &Default::default());
        let b = PolicyBatch::new(s(vec![-10.0, -6.0]), s(vec![-4.0, -4.0]), s(vec![-10.0, -6.0]), s(vec![-4.0, -4.0]), s(vec![5.0, 2.0]), s(vec![3.0, 3.0]));
        let got = loss(PolicyLoss::Irpo { beta: 0.1, alpha: 1.0 }, &b);
        assert!((got - (std::f64::consts::LN_2 + 2.5)).abs() < 1e-12, "{got}");
    }

    #[test]
    #[should_panic(expected = "XPO needs ref_sample_logps")]
    fn xpo_without_reference_samples_says_so() {
        let mut b = batch();
        b.ref_sample_logps = None;
        loss(PolicyLoss::Xpo { beta: 0.1, alpha: 1e-5 }, &b);
    }

    #[test]
    #[should_panic(expected = "GPO needs chosen_scores")]
    fn gpo_without_scores_says_so() {
        let mut b = batch();
        b.chosen_scores = None;
        loss(PolicyLoss::Gpo { beta: 0.1 }, &b);
    }

    /// IRPO, VPO (both signs), XPO and GPO on a batch of two pairs: autodiff vs central differences
    /// with respect to ℓ_c, ℓ_r and log π(ỹ) (rows of x), via `loss::gradcheck`.
    #[test]
    fn new_losses_pass_gradcheck() {
        use crate::reward::loss::gradcheck::{AD, check};
        let d = Default::default();
        let c = |v: &[f64]| Tensor::<AD, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &d);
        let x = [-10.0, -3.0, -12.0, -2.5, -8.0, -4.0];
        let kinds = [
            PolicyLoss::Irpo { beta: 0.1, alpha: 1.0 },
            PolicyLoss::Vpo { beta: 0.1, alpha: 1.0, optimistic: true },
            PolicyLoss::Vpo { beta: 0.3, alpha: 2.0, optimistic: false },
            PolicyLoss::Xpo { beta: 0.1, alpha: 0.5 },
            PolicyLoss::Gpo { beta: 0.1 },
        ];
        for kind in kinds {
            check(&format!("{kind:?}"), &x, [3, 2], |x| {
                let row = |i: usize| x.clone().narrow(0, i, 1).reshape([2]);
                let mut b = PolicyBatch::new(row(0), row(1), c(&[-11.0, -3.5]), c(&[-11.5, -2.0]), c(&[5.0, 2.0]), c(&[4.0, 3.0]));
                b.ref_sample_logps = Some(row(2));
                b.chosen_scores = Some(c(&[0.2, 0.05]));
                b.rejected_scores = Some(c(&[-0.1, 0.3]));
                kind.compute(&b).loss
            });
        }
    }

    #[test]
    fn vpo_sign_pulls_the_chosen_likelihood_the_right_way() {
        // d loss/d ℓ_c: pessimism lowers it by αβ (a pull up on the chosen response), optimism raises it.
        type A = Autodiff<B>;
        let grad_c = |kind: PolicyLoss| -> f64 {
            let d = Default::default();
            let s = |v: f64| Tensor::<A, 1>::from_data(TensorData::new(vec![v], [1]), &d);
            let lc = s(-10.0).require_grad();
            let b = PolicyBatch::new(lc.clone(), s(-12.0), s(-11.0), s(-11.5), s(5.0), s(4.0));
            let g = kind.compute(&b).loss.backward();
            lc.grad(&g).unwrap().into_scalar()
        };
        let dpo = grad_c(PolicyLoss::Sigmoid { beta: 0.1 });
        let pess = grad_c(PolicyLoss::Vpo { beta: 0.1, alpha: 2.0, optimistic: false });
        let opt = grad_c(PolicyLoss::Vpo { beta: 0.1, alpha: 2.0, optimistic: true });
        assert!((pess - (dpo - 0.2)).abs() < 1e-12 && (opt - (dpo + 0.2)).abs() < 1e-12, "{dpo} {pess} {opt}");
    }
}
