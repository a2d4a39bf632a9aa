//! Starting jobs ahead of a free slot.
//!
//! Without it, a slot that frees up waits for a read from Redis and a guarded start in Postgres
//! before its next handler runs; with short jobs and few slots that round trip, not the jobs, is
//! the bound (the durable drain at concurrency 8 ran at half the speed of concurrency 16). So the
//! fetch loop may also read and start up to `prefetch` jobs while every slot is busy, and each
//! of those waits, started and heartbeated, for the first slot that frees up (the semaphore is
//! fair, so in the order they were started).
//!
//! What it costs, and how it is bounded:
//! - A job started ahead shows `running` (its attempt counted) while it waits; if the worker
//!   dies, the attempt is spent like a running job's, so at most `prefetch` extra jobs per crash.
//! - A worker only starts ahead while its handlers are short: while the running average of its
//!   handler times is under a tenth of `prefetch_wait` ([`Pace`]). Workers busy with long jobs
//!   (Jira analyses) leave the backlog to idle workers.
//! - Nor before as many handlers as it has slots have finished since it started: a worker
//!   restarted after a crash runs its first jobs one per slot, so a job that kills its worker
//!   every time does not take down jobs started ahead with it.
//! - A job started ahead that finds no slot within `prefetch_wait` is handed back (`queued`
//!   again, its attempt uncounted, re-dispatched by the relay), as on shutdown and on a cancel
//!   request, which end it without its handler ever running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_models::job;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::runner::{Claimed, Outcome, Runner};
use crate::supervisor;

/// What a delivery read by the fetch loop holds: a handler slot, or a place ahead of one.
pub enum Permit {
    Slot(OwnedSemaphorePermit),
    Ahead(OwnedSemaphorePermit),
}

impl Permit {
    pub fn is_slot(&self) -> bool {
        matches!(self, Permit::Slot(_))
    }
}

/// Running average of this worker's handler times (exponentially weighted, 1/8 per sample), and
/// how many handlers it has seen finish.
#[derive(Default)]
pub struct Pace {
    micros: AtomicU64,
    samples: AtomicU64,
}

impl Pace {
    pub fn record(&self, took: Duration) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // Racy read-modify-write on purpose: a lost sample only nudges an average.
        let old = self.micros.load(Ordering::Relaxed);
        let new = old - old / 8 + sample / 8;
        self.micros.store(new, Ordering::Relaxed);
    }

    pub fn average(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    /// Whether handlers are short enough to start jobs ahead of free slots, and this worker has
    /// seen at least `warm_up` of them finish. The warm-up is for crash loops: a job that kills
    /// its worker is usually among the first a restarted worker takes, and a worker that starts
    /// nothing ahead before it dies spends no attempts of jobs it never ran.
    pub fn allows_prefetch(&self, prefetch_wait: Duration, warm_up: u64) -> bool {
        self.samples.load(Ordering::Relaxed) >= warm_up && self.average() * 10 <= prefetch_wait
    }
}

impl Runner {
    /// Runs a job started ahead of a free slot: heartbeated while it waits for the first slot
    /// that frees up, then run as [`Self::run`] does. Without a slot within `prefetch_wait`, or
    /// on shutdown, it is handed back (its attempt uncounted); a cancel request ends it
    /// `cancelled` without its handler ever running.
    pub async fn run_ahead(
        &self,
        claimed: Claimed,
        ahead: OwnedSemaphorePermit,
        slots: Arc<Semaphore>,
        shutdown: &CancellationToken,
        hard_stop: &CancellationToken,
    ) -> Outcome {
        let (id, attempt) = (claimed.started.id, claimed.started.attempt);
        let tracked = self.supervisor.track(id, attempt, hard_stop);
        let waiting = metrics::gauge!("keel_worker_jobs_ahead");
        waiting.increment(1);
        let slot = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            _ = tracked.token.cancelled() => None,
            slot = slots.acquire_owned() => slot.ok(),
            _ = tokio::time::sleep(self.config.prefetch_wait) => None,
        };
        waiting.decrement(1);
        let state = tracked.state();
        // Untracked before `run` tracks it again (dropping a registration removes its id).
        drop(tracked);
        drop(ahead);
        if let Some(slot) = slot {
            return self.run(claimed, Some(slot), hard_stop).await;
        }
        let pool = &self.services.pool;
        let (reason, outcome) = match state {
            supervisor::LOST => ("lost", Outcome::Superseded),
            supervisor::CANCEL_REQUESTED => {
                let cancelled = async {
                    let mut conn = pool.acquire().await?;
                    job::mark_cancelled(&mut conn, id, attempt).await
                };
                let outcome = match cancelled.await {
                    Ok(true) => Outcome::Cancelled,
                    Ok(false) => Outcome::Superseded,
                    Err(e) => Outcome::LedgerError(e.to_string()),
                };
                ("cancelled", outcome)
            }
            _ => {
                let reason = if shutdown.is_cancelled() || hard_stop.is_cancelled() {
                    "shutdown"
                } else {
                    "no_slot"
                };
                let outcome = match job::hand_back(pool, id, attempt, true).await {
                    Ok(_) => Outcome::HandedBack,
                    Err(e) => Outcome::LedgerError(e.to_string()),
                };
                (reason, outcome)
            }
        };
        // Many `no_slot` returns mean this worker starts ahead more than its slots can take.
        metrics::counter!("keel_worker_jobs_ahead_returned_total", "reason" => reason).increment(1);
        let entry = (claimed.delivery.queue, claimed.delivery.entry_id);
        if let Err(e) = self.lane.ack_batch(std::slice::from_ref(&entry)).await {
            tracing::debug!(error = %e, "ack failed");
        }
        tracing::debug!(job_id = %id, ?outcome, "job started ahead ended without a slot");
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_handlers_allow_prefetch_and_long_ones_stop_it() {
        let pace = Pace::default();
        let wait = Duration::from_millis(500);
        assert!(
            pace.allows_prefetch(wait, 0),
            "no history, no warm-up: allowed"
        );
        assert!(!pace.allows_prefetch(wait, 8), "not warmed up yet");
        for _ in 0..7 {
            pace.record(Duration::from_micros(20));
        }
        assert!(!pace.allows_prefetch(wait, 8), "not warmed up yet");
        for _ in 0..43 {
            pace.record(Duration::from_micros(20));
        }
        assert!(pace.allows_prefetch(wait, 8));
        // A run of long jobs (Jira analyses) turns it off within a few samples…
        for _ in 0..4 {
            pace.record(Duration::from_secs(2));
        }
        assert!(
            !pace.allows_prefetch(wait, 8),
            "average {:?}",
            pace.average()
        );
        // …and a run of short ones turns it back on.
        for _ in 0..100 {
            pace.record(Duration::from_micros(20));
        }
        assert!(
            pace.allows_prefetch(wait, 8),
            "average {:?}",
            pace.average()
        );
    }
}
