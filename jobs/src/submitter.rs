//! Group commit for standalone submits: concurrent `POST /api/jobs` requests that carry no
//! business rows of their own are inserted together, one `INSERT … SELECT FROM UNNEST` and one
//! commit per batch, then the new ids are pushed to Redis in one round trip per queue
//! ([`enqueue::dispatch_many_after_commit`]). Each caller gets its own answer once its row
//! committed, so a 202 keeps meaning "durable"; the push follows the answers (it is best effort
//! anyway: a row whose push never happens is pushed again by the relay), so a request never
//! waits on Redis, even when Redis is down.
//!
//! Batches form by themselves: whatever arrived while earlier batches were committing goes into
//! the next one, and at most [`IN_FLIGHT`] batches commit at once. An idle API sends a batch of
//! one at once (no timer, no added latency). If a batch fails, its rows are retried one by one
//! so a bad row fails only its own request.

use std::sync::Arc;

use keel_models::held::Held;
use keel_models::job::{self, Inserted, NewJob};
use keel_models::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::task::TaskTracker;

use crate::enqueue;
use crate::lane::Lane;

/// Largest batch.
const MAX_BATCH: usize = 256;
/// Batches committing at once (each holds one pooled connection). Two, not more: with fewer
/// batches in flight each is larger, and Postgres's cost per row falls. `bench-http.sh` with 8
/// connections: 3,513–3,784 submits/s with 4, 4,738 with 3, 5,626–5,628 with 2, 5,317 with 1
/// (the one batch's commit then waits alone).
const IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<sqlx::Result<Inserted>>;

/// Handle to the batching task; cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    tx: mpsc::Sender<(NewJob, Reply)>,
    pool: PgPool,
    lane: Lane,
    /// Batches committing or pushing, so a stopping API can let their pushes finish.
    batches: TaskTracker,
}

impl Submitter {
    /// Spawns the batching task on the current Tokio runtime. It inserts through connections
    /// of its own that plan the batch statement once and skip the pool's pings ([`Held`]).
    pub fn spawn(pool: PgPool, lane: Lane) -> Self {
        let held = Held::generic_plans(&pool, IN_FLIGHT);
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let batches = TaskTracker::new();
        tokio::spawn(run(rx, pool.clone(), held, lane.clone(), batches.clone()));
        Self {
            tx,
            pool,
            lane,
            batches,
        }
    }

    /// Waits (up to `limit`) for the batches under way to commit and push: called after the
    /// API stopped taking requests, so the jobs it answered last are in Redis, not left for the
    /// relay's `redispatch_after`.
    pub async fn settle(&self, limit: std::time::Duration) {
        self.batches.close();
        if tokio::time::timeout(limit, self.batches.wait())
            .await
            .is_err()
        {
            tracing::warn!("submit batches still pushing at shutdown; the relay will push them");
        }
    }

    /// For a job its caller committed in a transaction of its own (with business rows): pushes
    /// it to Redis in the background, as the batches do, so the caller answers without waiting
    /// on Redis. [`Self::settle`] waits for these pushes too.
    pub fn dispatch_later(&self, job: &keel_models::job::Job) {
        self.dispatch_all_later(std::iter::once(job));
    }

    /// [`Self::dispatch_later`] for jobs committed together: one push per queue.
    pub fn dispatch_all_later<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a keel_models::job::Job>,
    ) {
        let due: Vec<_> = jobs.into_iter().filter_map(enqueue::to_dispatch).collect();
        if !due.is_empty() {
            let (pool, lane) = (self.pool.clone(), self.lane.clone());
            self.batches.spawn(async move {
                enqueue::dispatch_many_after_commit(&lane, &pool, &due).await;
            });
        }
    }

    /// Inserts the job (durable when this returns); if it is new and due, it is pushed to Redis
    /// right after.
    pub async fn submit(&self, new: NewJob) -> sqlx::Result<Inserted> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((new, reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn stopped() -> sqlx::Error {
    sqlx::Error::Protocol("the submit batcher stopped".into())
}

async fn run(
    mut rx: mpsc::Receiver<(NewJob, Reply)>,
    pool: PgPool,
    held: Held,
    lane: Lane,
    batches: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Wait for a commit slot before collecting, so the batch takes in everything that
        // arrived while the others were committing.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (pool, held, lane) = (pool.clone(), held.clone(), lane.clone());
        batches.spawn(async move {
            commit(&pool, &held, &lane, batch).await;
            drop(permit);
        });
    }
}

async fn commit(pool: &PgPool, held: &Held, lane: &Lane, batch: Vec<(NewJob, Reply)>) {
    let (news, replies): (Vec<NewJob>, Vec<Reply>) = batch.into_iter().unzip();
    let results = match insert(held, &news).await {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(e) if news.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::debug!(error = %e, rows = news.len(), "batched insert failed; inserting one by one");
            let mut each = Vec::with_capacity(news.len());
            for new in &news {
                each.push(
                    insert(held, std::slice::from_ref(new))
                        .await
                        .map(|mut v| v.pop().expect("one answer per row")),
                );
            }
            each
        }
    };
    let due: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Inserted::New(job)) => enqueue::to_dispatch(job),
            _ => None,
        })
        .collect();
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
    enqueue::dispatch_many_after_commit(lane, pool, &due).await;
}

async fn insert(held: &Held, news: &[NewJob]) -> sqlx::Result<Vec<Inserted>> {
    held.run(async |conn| job::insert_batch(conn, news).await)
        .await
}
