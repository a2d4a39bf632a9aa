//! Tenants: creation, the caller's tenant, deletion.

use super::*;

#[tokio::test]
async fn a_tenant_name_empty_too_long_or_with_control_characters_is_422() {
    let env = TestEnv::new().await;
    // Also control characters and bidirectional-text controls (a newline and U+202E had been
    // stored).
    for name in [
        "",
        "   ",
        &"x".repeat(201),
        "acme\nadmin",
        "acme\u{202E}gnp.exe",
    ] {
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
