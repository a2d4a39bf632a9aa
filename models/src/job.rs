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

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

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

/// Inserts a job inside the caller's transaction (so it commits with the business rows it
/// belongs to). With an idempotency key already used by the tenant, returns that job instead.
pub async fn insert(conn: &mut PgConnection, new: &NewJob) -> sqlx::Result<Inserted> {
    let inserted = sqlx::query_as!(
        Job,
        r#"INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, run_at,
                             idempotency_key, dispatched_at)
           VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()), $8,
                   CASE WHEN $9 AND COALESCE($7, now()) <= now() THEN now() END)
           ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id, tenant_id, kind, queue, args, status AS "status: JobStatus", attempt,
                     max_attempts, run_at, dispatched_at, lease_until, progress, result, last_error,
                     idempotency_key, cancel_requested_at, created_at, started_at, finished_at,
                     updated_at"#,
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
    let existing = select_job!(
        "WHERE tenant_id IS NOT DISTINCT FROM $1 AND idempotency_key = $2",
        new.tenant_id,
        new.idempotency_key
    )
    .fetch_one(conn)
    .await?;
    Ok(Inserted::Existing(existing))
}

/// [`insert`] for many independent submits at once: one statement and one commit for the
/// batch (the API coalesces concurrent `POST /api/jobs` this way). Answers one [`Inserted`] per
/// row, in order. An idempotency key seen before (or twice in the batch) answers the job that
/// holds it. Each row is durable when this returns; one bad row fails the whole statement, so
/// callers retry rows one by one to give each submit its own answer.
pub async fn insert_batch(conn: &mut PgConnection, news: &[NewJob]) -> sqlx::Result<Vec<Inserted>> {
    let ids: Vec<Uuid> = news.iter().map(|n| n.id).collect();
    let tenants: Vec<Option<Uuid>> = news.iter().map(|n| n.tenant_id).collect();
    let kinds: Vec<String> = news.iter().map(|n| n.kind.clone()).collect();
    let queues: Vec<String> = news.iter().map(|n| n.queue.clone()).collect();
    let args: Vec<Value> = news.iter().map(|n| n.args.clone()).collect();
    let max_attempts: Vec<i32> = news.iter().map(|n| n.max_attempts).collect();
    let run_ats: Vec<Option<DateTime<Utc>>> = news.iter().map(|n| n.run_at).collect();
    let keys: Vec<Option<String>> = news.iter().map(|n| n.idempotency_key.clone()).collect();
    let dispatched: Vec<bool> = news.iter().map(|n| n.dispatched).collect();
    let rows = sqlx::query_as!(
        Job,
        r#"INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, run_at,
                             idempotency_key, dispatched_at)
           SELECT id, tenant_id, kind, queue, args, max_attempts, COALESCE(run_at, now()), key,
                  CASE WHEN dispatched AND COALESCE(run_at, now()) <= now() THEN now() END
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::int4[],
                       $7::timestamptz[], $8::text[], $9::bool[])
                AS t(id, tenant_id, kind, queue, args, max_attempts, run_at, key, dispatched)
           ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id, tenant_id, kind, queue, args, status AS "status: JobStatus", attempt,
                     max_attempts, run_at, dispatched_at, lease_until, progress, result, last_error,
                     idempotency_key, cancel_requested_at, created_at, started_at, finished_at,
                     updated_at"#,
        &ids,
        &tenants as &[Option<Uuid>],
        &kinds,
        &queues,
        &args,
        &max_attempts,
        &run_ats as &[Option<DateTime<Utc>>],
        &keys as &[Option<String>],
        &dispatched,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, Job> =
        rows.into_iter().map(|j| (j.id, j)).collect();
    let mut out = Vec::with_capacity(news.len());
    for new in news {
        match by_id.remove(&new.id) {
            Some(job) => out.push(Inserted::New(job)),
            None => {
                let existing = select_job!(
                    "WHERE tenant_id IS NOT DISTINCT FROM $1 AND idempotency_key = $2",
                    new.tenant_id,
                    new.idempotency_key
                )
                .fetch_one(&mut *conn)
                .await?;
                out.push(Inserted::Existing(existing));
            }
        }
    }
    Ok(out)
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

pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Job>> {
    select_job!("WHERE id = $1", id).fetch_optional(pool).await
}

/// Newest first, keyset-paginated on the (time-ordered, UUIDv7) id.
pub async fn list_for_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
    status: Option<JobStatus>,
    kind: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Job>> {
    select_job!(
        r#"WHERE tenant_id = $1
             AND ($2::job_status IS NULL OR status = $2)
             AND ($3::text IS NULL OR kind = $3)
             AND ($4::uuid IS NULL OR id < $4)
           ORDER BY id DESC LIMIT $5"#,
        tenant_id,
        status as Option<JobStatus>,
        kind,
        before,
        limit
    )
    .fetch_all(pool)
    .await
}

/// What a worker learns when it wins the start of a job.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub args: Value,
    /// `Running` when this worker owns the attempt; `Dead` when attempts were already exhausted
    /// by workers that died mid-job; `Cancelled` when a cancel was requested meanwhile.
    pub status: JobStatus,
    pub attempt: i32,
    pub max_attempts: i32,
}

/// `queued|failed (due) → running` for a batch of delivered ids, or take over a `running` row
/// whose lease expired (its worker died). Attempts count here, at start, so a job that kills its
/// worker every time still reaches `dead`. Ids missing from the answer were not started: someone
/// else has them, they are not due, or they are finished — ack and drop them. One statement for
/// the whole batch a worker read from Redis.
///
/// Committed with `synchronous_commit = off` (set for this statement's transaction only): the
/// start no longer waits for the WAL flush, which under load was most of a delivery's latency
/// (a handler slot waits on it). This is safe because losing a start loses nothing accepted:
/// only a Postgres crash can drop it (a worker crash cannot; the change is visible at once), and
/// then the row is back to `queued` with its dispatch stamp, so the relay delivers it again —
/// the at-least-once contract handlers already honour. Finishes, which carry results, keep
/// synchronous commits, and WAL order means a flushed finish implies its start was flushed too.
pub async fn start_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
    lease: Duration,
) -> sqlx::Result<Vec<Started>> {
    sqlx::query_as!(
        Started,
        r#"UPDATE jobs SET
             status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'::job_status
                           WHEN attempt >= max_attempts THEN 'dead'::job_status
                           ELSE 'running'::job_status END,
             attempt = CASE WHEN cancel_requested_at IS NULL AND attempt < max_attempts
                            THEN attempt + 1 ELSE attempt END,
             lease_until = CASE WHEN cancel_requested_at IS NULL AND attempt < max_attempts
                                THEN now() + $2 END,
             started_at = CASE WHEN cancel_requested_at IS NULL AND attempt < max_attempts
                               THEN now() ELSE started_at END,
             finished_at = CASE WHEN cancel_requested_at IS NULL AND attempt < max_attempts
                                THEN NULL ELSE now() END,
             last_error = CASE WHEN cancel_requested_at IS NULL AND attempt >= max_attempts
                               THEN jsonb_build_object(
                                 'kind', 'fatal',
                                 'message', format('attempts exhausted (%s of %s): the worker running the last attempt was lost before finishing', attempt, max_attempts))
                               ELSE last_error END,
             dispatched_at = NULL,
             updated_at = now()
           FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
           -- Status compared as text on purpose: it keeps the partial indexes (jobs_waiting,
           -- jobs_leased) out of this plan. Without statistics (a table filled faster than
           -- autovacuum analyzes it) the planner ANDed the primary key with a full scan of
           -- jobs_waiting, a cost that grows with the backlog on every start.
           WHERE id = ANY($1) AND run_at <= now()
             AND (status::text IN ('queued', 'failed')
                  OR (status::text = 'running' AND lease_until < now()))
           RETURNING id, tenant_id, kind, args, status AS "status: JobStatus", attempt, max_attempts"#,
        ids,
        interval(lease)
    )
    .fetch_all(conn)
    .await
}

/// Batched heartbeat for every job a worker process runs: extends the leases of the attempts it
/// still owns and reports, per job, whether a cancel was requested. Jobs missing from the answer
/// were lost (another worker took them over after the lease expired).
///
/// Asynchronous commit, like [`start_many`]: a lease extension lost in a Postgres crash only
/// means the lease may lapse early, and then the job runs again (at-least-once).
pub async fn heartbeat_many(
    pool: &PgPool,
    ids: &[Uuid],
    attempts: &[i32],
    lease: Duration,
) -> sqlx::Result<Vec<(Uuid, bool)>> {
    let rows = sqlx::query!(
        r#"UPDATE jobs j SET lease_until = now() + $3, updated_at = now()
           FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
           -- As text: the primary key, never a scan of the partial index jobs_leased.
           WHERE j.id = ANY($1) AND j.status::text = 'running'
             AND j.attempt = ($2::int4[])[array_position($1::uuid[], j.id)]
           RETURNING j.id, j.cancel_requested_at IS NOT NULL AS "cancel!""#,
        ids,
        attempts,
        interval(lease)
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.cancel)).collect())
}

pub async fn set_progress(
    pool: &PgPool,
    id: Uuid,
    attempt: i32,
    progress: &Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET progress = $3, updated_at = now()
         WHERE id = $1 AND status = 'running' AND attempt = $2",
        id,
        attempt,
        progress
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `running → succeeded` for a batch: one statement, one commit. Any attempt may land a success
/// (the effect happened; handlers are idempotent), but only once: the first finisher wins and
/// later ones change nothing. Returns the ids it finished (the others were finished first).
pub async fn succeed_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
    results: &[Value],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        // Driven by `id = ANY($1)` (an index scan whatever the statistics say) rather than a
        // join against UNNEST, for which the planner sometimes chose a plan that burnt a CPU
        // second per 512-row batch once the table's statistics went stale mid-drain.
        "UPDATE jobs j SET status = 'succeeded',
                           result = ($2::jsonb[])[array_position($1::uuid[], j.id)],
                           finished_at = now(), lease_until = NULL, run_at = now(),
                           updated_at = now()
         WHERE j.id = ANY($1) AND j.status IN ('running', 'failed')
         RETURNING j.id",
        ids,
        results
    )
    .fetch_all(conn)
    .await
}

/// `running → failed` with the next attempt due after `delay`. Only the current attempt's owner.
pub async fn fail_retryable(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    delay: Duration,
    error: &Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET status = 'failed', run_at = now() + $3, last_error = $4,
                         lease_until = NULL, dispatched_at = NULL, updated_at = now()
         WHERE id = $1 AND status = 'running' AND attempt = $2",
        id,
        attempt,
        interval(delay),
        error
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `running → dead` (fatal error or last attempt). Only the current attempt's owner.
pub async fn fail_dead(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    error: &Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET status = 'dead', last_error = $3, finished_at = now(),
                         lease_until = NULL, updated_at = now()
         WHERE id = $1 AND status = 'running' AND attempt = $2",
        id,
        attempt,
        error
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `running → cancelled` after the handler stopped on a cancel request.
pub async fn mark_cancelled(conn: &mut PgConnection, id: Uuid, attempt: i32) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL,
                         updated_at = now()
         WHERE id = $1 AND status = 'running' AND attempt = $2",
        id,
        attempt
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A worker gives a job it could not finish back to the queue, uncounted: on shutdown, or a
/// job it started ahead of a free slot and never ran (`never_ran`, which also forgets the start
/// time on a first attempt, so the row reads as never started).
pub async fn hand_back(
    pool: &PgPool,
    id: Uuid,
    attempt: i32,
    never_ran: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET status = 'queued', attempt = attempt - 1, lease_until = NULL,
                         started_at = CASE WHEN $3 AND attempt = 1 THEN NULL ELSE started_at END,
                         dispatched_at = NULL, updated_at = now()
         WHERE id = $1 AND status = 'running' AND attempt = $2",
        id,
        attempt,
        never_ran
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `running → queued`, due after `delay`, with this attempt uncounted (like [`hand_back`]):
/// the handler said "not now" for a reason outside the job (a dependency's circuit breaker is
/// open), so waiting must not use up the job's attempts. `last_error` says why it waits.
pub async fn defer(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    delay: Duration,
    reason: &Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE jobs SET status = 'queued', attempt = attempt - 1, run_at = now() + $3,
                         last_error = $4, lease_until = NULL, dispatched_at = NULL,
                         updated_at = now()
         WHERE id = $1 AND status = 'running' AND attempt = $2",
        id,
        attempt,
        interval(delay),
        reason
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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
    let updated = sqlx::query_as!(
        Job,
        r#"UPDATE jobs SET
             status = CASE WHEN status = 'running' THEN status ELSE 'cancelled'::job_status END,
             finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,
             cancel_requested_at = COALESCE(cancel_requested_at, now()),
             updated_at = now()
           WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'failed', 'running')
           RETURNING id, tenant_id, kind, queue, args, status AS "status: JobStatus", attempt,
                     max_attempts, run_at, dispatched_at, lease_until, progress, result, last_error,
                     idempotency_key, cancel_requested_at, created_at, started_at, finished_at,
                     updated_at"#,
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
pub async fn retry(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"UPDATE jobs SET status = 'queued', attempt = 0, run_at = now(), finished_at = NULL,
                          dispatched_at = NULL, cancel_requested_at = NULL, updated_at = now()
           WHERE id = $1 AND tenant_id = $2 AND status IN ('dead', 'failed')
           RETURNING id, tenant_id, kind, queue, args, status AS "status: JobStatus", attempt,
                     max_attempts, run_at, dispatched_at, lease_until, progress, result, last_error,
                     idempotency_key, cancel_requested_at, created_at, started_at, finished_at,
                     updated_at"#,
        id,
        tenant_id
    )
    .fetch_optional(pool)
    .await
}

/// Marks a job as pushed (or, with `false`, as not pushed so the relay takes it at once).
pub async fn set_dispatched(pool: &PgPool, ids: &[Uuid], dispatched: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET dispatched_at = CASE WHEN $2 THEN now() END WHERE id = ANY($1)",
        ids,
        dispatched
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Relay: locks (SKIP LOCKED, so relays in N processes cooperate) up to `limit` ids of `queue`
/// that Redis should hold but may not: due waiting rows never dispatched or dispatched longer
/// than `redispatch_after` ago, and running rows whose lease expired (their worker died).
/// The caller [`mark_dispatched`]s them, commits, then pushes them to Redis.
pub async fn claim_for_dispatch(
    conn: &mut PgConnection,
    queue: &str,
    redispatch_after: Duration,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let after = interval(redispatch_after);
    let mut ids = sqlx::query_scalar!(
        "SELECT id FROM jobs
         WHERE queue = $1 AND status IN ('queued', 'failed') AND run_at <= now()
           AND (dispatched_at IS NULL OR dispatched_at < now() - $2::interval)
         ORDER BY run_at
         LIMIT $3
         FOR UPDATE SKIP LOCKED",
        queue,
        after,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    let room = limit - ids.len() as i64;
    if room > 0 {
        let orphans = sqlx::query_scalar!(
            "SELECT id FROM jobs
             WHERE status = 'running' AND lease_until < now() AND queue = $1
               AND (dispatched_at IS NULL OR dispatched_at < now() - $2::interval)
             ORDER BY lease_until
             LIMIT $3
             FOR UPDATE SKIP LOCKED",
            queue,
            after,
            room
        )
        .fetch_all(&mut *conn)
        .await?;
        ids.extend(orphans);
    }
    Ok(ids)
}

pub async fn mark_dispatched(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET dispatched_at = now() WHERE id = ANY($1)",
        ids
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// After Redis lost its data (flush, restart without persistence), every waiting row of the
/// queue must be dispatched again at once rather than after `redispatch_after`.
pub async fn forget_dispatches(pool: &PgPool, queue: &str) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE jobs SET dispatched_at = NULL
         WHERE queue = $1 AND status IN ('queued', 'failed') AND dispatched_at IS NOT NULL",
        queue
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Counts by (kind, status), for `/metrics`.
pub async fn counts_by_kind_and_status(
    pool: &PgPool,
) -> sqlx::Result<Vec<(String, JobStatus, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT kind, status AS "status: JobStatus", count(*) AS "n!"
           FROM jobs GROUP BY kind, status ORDER BY kind, status"#
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
