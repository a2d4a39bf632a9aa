mod support;

// Process-level failure tests: real `keel worker` processes killed with SIGKILL or stopped with
// SIGTERM mid-job, and an in-process worker riding out a Redis outage. Postgres and Redis are
// real; only the webhook receiver is a `wiremock` server, whose recorded requests tell how many
// times each job was delivered (`keel-delivery` = job id, `keel-attempt` = attempt number).

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use keel_models::job::{Job, JobStatus};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Mounts `POST /hook` answering 200 after `first_delay` for the first `slow` requests, and
/// at once afterwards.
async fn receiver(slow: u64, first_delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    if slow > 0 {
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_delay(first_delay))
            .up_to_n_times(slow)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// A receiver whose every answer takes `delay`.
async fn slow_receiver(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(delay))
        .mount(&server)
        .await;
    server
}

fn hook(server: &MockServer) -> String {
    format!("{}/hook", server.uri())
}

fn header(r: &Request, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Every request the receiver saw.
async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

/// Waits until the receiver has seen at least `n` requests.
async fn wait_requests(server: &MockServer, n: usize, limit: Duration) -> Vec<Request> {
    let deadline = Instant::now() + limit;
    loop {
        let got = requests(server).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver saw {} request(s), expected {n} within {limit:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `keel-attempt` of every delivery of job `id`, in arrival order.
fn attempts_delivered(reqs: &[Request], id: Uuid) -> Vec<String> {
    reqs.iter()
        .filter(|r| header(r, "keel-delivery") == id.to_string())
        .map(|r| header(r, "keel-attempt"))
        .collect()
}

fn running(attempt: i32) -> impl Fn(&Job) -> bool {
    move |j| j.status == JobStatus::Running && j.attempt == attempt
}

fn error_message(job: &Job) -> String {
    job.last_error
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_is_taken_over_after_the_lease_and_runs_again() {
    let mut env = TestEnv::new().await;
    // Long enough that the first attempt cannot finish before the kill, shorter than the
    // webhook timeout (10 s) so it is not a timeout either.
    let server = receiver(1, secs(8)).await;
    let (_, key, _) = env.tenant("acme").await;

    let a = env.spawn_worker_process(&[]);
    let id = env
        .submit_ok(&key, webhook(&hook(&server), json!({"n": 1})))
        .await;
    env.wait_for(id, secs(20), running(1)).await;
    wait_requests(&server, 1, secs(10)).await;

    env.signal(a, "KILL");
    let status = env.wait_child(a, secs(5)).await;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    // Nobody finishes the attempt of a dead worker: it stays running until its lease expires.
    assert_eq!(env.job(id).await.status, JobStatus::Running);

    let _b = env.spawn_worker_process(&[]);
    let job = env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(job.attempt, 2, "{job:#?}");
    assert_eq!(job.result.as_ref().unwrap()["status"], 200, "{job:#?}");
    assert!(job.lease_until.is_none(), "{job:#?}");

    let reqs = requests(&server).await;
    assert_eq!(attempts_delivered(&reqs, id), ["1", "2"]);
    assert_eq!(reqs.len(), 2);

    // The Redis stream stays bounded: at most the dead consumer's unacked entry remains, and
    // nothing re-dispatches a finished job (wait past `redispatch_after`).
    let lane = &env.keel.lane;
    let len = lane.len(&job.queue).await.unwrap();
    assert!(len <= 2, "stream holds {len} entries");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let later = lane.len(&job.queue).await.unwrap();
    assert!(later <= len, "stream grew from {len} to {later} entries");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_time_ends_dead_after_max_attempts() {
    let mut env = TestEnv::new().await;
    let server = slow_receiver(secs(30)).await;
    let (_, key, _) = env.tenant("acme").await;
    let mut body = webhook(&hook(&server), json!({"poison": true}));
    body["max_attempts"] = json!(3);
    let id = env.submit_ok(&key, body).await;
    assert_eq!(env.job(id).await.max_attempts, 3);

    for k in 1..=3 {
        let pid = env.spawn_worker_process(&[]);
        env.wait_for(id, secs(20), running(k)).await;
        wait_requests(&server, k as usize, secs(10)).await;
        env.signal(pid, "KILL");
        let status = env.wait_child(pid, secs(5)).await;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    let _last = env.spawn_worker_process(&[]);
    let job = env.wait_status(id, JobStatus::Dead, secs(20)).await;
    assert_eq!(job.attempt, 3, "{job:#?}");
    let message = error_message(&job);
    assert!(message.contains("attempts exhausted"), "{job:#?}");
    let error = job.last_error.as_ref().unwrap();
    assert_eq!(
        (&error["kind"], &error["final"]),
        (&json!("exhausted"), &json!(true)),
        "{error}"
    );
    assert!(job.finished_at.is_some(), "{job:#?}");
    assert!(job.lease_until.is_none(), "{job:#?}");

    // The last worker declared it dead without delivering it a 4th time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reqs = requests(&server).await;
    assert_eq!(attempts_delivered(&reqs, id), ["1", "2", "3"]);
    assert_eq!(reqs.len(), 3);
    let job = env.job(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Dead, 3), "{job:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_jobs_and_leaves_the_rest_queued() {
    let mut env = TestEnv::with(|s| s.worker_shutdown_timeout_ms = 10_000).await;
    let server = slow_receiver(Duration::from_millis(1_500)).await;
    let (_, key, _) = env.tenant("acme").await;
    // Submitted before the worker starts, so it takes 4 at once and none finishes before the
    // signal is sent.
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(
            env.submit_ok(&key, webhook(&hook(&server), json!({"n": n})))
                .await,
        );
    }

    // Four slots. (A fresh worker starts nothing ahead of its slots before as many handlers have
    // finished; jobs started ahead and shutdown: `worker::jobs_started_ahead_…`.)
    let pid = env.spawn_worker_process(&[("KEEL_WORKER_CONCURRENCY", "4")]);
    let deadline = Instant::now() + secs(20);
    let in_flight: HashSet<Uuid> = loop {
        for id in &ids {
            let job = env.job(*id).await;
            assert!(
                matches!(job.status, JobStatus::Queued | JobStatus::Running),
                "a job finished or failed before 4 were running: {job:#?}"
            );
        }
        let delivered: HashSet<Uuid> = requests(&server)
            .await
            .iter()
            .map(|r| header(r, "keel-delivery").parse().unwrap())
            .collect();
        assert!(delivered.len() <= 4, "more than 4 handlers running at once");
        if delivered.len() == 4 {
            break delivered;
        }
        assert!(Instant::now() < deadline, "4 jobs never ran at once");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    env.signal(pid, "TERM");
    let status = env.wait_child(pid, secs(15)).await;
    assert!(status.success(), "worker exited with {status:?}");

    for id in &ids {
        let job = env.job(*id).await;
        if in_flight.contains(id) {
            assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
            assert_eq!(job.attempt, 1, "{job:#?}");
        } else {
            assert_eq!(job.status, JobStatus::Queued, "{job:#?}");
            assert_eq!(job.attempt, 0, "{job:#?}");
            assert!(job.started_at.is_none(), "{job:#?}");
        }
    }
    assert_eq!(requests(&server).await.len(), 4);

    let _next = env.spawn_worker(|_| {});
    for id in &ids {
        let job = env.wait_status(*id, JobStatus::Succeeded, secs(20)).await;
        assert_eq!(job.attempt, 1, "{job:#?}");
    }
    let reqs = requests(&server).await;
    let mut per_job: HashMap<String, usize> = HashMap::new();
    for r in &reqs {
        *per_job.entry(header(r, "keel-delivery")).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            per_job.get(&id.to_string()),
            Some(&1),
            "deliveries: {per_job:?}"
        );
    }
    assert_eq!(reqs.len(), 8, "deliveries: {per_job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_a_job_longer_than_the_shutdown_timeout() {
    let mut env = TestEnv::new().await;
    let server = receiver(1, secs(30)).await;
    let (_, key, _) = env.tenant("acme").await;

    let pid = env.spawn_worker_process(&[("KEEL_WORKER_SHUTDOWN_TIMEOUT_MS", "1000")]);
    let id = env
        .submit_ok(&key, webhook(&hook(&server), json!({"n": 1})))
        .await;
    env.wait_for(id, secs(20), running(1)).await;
    wait_requests(&server, 1, secs(10)).await;

    env.signal(pid, "TERM");
    // Timeout 1 s + 0.5 s grace for the handler, plus slack for a loaded machine.
    let status = env.wait_child(pid, secs(6)).await;
    assert!(status.success(), "worker exited with {status:?}");

    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Queued, "{job:#?}");
    assert_eq!(job.attempt, 0, "{job:#?}");
    assert!(job.lease_until.is_none(), "{job:#?}");
    assert!(job.finished_at.is_none(), "{job:#?}");

    let _next = env.spawn_worker(|_| {});
    let job = env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(job.attempt, 1, "{job:#?}");
    let reqs = requests(&server).await;
    assert_eq!(attempts_delivered(&reqs, id).len(), 2);
    assert_eq!(reqs.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_a_redis_outage_and_recreates_the_consumer_group() {
    let mut redis = PrivateRedis::start();
    let env = TestEnv::with_redis(&redis.url(), |_| {}).await;
    let _worker = env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;

    // The worker is up and has seen its consumer groups.
    let before = env.submit_ok(&key, noop(0)).await;
    env.wait_status(before, JobStatus::Succeeded, secs(20))
        .await;

    redis.stop();
    tokio::time::sleep(secs(2)).await;
    redis.restart();
    // A restarted Redis without persistence is empty: no stream, no group. (Not asserted with
    // DBSIZE: the relay may re-create the group within milliseconds of the restart.)

    let id = env.submit_ok(&key, noop(1)).await;
    let job = env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(job.attempt, 1, "{job:#?}");
    assert_eq!(job.result.as_ref().unwrap()["n"], 1, "{job:#?}");
    let groups = redis.cli(&["XINFO", "GROUPS", &env.keel.lane.stream_key(&job.queue)]);
    assert!(
        groups.contains("keel"),
        "consumer group not re-created: {groups}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_while_redis_is_down_runs_once_it_is_back() {
    let mut redis = PrivateRedis::start();
    let env = TestEnv::with_redis(&redis.url(), |_| {}).await;
    let _worker = env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let before = env.submit_ok(&key, noop(0)).await;
    env.wait_status(before, JobStatus::Succeeded, secs(20))
        .await;

    redis.stop();
    // The submit is durable in Postgres; the push to Redis is best effort.
    let id = env.submit_ok(&key, noop(2)).await;
    tokio::time::sleep(secs(1)).await;
    assert_eq!(env.job(id).await.status, JobStatus::Queued);
    redis.restart();

    let job = env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(job.attempt, 1, "{job:#?}");
    assert_eq!(job.result.as_ref().unwrap()["n"], 2, "{job:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_in_a_flushed_redis_are_dispatched_again_at_once() {
    let redis = PrivateRedis::start();
    // Far longer than the test: only the "Redis lost the queue" path can bring the job back.
    let env = TestEnv::with_redis(&redis.url(), |s| s.redispatch_after_ms = 120_000).await;
    let server = slow_receiver(secs(2)).await;
    // No places ahead of the slot: the next job must wait in the stream, not in the worker.
    let _worker = env.spawn_worker(|c| {
        c.concurrency = 1;
        c.prefetch = Some(0);
    });
    let (_, key, _) = env.tenant("acme").await;
    let before = env.submit_ok(&key, noop(0)).await;
    env.wait_status(before, JobStatus::Succeeded, secs(20))
        .await;

    // The only slot is busy, so the next job waits in the stream.
    let slow = env
        .submit_ok(&key, webhook(&hook(&server), json!({"n": 1})))
        .await;
    env.wait_for(slow, secs(20), running(1)).await;
    let waiting = env.submit_ok(&key, noop(3)).await;
    let job = env.job(waiting).await;
    assert_eq!(job.status, JobStatus::Queued, "{job:#?}");
    assert!(job.dispatched_at.is_some(), "{job:#?}");

    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");

    let job = env
        .wait_status(waiting, JobStatus::Succeeded, secs(20))
        .await;
    assert_eq!(job.attempt, 1, "{job:#?}");
    assert_eq!(job.result.as_ref().unwrap()["n"], 3, "{job:#?}");
    let slow = env.wait_status(slow, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(slow.attempt, 1, "{slow:#?}");
    assert_eq!(requests(&server).await.len(), 1);
}
