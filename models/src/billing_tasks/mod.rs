//! Scheduled billing tasks (issue #6): per-(task, tenant, period) exactly-once keys (here),
//! tenant notifications and their URL ([`notifications`]), revenue snapshots ([`revenue`]),
//! and what ends soon or has ended, which the billing jobs scan ([`expiry`]).
//!
//! Every notice is exactly-once through `notifications`' unique `(tenant_id, kind, subject)`:
//! writers insert with `ON CONFLICT DO NOTHING` and act (deliver) only when they inserted.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::metering::Period;

pub mod expiry;
pub mod notifications;
pub mod revenue;

pub use expiry::{
    cancellations_ending, expire_grants, grants_expiring, past_due_tenants, trials_ending, Ending,
};
pub use notifications::{
    insert_notification, list_notifications, notification_url, set_delivery_job,
    set_notification_url, Notification,
};
pub use revenue::{
    churned_between, credit_pack_sales_between, insert_revenue_snapshot, revenue_snapshots,
    RevenueSnapshot,
};

/// Records that `task` enqueued `job_id` for the tenant's period starting `period_start`, in
/// the caller's transaction (the job is inserted right after; its FK is checked at commit).
/// `false`: already recorded (by this or another replica) — roll back, enqueue nothing.
pub async fn record_tenant_run(
    conn: &mut PgConnection,
    task: &str,
    tenant_id: Uuid,
    period_start: DateTime<Utc>,
    job_id: Uuid,
) -> sqlx::Result<bool> {
    let recorded = sqlx::query_scalar!(
        "INSERT INTO schedule_tenant_runs (task, tenant_id, period_start, job_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true AS \"recorded!\"",
        task,
        tenant_id,
        period_start,
        job_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(recorded.is_some())
}

/// Records a tick of a per-tenant task, which enqueues its jobs under [`record_tenant_run`]
/// keys rather than one job per tick (so `job_id` stays NULL). `false`: already recorded.
pub async fn record_fan_out_tick(
    pool: &PgPool,
    task: &str,
    tick: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO schedule_runs (task, tick) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        task,
        tick
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Periods that ended at or before `now`, are not closed and have no run of `task` yet
/// (oldest first, at most `limit`): what the period rollover enqueues.
pub async fn periods_to_close(
    pool: &PgPool,
    task: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let rows = sqlx::query!(
        "SELECT p.tenant_id, p.period_start FROM usage_periods p
         WHERE p.closed_at IS NULL AND p.period_end <= $2
           AND NOT EXISTS (SELECT 1 FROM schedule_tenant_runs r WHERE r.task = $1
                           AND r.tenant_id = p.tenant_id AND r.period_start = p.period_start)
         ORDER BY p.period_end, p.tenant_id LIMIT $3",
        task,
        now,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.tenant_id, r.period_start))
        .collect())
}

/// Jobs used per kind in a period, as `{kind: used}`.
pub async fn period_kinds(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    period_start: DateTime<Utc>,
) -> sqlx::Result<Value> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(jsonb_object_agg(kind, used), '{}') AS "kinds!" FROM usage_period_kinds
           WHERE tenant_id = $1 AND period_start = $2"#,
        tenant_id,
        period_start
    )
    .fetch_one(conn)
    .await
}

pub async fn mark_period_closed(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    period_start: DateTime<Utc>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE usage_periods SET closed_at = $3 WHERE tenant_id = $1 AND period_start = $2",
        tenant_id,
        period_start,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every period that ended in `(from, to]`, by tenant (monthly summaries and overage revenue:
/// a calendar-month period ending at midnight on the 1st belongs to the month before).
pub async fn periods_ending(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Period>> {
    sqlx::query_as!(
        Period,
        "SELECT tenant_id, period_start, period_end, plan_id, included_units, used_included,
                reserved_included, used_credits, reserved_credits, used_overage, reserved_overage,
                closed_at
         FROM usage_periods WHERE period_end > $1 AND period_end <= $2
         ORDER BY tenant_id, period_start",
        from,
        to
    )
    .fetch_all(pool)
    .await
}
