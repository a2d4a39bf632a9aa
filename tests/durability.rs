//! Nothing accepted with a 2xx is lost: Redis stopped at submit time, Redis flushed with jobs
//! queued and running, a backlog far larger than Redis is allowed to hold, and every Postgres
//! connection dropped at once.
//! Tests that stop or flush Redis use a private `redis-server`, so parallel tests are unaffected.

mod support;

use std::time::Duration;

use keel_models::job::JobStatus;
use serde_json::json;
use support::*;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_submit_still_returns_202_and_the_job_runs_once_redis_is_back() {
    let mut redis = PrivateRedis::start();
    let env = TestEnv::with_redis(&redis.url(), |_| {}).await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;

    redis.stop();
    let id = env.submit_ok(&key, noop(1)).await;
    // The row committed before the 202; the push after it failed, and the relay knows Redis
    // never got it (the stamp is cleared).
    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Queued);
    env.wait_for(id, secs(5), |j| j.dispatched_at.is_none())
        .await;
    let ready = env.http.get(env.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["details"]["redis"], "unreachable");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.job(id).await.status, JobStatus::Queued);
    redis.restart();
    let done = env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(done.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_with_jobs_queued_and_running_loses_nothing() {
    let redis = PrivateRedis::start();
    let env = TestEnv::with_redis(&redis.url(), |_| {}).await;
    env.spawn_worker(|c| c.concurrency = 2);
    // Work is under way: jobs are running (800 ms each, two at a time) and the rest wait in the
    // stream.
    let (server, ids) = webhooks_under_way(&env, 20, Duration::from_millis(800)).await;
    // (No DBSIZE check: the relay may re-create the stream within milliseconds.)
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");

    for id in &ids {
        let job = env.wait_status(*id, JobStatus::Succeeded, secs(60)).await;
        assert!(job.attempt >= 1);
    }
    // Every job delivered; a job running during the flush may have been delivered again only if
    // its lease expired, which the test's timings do not allow.
    let reqs = server.received_requests().await.unwrap();
    let mut delivered: Vec<String> = reqs
        .iter()
        .map(|r| {
            r.headers
                .get("keel-delivery")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered.len(), ids.len());
    assert_eq!(reqs.len(), ids.len(), "no job delivered twice");
}

/// Redis loses the queue while no worker runs (a restart without persistence during a full
/// deploy): the worker that starts next re-dispatches at once. The rows the API had pushed had
/// waited out `redispatch_after` (60 s by default) for the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_the_queue_while_no_worker_runs_is_noticed_at_the_next_start() {
    let redis = PrivateRedis::start();
    let env = TestEnv::with_redis(&redis.url(), |_| {}).await;
    let (_, key, _) = env.tenant("acme").await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(env.submit_ok(&key, noop(n)).await);
    }
    for id in &ids {
        env.wait_for(*id, secs(10), |j| j.dispatched_at.is_some())
            .await;
    }
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");

    env.spawn_worker(|c| c.redispatch_after = secs(60));
    for id in &ids {
        env.wait_status(*id, JobStatus::Succeeded, secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_queued_jobs_stay_in_postgres_while_redis_holds_a_bounded_window() {
    const TOTAL: usize = 1_000_000;
    const WINDOW: usize = 5_000;
    let env = TestEnv::with(|s| s.redis_window = WINDOW).await;
    let (tenant, _, _) = env.tenant("bulk").await;

    // Load the backlog in batches (what a backfill or a burst of producers would leave behind).
    let batch: Vec<serde_json::Value> = (0..50_000).map(|n| json!({ "n": n })).collect();
    let mut conn = env.keel.pool.acquire().await.unwrap();
    for _ in 0..TOTAL / batch.len() {
        keel_models::job::insert_many(&mut conn, Some(tenant), "noop", "default", 3, &batch)
            .await
            .unwrap();
    }
    drop(conn);
    assert_eq!(env.count_jobs().await, TOTAL as i64);

    let stop = env.spawn_worker(|c| c.concurrency = 16);
    // Work happens, and Redis never holds more than the window.
    let lane = &env.keel.lane;
    let mut max_len = 0;
    let deadline = std::time::Instant::now() + secs(60);
    let mut done = 0i64;
    while std::time::Instant::now() < deadline {
        max_len = max_len.max(lane.len("default").await.unwrap());
        done = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
            .fetch_one(&env.keel.pool)
            .await
            .unwrap();
        if done >= 20_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    assert!(done >= 20_000, "only {done} jobs done");
    assert!(
        max_len <= WINDOW + 16,
        "Redis held {max_len} entries, window {WINDOW}"
    );
}

/// The relay's one statement for all queues: each queue's stream is filled up to its window
/// (rows waiting first, then running rows whose worker died), the queues do not share one room,
/// and what is already in Redis is not pushed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_fills_each_queue_up_to_its_window_waiting_rows_before_orphans() {
    const WINDOW: usize = 5;
    let env = TestEnv::with(|s| s.redis_window = WINDOW).await;
    let (tenant, _, _) = env.tenant("relay").await;
    let pool = &env.keel.pool;
    let args = |n: usize| (0..n).map(|i| json!({ "n": i })).collect::<Vec<_>>();
    let mut conn = pool.acquire().await.unwrap();
    // Two running rows whose lease ran out (their worker died), older than anything waiting.
    keel_models::job::insert_many(&mut conn, Some(tenant), "noop", "default", 3, &args(2))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempt = 1, lease_until = now() - interval '1 second'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    keel_models::job::insert_many(&mut conn, Some(tenant), "noop", "default", 3, &args(7))
        .await
        .unwrap();
    keel_models::job::insert_many(&mut conn, Some(tenant), "noop", "analysis", 3, &args(3))
        .await
        .unwrap();
    drop(conn);

    let worker = env.keel.worker(env.keel.settings.worker_config());
    let relay = worker.relay();
    let lane = &env.keel.lane;
    let dispatched = |status: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE dispatched_at IS NOT NULL AND status::text = $1",
        )
        .bind(status)
        .fetch_one(pool)
        .await
        .unwrap()
    };

    // Each queue up to its own window; the default queue's room goes to waiting rows first.
    assert_eq!(relay.tick().await.unwrap(), WINDOW + 3);
    assert_eq!(lane.len("default").await.unwrap(), WINDOW);
    assert_eq!(lane.len("analysis").await.unwrap(), 3);
    assert_eq!(dispatched("queued").await, WINDOW as i64 + 3);
    assert_eq!(dispatched("running").await, 0);

    // Nothing is pushed twice while Redis holds it, and a full stream takes nothing.
    assert_eq!(relay.tick().await.unwrap(), 0);

    // Workers took the default queue's entries: the two waiting rows left, then the orphans.
    let redis = redis::Client::open(env.keel.settings.redis_url.as_str()).unwrap();
    redis::cmd("XTRIM")
        .arg(lane.stream_key("default"))
        .arg("MAXLEN")
        .arg(0)
        .query_async::<i64>(&mut redis.get_multiplexed_async_connection().await.unwrap())
        .await
        .unwrap();
    assert_eq!(relay.tick().await.unwrap(), 4);
    assert_eq!(lane.len("default").await.unwrap(), 4);
    assert_eq!(dispatched("queued").await, 7 + 3);
    assert_eq!(dispatched("running").await, 2);
    assert_eq!(relay.tick().await.unwrap(), 0);
}

/// Every Postgres connection of Keel dropped at once (a failover, a restart, a proxy recycling
/// its connections): once Postgres is back, the API and the worker go on without a failed
/// request. Before, the first submit on each of the API's held connections answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_goes_on_when_postgres_drops_every_connection() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    // Warm every path's connections: submits, starts, heartbeats, finishes, the relay.
    for n in 0..5 {
        let id = env.submit_ok(&key, noop(n)).await;
        env.wait_status(id, JobStatus::Succeeded, secs(10)).await;
    }

    let dropped = drop_connections(&env).await;
    assert!(dropped >= 3, "only {dropped} connections to drop");
    // The outage's end: connections left idle since are checked before their next use.
    tokio::time::sleep(keel_models::held::PING_AFTER_IDLE + Duration::from_millis(200)).await;

    let mut ids = Vec::new();
    for n in 0..10 {
        let (status, body) = env.submit(&key, noop(100 + n)).await;
        assert_eq!(status, 202, "submit {n} after the drop: {body}");
        ids.push(body["id"].as_str().unwrap().parse().unwrap());
    }
    for id in ids {
        let job = env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
        assert_eq!(job.attempt, 1);
    }
}

/// A held connection Postgres terminated is not given a second statement: the one that met the
/// termination fails (Postgres answered it with FATAL), the next runs on a new connection. And
/// one idle past `PING_AFTER_IDLE` is found dropped before any statement is lost on it.
#[tokio::test]
async fn a_held_connection_postgres_dropped_fails_at_most_one_statement() {
    use keel_models::held::{Held, PING_AFTER_IDLE};
    let env = TestEnv::new().await;
    let held = Held::generic_plans(&env.keel.pool, 1);
    let pid = async || {
        held.run(async |c| {
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                .fetch_one(c)
                .await
        })
        .await
    };
    let first = pid().await.unwrap();
    terminate(&env, first).await;
    // Used again at once: no ping, so this statement may meet the termination (if the machine
    // stalled past PING_AFTER_IDLE, the ping found it and it runs on a new connection)...
    if let Ok(p) = pid().await {
        assert_ne!(p, first);
    }
    // ...but the next one runs on a new connection, not on the dead one.
    let second = pid()
        .await
        .expect("a second statement on the terminated connection");
    assert_ne!(second, first);

    terminate(&env, second).await;
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(200)).await;
    let third = pid().await.expect("the idle connection was not checked");
    assert_ne!(third, second);
}

/// A Postgres host that accepts connections and never answers (a hung server, a half-open
/// path): a held connection's connect gives up after the pool's acquire timeout instead of
/// hanging its request for as long as TCP allows.
#[tokio::test]
async fn a_held_connection_to_a_silent_host_gives_up_after_the_acquire_timeout() {
    use keel_models::held::Held;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accepts and holds every connection, saying nothing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with(opts);
    let held = Held::generic_plans(&pool, 1);
    let answer = tokio::time::timeout(
        secs(10),
        held.run(async |c| sqlx::query("SELECT 1").execute(c).await),
    )
    .await
    .expect("the connect to a silent host never gave up");
    assert!(
        matches!(answer, Err(sqlx::Error::PoolTimedOut)),
        "{answer:?}"
    );
    holder.abort();
}

/// A TCP proxy to the local Postgres that can go silent: it then keeps every connection open
/// and forwards nothing, as a partitioned host does (no RST, no answer).
struct SilencingProxy {
    port: u16,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilencingProxy {
    async fn start() -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, a) = (silent.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, SeqCst);
                let server = tokio::net::TcpStream::connect("127.0.0.1:5432")
                    .await
                    .unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [(cr, sw), (sr, cw)].map(|(r, w)| {
                    (
                        Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        w,
                    )
                }) {
                    let s = s.clone();
                    pipes.spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf).await {
                            while s.load(SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        Self {
            port,
            silent,
            accepted,
            task,
        }
    }

    fn silence(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }

    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SilencingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A held connection whose host goes silent mid-statement (a partition, a failover that moved
/// the address): the statement fails as unavailable at the deadline and its connection is
/// closed, instead of the path waiting as long as TCP retransmits (about 15 minutes). A
/// statement Postgres is merely slow on is cancelled by Postgres itself just before.
#[tokio::test]
async fn a_statement_on_a_host_gone_silent_fails_at_its_deadline() {
    use keel_models::held::Held;
    let proxy = SilencingProxy::start().await;
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(proxy.port)
        .username("postgres")
        .database("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(secs(5))
        .connect_lazy_with(opts);
    let held = Held::generic_plans(&pool, 1).with_deadline(Duration::from_millis(1_500));
    let select = async || {
        tokio::time::timeout(
            secs(20),
            held.run(async |c| sqlx::query("SELECT 1").execute(c).await),
        )
        .await
        .expect("the statement never gave up")
    };
    select().await.unwrap();
    assert_eq!(proxy.connections(), 1);

    // Slow but answering: Postgres cancels the statement at four fifths of the deadline.
    let slow = held
        .run(async |c| sqlx::query("SELECT pg_sleep(5)").execute(c).await)
        .await
        .unwrap_err();
    assert_eq!(
        slow.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("57014"),
        "{slow:?}"
    );
    assert!(keel_models::db::is_unavailable(&slow));
    select().await.unwrap();
    assert_eq!(
        proxy.connections(),
        2,
        "a cancelled statement's connection is renewed"
    );

    // Silent, on the connection just used (not idle long enough to be pinged first).
    proxy.silence(true);
    let lost = select().await.unwrap_err();
    assert!(
        matches!(&lost, sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{lost:?}"
    );
    assert!(keel_models::db::is_unavailable(&lost));

    // The host is back: the next statement runs on a new connection.
    proxy.silence(false);
    select().await.unwrap();
    assert_eq!(proxy.connections(), 3);
}

/// The API's reads and key look-ups go through sqlx's pool, which has no deadline once a
/// statement is sent: with the database host silent, a request answered only when TCP gave up
/// (about 15 minutes). It now answers 503 at its deadline, and the API serves again once the
/// host answers.
///
/// Multi-threaded because the proxy runs on the test's runtime and the env's cleanup (its
/// database dropped through the proxy) blocks the thread it is dropped on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_a_silent_database_answers_503_at_its_deadline() {
    let proxy = SilencingProxy::start().await;
    let port = proxy.port;
    let env = TestEnv::with(|s| {
        s.database_url = s.database_url.replace(":5432/", &format!(":{port}/"));
        s.api_request_timeout_ms = 1_000;
    })
    .await;
    let (_, key, _) = env.tenant("acme").await;
    let id = env.submit_ok(&key, noop(1)).await;
    let get = || {
        let request = env
            .http
            .get(env.url(&format!("/api/jobs/{id}")))
            .bearer_auth(&key)
            .send();
        async {
            tokio::time::timeout(secs(20), request)
                .await
                .expect("the request never answered")
                .unwrap()
        }
    };
    assert_eq!(get().await.status(), 200);

    proxy.silence(true);
    let resp = get().await;
    let retry_after = resp.headers().get("retry-after").cloned();
    let (status, body) = read(resp).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(body["error"]["details"]["deadline_ms"], 1_000, "{body}");
    assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));

    // A long poll gets its wait on top: still cut off, at 1 s + 1 s.
    let (status, body) = read(
        env.http
            .get(env.url(&format!("/api/jobs/{id}?wait=1")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["details"]["deadline_ms"], 2_000, "{body}");

    proxy.silence(false);
    let mut status = 0;
    for _ in 0..100 {
        status = get().await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the API serves again once the host answers");
}

/// Postgres refusing every connection: requests answer 503 `unavailable` with `Retry-After`
/// (it had been an opaque 500), nothing is accepted, and Keel serves again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_refuses_connections_requests_answer_503_and_nothing_is_accepted() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let outage = Outage::begin(&env).await;
    tokio::time::sleep(keel_models::held::PING_AFTER_IDLE + Duration::from_millis(200)).await;

    let resp = env
        .http
        .post(env.url("/api/jobs"))
        .bearer_auth(&key)
        .json(&noop(1))
        .send()
        .await
        .unwrap();
    let retry_after = resp.headers().get("retry-after").cloned();
    let (status, body) = read(resp).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(
        body["error"]["details"]["postgres"], "unavailable",
        "{body}"
    );
    assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
    let (status, body) = env
        .call(reqwest::Method::GET, "/api/jobs", &key, None)
        .await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = read(env.http.get(env.url("/ready")).send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"]["details"]["postgres"], "unreachable",
        "{body}"
    );
    assert_eq!(body["error"]["details"]["redis"], "ok", "{body}");

    outage.end().await;
    assert_eq!(env.count_jobs().await, 0, "a refused submit was accepted");
    let id = env.submit_ok(&key, noop(2)).await;
    assert_eq!(env.job(id).await.status, JobStatus::Queued);
}

/// A Postgres outage while jobs run and wait in Redis: the worker neither dies nor drops them.
/// Starts and finishes fail while it lasts; once Postgres is back, every job ends `succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_running_and_waiting_through_a_postgres_outage_all_finish() {
    let env = TestEnv::new().await;
    env.spawn_worker(|c| c.concurrency = 2);
    let (_server, ids) = webhooks_under_way(&env, 8, Duration::from_millis(500)).await;

    let outage = Outage::begin(&env).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    outage.end().await;

    for id in &ids {
        env.wait_status(*id, JobStatus::Succeeded, secs(60)).await;
    }
}

/// The test's database refusing connections, every one it had dropped, until [`Outage::end`].
struct Outage {
    admin: sqlx::PgConnection,
    db: String,
}

impl Outage {
    async fn begin(env: &TestEnv) -> Self {
        let mut outage = Outage {
            admin: server_connection(env).await,
            db: env.db.clone(),
        };
        outage.allow(false).await;
        drop_connections(env).await;
        outage
    }

    async fn end(mut self) {
        self.allow(true).await;
    }

    async fn allow(&mut self, yes: bool) {
        use sqlx::Executor;
        let sql = format!(r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS {yes}"#, self.db);
        self.admin.execute(sql.as_str()).await.unwrap();
    }
}

/// `n` webhook jobs of a new tenant to a receiver answering 200 after `delay`, submitted, and
/// work on them begun: the first has left `queued` (not "is running": on a loaded machine it
/// may already have finished).
async fn webhooks_under_way(env: &TestEnv, n: usize, delay: Duration) -> (MockServer, Vec<Uuid>) {
    let (_, key, _) = env.tenant("acme").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(delay))
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            env.submit_ok(&key, webhook(&server.uri(), json!({ "i": i })))
                .await,
        );
    }
    env.wait_for(ids[0], secs(10), |j| j.status != JobStatus::Queued)
        .await;
    (server, ids)
}

/// Terminates every connection to the test's database, each gone before it answers how many.
async fn drop_connections(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
         WHERE datname = $1) AS t",
    )
    .bind(&env.db)
    .fetch_one(&mut server_connection(env).await)
    .await
    .unwrap()
}

/// A connection to the server's `postgres` database, outside the test's own.
async fn server_connection(env: &TestEnv) -> sqlx::PgConnection {
    use sqlx::Connection;
    let server = (*env.keel.pool.connect_options())
        .clone()
        .database("postgres");
    sqlx::PgConnection::connect_with(&server).await.unwrap()
}

/// Terminates one backend and waits until it is gone.
async fn terminate(env: &TestEnv, pid: i32) {
    let gone: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert!(gone, "backend {pid} still running");
}
