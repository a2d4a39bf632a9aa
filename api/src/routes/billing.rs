//! A tenant's billing changes: checkout, plan change and cancel (reads are in `plans.rs`).
//! Without Stripe keys (local mode) they apply at once and every answer says
//! `"mode": "local"`, so the product is usable without Stripe. In Stripe mode checkout answers
//! with a Stripe Checkout URL (`webhooks.rs`) and the outcome arrives by webhook; change and
//! cancel call Stripe's subscription API (`billing_stripe.rs`) and the webhooks that follow
//! update Keel's copy.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use keel_jobs::kinds::stripe::client::Sale;
use keel_models::billing::ledger::{self, CreditGrant, Invoice, Purchase};
use keel_models::billing::subscriptions::{self as subs, SubscriptionState};
use keel_models::billing::trials;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::routes::plans::{
    check_url, conflict, interval_of, is_live, live_local, local_only, paid_plan, parse_interval,
    period_end, subscription_view,
};
use crate::routes::webhooks::stripe_checkout;
use crate::state::AppState;

/// Change, cancel and resume in Stripe mode (in `billing_stripe.rs`).
#[path = "billing_stripe.rs"]
mod stripe_mode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    plan: Option<String>,
    interval: Option<String>,
    trial_days: Option<u32>,
    credit_pack: Option<String>,
    pub(crate) success_url: String,
    pub(crate) cancel_url: String,
}

/// `POST /api/billing/checkout`: `{plan, interval, trial_days?}` or `{credit_pack}`, with
/// `success_url` and `cancel_url`. Local mode applies it at once.
pub async fn checkout(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Checkout>,
) -> Result<Json<Value>, ApiError> {
    check_url("success_url", &body.success_url)?;
    check_url("cancel_url", &body.cancel_url)?;
    let catalog = &state.billing.catalog;
    match (&body.plan, &body.credit_pack) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "body",
                "give either plan or credit_pack, not both",
            ))
        }
        (None, None) => return Err(ApiError::invalid("body", "give plan or credit_pack")),
        (None, Some(pack_id)) => {
            if body.interval.is_some() || body.trial_days.is_some() {
                return Err(ApiError::invalid(
                    "body",
                    "interval and trial_days apply to plans, not credit packs",
                ));
            }
            let pack = catalog.credit_pack(pack_id).ok_or_else(|| {
                let ids: Vec<&str> = catalog.credit_packs.iter().map(|p| p.id.as_str()).collect();
                ApiError::invalid(
                    "credit_pack",
                    format!("unknown pack; packs: {}", ids.join(", ")),
                )
            })?;
            if let Some(api) = &state.billing.stripe {
                let sale = Sale::CreditPack {
                    pack_id: &pack.id,
                    price: &pack.stripe_price,
                };
                return stripe_checkout(&state, api, tenant, sale, &body).await;
            }
            let mut tx = state.pool.begin().await?;
            let purchase = Purchase::local(
                tenant,
                "credit_pack",
                &pack.id,
                pack.price,
                &catalog.currency,
            );
            let purchase = ledger::insert_purchase(&mut tx, &purchase)
                .await?
                .ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("local purchase not inserted"))
                })?;
            let units = pack.units as i64;
            let grant =
                CreditGrant::for_purchase(&purchase, units, pack.valid_days, purchase.created_at);
            ledger::insert_credit_grant(&mut tx, &grant).await?;
            tx.commit().await?;
            return Ok(Json(json!({
                "mode": "local", "applied": true, "checkout_url": null,
                "redirect_url": body.success_url, "purchase": purchase, "credit_grant": grant,
            })));
        }
        (Some(_), None) => {}
    }
    let plan = paid_plan(catalog, body.plan.as_deref().unwrap_or_default())?;
    let interval = parse_interval(body.interval.as_deref())?;
    let trial_days = body.trial_days.unwrap_or(0);
    if trial_days > 90 {
        return Err(ApiError::invalid("trial_days", "must be between 0 and 90"));
    }
    let mut tx = state.pool.begin().await?;
    if let Some(cur) = subs::lock(&mut tx, tenant).await?.filter(is_live) {
        return Err(conflict(
            "already_subscribed",
            format!(
                "the tenant already has a {} subscription; use POST /api/billing/subscription/change",
                cur.plan_id
            ),
            json!({ "plan": cur.plan_id, "status": cur.status }),
        ));
    }
    if let Some(api) = &state.billing.stripe {
        // One trial per tenant: a tenant that had one (recorded when Stripe reported it) is
        // offered none.
        let trial_days = match trial_days > 0 && trials::had(&mut tx, tenant).await? {
            true => 0,
            false => trial_days,
        };
        drop(tx);
        let price = plan.stripe_price(interval).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("plan {} has no Stripe price", plan.id))
        })?;
        let sale = Sale::Plan {
            plan_id: &plan.id,
            price,
            trial_days,
        };
        let Json(mut answer) = stripe_checkout(&state, api, tenant, sale, &body).await?;
        answer["trial_days"] = json!(trial_days);
        return Ok(Json(answer));
    }
    let now = Utc::now();
    // One trial per tenant: recording it answers false when the tenant already had one.
    let trial_end =
        match (trial_days > 0).then(|| now + chrono::Duration::days(i64::from(trial_days))) {
            Some(end) if trials::record(&mut tx, tenant, "local", &plan.id, Some(end)).await? => {
                Some(end)
            }
            _ => None,
        };
    let end = period_end(now, interval);
    let mut state_row = SubscriptionState::local(
        tenant,
        &plan.id,
        interval.as_str(),
        (now, end),
        catalog.version as i32,
    );
    if trial_end.is_some() {
        state_row.status = "trialing".into();
        state_row.trial_end = trial_end;
    }
    let sub = subs::upsert(&mut tx, &state_row).await?;
    let amount = if trial_end.is_some() {
        0
    } else {
        plan.price(interval)
    };
    let purchase = Purchase::local(tenant, "subscription", &plan.id, amount, &catalog.currency);
    ledger::insert_purchase(&mut tx, &purchase).await?;
    let what = format!("{} ({})", plan.name, interval.as_str());
    let invoice = Invoice::local_paid(tenant, amount, &catalog.currency, what, (now, end));
    ledger::upsert_invoice(&mut tx, &invoice).await?;
    tx.commit().await?;
    let mut view = subscription_view(catalog, Some(&sub));
    view["mode"] = json!("local");
    view["applied"] = json!(true);
    view["checkout_url"] = Value::Null;
    view["redirect_url"] = json!(body.success_url);
    view["trial_days"] = json!(if trial_end.is_some() { trial_days } else { 0 });
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    plan: String,
    interval: Option<String>,
}

/// `POST /api/billing/subscription/change` `{plan, interval?}`: switches plan now, prorated
/// (Stripe mode: by Stripe, see `billing_stripe.rs`):
/// the unused part of the current period is credited against the new price (a new interval
/// starts a new period). A positive difference is invoiced at once.
pub async fn change(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Change>,
) -> Result<Json<Value>, ApiError> {
    let catalog = &state.billing.catalog;
    let plan = paid_plan(catalog, &body.plan)?;
    let interval_arg = body
        .interval
        .as_deref()
        .map(|i| parse_interval(Some(i)))
        .transpose()?;
    if let Some(api) = &state.billing.stripe {
        let answer = stripe_mode::change(&state, api, tenant, &plan.id, interval_arg).await?;
        return Ok(Json(answer));
    }
    local_only(&state)?;
    let mut tx = state.pool.begin().await?;
    let cur = live_local(&mut tx, tenant).await?;
    let old_interval = interval_of(&cur);
    let interval = interval_arg.unwrap_or(old_interval);
    if cur.plan_id == plan.id && interval == old_interval {
        let mut view = subscription_view(catalog, Some(&cur));
        view["mode"] = json!("local");
        view["changed"] = json!(false);
        return Ok(Json(view));
    }
    let now = Utc::now();
    let (start, end) = (
        cur.current_period_start.unwrap_or(now),
        cur.current_period_end.unwrap_or(now),
    );
    let old_price = catalog
        .plan(&cur.plan_id)
        .map_or(0, |p| p.price(old_interval));
    let same = interval == old_interval;
    let (new_start, new_end) = if same {
        (start, end)
    } else {
        (now, period_end(now, interval))
    };
    let charge = match cur.status.as_str() {
        "trialing" => 0,
        _ => keel_billing::proration::charge(
            old_price,
            plan.price(interval),
            (start.timestamp(), end.timestamp()),
            now.timestamp(),
            same,
        ),
    };
    let mut next: SubscriptionState = cur.clone().into();
    next.plan_id = plan.id.clone();
    next.billing_interval = interval.as_str().into();
    next.current_period_start = Some(new_start);
    next.current_period_end = Some(new_end);
    next.catalog_version = catalog.version as i32;
    let sub = subs::upsert(&mut tx, &next).await?;
    if charge > 0 {
        let what = format!(
            "proration: {} → {} ({})",
            cur.plan_id,
            plan.id,
            interval.as_str()
        );
        let invoice = Invoice::local_paid(tenant, charge, &catalog.currency, what, (now, new_end));
        ledger::upsert_invoice(&mut tx, &invoice).await?;
    }
    tx.commit().await?;
    let mut view = subscription_view(catalog, Some(&sub));
    view["mode"] = json!("local");
    view["changed"] = json!(true);
    view["proration_amount"] = json!(charge);
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    at_period_end: bool,
}

/// `POST /api/billing/subscription/cancel` `{at_period_end}`: at the end of the paid period,
/// or now (back on the free plan at once).
pub async fn cancel(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Cancel>,
) -> Result<Json<Value>, ApiError> {
    if let Some(api) = &state.billing.stripe {
        let answer = stripe_mode::cancel(&state, api, tenant, body.at_period_end).await?;
        return Ok(Json(answer));
    }
    local_only(&state)?;
    let mut tx = state.pool.begin().await?;
    let cur = live_local(&mut tx, tenant).await?;
    let now = Utc::now();
    let already_scheduled = cur.cancel_at_period_end;
    let mut next: SubscriptionState = cur.into();
    if body.at_period_end {
        // Asked again: the cancellation stays dated when it was first asked for.
        if !already_scheduled {
            next.canceled_at = Some(now);
        }
        next.cancel_at_period_end = true;
    } else {
        next.canceled_at = Some(now);
        next.status = "canceled".into();
        next.cancel_at_period_end = false;
        next.ended_at = Some(now);
    }
    let sub = subs::upsert(&mut tx, &next).await?;
    tx.commit().await?;
    let mut view = subscription_view(&state.billing.catalog, Some(&sub));
    view["mode"] = json!("local");
    Ok(Json(view))
}

/// 409 `not_cancelling`: there is no scheduled cancellation to call off.
pub(crate) fn not_cancelling() -> ApiError {
    ApiError::Conflict {
        code: "not_cancelling",
        message: "the subscription is not scheduled to cancel".into(),
        details: Value::Null,
    }
}

/// `POST /api/billing/subscription/resume`: calls off a cancellation scheduled for the end of
/// the period (`cancel {"at_period_end": true}`); the subscription renews as before. There had
/// been no way back short of waiting for the period to end and subscribing again.
pub async fn resume(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    if let Some(api) = &state.billing.stripe {
        return Ok(Json(stripe_mode::resume(&state, api, tenant).await?));
    }
    local_only(&state)?;
    let mut tx = state.pool.begin().await?;
    let cur = live_local(&mut tx, tenant).await?;
    if !cur.cancel_at_period_end {
        return Err(not_cancelling());
    }
    let mut next: SubscriptionState = cur.into();
    next.cancel_at_period_end = false;
    next.canceled_at = None;
    let sub = subs::upsert(&mut tx, &next).await?;
    tx.commit().await?;
    let mut view = subscription_view(&state.billing.catalog, Some(&sub));
    view["mode"] = json!("local");
    Ok(Json(view))
}
