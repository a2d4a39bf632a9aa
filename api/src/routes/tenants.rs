//! Tenants (created by the operator) and a tenant's API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use keel_jobs::kinds::stripe::sync::SyncCustomer;
use keel_models::tenant::KeyRevoke;

use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, TenantId};
use crate::routes::parse_id;
use crate::routes::query::NoParams;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
}

/// `POST /api/tenants` (admin): the API key and signing secret are in this answer only. In
/// Stripe mode the tenant's `stripe.sync_customer` job is inserted in the same transaction,
/// so every tenant gets its Stripe customer exactly when it exists.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name =
        keel_models::tenant::check_name(&body.name).map_err(|m| ApiError::invalid("name", m))?;
    let mut tx = state.pool.begin().await?;
    let (created, customer_job) = SyncCustomer::create_tenant(
        &mut tx,
        name,
        &state.services.secrets,
        state.billing.stripe.is_some(),
    )
    .await?;
    tx.commit().await?;
    if let Some(job) = &customer_job {
        state.submitter.dispatch_later(job);
    }
    tracing::info!(tenant_id = %created.tenant.id, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": created.tenant.id,
            "name": created.tenant.name,
            "created_at": created.tenant.created_at,
            "api_key": created.api_key.secret,
            "api_key_id": created.api_key_id,
            "signing_secret": created.signing_secret,
            "stripe_customer_job_id": customer_job.map(|j| j.id),
            "note": "api_key and signing_secret are shown only once; store them now",
        })),
    ))
}

/// `GET /api/tenant`: the caller's tenant.
pub async fn me(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let t = keel_models::tenant::get(&state.pool, tenant)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    // The connection as stored, minus the token (JiraConnection never serialises it).
    let jira = keel_models::jira::connection(&state.pool, tenant).await?;
    let risk = crate::routes::jira::settings_of(&state, tenant).await?;
    let mut body = json!(t);
    body["jira"] = json!(jira);
    body["settings"] = json!({ "risk": risk });
    Ok(Json(body))
}

pub async fn list_keys(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let keys = keel_models::tenant::list_keys(&state.pool, tenant).await?;
    Ok(Json(json!({ "keys": keys })))
}

/// `POST /api/keys`: a new key (rotate by creating one, then revoking the old).
pub async fn create_key(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, key) = keel_models::tenant::create_key(&state.pool, tenant).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "prefix": key.prefix, "api_key": key.secret })),
    ))
}

pub async fn revoke_key(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "key")?;
    match keel_models::tenant::revoke_key(&state.pool, tenant, id).await? {
        KeyRevoke::Revoked => {
            state.keys.forget_tenant(tenant);
            Ok(StatusCode::NO_CONTENT)
        }
        KeyRevoke::NotFound => Err(ApiError::NotFound("key")),
        KeyRevoke::LastActiveKey => Err(ApiError::Conflict {
            code: "last_active_key",
            message: "this is the tenant's only active key, and keys are made with a key: \
                      create another first (POST /api/keys), then revoke this one"
                .into(),
            details: json!({ "key_id": id }),
        }),
    }
}

/// `GET /admin/tenants/{id}` (admin): the tenant, whether it is disabled, and its held jobs.
pub async fn admin_get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "tenant")?;
    let t = keel_models::tenant_state::get(&state.pool, id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(Json(json!({
        "id": t.id, "name": t.name, "disabled": t.disabled_at.is_some(),
        "disabled_at": t.disabled_at, "held_jobs": t.jobs_moved,
    })))
}

/// `POST /admin/tenants/{id}/disable` (admin): the tenant's keys answer 401 `tenant_disabled`
/// (in every API process within a second), and its waiting jobs are held until it is enabled;
/// running jobs finish. Disabling a disabled tenant changes nothing.
pub async fn disable(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "tenant")?;
    let t = keel_models::tenant_state::disable(&state.pool, id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    state.keys.forget_tenant(id);
    tracing::warn!(tenant_id = %id, held_jobs = t.jobs_moved, "tenant disabled");
    Ok(Json(json!({
        "id": t.id, "name": t.name, "disabled": true, "disabled_at": t.disabled_at,
        "held_jobs": t.jobs_moved,
    })))
}

/// `POST /admin/tenants/{id}/enable` (admin): the keys work again, held jobs go back on their
/// queues and run.
pub async fn enable(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "tenant")?;
    let t = keel_models::tenant_state::enable(&state.pool, id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    tracing::info!(tenant_id = %id, released_jobs = t.jobs_moved, "tenant enabled");
    Ok(Json(json!({
        "id": t.id, "name": t.name, "disabled": false, "released_jobs": t.jobs_moved,
    })))
}
