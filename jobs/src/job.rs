//! The [`Job`] trait every kind implements, and what a handler runs with.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keel_models::crypto::SecretBox;
use keel_models::PgPool;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::JobError;
use crate::net::NetPolicy;

/// Why a submit's args were refused, with the path of the offending field (`payload.items[2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError {
    pub path: String,
    pub message: String,
}

impl ArgsError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A kind of job: typed args (serde) with a stable `NAME` stored in the ledger, so renaming the
/// Rust type never orphans queued rows.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// Stable identifier, e.g. `webhook.deliver`. Never change it once jobs exist.
    const NAME: &'static str;
    /// The queue (Redis stream) jobs of this kind travel on.
    const QUEUE: &'static str = "default";
    /// Attempts before the job goes `dead` (a submit may ask for fewer or more, up to 1000).
    const MAX_ATTEMPTS: i32 = 10;
    /// How long one attempt may run (wall clock) before the worker gives up on it: the handler
    /// is dropped, its slot freed, and the attempt fails with a retryable error (the job is
    /// `dead` when it was the last). Operators override it per kind (`KEEL_JOB_TIMEOUTS`).
    /// Without a bound, a handler stuck on a peer that never answers held its worker slot for
    /// good. Kinds that talk to slow peers or do long work set their own.
    const TIMEOUT: Duration = Duration::from_secs(5 * 60);
    /// Internal kinds are enqueued by Keel itself (the scheduler), never by tenants: a tenant's
    /// submit of one is refused exactly like an unknown kind, and they are not listed to tenants.
    /// They run with no tenant, so they may touch every tenant's rows (e.g. housekeeping).
    const INTERNAL: bool = false;

    /// Checks beyond the shape serde enforces; runs at submit so bad input gets a 422.
    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        Ok(())
    }

    /// Does the work. Must be idempotent: delivery is at-least-once.
    fn run(self, ctx: JobContext) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// Shared, long-lived dependencies of handlers (one per process).
pub struct Services {
    pub pool: PgPool,
    pub secrets: SecretBox,
    pub net: NetPolicy,
    /// Outbound HTTP with the SSRF guard built in (see [`crate::net`]).
    pub http: reqwest::Client,
    /// Per-tenant Jira clients (shared so the per-tenant request cap holds across jobs).
    pub jira: crate::kinds::analyze::JiraClients,
    /// Sentiment models behind batching services (`sentiment.score`): the built-in model, plus
    /// FinBERT when configured ([`Services::with_finbert`]).
    pub sentiment: crate::kinds::sentiment::SentimentEngines,
}

impl Services {
    pub fn new(pool: PgPool, secrets: SecretBox, net: NetPolicy) -> Self {
        let http = crate::net::guarded_client(&net);
        Self {
            pool,
            secrets,
            net,
            http,
            jira: crate::kinds::analyze::JiraClients::new(keel_jira::JiraConfig::default()),
            sentiment: Default::default(),
        }
    }

    /// Adds the FinBERT engine for `sentiment.score` `{"model": "finbert"}`
    /// (startup passes `keel_bert::finbert_engine(KEEL_SENTIMENT_MODEL)`).
    pub fn with_finbert(mut self, engine: Arc<dyn keel_sentiment::engine::Engine>) -> Self {
        self.sentiment = self.sentiment.with_finbert(engine);
        self
    }

    /// Overrides the Jira client settings (per-tenant concurrency cap, timeouts).
    pub fn with_jira_config(mut self, config: keel_jira::JiraConfig) -> Self {
        self.jira = crate::kinds::analyze::JiraClients::new(config);
        self
    }
}

/// What one attempt of one job runs with.
#[derive(Clone)]
pub struct JobContext {
    pub job_id: Uuid,
    pub tenant_id: Option<Uuid>,
    /// 1-based attempt number.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Fires when the job is cancelled, the worker lost the job, or shutdown ran out of time.
    /// Handlers doing slow I/O should select on it and return [`JobError::Cancelled`].
    pub cancel: CancellationToken,
    pub services: Arc<Services>,
}

impl JobContext {
    /// Records progress (any JSON, e.g. `{"done": 3, "total": 10}`) visible in `GET /api/jobs/{id}`.
    /// Ignored when this attempt no longer owns the job.
    pub async fn set_progress(&self, progress: &Value) -> Result<(), JobError> {
        keel_models::job::set_progress(&self.services.pool, self.job_id, self.attempt, progress)
            .await
            .map(|_| ())
            .map_err(|e| JobError::retryable(format!("recording progress failed: {e}")))
    }
}
