//! Successes are recorded in batches: every job that finished while the previous batch was being
//! committed goes into the next one — one `UPDATE … WHERE id = ANY(…)` and one commit for all of them,
//! then one pipelined `XACK`+`XDEL`. Under load the batches grow by themselves; when idle a
//! batch is a single job and adds no delay.
//!
//! A job's handler slot is released when the handler returns (the queue here is bounded, so
//! back-pressure still reaches the fetch loop); its lease is kept alive until the batch
//! committed, and a crash between the handler and the commit leaves the row `running`: its
//! lease expires and it runs again (at-least-once; handlers are idempotent).

use std::collections::HashSet;

use keel_jobs::lane::Lane;
use keel_models::held::Held;
use keel_models::PgPool;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Largest batch committed at once.
const MAX_BATCH: usize = 512;

struct Item {
    id: Uuid,
    result: Value,
    /// (queue, stream entry id) to ack once recorded.
    entry: Option<(String, String)>,
    reply: oneshot::Sender<Result<bool, String>>,
}

#[derive(Clone)]
pub struct Completions {
    tx: mpsc::Sender<Item>,
}

impl Completions {
    /// One batch at a time, on a connection of its own ([`Held`]).
    pub fn spawn(pool: &PgPool, lane: Lane) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(rx, Held::generic_plans(pool, 1), lane));
        Self { tx }
    }

    /// Records `running → succeeded` (in the next batch) and acks the entry. `Ok(false)`: another
    /// attempt finished the job first; its result stands.
    pub async fn succeed(
        &self,
        id: Uuid,
        result: Value,
        entry: Option<(String, String)>,
    ) -> Result<bool, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Item {
                id,
                result,
                entry,
                reply,
            })
            .await
            .map_err(|_| "completion batcher stopped".to_string())?;
        rx.await
            .map_err(|_| "completion batcher stopped".to_string())?
    }
}

async fn run(mut rx: mpsc::Receiver<Item>, held: Held, lane: Lane) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        // Same lock order in every batch (and in heartbeats): no deadlocks between processes.
        items.sort_by_key(|i| i.id);
        let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
        let results: Vec<Value> = items.iter().map(|i| i.result.clone()).collect();
        let recorded = held
            .run(async |conn| keel_models::job::succeed_many(conn, &ids, &results).await)
            .await;
        match recorded {
            Ok(applied) => {
                let applied: HashSet<Uuid> = applied.into_iter().collect();
                let entries: Vec<(String, String)> =
                    items.iter().filter_map(|i| i.entry.clone()).collect();
                if let Err(e) = lane.ack_batch(&entries).await {
                    // Harmless: the entries are reaped later; the ledger already decided.
                    tracing::debug!(error = %e, "ack failed");
                }
                for item in items {
                    let _ = item.reply.send(Ok(applied.contains(&item.id)));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = ids.len(), "recording successes failed; the jobs will run again after their lease");
                for item in items {
                    let _ = item.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
