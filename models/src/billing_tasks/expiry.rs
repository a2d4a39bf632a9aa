//! What ends soon or has ended: trials, cancellations at period end, past-due tenants,
//! expiring credit grants.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::billing::ledger::CreditGrant;

/// A subscription date something ends at: a trial's end, or the end of a period after which
/// a subscription set to cancel stops.
#[derive(Debug, Clone)]
pub struct Ending {
    pub tenant_id: Uuid,
    pub plan_id: String,
    pub ends_at: DateTime<Utc>,
}

/// Trials ending in `(from, to]`.
pub async fn trials_ending(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Ending>> {
    sqlx::query_as!(
        Ending,
        r#"SELECT tenant_id, plan_id, trial_end AS "ends_at!" FROM billing_subscriptions
           WHERE status = 'trialing' AND trial_end > $1 AND trial_end <= $2"#,
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// Subscriptions set to cancel whose current period ends in `(from, to]`.
pub async fn cancellations_ending(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Ending>> {
    sqlx::query_as!(
        Ending,
        r#"SELECT tenant_id, plan_id, current_period_end AS "ends_at!" FROM billing_subscriptions
           WHERE cancel_at_period_end AND status IN ('active', 'trialing', 'past_due')
             AND current_period_end > $1 AND current_period_end <= $2"#,
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// Tenants whose subscription is past due (their grace is computed from the oldest failure).
pub async fn past_due_tenants(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!("SELECT tenant_id FROM billing_subscriptions WHERE status = 'past_due'")
        .fetch_all(pool)
        .await
}

/// Grants with units left expiring in `(from, to]`.
pub async fn grants_expiring(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<CreditGrant>> {
    sqlx::query_as!(
        CreditGrant,
        "SELECT id, tenant_id, purchase_id, pack_id, units, remaining, granted_at, expires_at
         FROM billing_credit_grants WHERE remaining > 0 AND expires_at > $1 AND expires_at <= $2
         ORDER BY expires_at, id",
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// Zeroes every grant expired at `as_of` that still has units, in the caller's transaction;
/// returns them with `remaining` as it was (the units that expired). Units already held by
/// unfinished jobs' reservations were taken off `remaining` at submit and are untouched.
pub async fn expire_grants(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
) -> sqlx::Result<Vec<CreditGrant>> {
    sqlx::query_as!(
        CreditGrant,
        r#"WITH doomed AS (
             SELECT id, remaining FROM billing_credit_grants
             WHERE expires_at <= $1 AND remaining > 0 FOR UPDATE
           )
           UPDATE billing_credit_grants g SET remaining = 0 FROM doomed d WHERE g.id = d.id
           RETURNING g.id, g.tenant_id, g.purchase_id, g.pack_id, g.units,
                     d.remaining AS "remaining!", g.granted_at, g.expires_at"#,
        as_of
    )
    .fetch_all(conn)
    .await
}
