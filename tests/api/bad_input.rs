//! Bad input changes nothing: malformed or oversized bodies, unknown kinds, invalid args
//! (named by path), bad ids and methods, strings Postgres cannot store.

use super::*;

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

    // An event name that cannot be a header value (it is sent as `Keel-Event`).
    for event in ["e\nX-Injected: 1", "ok\u{7f}"] {
        let (status, body) = env
            .submit(
                &key,
                json!({ "kind": "webhook.deliver",
                        "args": { "url": "https://example.com/hook", "event": event, "payload": {} } }),
            )
            .await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "args.event", "{event:?}: {body}");
        assert_eq!(env.count_jobs().await, 0);
    }

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

    // An array whose items fit the fields by position is no job either (serde would read it so).
    let (status, body) = env.submit(&key, json!(["noop", { "via": "array" }])).await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "body", "{body}");
    assert_eq!(env.count_jobs().await, 0);

    // A run_at outside 1970..=9999 (before 4713 BC it had been a 500 from Postgres).
    for at in [
        "-5000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "+10000-01-01T00:00:00Z",
    ] {
        let (status, body) = env
            .submit(&key, json!({ "kind": "noop", "run_at": at }))
            .await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "run_at", "{at}: {body}");
    }
    let (status, body) = env
        .call(
            reqwest::Method::POST,
            "/api/jobs/batch",
            &key,
            Some(&json!({ "jobs": [{ "kind": "noop" }, { "kind": "noop", "run_at": "-5000-01-01T00:00:00Z" }] })),
        )
        .await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "jobs[1].run_at", "{body}");
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn max_attempts_out_of_range_is_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    for n in [0, 26, 1001, -1] {
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
    for n in [1, 25] {
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
    let ct = content_type(&resp);
    let (status, body) = read(resp).await;
    assert_error(status, &body, 404, "not_found");
    assert!(ct.starts_with("application/json"), "{ct}");

    let resp = env.http.get(env.url("/nope")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(env.count_jobs().await, 0);
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

/// A path or query string axum cannot decode answers in the one JSON error shape, with the
/// API's headers: it had been `400 text/plain` ("Invalid URL: Invalid UTF-8 in `id`").
#[tokio::test]
async fn undecodable_paths_and_query_strings_answer_the_json_error_shape() {
    use reqwest::Method;
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    for (method, path, token) in [
        (Method::GET, "/api/jobs/%ff", key.as_str()),
        (Method::POST, "/api/jobs/%ff/cancel", &key),
        (Method::DELETE, "/api/keys/%ff", &key),
        (Method::GET, "/api/jobs?status=%ff", &key),
        (Method::POST, "/admin/stripe/events/%ff/replay", ADMIN),
    ] {
        let resp = env
            .http
            .request(method, env.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let ct = content_type(&resp);
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        let (status, body) = read(resp).await;
        assert!(matches!(status, 400 | 422), "{path}: {status} {body}");
        assert_error_any_code(status, &body, status);
    }
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn run_at_more_than_a_year_ahead_and_max_attempts_above_25_are_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    // More than a year ahead, or more attempts than the catalog allows (issue 22).
    let too_far = (chrono::Utc::now() + chrono::Duration::days(366)).to_rfc3339();
    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "run_at": too_far }))
        .await;
    let details = assert_error(status, &body, 422, "invalid_request");
    assert_eq!(details["path"], "run_at", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("365 days"),
        "{body}"
    );
    let near = (chrono::Utc::now() + chrono::Duration::days(364)).to_rfc3339();
    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "run_at": near }))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "max_attempts": 26 }))
        .await;
    let details = assert_error(status, &body, 422, "invalid_request");
    assert_eq!(details["path"], "max_attempts", "{body}");
    let (status, body) = env
        .submit(&key, json!({ "kind": "noop", "max_attempts": 25 }))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(env.count_jobs().await, 2);
}
