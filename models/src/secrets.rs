//! `keel secrets rotate`: re-seals every stored secret under the primary key of
//! `KEEL_ENCRYPTION_KEY`, in the current (tenant- and field-bound) format.
//!
//! It reads each sealed column a page at a time (keyset pagination, no long transaction) and
//! writes a row back only if it still holds the ciphertext that was read, so it is safe while
//! Keel runs (a secret replaced meanwhile was sealed under the primary key anyway) and safe to
//! run again (a value already current is left alone).

use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::{Field, SecretBox};

/// What rotation did to one sealed column.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldReport {
    /// Rewritten under the primary key in the current format.
    pub resealed: u64,
    /// Already under the primary key in the current format: untouched.
    pub current: u64,
    /// Replaced by someone else between the read and the guarded write: left as it is.
    pub changed_meanwhile: u64,
    /// Rows whose value does not open with the configured keys (their tenants): untouched.
    pub unreadable: Vec<Uuid>,
}

/// One page of `field`'s rows after `after`, by tenant id: (tenant id, sealed value).
async fn page(
    pool: &PgPool,
    field: Field,
    after: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = match field {
        Field::SigningSecret => sqlx::query!(
            "SELECT id, signing_secret FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
            after,
            limit
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.id, r.signing_secret))
        .collect(),
        Field::JiraToken => sqlx::query!(
            "SELECT tenant_id, token_sealed FROM tenant_jira WHERE tenant_id > $1
             ORDER BY tenant_id LIMIT $2",
            after,
            limit
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.tenant_id, r.token_sealed))
        .collect(),
    };
    Ok(rows)
}

/// Writes `new` where the row still holds `old`; false when it no longer does. The Jira
/// connection's `updated_at` is left alone: the token it holds did not change.
async fn replace(
    pool: &PgPool,
    field: Field,
    tenant: Uuid,
    old: &str,
    new: &str,
) -> sqlx::Result<bool> {
    let done = match field {
        Field::SigningSecret => {
            sqlx::query!(
                "UPDATE tenants SET signing_secret = $3 WHERE id = $1 AND signing_secret = $2",
                tenant,
                old,
                new
            )
            .execute(pool)
            .await?
        }
        Field::JiraToken => {
            sqlx::query!(
            "UPDATE tenant_jira SET token_sealed = $3 WHERE tenant_id = $1 AND token_sealed = $2",
            tenant,
            old,
            new
        )
            .execute(pool)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Re-seals every value of `field`, `batch` rows per read.
pub async fn rotate(
    pool: &PgPool,
    secrets: &SecretBox,
    field: Field,
    batch: u32,
) -> sqlx::Result<FieldReport> {
    let mut report = FieldReport::default();
    let mut after = Uuid::nil();
    loop {
        let rows = page(pool, field, after, i64::from(batch.max(1))).await?;
        let Some((last, _)) = rows.last() else {
            return Ok(report);
        };
        after = *last;
        for (tenant, sealed) in rows {
            match secrets.reseal(field, tenant, &sealed) {
                Ok(None) => report.current += 1,
                Ok(Some(new)) => match replace(pool, field, tenant, &sealed, &new).await? {
                    true => report.resealed += 1,
                    false => report.changed_meanwhile += 1,
                },
                Err(_) => report.unreadable.push(tenant),
            }
        }
    }
}
