//! What a handler returns when it fails: the worker needs to know whether trying again can help.

use std::time::Duration;

use serde_json::{json, Value};

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// A transient failure (a 429/5xx, a timeout, a dropped connection): try again later, after
    /// `retry_after` when the other side said so, else after the kind's backoff.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (bad input, 401, a refused address): the job goes `dead` at once.
    #[error("{message}")]
    Fatal { message: String },
    /// The handler stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// Not now, and not the job's fault (e.g. the Stripe circuit breaker is open): the job goes
    /// back to `queued`, due after `retry_after`, and this attempt is not counted, so a long
    /// outage of a dependency cannot exhaust the job's attempts.
    #[error("deferred: {reason}")]
    Deferred {
        retry_after: Duration,
        reason: String,
    },
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        JobError::Fatal {
            message: message.into(),
        }
    }

    pub fn deferred(retry_after: Duration, reason: impl Into<String>) -> Self {
        JobError::Deferred {
            retry_after,
            reason: reason.into(),
        }
    }

    /// The form stored in the ledger's `last_error`.
    pub fn to_json(&self, attempt: i32) -> Value {
        match self {
            JobError::Retryable {
                message,
                retry_after,
            } => json!({
                "kind": "retryable",
                "message": message,
                "attempt": attempt,
                "retry_after_ms": retry_after.map(|d| d.as_millis() as u64),
            }),
            JobError::Fatal { message } => {
                json!({"kind": "fatal", "message": message, "attempt": attempt})
            }
            JobError::Cancelled => {
                json!({"kind": "cancelled", "message": "cancelled", "attempt": attempt})
            }
            JobError::Deferred {
                retry_after,
                reason,
            } => json!({
                "kind": "deferred",
                "message": reason,
                "attempt": attempt,
                "retry_after_ms": retry_after.as_millis() as u64,
            }),
        }
    }
}
