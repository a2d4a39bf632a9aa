mod support;

// The HTTP API contract, black-box: authentication, input validation (bad input changes
// nothing), idempotency, tenant isolation, listing, cancel/retry, delayed jobs, and the
// health/readiness/metrics endpoints. Every error body has the shape
// `{"error": {"code": "...", "message": "...", "details": ...}}`.

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

// ---------------------------------------------------------------------------------------------
// 1. Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn requests_without_or_with_a_wrong_api_key_are_401_with_www_authenticate() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;

    // No Authorization header at all.
    let resp = env.http.get(env.url("/api/jobs")).send().await.unwrap();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = read(resp).await;
    assert_error(status, &body, 401, "unauthorized");
    let www = www.expect("401 carries WWW-Authenticate");
    assert!(www.to_ascii_lowercase().starts_with("bearer"), "{www}");

    // Submitting without a key writes nothing.
    let resp = env
        .http
        .post(env.url("/api/jobs"))
        .json(&noop(1))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, body) = read(resp).await;
    assert_error(status, &body, 401, "unauthorized");

    // A well-formed but unknown key, and a garbage one.
    let wrong = format!("kl_live_{}", "x".repeat(32));
    for bad in [wrong.as_str(), "not-a-key", &key[..key.len() - 1]] {
        let resp = env
            .http
            .get(env.url("/api/jobs"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert!(resp.headers().contains_key("www-authenticate"));
        let (status, body) = read(resp).await;
        assert_error(status, &body, 401, "unauthorized");
        let (status, body) = env.submit(bad, noop(1)).await;
        assert_error(status, &body, 401, "unauthorized");
    }

    // A non-bearer scheme carrying the right key is refused too.
    let resp = env
        .http
        .get(env.url("/api/jobs"))
        .basic_auth(&key, None::<&str>)
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_error(status, &body, 401, "unauthorized");

    // The right key works.
    let (status, body) = get(&env, &key, "/api/jobs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn a_revoked_key_is_401_while_the_new_key_works() {
    let env = TestEnv::new().await;
    let (_, old_key, _) = env.tenant("acme").await;

    let (status, body) = get(&env, &old_key, "/api/keys").await;
    assert_eq!(status, 200, "{body}");
    let keys = body["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1, "{body}");
    let old_id = keys[0]["id"].as_str().unwrap().to_string();

    let (status, created) = post_empty(&env, &old_key, "/api/keys").await;
    assert_eq!(status, 201, "{created}");
    let new_key = created["api_key"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("kl_live_"), "{new_key}");
    assert_ne!(new_key, old_key);
    assert!(new_key.starts_with(created["prefix"].as_str().unwrap()));

    // Both work before the revocation.
    assert_eq!(get(&env, &old_key, "/api/jobs").await.0, 200);
    assert_eq!(get(&env, &new_key, "/api/jobs").await.0, 200);

    let (status, _) = env
        .call(
            Method::DELETE,
            &format!("/api/keys/{old_id}"),
            &new_key,
            None,
        )
        .await;
    assert_eq!(status, 204);

    let (status, body) = get(&env, &old_key, "/api/jobs").await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = env.submit(&old_key, noop(1)).await;
    assert_error(status, &body, 401, "unauthorized");
    assert_eq!(env.count_jobs().await, 0);

    let (status, body) = get(&env, &new_key, "/api/tenant").await;
    assert_eq!(status, 200, "{body}");
    env.submit_ok(&new_key, noop(1)).await;
    assert_eq!(env.count_jobs().await, 1);

    // The listing shows the old key as revoked.
    let (_, body) = get(&env, &new_key, "/api/keys").await;
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{body}");
    let old = keys.iter().find(|k| k["id"] == old_id.as_str()).unwrap();
    assert!(!old["revoked_at"].is_null(), "{body}");

    // Revoking an unknown key id is a 404; a malformed one a 400.
    let (status, body) = env
        .call(
            Method::DELETE,
            &format!("/api/keys/{}", Uuid::new_v4()),
            &new_key,
            None,
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = env
        .call(Method::DELETE, "/api/keys/nope", &new_key, None)
        .await;
    assert_error(status, &body, 400, "invalid_id");
}

#[tokio::test]
async fn a_tenant_cannot_revoke_another_tenants_key() {
    let env = TestEnv::new().await;
    let (_, key_a, _) = env.tenant("a").await;
    let (_, key_b, _) = env.tenant("b").await;
    let (_, body) = get(&env, &key_a, "/api/keys").await;
    let a_key_id = body["keys"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = env
        .call(
            Method::DELETE,
            &format!("/api/keys/{a_key_id}"),
            &key_b,
            None,
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(get(&env, &key_a, "/api/jobs").await.0, 200);
}

#[tokio::test]
async fn creating_a_tenant_needs_the_admin_token() {
    let env = TestEnv::new().await;
    let (_, tenant_key, _) = env.tenant("acme").await;
    let tenants_before: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();

    let resp = env
        .http
        .post(env.url("/api/tenants"))
        .json(&json!({ "name": "evil" }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, body) = read(resp).await;
    assert_error(status, &body, 401, "unauthorized");

    let wrong_admin = format!("{ADMIN}x");
    for token in [wrong_admin.as_str(), "wrong", tenant_key.as_str()] {
        let resp = env
            .http
            .post(env.url("/api/tenants"))
            .bearer_auth(token)
            .json(&json!({ "name": "evil" }))
            .send()
            .await
            .unwrap();
        let (status, body) = read(resp).await;
        assert_error(status, &body, 401, "unauthorized");
    }

    let tenants_after: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(tenants_before, tenants_after);
}

#[tokio::test]
async fn the_key_listing_shows_prefixes_and_never_the_secret() {
    let env = TestEnv::new().await;
    let (_, key, signing) = env.tenant("acme").await;
    assert!(key.starts_with("kl_live_"), "{key}");
    assert!(key.len() > "kl_live_".len() + 16, "{key}");

    let (_, created) = post_empty(&env, &key, "/api/keys").await;
    let second = created["api_key"].as_str().unwrap().to_string();
    assert!(second.starts_with("kl_live_"), "{second}");

    let resp = env
        .http
        .get(env.url("/api/keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&key), "listing leaks the key: {text}");
    assert!(!text.contains(&second), "listing leaks the key: {text}");
    assert!(
        !text.contains(&signing),
        "listing leaks the signing secret: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{body}");
    for (k, secret) in keys.iter().zip([&key, &second]) {
        let prefix = k["prefix"].as_str().unwrap();
        assert!(prefix.starts_with("kl_live_"), "{prefix}");
        assert!(secret.starts_with(prefix), "{prefix} vs {secret}");
        assert!(prefix.len() < secret.len(), "{prefix}");
        assert!(k["revoked_at"].is_null());
    }

    // GET /api/tenant does not leak secrets either.
    let (_, me) = get(&env, &key, "/api/tenant").await;
    let me_text = me.to_string();
    assert!(
        !me_text.contains(&key) && !me_text.contains(&signing),
        "{me_text}"
    );
}

#[tokio::test]
async fn the_database_stores_only_a_hash_of_the_key_and_no_plaintext_signing_secret() {
    let env = TestEnv::new().await;
    let (tenant, key, signing) = env.tenant("acme").await;
    assert!(key.starts_with("kl_live_"));
    let pool = &env.keel.pool;

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    // No column, in any textual or binary form, holds the key.
    let leaking: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys k
         WHERE position($1 in row_to_json(k)::text) > 0
            OR k.key_hash = convert_to($1, 'UTF8')
            OR position(convert_to($1, 'UTF8') in k.key_hash) > 0
            OR k.prefix = $1",
    )
    .bind(&key)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(leaking, 0, "api_keys stores the plaintext key");

    // What is stored is the SHA-256 of the key.
    let hashed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE key_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&key)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(hashed, 1, "api_keys.key_hash is not sha256(key)");

    // Tenants: the signing secret is sealed, not stored in the clear (not even partly).
    let stored: String = sqlx::query_scalar("SELECT signing_secret FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        !stored.contains(&signing),
        "plaintext signing secret stored"
    );
    let random_part = signing.trim_start_matches("whsec_");
    assert!(random_part.len() >= 16);
    assert!(
        !stored.contains(random_part),
        "plaintext signing secret stored"
    );
    let anywhere: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenants t WHERE position($1 in row_to_json(t)::text) > 0",
    )
    .bind(random_part)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(anywhere, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Bad input changes nothing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400_and_a_missing_content_type_is_415() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;

    let (status, body) = post_raw(
        &env,
        &key,
        Some("application/json"),
        r#"{"kind": "noop", "args": {"#,
    )
    .await;
    assert_error(status, &body, 400, "malformed_json");
    assert_eq!(env.count_jobs().await, 0);

    let (status, body) = post_raw(&env, &key, None, r#"{"kind": "noop", "args": {}}"#).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    assert_eq!(env.count_jobs().await, 0);

    let (status, body) = post_raw(
        &env,
        &key,
        Some("text/plain"),
        r#"{"kind": "noop", "args": {}}"#,
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    assert_eq!(env.count_jobs().await, 0);

    // An empty JSON body is malformed too.
    let (status, body) = post_raw(&env, &key, Some("application/json"), "").await;
    assert_error(status, &body, 400, "malformed_json");
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn an_unknown_kind_is_422_listing_the_known_kinds() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = env
        .submit(&key, json!({ "kind": "nope", "args": {} }))
        .await;
    let details = assert_error(status, &body, 422, "unknown_kind");
    assert_eq!(
        details["known_kinds"],
        json!([
            "jira.analyze.issue",
            "jira.analyze.portfolio",
            "jira.analyze.sprint",
            "noop",
            "sentiment.score",
            "webhook.deliver"
        ]),
        "{body}"
    );
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn invalid_args_are_422_naming_the_field() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;

    // Wrong type.
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "webhook.deliver",
                    "args": { "url": "https://example.com/hook", "event": 5, "payload": {} } }),
        )
        .await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "args.event", "{body}");
    assert_eq!(env.count_jobs().await, 0);

    // Missing required field.
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "webhook.deliver", "args": { "event": "e", "payload": {} } }),
        )
        .await;
    let details = assert_error_any_code(status, &body, 422);
    let path = details["path"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        path.contains("url") || path.contains("args"),
        "path {path:?} names neither url nor args: {body}"
    );
    assert!(message.contains("url"), "message does not name url: {body}");
    assert_eq!(env.count_jobs().await, 0);

    // Unknown field inside args.
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "webhook.deliver",
                    "args": { "url": "https://example.com/hook", "event": "e", "payload": {}, "extra": 1 } }),
        )
        .await;
    let details = assert_error_any_code(status, &body, 422);
    assert!(
        details["path"]
            .as_str()
            .unwrap_or_default()
            .starts_with("args"),
        "{body}"
    );
    assert_eq!(env.count_jobs().await, 0);

    // Not a URL.
    let (status, body) = env.submit(&key, webhook("not a url", json!({}))).await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "args.url", "{body}");
    assert_eq!(env.count_jobs().await, 0);

    // noop args must be an object.
    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "args": [1, 2] }))
        .await;
    assert_error_any_code(status, &body, 422);
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn unknown_top_level_fields_and_bad_top_level_types_are_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;

    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "args": {}, "priority": 5 }))
        .await;
    assert_error_any_code(status, &body, 422);
    assert!(body.to_string().contains("priority"), "{body}");
    assert_eq!(env.count_jobs().await, 0);

    let (status, body) = env.submit(&key, json!({ "args": {} })).await;
    assert_error_any_code(status, &body, 422);
    assert_eq!(env.count_jobs().await, 0);

    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "run_at": "tomorrow" }))
        .await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "run_at", "{body}");
    assert_eq!(env.count_jobs().await, 0);

    let (status, body) = env.submit(&key, json!([1, 2, 3])).await;
    assert_error_any_code(status, &body, 422);
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn max_attempts_out_of_range_is_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    for n in [0, 1001, -1] {
        let (status, body) = env
            .submit(
                &key,
                json!({ "kind": "noop", "args": {}, "max_attempts": n }),
            )
            .await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "max_attempts", "n={n}: {body}");
        assert_eq!(env.count_jobs().await, 0);
    }
    // The bounds themselves are accepted.
    for n in [1, 1000] {
        let id = env
            .submit_ok(
                &key,
                json!({ "kind": "noop", "args": {}, "max_attempts": n }),
            )
            .await;
        assert_eq!(env.job(id).await.max_attempts, n);
    }
}

#[tokio::test]
async fn a_body_over_one_mib_is_413() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let big = "a".repeat(1_100_000);
    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "args": { "blob": big } }))
        .await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_422_when_private_networks_are_not_allowed() {
    let env = TestEnv::with(|s| s.allow_private_networks = false).await;
    let (_, key, _) = env.tenant("acme").await;
    for url in [
        "http://169.254.169.254/latest",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let (status, body) = env.submit(&key, webhook(url, json!({}))).await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "args.url", "{url}: {body}");
        assert_eq!(env.count_jobs().await, 0, "{url}");
    }
    // Other schemes are refused regardless.
    let (status, body) = env
        .submit(&key, webhook("file:///etc/passwd", json!({})))
        .await;
    assert_error_any_code(status, &body, 422);
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn a_non_uuid_job_id_is_400_and_an_unknown_route_is_404_json() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;

    let (status, body) = get(&env, &key, "/api/jobs/not-a-uuid").await;
    assert_error(status, &body, 400, "invalid_id");
    let (status, body) = cancel_raw(&env, &key, "not-a-uuid").await;
    assert_error(status, &body, 400, "invalid_id");
    let (status, body) = post_empty(&env, &key, "/api/jobs/123/retry").await;
    assert_error(status, &body, 400, "invalid_id");

    // A valid but unknown id is a 404.
    let (status, body) = get(&env, &key, &format!("/api/jobs/{}", Uuid::new_v4())).await;
    assert_error(status, &body, 404, "not_found");

    let resp = env
        .http
        .get(env.url("/api/nothing/here"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let (status, body) = read(resp).await;
    assert_error(status, &body, 404, "not_found");
    assert!(ct.starts_with("application/json"), "{ct}");

    let resp = env.http.get(env.url("/nope")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(env.count_jobs().await, 0);
}

async fn cancel_raw(env: &TestEnv, key: &str, id: &str) -> (u16, Value) {
    post_empty(env, key, &format!("/api/jobs/{id}/cancel")).await
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_idempotency_key_and_body_returns_the_same_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let body = json!({ "kind": "noop", "args": { "n": 1 }, "idempotency_key": "order-42" });

    let (s1, b1) = env.submit(&key, body.clone()).await;
    assert_eq!(s1, 202, "{b1}");
    let (s2, b2) = env.submit(&key, body.clone()).await;
    assert_eq!(s2, 200, "{b2}");
    assert_eq!(b1["id"], b2["id"]);
    assert_eq!(b2["idempotency_key"], "order-42");
    assert_eq!(env.count_jobs().await, 1);

    let (s3, b3) = env.submit(&key, body).await;
    assert_eq!(s3, 200, "{b3}");
    assert_eq!(b1["id"], b3["id"]);
    assert_eq!(env.count_jobs().await, 1);
}

/// Concurrent submits share one insert and commit (group commit): each still gets its own
/// job, and submits racing with the same idempotency key — in one batch or across batches —
/// all answer the one job that holds the key.
#[tokio::test]
async fn concurrent_submits_each_get_their_job_and_shared_keys_one_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let submits = (0..60u64).map(|n| {
        let body = if n % 3 == 0 {
            json!({ "kind": "noop", "args": { "n": 0 }, "idempotency_key": "same" })
        } else {
            json!({ "kind": "noop", "args": { "n": n } })
        };
        env.submit(&key, body)
    });
    let answers = futures::future::join_all(submits).await;
    let mut keyed = std::collections::HashSet::new();
    let mut plain = std::collections::HashSet::new();
    let mut created = 0;
    for (n, (status, body)) in answers.iter().enumerate() {
        assert!(*status == 202 || *status == 200, "{status} {body}");
        if *status == 202 {
            created += 1;
        }
        if n % 3 == 0 {
            keyed.insert(body["id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(*status, 202, "{body}");
            assert_eq!(
                body["args"]["n"], n as u64,
                "each submit gets its own row: {body}"
            );
            plain.insert(body["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(keyed.len(), 1, "one job for the shared key: {keyed:?}");
    assert_eq!(plain.len(), 40);
    assert_eq!(created, 41, "exactly one 202 for the shared key");
    assert_eq!(env.count_jobs().await, 41);
}

#[tokio::test]
async fn the_same_idempotency_key_with_different_args_is_409() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let (s1, b1) = env
        .submit(
            &key,
            json!({ "kind": "noop", "args": { "n": 1 }, "idempotency_key": "k" }),
        )
        .await;
    assert_eq!(s1, 202, "{b1}");
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "noop", "args": { "n": 2 }, "idempotency_key": "k" }),
        )
        .await;
    let details = assert_error(status, &body, 409, "idempotency_key_reused");
    assert_eq!(details["existing_job_id"], b1["id"], "{body}");
    assert_eq!(env.count_jobs().await, 1);
    let id: Uuid = b1["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(env.job(id).await.args, json!({ "n": 1 }));
}

#[tokio::test]
async fn the_same_idempotency_key_in_two_tenants_makes_two_jobs() {
    let env = TestEnv::new().await;
    let (ta, key_a, _) = env.tenant("a").await;
    let (tb, key_b, _) = env.tenant("b").await;
    let body = json!({ "kind": "noop", "args": { "n": 1 }, "idempotency_key": "shared" });
    let (sa, ba) = env.submit(&key_a, body.clone()).await;
    let (sb, bb) = env.submit(&key_b, body).await;
    assert_eq!(sa, 202, "{ba}");
    assert_eq!(sb, 202, "{bb}");
    assert_ne!(ba["id"], bb["id"]);
    assert_eq!(env.count_jobs().await, 2);
    let ja = env.job(ba["id"].as_str().unwrap().parse().unwrap()).await;
    let jb = env.job(bb["id"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!(ja.tenant_id, Some(ta));
    assert_eq!(jb.tenant_id, Some(tb));
}

#[tokio::test]
async fn an_empty_or_overlong_idempotency_key_is_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    for k in [String::new(), "k".repeat(256)] {
        let (status, body) = env
            .submit(
                &key,
                json!({ "kind": "noop", "args": {}, "idempotency_key": k }),
            )
            .await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "idempotency_key", "{body}");
    }
    assert_eq!(env.count_jobs().await, 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Tenant isolation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenant_can_neither_see_nor_touch_a_job() {
    let env = TestEnv::new().await;
    let (_, key_a, _) = env.tenant("a").await;
    let (_, key_b, _) = env.tenant("b").await;
    let id = env.submit_ok(&key_a, noop(1)).await;
    let b_own = env.submit_ok(&key_b, noop(2)).await;
    let before = env.job(id).await;

    let (status, body) = get(&env, &key_b, &format!("/api/jobs/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = cancel(&env, &key_b, id).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = retry(&env, &key_b, id).await;
    assert_error(status, &body, 404, "not_found");

    let (status, page) = get(&env, &key_b, "/api/jobs").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(job_ids(&page), vec![b_own]);
    for filter in ["?status=queued", "?kind=noop"] {
        let (_, page) = get(&env, &key_b, &format!("/api/jobs{filter}")).await;
        assert_eq!(job_ids(&page), vec![b_own], "{filter}");
    }
    // A cursor pointing past A's job does not reveal it either.
    let (_, page) = get(&env, &key_b, &format!("/api/jobs?cursor={}", Uuid::max())).await;
    assert_eq!(job_ids(&page), vec![b_own]);

    let after = env.job(id).await;
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(after.status, before.status);
    assert_eq!(after.cancel_requested_at, None);
    assert_eq!(after.finished_at, None);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.attempt, before.attempt);

    // A still sees its job.
    let (status, body) = get(&env, &key_a, &format!("/api/jobs/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued");
    let (_, page) = get(&env, &key_a, "/api/jobs").await;
    assert_eq!(job_ids(&page), vec![id]);
}

// ---------------------------------------------------------------------------------------------
// 5. Listing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn listing_pages_newest_first_without_gaps_or_duplicates() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let mut submitted = Vec::new();
    for n in 0..5 {
        submitted.push(env.submit_ok(&key, noop(n)).await);
    }
    let newest_first: Vec<Uuid> = submitted.iter().rev().copied().collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/jobs?limit=2".to_string(),
            Some(c) => format!("/api/jobs?limit=2&cursor={c}"),
        };
        let (status, page) = get(&env, &key, &path).await;
        assert_eq!(status, 200, "{page}");
        let ids = job_ids(&page);
        assert!(ids.len() <= 2, "{page}");
        seen.extend(ids);
        pages += 1;
        assert!(pages <= 5, "pagination does not terminate");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(
        seen, newest_first,
        "pages out of order, with gaps or duplicates"
    );
    assert_eq!(pages, 3);

    // Without a limit: everything, newest first, and no next page.
    let (_, page) = get(&env, &key, "/api/jobs").await;
    assert_eq!(job_ids(&page), newest_first);
    assert!(page["next_cursor"].is_null(), "{page}");
}

#[tokio::test]
async fn listing_filters_by_status_and_kind() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let n1 = env.submit_ok(&key, noop(1)).await;
    let n2 = env.submit_ok(&key, noop(2)).await;
    let w1 = env
        .submit_ok(&key, webhook("http://127.0.0.1:9/hook", json!({ "a": 1 })))
        .await;
    let (status, body) = cancel(&env, &key, n1).await;
    assert_eq!(status, 200, "{body}");

    let (_, page) = get(&env, &key, "/api/jobs?status=cancelled").await;
    assert_eq!(job_ids(&page), vec![n1]);
    let (_, page) = get(&env, &key, "/api/jobs?status=queued").await;
    assert_eq!(job_ids(&page), vec![w1, n2]);
    let (_, page) = get(&env, &key, "/api/jobs?kind=noop").await;
    assert_eq!(job_ids(&page), vec![n2, n1]);
    let (_, page) = get(&env, &key, "/api/jobs?kind=webhook.deliver").await;
    assert_eq!(job_ids(&page), vec![w1]);
    for j in page["jobs"].as_array().unwrap() {
        assert_eq!(j["kind"], "webhook.deliver");
    }
    let (_, page) = get(&env, &key, "/api/jobs?kind=noop&status=queued").await;
    assert_eq!(job_ids(&page), vec![n2]);
    let (_, page) = get(&env, &key, "/api/jobs?status=succeeded").await;
    assert_eq!(job_ids(&page), Vec::<Uuid>::new());
    let (_, page) = get(&env, &key, "/api/jobs?kind=unheard.of").await;
    assert_eq!(job_ids(&page), Vec::<Uuid>::new());
}

#[tokio::test]
async fn listing_rejects_bad_parameters_with_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    env.submit_ok(&key, noop(1)).await;

    let (status, body) = get(&env, &key, "/api/jobs?status=bogus").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "status", "{body}");
    let text = body["error"].to_string();
    for s in [
        "queued",
        "running",
        "succeeded",
        "failed",
        "dead",
        "cancelled",
    ] {
        assert!(text.contains(s), "allowed value {s} not listed: {body}");
    }

    for limit in ["0", "201", "-1", "ten"] {
        let (status, body) = get(&env, &key, &format!("/api/jobs?limit={limit}")).await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "limit", "limit={limit}: {body}");
    }
    for limit in ["1", "200"] {
        let (status, body) = get(&env, &key, &format!("/api/jobs?limit={limit}")).await;
        assert_eq!(status, 200, "limit={limit}: {body}");
    }

    let (status, body) = get(&env, &key, "/api/jobs?cursor=garbage").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "cursor", "{body}");

    let (status, body) = get(&env, &key, "/api/jobs?colour=blue").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "colour", "{body}");
    assert_eq!(env.count_jobs().await, 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Cancel / retry without a worker
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_a_queued_job_then_again_and_retrying_a_queued_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let queued = env.submit_ok(&key, noop(1)).await;
    let to_cancel = env.submit_ok(&key, noop(2)).await;

    let (status, body) = retry(&env, &key, queued).await;
    let details = assert_error(status, &body, 409, "not_retryable");
    assert_eq!(details["status"], "queued", "{body}");
    assert_eq!(env.job(queued).await.status, JobStatus::Queued);

    let (status, body) = cancel(&env, &key, to_cancel).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["id"], to_cancel.to_string());
    let row = env.job(to_cancel).await;
    assert_eq!(row.status, JobStatus::Cancelled);
    assert!(row.finished_at.is_some());

    let (status, body) = cancel(&env, &key, to_cancel).await;
    let details = assert_error(status, &body, 409, "not_cancellable");
    assert_eq!(details["status"], "cancelled", "{body}");

    // A cancelled job is not retryable either (only dead or failed ones are).
    let (status, body) = retry(&env, &key, to_cancel).await;
    assert_error(status, &body, 409, "not_retryable");
    assert_eq!(env.job(to_cancel).await.status, JobStatus::Cancelled);

    // GET reflects the cancel.
    let (_, body) = get(&env, &key, &format!("/api/jobs/{to_cancel}")).await;
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["cancel_requested"], true);

    // Unknown ids are 404 for both.
    let (status, body) = cancel(&env, &key, Uuid::new_v4()).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = retry(&env, &key, Uuid::new_v4()).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(env.count_jobs().await, 2);
}

// ---------------------------------------------------------------------------------------------
// 7. run_at in the future
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_job_due_in_an_hour_is_not_run_and_can_be_cancelled() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    env.spawn_worker(|_| {});
    let run_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "noop", "args": { "n": 1 }, "run_at": run_at.to_rfc3339() }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let returned: chrono::DateTime<chrono::Utc> = body["run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (returned - run_at).num_milliseconds().abs() < 1_000,
        "{returned} vs {run_at}"
    );

    // A due job submitted after it does run, so the worker is demonstrably alive.
    let due = env.submit_ok(&key, noop(2)).await;
    env.wait_status(due, JobStatus::Succeeded, secs(10)).await;

    // The negative check: it stays untouched for a while with a live worker.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let row = env.job(id).await;
    assert_eq!(row.status, JobStatus::Queued, "{row:#?}");
    assert_eq!(row.attempt, 0);
    assert!(row.started_at.is_none());

    let (status, body) = cancel(&env, &key, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(env.job(id).await.status, JobStatus::Cancelled);
}

// ---------------------------------------------------------------------------------------------
// 8. Health, readiness, metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_and_readiness_answer_ok() {
    let env = TestEnv::new().await;
    let resp = env.http.get(env.url("/health")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "status": "ok" }));

    let resp = env.http.get(env.url("/ready")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    assert_eq!(body["checks"]["redis"], "ok", "{body}");
}

#[tokio::test]
async fn metrics_expose_job_counts_queues_and_http_latency() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    env.spawn_worker(|_| {});
    let id = env.submit_ok(&key, noop(3)).await;
    env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    // And one waiting job for the backlog.
    let run_at = chrono::Utc::now() + chrono::Duration::hours(1);
    env.submit_ok(
        &key,
        json!({ "kind": "noop", "args": {}, "run_at": run_at.to_rfc3339() }),
    )
    .await;

    let resp = env.http.get(env.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim() == r#"keel_jobs{kind="noop",status="succeeded"} 1"#),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim() == r#"keel_jobs{kind="noop",status="queued"} 1"#),
        "{text}"
    );
    assert!(text.contains("keel_queue_backlog"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("keel_queue_redis_entries{queue=\"default\"}")),
        "{text}"
    );
    assert!(
        text.contains("keel_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Tenants
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn creating_a_tenant_with_an_empty_name_is_422() {
    let env = TestEnv::new().await;
    for name in ["", "   ", &"x".repeat(201)] {
        let resp = env
            .http
            .post(env.url("/api/tenants"))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        let (status, body) = read(resp).await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "name", "{body}");
    }
    let resp = env
        .http
        .post(env.url("/api/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_error_any_code(status, &body, 422);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn get_tenant_returns_the_callers_tenant() {
    let env = TestEnv::new().await;
    let (ta, key_a, _) = env.tenant("alpha").await;
    let (tb, key_b, _) = env.tenant("beta").await;
    let (status, body) = get(&env, &key_a, "/api/tenant").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], ta.to_string());
    assert_eq!(body["name"], "alpha");
    assert!(body["created_at"].is_string(), "{body}");
    let (status, body) = get(&env, &key_b, "/api/tenant").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], tb.to_string());
    assert_eq!(body["name"], "beta");

    let resp = env.http.get(env.url("/api/tenant")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_error(status, &body, 401, "unauthorized");
}

#[tokio::test]
async fn created_tenant_answer_carries_key_and_secret_once() {
    let env = TestEnv::new().await;
    let resp = env
        .http
        .post(env.url("/api/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "  padded  " }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "padded");
    assert!(body["api_key"].as_str().unwrap().starts_with("kl_live_"));
    assert!(body["signing_secret"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let key = body["api_key"].as_str().unwrap();
    let (status, me) = get(&env, key, "/api/tenant").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], body["id"]);
}

// ---------------------------------------------------------------------------------------------
// Further contract probes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_submits_with_one_idempotency_key_make_one_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let body = json!({ "kind": "noop", "args": { "n": 9 }, "idempotency_key": "race" });
    let answers = futures::future::join_all((0..8).map(|_| env.submit(&key, body.clone()))).await;
    let created = answers.iter().filter(|(s, _)| *s == 202).count();
    let replayed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 7), "{answers:?}");
    let first = &answers[0].1["id"];
    assert!(
        answers.iter().all(|(_, b)| &b["id"] == first),
        "{answers:?}"
    );
    assert_eq!(env.count_jobs().await, 1);
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_405_with_the_json_error_shape() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = env.call(Method::DELETE, "/api/jobs", &key, None).await;
    assert_error_any_code(status, &body, 405);
    let resp = env
        .http
        .put(env.url("/api/tenant"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_error_any_code(status, &body, 405);
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn strings_postgres_cannot_store_are_422_not_500() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let tenants_before: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();

    // A NUL character is valid JSON (`\u0000`), but Postgres text and jsonb refuse it: the API
    // must say so with a 4xx naming the field, not fail with an opaque 500.
    let mut answers = Vec::new();
    answers.push((
        "job args",
        env.submit(&key, json!({ "kind": "noop", "args": { "s": "a\u{0}b" } }))
            .await,
    ));
    answers.push((
        "idempotency_key",
        env.submit(
            &key,
            json!({ "kind": "noop", "args": {}, "idempotency_key": "k\u{0}" }),
        )
        .await,
    ));
    let resp = env
        .http
        .post(env.url("/api/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "evil\u{0}corp" }))
        .send()
        .await
        .unwrap();
    answers.push(("tenant name", read(resp).await));

    assert_eq!(env.count_jobs().await, 0);
    let tenants_after: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(tenants_before, tenants_after);
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(_, (status, body))| *status != 422 || !body["error"]["code"].is_string())
        .collect();
    assert!(
        wrong.is_empty(),
        "NUL characters must be refused with 422, got: {wrong:?}"
    );
}

#[tokio::test]
async fn a_webhook_payload_over_256_kib_is_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let payload = json!({ "blob": "p".repeat(300 * 1024) });
    let (status, body) = env
        .submit(&key, webhook("https://example.com/hook", payload))
        .await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "args.payload", "{body}");
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn a_dead_job_can_be_retried_through_the_api_and_then_succeeds() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    env.spawn_worker(|_| {});

    let id = env
        .submit_ok(
            &key,
            webhook(&format!("{}/hook", receiver.uri()), json!({ "x": 1 })),
        )
        .await;
    let dead = env.wait_status(id, JobStatus::Dead, secs(10)).await;
    assert_eq!(dead.attempt, 1);

    let (status, body) = cancel(&env, &key, id).await;
    let details = assert_error(status, &body, 409, "not_cancellable");
    assert_eq!(details["status"], "dead");

    let (status, body) = retry(&env, &key, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.to_string());
    assert_eq!(body["attempts"], 0, "{body}");
    assert!(
        matches!(
            body["status"].as_str(),
            Some("queued" | "running" | "succeeded")
        ),
        "{body}"
    );
    let done = env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(done.attempt, 1, "{done:#?}");

    let (status, body) = retry(&env, &key, id).await;
    let details = assert_error(status, &body, 409, "not_retryable");
    assert_eq!(details["status"], "succeeded");
    let (status, body) = cancel(&env, &key, id).await;
    assert_error(status, &body, 409, "not_cancellable");
    assert_eq!(receiver.received_requests().await.unwrap().len(), 2);
}

/// A row that Postgres refuses fails only its own submit: the batch it travelled in is retried
/// row by row, and the other rows are inserted and answered as usual.
#[tokio::test]
async fn a_bad_row_in_a_submit_batch_fails_alone() {
    let env = TestEnv::new().await;
    let (tenant, _, _) = env.tenant("acme").await;
    let submitter =
        keel_jobs::submitter::Submitter::spawn(env.keel.pool.clone(), env.keel.lane.clone());
    let new = |tenant_id: Uuid, n: u64| keel_models::job::NewJob {
        id: Uuid::now_v7(),
        tenant_id: Some(tenant_id),
        kind: "noop".into(),
        queue: "default".into(),
        args: json!({ "n": n }),
        max_attempts: 3,
        run_at: None,
        idempotency_key: None,
        dispatched: true,
    };
    // Row 7 breaks a constraint of the table (at least one attempt).
    let mut rows: Vec<_> = (0..20).map(|n| new(tenant, n)).collect();
    rows[7].max_attempts = 0;
    let answers = futures::future::join_all(rows.into_iter().map(|r| submitter.submit(r))).await;
    for (n, answer) in answers.iter().enumerate() {
        match (n, answer) {
            (7, Err(e)) => assert!(e.to_string().contains("jobs_max_attempts_check"), "{e}"),
            (7, Ok(_)) => panic!("the row breaking a check constraint was inserted"),
            (_, Ok(keel_models::job::Inserted::New(job))) => assert_eq!(job.args["n"], n as u64),
            (_, other) => panic!("row {n}: {:?}", other.as_ref().err()),
        }
    }
    assert_eq!(env.count_jobs().await, 19);
}

/// `jobs.tenant_id` is not a foreign key (the per-row check cost the submit path; see the
/// migration): deleting a tenant by hand still deletes its jobs, and only its jobs.
#[tokio::test]
async fn deleting_a_tenant_deletes_its_jobs() {
    let env = TestEnv::new().await;
    let (gone, gone_key, _) = env.tenant("gone").await;
    let (_, kept_key, _) = env.tenant("kept").await;
    env.submit_ok(&gone_key, json!({"kind": "noop", "args": {}}))
        .await;
    let kept = env
        .submit_ok(&kept_key, json!({"kind": "noop", "args": {}}))
        .await;
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(gone)
        .execute(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(env.count_jobs().await, 1);
    assert!(keel_models::job::get(&env.keel.pool, kept)
        .await
        .unwrap()
        .is_some());
}
