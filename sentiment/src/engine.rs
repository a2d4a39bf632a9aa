//! The [`Engine`] trait: one interface for every sentiment model Keel can run.
//!
//! [`crate::service::SentimentService`] batches requests for *any* engine, so the
//! built-in [`DefaultModel`] and the FinBERT engine of crate `keel-bert` (candle
//! today, possibly libtorch behind a feature later) are interchangeable behind
//! `Arc<dyn Engine>`.

use std::sync::Arc;

use crate::model::{DefaultModel, Scores};

/// Why an engine could not score a batch (e.g. a tensor error in a BERT engine).
/// Boxed so engines in other crates can return their own error types.
pub type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A loaded sentiment model that scores texts in batches. Implementations must
/// be thread-safe: one instance is shared by every job in a worker process.
pub trait Engine: Send + Sync + 'static {
    /// Stable model name reported in job results (`"default"`, `"finbert"`).
    fn name(&self) -> &str;

    /// The largest number of texts worth handing to one [`Engine::score_batch`]
    /// call: batching beyond it buys nothing (or costs memory).
    fn max_batch(&self) -> usize {
        256
    }

    /// How many batches should run at once. CPU-bound engines that are
    /// single-threaded inside want one per core; engines that already spread
    /// one batch over all cores (BERT matmuls) want 1.
    fn parallelism(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// A cheap estimate of a text's cost (its token count for BERT), used to
    /// sort a merged batch so similar lengths are padded together.
    fn cost(&self, text: &str) -> usize {
        text.len()
    }

    /// Scores every text, in order: `result[i]` belongs to `texts[i]`. Blocking
    /// and CPU-bound: call it from a blocking thread, never from async code.
    fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scores>, EngineError>;
}

impl Engine for DefaultModel {
    fn name(&self) -> &str {
        "default"
    }

    fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scores>, EngineError> {
        Ok(DefaultModel::score_batch(self, texts))
    }
}

/// The process-wide built-in model as a shareable engine (parsed once).
pub fn default_engine() -> Arc<dyn Engine> {
    static M: std::sync::OnceLock<Arc<DefaultModel>> = std::sync::OnceLock::new();
    M.get_or_init(|| Arc::new(DefaultModel::builtin())).clone()
}

impl<E: Engine + ?Sized> Engine for Arc<E> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn max_batch(&self) -> usize {
        (**self).max_batch()
    }
    fn parallelism(&self) -> usize {
        (**self).parallelism()
    }
    fn cost(&self, text: &str) -> usize {
        (**self).cost(text)
    }
    fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scores>, EngineError> {
        (**self).score_batch(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_engine_matches_direct_scoring() {
        let e = default_engine();
        let texts = ["Shares plunge after profit warning", "Moved to QA."];
        let got = e.score_batch(&texts).unwrap();
        let want = DefaultModel::builtin_ref().score_batch(&texts);
        assert_eq!(got, want);
        assert_eq!(e.name(), "default");
    }
}
