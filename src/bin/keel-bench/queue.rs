//! `KEEL_BENCH_MODE=queue`: the Redis fast lane alone (XADD / XREADGROUP / XACK+XDEL), run
//! the way the real worker runs it, minus the ledger:
//! - the fetch loop reads, on a blocking connection of its own, as many entries as there are
//!   free handler slots (at least one), so `CONC` handlers are in flight at most;
//! - each handler runs on a task of its own and frees its slot when it returns;
//! - acks go to a batcher on another connection (as the worker's completions do): whatever
//!   finished while the previous `XACK`+`XDEL` was under way goes into the next one.
//!
//! Reading, running and acking thus overlap instead of taking turns.

use std::sync::Arc;
use std::time::Duration;

use keel::settings::Settings;
use keel_jobs::lane::{Lane, GROUP};
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{now_ns, payload, record};

/// The one queue the benchmark uses.
const QUEUE: &str = "default";
/// Largest ack batch.
const MAX_ACKS: usize = 512;

/// One awaited `XADD` per job, as the protocol asks.
pub async fn enqueue(lane: &Lane, conn: &mut MultiplexedConnection, n: u64, ts: Option<u128>) {
    redis::cmd("XADD")
        .arg(lane.stream_key(QUEUE))
        .arg("*")
        .arg("p")
        .arg(payload(n, ts).to_string())
        .query_async::<String>(conn)
        .await
        .expect("XADD");
}

/// Runs `conc` handlers at most until `stop` fires, then lets the last ones finish and acks them.
pub async fn work(s: &Settings, conc: usize, stop: CancellationToken) {
    let lane = Lane::connect(&s.redis_url, &s.redis_prefix, usize::MAX)
        .await
        .expect("redis");
    let queues = [QUEUE.to_string()];
    lane.ensure_groups(&queues).await.expect("consumer group");
    let mut conn = lane
        .blocking_connection(Duration::from_millis(200))
        .await
        .expect("redis");
    let (acks, acks_rx) = mpsc::unbounded_channel();
    // The lane's own connection, as the worker's completions use it: the reads block on another.
    let acker = tokio::spawn(ack_batches(acks_rx, lane.clone()));
    let consumer = keel_worker::config::default_consumer_name();
    let slots = Arc::new(Semaphore::new(conc));
    let handlers = TaskTracker::new();
    while !stop.is_cancelled() {
        // Every slot free now, and at least one.
        let Ok(mut free) = slots.clone().acquire_owned().await else {
            break;
        };
        let more = slots.available_permits() as u32;
        if let Ok(p) = slots.clone().try_acquire_many_owned(more) {
            free.merge(p);
        }
        let reply: redis::Value = match redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(free.num_permits())
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg(lane.stream_key(QUEUE))
            .arg(">")
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                // A flushed Redis loses the group: make it again.
                if e.code() == Some("NOGROUP") {
                    let _ = lane.ensure_groups(&queues).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for (id, body) in entries_of(reply) {
            let slot = free.split(1).expect("one slot per entry read");
            let acks = acks.clone();
            handlers.spawn(async move {
                let start = now_ns();
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let ts = v["ts"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                record(start, now_ns(), ts);
                let _ = acks.send(id);
                drop(slot);
            });
        }
    }
    handlers.close();
    handlers.wait().await;
    drop(acks);
    let _ = acker.await;
}

/// Acks and deletes finished entries, one pipelined round trip per batch ([`Lane::ack`]).
async fn ack_batches(mut rx: mpsc::UnboundedReceiver<String>, lane: Lane) {
    let mut ids = Vec::with_capacity(MAX_ACKS);
    while rx.recv_many(&mut ids, MAX_ACKS).await > 0 {
        let _ = lane.ack(QUEUE, &ids).await;
        ids.clear();
    }
}

/// `(entry id, payload)` of each entry in an `XREADGROUP` reply.
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
