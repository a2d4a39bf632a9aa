//! `keel-bench`: Keel's adapter for the side-by-side queue benchmark in `../shared/peers`
//! (protocol in its README). Not part of the product; see README § Benchmarks.
//!
//! `KEEL_BENCH_MODE=durable` (default): the full spine — every job is a Postgres row committed
//! through the API's submit path (the group-commit submitter; one awaited submit per job, so
//! each commits alone) and pushed to Redis; workers run the real `Worker` (guarded start and
//! finish in the ledger, relay, heartbeats), so each job's status and result are durable.
//! `KEEL_BENCH_MODE=queue`: the Redis fast lane alone (XADD / XREADGROUP / XACK+XDEL), i.e.
//! what Keel's queue path costs without the ledger ([`queue`]).
//!
//! Both run on the runtime `keel` itself uses (`KEEL_THREADS`, default one thread), so
//! `KEEL_THREADS=0 keel-bench …` measures a runtime thread per core.
//!
//! `keel-bench enqueue N` | `keel-bench produce RATE SECS` | `keel-bench work CONC`
#![forbid(unsafe_code)]

mod queue;

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel::settings::Settings;
use keel::startup::Keel;
use keel_jobs::enqueue::{self, Submit};
use keel_jobs::lane::Lane;
use keel_jobs::submitter::Submitter;
use keel_jobs::{Job, JobContext, JobError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One line per job: `start end ts`, each `%020d`, as the protocol asks.
static OUT: Mutex<Option<std::io::BufWriter<std::fs::File>>> = Mutex::new(None);

fn record(start: u128, end: u128, ts: u128) {
    let mut g = OUT.lock().unwrap();
    if let Some(w) = g.as_mut() {
        let _ = writeln!(w, "{start:020} {end:020} {ts:020}");
        // The driver counts progress from file sizes: every line must reach the file.
        let _ = w.flush();
    }
}

fn open_out() {
    let dir = std::env::var("BENCH_OUT").unwrap_or_else(|_| ".".into());
    let path = format!("{dir}/{}.txt", std::process::id());
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open BENCH_OUT file");
    *OUT.lock().unwrap() = Some(std::io::BufWriter::with_capacity(128, f));
}

fn flush_out() {
    if let Some(w) = OUT.lock().unwrap().as_mut() {
        let _ = w.flush();
    }
}

#[derive(Serialize, Deserialize)]
struct BenchNoop {
    #[serde(default)]
    ts: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl Job for BenchNoop {
    const NAME: &'static str = "bench.noop";

    async fn run(self, _ctx: JobContext) -> Result<Value, JobError> {
        let start = now_ns();
        let ts = self.ts.and_then(|t| t.parse().ok()).unwrap_or(0);
        let end = now_ns();
        record(start, end, ts);
        Ok(Value::Null)
    }
}

fn settings() -> Settings {
    let mut s = Settings::load().expect("settings");
    if std::env::var("DATABASE_URL").is_err() {
        s.database_url = "postgres://postgres@127.0.0.1:5432/keel_bench".into();
    }
    s.redis_prefix = std::env::var("KEEL_REDIS_PREFIX").unwrap_or_else(|_| "keelbench".into());
    s
}

async fn keel(s: &Settings) -> Keel {
    let registry = keel_jobs::builtin_registry()
        .register::<BenchNoop>()
        .expect("distinct kind names");
    Keel::connect_with_registry(s.clone(), true, registry)
        .await
        .expect("connect")
}

fn payload(n: u64, ts: Option<u128>) -> Value {
    match ts {
        Some(ts) => json!({"tenant": "t1", "n": n, "ts": ts.to_string()}),
        None => json!({"tenant": "t1", "n": n}),
    }
}

async fn enqueue_durable(k: &Keel, submitter: &Submitter, n: u64, ts: Option<u128>) {
    let submit = Submit {
        kind: BenchNoop::NAME.into(),
        args: payload(n, ts),
        idempotency_key: None,
        run_at: None,
        max_attempts: None,
    };
    let new = enqueue::prepare(&k.registry, &k.services, None, submit).expect("valid");
    // The path `POST /api/jobs` takes: the group-commit submitter answers once the row is
    // committed (durable) and pushes it to Redis right after.
    submitter.submit(new).await.expect("insert");
}

/// On the runtime `keel` itself would use (`KEEL_THREADS`, default one thread).
fn main() {
    let s = settings();
    keel::runtime::build(s.threads)
        .expect("tokio runtime")
        .block_on(run(s));
}

async fn run(s: Settings) {
    let args: Vec<String> = std::env::args().collect();
    let mode = std::env::var("KEEL_BENCH_MODE").unwrap_or_else(|_| "durable".into());
    let queue_mode = mode == "queue";
    let cmd = args.get(1).map(String::as_str).unwrap_or("");
    let a: f64 = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let b: f64 = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    match cmd {
        "enqueue" | "produce" => {
            let (total, rate) = if cmd == "enqueue" {
                (a as u64, None)
            } else {
                ((a * b) as u64, Some(a))
            };
            let k = if queue_mode {
                None
            } else {
                Some(keel(&s).await)
            };
            let submitter = k
                .as_ref()
                .map(|k| Submitter::spawn(k.pool.clone(), k.lane.clone()));
            if let (Some(k), "enqueue") = (&k, cmd) {
                sqlx::query("TRUNCATE jobs CASCADE")
                    .execute(&k.pool)
                    .await
                    .expect("truncate");
            }
            let lane = Lane::connect(&s.redis_url, &s.redis_prefix, usize::MAX)
                .await
                .expect("redis");
            let client = redis::Client::open(s.redis_url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let t0 = Instant::now();
            for i in 0..total {
                let ts = if let Some(rate) = rate {
                    let target = t0 + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(target.into()).await;
                    Some(now_ns())
                } else {
                    None
                };
                match (&k, &submitter) {
                    (Some(k), Some(submitter)) => enqueue_durable(k, submitter, i, ts).await,
                    _ => queue::enqueue(&lane, &mut conn, i, ts).await,
                }
            }
            // Counted: the enqueue is over when the last pushes have reached Redis.
            if let Some(submitter) = &submitter {
                submitter.settle(Duration::from_secs(10)).await;
            }
            let secs = t0.elapsed().as_secs_f64();
            if cmd == "enqueue" {
                println!("{}", json!({"enqueued": total, "seconds": secs}));
            } else {
                println!("{}", json!({"produced": total, "seconds": secs}));
            }
        }
        "work" => {
            let conc = (a as usize).max(1);
            open_out();
            let stop = CancellationToken::new();
            let st = stop.clone();
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .unwrap();
                tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
                st.cancel();
            });
            if queue_mode {
                queue::work(&s, conc, stop).await;
            } else {
                let k = keel(&s).await;
                let mut config = k.settings.worker_config();
                config.concurrency = conc;
                config.shutdown_timeout = Duration::from_secs(2);
                k.worker(config).run_until_stopped(stop).await;
            }
            flush_out();
        }
        _ => {
            eprintln!("usage: keel-bench enqueue N | produce RATE SECS | work CONC");
            std::process::exit(2);
        }
    }
}
