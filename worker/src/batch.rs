//! Successes are recorded in batches: every job that finished while the previous batch was being
//! committed goes into the next one — one `UPDATE … WHERE id = ANY(…)` and one commit for all of them,
//! then one pipelined `XACK`+`XDEL`. Under load the batches grow by themselves; when idle a
//! batch is a single job and adds no delay.
//!
//! A job's handler slot is released when the handler returns, so the next job need not wait for
//! this one's commit; but only while fewer than [`PENDING`] successes wait to be recorded
//! ([`Completions::reserve`]). Past that the job keeps its slot until there is room, so the fetch
//! loop stops starting jobs faster than the ledger records them. (Without the bound, a worker
//! draining a backlog of no-op jobs piled up 2,360 finished jobs waiting here, about 5 KB
//! each.) A crash between the handler and the commit leaves the row `running`: its lease
//! expires and it runs again (at-least-once; handlers are idempotent).

use std::collections::HashSet;
use std::sync::Arc;

use keel_jobs::lane::Lane;
use keel_models::held::Held;
use keel_models::PgPool;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Largest batch committed at once.
const MAX_BATCH: usize = 512;
/// Successes waiting to be recorded, at most: a full batch committing and the next one filling.
pub const PENDING: usize = 2 * MAX_BATCH;

/// Room for one success among the [`PENDING`] ones, taken before the job lets go of its slot.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

struct Item {
    id: Uuid,
    result: Value,
    /// (queue, stream entry id) to ack once recorded.
    entry: Option<(String, String)>,
    reply: oneshot::Sender<Result<bool, String>>,
    /// Released once the batch holding this success is answered.
    _room: Reservation,
}

#[derive(Clone)]
pub struct Completions {
    tx: mpsc::Sender<Item>,
    room: Arc<Semaphore>,
}

impl Completions {
    /// One batch at a time, on a connection of its own ([`Held`]).
    pub fn spawn(pool: &PgPool, lane: Lane) -> Self {
        let (tx, rx) = mpsc::channel(PENDING);
        tokio::spawn(run(rx, Held::generic_plans(pool, 1), lane));
        Self {
            tx,
            room: Arc::new(Semaphore::new(PENDING)),
        }
    }

    /// Waits until fewer than [`PENDING`] successes wait to be recorded.
    pub async fn reserve(&self) -> Reservation {
        let permit = self
            .room
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Reservation { _permit: permit }
    }

    /// Records `running → succeeded` (in the next batch) and acks the entry. `Ok(false)`: another
    /// attempt finished the job first; its result stands.
    pub async fn succeed(
        &self,
        room: Reservation,
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
                _room: room,
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

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use keel_jobs::lane::Lane;
    use keel_models::PgPool;

    use super::{Completions, PENDING};

    /// The bound that keeps a worker draining fast jobs from piling finished ones up in memory
    /// while their batch commits: one success more than [`PENDING`] waits for room (and so,
    /// in the runner, keeps its handler slot) until one of them is recorded.
    #[tokio::test]
    async fn successes_waiting_for_their_batch_are_bounded() {
        // Nothing is recorded here, so neither is ever written to.
        let pool = PgPool::connect_lazy("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        let lane = Lane::connect("redis://127.0.0.1:6379", "keel-test-batch-bound", 10)
            .await
            .unwrap();
        let completions = Completions::spawn(&pool, lane);
        // Polled once each, outside Tokio's cooperative budget (which would make the 129th
        // acquisition in one poll yield however much room is left).
        let reserve_now = || tokio::task::unconstrained(completions.reserve()).now_or_never();
        let mut waiting: Vec<_> = (0..PENDING)
            .map(|_| reserve_now().expect("room left"))
            .collect();
        assert!(reserve_now().is_none());
        waiting.pop();
        assert!(reserve_now().is_some());
    }
}
