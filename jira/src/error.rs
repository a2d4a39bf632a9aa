//! [`JiraError`]: every way a Jira call can fail, pre-sorted into "try again"
//! and "trying again cannot help".
//!
//! The job layer (`keel-jobs`) maps this onto its own `JobError`:
//!
//! ```text
//! if e.is_retryable() { JobError::Retryable { message: e.to_string(), retry_after: e.retry_after() } }
//! else                { JobError::Fatal { message: e.to_string() } }
//! ```
//!
//! This crate deliberately does not depend on `keel-jobs`, so the client can be
//! used from the API (the "test connection" button) without pulling in the
//! job runtime.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// The message shown for 401/403, fixed so the UI and runbooks can rely on it.
pub const CREDENTIALS_REJECTED: &str = "update the Jira connection (email and API token)";

/// A failed Jira call.
///
/// Messages are written for the person who owns the Jira connection: they say
/// what happened and, for fatal errors, what to change. They never contain the
/// API token or the `Authorization` header.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JiraError {
    /// 429: Jira's rate limiter pushed back. `retry_after` comes from the
    /// `Retry-After` header (seconds or HTTP date) or, failing that,
    /// `X-RateLimit-Reset` (ISO 8601 instant); `None` means "use your own
    /// backoff".
    #[error("Jira rate limit hit (429){}", fmt_wait(.retry_after))]
    RateLimited {
        /// How long Jira asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// 5xx (and 408): Jira or something in front of it is having a bad moment.
    #[error("Jira server error ({status}){}: {message}", fmt_wait(.retry_after))]
    Server {
        /// HTTP status code.
        status: u16,
        /// Jira's `errorMessages`, or the start of the body.
        message: String,
        /// From `Retry-After` when present (Jira sends it on some 503s).
        retry_after: Option<Duration>,
    },
    /// The request never got a response: timeout, DNS, refused or reset
    /// connection, a body cut off half way.
    #[error("Jira request failed ({kind}): {message}")]
    Transport {
        /// `"timeout"`, `"connect"` or `"request"`.
        kind: &'static str,
        /// reqwest's description (contains the URL, never credentials).
        message: String,
    },
    /// 401/403: the email/API-token pair was refused (revoked token, wrong
    /// email, account deactivated, or missing permission).
    #[error("Jira rejected the credentials ({status}): {CREDENTIALS_REJECTED}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// 404: the resource does not exist or this account may not see it (Jira
    /// answers 404 for both on purpose).
    #[error("Jira {what} not found or not visible to this account (404)")]
    NotFound {
        /// What was asked for, e.g. `"issue ABC-1"` or `"sprint 42"`.
        what: String,
    },
    /// Any other 4xx (bad JQL, unknown field, ...): the request itself is
    /// wrong, so repeating it gives the same answer.
    #[error("Jira rejected the request ({status}): {message}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Jira's `errorMessages` and field `errors`, joined.
        message: String,
    },
    /// A 3xx: Keel does not follow redirects (they could carry the
    /// credentials to another host); the base URL is probably outdated.
    #[error("Jira redirected ({status}) to {location}: update the Jira base URL")]
    Redirected {
        /// HTTP status code.
        status: u16,
        /// The `Location` header, or `"?"`.
        location: String,
    },
    /// The response was not the JSON Atlassian documents (or was too large).
    #[error("unexpected Jira response from {endpoint}: {message}")]
    Decode {
        /// Path of the endpoint, e.g. `/rest/api/3/issue/ABC-1`.
        endpoint: String,
        /// serde's message with the JSON path of the offending value.
        message: String,
    },
    /// Jira's answer went past one of the client's bounds: bytes in one
    /// response, bytes or responses in one job, items in one page. Reading
    /// stopped there; the message names the limit. Not retryable: the same
    /// request would meet the same answer.
    #[error("{0}")]
    OverLimit(String),
    /// Bad client configuration or arguments (base URL, issue key, ...).
    #[error("invalid Jira request: {0}")]
    Invalid(String),
    /// A Jira payload lacks something the risk snapshot needs (usually a
    /// field that was not requested).
    #[error("cannot map Jira issue {key}: {message}")]
    Mapping {
        /// Issue key.
        key: String,
        /// What is missing.
        message: String,
    },
}

fn fmt_wait(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(", retry after {}s", d.as_secs_f64().ceil() as u64),
        None => String::new(),
    }
}

impl JiraError {
    /// Whether the same call may succeed later (429, 5xx, 408, network).
    /// Everything else needs a human or a code change first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            JiraError::RateLimited { .. } | JiraError::Server { .. } | JiraError::Transport { .. }
        )
    }

    /// How long Jira asked us to wait before the next try, when it said so.
    /// Always `None` for fatal errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JiraError::RateLimited { retry_after } | JiraError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The HTTP status behind this error, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            JiraError::RateLimited { .. } => Some(429),
            JiraError::Server { status, .. }
            | JiraError::Unauthorized { status }
            | JiraError::Rejected { status, .. }
            | JiraError::Redirected { status, .. } => Some(*status),
            JiraError::NotFound { .. } => Some(404),
            _ => None,
        }
    }

    /// Classifies a transport-level reqwest error. Every variant here is
    /// retryable: a timeout or a dropped connection says nothing about the
    /// request being wrong.
    pub(crate) fn transport(e: &reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "request"
        };
        JiraError::Transport {
            kind,
            message: e.to_string(),
        }
    }

    /// Maps a non-2xx response (status, headers, body) to an error.
    pub(crate) fn from_response(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        what: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let code = status.as_u16();
        match code {
            429 => JiraError::RateLimited {
                retry_after: retry_after_from_headers(headers, now),
            },
            401 | 403 => JiraError::Unauthorized { status: code },
            404 => JiraError::NotFound {
                what: what.to_string(),
            },
            408 | 500..=599 => JiraError::Server {
                status: code,
                message: error_message(body),
                retry_after: retry_after_from_headers(headers, now),
            },
            300..=399 => JiraError::Redirected {
                status: code,
                location: headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_string(),
            },
            _ => JiraError::Rejected {
                status: code,
                message: error_message(body),
            },
        }
    }
}

/// Longest error text we keep from a response body; error pages from proxies
/// can be whole HTML documents.
const MAX_MESSAGE_CHARS: usize = 500;

/// Extracts Jira's error text: `errorMessages` plus `errors` (field → text),
/// joined with `"; "`. Falls back to the (truncated) body, then the status.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorCollection {
        #[serde(default)]
        error_messages: Vec<String>,
        #[serde(default)]
        errors: std::collections::BTreeMap<String, serde_json::Value>,
    }
    if let Ok(c) = serde_json::from_slice::<ErrorCollection>(body) {
        let mut parts: Vec<String> = c.error_messages;
        for (field, msg) in c.errors {
            let msg = match msg {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            parts.push(format!("{field}: {msg}"));
        }
        if !parts.is_empty() {
            return truncate(&parts.join("; "), MAX_MESSAGE_CHARS);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error details in the response".to_string()
    } else {
        truncate(text, MAX_MESSAGE_CHARS)
    }
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Reads how long to wait from `Retry-After` (delta seconds, or an HTTP date)
/// or `X-RateLimit-Reset` (an ISO 8601 instant, Jira Cloud's format). A time
/// in the past means "now" (zero). Unparsable values are ignored.
pub fn retry_after_from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = header("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs));
            }
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(v) {
            return Some(until(at.with_timezone(&Utc), now));
        }
    }
    if let Some(v) = header("x-ratelimit-reset") {
        if let Some(at) = crate::types::parse_jira_datetime(v) {
            return Some(until(at, now));
        }
    }
    None
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_seconds_date_and_reset() {
        let now = DateTime::parse_from_rfc3339("2024-01-15T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("retry-after", "Mon, 15 Jan 2024 10:30:05 GMT")]),
                now
            ),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("x-ratelimit-reset", "2024-01-15T10:31:00Z")]),
                now
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("x-ratelimit-reset", "2024-01-15T10:30:30.000+0000")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        // In the past: go now.
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("x-ratelimit-reset", "2024-01-15T10:00:00Z")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new(), now), None);
    }

    #[test]
    fn error_message_joins_messages_and_field_errors() {
        let body = br#"{"errorMessages":["Error in the JQL Query: bad"],"errors":{"jql":"oops"}}"#;
        assert_eq!(
            error_message(body),
            "Error in the JQL Query: bad; jql: oops"
        );
        assert_eq!(error_message(b"  gateway down "), "gateway down");
        assert_eq!(error_message(b""), "no error details in the response");
        let long = "x".repeat(2000);
        assert_eq!(
            error_message(long.as_bytes()).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn classification() {
        let now = Utc::now();
        let h = HeaderMap::new();
        let e = JiraError::from_response(StatusCode::UNAUTHORIZED, &h, b"", "issue A-1", now);
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "Jira rejected the credentials (401): update the Jira connection (email and API token)"
        );
        let e = JiraError::from_response(StatusCode::BAD_GATEWAY, &h, b"", "x", now);
        assert!(e.is_retryable());
        assert_eq!(e.status(), Some(502));
        let e = JiraError::from_response(StatusCode::BAD_REQUEST, &h, b"{}", "x", now);
        assert!(!e.is_retryable());
        assert_eq!(e.retry_after(), None);
    }
}
