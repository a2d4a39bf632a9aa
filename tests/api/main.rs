//! The HTTP API contract, black-box: authentication, input validation (bad input changes
//! nothing), idempotency, tenant isolation, listing, cancel/retry, delayed jobs, waiting for a
//! job to end, and the health/readiness/metrics endpoints. Every error body has the shape
//! `{"error": {"code": "...", "message": "...", "details": ...}}`.
//!
//! One test binary (each file under `tests/` links the whole application); a module per area.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod bad_input;
mod health;
mod idempotency;
mod isolation;
mod lifecycle;
mod listing;
mod overload;
mod server_limits;
mod tenant_state;
mod tenants;
mod waiting;

use std::time::Duration;

use keel_models::job::JobStatus;
use reqwest::Method;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// Checks the status and the common error shape; returns `details`.
#[track_caller]
fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) -> Value {
    assert_eq!(status, want_status, "unexpected status; body: {body}");
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {body}"));
    assert!(err.is_object(), "`error` is not an object: {body}");
    assert_eq!(err["code"], want_code, "unexpected error code: {body}");
    let message = err["message"]
        .as_str()
        .unwrap_or_else(|| panic!("`error.message` is not a string: {body}"));
    assert!(!message.is_empty(), "empty error message: {body}");
    assert!(
        err.as_object().unwrap().contains_key("details"),
        "`error.details` missing: {body}"
    );
    err["details"].clone()
}

/// Same as [`assert_error`] but only checks that the code is a non-empty string.
#[track_caller]
fn assert_error_any_code(status: u16, body: &Value, want_status: u16) -> Value {
    assert_eq!(status, want_status, "unexpected status; body: {body}");
    let err = &body["error"];
    assert!(err.is_object(), "`error` is not an object: {body}");
    assert!(
        err["code"].as_str().is_some_and(|c| !c.is_empty()),
        "`error.code` missing: {body}"
    );
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "`error.message` missing: {body}"
    );
    assert!(
        err.as_object().unwrap().contains_key("details"),
        "`error.details` missing: {body}"
    );
    err["details"].clone()
}

/// `POST /api/jobs` with a raw body and an optional content type.
async fn post_raw(
    env: &TestEnv,
    key: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = env.http.post(env.url("/api/jobs")).bearer_auth(key);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    read(req.body(body.to_string()).send().await.unwrap()).await
}

async fn get(env: &TestEnv, key: &str, path: &str) -> (u16, Value) {
    env.call(Method::GET, path, key, None).await
}

async fn post_empty(env: &TestEnv, key: &str, path: &str) -> (u16, Value) {
    env.call(Method::POST, path, key, None).await
}

async fn cancel(env: &TestEnv, key: &str, id: Uuid) -> (u16, Value) {
    post_empty(env, key, &format!("/api/jobs/{id}/cancel")).await
}

async fn retry(env: &TestEnv, key: &str, id: Uuid) -> (u16, Value) {
    post_empty(env, key, &format!("/api/jobs/{id}/retry")).await
}

async fn cancel_raw(env: &TestEnv, key: &str, id: &str) -> (u16, Value) {
    post_empty(env, key, &format!("/api/jobs/{id}/cancel")).await
}
