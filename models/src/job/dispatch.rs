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
