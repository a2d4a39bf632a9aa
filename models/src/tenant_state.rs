//! Disabling and enabling a tenant (operators' action against a careless or hostile tenant).
//!
//! A disabled tenant's keys are refused by [`crate::tenant::authenticate`], and its waiting jobs
//! (`queued`, or `failed` awaiting a retry) are *held*: parked on the queue `held:<queue>`, which
//! no worker serves, so they keep their place, attempts and reservations and the relay never
//! scans them. A job running when its tenant is disabled finishes; should it be retried, or a
//! job of the tenant reach a worker some other way, the start refuses it while the tenant is
//! disabled (see [`crate::job::start_many`]). Enabling puts held jobs back on their queues,
//! undispatched, so the relay pushes them on its next tick.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Prefix of the queue a held job is parked on.
pub const HELD_PREFIX: &str = "held:";

#[derive(Debug, Clone, Serialize)]
pub struct TenantState {
    pub id: Uuid,
    pub name: String,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Jobs parked (disable) or put back on their queues (enable) by this call.
    pub jobs_moved: i64,
}

/// Disables the tenant and holds its waiting jobs, in one transaction; `None` if there is no
/// such tenant. Disabling a disabled tenant keeps its first `disabled_at` (and holds any job
/// that reached a queue since).
pub async fn disable(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<TenantState>> {
    let mut tx = pool.begin().await?;
    let Some(t) = sqlx::query!(
        r#"UPDATE tenants SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1
           RETURNING id, name, disabled_at"#,
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let held = sqlx::query!(
        r#"UPDATE jobs SET queue = $2 || queue, dispatched_at = NULL, updated_at = now()
           WHERE tenant_id = $1 AND status IN ('queued', 'failed') AND queue NOT LIKE 'held:%'"#,
        tenant_id,
        HELD_PREFIX
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Some(TenantState {
        id: t.id,
        name: t.name,
        disabled_at: t.disabled_at,
        jobs_moved: held as i64,
    }))
}

/// Enables the tenant and puts its held jobs back on their queues; `None` if there is no such
/// tenant.
pub async fn enable(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<TenantState>> {
    let mut tx = pool.begin().await?;
    let Some(t) = sqlx::query!(
        r#"UPDATE tenants SET disabled_at = NULL WHERE id = $1 RETURNING id, name"#,
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let released = sqlx::query!(
        r#"UPDATE jobs SET queue = substr(queue, length($2) + 1), dispatched_at = NULL,
                          updated_at = now()
           WHERE tenant_id = $1 AND queue LIKE 'held:%'"#,
        tenant_id,
        HELD_PREFIX
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Some(TenantState {
        id: t.id,
        name: t.name,
        disabled_at: None,
        jobs_moved: released as i64,
    }))
}

/// The tenant's state and how many of its jobs are held now.
pub async fn get(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<TenantState>> {
    let row = sqlx::query!(
        r#"SELECT t.id, t.name, t.disabled_at,
                  (SELECT count(*) FROM jobs j
                   WHERE j.tenant_id = t.id AND j.queue LIKE 'held:%') AS "held!"
           FROM tenants t WHERE t.id = $1"#,
        tenant_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| TenantState {
        id: r.id,
        name: r.name,
        disabled_at: r.disabled_at,
        jobs_moved: r.held,
    }))
}
