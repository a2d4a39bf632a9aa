//! A worker's attempt at a job: the guarded start of a delivered batch, heartbeats, progress,
//! and each way an attempt ends (success, retryable or fatal error, cancel, hand-back, defer).

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{interval, JobStatus};

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
/// else has them, they are not due, they are finished, or their tenant is disabled — ack and
/// drop them (the relay delivers them again later). One statement for
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
             -- The shape of every dead job's error (`JobError::to_final_json`): it says it is
             -- final, and "exhausted" like any job whose last attempt failed.
             last_error = CASE WHEN cancel_requested_at IS NULL AND attempt >= max_attempts
                               THEN jsonb_build_object(
                                 'kind', 'exhausted', 'final', true,
                                 'attempt', attempt, 'max_attempts', max_attempts,
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
             -- A disabled tenant's jobs wait (see `crate::tenant_state`).
             AND NOT EXISTS (SELECT 1 FROM tenants t
                             WHERE t.id = jobs.tenant_id AND t.disabled_at IS NOT NULL)
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
    conn: &mut PgConnection,
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
    .fetch_all(conn)
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
        // Driven by `id = ANY($1)` (the primary key: on `Held` connections, whatever the
        // statistics and the table's size when the plan was made) rather than a
        // join against UNNEST, for which the planner sometimes chose a plan that burnt a CPU
        // second per 512-row batch once the table's statistics went stale mid-drain.
        "UPDATE jobs j SET status = 'succeeded',
                           result = ($2::jsonb[])[array_position($1::uuid[], j.id)],
                           finished_at = now(), lease_until = NULL, updated_at = now()
         WHERE j.id = ANY($1) AND j.status IN ('running', 'failed')
         RETURNING j.id",
        ids,
        results
    )
    .fetch_all(conn)
    .await
}

/// `running → failed` with the next attempt due after `delay`. Only the current attempt's owner.
///
/// A cancel requested meanwhile wins: the job ends `cancelled` now (its reservation released)
/// rather than waiting, `failed`, for an attempt that would only then see the request. The
/// heartbeat that tells a handler about a cancel runs once a second, so a handler failing
/// quickly never heard of it. Returns the status the job took, `None` if this attempt no longer
/// owned it.
pub async fn fail_retryable(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    delay: Duration,
    error: &Value,
) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar!(
        r#"UPDATE jobs SET
             status = CASE WHEN cancel_requested_at IS NULL THEN 'failed'::job_status
                           ELSE 'cancelled'::job_status END,
             run_at = CASE WHEN cancel_requested_at IS NULL THEN now() + $3 ELSE run_at END,
             finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
             last_error = $4, lease_until = NULL, dispatched_at = NULL, updated_at = now()
           WHERE id = $1 AND status = 'running' AND attempt = $2
           RETURNING status AS "status: JobStatus""#,
        id,
        attempt,
        interval(delay),
        error
    )
    .fetch_optional(conn)
    .await
}

/// `running → dead` (fatal error or last attempt), or `cancelled` if a cancel was requested
/// meanwhile (see [`fail_retryable`]). Only the current attempt's owner; returns the status the
/// job took.
pub async fn fail_dead(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    error: &Value,
) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar!(
        r#"UPDATE jobs SET
             status = CASE WHEN cancel_requested_at IS NULL THEN 'dead'::job_status
                           ELSE 'cancelled'::job_status END,
             last_error = $3, finished_at = now(), lease_until = NULL, updated_at = now()
           WHERE id = $1 AND status = 'running' AND attempt = $2
           RETURNING status AS "status: JobStatus""#,
        id,
        attempt,
        error
    )
    .fetch_optional(conn)
    .await
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
/// open), so waiting must not use up the job's attempts. `last_error` says why it waits. A
/// cancel requested meanwhile ends it `cancelled` instead (see [`fail_retryable`]).
pub async fn defer(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    delay: Duration,
    reason: &Value,
) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar!(
        r#"UPDATE jobs SET
             status = CASE WHEN cancel_requested_at IS NULL THEN 'queued'::job_status
                           ELSE 'cancelled'::job_status END,
             attempt = CASE WHEN cancel_requested_at IS NULL THEN attempt - 1 ELSE attempt END,
             run_at = CASE WHEN cancel_requested_at IS NULL THEN now() + $3 ELSE run_at END,
             finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
             last_error = $4, lease_until = NULL, dispatched_at = NULL, updated_at = now()
           WHERE id = $1 AND status = 'running' AND attempt = $2
           RETURNING status AS "status: JobStatus""#,
        id,
        attempt,
        interval(delay),
        reason
    )
    .fetch_optional(conn)
    .await
}
