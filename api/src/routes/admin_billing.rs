//! Operators (admin token): the Stripe event inbox with processing status, replay of one
//! event, and revenue figures.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keel_billing::{Interval, Overage};
use keel_models::billing::{events, stats};
use keel_models::job::{self as ledger, Inserted};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::Admin;
use crate::routes::query;
use crate::routes::webhooks::processing_job;
use crate::state::AppState;

fn event_view(e: &events::StripeEvent) -> Value {
    json!({
        "id": e.id,
        "type": e.kind,
        "api_version": e.api_version,
        "created": e.created,
        "livemode": e.livemode,
        "status": e.status,
        "error": e.error,
        "job_id": e.job_id,
        "received_at": e.received_at,
        "processed_at": e.processed_at,
        "payload": e.payload,
    })
}

/// `GET /admin/stripe/events?status=&type=&limit=&cursor=`: newest first.
pub async fn list_events(
    _: Admin,
    State(state): State<AppState>,
    q: query::Params,
) -> Result<Json<Value>, ApiError> {
    query::only(&q, &["status", "type", "limit", "cursor"])?;
    let status = q.get("status").map(String::as_str);
    if let Some(s) = status {
        if !events::STATUSES.contains(&s) {
            return Err(ApiError::invalid(
                "status",
                format!("must be one of {}", events::STATUSES.join(", ")),
            ));
        }
    }
    let limit = query::limit(&q, 50, 200)?;
    let cursor = query::cursor::<i64>(&q)?;
    let kind = q.get("type").map(String::as_str);
    let rows = events::list(&state.pool, status, kind, cursor, limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(json!({
        "events": rows.iter().map(event_view).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// `POST /admin/stripe/events/{id}/replay`: processes a stored event again (after a fix to
/// the catalog, say). Effects stay exactly-once: per-object ordering and unique purchases
/// make a re-application change nothing that was already applied.
pub async fn replay(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut tx = state.pool.begin().await?;
    if events::lock(&mut tx, &id).await?.is_none() {
        return Err(ApiError::NotFound("Stripe event"));
    }
    let job = processing_job(&state, &id)?;
    events::reset_for_replay(&mut tx, &id, job.id).await?;
    let row = match ledger::insert(&mut tx, &job).await? {
        Inserted::New(j) | Inserted::Existing(j) => j,
    };
    tx.commit().await?;
    state.submitter.dispatch_later(&row);
    tracing::info!(event_id = %id, job_id = %row.id, "Stripe event replay enqueued");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event_id": id, "status": "received", "job_id": row.id })),
    ))
}

/// `GET /admin/billing/stats`: MRR and ARR priced from the catalog (active and past-due
/// subscriptions; trials pay nothing yet), live subscriptions per plan, 30-day churn,
/// credit-pack sales, and overage revenue: the overage units of the usage periods closed in the
/// last 30 days, priced at their plan's overage price in the catalog (like the monthly revenue
/// snapshot; hard-capped or unknown plans add nothing).
pub async fn stats(
    _: Admin,
    State(state): State<AppState>,
    _: query::NoParams,
) -> Result<Json<Value>, ApiError> {
    let catalog = &state.billing.catalog;
    let live = stats::live_subscriptions(&state.pool).await?;
    let mut mrr = 0i64;
    let mut per_plan: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut live_total = 0i64;
    for row in &live {
        live_total += row.n;
        *per_plan
            .entry(row.plan_id.clone())
            .or_default()
            .entry(row.status.clone())
            .or_default() += row.n;
        if matches!(row.status.as_str(), "active" | "past_due") {
            let interval = Interval::parse(&row.billing_interval).unwrap_or(Interval::Month);
            if let Some(plan) = catalog.plan(&row.plan_id) {
                mrr += plan.monthly_revenue(interval) * row.n;
            }
        }
    }
    let churned = stats::churned(&state.pool, 30).await?;
    let base = live_total + churned;
    let packs = stats::credit_pack_sales(&state.pool, 30).await?;
    let overage = stats::closed_overage(&state.pool, 30).await?;
    let overage_price = |plan_id: &str| match catalog.plan(plan_id).map(|p| p.overage) {
        Some(Overage::PerUnit(cents)) => cents,
        _ => 0,
    };
    let overage_per_plan: Vec<Value> = overage
        .iter()
        .map(|o| {
            json!({
                "plan_id": o.plan_id,
                "periods": o.periods,
                "units": o.units,
                "amount": o.units * overage_price(&o.plan_id),
            })
        })
        .collect();
    let overage_revenue: i64 = overage
        .iter()
        .map(|o| o.units * overage_price(&o.plan_id))
        .sum();
    Ok(Json(json!({
        "currency": catalog.currency,
        "mrr": mrr,
        "arr": mrr * 12,
        "subscriptions_per_plan": per_plan,
        "live_subscriptions": live_total,
        "churn_30d": {
            "canceled": churned,
            "rate": if base > 0 { churned as f64 / base as f64 } else { 0.0 },
        },
        "credit_pack_sales_30d": {
            "count": packs.iter().map(|p| p.count).sum::<i64>(),
            "amount": packs.iter().map(|p| p.amount).sum::<i64>(),
            "per_pack": packs,
        },
        "overage_revenue": overage_revenue,
        "overage_30d": {
            "periods": overage.iter().map(|o| o.periods).sum::<i64>(),
            "units": overage.iter().map(|o| o.units).sum::<i64>(),
            "amount": overage_revenue,
            "per_plan": overage_per_plan,
        },
    })))
}
