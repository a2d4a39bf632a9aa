//! What remote servers can cost a worker, against the real Postgres and Redis: a fake Jira (a
//! small axum server) that answers endless pages or holds its answers behind a gate, and
//! webhook receivers (wiremock) that never answer in time. Each bound ends in a clear job
//! error, and none holds a worker slot: a time limit per attempt, the tenant's Jira places,
//! bytes/pages/issues read from Jira. Also what errors and logs may show of a webhook URL.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use keel_models::job::{Job, JobStatus};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const MIB: u64 = 1024 * 1024;

fn fixture(name: &str) -> Value {
    let p = format!("{}/jira/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// What the fake Jira saw and sent, and the gate its issue answers wait behind.
struct Fake {
    searches: AtomicUsize,
    changelog_pages: AtomicUsize,
    issue_requests: AtomicUsize,
    /// Bytes of streamed bodies handed to the server to send.
    sent: AtomicU64,
    open: tokio::sync::watch::Sender<bool>,
}

impl Fake {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            searches: AtomicUsize::new(0),
            changelog_pages: AtomicUsize::new(0),
            issue_requests: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            open: tokio::sync::watch::channel(true).0,
        })
    }
}

/// The account, and empty changelog and comment pages for every issue.
fn jira_routes() -> Router<Arc<Fake>> {
    Router::new()
        .route(
            "/rest/api/3/myself",
            get(|| async { Json(fixture("myself.json")) }),
        )
        .route(
            "/rest/api/3/issue/{key}/comment",
            get(|| async {
                Json(json!({"startAt": 0, "maxResults": 100, "total": 0, "comments": []}))
            }),
        )
}

fn empty_changelogs(router: Router<Arc<Fake>>) -> Router<Arc<Fake>> {
    router.route(
        "/rest/api/3/issue/{key}/changelog",
        get(|| async {
            Json(json!({"startAt": 0, "maxResults": 100, "total": 0, "isLast": true, "values": []}))
        }),
    )
}

async fn serve(router: Router<Arc<Fake>>, fake: &Arc<Fake>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router.with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A search answer that never ends: `{"issues":[` and then spaces, 1 MiB at a time, for ever
/// (a 30 MiB page, and more). Counts what it hands to the server.
async fn endless_search(State(fake): State<Arc<Fake>>) -> Response {
    fake.searches.fetch_add(1, Ordering::SeqCst);
    let chunks = futures::stream::unfold(0u64, move |n| {
        let fake = fake.clone();
        async move {
            let mut chunk = vec![b' '; MIB as usize];
            if n == 0 {
                chunk[..11].copy_from_slice(b"{\"issues\":[");
            }
            fake.sent.fetch_add(MIB, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), n + 1))
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(chunks))
        .unwrap()
}

/// Pages of two issues with a fresh `nextPageToken` each, never the last.
async fn paged_search(State(fake): State<Arc<Fake>>) -> Json<Value> {
    let n = fake.searches.fetch_add(1, Ordering::SeqCst);
    let template = fixture("search_page1.json")["issues"][0].clone();
    let issues: Vec<Value> = (0..2)
        .map(|i| {
            let mut issue = template.clone();
            issue["id"] = json!((20_000 + 2 * n + i).to_string());
            issue["key"] = json!(format!("ED-{}", 100 + 2 * n + i));
            issue
        })
        .collect();
    Json(json!({"isLast": false, "nextPageToken": format!("page-{n}"), "issues": issues}))
}

/// A changelog that always has 100 more entries (its `total` is a million).
async fn endless_changelog(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    fake.changelog_pages.fetch_add(1, Ordering::SeqCst);
    let start: u64 = q.get("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
    let values: Vec<Value> = (start..start + 100)
        .map(|id| json!({"id": id.to_string(), "created": "2024-01-15T11:00:00.000+0000", "items": []}))
        .collect();
    Json(
        json!({"startAt": start, "maxResults": 100, "total": 1_000_000, "isLast": false, "values": values}),
    )
}

/// An issue whose changelog Jira embedded only in part (the client pages in the rest).
async fn partial_issue(State(fake): State<Arc<Fake>>) -> Json<Value> {
    fake.issue_requests.fetch_add(1, Ordering::SeqCst);
    Json(fixture("issue_partial.json"))
}

/// An issue, answered once the gate is open.
async fn gated_issue(State(fake): State<Arc<Fake>>, Path(key): Path<String>) -> Json<Value> {
    fake.issue_requests.fetch_add(1, Ordering::SeqCst);
    let mut open = fake.open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    let mut issue = fixture("issue_full.json");
    issue["key"] = json!(key);
    Json(issue)
}

/// A tenant whose Jira is `base`; returns its API key.
async fn tenant_on(env: &TestEnv, base: &str) -> String {
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = env
        .call(
            reqwest::Method::PUT,
            "/api/tenant/jira",
            &key,
            Some(&json!({"base_url": base, "email": "mia@example.com", "api_token": "tok"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    key
}

async fn analyze(env: &TestEnv, key: &str, what: &str, body: Value) -> Uuid {
    let (status, resp) = env
        .call(
            reqwest::Method::POST,
            &format!("/api/analyze/{what}"),
            key,
            Some(&body),
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    resp["id"].as_str().unwrap().parse().unwrap()
}

async fn ended(env: &TestEnv, id: Uuid) -> Job {
    env.wait_for(id, secs(60), |j| {
        matches!(j.status, JobStatus::Succeeded | JobStatus::Dead)
    })
    .await
}

fn message(job: &Job) -> String {
    job.last_error.as_ref().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_jira_answering_endless_pages_leaves_the_job_dead_without_reading_them_whole() {
    let env = TestEnv::new().await;
    let fake = Fake::new();
    let routes = jira_routes().route("/rest/api/3/search/jql", post(endless_search));
    let base = serve(routes, &fake).await;
    let key = tenant_on(&env, &base).await;
    env.spawn_worker(|_| {});

    let id = analyze(&env, &key, "portfolio", json!({"project_keys": ["ED"]})).await;
    let job = ended(&env, id).await;
    assert_eq!(job.status, JobStatus::Dead, "{job:#?}");
    assert_eq!(job.attempt, 1, "over a bound is final: {job:#?}");
    let error = job.last_error.as_ref().unwrap();
    assert_eq!(
        (&error["kind"], &error["final"]),
        (&json!("fatal"), &json!(true))
    );
    assert_eq!(
        message(&job),
        "Jira's answer from /rest/api/3/search/jql is larger than 8388608 bytes, the most Keel reads in one response; reading stopped"
    );
    assert_eq!(fake.searches.load(Ordering::SeqCst), 1);
    // Reading stopped at the limit: the server got out the limit plus what socket buffers hold,
    // not one 30 MiB page (worker memory, measured: scripts/bench-jira-bounds.sh).
    let sent = fake.sent.load(Ordering::SeqCst);
    assert!(sent < 30 * MIB, "{} MiB handed to the socket", sent / MIB);
}

#[tokio::test]
async fn a_changelog_that_never_ends_stops_at_the_jobs_page_budget() {
    let env = TestEnv::with(|s| s.jira_max_job_pages = 20).await;
    let fake = Fake::new();
    let routes = jira_routes()
        .route("/rest/api/3/issue/{key}", get(partial_issue))
        .route("/rest/api/3/issue/{key}/changelog", get(endless_changelog));
    let base = serve(routes, &fake).await;
    let key = tenant_on(&env, &base).await;
    env.spawn_worker(|_| {});

    let id = analyze(&env, &key, "issue", json!({"issue_key": "ED-2"})).await;
    let job = ended(&env, id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Dead, 1), "{job:#?}");
    assert_eq!(
        message(&job),
        "this job has made 20 requests to Jira, the most one job may make; stopping (narrow the query, or raise the limit)"
    );
    // The issue, then changelog pages up to the budget: 20 requests in all.
    assert_eq!(fake.issue_requests.load(Ordering::SeqCst), 1);
    assert_eq!(fake.changelog_pages.load(Ordering::SeqCst), 19);
}

#[tokio::test]
async fn a_portfolio_stops_paging_at_the_issue_cap() {
    let env = TestEnv::with(|s| s.jira_max_issues = 3).await;
    let fake = Fake::new();
    let routes =
        empty_changelogs(jira_routes()).route("/rest/api/3/search/jql", post(paged_search));
    let base = serve(routes, &fake).await;
    let key = tenant_on(&env, &base).await;
    env.spawn_worker(|_| {});

    let id = analyze(&env, &key, "portfolio", json!({"jql": "project = ED"})).await;
    let job = ended(&env, id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    let result = job.result.unwrap();
    assert_eq!(result["truncated"], true, "{result}");
    assert_eq!(result["analyzed"], 3);
    assert_eq!(
        result["matched"], 4,
        "read up to the page that reached the cap"
    );
    // Paging stopped at the cap; the search never says it is done.
    assert_eq!(fake.searches.load(Ordering::SeqCst), 2);
}

/// The tenant's Jira places are all taken (`KEEL_JIRA_CONCURRENCY=1`, one analysis waiting on
/// Jira): a second analysis is deferred, uncounted, and gives its slot up, so another job runs
/// in it; once the first ends, the second runs.
#[tokio::test]
async fn a_job_finding_its_tenants_jira_places_taken_is_deferred_and_frees_its_slot() {
    let env = TestEnv::with(|s| s.jira_concurrency = 1).await;
    let fake = Fake::new();
    fake.open.send_replace(false);
    let routes = empty_changelogs(jira_routes()).route("/rest/api/3/issue/{key}", get(gated_issue));
    let base = serve(routes, &fake).await;
    let key = tenant_on(&env, &base).await;
    env.spawn_worker(|c| {
        c.concurrency = 2;
        c.prefetch = Some(0);
    });

    let first = analyze(&env, &key, "issue", json!({"issue_key": "ED-1"})).await;
    let deadline = Instant::now() + secs(20);
    while fake.issue_requests.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first analysis never asked Jira"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = analyze(&env, &key, "issue", json!({"issue_key": "ED-2"})).await;
    let deferred = env
        .wait_for(second, secs(20), |j| {
            j.last_error
                .as_ref()
                .is_some_and(|e| e["kind"] == "deferred")
        })
        .await;
    assert_eq!(
        message(&deferred),
        "the tenant's Jira concurrency (1) is in use by its other analyses; trying again shortly"
    );
    // Deferred, not failed: no attempt spent, and no request made to Jira.
    assert_eq!(deferred.attempt, 0, "{deferred:#?}");
    assert_eq!(fake.issue_requests.load(Ordering::SeqCst), 1);
    // One slot is the first analysis's; the second slot is free for other work.
    let other = env.submit_ok(&key, noop(1)).await;
    env.wait_status(other, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(env.job(first).await.status, JobStatus::Running);

    fake.open.send_replace(true);
    let first = ended(&env, first).await;
    assert_eq!((first.status, first.attempt), (JobStatus::Succeeded, 1));
    let second = ended(&env, second).await;
    assert_eq!(
        (second.status, second.attempt),
        (JobStatus::Succeeded, 1),
        "{second:#?}"
    );
}

/// An attempt past its kind's time limit (`KEEL_JOB_TIMEOUTS`) is stopped and counts as a
/// retryable failure; its slot is free at once: on a one-slot worker another job runs while the
/// receiver would still be holding the delivery, and the last attempt ends the job.
#[tokio::test]
async fn an_attempt_past_its_time_limit_is_stopped_and_frees_the_slot() {
    let env = TestEnv::with(|s| s.job_timeouts = Some("webhook.deliver=300".into())).await;
    env.spawn_worker(|c| {
        c.concurrency = 1;
        c.prefetch = Some(0);
    });
    let (_, key, _) = env.tenant("acme").await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(secs(30)))
        .mount(&receiver)
        .await;
    let mut body = webhook(&receiver.uri(), json!({}));
    body["max_attempts"] = json!(2);
    let slow = env.submit_ok(&key, body).await;
    env.wait_status(slow, JobStatus::Running, secs(10)).await;
    let other = env.submit_ok(&key, noop(1)).await;

    env.wait_status(other, JobStatus::Succeeded, secs(20)).await;
    let slow = env.wait_status(slow, JobStatus::Dead, secs(20)).await;
    assert_eq!(slow.attempt, 2);
    let error = slow.last_error.as_ref().unwrap();
    assert_eq!(
        (&error["kind"], &error["final"]),
        (&json!("exhausted"), &json!(true))
    );
    assert_eq!(
        message(&slow),
        "the attempt ran longer than 300 ms, the time limit of webhook.deliver jobs, and was stopped (KEEL_JOB_TIMEOUTS sets it) (attempt 2 of 2; giving up)"
    );
    assert_eq!(
        receiver.received_requests().await.unwrap().len(),
        2,
        "each attempt was sent"
    );
}

/// Every log line of this test binary, as text.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        logs
    })
}

/// The captured logs once they contain `needle` (the line may follow the ledger's change).
async fn logs_once(logs: &Mutex<Vec<u8>>, needle: &str) -> String {
    let deadline = Instant::now() + secs(10);
    loop {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the logs: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A webhook URL's path (where chat webhooks keep their secret) reaches neither `last_error`
/// nor the logs: errors name `scheme://host:port/…`.
#[tokio::test]
async fn a_failed_delivery_names_its_destination_without_the_path() {
    let logs = captured_logs();
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    // Nothing listens there: the connection is refused.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/services/T0/B0/hook-secret-5ae1");
    let mut body = webhook(&url, json!({}));
    body["max_attempts"] = json!(1);
    let id = env.submit_ok(&key, body).await;
    let job = env.wait_status(id, JobStatus::Dead, secs(20)).await;
    let message = message(&job);
    assert!(
        message.starts_with(&format!("delivery to http://127.0.0.1:{port}/… failed: ")),
        "{message}"
    );
    assert!(!message.contains("hook-secret-5ae1"), "{message}");
    // Logged just after the job's row is written.
    let logs = logs_once(logs, "job dead").await;
    assert!(logs.contains(&format!("127.0.0.1:{port}/…")), "{logs}");
    assert!(!logs.contains("hook-secret-5ae1"), "{logs}");
}

/// Text from a tenant's Jira (its error messages) is logged escaped: a newline in it cannot
/// start a forged log line.
#[tokio::test]
async fn text_from_a_tenants_jira_cannot_forge_log_lines() {
    let logs = captured_logs();
    let env = TestEnv::new().await;
    let fake = Fake::new();
    let forged = "FORGED-7c1d level=ERROR admin token leaked";
    let routes = jira_routes().route(
        "/rest/api/3/search/jql",
        post(move || async move {
            Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"errorMessages": [format!("bad query\n{forged}")]}).to_string(),
                ))
                .unwrap()
        }),
    );
    let base = serve(routes, &fake).await;
    let key = tenant_on(&env, &base).await;
    env.spawn_worker(|_| {});
    let id = analyze(&env, &key, "portfolio", json!({"jql": "project = ED"})).await;
    let job = ended(&env, id).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert!(message(&job).contains(forged), "the tenant still reads it");
    let logs = logs_once(logs, "job dead").await;
    assert!(logs.contains(&format!("bad query\\n{forged}")), "{logs}");
    for line in logs.lines() {
        assert!(!line.starts_with("FORGED-7c1d"), "a forged line: {line}");
    }
}
