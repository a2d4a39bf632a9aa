//! Scheduled billing tasks (issue #6): per-(task, tenant, period) exactly-once keys, tenant
//! notifications and their URL, revenue snapshots, and the reads the billing jobs scan.
//!
//! Every notice is exactly-once through `notifications`' unique `(tenant_id, kind, subject)`:
//! writers insert with `ON CONFLICT DO NOTHING` and act (deliver) only when they inserted.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::billing::ledger::CreditGrant;
use crate::metering::Period;

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

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub subject: String,
    pub body: Value,
    pub delivery_job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Stores a notice unless `(tenant, kind, subject)` exists; `Some(id)` when this call stored it.
pub async fn insert_notification(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    kind: &str,
    subject: &str,
    body: &Value,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "INSERT INTO notifications (id, tenant_id, kind, subject, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, kind, subject) DO NOTHING RETURNING id",
        Uuid::now_v7(),
        tenant_id,
        kind,
        subject,
        body
    )
    .fetch_optional(conn)
    .await
}

pub async fn set_delivery_job(conn: &mut PgConnection, id: Uuid, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE notifications SET delivery_job_id = $2 WHERE id = $1",
        id,
        job_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's notifications, newest first, keyset-paginated on the (UUIDv7) id.
pub async fn list_notifications(
    pool: &PgPool,
    tenant_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Notification>> {
    sqlx::query_as!(
        Notification,
        "SELECT id, tenant_id, kind, subject, body, delivery_job_id, created_at FROM notifications
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        tenant_id,
        before,
        limit
    )
    .fetch_all(pool)
    .await
}

pub async fn notification_url(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT url FROM tenant_notification_settings WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_optional(conn)
    .await
}

/// Sets (or with `None` removes) where the tenant's notifications are delivered.
pub async fn set_notification_url(
    pool: &PgPool,
    tenant_id: Uuid,
    url: Option<&str>,
) -> sqlx::Result<()> {
    match url {
        Some(url) => {
            sqlx::query!(
                "INSERT INTO tenant_notification_settings (tenant_id, url) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET url = EXCLUDED.url, updated_at = now()",
                tenant_id,
                url
            )
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query!(
                "DELETE FROM tenant_notification_settings WHERE tenant_id = $1",
                tenant_id
            )
            .execute(pool)
            .await?
        }
    };
    Ok(())
}

/// A month's revenue figures (see the `revenue_snapshots` table).
#[derive(Debug, Clone, Serialize)]
pub struct RevenueSnapshot {
    pub month: NaiveDate,
    pub currency: String,
    pub mrr: i64,
    pub arr: i64,
    pub active_subscriptions: Value,
    pub churned_30d: i64,
    pub overage_revenue: i64,
    pub credit_pack_sales: i64,
}

/// Stores the month's snapshot once; `false` when it already existed (a rerun).
pub async fn insert_revenue_snapshot(pool: &PgPool, s: &RevenueSnapshot) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO revenue_snapshots (month, currency, mrr, arr, active_subscriptions,
             churned_30d, overage_revenue, credit_pack_sales)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (month) DO NOTHING",
        s.month,
        s.currency,
        s.mrr,
        s.arr,
        s.active_subscriptions,
        s.churned_30d,
        s.overage_revenue,
        s.credit_pack_sales
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revenue_snapshots(pool: &PgPool) -> sqlx::Result<Vec<RevenueSnapshot>> {
    sqlx::query_as!(
        RevenueSnapshot,
        "SELECT month, currency, mrr, arr, active_subscriptions, churned_30d, overage_revenue,
                credit_pack_sales FROM revenue_snapshots ORDER BY month"
    )
    .fetch_all(pool)
    .await
}

/// Subscriptions that ended (canceled) in `[from, to)`.
pub async fn churned_between(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM billing_subscriptions WHERE status = 'canceled'
           AND COALESCE(ended_at, canceled_at, updated_at) >= $1
           AND COALESCE(ended_at, canceled_at, updated_at) < $2"#,
        from,
        to
    )
    .fetch_one(pool)
    .await
}

/// Credit-pack sales (amount) in `[from, to)`.
pub async fn credit_pack_sales_between(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(amount), 0)::int8 AS "amount!" FROM billing_purchases
           WHERE kind = 'credit_pack' AND created_at >= $1 AND created_at < $2"#,
        from,
        to
    )
    .fetch_one(pool)
    .await
}

/// A subscription date something ends at: a trial's end, or the end of a period after which
/// a subscription set to cancel stops.
#[derive(Debug, Clone)]
pub struct Ending {
    pub tenant_id: Uuid,
    pub plan_id: String,
    pub ends_at: DateTime<Utc>,
}

/// Trials ending in `(from, to]`.
pub async fn trials_ending(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Ending>> {
    sqlx::query_as!(
        Ending,
        r#"SELECT tenant_id, plan_id, trial_end AS "ends_at!" FROM billing_subscriptions
           WHERE status = 'trialing' AND trial_end > $1 AND trial_end <= $2"#,
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// Subscriptions set to cancel whose current period ends in `(from, to]`.
pub async fn cancellations_ending(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Ending>> {
    sqlx::query_as!(
        Ending,
        r#"SELECT tenant_id, plan_id, current_period_end AS "ends_at!" FROM billing_subscriptions
           WHERE cancel_at_period_end AND status IN ('active', 'trialing', 'past_due')
             AND current_period_end > $1 AND current_period_end <= $2"#,
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// Tenants whose subscription is past due (their grace is computed from the oldest failure).
pub async fn past_due_tenants(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!("SELECT tenant_id FROM billing_subscriptions WHERE status = 'past_due'")
        .fetch_all(pool)
        .await
}

/// Grants with units left expiring in `(from, to]`.
pub async fn grants_expiring(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<CreditGrant>> {
    sqlx::query_as!(
        CreditGrant,
        "SELECT id, tenant_id, purchase_id, pack_id, units, remaining, granted_at, expires_at
         FROM billing_credit_grants WHERE remaining > 0 AND expires_at > $1 AND expires_at <= $2
         ORDER BY expires_at, id",
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// Zeroes every grant expired at `as_of` that still has units, in the caller's transaction;
/// returns them with `remaining` as it was (the units that expired). Units already held by
/// unfinished jobs' reservations were taken off `remaining` at submit and are untouched.
pub async fn expire_grants(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
) -> sqlx::Result<Vec<CreditGrant>> {
    sqlx::query_as!(
        CreditGrant,
        r#"WITH doomed AS (
             SELECT id, remaining FROM billing_credit_grants
             WHERE expires_at <= $1 AND remaining > 0 FOR UPDATE
           )
           UPDATE billing_credit_grants g SET remaining = 0 FROM doomed d WHERE g.id = d.id
           RETURNING g.id, g.tenant_id, g.purchase_id, g.pack_id, g.units,
                     d.remaining AS "remaining!", g.granted_at, g.expires_at"#,
        as_of
    )
    .fetch_all(conn)
    .await
}
