//! Monthly revenue snapshots and the churn and credit-pack figures that go into them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

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
