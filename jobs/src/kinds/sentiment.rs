//! `sentiment.score` `{texts, model?}`: financial-style sentiment of each text, as
//! `{label, scores: {negative, neutral, positive}}`.
//!
//! `model` is `"default"` (the built-in `keel-sentiment` model: hashed n-grams + logistic
//! regression, shipped in the binary) or `"finbert"` (a BERT classifier run by `keel-bert` on
//! candle, configured with `KEEL_SENTIMENT_MODEL` and fetched with `keel model pull`). Each is a
//! [`SentimentService`] in [`Services`]: one loaded model per process, texts of concurrent jobs
//! merged into batches on a bounded queue, scored on blocking threads so the async workers never
//! stall. Asking for `"finbert"` where no FinBERT model is configured is refused at submit (422).

use std::sync::Arc;

use keel_sentiment::engine::Engine;
use keel_sentiment::service::SentimentService;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

pub const MAX_TEXTS: usize = 1000;
pub const MAX_TEXT_BYTES: usize = 100 * 1024;

const NO_FINBERT: &str = "no FinBERT model is configured in this deployment: set \
    KEEL_SENTIMENT_MODEL to a model directory or to a repository fetched with \
    `keel model pull ProsusAI/finbert`, or use \"default\"";

/// The sentiment models a process can run (the `sentiment` field of [`Services`]).
#[derive(Clone, Debug)]
pub struct SentimentEngines {
    /// The built-in model, always present.
    pub default: SentimentService,
    /// FinBERT, when `KEEL_SENTIMENT_MODEL` is set.
    pub finbert: Option<SentimentService>,
}

impl Default for SentimentEngines {
    fn default() -> Self {
        Self {
            default: SentimentService::new(keel_sentiment::engine::default_engine()),
            finbert: None,
        }
    }
}

impl SentimentEngines {
    /// Adds the FinBERT engine (e.g. `keel_bert::finbert_engine(spec)?`).
    pub fn with_finbert(mut self, engine: Arc<dyn Engine>) -> Self {
        self.finbert = Some(SentimentService::new(engine));
        self
    }

    /// The service for an args `model` value; `Err` is the message for the caller.
    pub fn select(&self, model: Option<&str>) -> Result<&SentimentService, String> {
        match model {
            None | Some("default") => Ok(&self.default),
            Some("finbert") => self.finbert.as_ref().ok_or_else(|| NO_FINBERT.to_string()),
            Some(other) => Err(format!(
                "unknown model {other:?}; use \"default\" or \"finbert\""
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentScore {
    pub texts: Vec<String>,
    /// `"default"` (the built-in model) or `"finbert"` (needs `KEEL_SENTIMENT_MODEL`).
    #[serde(default)]
    pub model: Option<String>,
}

impl Job for SentimentScore {
    const NAME: &'static str = "sentiment.score";
    const MAX_ATTEMPTS: i32 = 3;
    /// 1,000 texts through FinBERT on a CPU take about a minute; queued behind other jobs'
    /// texts in the batching service, more.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

    fn validate(&self, services: &Services) -> Result<(), ArgsError> {
        services
            .sentiment
            .select(self.model.as_deref())
            .map_err(|m| ArgsError::new("args.model", m))?;
        if self.texts.is_empty() {
            return Err(ArgsError::new("args.texts", "must hold at least one text"));
        }
        if self.texts.len() > MAX_TEXTS {
            return Err(ArgsError::new(
                "args.texts",
                format!("holds {} texts; the limit is {MAX_TEXTS}", self.texts.len()),
            ));
        }
        if let Some((i, t)) = self
            .texts
            .iter()
            .enumerate()
            .find(|(_, t)| t.len() > MAX_TEXT_BYTES)
        {
            return Err(ArgsError::new(
                format!("args.texts[{i}]"),
                format!("is {} bytes; the limit is {MAX_TEXT_BYTES}", t.len()),
            ));
        }
        Ok(())
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        // Accepted by an API process whose configuration differs from this worker's: fatal,
        // retrying on the same worker cannot help.
        let service = ctx
            .services
            .sentiment
            .select(self.model.as_deref())
            .map_err(JobError::fatal)?;
        let scored = service
            .score(self.texts)
            .await
            .map_err(|e| JobError::retryable(format!("scoring failed: {e}")))?;
        let results: Vec<Value> = scored
            .into_iter()
            .map(|s| json!({ "label": s.label(), "scores": s }))
            .collect();
        Ok(json!({ "model": service.name(), "results": results }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finbert_is_refused_until_configured() {
        let engines = SentimentEngines::default();
        assert_eq!(engines.select(None).unwrap().name(), "default");
        assert_eq!(engines.select(Some("default")).unwrap().name(), "default");
        let err = engines.select(Some("finbert")).unwrap_err();
        assert!(
            err.contains("KEEL_SENTIMENT_MODEL") && err.contains("keel model pull"),
            "{err}"
        );
        assert!(engines
            .select(Some("gpt"))
            .unwrap_err()
            .contains("unknown model"));
        // Any engine can stand in for FinBERT here; keel-bert's tests cover the real one.
        let engines = engines.with_finbert(keel_sentiment::engine::default_engine());
        assert!(engines.select(Some("finbert")).is_ok());
    }

    #[tokio::test]
    async fn default_service_scores_like_the_model() {
        let engines = SentimentEngines::default();
        let texts = vec![
            "Shares plunge after profit warning".to_string(),
            "Moved to QA.".into(),
        ];
        let got = engines.default.score(texts.clone()).await.unwrap();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_eq!(
            got,
            keel_sentiment::DefaultModel::builtin_ref().score_batch(&refs)
        );
    }
}
