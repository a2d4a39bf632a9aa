//! Invoices, purchases and credit grants.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Invoice {
    pub id: String,
    pub tenant_id: Uuid,
    pub stripe_subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub description: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub hosted_invoice_url: Option<String>,
    pub payment_failed_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Inserts or refreshes an invoice. `payment_failed_at` and `paid_at` keep an earlier value
/// when the new one is `None` (a later `invoice.finalized` copy does not erase a failure).
pub async fn upsert_invoice(conn: &mut PgConnection, i: &Invoice) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO billing_invoices
           (id, tenant_id, stripe_subscription_id, number, status, amount_due, amount_paid,
            currency, description, period_start, period_end, hosted_invoice_url,
            payment_failed_at, paid_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (id) DO UPDATE SET
           stripe_subscription_id = EXCLUDED.stripe_subscription_id, number = EXCLUDED.number,
           status = EXCLUDED.status, amount_due = EXCLUDED.amount_due,
           amount_paid = EXCLUDED.amount_paid, currency = EXCLUDED.currency,
           period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
           hosted_invoice_url = EXCLUDED.hosted_invoice_url,
           payment_failed_at = COALESCE(EXCLUDED.payment_failed_at, billing_invoices.payment_failed_at),
           paid_at = COALESCE(EXCLUDED.paid_at, billing_invoices.paid_at),
           updated_at = now()",
        i.id,
        i.tenant_id,
        i.stripe_subscription_id,
        i.number,
        i.status,
        i.amount_due,
        i.amount_paid,
        i.currency,
        i.description,
        i.period_start,
        i.period_end,
        i.hosted_invoice_url,
        i.payment_failed_at,
        i.paid_at,
        i.created_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_invoices(
    pool: &PgPool,
    tenant_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Invoice>> {
    sqlx::query_as!(
        Invoice,
        "SELECT id, tenant_id, stripe_subscription_id, number, status, amount_due, amount_paid,
                currency, description, period_start, period_end, hosted_invoice_url,
                payment_failed_at, paid_at, created_at
         FROM billing_invoices WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        tenant_id,
        limit
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct Purchase {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub item_id: String,
    pub amount: i64,
    pub currency: String,
    pub source: String,
    pub stripe_checkout_session_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Records a purchase; `None` when this Stripe checkout session was already recorded (a
/// redelivered or replayed event), so the caller grants nothing again.
pub async fn insert_purchase(
    conn: &mut PgConnection,
    p: &Purchase,
) -> sqlx::Result<Option<Purchase>> {
    sqlx::query_as!(
        Purchase,
        "INSERT INTO billing_purchases
           (id, tenant_id, kind, item_id, amount, currency, source, stripe_checkout_session_id,
            created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (stripe_checkout_session_id) DO NOTHING
         RETURNING id, tenant_id, kind, item_id, amount, currency, source,
                   stripe_checkout_session_id, created_at",
        p.id,
        p.tenant_id,
        p.kind,
        p.item_id,
        p.amount,
        p.currency,
        p.source,
        p.stripe_checkout_session_id,
        p.created_at
    )
    .fetch_optional(conn)
    .await
}

pub async fn list_purchases(
    pool: &PgPool,
    tenant_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Purchase>> {
    sqlx::query_as!(
        Purchase,
        "SELECT id, tenant_id, kind, item_id, amount, currency, source,
                stripe_checkout_session_id, created_at
         FROM billing_purchases WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        tenant_id,
        limit
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditGrant {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub purchase_id: Uuid,
    pub pack_id: String,
    pub units: i64,
    pub remaining: i64,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Grants a pack's units for one purchase (at most one grant per purchase).
pub async fn insert_credit_grant(conn: &mut PgConnection, g: &CreditGrant) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO billing_credit_grants
           (id, tenant_id, purchase_id, pack_id, units, remaining, granted_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        g.id,
        g.tenant_id,
        g.purchase_id,
        g.pack_id,
        g.units,
        g.remaining,
        g.granted_at,
        g.expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A tenant's grants, soonest expiry first (the order metering spends them in).
pub async fn list_credit_grants(
    pool: &PgPool,
    tenant_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<CreditGrant>> {
    sqlx::query_as!(
        CreditGrant,
        "SELECT id, tenant_id, purchase_id, pack_id, units, remaining, granted_at, expires_at
         FROM billing_credit_grants WHERE tenant_id = $1
         ORDER BY expires_at, id LIMIT $2",
        tenant_id,
        limit
    )
    .fetch_all(pool)
    .await
}

impl Invoice {
    /// A local-mode invoice: local mode has no payment step, so it is paid when issued.
    pub fn local_paid(
        tenant_id: Uuid,
        amount: i64,
        currency: &str,
        description: String,
        period: (DateTime<Utc>, DateTime<Utc>),
    ) -> Self {
        let now = Utc::now();
        Self {
            id: format!("inv_local_{}", Uuid::now_v7().simple()),
            tenant_id,
            stripe_subscription_id: None,
            number: None,
            status: "paid".into(),
            amount_due: amount,
            amount_paid: amount,
            currency: currency.into(),
            description: Some(description),
            period_start: Some(period.0),
            period_end: Some(period.1),
            hosted_invoice_url: None,
            payment_failed_at: None,
            paid_at: Some(now),
            created_at: now,
        }
    }
}

impl Purchase {
    /// A purchase applied in local mode (no Stripe checkout session).
    pub fn local(tenant_id: Uuid, kind: &str, item_id: &str, amount: i64, currency: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            tenant_id,
            kind: kind.into(),
            item_id: item_id.into(),
            amount,
            currency: currency.into(),
            source: "local".into(),
            stripe_checkout_session_id: None,
            created_at: Utc::now(),
        }
    }
}

impl CreditGrant {
    /// The grant a pack purchase yields: all its units, expiring `valid_days` after
    /// `granted_at`.
    pub fn for_purchase(
        purchase: &Purchase,
        units: i64,
        valid_days: u32,
        granted_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            tenant_id: purchase.tenant_id,
            purchase_id: purchase.id,
            pack_id: purchase.item_id.clone(),
            units,
            remaining: units,
            granted_at,
            expires_at: granted_at + chrono::Duration::days(i64::from(valid_days)),
        }
    }
}
