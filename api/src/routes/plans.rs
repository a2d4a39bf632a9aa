//! The read side of billing: `GET /api/plans` (public: the catalog, so a pricing page or CLI
//! can show plans, limits, unit weights, credit packs and add-ons without an API key) and a
//! tenant's subscription, invoices, credits and purchases; plus the checks and helpers the
//! billing routes share. Changes are in `billing.rs`, Stripe calls in `webhooks.rs`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Months, Utc};
use keel_billing::{Catalog, Interval, Plan};
use keel_models::billing::ledger;
use keel_models::billing::subscriptions::{self as subs, Subscription};
use keel_models::PgConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::TenantId;
use crate::routes::query::NoParams;
use crate::state::AppState;

const LIST_LIMIT: i64 = 100;

pub async fn list(State(state): State<AppState>, _: NoParams) -> Json<Value> {
    let c = &state.billing.catalog;
    Json(json!({
        "mode": state.billing.mode(),
        "version": c.version,
        "currency": c.currency,
        "plans": c.plans,
        "unit_weights": c.unit_weights,
        "credit_packs": c.credit_packs,
        "add_ons": c.add_ons,
    }))
}

/// A subscription as billing answers show it. A local subscription cancelled at period end
/// reads as `canceled` once the period is over (nothing else runs to flip it).
pub(crate) fn subscription_view(catalog: &Catalog, sub: Option<&Subscription>) -> Value {
    let live = sub.filter(|s| effective_status(s) != "canceled");
    let plan = live
        .and_then(|s| catalog.plan(&s.plan_id))
        .unwrap_or_else(|| catalog.free_plan());
    let Some(s) = sub else {
        return json!({ "plan": plan.id, "status": "free", "subscription": null, "plan_details": plan });
    };
    json!({
        "plan": plan.id,
        "status": if live.is_some() { effective_status(s) } else { "free" },
        "plan_details": plan,
        "subscription": {
            "plan": s.plan_id,
            "interval": s.billing_interval,
            "status": effective_status(s),
            "add_ons": s.add_ons,
            "current_period_start": s.current_period_start,
            "current_period_end": s.current_period_end,
            "cancel_at_period_end": s.cancel_at_period_end,
            "canceled_at": s.canceled_at,
            "ended_at": s.ended_at,
            "trial_end": s.trial_end,
            "source": s.mode,
            "stripe_customer_id": s.stripe_customer_id,
            "stripe_subscription_id": s.stripe_subscription_id,
            "catalog_version": s.catalog_version,
            "updated_at": s.updated_at,
        },
    })
}

pub(crate) fn effective_status(s: &Subscription) -> &str {
    let over = s.mode == "local"
        && s.cancel_at_period_end
        && s.current_period_end
            .is_some_and(|e| e <= chrono::Utc::now());
    if over {
        "canceled"
    } else {
        &s.status
    }
}

/// Whether a subscription still counts (not ended).
pub(crate) fn is_live(s: &Subscription) -> bool {
    !matches!(effective_status(s), "canceled" | "incomplete_expired")
}

pub(crate) fn interval_of(s: &Subscription) -> Interval {
    Interval::parse(&s.billing_interval).unwrap_or(Interval::Month)
}

pub async fn subscription(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let sub = subs::get(&state.pool, tenant).await?;
    let mut view = subscription_view(&state.billing.catalog, sub.as_ref());
    view["mode"] = json!(state.billing.mode());
    Ok(Json(view))
}

pub async fn invoices(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let rows = ledger::list_invoices(&state.pool, tenant, LIST_LIMIT).await?;
    Ok(Json(
        json!({ "mode": state.billing.mode(), "invoices": rows }),
    ))
}

/// Credit grants, soonest expiry first, with the units still usable now.
pub async fn credits(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let rows = ledger::list_credit_grants(&state.pool, tenant, LIST_LIMIT).await?;
    let now = Utc::now();
    let available: i64 = rows
        .iter()
        .filter(|g| g.expires_at > now)
        .map(|g| g.remaining)
        .sum();
    Ok(Json(
        json!({ "mode": state.billing.mode(), "available_units": available, "grants": rows }),
    ))
}

pub async fn purchases(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let rows = ledger::list_purchases(&state.pool, tenant, LIST_LIMIT).await?;
    Ok(Json(
        json!({ "mode": state.billing.mode(), "purchases": rows }),
    ))
}

// Catalog lookups and checks shared by the billing routes.

/// Redirect targets must be absolute http(s) URLs (Stripe refuses anything else too).
pub(crate) fn check_url(path: &str, url: &str) -> Result<(), ApiError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(())
        .ok_or_else(|| ApiError::invalid(path, "must be an absolute http(s) URL"))
}

/// A plan that can be bought: known, and not the free plan.
pub(crate) fn paid_plan<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Plan, ApiError> {
    let plan = catalog.plan(id).ok_or_else(|| {
        let ids: Vec<&str> = catalog.plans.iter().map(|p| p.id.as_str()).collect();
        ApiError::invalid("plan", format!("unknown plan; plans: {}", ids.join(", ")))
    })?;
    if plan.free {
        return Err(ApiError::invalid(
            "plan",
            "the free plan needs no checkout; cancel the subscription to return to it",
        ));
    }
    Ok(plan)
}

/// `month` or `year`, else a 422 naming `interval`.
pub(crate) fn parse_interval(raw: Option<&str>) -> Result<Interval, ApiError> {
    raw.and_then(Interval::parse)
        .ok_or_else(|| ApiError::invalid("interval", "must be \"month\" or \"year\""))
}

/// End of a billing period starting at `start` (calendar months, as Stripe counts them).
pub(crate) fn period_end(start: DateTime<Utc>, interval: Interval) -> DateTime<Utc> {
    let months = match interval {
        Interval::Month => 1,
        Interval::Year => 12,
    };
    start + Months::new(months)
}

/// Refuses a local-mode change when Stripe owns the subscriptions (Stripe mode).
pub(crate) fn local_only(state: &AppState) -> Result<(), ApiError> {
    if state.billing.stripe.is_some() {
        return Err(ApiError::Unavailable {
            message: "in Stripe mode, plan changes and cancellations go through the billing \
                      portal (POST /api/billing/portal); calling Stripe's subscription API \
                      directly is not built yet"
                .into(),
            details: json!({ "mode": "stripe" }),
            retry_after: None,
        });
    }
    Ok(())
}

/// A 409 with a code the client can act on.
pub(crate) fn conflict(code: &'static str, message: impl Into<String>, details: Value) -> ApiError {
    ApiError::Conflict {
        code,
        message: message.into(),
        details,
    }
}

/// The tenant's live local subscription, locked for a read-modify-write; 409 when there is
/// none or when Stripe manages it.
pub(crate) async fn live_local(
    conn: &mut PgConnection,
    tenant: Uuid,
) -> Result<Subscription, ApiError> {
    let sub = subs::lock(conn, tenant).await?.filter(is_live).ok_or_else(|| {
        conflict(
            "no_subscription",
            "the tenant has no active subscription (it is on the free plan); use POST /api/billing/checkout",
            Value::Null,
        )
    })?;
    if sub.mode != "local" {
        return Err(conflict(
            "managed_by_stripe",
            "this subscription is managed in Stripe; change it there",
            json!({ "stripe_subscription_id": sub.stripe_subscription_id }),
        ));
    }
    Ok(sub)
}
