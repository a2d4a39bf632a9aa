//! Metering at submit: which plan and period apply, whether the tenant may run the job at all
//! (402), whether the period has room (429 `quota_exceeded`), and the reservation of the job's
//! units — written in the transaction that inserts the job, so a job exists if and only if its
//! units are held. Settlement (consume on success, release on dead/cancelled) is the database
//! trigger that runs when the job finishes (see `keel_models::metering`).
//!
//! Units come from the plan's included allowance first, then unexpired credits (oldest expiry
//! first), then overage when the plan bills it; a hard-capped plan refuses the rest.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use keel_billing::catalog::{Overage, Plan};
use keel_models::job::NewJob;
use keel_models::metering::{self, NewReservation};
use keel_models::PgConnection;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Days a `past_due` subscription keeps working after its first failed payment.
pub const PAST_DUE_GRACE_DAYS: i64 = 7;

/// The plan and period a tenant's usage counts against right now.
pub struct Entitlement {
    pub plan: Plan,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

/// The calendar month (UTC) containing `now`: the period of free plans.
pub fn calendar_month(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month at midnight UTC exists");
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the first of a month at midnight UTC exists");
    (start, end)
}

/// The tenant's plan and period; 402 when the subscription no longer entitles it to run jobs.
///
/// A subscription that has ended (`canceled`, or `incomplete_expired`: its first payment never
/// went through) puts the tenant back on the free plan, as a tenant that never subscribed: that
/// is what cancelling promises (`POST /api/billing/subscription/cancel` answers `free`). Only
/// money owed stops it: `unpaid`, or a payment failing for longer than the grace period.
pub async fn entitlement(
    state: &AppState,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> Result<Entitlement, ApiError> {
    let catalog = &state.billing.catalog;
    let sub = keel_models::billing::subscriptions::get(&state.pool, tenant).await?;
    let (month_start, month_end) = calendar_month(now);
    let free = Entitlement {
        plan: catalog.free_plan().clone(),
        period_start: month_start,
        period_end: month_end,
    };
    let Some(sub) = sub else {
        return Ok(free);
    };
    let ended = sub.ended_at.is_none_or(|e| e <= now);
    match sub.status.as_str() {
        "unpaid" if ended => {
            return Err(payment_required(
                "the subscription is unpaid; pay the open invoice at POST /api/billing/portal, or choose a plan at POST /api/billing/checkout".into(),
            ))
        }
        "canceled" | "incomplete_expired" if ended => {
            payments_within_grace(state, tenant, now).await?;
            return Ok(free);
        }
        "past_due" => payments_within_grace(state, tenant, now).await?,
        _ => {}
    }
    let plan = catalog
        .plan(&sub.plan_id)
        .unwrap_or_else(|| catalog.free_plan())
        .clone();
    let (start, end) = match (sub.current_period_start, sub.current_period_end) {
        (Some(s), Some(e)) if s <= now && now < e => (s, e),
        _ => (month_start, month_end),
    };
    Ok(Entitlement {
        plan,
        period_start: start,
        period_end: end,
    })
}

/// The plan and period looked up before a write transaction begins, for the reservations made
/// in it. A refusal (402) is raised only where a job does reserve units: a batch of idempotent
/// replays, or a retry that reserves nothing, is answered as before.
pub struct Looked(Result<Entitlement, Option<ApiError>>);

impl Looked {
    pub async fn now(state: &AppState, tenant: Uuid, now: DateTime<Utc>) -> Self {
        Self(entitlement(state, tenant, now).await.map_err(Some))
    }

    /// For a write that reserves nothing (a kind the catalog does not meter): no lookup.
    /// [`Self::get`] on it is an internal error.
    pub fn not_needed() -> Self {
        Self(Err(None))
    }

    /// The entitlement, or the refusal the lookup met.
    pub fn get(&mut self) -> Result<&Entitlement, ApiError> {
        match &mut self.0 {
            Ok(e) => Ok(e),
            Err(refusal) => Err(refusal.take().unwrap_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("an entitlement refusal was raised twice"))
            })),
        }
    }
}

/// 402 when a payment has been failing for longer than [`PAST_DUE_GRACE_DAYS`].
async fn payments_within_grace(
    state: &AppState,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let failed = keel_models::metering::oldest_failed_payment(&state.pool, tenant).await?;
    match failed {
        Some(failed) if now - failed > chrono::Duration::days(PAST_DUE_GRACE_DAYS) => {
            Err(payment_required(format!(
                "a payment has been failing since {failed}; the {PAST_DUE_GRACE_DAYS}-day grace period is over: update the card at POST /api/billing/portal"
            )))
        }
        _ => Ok(()),
    }
}

fn payment_required(message: String) -> ApiError {
    ApiError::PaymentRequired { message }
}

/// Whether submitting `job` reserves units: metering is on and the catalog meters its kind.
pub fn metered(state: &AppState, job: &NewJob) -> bool {
    metered_kind(state, &job.kind, &job.args)
}

/// [`metered`] for a job of `kind` with `args`.
pub fn metered_kind(state: &AppState, kind: &str, args: &serde_json::Value) -> bool {
    state.limits.metering && state.billing.catalog.units_for(kind, args).is_some()
}

/// Reserves a retried job's units again, in the caller's transaction (the one that moves it
/// back to `queued`), when its reservation was released: it died, and succeeding now would
/// otherwise use units no quota had allowed (in a period perhaps already billed). Like a
/// submit, under the plan and period the caller looked up for `now` ([`entitlement`], before
/// its transaction began): 402 and 429 apply. A `failed` job still holds its reservation, and
/// a job reserved nothing if metering was off when it was submitted.
pub async fn reserve_again(
    state: &AppState,
    tx: &mut PgConnection,
    e: &mut Looked,
    job: &keel_models::job::Job,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(tenant) = job.tenant_id else {
        return Ok(());
    };
    let again = NewJob {
        id: job.id,
        tenant_id: job.tenant_id,
        kind: job.kind.clone(),
        queue: job.queue.clone(),
        args: job.args.clone(),
        max_attempts: job.max_attempts,
        run_at: None,
        idempotency_key: None,
        dispatched: false,
    };
    if !metered(state, &again)
        || metering::reservation_state(&mut *tx, job.id)
            .await?
            .as_deref()
            != Some("released")
    {
        return Ok(());
    }
    reserve_under(state, tx, tenant, e.get()?, &again, now).await
}

/// Reserves the job's units inside the caller's transaction (which also inserts the job), under
/// the entitlement the caller looked up *before* it began that transaction: a lookup through
/// the pool while the transaction holds a connection of the same pool is how forty concurrent
/// submits had taken every connection and waited for one more. Kinds the catalog does not
/// meter cost nothing and are not recorded; a batch looks the entitlement up once.
pub async fn reserve_under(
    state: &AppState,
    tx: &mut PgConnection,
    tenant: Uuid,
    e: &Entitlement,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(units) = state.billing.catalog.units_for(&job.kind, &job.args) else {
        return Ok(());
    };
    let units = units as i64;
    let period = metering::lock_period(
        tx,
        tenant,
        e.period_start,
        e.period_end,
        &e.plan.id,
        e.plan.included_units as i64,
    )
    .await?;
    if let Some(&limit) = e.plan.kind_limits.get(&job.kind) {
        let (used, reserved) = metering::kind_count(tx, tenant, e.period_start, &job.kind).await?;
        if used + reserved >= limit as i64 {
            return Err(quota_exceeded(
                format!(
                    "the {} plan allows {limit} {} jobs per period; {} used",
                    e.plan.name,
                    job.kind,
                    used + reserved
                ),
                json!({ "kind": job.kind, "limit": limit, "used": used + reserved,
                        "resets_at": e.period_end, "plan": e.plan.id }),
            ));
        }
    }
    let from_included = units.min(period.included_left());
    let rest = units - from_included;
    let grants = metering::take_credits(tx, tenant, rest, now).await?;
    let from_credits: i64 = grants.iter().map(|(_, n)| n).sum();
    let rest = rest - from_credits;
    let from_overage = match e.plan.overage {
        _ if rest == 0 => 0,
        Overage::PerUnit(_) => rest,
        Overage::HardCap => {
            let used = period.used_included + period.reserved_included;
            return Err(quota_exceeded(
                format!(
                    "this job needs {units} units; the {} plan's {} included units are used up ({used} used) and no credits are left: buy a credit pack or upgrade",
                    e.plan.name, e.plan.included_units
                ),
                json!({ "units": units, "limit": e.plan.included_units, "used": used,
                        "credits": 0, "resets_at": e.period_end, "plan": e.plan.id }),
            ));
        }
    };
    let credit_grants: Vec<_> = grants
        .iter()
        .map(|(id, n)| json!({ "grant_id": id, "units": n }))
        .collect();
    metering::reserve(
        tx,
        &NewReservation {
            job_id: job.id,
            tenant_id: tenant,
            period_start: e.period_start,
            kind: job.kind.clone(),
            units,
            from_included,
            from_credits,
            from_overage,
            credit_grants: credit_grants.into(),
        },
    )
    .await?;
    Ok(())
}

fn quota_exceeded(message: String, details: serde_json::Value) -> ApiError {
    ApiError::TooManyRequests {
        code: "quota_exceeded",
        message,
        details,
        retry_after: None,
        headers: Vec::new(),
    }
}
