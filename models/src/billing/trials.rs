//! One trial per tenant: `billing_trials` remembers that a tenant had one, after its
//! subscription is cancelled and the subscription row reused.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Records the tenant's trial; false when it already had one (nothing changes then). In a
/// transaction, a concurrent second record waits for the first and then answers false.
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    mode: &str,
    plan_id: &str,
    trial_end: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO billing_trials (tenant_id, mode, plan_id, trial_end) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id) DO NOTHING",
        tenant_id,
        mode,
        plan_id,
        trial_end
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the tenant has had a trial.
pub async fn had(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM billing_trials WHERE tenant_id = $1) AS "had!""#,
        tenant_id
    )
    .fetch_one(conn)
    .await?;
    Ok(row)
}
