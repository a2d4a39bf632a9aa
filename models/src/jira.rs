//! A tenant's Jira Cloud connection and its risk-engine settings.
//!
//! The API token is stored sealed ([`crate::crypto::SecretBox`]); [`JiraConnection`] carries the
//! sealed form only, so printing or serialising one can never leak the token.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A stored connection. `token_sealed` is skipped by serde: API answers never carry it.
#[derive(Debug, Clone, Serialize)]
pub struct JiraConnection {
    pub base_url: String,
    pub email: String,
    #[serde(skip)]
    pub token_sealed: String,
    pub account_id: String,
    pub display_name: Option<String>,
    pub connected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `PUT /api/tenant/jira` stores once Jira accepted the credentials.
pub struct NewJiraConnection<'a> {
    pub base_url: &'a str,
    pub email: &'a str,
    pub token_sealed: &'a str,
    pub account_id: &'a str,
    pub display_name: Option<&'a str>,
}

/// Creates or replaces the tenant's connection (one Jira site per tenant).
pub async fn upsert_connection(
    pool: &PgPool,
    tenant_id: Uuid,
    c: &NewJiraConnection<'_>,
) -> sqlx::Result<JiraConnection> {
    sqlx::query_as!(
        JiraConnection,
        "INSERT INTO tenant_jira (tenant_id, base_url, email, token_sealed, account_id, display_name)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id) DO UPDATE SET
             base_url = EXCLUDED.base_url, email = EXCLUDED.email,
             token_sealed = EXCLUDED.token_sealed, account_id = EXCLUDED.account_id,
             display_name = EXCLUDED.display_name, updated_at = now()
         RETURNING base_url, email, token_sealed, account_id, display_name, connected_at, updated_at",
        tenant_id,
        c.base_url,
        c.email,
        c.token_sealed,
        c.account_id,
        c.display_name
    )
    .fetch_one(pool)
    .await
}

pub async fn connection(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<JiraConnection>> {
    sqlx::query_as!(
        JiraConnection,
        "SELECT base_url, email, token_sealed, account_id, display_name, connected_at, updated_at
         FROM tenant_jira WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_optional(pool)
    .await
}

/// Removes the connection; true when there was one.
pub async fn delete_connection(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM tenant_jira WHERE tenant_id = $1", tenant_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The tenant's risk settings as stored JSON (`keel_risk::Settings`), `None` = defaults.
pub async fn risk_settings(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<Value>> {
    let row = sqlx::query_scalar!(
        "SELECT settings FROM tenant_risk_settings WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

pub async fn set_risk_settings(
    pool: &PgPool,
    tenant_id: Uuid,
    settings: &Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO tenant_risk_settings (tenant_id, settings) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()",
        tenant_id,
        settings
    )
    .execute(pool)
    .await?;
    Ok(())
}
