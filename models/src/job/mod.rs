//! The job ledger. Every state change is one guarded `UPDATE … WHERE id = $1 AND status = …`
//! (plus `attempt = $n` where only the current owner may act), so duplicate deliveries, late
//! finishers and racing workers change nothing they should not.
//!
//! ```text
//! queued ─start─▶ running ─▶ succeeded
//!   ▲               │ ├────▶ failed (retryable error; waits for run_at) ─start─▶ running …
//!   │               │ └────▶ dead (fatal, or attempts exhausted)
//!   └──── retry ────┴──────── dead | failed
//! queued|failed ─cancel─▶ cancelled;  running ─cancel─▶ (handler told) ─▶ cancelled
//! running ─hand back (shutdown) | defer (handler: "not now")─▶ queued, attempt uncounted
//! ```
//!
//! Here: the row and its submit, reads, cancel and retry. Many submits in one statement are in
//! `batch.rs`, a tenant's listing pages in `listing.rs`, a worker's attempt (start to finish)
//! in `attempt.rs`, the relay's dispatch bookkeeping in `dispatch.rs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

mod attempt;
mod dispatch;

pub use attempt::{
    defer, fail_dead, fail_retryable, hand_back, heartbeat_many, mark_cancelled, set_progress,
    start_many, succeed_many, Started,
};
pub use dispatch::{dispatch_due, forget_dispatches, set_dispatched};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "job_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Cancelled
        )
    }
}

/// One row of the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub queue: String,
    pub args: Value,
    pub status: JobStatus,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    pub progress: Option<Value>,
    pub result: Option<Value>,
    pub last_error: Option<Value>,
    pub idempotency_key: Option<String>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A job to insert. `dispatched` says the caller will push the id to Redis right after commit
/// (so the relay leaves it alone unless that push is lost).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub queue: String,
    pub args: Value,
    pub max_attempts: i32,
    pub run_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub dispatched: bool,
}

pub enum Inserted {
    New(Job),
    /// The idempotency key was used before: this is the job it created.
    Existing(Job),
}

pub fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: d.as_micros().min(i64::MAX as u128) as i64,
    }
}

macro_rules! select_job {
    ($tail:literal, $($arg:expr),*) => {
        sqlx::query_as!(
            Job,
            r#"SELECT id, tenant_id, kind, queue, args, status AS "status: JobStatus", attempt,
                      max_attempts, run_at, dispatched_at, lease_until, progress, result, last_error,
                      idempotency_key, cancel_requested_at, created_at, started_at, finished_at,
                      updated_at
               FROM jobs "# + $tail,
            $($arg),*
        )
    };
}

/// A statement on `jobs` that answers the whole row, as `select_job!` reads it: `$head` is
/// the statement up to its `RETURNING` (the insert, cancel and retry).
macro_rules! returning_job {
    ($head:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            Job,
            $head + r#"
           RETURNING id, tenant_id, kind, queue, args, status AS "status: JobStatus", attempt,
                     max_attempts, run_at, dispatched_at, lease_until, progress, result, last_error,
                     idempotency_key, cancel_requested_at, created_at, started_at, finished_at,
                     updated_at"#,
            $($arg),*
        )
    };
}

// After the macros above, which it uses.
mod batch;
mod listing;
pub use batch::insert_batch;
pub use listing::{list_for_tenant, JobFilter, JobPage, EXAMINED_PER_PAGE};

/// Inserts a job inside the caller's transaction (so it commits with the business rows it
/// belongs to). With an idempotency key already used by the tenant, returns that job instead.
pub async fn insert(conn: &mut PgConnection, new: &NewJob) -> sqlx::Result<Inserted> {
    let inserted = returning_job!(
        r#"INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, run_at,
                             idempotency_key, dispatched_at)
           VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()), $8,
                   CASE WHEN $9 AND COALESCE($7, now()) <= now() THEN now() END)
           ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"#,
        new.id,
        new.tenant_id,
        new.kind,
        new.queue,
        new.args,
        new.max_attempts,
        new.run_at,
        new.idempotency_key,
        new.dispatched,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = inserted {
        return Ok(Inserted::New(job));
    }
    // Only a conflict gets here, and only a tenant's job can conflict (the unique index treats
    // NULL tenants as distinct). `tenant_id = $1`, not `IS NOT DISTINCT FROM`: that one cannot
    // use the index's first column, so Postgres read every keyed job's entry (4.8 ms at
    // 50,000, growing with them) instead of looking the pair up.
    let existing = select_job!(
        "WHERE tenant_id = $1 AND idempotency_key = $2",
        new.tenant_id,
        new.idempotency_key
    )
    .fetch_one(conn)
    .await?;
    Ok(Inserted::Existing(existing))
}

/// Bulk insert of plain jobs (no idempotency keys), e.g. for backfills and the 1M-job test.
/// Rows are left undispatched: the relay feeds them to Redis within its window.
pub async fn insert_many(
    conn: &mut PgConnection,
    tenant_id: Option<Uuid>,
    kind: &str,
    queue: &str,
    max_attempts: i32,
    args: &[Value],
) -> sqlx::Result<u64> {
    let ids: Vec<Uuid> = args.iter().map(|_| Uuid::now_v7()).collect();
    let done = sqlx::query!(
        "INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts)
         SELECT id, $2, $3, $4, a, $5 FROM UNNEST($1::uuid[], $6::jsonb[]) AS t(id, a)",
        &ids,
        tenant_id,
        kind,
        queue,
        max_attempts,
        args
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A tenant's job (tenant isolation: another tenant's id is simply not found).
pub async fn get_for_tenant(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> sqlx::Result<Option<Job>> {
    select_job!("WHERE id = $1 AND tenant_id = $2", id, tenant_id)
        .fetch_optional(pool)
        .await
}

/// Which of `ids` have ended (`succeeded`, `dead` or `cancelled`): one lookup by primary key
/// for every job the API's waiting requests are waiting on (status as text: by primary key,
/// never through a partial index).
pub async fn ended_among(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"SELECT id FROM jobs
           WHERE id = ANY($1) AND status::text IN ('succeeded', 'dead', 'cancelled')"#,
        ids
    )
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Job>> {
    select_job!("WHERE id = $1", id).fetch_optional(pool).await
}

/// Outcome of a cancel request.
pub enum CancelOutcome {
    /// It had not started: it is `cancelled` and will never run.
    Cancelled(Job),
    /// It is running: the handler is told and the job ends `cancelled` when it stops.
    Requested(Job),
    /// Already finished (or not found when `None`).
    NotCancellable(Option<Job>),
}

pub async fn cancel(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> sqlx::Result<CancelOutcome> {
    let updated = returning_job!(
        r#"UPDATE jobs SET
             status = CASE WHEN status = 'running' THEN status ELSE 'cancelled'::job_status END,
             finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,
             cancel_requested_at = COALESCE(cancel_requested_at, now()),
             updated_at = now()
           WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'failed', 'running')"#,
        id,
        tenant_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(match updated {
        Some(job) if job.status == JobStatus::Running => CancelOutcome::Requested(job),
        Some(job) => CancelOutcome::Cancelled(job),
        None => CancelOutcome::NotCancellable(get_for_tenant(pool, tenant_id, id).await?),
    })
}

/// `dead|failed → queued`, due now, with a fresh attempt budget (the last error stays visible).
/// `None` when the tenant has no such job in a retryable state.
pub async fn retry(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Job>> {
    returning_job!(
        r#"UPDATE jobs SET status = 'queued', attempt = 0, run_at = now(), finished_at = NULL,
                          dispatched_at = NULL, cancel_requested_at = NULL, updated_at = now()
           WHERE id = $1 AND tenant_id = $2 AND status IN ('dead', 'failed')"#,
        id,
        tenant_id
    )
    .fetch_optional(conn)
    .await
}

/// Counts by (kind, status) of every job that has not succeeded, for `/metrics`: the states an
/// operator watches (backlog, running, waiting to retry, dead, cancelled). Each is read through
/// a partial index as small as the jobs in that state; succeeded jobs, nearly the whole table
/// within the retention window, are left out, since counting them meant scanning it on every
/// scrape (completions per process: `keel_job_duration_seconds_count`).
pub async fn counts_except_succeeded(pool: &PgPool) -> sqlx::Result<Vec<(String, JobStatus, i64)>> {
    let rows = sqlx::query!(
        // One arm per partial index (jobs_waiting, jobs_leased, jobs_tenant_ended_unsuccessfully),
        // each arm the index's own predicate, so Postgres can OR their bitmaps.
        r#"SELECT kind, status AS "status: JobStatus", count(*) AS "n!"
           FROM jobs
           WHERE status IN ('queued', 'failed') OR status = 'running'
              OR status IN ('dead', 'cancelled')
           GROUP BY kind, status ORDER BY kind, status"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.status, r.n)).collect())
}

/// Due waiting rows per queue (the backlog), for `/metrics`.
pub async fn backlog_by_queue(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT queue, count(*) AS "n!" FROM jobs
           WHERE status IN ('queued', 'failed') AND run_at <= now()
           GROUP BY queue ORDER BY queue"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.queue, r.n)).collect())
}
