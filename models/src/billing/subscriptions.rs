//! A tenant's subscription and Stripe customer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A stored subscription: its [`SubscriptionState`] (read as `sub.plan_id` through `Deref`)
/// and when the row was created and last changed. Serialises flat, as one object.
#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    #[serde(flatten)]
    pub state: SubscriptionState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a subscription is, and what [`upsert`] stores (both modes write every field: the caller
/// read-modify-writes under [`lock`]).
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionState {
    pub tenant_id: Uuid,
    pub mode: String,
    pub plan_id: String,
    pub billing_interval: String,
    pub status: String,
    pub add_ons: Vec<String>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub catalog_version: i32,
}

impl SubscriptionState {
    /// A new local-mode subscription (Keel bills it; no Stripe objects), `active` for the
    /// period `[start, end)`, with no add-ons, trial or cancellation.
    pub fn local(
        tenant_id: Uuid,
        plan_id: &str,
        billing_interval: &str,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        catalog_version: i32,
    ) -> Self {
        Self {
            tenant_id,
            mode: "local".into(),
            plan_id: plan_id.into(),
            billing_interval: billing_interval.into(),
            status: "active".into(),
            add_ons: Vec::new(),
            current_period_start: Some(start),
            current_period_end: Some(end),
            cancel_at_period_end: false,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            stripe_customer_id: None,
            stripe_subscription_id: None,
            catalog_version,
        }
    }
}

impl std::ops::Deref for Subscription {
    type Target = SubscriptionState;
    fn deref(&self) -> &SubscriptionState {
        &self.state
    }
}

impl From<Subscription> for SubscriptionState {
    fn from(s: Subscription) -> Self {
        s.state
    }
}

/// A [`Subscription`] from a row with every column of `billing_subscriptions`.
macro_rules! subscription {
    ($r:ident) => {
        Subscription {
            state: SubscriptionState {
                tenant_id: $r.tenant_id,
                mode: $r.mode,
                plan_id: $r.plan_id,
                billing_interval: $r.billing_interval,
                status: $r.status,
                add_ons: $r.add_ons,
                current_period_start: $r.current_period_start,
                current_period_end: $r.current_period_end,
                cancel_at_period_end: $r.cancel_at_period_end,
                canceled_at: $r.canceled_at,
                ended_at: $r.ended_at,
                trial_end: $r.trial_end,
                stripe_customer_id: $r.stripe_customer_id,
                stripe_subscription_id: $r.stripe_subscription_id,
                catalog_version: $r.catalog_version,
            },
            created_at: $r.created_at,
            updated_at: $r.updated_at,
        }
    };
}

macro_rules! select_sub {
    ($tail:literal, $($arg:expr),*) => {
        sqlx::query!(
            r#"SELECT tenant_id, mode, plan_id, billing_interval, status, add_ons,
                      current_period_start, current_period_end, cancel_at_period_end, canceled_at,
                      ended_at, trial_end, stripe_customer_id, stripe_subscription_id,
                      catalog_version, created_at, updated_at
               FROM billing_subscriptions "# + $tail,
            $($arg),*
        )
        .map(|r| subscription!(r))
    };
}

pub async fn get(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<Subscription>> {
    select_sub!("WHERE tenant_id = $1", tenant_id)
        .fetch_optional(pool)
        .await
}

/// The tenant's subscription, locked until the transaction ends (local-mode changes).
pub async fn lock(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Option<Subscription>> {
    select_sub!("WHERE tenant_id = $1 FOR UPDATE", tenant_id)
        .fetch_optional(conn)
        .await
}

pub async fn upsert(conn: &mut PgConnection, s: &SubscriptionState) -> sqlx::Result<Subscription> {
    sqlx::query!(
        r#"INSERT INTO billing_subscriptions
             (tenant_id, mode, plan_id, billing_interval, status, add_ons, current_period_start,
              current_period_end, cancel_at_period_end, canceled_at, ended_at, trial_end,
              stripe_customer_id, stripe_subscription_id, catalog_version)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (tenant_id) DO UPDATE SET
             mode = EXCLUDED.mode, plan_id = EXCLUDED.plan_id,
             billing_interval = EXCLUDED.billing_interval, status = EXCLUDED.status,
             add_ons = EXCLUDED.add_ons, current_period_start = EXCLUDED.current_period_start,
             current_period_end = EXCLUDED.current_period_end,
             cancel_at_period_end = EXCLUDED.cancel_at_period_end,
             canceled_at = EXCLUDED.canceled_at, ended_at = EXCLUDED.ended_at,
             trial_end = EXCLUDED.trial_end, stripe_customer_id = EXCLUDED.stripe_customer_id,
             stripe_subscription_id = EXCLUDED.stripe_subscription_id,
             catalog_version = EXCLUDED.catalog_version, updated_at = now()
           RETURNING tenant_id, mode, plan_id, billing_interval, status, add_ons,
                     current_period_start, current_period_end, cancel_at_period_end, canceled_at,
                     ended_at, trial_end, stripe_customer_id, stripe_subscription_id,
                     catalog_version, created_at, updated_at"#,
        s.tenant_id,
        s.mode,
        s.plan_id,
        s.billing_interval,
        s.status,
        &s.add_ons,
        s.current_period_start,
        s.current_period_end,
        s.cancel_at_period_end,
        s.canceled_at,
        s.ended_at,
        s.trial_end,
        s.stripe_customer_id,
        s.stripe_subscription_id,
        s.catalog_version
    )
    .map(|r| subscription!(r))
    .fetch_one(conn)
    .await
}

/// The tenant a Stripe subscription belongs to, if Keel has seen it.
pub async fn tenant_for_subscription(
    conn: &mut PgConnection,
    stripe_subscription_id: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT tenant_id FROM billing_subscriptions WHERE stripe_subscription_id = $1",
        stripe_subscription_id
    )
    .fetch_optional(conn)
    .await
}

/// The tenant a Stripe customer belongs to, if Keel has seen it.
pub async fn tenant_for_customer(
    conn: &mut PgConnection,
    stripe_customer_id: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT tenant_id FROM billing_customers WHERE stripe_customer_id = $1",
        stripe_customer_id
    )
    .fetch_optional(conn)
    .await
}

/// Records (or refreshes) a tenant's Stripe customer; `deleted` marks it deleted in Stripe.
pub async fn upsert_customer(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    stripe_customer_id: &str,
    email: Option<&str>,
    name: Option<&str>,
    deleted: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO billing_customers (tenant_id, stripe_customer_id, email, name, deleted_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
         ON CONFLICT (tenant_id) DO UPDATE SET
           stripe_customer_id = EXCLUDED.stripe_customer_id,
           email = COALESCE(EXCLUDED.email, billing_customers.email),
           name = COALESCE(EXCLUDED.name, billing_customers.name),
           deleted_at = CASE WHEN $5 THEN COALESCE(billing_customers.deleted_at, now()) END,
           updated_at = now()",
        tenant_id,
        stripe_customer_id,
        email,
        name,
        deleted
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a tenant exists (events name tenants in metadata; a stale id must not crash a job).
pub async fn tenant_exists(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<bool> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM tenants WHERE id = $1"#,
        tenant_id
    )
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Links a Stripe customer to a tenant unless the tenant (or the customer) is linked already;
/// leaves email, name and deletion state alone.
pub async fn link_customer(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    stripe_customer_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO billing_customers (tenant_id, stripe_customer_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
        tenant_id,
        stripe_customer_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's Stripe customer id, unless it was deleted in Stripe.
pub async fn stripe_customer(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT stripe_customer_id FROM billing_customers
         WHERE tenant_id = $1 AND deleted_at IS NULL",
        tenant_id
    )
    .fetch_optional(pool)
    .await
}

/// The add-ons of the tenant's subscription while it is in force (active, trialing or
/// past-due); empty without a subscription or once it is over. What switches a tenant's
/// add-on features on (e.g. a higher Jira concurrency cap).
pub async fn add_ons_in_force(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Vec<String>> {
    let add_ons = sqlx::query_scalar!(
        "SELECT add_ons FROM billing_subscriptions
         WHERE tenant_id = $1 AND status IN ('active', 'trialing', 'past_due')",
        tenant_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(add_ons.unwrap_or_default())
}
