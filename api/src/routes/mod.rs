//! Routes.

mod admin_billing;
mod analyses;
mod batch;
mod billing;
mod health;
mod jira;
mod jobs;
mod notifications;
mod plans;
pub(crate) mod query;
mod schedules;
mod tenants;
mod usage;
mod webhooks;

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::state::AppState;

pub use health::{GaugeCache, LEDGER_GAUGES_TTL};

/// The API's routes; `/metrics` is added by [`metrics_router`], on the API's address or on an
/// address of its own (`KEEL_METRICS_ADDR`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/api/tenants", post(tenants::create))
        .route("/api/tenant", get(tenants::me))
        .route(
            "/api/keys",
            get(tenants::list_keys).post(tenants::create_key),
        )
        .route("/api/keys/{id}", delete(tenants::revoke_key))
        .route("/api/jobs", post(jobs::submit).get(jobs::list))
        .route("/api/jobs/batch", post(batch::submit))
        .route("/api/jobs/{id}", get(jobs::get))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/jobs/{id}/retry", post(jobs::retry))
        .route(
            "/api/tenant/jira",
            put(jira::connect).delete(jira::disconnect),
        )
        .route(
            "/api/tenant/settings",
            get(jira::get_settings).put(jira::put_settings),
        )
        .route("/api/analyze/issue", post(analyses::issue))
        .route("/api/analyze/sprint", post(analyses::sprint))
        .route("/api/analyze/portfolio", post(analyses::portfolio))
        .route("/api/analyses/issues/{key}/history", get(analyses::history))
        .route("/api/analyses/issues/{key}/trend", get(analyses::trend))
        .route("/admin/schedules", get(schedules::list))
        .route("/admin/tenants/{id}", get(tenants::admin_get))
        .route("/admin/tenants/{id}/disable", post(tenants::disable))
        .route("/admin/tenants/{id}/enable", post(tenants::enable))
        .route("/api/usage", get(usage::current))
        .route("/api/usage/history", get(usage::history))
        .route("/api/plans", get(plans::list))
        .route("/webhooks/stripe", post(webhooks::stripe))
        .route("/api/billing/subscription", get(plans::subscription))
        .route("/api/billing/checkout", post(billing::checkout))
        .route("/api/billing/portal", post(webhooks::portal))
        .route("/api/billing/subscription/change", post(billing::change))
        .route("/api/billing/subscription/cancel", post(billing::cancel))
        .route("/api/billing/subscription/resume", post(billing::resume))
        .route("/api/billing/invoices", get(plans::invoices))
        .route("/api/billing/credits", get(plans::credits))
        .route("/api/billing/purchases", get(plans::purchases))
        .route("/admin/stripe/events", get(admin_billing::list_events))
        .route(
            "/admin/stripe/events/{id}/replay",
            post(admin_billing::replay),
        )
        .route("/admin/billing/stats", get(admin_billing::stats))
        .route("/api/notifications", get(notifications::list))
        .route(
            "/api/tenant/notifications",
            get(notifications::get).put(notifications::put),
        )
        .fallback(|| async { crate::error::ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { crate::error::ApiError::MethodNotAllowed })
}

/// `GET /metrics` alone.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(health::metrics))
}

/// Parses a path id; a malformed one is a 400 that says so.
pub(crate) fn parse_id(
    raw: &str,
    what: &'static str,
) -> Result<uuid::Uuid, crate::error::ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| crate::error::ApiError::BadRequest {
        code: "invalid_id",
        message: format!("{what} id {raw:?} is not a UUID"),
    })
}
