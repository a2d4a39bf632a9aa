//! Routes.

mod health;
mod jobs;
mod tenants;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/api/tenants", post(tenants::create))
        .route("/api/tenant", get(tenants::me))
        .route(
            "/api/keys",
            get(tenants::list_keys).post(tenants::create_key),
        )
        .route("/api/keys/{id}", delete(tenants::revoke_key))
        .route("/api/jobs", post(jobs::submit).get(jobs::list))
        .route("/api/jobs/{id}", get(jobs::get))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/jobs/{id}/retry", post(jobs::retry))
        .fallback(|| async { crate::error::ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { crate::error::ApiError::MethodNotAllowed })
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
