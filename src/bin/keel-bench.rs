//! `keel-bench`: Keel's adapter for the side-by-side queue benchmark in `../shared/peers`
//! (protocol in its README). Not part of the product; see README § Benchmarks.
//!
//! `KEEL_BENCH_MODE=durable` (default): the full spine — every job is a Postgres row committed
//! through the API's submit path (the group-commit submitter; one awaited submit per job, so
//! each commits alone) and pushed to Redis; workers run the real `Worker` (guarded start and
//! finish in the ledger, relay, heartbeats), so each job's status and result are durable.
//! `KEEL_BENCH_MODE=queue`: the Redis fast lane alone (XADD / XREADGROUP / XACK+XDEL), i.e.
//! what Keel's queue path costs without the ledger.
//!
//! `keel-bench enqueue N` | `keel-bench produce RATE SECS` | `keel-bench work CONC`
#![forbid(unsafe_code)]

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

async fn keel() -> Keel {
    let registry = keel_jobs::builtin_registry()
        .register::<BenchNoop>()
        .expect("distinct kind names");
    Keel::connect_with_registry(settings(), true, registry)
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

async fn enqueue_queue(
    lane: &Lane,
    conn: &mut redis::aio::MultiplexedConnection,
    n: u64,
    ts: Option<u128>,
) {
    redis::cmd("XADD")
        .arg(lane.stream_key("default"))
        .arg("*")
        .arg("p")
        .arg(payload(n, ts).to_string())
        .query_async::<String>(conn)
        .await
        .expect("XADD");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = std::env::var("KEEL_BENCH_MODE").unwrap_or_else(|_| "durable".into());
    let queue_mode = mode == "queue";
    let cmd = args.get(1).map(String::as_str).unwrap_or("");
    let a: f64 = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let b: f64 = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s = settings();
    match cmd {
        "enqueue" | "produce" => {
            let (total, rate) = if cmd == "enqueue" {
                (a as u64, None)
            } else {
                ((a * b) as u64, Some(a))
            };
            let k = if queue_mode { None } else { Some(keel().await) };
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
                    _ => enqueue_queue(&lane, &mut conn, i, ts).await,
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
                work_queue(&s, conc, stop).await;
            } else {
                let k = keel().await;
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

/// The fast lane alone: read up to `conc` entries, run them concurrently, ack them in one pipeline.
async fn work_queue(s: &Settings, conc: usize, stop: CancellationToken) {
    let lane = Lane::connect(&s.redis_url, &s.redis_prefix, usize::MAX)
        .await
        .expect("redis");
    let mut conn = lane
        .blocking_connection(Duration::from_millis(200))
        .await
        .unwrap();
    let client = redis::Client::open(s.redis_url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let consumer = keel_worker::config::default_consumer_name();
    while !stop.is_cancelled() {
        let _ = lane.ensure_groups(&["default".to_string()]).await;
        let reply: redis::Value = match redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keel_jobs::lane::GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(conc)
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg(lane.stream_key("default"))
            .arg(">")
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let entries = entries_of(reply);
        if entries.is_empty() {
            continue;
        }
        let mut ids = Vec::with_capacity(entries.len());
        let handles: Vec<_> = entries
            .into_iter()
            .map(|(id, body)| {
                ids.push(id);
                tokio::spawn(async move {
                    let start = now_ns();
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let ts = v["ts"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                    record(start, now_ns(), ts);
                })
            })
            .collect();
        for h in handles {
            let _ = h.await;
        }
        let key = lane.stream_key("default");
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&key)
            .arg(keel_jobs::lane::GROUP)
            .arg(&ids)
            .ignore();
        pipe.cmd("XDEL").arg(&key).arg(&ids).ignore();
        let _ = pipe.query_async::<()>(&mut raw).await;
    }
}

fn entries_of(reply: redis::Value) -> Vec<(String, String)> {
    use redis::Value as V;
    let s = |v: &V| match v {
        V::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        V::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    let mut out = Vec::new();
    if let V::Array(streams) = reply {
        for st in streams {
            if let V::Array(kv) = st {
                if let Some(V::Array(entries)) = kv.get(1) {
                    for e in entries {
                        if let V::Array(parts) = e {
                            if let (Some(id), Some(V::Array(fields))) =
                                (parts.first(), parts.get(1))
                            {
                                let body = fields.get(1).map(s).unwrap_or_default();
                                out.push((s(id), body));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}
