//! Test support: every test gets its own Postgres database and its own Redis key prefix, boots
//! the real API (port 0) and, when it wants one, a real worker — in-process, or as a `keel`
//! child process when the test must kill it. Cleanup runs on drop, also after a failed test.
#![allow(dead_code)]

pub mod stripe;
pub mod subscriptions;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel::settings::Settings;
use keel::startup::Keel;
use keel_models::job::{Job, JobStatus};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A response's status and body: JSON, or `{"__raw": text}` when the body is not JSON.
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "__raw": text }));
    (status, body)
}

pub const ADMIN: &str = "test-admin-token-0123456789";

/// Timings short enough for tests, long enough for a loaded 2-core CI machine.
pub fn test_settings(db: &str, prefix: &str, redis_url: &str) -> Settings {
    Settings {
        database_url: format!("postgres://postgres@127.0.0.1:5432/{db}"),
        database_max_connections: 10,
        redis_url: redis_url.to_string(),
        redis_prefix: prefix.to_string(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(SecretString::from(ADMIN)),
        allow_private_networks: true,
        worker_concurrency: 8,
        worker_lease_ms: 2_000,
        worker_heartbeat_ms: 200,
        worker_block_ms: 500,
        worker_shutdown_timeout_ms: 5_000,
        relay_interval_ms: 100,
        redispatch_after_ms: 3_000,
        backoff_base_ms: 100,
        backoff_cap_ms: 1_000,
        // Test tenants are on the free plan; quotas and request rates are switched on by the
        // tests that are about them (tests/metering.rs).
        metering: false,
        rate_limits: false,
        ..Settings::default()
    }
}

pub struct TestEnv {
    pub keel: Keel,
    pub db: String,
    pub prefix: String,
    pub base: String,
    /// `http://addr` of `/metrics` when the settings give it an address of its own.
    pub metrics_base: Option<String>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    children: Vec<Child>,
    /// The in-process API and workers, so cleanup can wait for them to stop before the last
    /// purge: both push to Redis.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl TestEnv {
    /// A fresh database and prefix, with the API running (no worker).
    pub async fn new() -> Self {
        Self::with_redis("redis://127.0.0.1:6379", |_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::with_redis("redis://127.0.0.1:6379", tweak).await
    }

    pub async fn with_redis(redis_url: &str, tweak: impl FnOnce(&mut Settings)) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let db = format!("keel_test_{}", &id[..16]);
        let prefix = format!("keel-test-{}", &id[..16]);
        let mut settings = test_settings(&db, &prefix, redis_url);
        tweak(&mut settings);
        let keel = Keel::connect(settings, true)
            .await
            .expect("test services reachable");
        let shutdown = CancellationToken::new();
        let api = keel.api().await.expect("bind API");
        let base = format!("http://127.0.0.1:{}", api.port());
        let metrics_base = api.metrics_addr().map(|a| format!("http://{a}"));
        let stop = shutdown.clone();
        let api = tokio::spawn(async move {
            let _ = api.run_until_stopped(stop).await;
        });
        Self {
            keel,
            db,
            prefix,
            base,
            metrics_base,
            http: reqwest::Client::new(),
            shutdown,
            children: Vec::new(),
            tasks: std::sync::Mutex::new(vec![api]),
        }
    }

    /// Starts an in-process worker with the env's settings (tweakable).
    pub fn spawn_worker(
        &self,
        tweak: impl FnOnce(&mut keel_worker::WorkerConfig),
    ) -> CancellationToken {
        let mut config = self.keel.settings.worker_config();
        tweak(&mut config);
        let worker = self.keel.worker(config);
        let stop = self.shutdown.child_token();
        let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
        self.tasks.lock().unwrap().push(handle);
        stop
    }

    /// Environment for a `keel` child process pointing at this test's database and prefix.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let s = &self.keel.settings;
        vec![
            ("DATABASE_URL".into(), s.database_url.clone()),
            ("REDIS_URL".into(), s.redis_url.clone()),
            ("KEEL_REDIS_PREFIX".into(), s.redis_prefix.clone()),
            ("KEEL_ADMIN_TOKEN".into(), ADMIN.into()),
            ("KEEL_ALLOW_PRIVATE_NETWORKS".into(), "true".into()),
            ("KEEL_WORKER_LEASE_MS".into(), s.worker_lease_ms.to_string()),
            (
                "KEEL_WORKER_HEARTBEAT_MS".into(),
                s.worker_heartbeat_ms.to_string(),
            ),
            ("KEEL_WORKER_BLOCK_MS".into(), s.worker_block_ms.to_string()),
            (
                "KEEL_WORKER_SHUTDOWN_TIMEOUT_MS".into(),
                s.worker_shutdown_timeout_ms.to_string(),
            ),
            (
                "KEEL_RELAY_INTERVAL_MS".into(),
                s.relay_interval_ms.to_string(),
            ),
            (
                "KEEL_REDISPATCH_AFTER_MS".into(),
                s.redispatch_after_ms.to_string(),
            ),
            ("KEEL_BACKOFF_BASE_MS".into(), s.backoff_base_ms.to_string()),
            ("KEEL_BACKOFF_CAP_MS".into(), s.backoff_cap_ms.to_string()),
            ("RUST_LOG".into(), "info".into()),
        ]
    }

    /// Starts `keel worker` as a child process; returns its pid.
    pub fn spawn_worker_process(&mut self, extra: &[(&str, &str)]) -> u32 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.child_env())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn keel worker");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Sends `signal` (e.g. "KILL", "TERM") to a child started by this env.
    pub fn signal(&mut self, pid: u32, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }

    /// Waits for a child to exit; returns its exit status.
    pub async fn wait_child(&mut self, pid: u32, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let child = self
                .children
                .iter_mut()
                .find(|c| c.id() == pid)
                .expect("known child");
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {pid} did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a tenant through the admin API; returns (tenant id, api key, signing secret).
    pub async fn tenant(&self, name: &str) -> (Uuid, String, String) {
        let resp = self
            .http
            .post(self.url("/api/tenants"))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        (
            body["id"].as_str().unwrap().parse().unwrap(),
            body["api_key"].as_str().unwrap().to_string(),
            body["signing_secret"].as_str().unwrap().to_string(),
        )
    }

    /// `POST /api/jobs`; returns (status code, body).
    pub async fn submit(&self, key: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/api/jobs"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Submits and expects a 202; returns the job id.
    pub async fn submit_ok(&self, key: &str, body: Value) -> Uuid {
        let (status, body) = self.submit(key, body).await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// `method path` with `Authorization: Bearer key` and, when given, a JSON body; returns the
    /// status and the body ([`read`]).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(body);
        }
        read(req.send().await.unwrap()).await
    }

    /// `POST` with the tenant's key and no body (cancel, retry, …).
    pub async fn post(&self, key: &str, path: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn job(&self, id: Uuid) -> Job {
        keel_models::job::get(&self.keel.pool, id)
            .await
            .unwrap()
            .expect("job exists")
    }

    /// Polls the ledger until `pred` holds (or panics after `limit`, printing the row).
    pub async fn wait_for(&self, id: Uuid, limit: Duration, pred: impl Fn(&Job) -> bool) -> Job {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.job(id).await;
            if pred(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not reach the expected state within {limit:?}: {job:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_status(&self, id: Uuid, status: JobStatus, limit: Duration) -> Job {
        self.wait_for(id, limit, |j| j.status == status).await
    }

    pub async fn count_jobs(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs")
            .fetch_one(&self.keel.pool)
            .await
            .unwrap()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let url = self.keel.settings.database_url.clone();
        let redis_url = self.keel.settings.redis_url.clone();
        let prefix = self.prefix.clone();
        // On a multi-threaded test runtime the in-process API and workers keep running on other
        // threads after the cancellation: a worker drains its in-flight jobs for up to its
        // shutdown timeout, and its relay re-creates the queues' streams on every tick until
        // then. Purge again once they have all stopped (the bound only guards against a hang).
        let others_running = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        // Async cleanup from a sync Drop: a fresh runtime on its own thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    // A new connection: the env's own is driven by the test's runtime, which
                    // is blocked in this drop.
                    if let Ok(lane) = keel_jobs::lane::Lane::connect(&redis_url, &prefix, 1).await {
                        let _ = tokio::time::timeout(Duration::from_secs(5), lane.purge()).await;
                        if others_running {
                            let deadline = Instant::now() + Duration::from_secs(60);
                            while tasks.iter().any(|t| !t.is_finished())
                                && Instant::now() < deadline
                            {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let _ =
                                tokio::time::timeout(Duration::from_secs(5), lane.purge()).await;
                        }
                    }
                    let _ = keel_models::db::drop_database(&url).await;
                })
        })
        .join();
    }
}

/// The URL of a test database that does not exist yet, for tests of what creates one (`keel`
/// processes started on a fresh machine); dropped, if something created it, when this is.
/// For sync tests: the drop runs its own runtime.
pub struct ScratchDatabase {
    pub url: String,
}

impl ScratchDatabase {
    pub fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            url: format!("postgres://postgres@127.0.0.1:5432/keel_test_{}", &id[..16]),
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(keel_models::db::drop_database(&self.url));
    }
}

/// Picks a free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` the test may stop, restart or flush without touching other tests.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = free_port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli on PATH");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The response's `Content-Type` ("" without one).
pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A webhook receiver answering its first POST with `first`, then every other with 200.
pub async fn receiver_answering_once(first: wiremock::ResponseTemplate) -> wiremock::MockServer {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

pub fn noop(n: u64) -> Value {
    json!({ "kind": "noop", "args": { "n": n } })
}

pub fn webhook(url: &str, payload: Value) -> Value {
    json!({ "kind": "webhook.deliver", "args": { "url": url, "event": "test.event", "payload": payload } })
}

/// The ids of `body["jobs"]` (a page of `GET /api/jobs`, an answer of the batch endpoint).
pub fn job_ids(body: &Value) -> Vec<Uuid> {
    body["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs array in {body}"))
        .iter()
        .map(|j| j["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Reads of a table as Postgres counts them, for tests that prove a statement's plan.
#[derive(Debug, Clone, Copy)]
pub struct TableReads {
    pub seq_scans: i64,
    pub index_scans: i64,
    /// Blocks of the table and its indexes touched (from cache or disk).
    pub blocks: i64,
}

/// Fresh statistics for `jobs`, as autovacuum leaves them in production (it is off on some
/// development machines), for tests of plans on a table they have just filled.
pub async fn analyze_jobs(env: &TestEnv) {
    sqlx::query("ANALYZE jobs")
        .execute(&env.keel.pool)
        .await
        .unwrap();
}

/// [`one_connection`] planning its statements as `plan_cache_mode` says (`auto`,
/// `force_generic_plan`), for tests that prove a plan holds under both.
pub async fn one_connection_planning(env: &TestEnv, plan_cache_mode: &str) -> sqlx::PgPool {
    let one = one_connection(env).await;
    sqlx::query(&format!("SET plan_cache_mode = {plan_cache_mode}"))
        .execute(&one)
        .await
        .unwrap();
    one
}

/// A pool of one connection to the test's database, so that what [`jobs_reads`] counts on it
/// are the reads of the statements run through it.
pub async fn one_connection(env: &TestEnv) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*env.keel.pool.connect_options()).clone())
        .await
        .unwrap()
}

/// The counts so far for `jobs`; see [`table_reads`].
pub async fn jobs_reads(conn: &mut sqlx::PgConnection) -> TableReads {
    table_reads(conn, "jobs").await
}

/// The counts so far for `table`. `conn` must be the connection that ran the statements being
/// measured: its pending counts are flushed first (they otherwise reach the shared ones up to
/// seconds later).
pub async fn table_reads(conn: &mut sqlx::PgConnection, table: &str) -> TableReads {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *conn)
        .await
        .unwrap();
    let (seq_scans, index_scans, blocks) = sqlx::query_as(
        "SELECT t.seq_scan, COALESCE(t.idx_scan, 0),
                io.heap_blks_hit + io.heap_blks_read + COALESCE(io.idx_blks_hit + io.idx_blks_read, 0)
         FROM pg_stat_user_tables t JOIN pg_statio_user_tables io USING (relid)
         WHERE t.relname = $1",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    TableReads {
        seq_scans,
        index_scans,
        blocks,
    }
}
