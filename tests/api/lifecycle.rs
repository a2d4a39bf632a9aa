//! Cancel and retry through the API, and jobs due later.

use super::*;

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

#[tokio::test]
async fn a_dead_job_can_be_retried_through_the_api_and_then_succeeds() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let receiver = receiver_answering_once(wiremock::ResponseTemplate::new(410)).await;
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

/// A submit answers the job as it was stored: every 202 (and the 200 of a key used before) is
/// what `GET` then returns, field for field. Rows go in through two statements (with and without
/// idempotency keys) and concurrent submits share one; both are covered here, alone, all at once
/// (keyed and keyless in the same batches), and through `POST /api/jobs/batch`.
#[tokio::test]
async fn a_submit_answers_the_job_exactly_as_stored() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let bodies = |round: u32| {
        vec![
            json!({ "kind": "noop", "args": { "n": round, "deep": { "a": [1, 2.5, "x", null] } } }),
            json!({ "kind": "noop" }),
            json!({ "kind": "noop", "args": { "n": 2 }, "max_attempts": 3, "run_at": later }),
            json!({ "kind": "noop", "args": { "n": 3 }, "run_at": past }),
            json!({ "kind": "noop", "args": { "n": 4 }, "idempotency_key": format!("k-{round}") }),
            json!({ "kind": "noop", "args": { "n": 5 }, "idempotency_key": "shared", "run_at": later }),
        ]
    };
    let mut answers = Vec::new();
    for body in bodies(0) {
        answers.push(env.submit(&key, body).await);
    }
    for round in 1..=3 {
        let all = bodies(round).into_iter().chain(bodies(round + 10));
        answers.extend(futures::future::join_all(all.map(|b| env.submit(&key, b))).await);
    }
    let keyless: Vec<Value> = (0..12)
        .map(|n| json!({ "kind": "noop", "args": { "n": n } }))
        .collect();
    answers
        .extend(futures::future::join_all(keyless.into_iter().map(|b| env.submit(&key, b))).await);
    // The batch route, with keys (one used before) and without any.
    let keyless_batch: Vec<Value> = bodies(30)
        .into_iter()
        .filter(|b| b.get("idempotency_key").is_none())
        .collect();
    for jobs in [bodies(20), keyless_batch] {
        let (status, body) = env
            .call(
                Method::POST,
                "/api/jobs/batch",
                &key,
                Some(&json!({ "jobs": jobs })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        for mut item in body["jobs"].as_array().unwrap().iter().cloned() {
            let created = item.as_object_mut().unwrap().remove("created").unwrap();
            answers.push((if created == true { 202 } else { 200 }, item));
        }
    }

    assert_eq!(answers.len(), 6 + 3 * 12 + 12 + 6 + 4);
    assert!(
        answers.iter().any(|(s, _)| *s == 200),
        "the shared key answered 200 at least once"
    );
    for (status, answer) in &answers {
        assert!([200, 202].contains(status), "{status}: {answer}");
        let id = answer["id"].as_str().unwrap();
        let (status, stored) = get(&env, &key, &format!("/api/jobs/{id}")).await;
        assert_eq!(status, 200, "{stored}");
        assert_eq!(
            answer, &stored,
            "the submit's answer differs from the stored job"
        );
    }
    // Alone: 6 new. Each concurrent round: 8 keyless and 2 new keys ("shared" exists by
    // then). Then 12 keyless, the first batch's 4 keyless and its new key, the second's 4.
    assert_eq!(env.count_jobs().await, 6 + 3 * 10 + 12 + 5 + 4);
}
