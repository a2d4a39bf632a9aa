//! The relay: Postgres → Redis.
//!
//! Producers push ids to Redis right after commit, but that push is best effort. The relay
//! closes every gap, so that Redis can be stopped, flushed or full without losing a job:
//! - rows never dispatched (Redis was down, the window was full, the job was not due yet);
//! - rows dispatched long ago but never started (Redis lost them: flush, failover, restart);
//! - running rows whose lease expired (their worker died: SIGKILL, OOM, node loss).
//!
//! Each tick locks candidates with `FOR UPDATE SKIP LOCKED` (so relays in many processes split
//! the work), stamps `dispatched_at`, commits, then pushes them in one pipeline. It pushes only
//! while the stream holds fewer than `window` entries, so Redis stays a bounded buffer however
//! large the backlog in Postgres grows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_jobs::lane::{Lane, StreamState};
use keel_models::held::Held;
use keel_models::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Largest batch one round trip dispatches.
const BATCH: usize = 1000;

pub struct Relay {
    pool: PgPool,
    /// The dispatch statement's connection (no pool pings: an idle tick is one round trip).
    conn: Held,
    lane: Lane,
    queues: Vec<String>,
    redispatch_after: Duration,
    reap_idle: Duration,
    consumer: String,
    /// Set once this process has seen each queue's consumer group; a group that must be
    /// created after that means Redis lost its data.
    seen_groups: AtomicBool,
    wake: Notify,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        lane: Lane,
        queues: Vec<String>,
        redispatch_after: Duration,
        reap_idle: Duration,
        consumer: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            conn: Held::custom_plans(&pool, 1),
            pool,
            lane,
            queues,
            redispatch_after,
            reap_idle,
            consumer,
            seen_groups: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// Asks for a tick now (e.g. the fetch loop saw the consumer group vanish).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Makes sure each queue's consumer group exists, and answers how long each queue's stream
    /// is (one round trip). A group that had to be created means Redis may have lost its data
    /// (flushed, restarted without persistence): every waiting row of that queue is dispatched
    /// again at once. Also at this process's start: Redis may have lost the queue while no
    /// worker ran, and rows the API had pushed then waited out `redispatch_after` (60 s) for
    /// the relay. On a new deployment there is nothing to re-dispatch; an id pushed twice is
    /// started once (the start is guarded).
    pub async fn ensure_groups(&self) -> Result<Vec<StreamState>, redis::RedisError> {
        let seen = self.seen_groups.load(Ordering::SeqCst);
        let states = self.lane.ensure_groups(&self.queues).await?;
        for (queue, state) in self.queues.iter().zip(&states) {
            if state.created {
                match keel_models::job::forget_dispatches(&self.pool, queue).await {
                    Ok(n) if seen => tracing::warn!(
                        queue,
                        rows = n,
                        "Redis lost the queue; re-dispatching from the ledger"
                    ),
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        queue,
                        rows = n,
                        "the queue's consumer group was missing at start (Redis lost it, or it is new); re-dispatching from the ledger"
                    ),
                    Err(e) => tracing::warn!(queue, error = %e, "could not reset dispatches"),
                }
            }
        }
        self.seen_groups.store(true, Ordering::SeqCst);
        Ok(states)
    }

    /// One pass over every queue. Returns how many ids were pushed.
    pub async fn tick(&self) -> Result<usize, RelayError> {
        self.tick_until(&CancellationToken::new()).await
    }

    /// [`Self::tick`] that stops between batches once `stop` fires: a pass over a deep backlog
    /// is several batches, and a stopping worker should not go on filling Redis for it.
    ///
    /// Each batch is one call to Redis (groups and stream lengths of every queue) and one
    /// statement in Postgres (every queue's due rows, up to the room its stream has, stamped
    /// and committed), so an idle relay costs two round trips a tick whatever the queues.
    async fn tick_until(&self, stop: &CancellationToken) -> Result<usize, RelayError> {
        let mut pushed = 0;
        loop {
            let states = self.ensure_groups().await?;
            let (queues, rooms): (Vec<String>, Vec<i64>) = self
                .queues
                .iter()
                .zip(&states)
                .map(|(q, s)| {
                    (
                        q.clone(),
                        self.lane.window().saturating_sub(s.len).min(BATCH) as i64,
                    )
                })
                .filter(|(_, room)| *room > 0)
                .unzip();
            if queues.is_empty() {
                return Ok(pushed);
            }
            let after = self.redispatch_after;
            let due = self
                .conn
                .run(async |c| keel_models::job::dispatch_due(c, &queues, &rooms, after).await)
                .await?;
            if due.is_empty() {
                return Ok(pushed);
            }
            // Stamped and committed first, pushed after: a worker that reads an id at once must
            // find its row unlocked (pushing inside the transaction made every fast worker wait
            // on the relay's row locks). If a push fails, the stamps are cleared so the next
            // tick retries; if even that fails, `redispatch_after` covers it.
            let batches: Vec<(&String, i64, Vec<Uuid>)> = queues
                .iter()
                .zip(&rooms)
                .map(|(queue, room)| {
                    let ids = due.iter().filter(|(_, q)| q == queue).map(|(id, _)| *id);
                    (queue, *room, ids.collect())
                })
                .collect();
            let mut full = false;
            for (n, (queue, room, ids)) in batches.iter().enumerate() {
                if let Err(e) = self.lane.push_many(queue, ids).await {
                    let unpushed: Vec<Uuid> = batches[n..]
                        .iter()
                        .flat_map(|(_, _, ids)| ids.clone())
                        .collect();
                    if let Err(clear) =
                        keel_models::job::set_dispatched(&self.pool, &unpushed, false).await
                    {
                        tracing::warn!(error = %clear, "could not clear dispatch stamps; rows wait for redispatch_after");
                    }
                    return Err(e.into());
                }
                pushed += ids.len();
                full |= ids.len() as i64 == *room;
            }
            // A queue filled its room: more may be due behind it.
            if !full || stop.is_cancelled() {
                return Ok(pushed);
            }
        }
    }

    /// Reaps Redis entries whose consumer died (keeps streams bounded; jobs are recovered via
    /// their leases, not via these entries).
    pub async fn reap(&self) -> Result<usize, redis::RedisError> {
        let mut n = 0;
        for queue in &self.queues {
            n += self
                .lane
                .reap_pending(queue, &self.consumer, self.reap_idle)
                .await?;
        }
        Ok(n)
    }

    /// Ticks every `interval` (sooner when woken) until `stop` fires. Errors are logged and
    /// retried with backoff: the relay never gives up while the process runs.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut last_reap = tokio::time::Instant::now();
        loop {
            let delay = match self.tick_until(&stop).await {
                Ok(_) => {
                    if failures > 0 {
                        tracing::info!("relay recovered");
                    }
                    failures = 0;
                    interval
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(50) {
                        tracing::warn!(error = %e, failures, "relay tick failed; retrying");
                    }
                    (interval * failures.min(10)).min(Duration::from_secs(5))
                }
            };
            if last_reap.elapsed() >= self.reap_idle / 4 {
                last_reap = tokio::time::Instant::now();
                if let Err(e) = self.reap().await {
                    tracing::debug!(error = %e, "reaping pending entries failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}
