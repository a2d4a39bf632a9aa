//! Tenants and their API keys.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::crypto::{self, NewApiKey, SecretBox};

/// A tenant name as given, trimmed, or why it cannot be one: 1 to 200 characters, without
/// control characters (a newline or NUL breaks every log line and table that shows it) or the
/// bidirectional-text controls that make a name display as something else (U+202E turns
/// `acme\u{202E}gnp.exe` into `acmeexe.png`).
pub fn check_name(raw: &str) -> Result<&str, &'static str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err("must be 1 to 200 characters");
    }
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if name.chars().any(|c| c.is_control() || bidi(c)) {
        return Err("must not contain control characters or bidirectional-text controls");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_trimmed_and_printable() {
        assert_eq!(super::check_name("  Acme Inc. ").unwrap(), "Acme Inc.");
        assert_eq!(super::check_name("Zürich 東京").unwrap(), "Zürich 東京");
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\0b",
            "a\tb",
            "acme\u{202E}gnp.exe",
            "x\u{2066}",
        ] {
            assert!(super::check_name(bad).is_err(), "{bad:?}");
        }
        assert!(super::check_name(&"x".repeat(201)).is_err());
        assert!(super::check_name(&"é".repeat(200)).is_ok());
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What tenant creation hands back once: the plaintext secrets are never readable again.
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub api_key: NewApiKey,
    pub api_key_id: Uuid,
    pub signing_secret: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Creates a tenant with its first API key and a webhook signing secret, in one transaction.
pub async fn create(
    conn: &mut PgConnection,
    name: &str,
    secrets: &SecretBox,
) -> sqlx::Result<CreatedTenant> {
    let id = Uuid::now_v7();
    let signing_secret = crypto::generate_signing_secret();
    let sealed = secrets.seal(crypto::Field::SigningSecret, id, &signing_secret);
    let tenant = sqlx::query_as!(
        Tenant,
        "INSERT INTO tenants (id, name, signing_secret) VALUES ($1, $2, $3)
         RETURNING id, name, created_at",
        id,
        name,
        sealed
    )
    .fetch_one(&mut *conn)
    .await?;
    let (api_key_id, api_key) = insert_key(conn, id).await?;
    Ok(CreatedTenant {
        tenant,
        api_key,
        api_key_id,
        signing_secret,
    })
}

async fn insert_key(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<(Uuid, NewApiKey)> {
    let key = crypto::generate_api_key();
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO api_keys (id, tenant_id, prefix, key_hash) VALUES ($1, $2, $3, $4)",
        id,
        tenant_id,
        key.prefix,
        key.hash
    )
    .execute(conn)
    .await?;
    Ok((id, key))
}

/// Issues another key for a tenant (e.g. to rotate: create the new one, then revoke the old).
pub async fn create_key(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<(Uuid, NewApiKey)> {
    let mut conn = pool.acquire().await?;
    insert_key(&mut conn, tenant_id).await
}

/// Who an API key speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    /// The tenant that owns the unrevoked key.
    Tenant(Uuid),
    /// The key is valid, but an operator disabled its tenant.
    Disabled(Uuid),
}

/// The owner of an unrevoked key, if any.
pub async fn authenticate(pool: &PgPool, key: &str) -> sqlx::Result<Option<KeyOwner>> {
    let hash = crypto::hash_api_key(key);
    let row = sqlx::query!(
        r#"SELECT k.tenant_id, t.disabled_at IS NOT NULL AS "disabled!"
           FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
           WHERE k.key_hash = $1 AND k.revoked_at IS NULL"#,
        hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| match r.disabled {
        false => KeyOwner::Tenant(r.tenant_id),
        true => KeyOwner::Disabled(r.tenant_id),
    }))
}

pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, name, created_at FROM tenants WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// The oldest tenant with this exact name (names are not unique; `keel up --demo` reuses its
/// demo tenant by name).
pub async fn find_by_name(pool: &PgPool, name: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, name, created_at FROM tenants WHERE name = $1 ORDER BY created_at, id LIMIT 1",
        name
    )
    .fetch_optional(pool)
    .await
}

pub async fn list_keys(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Vec<ApiKeyInfo>> {
    sqlx::query_as!(
        ApiKeyInfo,
        "SELECT id, prefix, created_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 ORDER BY created_at",
        tenant_id
    )
    .fetch_all(pool)
    .await
}

/// What [`revoke_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRevoke {
    /// Revoked now, or already (revoking is idempotent).
    Revoked,
    /// The tenant has no such key.
    NotFound,
    /// It is the tenant's only active key; revoking it would lock the tenant out for good
    /// (keys are made with a key), so it stays.
    LastActiveKey,
}

/// Revokes one of the tenant's keys, unless it is the last active one.
pub async fn revoke_key(pool: &PgPool, tenant_id: Uuid, key_id: Uuid) -> sqlx::Result<KeyRevoke> {
    let mut tx = pool.begin().await?;
    // Revokes of one tenant's keys take turns: two at once could each see the other's key
    // still active and revoke both. The count below is a new statement, so it sees the turn
    // before it committed.
    sqlx::query!("SELECT id FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
    let key = sqlx::query!(
        r#"SELECT revoked_at IS NOT NULL AS "revoked!",
                  (SELECT count(*) FROM api_keys o
                   WHERE o.tenant_id = $2 AND o.id <> $1 AND o.revoked_at IS NULL) AS "others!"
           FROM api_keys WHERE id = $1 AND tenant_id = $2"#,
        key_id,
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match key {
        None => KeyRevoke::NotFound,
        Some(k) if k.revoked => KeyRevoke::Revoked,
        Some(k) if k.others == 0 => KeyRevoke::LastActiveKey,
        Some(_) => {
            sqlx::query!(
                "UPDATE api_keys SET revoked_at = now() WHERE id = $1",
                key_id
            )
            .execute(&mut *tx)
            .await?;
            KeyRevoke::Revoked
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// The sealed webhook signing secret (open it with the [`SecretBox`]).
pub async fn sealed_signing_secret(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT signing_secret FROM tenants WHERE id = $1",
        tenant_id
    )
    .fetch_optional(pool)
    .await
}
