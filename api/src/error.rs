//! The one API error type, mapped to HTTP in one place. Every error has the same body:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`. Database and other internal
//! failures become an opaque 500 (logged with detail, never shown); Postgres unreachable or
//! dropping the session becomes 503 `unavailable` with `Retry-After`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The credential the route takes (`API key`, `admin token`) is missing or wrong.
    #[error("missing or invalid {0}")]
    Unauthorized(&'static str),
    /// The API key is valid but an operator disabled its tenant.
    #[error(
        "this tenant is disabled; its API keys are refused until an operator enables it again"
    )]
    TenantDisabled,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// The request (its body) did not arrive in time (`crate::body_deadline`).
    #[error("{0}")]
    RequestTimeout(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// A service Keel depends on is down or refusing; `Retry-After` (seconds) is sent when
    /// Keel knows when to try again.
    #[error("{message}")]
    Unavailable {
        message: String,
        details: Value,
        retry_after: Option<u64>,
    },
    /// The tenant owes money: its subscription is unpaid, or a payment has been failing for
    /// longer than the grace period.
    #[error("{message}")]
    PaymentRequired { message: String },
    /// A quota or request-rate limit: `Retry-After` (seconds) and any `RateLimit-*` headers are
    /// sent with the error.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        details: Value,
        retry_after: Option<u64>,
        headers: Vec<(&'static str, String)>,
    },
    /// An upstream service Keel called for the request (e.g. the tenant's Jira) failed.
    #[error("{message}")]
    BadGateway {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Text Postgres cannot store (NUL, invalid encoding) is the client's input, not our
        // failure. The extractor refuses NUL up front; this is the backstop.
        if let sqlx::Error::Database(db) = &e {
            if matches!(db.code().as_deref(), Some("22P05") | Some("22021")) {
                return ApiError::Unprocessable {
                    code: "invalid_request",
                    message:
                        "a text value cannot be stored (it contains NUL or invalid characters)"
                            .into(),
                    details: Value::Null,
                };
            }
        }
        if keel_models::db::is_unavailable(&e) {
            // Not the request's fault nor a bug: say so, and when to try again.
            tracing::warn!(error = %e, "Postgres unavailable");
            return ApiError::Unavailable {
                message: "the database is unavailable; retry shortly".into(),
                details: json!({ "postgres": "unavailable" }),
                retry_after: Some(1),
            };
        }
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Unprocessable {
            code: "invalid_request",
            message: format!("{path}: {message}"),
            details: json!({ "path": path, "reason": message }),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, Value::Null),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", Value::Null),
            ApiError::TenantDisabled => (StatusCode::UNAUTHORIZED, "tenant_disabled", Value::Null),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", Value::Null),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Value::Null,
            ),
            ApiError::Conflict { code, details, .. } => {
                (StatusCode::CONFLICT, code, details.clone())
            }
            ApiError::RequestTimeout(_) => {
                (StatusCode::REQUEST_TIMEOUT, "request_timeout", Value::Null)
            }
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                json!({ "limit_bytes": limit }),
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Value::Null,
            ),
            ApiError::Unprocessable { code, details, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, details.clone())
            }
            ApiError::Unavailable { details, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                details.clone(),
            ),
            ApiError::PaymentRequired { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "payment_required",
                Value::Null,
            ),
            ApiError::TooManyRequests { code, details, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, code, details.clone())
            }
            ApiError::BadGateway { code, details, .. } => {
                (StatusCode::BAD_GATEWAY, code, details.clone())
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Value::Null),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let (status, code, details) = self.parts();
        let body = Json(json!({
            "error": { "code": code, "message": self.to_string(), "details": details }
        }));
        let mut resp = (status, body).into_response();
        if let ApiError::TooManyRequests {
            retry_after,
            headers,
            ..
        } = &self
        {
            let h = resp.headers_mut();
            if let Some(secs) = retry_after {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(*name, v);
                }
            }
        }
        if let ApiError::Unavailable {
            retry_after: Some(secs),
            ..
        } = &self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keel\""),
            );
        }
        resp
    }
}

/// Rewrites an error response that is not already JSON into the one error shape. Handlers
/// answer with [`ApiError`]; this catches what axum answers itself, before any handler runs:
/// a path or query string it cannot decode (`/api/jobs/%ff` had answered `400 text/plain`).
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // axum's own rejections are one line of text.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let body = json!({ "error": { "code": code, "message": message, "details": null } });
    let mut out = (status, Json(body)).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}
