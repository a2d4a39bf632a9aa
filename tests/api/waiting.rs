//! `GET /api/jobs/{id}?wait=N`: answered when the job ends, or after N seconds with the job as
//! it is then.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_answers_when_the_job_ends() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let env = TestEnv::new().await;
    env.spawn_worker(|c| c.concurrency = 2);
    let (_, key, _) = env.tenant("acme").await;
    let server = MockServer::start().await;
    for (route, ms) in [("/fast", 700), ("/slow", 8_000)] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(ms)))
            .mount(&server)
            .await;
    }
    let hook = |route: &str| webhook(&format!("{}{route}", server.uri()), json!({ "a": 1 }));
    let slow = env.submit_ok(&key, hook("/slow")).await;
    let fast = env.submit_ok(&key, hook("/fast")).await;

    // One request, no polling: answered when the 700 ms delivery has ended...
    let (status, body) = get(&env, &key, &format!("/api/jobs/{fast}?wait=30")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["attempts"], 1, "{body}");
    // ...not when the wait ran out: the 8 s delivery started beside it is still running.
    let (_, body) = get(&env, &key, &format!("/api/jobs/{slow}")).await;
    assert_eq!(body["status"], "running", "{body}");

    // An ended job, or `wait=0`, is answered at once.
    let (_, body) = get(&env, &key, &format!("/api/jobs/{slow}?wait=0")).await;
    assert_eq!(body["status"], "running", "{body}");
    let (status, body) = get(&env, &key, &format!("/api/jobs/{fast}?wait=30")).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")));

    // Cancelled, so the worker is not still delivering it when the test's cleanup runs.
    let (status, body) = post_empty(&env, &key, &format!("/api/jobs/{slow}/cancel")).await;
    assert_eq!(status, 202, "{body}");
    env.wait_status(slow, JobStatus::Cancelled, secs(10)).await;
}

/// A tenant's job that will not run during the test, and the tenant's key.
async fn a_job_due_in_an_hour() -> (TestEnv, String, Uuid) {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let run_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let id = env
        .submit_ok(
            &key,
            json!({ "kind": "noop", "args": {}, "run_at": run_at.to_rfc3339() }),
        )
        .await;
    (env, key, id)
}

#[tokio::test]
async fn a_wait_that_runs_out_answers_the_job_as_it_is() {
    let (env, key, id) = a_job_due_in_an_hour().await;
    let (status, body) = get(&env, &key, &format!("/api/jobs/{id}?wait=1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
}

#[tokio::test]
async fn a_bad_wait_is_422_and_another_tenants_job_is_404_at_once() {
    let env = TestEnv::new().await;
    let (_, key_a, _) = env.tenant("alpha").await;
    let (_, key_b, _) = env.tenant("beta").await;
    let id = env.submit_ok(&key_a, noop(1)).await;
    for wait in ["31", "-1", "1.5", "soon", ""] {
        let (status, body) = get(&env, &key_a, &format!("/api/jobs/{id}?wait={wait}")).await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "wait", "wait={wait}: {body}");
    }
    let (status, body) = get(&env, &key_a, &format!("/api/jobs/{id}?colour=blue")).await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "colour", "{body}");
    // Tenant isolation holds for a waiting request too: not found, without waiting.
    let (status, body) = get(&env, &key_b, &format!("/api/jobs/{id}?wait=30")).await;
    assert_error(status, &body, 404, "not_found");
}

/// A waiting request does not hold the API's shutdown for the rest of its wait: it answers at
/// once with the job as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_answers_when_the_api_shuts_down() {
    let (env, key, id) = a_job_due_in_an_hour().await;
    let waiting = {
        let (http, url) = (
            env.http.clone(),
            env.url(&format!("/api/jobs/{id}?wait=30")),
        );
        tokio::spawn(
            async move { read(http.get(url).bearer_auth(key).send().await.unwrap()).await },
        )
    };
    // Let the request reach its wait, then shut the API down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.shutdown.cancel();
    let (status, body) = tokio::time::timeout(secs(10), waiting)
        .await
        .expect("the waiting request held the shutdown")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
}
