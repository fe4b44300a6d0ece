//! The Policy tab's online run, as the compute worker runs it: a proxy reward model trained on N
//! gold labels, then a policy optimising it point by point, each point sent to the page.

use prefscope_core::Trainer;
use prefscope_core::policy::online::train_online_async;
use prefscope_core::policy::overoptimisation::{CurvePoint, OveroptConfig, curves, live_rloo, proxy_arms, trajectory_point};
use serde::{Deserialize, Serialize};

use crate::backend::{CpuBackend, cpu_device};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    Idle,
    Proxy { step: usize, of: usize },
    Optimising,
    Done { accuracy: f64 },
}

/// What the online run reports as it goes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Update {
    Phase(Phase),
    /// The curve so far.
    Points(Vec<CurvePoint>),
    Error(String),
}

/// Train the proxy, then grow the curve point by point (in the compute worker); `emit` sends
/// each update to the page.
pub async fn run(labels: usize, method: String, seed: u64, emit: impl Fn(Update)) {
    let cfg = OveroptConfig { seed, labels: vec![labels], ..Default::default() };
    let device = cpu_device();
    let mut trainer = match Trainer::<CpuBackend>::new(cfg.proxy_run(labels), &device) {
        Ok(t) => t,
        Err(e) => return emit(Update::Error(e.to_string())),
    };
    let mut accuracy = f64::NAN;
    while !trainer.is_done() {
        match trainer.step().await {
            Ok(m) => {
                if let Some(e) = m.eval {
                    accuracy = e.accuracy as f64;
                }
                if m.step % 20 == 0 {
                    emit(Update::Phase(Phase::Proxy { step: m.step, of: cfg.steps }));
                }
            }
            Err(e) => return emit(Update::Error(e.to_string())),
        }
    }
    let arms = match proxy_arms(&trainer) {
        Ok(a) => a,
        Err(e) => return emit(Update::Error(e.to_string())),
    };
    emit(Update::Phase(Phase::Optimising));
    let mut grown = vec![];
    if method == "rloo" {
        // One point per iteration of RLOO's expected gradient, the chart redrawn every third.
        let (mut start, live) = (None, live_rloo());
        let run = train_online_async::<CpuBackend, _>(&arms, &live, &device, |m| {
            grown.push(trajectory_point(m, start.get_or_insert_with(|| m.clone())));
            if m.iteration % 3 == 0 {
                emit(Update::Points(grown.clone()));
            }
            gloo_timers::future::TimeoutFuture::new(0)
        });
        if let Err(e) = run.await {
            return emit(Update::Error(e.to_string()));
        }
        emit(Update::Points(grown));
        return emit(Update::Phase(Phase::Done { accuracy }));
    }
    let knobs: Vec<f64> = if method == "rl" { cfg.betas.clone() } else { cfg.best_of.iter().map(|&n| n as f64).collect() };
    for knob in knobs {
        let (bon, rl) = if method == "rl" { curves(&arms.ref_probs, &arms.reward, &arms.gold, &[], &[knob]) } else { curves(&arms.ref_probs, &arms.reward, &arms.gold, &[knob as usize], &[]) };
        grown.extend(bon.into_iter().chain(rl));
        emit(Update::Points(grown.clone()));
        // A frame per point: the curve grows where the user can watch it.
        gloo_timers::future::TimeoutFuture::new(40).await;
    }
    emit(Update::Phase(Phase::Done { accuracy }));
}
