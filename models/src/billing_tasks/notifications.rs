//! Tenant notifications (exactly-once by `(tenant_id, kind, subject)`) and the URL they go to.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

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
