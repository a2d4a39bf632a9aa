//! Extractors: JSON bodies with precise errors, and the two kinds of authentication.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON object body. Malformed JSON → 400; valid JSON of the wrong shape (or not an
/// object) → 422 naming the field;
/// over the body limit → 413; not `application/json` → 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(crate::body_deadline::unreadable)?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
                code: "malformed_json",
                message: format!("body is not valid JSON: {e}"),
            })?;
        if let Some(path) = find_nul(&value, String::new()) {
            return Err(ApiError::invalid(
                &path,
                "must not contain the NUL character (\\u0000)",
            ));
        }
        // Every body Keel takes is an object; serde would otherwise read a struct from an array
        // by position (`["noop", {}]` was a job).
        if !value.is_object() {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let reason = e.into_inner().to_string();
                let path = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                ApiError::Unprocessable {
                    code: "invalid_request",
                    message: format!("{path}: {reason}"),
                    details: json!({ "path": path, "reason": reason }),
                }
            })
    }
}

/// Postgres text and jsonb cannot hold NUL: find the first string (or key) that has one.
fn find_nul(v: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let join = |p: &str, k: &str| {
        if p.is_empty() {
            k.to_string()
        } else {
            format!("{p}.{k}")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => {
            Some(if path.is_empty() { "body".into() } else { path })
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, x)| {
            find_nul(
                x,
                format!("{}[{i}]", if path.is_empty() { "body" } else { &path }),
            )
        }),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(join(&path, k))
            } else {
                find_nul(x, join(&path, k))
            }
        }),
        _ => None,
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    bearer_token(&parts.headers)
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The tenant an API key belongs to.
pub struct TenantId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for TenantId
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let key = bearer(parts).ok_or(ApiError::Unauthorized("API key"))?;
        if !key.starts_with(keel_models::crypto::API_KEY_PREFIX) {
            return Err(ApiError::Unauthorized("API key"));
        }
        let hash = keel_models::crypto::hash_api_key(key);
        let tenant = match state.keys.get(&hash) {
            Some(tenant) => tenant,
            None => {
                use keel_models::tenant::KeyOwner;
                let lookup = state.keys.begin_lookup();
                match keel_models::tenant::authenticate(&state.pool, key).await? {
                    Some(KeyOwner::Tenant(tenant)) => {
                        state.keys.remember(hash, tenant, lookup);
                        tenant
                    }
                    Some(KeyOwner::Disabled(_)) => return Err(ApiError::TenantDisabled),
                    None => return Err(ApiError::Unauthorized("API key")),
                }
            }
        };
        let access = crate::rate_limit::Access::of(&parts.method);
        crate::rate_limit::check(&state, tenant, access).await?;
        Ok(TenantId(tenant))
    }
}

/// The operator, by `KEEL_ADMIN_TOKEN`.
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if token_matches(&state.admin_token, bearer(parts)) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized("admin token"))
        }
    }
}

/// Whoever may read `/metrics`: anyone, or with `KEEL_METRICS_TOKEN` set, a caller presenting
/// it as a bearer token (the metrics name tenants' job kinds and volumes).
pub struct MetricsReader;

impl<S: Send + Sync> FromRequestParts<S> for MetricsReader
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        match &state.metrics_token {
            None => Ok(MetricsReader),
            Some(token) if token_matches(token, bearer(parts)) => Ok(MetricsReader),
            Some(_) => Err(ApiError::Unauthorized("metrics token")),
        }
    }
}

/// Whether `given` is the secret `want`. Digests are compared, so the comparison's time says
/// nothing about the secret.
pub fn token_matches(want: &SecretString, given: Option<&str>) -> bool {
    given.is_some_and(|given| {
        Sha256::digest(want.expose_secret().as_bytes()) == Sha256::digest(given.as_bytes())
    })
}
