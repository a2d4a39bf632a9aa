//! The daily Stripe reconciliation's reads and writes: which subscriptions Stripe manages, and
//! the discrepancies found (`billing_discrepancies`, append-only).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Tenants whose subscription is managed in Stripe and not ended, with its Stripe id.
pub async fn stripe_managed(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"SELECT tenant_id, stripe_subscription_id AS "sub!" FROM billing_subscriptions
           WHERE mode = 'stripe' AND stripe_subscription_id IS NOT NULL
             AND status NOT IN ('canceled', 'incomplete_expired')
           ORDER BY tenant_id"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.tenant_id, r.sub)).collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct Discrepancy {
    pub tenant_id: Uuid,
    pub stripe_subscription_id: String,
    pub field: String,
    pub local_value: Value,
    pub stripe_value: Value,
}

/// Records one field found out of step (in the transaction that fixes it).
pub async fn record(conn: &mut PgConnection, d: &Discrepancy) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO billing_discrepancies
           (tenant_id, stripe_subscription_id, field, local_value, stripe_value)
         VALUES ($1, $2, $3, $4, $5)",
        d.tenant_id,
        d.stripe_subscription_id,
        d.field,
        d.local_value,
        d.stripe_value
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub id: i64,
    pub field: String,
    pub local_value: Value,
    pub stripe_value: Value,
    pub detected_at: DateTime<Utc>,
}

/// A tenant's discrepancies, newest first.
pub async fn for_tenant(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Vec<Recorded>> {
    sqlx::query_as!(
        Recorded,
        "SELECT id, field, local_value, stripe_value, detected_at FROM billing_discrepancies
         WHERE tenant_id = $1 ORDER BY detected_at DESC, id DESC",
        tenant_id
    )
    .fetch_all(pool)
    .await
}
