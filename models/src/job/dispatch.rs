//! The relay's bookkeeping: which rows Redis has been told about (`dispatched_at`), claiming
//! rows to push, and forgetting pushes Redis lost.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::interval;

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

/// Relay: one statement for every queue a worker serves. Locks (SKIP LOCKED, so relays in N
/// processes split the work) up to `rooms[i]` rows of `queues[i]` that Redis should hold but
/// may not: due waiting rows never dispatched or dispatched longer than `redispatch_after` ago,
/// then, in the room left, running rows whose lease expired (their worker died). It stamps them
/// and commits before answering (`(id, queue)`, oldest first per queue), so a worker that reads
/// an id at once finds its row unlocked; the caller then pushes them.
///
/// One round trip even when nothing is due, as on every tick of an idle relay (five a second
/// in each worker process); a transaction per queue had cost each idle worker about a hundred
/// round trips a second.
pub async fn dispatch_due(
    conn: &mut PgConnection,
    queues: &[String],
    rooms: &[i64],
    redispatch_after: Duration,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"WITH q AS (
             SELECT queue, room FROM unnest($1::text[], $2::int8[]) AS t(queue, room)
           ), waiting AS (
             SELECT w.id, q.queue FROM q CROSS JOIN LATERAL (
               SELECT id FROM jobs
               WHERE jobs.queue = q.queue AND status IN ('queued', 'failed') AND run_at <= now()
                 AND (dispatched_at IS NULL OR dispatched_at < now() - $3::interval)
               ORDER BY run_at
               LIMIT q.room
               FOR UPDATE SKIP LOCKED) w
           ), orphans AS (
             SELECT o.id FROM q CROSS JOIN LATERAL (
               SELECT id FROM jobs
               WHERE status = 'running' AND lease_until < now() AND jobs.queue = q.queue
                 AND (dispatched_at IS NULL OR dispatched_at < now() - $3::interval)
               ORDER BY lease_until
               LIMIT greatest(q.room - (SELECT count(*) FROM waiting WHERE waiting.queue = q.queue), 0)
               FOR UPDATE SKIP LOCKED) o
           ), stamped AS (
             -- By primary key, whatever the planner guesses of the CTEs' sizes.
             UPDATE jobs SET dispatched_at = now()
             WHERE id = ANY(ARRAY(SELECT id FROM waiting UNION ALL SELECT id FROM orphans))
             RETURNING id, queue, run_at
           )
           SELECT id AS "id!", queue AS "queue!" FROM stamped ORDER BY queue, run_at"#,
        queues,
        rooms,
        interval(redispatch_after)
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.queue)).collect())
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
