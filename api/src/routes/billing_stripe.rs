//! Plan change and cancel in Stripe mode: Stripe is the source of truth, so these call
//! Stripe's subscription API and change nothing locally; the `customer.subscription.updated`
//! / `.deleted` webhooks that follow update Keel's row (`stripe.event`).
//!
//! Synchronous rather than a job: the tenant is waiting for the answer, and a refusal (a price
//! Stripe does not know, a subscription already ended) must reach them now as a 422 with
//! Stripe's message, not later on an internal job nobody watches. Nothing local is written,
//! so there is no transaction to keep a job consistent with. Retries are safe because both
//! calls set absolute values, and the change first reads the subscription from Stripe and
//! does nothing when the item already has the target price: a client retry of a change that
//! went through is a no-op, not a second proration. Each call still carries a fresh
//! idempotency key (a deterministic one would make Stripe replay a stale answer when a tenant
//! switches A→B→A→B within Stripe's 24 h key window). Calls go through the circuit breaker:
//! while it is open the answer is 503 with `retry_after_seconds`, without calling Stripe.

use keel_billing::catalog::{Interval, PriceRef};
use keel_billing::Catalog;
use keel_jobs::kinds::stripe::client::StripeApi;
use keel_models::billing::subscriptions::{self as subs, Subscription};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::routes::plans::{conflict, is_live};
use crate::routes::webhooks::stripe_error;
use crate::state::AppState;

/// The tenant's live Stripe subscription, or 409 `no_subscription`.
async fn live_stripe(state: &AppState, tenant: Uuid) -> Result<(Subscription, String), ApiError> {
    let sub = subs::get(&state.pool, tenant).await?.filter(is_live);
    match sub {
        Some(s) if s.stripe_subscription_id.is_some() => {
            let id = s.stripe_subscription_id.clone().unwrap_or_default();
            Ok((s, id))
        }
        _ => Err(conflict(
            "no_subscription",
            "the tenant has no Stripe subscription (it is on the free plan); use POST /api/billing/checkout",
            json!({ "mode": "stripe" }),
        )),
    }
}

fn view(sub: &keel_jobs::kinds::stripe::ops::Subscription) -> Value {
    json!({
        "id": sub.id.as_str(),
        "status": sub.status.as_str(),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "prices": sub.items.data.iter().map(|i| i.price.id.as_str()).collect::<Vec<_>>(),
    })
}

/// `POST /api/billing/subscription/change` in Stripe mode: the plan item moves to the new
/// price with `proration_behavior=create_prorations`.
pub(crate) async fn change(
    state: &AppState,
    api: &StripeApi,
    tenant: Uuid,
    plan_id: &str,
    interval: Option<Interval>,
) -> Result<Value, ApiError> {
    let catalog: &Catalog = &state.billing.catalog;
    let (_, sub_id) = live_stripe(state, tenant).await?;
    let current = api.subscription(&sub_id).await.map_err(stripe_error)?;
    let item = current
        .items
        .data
        .iter()
        .find_map(|i| match catalog.price(i.price.id.as_str()) {
            Some(PriceRef::Plan(_, iv)) => Some((i, iv)),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "Stripe subscription {sub_id} has no item with a plan price of this catalog"
            ))
        })?;
    let (item, old_interval) = item;
    let plan = catalog
        .plan(plan_id)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plan {plan_id} vanished")))?;
    let interval = interval.unwrap_or(old_interval);
    let price = plan.stripe_price(interval).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("plan {} has no Stripe price", plan.id))
    })?;
    if item.price.id.as_str() == price {
        return Ok(json!({
            "mode": "stripe", "changed": false, "applied": true,
            "stripe_subscription": view(&current),
        }));
    }
    let key = format!("keel-change-{}", Uuid::now_v7());
    let updated = api
        .change_price(&key, &sub_id, item.id.as_str(), price)
        .await
        .map_err(stripe_error)?;
    tracing::info!(tenant_id = %tenant, subscription = %sub_id, plan = %plan.id, "subscription change sent to Stripe");
    Ok(json!({
        "mode": "stripe", "changed": true, "applied": false,
        "proration_behavior": "create_prorations",
        "note": "Stripe changed the subscription; Keel's copy updates when Stripe's event arrives",
        "stripe_subscription": view(&updated),
    }))
}

/// `POST /api/billing/subscription/cancel` in Stripe mode: `cancel_at_period_end=true`, or
/// cancelled now.
pub(crate) async fn cancel(
    state: &AppState,
    api: &StripeApi,
    tenant: Uuid,
    at_period_end: bool,
) -> Result<Value, ApiError> {
    let (_, sub_id) = live_stripe(state, tenant).await?;
    let key = format!("keel-cancel-{}", Uuid::now_v7());
    let updated = api
        .cancel(&key, &sub_id, at_period_end)
        .await
        .map_err(stripe_error)?;
    tracing::info!(tenant_id = %tenant, subscription = %sub_id, at_period_end, "subscription cancel sent to Stripe");
    Ok(json!({
        "mode": "stripe", "applied": false, "at_period_end": at_period_end,
        "note": "Stripe cancelled the subscription; Keel's copy updates when Stripe's event arrives",
        "stripe_subscription": view(&updated),
    }))
}

/// Calls off a cancellation scheduled for the period's end (`cancel_at_period_end=false`).
pub(crate) async fn resume(
    state: &AppState,
    api: &StripeApi,
    tenant: Uuid,
) -> Result<Value, ApiError> {
    let (sub, sub_id) = live_stripe(state, tenant).await?;
    if !sub.cancel_at_period_end {
        return Err(super::not_cancelling());
    }
    let key = format!("keel-resume-{}", Uuid::now_v7());
    let updated = api.resume(&key, &sub_id).await.map_err(stripe_error)?;
    tracing::info!(tenant_id = %tenant, subscription = %sub_id, "subscription resume sent to Stripe");
    Ok(json!({
        "mode": "stripe", "applied": false,
        "note": "Stripe resumed the subscription; Keel's copy updates when Stripe's event arrives",
        "stripe_subscription": view(&updated),
    }))
}
