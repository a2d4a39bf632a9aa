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
