//! `GET /api/jobs/{id}?wait=N`: a request that waits up to N seconds for its job to end, so a
//! client learns of the result when it lands instead of polling for it.
//!
//! Requests waiting in this process register here; while any do, one task asks Postgres every
//! [`CHECK_EVERY`] which of their jobs have ended (one primary-key lookup for all of them) and
//! wakes their requests. Nothing is asked of workers, and no state outside this process is
//! kept: a job that ends anywhere is seen within [`CHECK_EVERY`], and with no request waiting
//! the task is not running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_models::PgPool;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the waiting requests' jobs are checked.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The longest wait a request may ask for, in seconds (below common proxy and client timeouts).
pub const MAX_WAIT_SECS: u64 = 30;

/// Requests waiting at once in one process; more answer at once with the job as it is.
const MAX_WAITING: usize = 10_000;

#[derive(Default)]
struct Waiting {
    by_job: HashMap<Uuid, Vec<oneshot::Sender<()>>>,
    checking: bool,
}

impl Waiting {
    /// Requests registered (some may have gone since the last check).
    fn requests(&self) -> usize {
        self.by_job.values().map(Vec::len).sum()
    }
}

/// The requests of this process waiting for their jobs to end; cheap to clone.
#[derive(Clone)]
pub struct JobWaits {
    pool: PgPool,
    waiting: Arc<Mutex<Waiting>>,
    /// Fired when the API shuts down: waiting requests answer at once instead of holding the
    /// shutdown for up to [`MAX_WAIT_SECS`].
    stopping: CancellationToken,
}

impl JobWaits {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            waiting: Arc::default(),
            stopping: CancellationToken::new(),
        }
    }

    /// Answers every waiting request now, and every later one at once.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Waits until job `id` ends or `limit` passes, whichever is first. Returns at once when
    /// this process already has [`MAX_WAITING`] requests waiting, or is shutting down.
    pub async fn until_ended(&self, id: Uuid, limit: Duration) {
        if self.stopping.is_cancelled() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if w.requests() >= MAX_WAITING {
                return;
            }
            w.by_job.entry(id).or_default().push(tx);
            if !w.checking {
                w.checking = true;
                tokio::spawn(self.clone().check());
            }
        }
        // A request that goes away (client gone, wait over) leaves a closed sender behind,
        // which the next check drops.
        tokio::select! {
            _ = tokio::time::timeout(limit, rx) => {}
            _ = self.stopping.cancelled() => {}
        }
    }

    /// Checks the waited-on jobs every [`CHECK_EVERY`] until no request waits.
    async fn check(self) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let ids: Vec<Uuid> = {
                let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                w.by_job.retain(|_, senders| {
                    senders.retain(|s| !s.is_closed());
                    !senders.is_empty()
                });
                if w.by_job.is_empty() {
                    w.checking = false;
                    return;
                }
                w.by_job.keys().copied().collect()
            };
            match keel_models::job::ended_among(&self.pool, &ids).await {
                Ok(ended) => {
                    let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                    for id in ended {
                        for tx in w.by_job.remove(&id).unwrap_or_default() {
                            let _ = tx.send(());
                        }
                    }
                }
                // Waiting requests still end at their limit; the next check tries again.
                Err(e) => tracing::warn!(error = %e, "checking waited-on jobs failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose wait ran out leaves nothing behind: the check drops its closed sender
    /// (without asking Postgres, which this pool cannot reach) and stops once none is left.
    #[tokio::test]
    async fn a_wait_that_ends_leaves_no_waiter_and_stops_the_check() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let waits = JobWaits::new(pool);
        waits
            .until_ended(Uuid::now_v7(), Duration::from_millis(10))
            .await;
        let state = || {
            let w = waits.waiting.lock().unwrap();
            (w.by_job.len(), w.requests(), w.checking)
        };
        for _ in 0..100 {
            if state() == (0, 0, false) {
                break;
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
        assert_eq!(state(), (0, 0, false));
    }
}
