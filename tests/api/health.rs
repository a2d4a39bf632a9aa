//! Health, readiness and metrics.

use super::*;

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
    // And one waiting job for the backlog, and one cancelled before it ran.
    let run_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let later = json!({ "kind": "noop", "args": {}, "run_at": run_at.to_rfc3339() });
    env.submit_ok(&key, later.clone()).await;
    let cancelled = env.submit_ok(&key, later).await;
    let resp = env
        .post(&key, &format!("/api/jobs/{cancelled}/cancel"))
        .await;
    assert_eq!(resp.status(), 200);
    // A method of the client's own invention (405): counted, but under one label for all such.
    let made_up = reqwest::Method::from_bytes(b"ZZ123").unwrap();
    let resp = env
        .http
        .request(made_up, env.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);

    let resp = env.http.get(env.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = content_type(&resp);
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().await.unwrap();
    // Every status but succeeded (counting those would scan the whole table).
    assert!(
        text.lines()
            .any(|l| l.trim() == r#"keel_jobs{kind="noop",status="queued"} 1"#),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim() == r#"keel_jobs{kind="noop",status="cancelled"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"status="succeeded"} "#), "{text}");
    // Every queue has a backlog sample, 0 where nothing due waits (the queued job here is due
    // later): there had been no sample at all.
    let queues: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("keel_queue_redis_entries{queue=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(queues.len() > 1, "{text}");
    for q in queues {
        let line = format!("keel_queue_backlog{{queue=\"{q}\"}} 0");
        assert!(text.lines().any(|l| l.trim() == line), "{line}: {text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("keel_queue_redis_entries{queue=\"default\"}")),
        "{text}"
    );
    assert!(
        text.contains("keel_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains("ZZ123"), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with("keel_http_request_duration_seconds_count")
                && l.contains(r#"method="other""#)
                && l.contains(r#"status="405""#)
        ),
        "{text}"
    );
}

/// `/metrics` runs on every scrape of every API process: its job counts must cost what the
/// jobs in those states cost, not the whole table. Counting every status had been a scan of
/// the table each time (66 ms at 200,000 rows, both cores; seconds at the millions a retention
/// window holds); the statuses it counts now each have a partial index.
#[tokio::test]
async fn job_counts_for_metrics_do_not_scan_the_table() {
    let env = TestEnv::new().await;
    sqlx::query(
        "INSERT INTO jobs (id, kind, queue, args, max_attempts, status)
         SELECT gen_random_uuid(), 'noop', 'default', '{}', 10,
                (CASE g % 500 WHEN 0 THEN 'dead' WHEN 1 THEN 'queued' WHEN 2 THEN 'running'
                              WHEN 3 THEN 'cancelled' ELSE 'succeeded' END)::job_status
         FROM generate_series(1, 50000) g",
    )
    .execute(&env.keel.pool)
    .await
    .unwrap();
    analyze_jobs(&env).await;
    // One connection, so the scans it counts are the query's.
    let one = one_connection(&env).await;
    let seq_scans = async || {
        jobs_reads(&mut one.acquire().await.unwrap())
            .await
            .seq_scans
    };
    let before = seq_scans().await;
    let counts = keel_models::job::counts_except_succeeded(&one)
        .await
        .unwrap();
    let scanned = seq_scans().await - before;
    let n = |status: JobStatus| {
        counts
            .iter()
            .find(|(kind, s, _)| kind == "noop" && *s == status)
            .map(|c| c.2)
    };
    assert_eq!(n(JobStatus::Dead), Some(100));
    assert_eq!(n(JobStatus::Queued), Some(100));
    assert_eq!(n(JobStatus::Running), Some(100));
    assert_eq!(n(JobStatus::Cancelled), Some(100));
    assert_eq!(n(JobStatus::Succeeded), None);
    assert_eq!(scanned, 0, "the counts scanned the 50,000-row table");
}

/// With `KEEL_METRICS_TOKEN` set, `/metrics` takes it as a bearer token; without it or with
/// another one it answers 401 in the API's error shape.
#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let token = "metrics-token-0123456789";
    let env = TestEnv::with(|s| s.metrics_token = Some(token.into())).await;
    let scrape = |auth: Option<&str>| {
        let mut req = env.http.get(env.url("/metrics"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        async move { read(req.send().await.unwrap()).await }
    };
    let (status, body) = scrape(None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = scrape(Some("metrics-token-wrong!!!!!")).await;
    assert_error(status, &body, 401, "unauthorized");
    let resp = env
        .http
        .get(env.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("keel_queue_backlog"));
}

/// With `KEEL_METRICS_ADDR` set, `/metrics` is served there (ledger gauges included) and not on
/// the API's address, so the API can face the internet while metrics stay inside.
#[tokio::test]
async fn metrics_can_listen_on_an_address_of_their_own() {
    let env = TestEnv::with(|s| s.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let (status, body) = read(env.http.get(env.url("/metrics")).send().await.unwrap()).await;
    assert_error(status, &body, 404, "not_found");
    let own = env.metrics_base.clone().expect("a metrics address");
    let resp = env.http.get(format!("{own}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("keel_queue_backlog"));
    // The API itself is unaffected.
    let (status, _) = read(env.http.get(env.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

/// The ledger's gauges come from aggregate queries: a scrape within a few seconds of the last
/// one reuses them instead of counting the ledger again.
#[tokio::test]
async fn ledger_gauges_are_reused_between_close_scrapes() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let run_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let later = json!({"kind": "noop", "args": {}, "run_at": run_at.to_rfc3339()});
    env.submit_ok(&key, later.clone()).await;
    let queued = |text: &str, n: usize| {
        text.lines()
            .any(|l| l.trim() == format!(r#"keel_jobs{{kind="noop",status="queued"}} {n}"#))
    };
    let scrape = || async {
        let resp = env.http.get(env.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    };
    let t0 = std::time::Instant::now();
    let first = scrape().await;
    assert!(queued(&first, 1), "{first}");
    env.submit_ok(&key, later).await;
    let second = scrape().await;
    if t0.elapsed() < keel_api::routes::LEDGER_GAUGES_TTL {
        assert!(queued(&second, 1), "counted again within the TTL: {second}");
    }
    // Once the TTL has passed, the new job is counted.
    tokio::time::sleep(keel_api::routes::LEDGER_GAUGES_TTL).await;
    let third = scrape().await;
    assert!(queued(&third, 2), "{third}");
}
