//! `GET /api/usage` (the current period: allowance, use per kind, overage, credits) and
//! `GET /api/usage/history` (past periods and the usage ledger's recent events).

use axum::extract::State;
use axum::Json;
use keel_billing::catalog::Overage;
use keel_models::metering::Period;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::TenantId;
use crate::metering::entitlement;
use crate::routes::query;
use crate::routes::query::NoParams;
use crate::state::AppState;

fn period_view(p: &Period, price_per_unit: Option<i64>) -> Value {
    let overage_units = p.used_overage;
    json!({
        "period_start": p.period_start,
        "period_end": p.period_end,
        "plan": p.plan_id,
        "included": p.included_units,
        "used": p.used_included + p.used_credits + p.used_overage,
        "reserved": p.reserved_included + p.reserved_credits + p.reserved_overage,
        "remaining_included": p.included_left(),
        "from_included": p.used_included,
        "from_credits": p.used_credits,
        "overage_units": overage_units,
        "overage_amount": price_per_unit.map(|c| c * overage_units),
        "closed": p.closed_at.is_some(),
    })
}

/// `GET /api/usage`.
pub async fn current(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let now = chrono::Utc::now();
    let e = entitlement(&state, tenant, now).await?;
    let catalog = &state.billing.catalog;
    let price = match e.plan.overage {
        Overage::PerUnit(c) => Some(c),
        Overage::HardCap => None,
    };
    let period =
        keel_models::metering::period_starting(&state.pool, tenant, e.period_start).await?;
    let kinds = match &period {
        Some(p) => keel_models::metering::kinds(&state.pool, tenant, p.period_start).await?,
        None => Vec::new(),
    };
    let mut by_kind: Vec<Value> = Vec::new();
    for kind in catalog.unit_weights.keys() {
        let k = kinds.iter().find(|k| &k.kind == kind);
        let limit = e.plan.kind_limits.get(kind).copied();
        let used = k.map_or(0, |k| k.used);
        let reserved = k.map_or(0, |k| k.reserved);
        by_kind.push(json!({
            "kind": kind,
            "used": used,
            "reserved": reserved,
            "limit": limit,
            "remaining": limit.map(|l| (l as i64 - used - reserved).max(0)),
        }));
    }
    let mut conn = state.pool.acquire().await?;
    let credits = keel_models::metering::credits_left(&mut conn, tenant, now).await?;
    let mut body = match &period {
        Some(p) => period_view(p, price),
        None => json!({
            "period_start": e.period_start,
            "period_end": e.period_end,
            "plan": e.plan.id,
            "included": e.plan.included_units,
            "used": 0, "reserved": 0,
            "remaining_included": e.plan.included_units,
            "from_included": 0, "from_credits": 0,
            "overage_units": 0, "overage_amount": price.map(|_| 0),
            "closed": false,
        }),
    };
    body["currency"] = json!(catalog.currency);
    body["overage"] = json!(e.plan.overage);
    body["kinds"] = json!(by_kind);
    body["credits"] = json!({ "available": credits });
    body["resets_at"] = json!(e.period_end);
    Ok(Json(body))
}

/// `GET /api/usage/history?limit=`: past periods (newest first) and the newest usage events.
pub async fn history(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    q: query::Params,
) -> Result<Json<Value>, ApiError> {
    query::only(&q, &["limit"])?;
    let limit = query::limit(&q, 12, 120)?;
    let catalog = &state.billing.catalog;
    let periods = keel_models::metering::periods(&state.pool, tenant, limit).await?;
    let periods: Vec<Value> = periods
        .iter()
        .map(|p| {
            let price = catalog
                .plan(&p.plan_id)
                .and_then(|plan| match plan.overage {
                    Overage::PerUnit(c) => Some(c),
                    Overage::HardCap => None,
                });
            period_view(p, price)
        })
        .collect();
    let events = keel_models::usage::list(&state.pool, tenant, 100).await?;
    Ok(Json(json!({ "periods": periods, "events": events })))
}
