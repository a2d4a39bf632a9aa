//! The scheduler's tick ledger (`schedule_runs`) and the housekeeping that keeps `jobs` small.
//!
//! A tick is recorded with `INSERT … ON CONFLICT DO NOTHING` on the `(task, tick)` primary key,
//! inside the transaction that inserts the tick's job: however many scheduler replicas see the
//! same tick, exactly one of them records it and only that one's job commits.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::job::{interval, JobStatus};

/// One recorded tick, with the status of the job it enqueued (for listings).
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRun {
    pub task: String,
    pub tick: DateTime<Utc>,
    /// `None` once housekeeping deleted the (finished) job.
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// `None` when the job is gone.
    pub job_status: Option<JobStatus>,
}

/// Records that `task` ran for `tick`, enqueuing `job_id` (which the caller inserts in the same
/// transaction; the foreign key is checked at commit). `false`: the tick was recorded before,
/// by this or another replica, and the caller must roll back instead of enqueuing.
///
/// When two replicas race, the second `INSERT` waits on the first one's primary-key lock and
/// returns `false` once it commits (or records the tick itself if the first rolled back).
pub async fn record_tick(
    conn: &mut PgConnection,
    task: &str,
    tick: DateTime<Utc>,
    job_id: Uuid,
) -> sqlx::Result<bool> {
    let recorded = sqlx::query_scalar!(
        "INSERT INTO schedule_runs (task, tick, job_id) VALUES ($1, $2, $3)
         ON CONFLICT (task, tick) DO NOTHING
         RETURNING true AS \"recorded!\"",
        task,
        tick,
        job_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(recorded.is_some())
}

/// The newest tick recorded for each of `tasks` (`None`: never), in the order given: due ticks
/// are the ones after it. One round trip for every task, as a scheduler asks each second.
pub async fn last_ticks(pool: &PgPool, tasks: &[&str]) -> sqlx::Result<Vec<Option<DateTime<Utc>>>> {
    sqlx::query_scalar!(
        "SELECT (SELECT max(tick) FROM schedule_runs r WHERE r.task = t.task)
         FROM unnest($1::text[]) WITH ORDINALITY AS t(task, n)
         ORDER BY t.n",
        tasks as &[&str]
    )
    .fetch_all(pool)
    .await
}

/// The newest `limit` runs of `task`, newest first, with their jobs' statuses.
pub async fn runs(pool: &PgPool, task: &str, limit: i64) -> sqlx::Result<Vec<ScheduleRun>> {
    sqlx::query_as!(
        ScheduleRun,
        r#"SELECT r.task, r.tick, r.job_id, r.created_at, j.status AS "job_status?: JobStatus"
           FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id
           WHERE r.task = $1
           ORDER BY r.tick DESC
           LIMIT $2"#,
        task,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Deletes finished jobs (`succeeded`, `dead`, `cancelled`) whose `finished_at` is older than
/// `older_than`; returns how many.
///
/// Runs as a series of short autocommitted statements of at most `batch` rows each, so it never
/// holds many locks or one long transaction on the hot `jobs` table. Batches walk the primary
/// key (ids are UUIDv7, so old jobs come first) from where the previous one stopped, which
/// keeps the whole pass one index walk instead of a rescan per batch. Rows a worker holds are
/// skipped, not waited for. `failed` jobs are not finished (they wait for their next attempt).
pub async fn prune_finished_jobs(
    pool: &PgPool,
    older_than: Duration,
    batch: i64,
) -> sqlx::Result<u64> {
    let batch = batch.max(1);
    let mut after = Uuid::nil();
    let mut total = 0u64;
    loop {
        let (deleted, last) = prune_batch(pool, older_than, after, batch).await?;
        total += deleted as u64;
        match last {
            Some(last) if deleted >= batch => after = last,
            _ => return Ok(total),
        }
    }
}

/// One batch of [`prune_finished_jobs`]: deletes up to `batch` finished jobs with ids above
/// `after`; returns how many and the highest id deleted.
async fn prune_batch(
    pool: &PgPool,
    older_than: Duration,
    after: Uuid,
    batch: i64,
) -> sqlx::Result<(i64, Option<Uuid>)> {
    let row = sqlx::query!(
        r#"WITH doomed AS (
             SELECT id FROM jobs
             WHERE id > $1
               AND status IN ('succeeded', 'dead', 'cancelled')
               AND finished_at < now() - $2::interval
             ORDER BY id
             LIMIT $3
             FOR UPDATE SKIP LOCKED
           ), gone AS (
             DELETE FROM jobs j USING doomed d WHERE j.id = d.id RETURNING j.id
           )
           SELECT (SELECT count(*) FROM gone) AS "deleted!",
                  (SELECT id FROM gone ORDER BY id DESC LIMIT 1) AS "last?""#,
        after,
        interval(older_than),
        batch
    )
    .fetch_one(pool)
    .await?;
    Ok((row.deleted, row.last))
}

/// Deletes tick records older than `older_than`, except each task's newest one (due ticks are
/// computed from it, so it must stay however old it is). Returns how many were deleted. The
/// retention should cover every tick a catch-up could still consider; a year is plenty for a
/// monthly task.
pub async fn prune_runs(pool: &PgPool, older_than: Duration) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM schedule_runs s
         WHERE s.tick < now() - $1::interval
           AND s.tick < (SELECT max(m.tick) FROM schedule_runs m WHERE m.task = s.task)",
        interval(older_than)
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
