//! A tenant's notifications (usage statements, billing summaries, expiry notices) and where
//! they are delivered.
//!
//! Notices are written by the billing jobs (`keel_jobs::kinds::billing_tasks`), each stored
//! once; when the tenant set a URL, each is also POSTed there by a signed `webhook.deliver`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::routes::query;
use crate::state::AppState;

/// `GET /api/notifications?limit=&cursor=`: newest first; pass `next_cursor` as `cursor`.
pub async fn list(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    q: query::Params,
) -> Result<Json<Value>, ApiError> {
    query::only(&q, &["limit", "cursor"])?;
    let limit = query::limit(&q, 50, 200)?;
    let cursor = query::cursor::<uuid::Uuid>(&q)?;
    let rows =
        keel_models::billing_tasks::list_notifications(&state.pool, tenant, cursor, limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|n| n.id))
        .flatten();
    Ok(Json(
        json!({ "notifications": rows, "next_cursor": next_cursor }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Required; `null` stops deliveries (notices are still stored). An absent `url` is refused
    /// rather than read as `null`: `{}` had silently stopped every delivery.
    #[serde(default, deserialize_with = "present")]
    url: Option<Option<String>>,
}

/// `Some(value)` for a field that is present, `null` included (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `GET /api/tenant/notifications`: where notices are POSTed (`null`: nowhere).
pub async fn get(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: query::NoParams,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let url = keel_models::billing_tasks::notification_url(&mut conn, tenant).await?;
    Ok(Json(json!({ "url": url })))
}

/// `PUT /api/tenant/notifications {url}`: where notices are POSTed. The URL passes the same
/// SSRF check as a `webhook.deliver` submit (422 otherwise), and again at each delivery.
pub async fn put(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NotificationSettings>,
) -> Result<Json<Value>, ApiError> {
    let Some(url) = body.url else {
        return Err(ApiError::invalid(
            "url",
            "is required: the URL notices are POSTed to, or null to stop deliveries",
        ));
    };
    if let Some(url) = &url {
        if url.len() > 2048 {
            return Err(ApiError::invalid("url", "must be at most 2048 bytes"));
        }
        keel_jobs::net::check_url(url, &state.services.net)
            .map_err(|m| ApiError::invalid("url", m))?;
    }
    keel_models::billing_tasks::set_notification_url(&state.pool, tenant, url.as_deref()).await?;
    Ok(Json(json!({ "url": url })))
}
