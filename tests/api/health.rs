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
