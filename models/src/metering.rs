//! Metering: per tenant-period allowance counters, per-kind job counts and per-job reservations.
//!
//! Reservations are written by the submit transaction (next to the job row); settlement is the
//! `jobs_settle_usage` trigger (see the metering migration), which runs in the transaction that
//! finishes the job. This module holds the submit side and the read side.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A tenant's allowance and use in one billing period.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub tenant_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub plan_id: String,
    pub included_units: i64,
    pub used_included: i64,
    pub reserved_included: i64,
    pub used_credits: i64,
    pub reserved_credits: i64,
    pub used_overage: i64,
    pub reserved_overage: i64,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Period {
    /// Included units neither used nor held by unfinished jobs.
    pub fn included_left(&self) -> i64 {
        (self.included_units - self.used_included - self.reserved_included).max(0)
    }
}

/// Jobs of one kind in a period.
#[derive(Debug, Clone, Serialize)]
pub struct KindCount {
    pub kind: String,
    pub used: i64,
    pub reserved: i64,
}

/// Where one job's units come from.
#[derive(Debug, Clone)]
pub struct NewReservation {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub kind: String,
    pub units: i64,
    pub from_included: i64,
    pub from_credits: i64,
    pub from_overage: i64,
    /// `[{"grant_id", "units"}]`
    pub credit_grants: Value,
}

/// The tenant's period starting at `start`, created if missing, locked until the transaction
/// ends: submits of one tenant reserve one after another, so two cannot both take the last unit.
pub async fn lock_period(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    plan_id: &str,
    included_units: i64,
) -> sqlx::Result<Period> {
    sqlx::query!(
        "INSERT INTO usage_periods (tenant_id, period_start, period_end, plan_id, included_units)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, period_start) DO NOTHING",
        tenant_id,
        start,
        end,
        plan_id,
        included_units
    )
    .execute(&mut *conn)
    .await?;
    lock_existing_period(conn, tenant_id, start)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// The tenant's period starting at `start` if it exists, locked until the transaction ends
/// (closing a period twice serialises here, as do submits reserving in it).
pub async fn lock_existing_period(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    start: DateTime<Utc>,
) -> sqlx::Result<Option<Period>> {
    sqlx::query_as!(
        Period,
        "SELECT tenant_id, period_start, period_end, plan_id, included_units, used_included,
                reserved_included, used_credits, reserved_credits, used_overage, reserved_overage,
                closed_at
         FROM usage_periods WHERE tenant_id = $1 AND period_start = $2 FOR UPDATE",
        tenant_id,
        start
    )
    .fetch_optional(conn)
    .await
}

/// Jobs of `kind` used and held in the period (0, 0 when none yet).
pub async fn kind_count(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    start: DateTime<Utc>,
    kind: &str,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        "SELECT used, reserved FROM usage_period_kinds
         WHERE tenant_id = $1 AND period_start = $2 AND kind = $3",
        tenant_id,
        start,
        kind
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or((0, 0), |r| (r.used, r.reserved)))
}

/// Takes up to `units` from the tenant's unexpired credit grants, oldest expiry first (rows
/// locked); returns `[(grant id, units taken)]`.
pub async fn take_credits(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    units: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, i64)>> {
    if units <= 0 {
        return Ok(Vec::new());
    }
    let grants = sqlx::query!(
        "SELECT id, remaining FROM billing_credit_grants
         WHERE tenant_id = $1 AND remaining > 0 AND expires_at > $2
         ORDER BY expires_at, id FOR UPDATE",
        tenant_id,
        now
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut left = units;
    let mut taken = Vec::new();
    for g in grants {
        if left == 0 {
            break;
        }
        let take = left.min(g.remaining);
        sqlx::query!(
            "UPDATE billing_credit_grants SET remaining = remaining - $2 WHERE id = $1",
            g.id,
            take
        )
        .execute(&mut *conn)
        .await?;
        taken.push((g.id, take));
        left -= take;
    }
    Ok(taken)
}

/// Unexpired credit units the tenant holds.
pub async fn credits_left(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(remaining), 0)::bigint AS "left!" FROM billing_credit_grants
           WHERE tenant_id = $1 AND remaining > 0 AND expires_at > $2"#,
        tenant_id,
        now
    )
    .fetch_one(conn)
    .await
}

/// Records the reservation and holds its units in the period's counters. A job's released
/// reservation (it died, and `retry` brings it back) is replaced by the new one; a reservation
/// still held or consumed is never replaced (`RowNotFound`).
pub async fn reserve(conn: &mut PgConnection, r: &NewReservation) -> sqlx::Result<()> {
    let stored = sqlx::query!(
        "INSERT INTO usage_reservations (job_id, tenant_id, period_start, kind, units,
             from_included, from_credits, from_overage, credit_grants)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (job_id) DO UPDATE SET
             tenant_id = EXCLUDED.tenant_id, period_start = EXCLUDED.period_start,
             kind = EXCLUDED.kind, units = EXCLUDED.units,
             from_included = EXCLUDED.from_included, from_credits = EXCLUDED.from_credits,
             from_overage = EXCLUDED.from_overage, credit_grants = EXCLUDED.credit_grants,
             state = 'reserved', created_at = now(), settled_at = NULL
         WHERE usage_reservations.state = 'released'",
        r.job_id,
        r.tenant_id,
        r.period_start,
        r.kind,
        r.units,
        r.from_included,
        r.from_credits,
        r.from_overage,
        r.credit_grants
    )
    .execute(&mut *conn)
    .await?;
    if stored.rows_affected() == 0 {
        return Err(sqlx::Error::RowNotFound);
    }
    sqlx::query!(
        "UPDATE usage_periods SET reserved_included = reserved_included + $3,
             reserved_credits = reserved_credits + $4, reserved_overage = reserved_overage + $5
         WHERE tenant_id = $1 AND period_start = $2",
        r.tenant_id,
        r.period_start,
        r.from_included,
        r.from_credits,
        r.from_overage
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO usage_period_kinds (tenant_id, period_start, kind, reserved)
         VALUES ($1, $2, $3, 1)
         ON CONFLICT (tenant_id, period_start, kind) DO UPDATE
         SET reserved = usage_period_kinds.reserved + 1",
        r.tenant_id,
        r.period_start,
        r.kind
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The period starting at `start` (the entitlement's), if the tenant has used anything in it.
/// By its start, not by the time it contains: a subscription that ended mid-period leaves its
/// period overlapping the free plan's calendar month, where usage now counts.
pub async fn period_starting(
    pool: &PgPool,
    tenant_id: Uuid,
    start: DateTime<Utc>,
) -> sqlx::Result<Option<Period>> {
    sqlx::query_as!(
        Period,
        "SELECT tenant_id, period_start, period_end, plan_id, included_units, used_included,
                reserved_included, used_credits, reserved_credits, used_overage, reserved_overage,
                closed_at
         FROM usage_periods WHERE tenant_id = $1 AND period_start = $2",
        tenant_id,
        start
    )
    .fetch_optional(pool)
    .await
}

/// The tenant's periods, newest first.
pub async fn periods(pool: &PgPool, tenant_id: Uuid, limit: i64) -> sqlx::Result<Vec<Period>> {
    sqlx::query_as!(
        Period,
        "SELECT tenant_id, period_start, period_end, plan_id, included_units, used_included,
                reserved_included, used_credits, reserved_credits, used_overage, reserved_overage,
                closed_at
         FROM usage_periods WHERE tenant_id = $1 ORDER BY period_start DESC LIMIT $2",
        tenant_id,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Jobs per kind in a period.
pub async fn kinds(
    pool: &PgPool,
    tenant_id: Uuid,
    start: DateTime<Utc>,
) -> sqlx::Result<Vec<KindCount>> {
    sqlx::query_as!(
        KindCount,
        "SELECT kind, used, reserved FROM usage_period_kinds
         WHERE tenant_id = $1 AND period_start = $2 ORDER BY kind",
        tenant_id,
        start
    )
    .fetch_all(pool)
    .await
}

/// A job's reservation state (`reserved`, `consumed`, `released`), if it was metered.
pub async fn reservation_state(
    db: impl sqlx::PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT state FROM usage_reservations WHERE job_id = $1",
        job_id
    )
    .fetch_optional(db)
    .await
}

/// When the tenant's oldest still-unpaid invoice first failed to charge (the start of the
/// past-due grace period), if any.
pub async fn oldest_failed_payment(
    pool: &PgPool,
    tenant_id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT min(payment_failed_at) FROM billing_invoices
         WHERE tenant_id = $1 AND payment_failed_at IS NOT NULL AND paid_at IS NULL
           AND status IN ('open', 'uncollectible')",
        tenant_id
    )
    .fetch_one(pool)
    .await
}
