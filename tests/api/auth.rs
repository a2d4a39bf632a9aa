//! Authentication: API keys (401 with `WWW-Authenticate`, revocation, listing) and the admin token.

use super::*;

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

/// `DELETE` of a key at `path`, with `key`.
async fn revoke(env: &TestEnv, key: &str, path: &str) -> (u16, Value) {
    env.call(Method::DELETE, path, key, None).await
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

    let (status, _) = revoke(&env, &new_key, &format!("/api/keys/{old_id}")).await;
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

    // The only active key left cannot be revoked (nothing could make a new one); revoking an
    // already revoked key again changes nothing.
    let (_, body) = get(&env, &new_key, "/api/keys").await;
    let new_id = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] != old_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = revoke(&env, &new_key, &format!("/api/keys/{new_id}")).await;
    assert_error(status, &body, 409, "last_active_key");
    assert_eq!(get(&env, &new_key, "/api/jobs").await.0, 200);
    let (status, _) = revoke(&env, &new_key, &format!("/api/keys/{old_id}")).await;
    assert_eq!(status, 204);

    // Revoking an unknown key id is a 404; a malformed one a 400.
    let unknown = format!("/api/keys/{}", Uuid::new_v4());
    let (status, body) = revoke(&env, &new_key, &unknown).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = revoke(&env, &new_key, "/api/keys/nope").await;
    assert_error(status, &body, 400, "invalid_id");
}

#[tokio::test]
async fn a_tenant_cannot_revoke_another_tenants_key() {
    let env = TestEnv::new().await;
    let (_, key_a, _) = env.tenant("a").await;
    let (_, key_b, _) = env.tenant("b").await;
    let (_, body) = get(&env, &key_a, "/api/keys").await;
    let a_key_id = body["keys"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = revoke(&env, &key_b, &format!("/api/keys/{a_key_id}")).await;
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
        // It names the credential this route takes.
        assert_eq!(body["error"]["message"], "missing or invalid admin token");
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
