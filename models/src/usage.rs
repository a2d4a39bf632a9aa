//! The append-only usage ledger: one row per successful job, keyed by the job id, so a job that
//! is retried or delivered twice still records its usage exactly once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct UsageEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub job_id: Uuid,
    pub kind: String,
    pub units: i32,
    pub recorded_at: DateTime<Utc>,
}

/// Records the job's usage; a second call for the same job changes nothing and returns false.
/// Runs on the caller's connection so it can share the transaction of the job's results.
///
/// The units are those the job's reservation holds when it was metered (what the tenant is
/// billed for: 5 for a sprint, 20 for a portfolio), else `units` (the catalog's weight when
/// metering is off). Every event had said 1, so a tenant summing its history got the wrong bill.
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    job_id: Uuid,
    kind: &str,
    units: i32,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO usage_events (id, tenant_id, job_id, kind, units)
         VALUES ($1, $2, $3, $4,
                 COALESCE((SELECT units::int FROM usage_reservations WHERE job_id = $3), $5))
         ON CONFLICT (job_id) DO NOTHING",
        Uuid::now_v7(),
        tenant_id,
        job_id,
        kind,
        units
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The tenant's usage events, newest first.
pub async fn list(pool: &PgPool, tenant_id: Uuid, limit: i64) -> sqlx::Result<Vec<UsageEvent>> {
    sqlx::query_as!(
        UsageEvent,
        "SELECT id, tenant_id, job_id, kind, units, recorded_at FROM usage_events
         WHERE tenant_id = $1 ORDER BY recorded_at DESC, id DESC LIMIT $2",
        tenant_id,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Usage events recorded for one job (0 or 1 rows; more would be a bug the tests look for).
pub async fn for_job(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Vec<UsageEvent>> {
    sqlx::query_as!(
        UsageEvent,
        "SELECT id, tenant_id, job_id, kind, units, recorded_at FROM usage_events WHERE job_id = $1",
        job_id
    )
    .fetch_all(pool)
    .await
}
