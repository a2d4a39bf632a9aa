//! Keel's job kinds and the pieces every kind is built from.
//!
//! - [`job`]: the [`Job`] trait (typed args with a stable `NAME`) and the [`JobContext`] a
//!   handler runs with (cancellation token, progress, services).
//! - [`error`]: [`JobError`] — every handler says whether a failure is retryable or fatal.
//! - [`registry`]: explicit registration of kinds; a name registered twice is an error.
//! - [`backoff`]: exponential backoff with jitter, capped.
//! - [`lane`]: the Redis fast lane (Streams + a consumer group) that carries job ids.
//! - [`enqueue`]: turning a submit request into a ledger row, and the post-commit push.
//! - [`submitter`]: group commit for concurrent standalone submits (the API's `POST /api/jobs`).
//! - [`net`]: the outbound HTTP client with its SSRF guard.
//! - [`kinds`]: the built-in kinds (`noop`, `webhook.deliver`, and the internal
//!   `keel.housekeeping`).
#![forbid(unsafe_code)]

pub mod backoff;
pub mod enqueue;
pub mod error;
pub mod job;
pub mod kinds;
pub mod lane;
pub mod net;
pub mod registry;
pub mod submitter;

pub use error::JobError;
pub use job::{Job, JobContext, Services};
pub use registry::Registry;

/// The registry of every built-in kind. Binaries and tests start from this.
pub fn builtin_registry() -> Registry {
    Registry::new()
        .register::<kinds::noop::Noop>()
        .and_then(|r| r.register::<kinds::webhook::WebhookDeliver>())
        .and_then(|r| r.register::<kinds::sentiment::SentimentScore>())
        .and_then(|r| r.register::<kinds::housekeeping::Housekeeping>())
        .and_then(|r| r.register::<kinds::stripe::StripeEvent>())
        .and_then(|r| r.register::<kinds::stripe::sync::SyncCustomer>())
        .and_then(|r| r.register::<kinds::stripe::sync::ReportUsage>())
        .and_then(|r| r.register::<kinds::stripe::reconcile::Reconcile>())
        .and_then(|r| r.register::<kinds::billing_tasks::close_period::ClosePeriod>())
        .and_then(|r| r.register::<kinds::billing_tasks::monthly_run::MonthlyRun>())
        .and_then(|r| r.register::<kinds::billing_tasks::notices::ExpiryNotices>())
        .and_then(|r| r.register::<kinds::billing_tasks::notices::ExpireCredits>())
        .and_then(|r| r.register::<kinds::analyze::AnalyzeIssue>())
        .and_then(|r| r.register::<kinds::analyze::AnalyzeSprint>())
        .and_then(|r| r.register::<kinds::analyze::AnalyzePortfolio>())
        .expect("built-in kinds have distinct names")
}
