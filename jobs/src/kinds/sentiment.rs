//! `sentiment.score` `{texts, model?}`: financial-style sentiment of each text, as
//! `{label, scores: {negative, neutral, positive}}`.
//!
//! Scoring uses the built-in default model (`keel-sentiment`: hashed n-grams + logistic
//! regression, shipped in the binary, loaded once per process) on the blocking pool, so a
//! thousand texts never stall the async workers. The FinBERT engine (candle) is not part of this
//! build yet: asking for `"finbert"` is refused at submit with a message that says so.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

pub const MAX_TEXTS: usize = 1000;
pub const MAX_TEXT_BYTES: usize = 100 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentScore {
    pub texts: Vec<String>,
    /// `"default"` (the built-in model); `"finbert"` once a FinBERT engine is installed.
    #[serde(default)]
    pub model: Option<String>,
}

impl Job for SentimentScore {
    const NAME: &'static str = "sentiment.score";
    const MAX_ATTEMPTS: i32 = 3;

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        match self.model.as_deref() {
            None | Some("default") => {}
            Some("finbert") => {
                return Err(ArgsError::new(
                    "args.model",
                    "the FinBERT engine is not installed in this deployment; use \"default\"",
                ))
            }
            Some(other) => {
                return Err(ArgsError::new(
                    "args.model",
                    format!("unknown model {other:?}; use \"default\" or \"finbert\""),
                ))
            }
        }
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

    async fn run(self, _ctx: JobContext) -> Result<Value, JobError> {
        let texts = self.texts;
        let scored = tokio::task::spawn_blocking(move || {
            let model = keel_sentiment::DefaultModel::builtin_ref();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model
                .score_batch(&refs)
                .into_iter()
                .map(|s| json!({ "label": s.label(), "scores": s }))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| JobError::retryable(format!("scoring failed: {e}")))?;
        Ok(json!({ "model": "default", "results": scored }))
    }
}
