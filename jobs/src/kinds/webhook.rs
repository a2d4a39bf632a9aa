//! `webhook.deliver`: POST a JSON payload to a tenant's URL, signed so the receiver can trust it.
//!
//! Signature (same scheme as Stripe's, so receivers can reuse their code):
//! `Keel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` with the tenant's
//! signing secret. `Keel-Delivery` carries the job id, identical on every retry, so receivers
//! can drop duplicates (delivery is at-least-once).
//! Outcomes: 2xx → done; 408, 429, 5xx, timeouts and connection errors → retryable (honouring
//! `Retry-After`); any other status → fatal; a destination that resolves to an internal address
//! → fatal (see [`crate::net`]).

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};
use crate::net;

pub const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliver {
    pub url: String,
    /// Event name, e.g. `usage.statement`; sent as `Keel-Event`.
    pub event: String,
    pub payload: Value,
}

/// `t=…,v1=…` for `body` signed at `timestamp`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

impl Job for WebhookDeliver {
    const NAME: &'static str = "webhook.deliver";
    const MAX_ATTEMPTS: i32 = 10;
    /// The request's own 10 s timeout, loading the signing secret, and room to spare.
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn validate(&self, services: &Services) -> Result<(), ArgsError> {
        net::check_url(&self.url, &services.net).map_err(|m| ArgsError::new("args.url", m))?;
        if self.event.is_empty() || self.event.len() > 200 {
            return Err(ArgsError::new("args.event", "must be 1 to 200 characters"));
        }
        // It is sent as the `Keel-Event` header, which cannot carry control characters: such a
        // job had been accepted and then failed every attempt.
        if self.event.chars().any(char::is_control) {
            return Err(ArgsError::new(
                "args.event",
                "must not contain control characters (it is sent as the Keel-Event header)",
            ));
        }
        let size = serde_json::to_vec(&self.payload)
            .map(|v| v.len())
            .unwrap_or(0);
        if size > MAX_PAYLOAD_BYTES {
            return Err(ArgsError::new(
                "args.payload",
                format!("is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}"),
            ));
        }
        Ok(())
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let services = &ctx.services;
        let url = net::check_url(&self.url, &services.net).map_err(JobError::fatal)?;
        let tenant_id = ctx.tenant_id.ok_or_else(|| {
            JobError::fatal("webhook.deliver needs a tenant (for its signing secret)")
        })?;
        let sealed = keel_models::tenant::sealed_signing_secret(&services.pool, tenant_id)
            .await
            .map_err(|e| JobError::retryable(format!("loading the signing secret failed: {e}")))?
            .ok_or_else(|| JobError::fatal("tenant no longer exists"))?;
        let secret = services
            .secrets
            .open(
                keel_models::crypto::Field::SigningSecret,
                tenant_id,
                &sealed,
            )
            .map_err(|e| JobError::fatal(format!("cannot open the signing secret: {e}")))?;

        let body = serde_json::to_vec(&self.payload).expect("a JSON value serialises");
        let timestamp = chrono::Utc::now().timestamp();
        // What errors may say of the destination: chat webhooks carry their secret in the path.
        let destination = net::redacted(&url);
        let request = services
            .http
            .post(url)
            .timeout(TIMEOUT)
            .header("content-type", "application/json")
            .header("keel-event", &self.event)
            .header("keel-delivery", ctx.job_id.to_string())
            .header("keel-attempt", ctx.attempt.to_string())
            .header(
                "keel-signature",
                signature_header(&secret, timestamp, &body),
            )
            .body(body);

        let started = std::time::Instant::now();
        let response = tokio::select! {
            r = request.send() => r,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                if let Some(blocked) = net::blocked_cause(&e) {
                    return Err(JobError::fatal(blocked));
                }
                // reqwest's errors print the whole URL; `last_error` and logs get it redacted.
                let (builder, timeout) = (e.is_builder(), e.is_timeout());
                let e = e.without_url();
                // The request itself cannot be built (a job stored before its args were
                // checked as they are now): no attempt will ever send it.
                if builder {
                    return Err(JobError::fatal(format!(
                        "the request to {destination} cannot be built: {}",
                        error_chain(&e)
                    )));
                }
                let what = if timeout { "timed out" } else { "failed" };
                return Err(JobError::retryable(format!(
                    "delivery to {destination} {what}: {}",
                    error_chain(&e)
                )));
            }
        };
        let status = response.status();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if status.is_success() {
            return Ok(json!({"status": status.as_u16(), "duration_ms": elapsed_ms}));
        }
        let retry_after = parse_retry_after(response.headers());
        let message = format!("receiver answered {status}");
        if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
            Err(JobError::Retryable {
                message,
                retry_after,
            })
        } else {
            Err(JobError::fatal(message))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256(key="whsec_test", msg="1700000000.{\"a\":1}"), computed independently
        // with Python's hmac module.
        let h = signature_header("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            h,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }
}
