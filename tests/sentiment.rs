//! `sentiment.score` through the spine: scored by the built-in model, and bad input refused.

mod support;

use std::time::Duration;

use keel_models::job::JobStatus;
use serde_json::json;
use support::*;

#[tokio::test]
async fn texts_are_scored_by_the_built_in_model() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let id = env
        .submit_ok(
            &key,
            json!({"kind": "sentiment.score", "args": {"texts": [
                "Shares plunge after profit warning",
                "Company beats estimates and raises guidance",
            ]}}),
        )
        .await;
    let job = env
        .wait_status(id, JobStatus::Succeeded, Duration::from_secs(10))
        .await;
    let result = job.result.unwrap();
    assert_eq!(result["model"], "default");
    let results = result["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["label"], "negative", "{result}");
    assert_eq!(results[1]["label"], "positive", "{result}");
    for r in results {
        let s = &r["scores"];
        let sum = s["negative"].as_f64().unwrap()
            + s["neutral"].as_f64().unwrap()
            + s["positive"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-3, "{r}");
    }
}

#[tokio::test]
async fn bad_sentiment_requests_are_422_and_change_nothing() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let many: Vec<String> = (0..1001).map(|i| format!("text {i}")).collect();
    let huge = "x".repeat(100 * 1024 + 1);
    for (args, path) in [
        (json!({"texts": []}), "args.texts"),
        (json!({"texts": many}), "args.texts"),
        (json!({"texts": ["ok", huge]}), "args.texts[1]"),
        (json!({"texts": ["ok"], "model": "finbert"}), "args.model"),
        (json!({"texts": ["ok"], "model": "gpt"}), "args.model"),
        (json!({"texts": "not a list"}), "args.texts"),
    ] {
        let (status, body) = env
            .submit(&key, json!({"kind": "sentiment.score", "args": args}))
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"]["path"], path, "{body}");
    }
    assert_eq!(env.count_jobs().await, 0);
}
