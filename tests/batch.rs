mod support;

// `POST /api/jobs/batch`, black-box: a batch is accepted whole (one transaction) or refused
// whole with the path of the item at fault, idempotency keys answer per item, and the jobs run
// like any others.

use keel_models::job::JobStatus;
use reqwest::Method;
use serde_json::{json, Value};
use support::*;

async fn batch(env: &TestEnv, key: &str, jobs: Value) -> (u16, Value) {
    env.call(
        Method::POST,
        "/api/jobs/batch",
        key,
        Some(&json!({ "jobs": jobs })),
    )
    .await
}

fn created(body: &Value) -> Vec<bool> {
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["created"].as_bool().unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_is_accepted_in_order_and_its_jobs_run() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = batch(&env, &key, json!([noop(0), noop(1), noop(2)])).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(created(&body), [true, true, true]);
    for (n, job) in body["jobs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            job["args"]["n"], n,
            "answers keep the batch's order: {body}"
        );
        assert_eq!(job["kind"], "noop");
        assert_eq!(
            job["status_url"],
            format!("/api/jobs/{}", job["id"].as_str().unwrap())
        );
    }
    for id in job_ids(&body) {
        env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    }
    assert_eq!(env.count_jobs().await, 3);
}

#[tokio::test]
async fn a_refused_item_refuses_the_whole_batch_and_writes_nothing() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let keyed = |k: &str| json!({ "kind": "noop", "args": {}, "idempotency_key": k });
    let too_many: Vec<Value> = (0..1001).map(noop).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!([noop(0), {"kind": "nope", "args": {}}]),
            "unknown_kind",
            "jobs[1].kind",
        ),
        (
            json!([noop(0), noop(1), webhook("not a url", json!({}))]),
            "invalid_request",
            "jobs[2].args.url",
        ),
        (
            json!([{"kind": "noop", "args": {}, "max_attempts": 0}]),
            "invalid_request",
            "jobs[0].max_attempts",
        ),
        (
            json!([keyed("k"), keyed("k")]),
            "invalid_request",
            "jobs[1].idempotency_key",
        ),
        (
            json!([{"kind": "noop", "bogus": 1}]),
            "invalid_request",
            "jobs[0]",
        ),
        (json!([]), "invalid_request", "jobs"),
        (json!(too_many), "invalid_request", "jobs"),
    ];
    for (jobs, code, at) in cases {
        let (status, body) = batch(&env, &key, jobs).await;
        assert_eq!(status, 422, "{at}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        let path = body["error"]["details"]["path"]
            .as_str()
            .unwrap_or_default();
        assert!(path.starts_with(at), "want {at}, got {path}: {body}");
        // The message names the field the same way, then says what is wrong with it.
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{path}: ")), "{body}");
    }
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn idempotency_keys_answer_per_item_with_the_jobs_they_created() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let keyed = |k: &str, n: u64| json!({ "kind": "noop", "args": {"n": n}, "idempotency_key": k });

    let (status, first) = batch(&env, &key, json!([keyed("a", 1), keyed("b", 2)])).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = batch(&env, &key, json!([keyed("a", 1), keyed("b", 2)])).await;
    assert_eq!(status, 200, "nothing new: {again}");
    assert_eq!(created(&again), [false, false]);
    assert_eq!(job_ids(&again), job_ids(&first));

    let (status, mixed) = batch(&env, &key, json!([keyed("b", 2), keyed("c", 3)])).await;
    assert_eq!(status, 202, "{mixed}");
    assert_eq!(created(&mixed), [false, true]);
    assert_eq!(job_ids(&mixed)[0], job_ids(&first)[1]);

    // A key reused for other args refuses the batch, the new item included.
    let (status, body) = batch(&env, &key, json!([keyed("d", 4), keyed("a", 9)])).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(body["error"]["details"]["index"], 1);
    assert_eq!(
        body["error"]["details"]["existing_job_id"],
        json!(job_ids(&first)[0])
    );
    assert_eq!(env.count_jobs().await, 3);

    // Keys belong to their tenant.
    let (_, other, _) = env.tenant("other").await;
    let (status, theirs) = batch(&env, &other, json!([keyed("a", 1)])).await;
    assert_eq!(status, 202, "{theirs}");
    assert_ne!(job_ids(&theirs)[0], job_ids(&first)[0]);
}

/// Two batches sharing idempotency keys, listed in opposite orders, submitted at once: both
/// are answered (no deadlock between their inserts), and each key names one job in both.
#[tokio::test]
async fn concurrent_batches_sharing_keys_in_opposite_orders_both_succeed() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    for round in 0..5 {
        let items: Vec<Value> = (0..500)
            .map(|i| json!({ "kind": "noop", "args": {"i": i}, "idempotency_key": format!("r{round}-{i:03}") }))
            .collect();
        let reversed: Vec<Value> = items.iter().rev().cloned().collect();
        let ((sa, a), (sb, b)) = tokio::join!(
            batch(&env, &key, json!(items)),
            batch(&env, &key, json!(reversed))
        );
        assert!(matches!(sa, 200 | 202), "round {round}: {a}");
        assert!(matches!(sb, 200 | 202), "round {round}: {b}");
        let mut b_ids = job_ids(&b);
        b_ids.reverse();
        assert_eq!(job_ids(&a), b_ids, "round {round}: one job per key");
    }
    assert_eq!(env.count_jobs().await, 2500);
}
