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

use keel_jobs::lane::Lane;
use keel_models::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Largest batch one round trip dispatches.
const BATCH: usize = 1000;

pub struct Relay {
    pool: PgPool,
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

    /// Makes sure each queue's consumer group exists. When one had to be re-created after this
    /// process had seen it, Redis lost its data: every waiting row is dispatched again at once.
    pub async fn ensure_groups(&self) -> Result<(), redis::RedisError> {
        let seen = self.seen_groups.load(Ordering::SeqCst);
        for queue in &self.queues {
            let created = self.lane.ensure_group(queue).await?;
            if created && seen {
                match keel_models::job::forget_dispatches(&self.pool, queue).await {
                    Ok(n) => tracing::warn!(
                        queue,
                        rows = n,
                        "Redis lost the queue; re-dispatching from the ledger"
                    ),
                    Err(e) => tracing::warn!(queue, error = %e, "could not reset dispatches"),
                }
            }
        }
        self.seen_groups.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// One pass over every queue. Returns how many ids were pushed.
    pub async fn tick(&self) -> Result<usize, RelayError> {
        self.tick_until(&CancellationToken::new()).await
    }

    /// [`Self::tick`] that stops between batches once `stop` fires: a pass over a deep backlog
    /// is several batches, and a stopping worker should not go on filling Redis for it.
    async fn tick_until(&self, stop: &CancellationToken) -> Result<usize, RelayError> {
        self.ensure_groups().await?;
        let mut pushed = 0;
        for queue in &self.queues {
            if stop.is_cancelled() {
                break;
            }
            loop {
                let len = self.lane.len(queue).await?;
                let room = self.lane.window().saturating_sub(len).min(BATCH);
                if room == 0 {
                    break;
                }
                let mut tx = self.pool.begin().await?;
                let ids = keel_models::job::claim_for_dispatch(
                    &mut tx,
                    queue,
                    self.redispatch_after,
                    room as i64,
                )
                .await?;
                if ids.is_empty() {
                    break;
                }
                // Stamp and commit first, push after: a worker that reads an id at once must
                // find its row unlocked (pushing inside the transaction made every fast worker
                // wait on the relay's row locks). If the push fails, the stamp is cleared so the
                // next tick retries; if even that fails, `redispatch_after` covers it.
                keel_models::job::mark_dispatched(&mut tx, &ids).await?;
                tx.commit().await?;
                if let Err(e) = self.lane.push_many(queue, &ids).await {
                    if let Err(clear) =
                        keel_models::job::set_dispatched(&self.pool, &ids, false).await
                    {
                        tracing::warn!(error = %clear, "could not clear dispatch stamps; rows wait for redispatch_after");
                    }
                    return Err(e.into());
                }
                pushed += ids.len();
                if ids.len() < room || stop.is_cancelled() {
                    break;
                }
            }
        }
        Ok(pushed)
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
