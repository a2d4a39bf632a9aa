//! Operator figures: subscriptions per plan, churn, credit-pack sales. Revenue is priced from
//! the catalog by the caller, so this module only counts.

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct PlanCount {
    pub plan_id: String,
    pub billing_interval: String,
    pub status: String,
    pub n: i64,
}

/// Subscriptions that are not over, by plan, interval and status.
pub async fn live_subscriptions(pool: &PgPool) -> sqlx::Result<Vec<PlanCount>> {
    sqlx::query_as!(
        PlanCount,
        r#"SELECT plan_id, billing_interval, status, count(*) AS "n!"
           FROM billing_subscriptions
           WHERE status NOT IN ('canceled', 'incomplete_expired')
           GROUP BY plan_id, billing_interval, status ORDER BY plan_id, billing_interval, status"#
    )
    .fetch_all(pool)
    .await
}

/// Subscriptions that ended (canceled) within the last `days` days.
pub async fn churned(pool: &PgPool, days: i32) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM billing_subscriptions
           WHERE status = 'canceled'
             AND COALESCE(ended_at, canceled_at, updated_at) >= now() - make_interval(days => $1)"#,
        days
    )
    .fetch_one(pool)
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct PackSales {
    pub item_id: String,
    pub count: i64,
    pub amount: i64,
}

/// Credit packs sold within the last `days` days, per pack.
pub async fn credit_pack_sales(pool: &PgPool, days: i32) -> sqlx::Result<Vec<PackSales>> {
    sqlx::query_as!(
        PackSales,
        r#"SELECT item_id, count(*) AS "count!", COALESCE(sum(amount), 0)::int8 AS "amount!"
           FROM billing_purchases
           WHERE kind = 'credit_pack' AND created_at >= now() - make_interval(days => $1)
           GROUP BY item_id ORDER BY item_id"#,
        days
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct OverageUnits {
    pub plan_id: String,
    /// Periods closed in the window.
    pub periods: i64,
    pub units: i64,
}

/// Overage units of the usage periods closed (by the period rollover, which bills their
/// overage) within the last `days` days, per plan; the caller prices them from the catalog.
pub async fn closed_overage(pool: &PgPool, days: i32) -> sqlx::Result<Vec<OverageUnits>> {
    sqlx::query_as!(
        OverageUnits,
        r#"SELECT plan_id, count(*) AS "periods!", COALESCE(sum(used_overage), 0)::int8 AS "units!"
           FROM usage_periods
           WHERE closed_at IS NOT NULL AND closed_at >= now() - make_interval(days => $1)
           GROUP BY plan_id ORDER BY plan_id"#,
        days
    )
    .fetch_all(pool)
    .await
}
