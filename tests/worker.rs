//! Worker behaviour against the real Postgres and Redis, with the webhook receiver faked by
//! wiremock: retries and backoff, fatal errors, `retry`, `Retry-After`, duplicate deliveries,
//! cancellation, `run_at`, idle pick-up and the webhook signature.

mod support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use keel_models::job::JobStatus;
use serde_json::json;
use sha2::Sha256;
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn receiver() -> MockServer {
    MockServer::start().await
}

/// A receiver answering every POST with `response`.
async fn receiver_answering(response: ResponseTemplate) -> MockServer {
    let server = receiver().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

async fn deliveries(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn retryable_errors_retry_up_to_max_attempts_then_dead_and_retry_brings_it_back() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let server = receiver_answering(ResponseTemplate::new(503)).await;
    let mut body = webhook(&format!("{}/hook", server.uri()), json!({"a": 1}));
    body["max_attempts"] = json!(4);
    let id = env.submit_ok(&key, body).await;

    let job = env.wait_status(id, JobStatus::Dead, secs(30)).await;
    assert_eq!(job.attempt, 4);
    assert_eq!(deliveries(&server).await, 4, "one delivery per attempt");
    // The error says it ended the job: no attempt is left to retry it.
    let err = job.last_error.unwrap();
    assert_eq!(err["kind"], "exhausted", "{err}");
    assert_eq!(err["final"], true, "{err}");
    assert_eq!(
        (err["attempt"].as_i64(), err["max_attempts"].as_i64()),
        (Some(4), Some(4))
    );
    assert!(
        err["message"].as_str().unwrap().contains("giving up"),
        "{err}"
    );

    // The receiver is fixed; `retry` brings the dead job back with a fresh budget.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let resp = env.post(&key, &format!("/api/jobs/{id}/retry")).await;
    assert_eq!(resp.status(), 200);
    let job = env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(job.attempt, 1);
    assert_eq!(job.result.unwrap()["status"], 204);
}

#[tokio::test]
async fn between_attempts_a_failed_job_waits_with_growing_delays() {
    let env = TestEnv::with(|s| {
        s.backoff_base_ms = 400;
        s.backoff_cap_ms = 60_000;
    })
    .await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let server = receiver_answering(ResponseTemplate::new(500)).await;
    let mut body = webhook(&server.uri(), json!({}));
    body["max_attempts"] = json!(4);
    let id = env.submit_ok(&key, body).await;

    // Observe the wait scheduled after each failure: run_at - updated_at (the failure time).
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let job = env
            .wait_for(id, secs(20), |j| {
                j.status == JobStatus::Failed && j.attempt == attempt
            })
            .await;
        let wait = (job.run_at - job.updated_at).num_milliseconds();
        delays.push(wait);
        // Equal jitter: within [ceiling/2, ceiling] for ceiling = 400ms · 2^(attempt-1).
        let ceiling = 400 * (1i64 << (attempt - 1));
        assert!(
            wait >= ceiling / 2 - 5 && wait <= ceiling + 5,
            "attempt {attempt}: waited {wait} ms, ceiling {ceiling} ms"
        );
        assert_eq!(job.last_error.as_ref().unwrap()["kind"], "retryable");
        assert_eq!(job.last_error.as_ref().unwrap()["final"], false);
    }
    env.wait_status(id, JobStatus::Dead, secs(20)).await;
    assert_eq!(deliveries(&server).await, 4);
}

#[tokio::test]
async fn a_fatal_error_goes_dead_at_once() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let server = receiver_answering(ResponseTemplate::new(400)).await;
    let id = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    let job = env.wait_status(id, JobStatus::Dead, secs(10)).await;
    assert_eq!(job.attempt, 1);
    assert_eq!(job.max_attempts, 10, "webhook.deliver's default");
    let err = job.last_error.unwrap();
    assert_eq!(err["kind"], "fatal");
    assert_eq!(err["final"], true, "a fatal error ends the job: {err}");
    assert_eq!(deliveries(&server).await, 1);
}

/// A delivery whose request cannot be built (an event name with a newline, from a job stored
/// before submits refused those) is fatal: it had failed as retryable on every attempt.
#[tokio::test]
async fn a_delivery_that_cannot_be_built_goes_dead_at_once() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (tenant, _, _) = env.tenant("acme").await;
    let server = receiver_answering(ResponseTemplate::new(200)).await;
    let id = uuid::Uuid::now_v7();
    let job = keel_models::job::NewJob {
        id,
        tenant_id: Some(tenant),
        kind: "webhook.deliver".into(),
        queue: "default".into(),
        args: json!({ "url": server.uri(), "event": "e\nX-Injected: 1", "payload": {} }),
        max_attempts: 10,
        run_at: None,
        idempotency_key: None,
        dispatched: false,
    };
    let mut conn = env.keel.pool.acquire().await.unwrap();
    keel_models::job::insert(&mut conn, &job).await.unwrap();
    let job = env.wait_status(id, JobStatus::Dead, secs(10)).await;
    assert_eq!(job.attempt, 1);
    let error = job.last_error.unwrap();
    assert_eq!(error["kind"], "fatal", "{error}");
    assert_eq!(deliveries(&server).await, 0);
}

#[tokio::test]
async fn retry_after_from_the_receiver_sets_the_next_attempt() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let server =
        receiver_answering_once(ResponseTemplate::new(429).insert_header("retry-after", "2")).await;
    let id = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    let failed = env
        .wait_for(id, secs(10), |j| j.status == JobStatus::Failed)
        .await;
    let wait = (failed.run_at - failed.updated_at).num_milliseconds();
    assert!((1990..=2010).contains(&wait), "Retry-After: 2 → {wait} ms");
    assert_eq!(failed.last_error.unwrap()["retry_after_ms"], 2000);
    let done = env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(done.attempt, 2);
    assert!(done.started_at.unwrap() >= failed.run_at);

    // `Retry-After: 0` does not turn the backoff off (here 50–100 ms for a first attempt): an
    // overloaded receiver answering it had got all of a job's attempts within seconds.
    let server =
        receiver_answering_once(ResponseTemplate::new(503).insert_header("retry-after", "0")).await;
    let id = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    let failed = env
        .wait_for(id, secs(10), |j| j.status == JobStatus::Failed)
        .await;
    let wait = (failed.run_at - failed.updated_at).num_milliseconds();
    assert!((50..=100).contains(&wait), "Retry-After: 0 → {wait} ms");
    assert_eq!(failed.last_error.unwrap()["retry_after_ms"], 0);
}

#[tokio::test]
async fn deliveries_are_signed_with_the_tenant_secret_and_carry_the_job_id() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, secret) = env.tenant("acme").await;
    let server = receiver().await;
    Mock::given(method("POST"))
        .and(path("/hooks/keel"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let payload = json!({"invoice": "in_1", "amount": 4200});
    let id = env
        .submit_ok(
            &key,
            webhook(&format!("{}/hooks/keel", server.uri()), payload.clone()),
        )
        .await;
    env.wait_status(id, JobStatus::Succeeded, secs(10)).await;

    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    let header = |name: &str| req.headers.get(name).unwrap().to_str().unwrap().to_string();
    assert_eq!(header("keel-delivery"), id.to_string());
    assert_eq!(header("keel-event"), "test.event");
    assert_eq!(header("content-type"), "application/json");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, payload);
    // Verify exactly as a receiver would.
    let sig = header("keel-signature");
    let (t, v1) = sig.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&req.body);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((0..60).contains(&age));
}

#[tokio::test]
async fn a_slow_first_attempt_cannot_finish_a_job_that_another_attempt_finished() {
    let env = TestEnv::new().await;
    // Worker A never heartbeats (think: a long GC pause or a partition from Postgres), so its
    // lease expires while its attempt is still running.
    env.spawn_worker(|c| {
        c.heartbeat = Duration::from_secs(3600);
        c.relay = false;
    });
    let (_, key, _) = env.tenant("acme").await;
    let server =
        receiver_answering_once(ResponseTemplate::new(201).set_delay(Duration::from_secs(5))).await;
    let id = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_for(id, secs(10), |j| {
        j.status == JobStatus::Running && j.attempt == 1
    })
    .await;
    // Worker B takes the job over once A's lease expires, and finishes first.
    env.spawn_worker(|_| {});
    let done = env.wait_status(id, JobStatus::Succeeded, secs(15)).await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.result.as_ref().unwrap()["status"], 200);
    // A's slow attempt completes later; the ledger keeps the first finisher's result.
    tokio::time::sleep(Duration::from_secs(6)).await; // A's 5 s response arrives meanwhile
    assert_eq!(deliveries(&server).await, 2);
    let after = env.job(id).await;
    assert_eq!(after.status, JobStatus::Succeeded);
    assert_eq!(after.attempt, 2);
    assert_eq!(
        after.result, done.result,
        "the first finisher's result stands"
    );
    assert_eq!(after.finished_at, done.finished_at);
}

#[tokio::test]
async fn cancel_before_start_means_it_never_runs() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let server = receiver_answering(ResponseTemplate::new(200)).await;
    let mut body = webhook(&server.uri(), json!({}));
    body["run_at"] = json!((chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339());
    let id = env.submit_ok(&key, body).await;
    let resp = env.post(&key, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(resp.status(), 200);
    // Past its run_at, with a worker and relay running, it still never starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.attempt, 0);
    assert_eq!(deliveries(&server).await, 0);
}

#[tokio::test]
async fn cancel_while_running_tells_the_handler_and_ends_cancelled() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let server =
        receiver_answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(60))).await;
    let id = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_status(id, JobStatus::Running, secs(10)).await;
    let t0 = std::time::Instant::now();
    let resp = env.post(&key, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(resp.status(), 202);
    let job = env.wait_status(id, JobStatus::Cancelled, secs(10)).await;
    assert!(
        t0.elapsed() < secs(10),
        "the handler stopped long before the 60 s response"
    );
    assert_eq!(job.attempt, 1);
    assert!(job.cancel_requested_at.is_some());
    // It stays cancelled: not retried, not re-dispatched.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.job(id).await.status, JobStatus::Cancelled);
    assert_eq!(deliveries(&server).await, 1);
}

/// A cancel requested while the handler is failing, before a heartbeat could tell it: the job
/// ends `cancelled` at once, its error kept. It had ended `failed` (waiting out a Retry-After
/// of ten minutes, its units reserved) or, on its last attempt, `dead`.
#[tokio::test]
async fn a_cancel_requested_while_the_handler_fails_ends_the_job_cancelled() {
    let env = TestEnv::new().await;
    // Heartbeats far apart: the handler never hears of the cancel before it fails.
    env.spawn_worker(|c| {
        c.heartbeat = secs(10);
        c.lease = secs(30);
    });
    let (_, key, _) = env.tenant("acme").await;
    let server = receiver_answering(
        ResponseTemplate::new(503)
            .insert_header("Retry-After", "600")
            .set_delay(Duration::from_millis(1_500)),
    )
    .await;
    for max_attempts in [5, 1] {
        let mut body = webhook(&server.uri(), json!({}));
        body["max_attempts"] = json!(max_attempts);
        let id = env.submit_ok(&key, body).await;
        env.wait_status(id, JobStatus::Running, secs(10)).await;
        let resp = env.post(&key, &format!("/api/jobs/{id}/cancel")).await;
        assert_eq!(resp.status(), 202);
        let job = env
            .wait_for(id, secs(10), |j| {
                j.status.is_terminal() || j.status == JobStatus::Failed
            })
            .await;
        assert_eq!(
            job.status,
            JobStatus::Cancelled,
            "max_attempts {max_attempts}"
        );
        assert_eq!(job.attempt, 1);
        assert!(job.finished_at.is_some());
        let error = job.last_error.expect("the failure is kept");
        assert!(error.to_string().contains("503"), "{error}");
    }
    assert_eq!(deliveries(&server).await, 2);
}

#[tokio::test]
async fn run_at_jobs_start_within_a_second_of_due_time() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let mut body = noop(1);
    body["run_at"] = json!(due.to_rfc3339());
    let id = env.submit_ok(&key, body).await;
    let queued = env.job(id).await;
    assert_eq!(queued.status, JobStatus::Queued);
    let job = env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(
        job.run_at, queued.run_at,
        "a finished job keeps the time it was due"
    );
    let started = job.started_at.unwrap();
    let late = (started - job.created_at).num_milliseconds() - 1500;
    assert!(
        started >= due - chrono::Duration::milliseconds(5),
        "started before due"
    );
    assert!(late < 1000, "started {late} ms after due");
}

#[tokio::test]
async fn an_idle_worker_picks_up_a_new_job_without_waiting_for_a_poll() {
    let env = TestEnv::new().await;
    // No relay and a 30 s blocking read: if pick-up depended on polling, this job would wait
    // ~30 s. It is delivered by the blocking read as soon as the API pushes it.
    env.spawn_worker(|c| {
        c.relay = false;
        c.block = Duration::from_secs(30);
    });
    let (_, key, _) = env.tenant("acme").await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the worker is now parked in XREADGROUP
    let id = env.submit_ok(&key, noop(1)).await;
    let job = env.wait_status(id, JobStatus::Succeeded, secs(5)).await;
    let pickup = (job.started_at.unwrap() - job.created_at).num_milliseconds();
    assert!(pickup < 1000, "picked up after {pickup} ms");
}

/// `XREADGROUP … COUNT n` over several streams returns up to n entries per stream; a worker
/// with one free slot (and its places ahead) reading two queues can get more than it asked for.
/// The extra must wait unstarted (no attempt spent, no lease held), not be started and dropped.
#[tokio::test]
async fn a_worker_on_two_queues_never_starts_more_than_its_free_slots() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    for i in 0..15 {
        env.submit_ok(&key, noop(i)).await;
    }
    // `analysis` queue; no Jira is connected, so each ends `dead` on its first attempt. Written
    // to the ledger directly: the API refuses such submits.
    let analyses: Vec<_> = (0..15)
        .map(|i| json!({ "issue_key": format!("ED-{i}") }))
        .collect();
    let mut conn = env.keel.pool.acquire().await.unwrap();
    keel_models::job::insert_many(
        &mut conn,
        Some(tenant),
        "jira.analyze.issue",
        "analysis",
        3,
        &analyses,
    )
    .await
    .unwrap();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(ids.len(), 30);
    env.spawn_worker(|c| c.concurrency = 1);
    for id in &ids {
        let job = env
            .wait_for(*id, secs(30), |j| {
                matches!(j.status, JobStatus::Succeeded | JobStatus::Dead)
            })
            .await;
        assert_eq!(job.attempt, 1, "started once, never dropped: {job:#?}");
    }
}

/// A worker with one slot and `prefetch` places ahead (`prefetch_wait`), warmed up by one noop
/// job (it starts nothing ahead before a first handler finished), a tenant's key, and a
/// receiver answering after `busy_for`, whose webhook jobs keep the slot busy.
async fn one_slot_worker(
    env: &TestEnv,
    prefetch: usize,
    prefetch_wait: Duration,
    busy_for: Duration,
) -> (tokio_util::sync::CancellationToken, String, MockServer) {
    let worker = env.spawn_worker(|c| {
        c.concurrency = 1;
        c.prefetch = Some(prefetch);
        c.prefetch_wait = prefetch_wait;
    });
    let (_, key, _) = env.tenant("acme").await;
    let warm_up = env.submit_ok(&key, noop(0)).await;
    env.wait_status(warm_up, JobStatus::Succeeded, secs(10))
        .await;
    let server = receiver_answering(ResponseTemplate::new(200).set_delay(busy_for)).await;
    (worker, key, server)
}

/// Jobs started ahead of a free slot (`keel_worker::prefetch`) are started and heartbeated
/// while they wait, but their handlers only run in a slot: a cancel request ends one without
/// running it, and shutdown hands the rest back uncounted, to run once elsewhere.
#[tokio::test]
async fn jobs_started_ahead_wait_for_a_slot_and_shutdown_hands_them_back() {
    let env = TestEnv::new().await;
    let (worker, key, server) = one_slot_worker(&env, 2, secs(60), secs(3)).await;
    let slow = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_status(slow, JobStatus::Running, secs(10)).await;
    let ahead = [
        env.submit_ok(&key, noop(1)).await,
        env.submit_ok(&key, noop(2)).await,
    ];
    for id in ahead {
        let job = env.wait_status(id, JobStatus::Running, secs(10)).await;
        assert_eq!(job.attempt, 1);
    }
    // Started ahead, but the one slot is busy: no handler has run them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in ahead {
        let job = env.job(id).await;
        assert_eq!(job.status, JobStatus::Running, "{job:#?}");
        assert!(job.result.is_none());
    }
    let resp = env
        .post(&key, &format!("/api/jobs/{}/cancel", ahead[0]))
        .await;
    assert_eq!(resp.status(), 202);
    let cancelled = env
        .wait_status(ahead[0], JobStatus::Cancelled, secs(10))
        .await;
    assert!(cancelled.result.is_none(), "its handler never ran");

    worker.cancel();
    let handed_back = env.wait_status(ahead[1], JobStatus::Queued, secs(10)).await;
    assert_eq!(handed_back.attempt, 0, "its attempt was never used");
    assert!(handed_back.started_at.is_none(), "{handed_back:#?}");
    // The slot's job finished within the shutdown timeout.
    let job = env.wait_status(slow, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(job.attempt, 1);
    assert_eq!(deliveries(&server).await, 1);

    env.spawn_worker(|_| {});
    let job = env
        .wait_status(ahead[1], JobStatus::Succeeded, secs(10))
        .await;
    assert_eq!(job.attempt, 1);
    assert_eq!(env.job(ahead[0]).await.status, JobStatus::Cancelled);
}

/// A job started ahead that finds no free slot within `prefetch_wait` goes back to the queue,
/// uncounted, and another worker runs it: a busy worker does not sit on its backlog.
#[tokio::test]
async fn a_job_started_ahead_without_a_slot_in_time_runs_on_another_worker() {
    let env = TestEnv::new().await;
    let (_worker, key, server) =
        one_slot_worker(&env, 1, Duration::from_millis(300), secs(20)).await;
    let slow = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_status(slow, JobStatus::Running, secs(10)).await;
    let id = env.submit_ok(&key, noop(1)).await;
    env.wait_status(id, JobStatus::Running, secs(10)).await;
    // The second worker has no places ahead: it only takes what it can run.
    env.spawn_worker(|c| c.prefetch = Some(0));
    let job = env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(job.attempt, 1, "waiting ahead spent no attempt: {job:#?}");
    assert_eq!(env.job(slow).await.status, JobStatus::Running);
}

/// Starting ahead is only for short jobs: a worker whose handlers run long leaves new jobs in
/// the queue for idle workers instead of starting them behind its own.
#[tokio::test]
async fn a_worker_busy_with_long_jobs_does_not_start_jobs_ahead() {
    let env = TestEnv::new().await;
    let (_worker, key, server) = one_slot_worker(
        &env,
        4,
        Duration::from_millis(500),
        Duration::from_millis(1500),
    )
    .await;
    let first = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_status(first, JobStatus::Succeeded, secs(10)).await;
    let second = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_status(second, JobStatus::Running, secs(10)).await;
    a_new_job_waits_in_the_queue(&env, &key).await;
}

/// While the worker's one slot is busy, a new job stays `queued` (not started ahead), and runs
/// once the slot frees up.
async fn a_new_job_waits_in_the_queue(env: &TestEnv, key: &str) {
    let id = env.submit_ok(key, noop(1)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Queued, "not started ahead: {job:#?}");
    assert_eq!(job.attempt, 0);
    let job = env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    assert_eq!(job.attempt, 1);
}

/// A worker restarted after a crash runs its first jobs one per slot: a job that kills its
/// worker every time is usually among them, and must not spend the attempts of jobs started
/// ahead that never ran.
#[tokio::test]
async fn a_fresh_worker_starts_nothing_ahead_before_its_first_jobs_finish() {
    let env = TestEnv::new().await;
    env.spawn_worker(|c| {
        c.concurrency = 1;
        c.prefetch = Some(4);
        c.prefetch_wait = secs(60);
    });
    let (_, key, _) = env.tenant("acme").await;
    let server =
        receiver_answering(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500))).await;
    let first = env.submit_ok(&key, webhook(&server.uri(), json!({}))).await;
    env.wait_status(first, JobStatus::Running, secs(10)).await;
    a_new_job_waits_in_the_queue(&env, &key).await;
}

/// The hot paths' connections plan each statement once, generically, at first use. Planned on
/// an empty table, the per-id statements (start, heartbeat, finish) had chosen a sequential
/// scan and kept it while the table grew: every start scanned every row (on a fresh database
/// at 200 jobs/s, the pick-up p50 rose from 1.9 to 5.0 ms within 30 s). Whatever the table held
/// when the plan was made, they must reach their rows through the primary key.
#[tokio::test]
async fn hot_path_statements_planned_on_an_empty_table_still_find_rows_by_id() {
    let env = TestEnv::new().await;
    let held = keel_models::held::Held::generic_plans(&env.keel.pool, 1);
    let lease = secs(30);
    let absent = [uuid::Uuid::now_v7()];
    let run = async || {
        held.run(async |c| {
            keel_models::job::start_many(&mut *c, &absent, lease).await?;
            keel_models::job::heartbeat_many(&mut *c, &absent, &[1], lease).await?;
            keel_models::job::succeed_many(&mut *c, &absent, &[json!(null)]).await
        })
        .await
        .unwrap();
    };
    // First use, on the empty table: the plans are made now.
    run().await;
    sqlx::query(
        "INSERT INTO jobs (id, kind, queue, args, max_attempts)
         SELECT gen_random_uuid(), 'noop', 'default', '{}', 10 FROM generate_series(1, 5000)",
    )
    .execute(&env.keel.pool)
    .await
    .unwrap();
    let reads = async || held.run(async |c| Ok(jobs_reads(c).await)).await.unwrap();
    let before = reads().await;
    run().await;
    let after = reads().await;
    assert_eq!(
        after.seq_scans - before.seq_scans,
        0,
        "start, heartbeat and finish scanned the whole 5,000-row table"
    );
    assert!(
        after.index_scans - before.index_scans >= 3,
        "each of the three statements looks its rows up by id: {before:?} → {after:?}"
    );
}

/// A test that ends while its worker is still draining a slow job leaves no Redis keys behind.
/// Until the drain ends, the worker's relay re-creates its queues' streams on every tick, so the
/// cleanup has to wait for the worker itself. Before, it gave up after 3 s of the worker's 5 s
/// drain, and four streams outlived the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_ending_while_its_worker_drains_leaves_no_redis_keys() {
    let server = receiver_answering(ResponseTemplate::new(200).set_delay(secs(60))).await;
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let id = env
        .submit_ok(&key, webhook(&server.uri(), json!({ "a": 1 })))
        .await;
    env.wait_status(id, JobStatus::Running, secs(10)).await;
    let drain = Duration::from_millis(env.keel.settings.worker_shutdown_timeout_ms);
    let pattern = format!("{}:*", env.prefix);
    let redis = redis::Client::open(env.keel.settings.redis_url.as_str()).unwrap();
    let dropped = std::time::Instant::now();
    drop(env);
    // Past the end of the worker's drain, where anything it re-created would be there to see.
    tokio::time::sleep((drain + secs(1)).saturating_sub(dropped.elapsed())).await;
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert!(keys.is_empty(), "left behind: {keys:?}");
}
