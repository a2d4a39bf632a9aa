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
