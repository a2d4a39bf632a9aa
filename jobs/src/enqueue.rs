//! Submitting a job: validation against the registry, the ledger insert (in the caller's
//! transaction, next to the business rows the job belongs to) and the best-effort push to Redis
//! after commit. A lost push costs latency, never the job: the relay dispatches any row Redis
//! was not told about.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use keel_models::job::{Job as JobRow, NewJob};
use keel_models::PgPool;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::job::{ArgsError, Services};
use crate::lane::Lane;
use crate::registry::Registry;

/// The body of `POST /api/jobs` (and what the scheduler and other producers build).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    pub kind: String,
    #[serde(default)]
    pub args: Value,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub max_attempts: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("unknown job kind {kind:?}")]
    UnknownKind {
        kind: String,
        known: Vec<&'static str>,
    },
    #[error("{}: {}", .0.path, .0.message)]
    Invalid(ArgsError),
}

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Most attempts a tenant may ask for (`max_attempts`): with the backoff capped at an hour,
/// 25 attempts already span about a day; more only keeps a failing job's units reserved.
pub const MAX_ATTEMPTS: i32 = 25;

/// How far ahead a tenant may schedule a job (`run_at`). A job years ahead is a mistake or a
/// way to park rows (and reserved units) in the ledger indefinitely.
pub const MAX_RUN_AHEAD_DAYS: i64 = 365;

/// Validates a submit and builds the row to insert. Nothing is written.
///
/// A tenant's submit (`tenant_id` is `Some`) of an internal kind ([`crate::Job::INTERNAL`]) is
/// refused exactly like an unknown kind, so tenants can neither run nor discover Keel's own
/// maintenance kinds; `known` lists public kinds only.
pub fn prepare(
    registry: &Registry,
    services: &Services,
    tenant_id: Option<Uuid>,
    submit: Submit,
) -> Result<NewJob, SubmitError> {
    let kind = registry
        .get(&submit.kind)
        .filter(|k| tenant_id.is_none() || !k.internal())
        .ok_or_else(|| SubmitError::UnknownKind {
            kind: submit.kind.clone(),
            known: registry.public_names(),
        })?;
    let args = if submit.args.is_null() {
        Value::Object(Default::default())
    } else {
        submit.args
    };
    kind.check(&args, services).map_err(SubmitError::Invalid)?;
    if let Some(n) = submit.max_attempts {
        if !(1..=MAX_ATTEMPTS).contains(&n) {
            return Err(SubmitError::Invalid(ArgsError::new(
                "max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            )));
        }
    }
    if let Some(at) = submit.run_at {
        // A time in the past means now; one before 1970 or past year 9999 is a mistake (and
        // before 4713 BC, outside what Postgres stores).
        if at.timestamp() < 0 || at.year() > 9999 {
            return Err(SubmitError::Invalid(ArgsError::new(
                "run_at",
                "must be a time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
            )));
        }
        if tenant_id.is_some() && at > Utc::now() + chrono::Duration::days(MAX_RUN_AHEAD_DAYS) {
            return Err(SubmitError::Invalid(ArgsError::new(
                "run_at",
                format!("must be at most {MAX_RUN_AHEAD_DAYS} days ahead"),
            )));
        }
    }
    if let Some(key) = &submit.idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(SubmitError::Invalid(ArgsError::new(
                "idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
            )));
        }
    }
    Ok(NewJob {
        id: Uuid::now_v7(),
        tenant_id,
        kind: kind.name().to_string(),
        queue: kind.queue().to_string(),
        args,
        max_attempts: submit.max_attempts.unwrap_or(kind.max_attempts()),
        run_at: submit.run_at,
        idempotency_key: submit.idempotency_key,
        dispatched: true,
    })
}

/// How long a producer waits on Redis before leaving the job to the relay.
const PUSH_TIMEOUT: Duration = Duration::from_millis(500);

/// After the insert committed: push the id so an idle worker starts it within milliseconds.
/// When Redis is down, slow or the window is full, clear `dispatched_at` so the relay takes the
/// row on its next tick. Never fails the submit: the row is already durable.
pub async fn dispatch_after_commit(lane: &Lane, pool: &PgPool, job: &JobRow) {
    // Not due yet, or left to the relay on purpose: nothing to push.
    if let Some(due) = to_dispatch(job) {
        dispatch_many_after_commit(lane, pool, &[due]).await;
    }
}

/// The queue and id of a committed row to push, if it is due now (stamped `dispatched_at` at
/// insert); `None` for one left to the relay (not due yet).
pub fn to_dispatch(job: &JobRow) -> Option<(String, Uuid)> {
    job.dispatched_at.map(|_| (job.queue.clone(), job.id))
}

/// [`dispatch_after_commit`] for many rows committed together (see [`to_dispatch`]): one push
/// per queue, and one statement clearing `dispatched_at` of whatever was not pushed (Redis
/// down, slow, or the window full), so the relay takes those rows.
pub async fn dispatch_many_after_commit(lane: &Lane, pool: &PgPool, jobs: &[(String, Uuid)]) {
    let mut by_queue: std::collections::BTreeMap<&str, Vec<Uuid>> = Default::default();
    for (queue, id) in jobs {
        by_queue.entry(queue).or_default().push(*id);
    }
    let mut left = Vec::new();
    for (queue, ids) in by_queue {
        let pushed = tokio::time::timeout(PUSH_TIMEOUT, lane.push_many_if_room(queue, &ids)).await;
        let n = match pushed {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(queue, jobs = ids.len(), error = %e, "push to Redis failed; the relay will dispatch the jobs");
                0
            }
            Err(_) => {
                tracing::warn!(
                    queue,
                    jobs = ids.len(),
                    "push to Redis timed out; the relay will dispatch the jobs"
                );
                0
            }
        };
        left.extend_from_slice(&ids[n.min(ids.len())..]);
    }
    if !left.is_empty() {
        if let Err(e) = keel_models::job::set_dispatched(pool, &left, false).await {
            tracing::warn!(jobs = left.len(), error = %e, "could not clear dispatched_at");
        }
    }
}

/// Like [`dispatch_after_commit`] for a row whose `dispatched_at` is still NULL (e.g. a retried
/// job): push it, and on success stamp `dispatched_at` so the relay does not push it again.
pub async fn dispatch_after_commit_marking(lane: &Lane, pool: &PgPool, job: &JobRow) {
    let pushed = lane.push_many_if_room(&job.queue, std::slice::from_ref(&job.id));
    if let Ok(Ok(1)) = tokio::time::timeout(PUSH_TIMEOUT, pushed).await {
        if let Err(e) = keel_models::job::set_dispatched(pool, &[job.id], true).await {
            tracing::debug!(job_id = %job.id, error = %e, "could not stamp dispatched_at");
        }
    }
}
