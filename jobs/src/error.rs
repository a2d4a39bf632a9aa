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

    /// The form stored in the ledger's `last_error` while the job goes on (`"final": false`);
    /// [`JobError::to_final_json`] when this error ends it.
    pub fn to_json(&self, attempt: i32) -> Value {
        let mut json = self.shape(attempt);
        json["final"] = Value::Bool(false);
        json
    }

    /// The `last_error` of a job this error made `dead`: `"final": true` and `max_attempts`
    /// beside the usual fields, and a retryable error on the last attempt reads
    /// `"kind": "exhausted"`, since nothing will retry it (it had read `"retryable"`, which
    /// told clients and operators the wrong thing). `fatal` stays `fatal`.
    pub fn to_final_json(&self, attempt: i32, max_attempts: i32) -> Value {
        let mut json = self.shape(attempt);
        json["final"] = Value::Bool(true);
        json["max_attempts"] = Value::from(max_attempts);
        if let JobError::Retryable { message, .. } = self {
            json["kind"] = Value::from("exhausted");
            json["message"] = Value::String(format!(
                "{message} (attempt {attempt} of {max_attempts}; giving up)"
            ));
        }
        json
    }

    fn shape(&self, attempt: i32) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_that_ends_the_job_says_so() {
        let e = JobError::retryable("receiver answered 503");
        let going_on = e.to_json(2);
        assert_eq!(going_on["kind"], "retryable");
        assert_eq!(going_on["final"], false);
        let last = e.to_final_json(4, 4);
        assert_eq!(last["kind"], "exhausted");
        assert_eq!(last["final"], true);
        assert_eq!(
            (last["attempt"].as_i64(), last["max_attempts"].as_i64()),
            (Some(4), Some(4))
        );
        assert_eq!(
            last["message"],
            "receiver answered 503 (attempt 4 of 4; giving up)"
        );
        assert!(
            last.get("retry_after_ms").is_some(),
            "fields clients read are kept"
        );

        let fatal = JobError::fatal("receiver answered 400").to_final_json(1, 10);
        assert_eq!(fatal["kind"], "fatal");
        assert_eq!(fatal["final"], true);
        assert_eq!(fatal["message"], "receiver answered 400");
    }
}
