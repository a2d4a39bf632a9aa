//! A tenant's Jira connection and risk settings.
//!
//! `PUT /api/tenant/jira` checks the credentials against Jira's `GET /rest/api/3/myself` before
//! storing anything, so a tenant learns at once that a token is wrong (422) or that Jira cannot be
//! reached (502). The token is sealed (AES-256-GCM) before it is stored and never answered back.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keel_jira::{JiraConfig, JiraError};
use keel_models::jira::NewJiraConnection;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::routes::query::NoParams;
use crate::state::AppState;

/// How long the credential check may take before the answer is "Jira is unreachable".
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectJira {
    base_url: String,
    email: String,
    /// `SecretString` so the token cannot end up in a log line through `Debug`.
    api_token: SecretString,
}

/// `PUT /api/tenant/jira` `{base_url, email, api_token}`.
pub async fn connect(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ConnectJira>,
) -> Result<Json<Value>, ApiError> {
    let base_url = body.base_url.trim().trim_end_matches('/').to_string();
    let email = body.email.trim();
    if base_url.is_empty() {
        return Err(ApiError::invalid("base_url", "must not be empty"));
    }
    keel_jobs::net::check_url(&base_url, &state.services.net)
        .map_err(|e| ApiError::invalid("base_url", e))?;
    if email.is_empty() || email.len() > 320 || !email.contains('@') {
        return Err(ApiError::invalid(
            "email",
            "must be the Jira account's email address",
        ));
    }
    let token = body.api_token.expose_secret().trim();
    if token.is_empty() || token.len() > 4096 {
        return Err(ApiError::invalid(
            "api_token",
            "must be 1 to 4096 characters",
        ));
    }
    let config = JiraConfig {
        timeout: CHECK_TIMEOUT,
        connect_timeout: CHECK_TIMEOUT,
        inline_retry_max_wait: Duration::ZERO,
        ..state.services.jira.config().clone()
    };
    let client = keel_jobs::kinds::analyze::access::build_client(
        &base_url,
        email,
        SecretString::from(token.to_string()),
        config,
        &state.services.net,
    )
    .map_err(|e| ApiError::invalid("base_url", e.to_string()))?;
    let me = client
        .myself()
        .await
        .map_err(|e| check_failed(&base_url, e))?;
    let account_id = me.person_id().unwrap_or_default().to_string();
    let sealed = state
        .services
        .secrets
        .seal(keel_models::crypto::Field::JiraToken, tenant, token);
    let stored = keel_models::jira::upsert_connection(
        &state.pool,
        tenant,
        &NewJiraConnection {
            base_url: &base_url,
            email,
            token_sealed: &sealed,
            account_id: &account_id,
            display_name: me.display_name.as_deref(),
        },
    )
    .await?;
    // `?`: the URL is the tenant's text, logged escaped.
    tracing::info!(tenant_id = %tenant, base_url = ?base_url, "Jira connected");
    Ok(Json(json!({ "jira": stored, "connected": true })))
}

/// What the credential check's failure means for the tenant.
fn check_failed(base_url: &str, e: JiraError) -> ApiError {
    match &e {
        JiraError::Unauthorized { status } => ApiError::Unprocessable {
            code: "jira_credentials_rejected",
            message: format!(
                "Jira answered {status}: the email and API token were not accepted; create a token at https://id.atlassian.com/manage-profile/security/api-tokens and try again"
            ),
            details: json!({ "jira_status": status }),
        },
        JiraError::Invalid(m) => ApiError::invalid("base_url", m.clone()),
        JiraError::NotFound { .. }
        | JiraError::Redirected { .. }
        | JiraError::Decode { .. }
        | JiraError::OverLimit(_) => {
            ApiError::Unprocessable {
                code: "not_a_jira_site",
                message: format!("{base_url} did not answer like a Jira Cloud site: {e}"),
                details: json!({ "path": "base_url", "jira_status": e.status() }),
            }
        }
        _ => ApiError::BadGateway {
            code: "jira_unreachable",
            message: format!("could not check the credentials with Jira at {base_url}: {e}"),
            details: json!({ "jira_status": e.status(), "retryable": e.is_retryable() }),
        },
    }
}

/// `DELETE /api/tenant/jira`.
pub async fn disconnect(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    if keel_models::jira::delete_connection(&state.pool, tenant).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("Jira connection"))
    }
}

/// The tenant's risk settings, defaults filled in (also for stored JSON that no longer parses,
/// which the analysis jobs report as an error).
pub(crate) async fn settings_of(
    state: &AppState,
    tenant: uuid::Uuid,
) -> Result<keel_risk::Settings, ApiError> {
    let stored =
        keel_jobs::kinds::analyze::common::stored_risk_settings(&state.pool, tenant).await?;
    Ok(stored.unwrap_or_default())
}

/// `GET /api/tenant/settings`.
pub async fn get_settings(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "risk": settings_of(&state, tenant).await? })))
}

/// `PUT /api/tenant/settings` `{daily_rate_per_person?, working_days?, thresholds?}`: fields
/// left out keep their current value.
pub async fn put_settings(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let Value::Object(patch) = body else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    let current = settings_of(&state, tenant).await?;
    let mut merged = serde_json::to_value(&current).map_err(anyhow::Error::from)?;
    for (k, v) in patch {
        if !matches!(
            k.as_str(),
            "daily_rate_per_person" | "working_days" | "thresholds"
        ) {
            return Err(ApiError::invalid(
                &k,
                "unknown setting (use daily_rate_per_person, working_days, thresholds)",
            ));
        }
        merged[k] = v;
    }
    let settings: keel_risk::Settings = serde_path_to_error::deserialize(merged)
        .map_err(|e| ApiError::invalid(&e.path().to_string(), e.inner().to_string()))?;
    settings
        .validate()
        .map_err(|e| ApiError::invalid("settings", e))?;
    let stored = serde_json::to_value(&settings).map_err(anyhow::Error::from)?;
    keel_models::jira::set_risk_settings(&state.pool, tenant, &stored).await?;
    Ok(Json(json!({ "risk": settings })))
}
