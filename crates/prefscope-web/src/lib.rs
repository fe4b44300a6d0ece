//! The playground's browser-independent parts: URL settings, chart axes, the data picture, the
//! preference dial, the loss landscape's grid, the decision surface and the upload readers. The
//! page and its worker (`main.rs`, wasm only) are built on them; their tests run on the host.

pub mod charts;
pub mod dial;
pub mod landscape;
pub mod plot;
pub mod settings;
pub mod surface;
pub mod upload;

/// What the worker sends crosses gloo-worker's bincode codec, which reads a struct's fields by
/// position: a field that serde skips when empty (as JSON output likes) shifts every field after
/// it, and the page panics on the message. The Policy tab's run carries a core `BanditSummary`.
#[cfg(test)]
mod codec_tests {
    use prefscope_core::policy::bandit::{BanditConfig, BanditSummary, train_bandit};
    use prefscope_core::policy::losses::{LossSettings, build};

    type B = burn::backend::Autodiff<burn::backend::Flex>;

    #[test]
    fn bandit_summaries_survive_the_worker_codec() {
        // MODPO's summary has its second reward; the others have none.
        for loss in ["dpo", "modpo", "kto"] {
            let mut cfg = BanditConfig::new(build(loss, &LossSettings::new(0.5)).unwrap());
            cfg.steps = 50;
            let summary = train_bandit::<B>(&cfg, &Default::default(), |_, _| {}).unwrap();
            let back: BanditSummary = bincode::deserialize(&bincode::serialize(&summary).unwrap()).unwrap();
            assert_eq!(back, summary, "{loss}");
        }
    }
}
