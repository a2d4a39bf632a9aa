//! One delivery, start to finish: guarded start → handler → guarded finish. The caller acks the
//! Redis entry afterwards whatever happened, because the ledger (not Redis) decides what runs
//! next: a job that must run again is re-dispatched by the relay.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use keel_jobs::{JobContext, JobError, Registry, Services};
use keel_models::job::{self, JobStatus};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use keel_jobs::lane::{Delivery, Lane};

use crate::batch::Completions;
use crate::config::WorkerConfig;
use crate::prefetch::Pace;
use crate::supervisor::{self, Supervisor};

/// What one delivery led to (tests assert on it; the worker logs it).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// Retryable error; the next attempt is due after the delay (ms).
    WillRetry {
        delay_ms: u64,
        error: String,
    },
    Dead {
        error: String,
    },
    Cancelled,
    /// Not started: another worker has it, it is not due, or it already finished.
    Skipped,
    /// This attempt lost the job to another worker, or finished after someone else did; the
    /// ledger kept the other result.
    Superseded,
    /// Shutdown ran out of time; the job went back to `queued`, uncounted.
    HandedBack,
    /// The handler said "not now" ([`JobError::Deferred`]): back to `queued`, due after the
    /// delay (ms), this attempt uncounted.
    Deferred {
        delay_ms: u64,
        reason: String,
    },
    /// Postgres failed; the row is unchanged and the relay will dispatch it again.
    LedgerError(String),
}

pub struct Runner {
    pub registry: Arc<Registry>,
    pub services: Arc<Services>,
    pub supervisor: Arc<Supervisor>,
    pub config: WorkerConfig,
    pub lane: Lane,
    pub completions: Completions,
    /// The guarded starts' connections, one per claim in flight (no pool pings on this path).
    pub claims: keel_models::held::Held,
    /// This worker's handler times, which decide whether it starts jobs ahead of free slots.
    pub pace: Pace,
}

/// A delivery this worker won the start of.
pub struct Claimed {
    pub started: job::Started,
    pub delivery: Delivery,
}

impl Runner {
    /// Starts a batch of deliveries with one guarded statement. Deliveries not started (taken,
    /// not due, finished, or without a job id) are acked at once and reported as skipped; those
    /// whose start ended them (attempts exhausted by lost workers, cancel requested) too.
    pub async fn start(&self, deliveries: Vec<Delivery>) -> (Vec<Claimed>, Vec<Outcome>) {
        let ids: Vec<Uuid> = deliveries.iter().filter_map(|d| d.job_id).collect();
        let lease = self.config.lease;
        let started = self
            .claims
            .run(async |conn| job::start_many(conn, &ids, lease).await)
            .await;
        let mut started = match started {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "start failed; the relay will dispatch these jobs again");
                let entries: Vec<_> = deliveries
                    .iter()
                    .map(|d| (d.queue.clone(), d.entry_id.clone()))
                    .collect();
                let _ = self.lane.ack_batch(&entries).await;
                return (
                    Vec::new(),
                    vec![Outcome::LedgerError(e.to_string()); deliveries.len()],
                );
            }
        };
        let mut claimed = Vec::with_capacity(started.len());
        let mut outcomes = Vec::new();
        let mut to_ack = Vec::new();
        for d in deliveries {
            let pos = d
                .job_id
                .and_then(|id| started.iter().position(|s| s.id == id));
            match pos.map(|p| started.swap_remove(p)) {
                Some(s) if s.status == JobStatus::Running => claimed.push(Claimed {
                    started: s,
                    delivery: d,
                }),
                Some(s) => {
                    to_ack.push((d.queue, d.entry_id));
                    outcomes.push(if s.status == JobStatus::Cancelled {
                        Outcome::Cancelled
                    } else {
                        tracing::warn!(job_id = %s.id, attempts = s.attempt, "attempts exhausted by lost workers; job is dead");
                        Outcome::Dead {
                            error: "attempts exhausted".into(),
                        }
                    });
                }
                None => {
                    to_ack.push((d.queue, d.entry_id));
                    outcomes.push(Outcome::Skipped);
                }
            }
        }
        if let Err(e) = self.lane.ack_batch(&to_ack).await {
            tracing::debug!(error = %e, "ack failed");
        }
        (claimed, outcomes)
    }

    /// Runs a claimed job to its recorded outcome and acks its entry. `hard_stop` fires when
    /// shutdown gives up waiting: the handler is told, then the job is handed back.
    ///
    /// `slot` (the worker's concurrency permit) is released as soon as the handler returns, as
    /// River's batch completer does: recording the outcome no longer occupies a handler slot,
    /// and the completion queue is bounded, so back-pressure still reaches the fetch loop.
    pub async fn run(
        &self,
        claimed: Claimed,
        slot: Option<OwnedSemaphorePermit>,
        hard_stop: &CancellationToken,
    ) -> Outcome {
        let Claimed { started, delivery } = claimed;
        let entry = (delivery.queue, delivery.entry_id);
        let (outcome, acked) = self.run_started(&started, &entry, slot, hard_stop).await;
        if !acked {
            if let Err(e) = self.lane.ack_batch(std::slice::from_ref(&entry)).await {
                tracing::debug!(error = %e, "ack failed");
            }
        }
        outcome
    }

    async fn run_started(
        &self,
        started: &job::Started,
        entry: &(String, String),
        slot: Option<OwnedSemaphorePermit>,
        hard_stop: &CancellationToken,
    ) -> (Outcome, bool) {
        let pool = &self.services.pool;
        let id = started.id;
        let Some(kind) = self.registry.get(&started.kind).cloned() else {
            let err = JobError::fatal(format!(
                "no handler for kind {:?} in this worker",
                started.kind
            ));
            return (
                self.finish(started, err, false, Instant::now()).await,
                false,
            );
        };

        let tracked = self.supervisor.track(id, started.attempt, hard_stop);
        let ctx = JobContext {
            job_id: id,
            tenant_id: started.tenant_id,
            attempt: started.attempt,
            max_attempts: started.max_attempts,
            cancel: tracked.token.clone(),
            services: self.services.clone(),
        };
        let t0 = Instant::now();
        let limit = self
            .config
            .job_timeouts
            .for_kind(kind.name(), kind.timeout());
        // Spawned so a panicking handler becomes an error instead of taking the worker down.
        let mut handle = tokio::spawn(kind.run(started.args.clone(), ctx));
        let joined = tokio::select! {
            r = &mut handle => r,
            _ = tokio::time::sleep(limit) => {
                // Past the kind's bound: the handler is dropped (awaited, so it is gone before
                // the slot frees) and the attempt counts as a retryable failure.
                handle.abort();
                match (&mut handle).await {
                    // It finished in the same instant: its own answer stands.
                    Ok(r) => Ok(r),
                    Err(e) if e.is_cancelled() => Ok(Err(timed_out(kind.name(), limit))),
                    Err(e) => Err(e),
                }
            }
            _ = hard_stop.cancelled() => {
                // Give the handler a moment to stop cooperatively, then take the job back.
                let grace = std::time::Duration::from_millis(500);
                let r = tokio::time::timeout(grace, &mut handle).await;
                match r {
                    Ok(r) if !matches!(r, Ok(Err(JobError::Cancelled))) => r,
                    _ => {
                        handle.abort();
                        drop(tracked);
                        let outcome = match job::hand_back(pool, id, started.attempt, false).await {
                            Ok(_) => Outcome::HandedBack,
                            Err(e) => Outcome::LedgerError(e.to_string()),
                        };
                        return (outcome, false);
                    }
                }
            }
        };
        let ran = t0.elapsed();
        let result = match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(JobError::retryable(format!(
                "handler panicked: {}",
                panic_message(e.into_panic())
            ))),
            Err(e) => Err(JobError::retryable(format!("handler task failed: {e}"))),
        };
        // A success gives its slot up before its batch commits, once there is room among the
        // successes waiting (see `batch`): the fetch loop never outruns the ledger.
        let result = match result {
            Ok(value) => Ok((value, self.completions.reserve().await)),
            Err(e) => Err(e),
        };
        drop(slot);
        self.pace.record(ran);
        let state = tracked.state.load(Ordering::SeqCst);
        if state == supervisor::LOST && result.is_err() {
            return (Outcome::Superseded, false);
        }
        if let Ok((value, room)) = result {
            // Stop heartbeating first: the batch commits in milliseconds (far inside the lease),
            // and a heartbeat touching rows the batch is finishing would only contend for locks.
            drop(tracked);
            // Recorded before the batch commits, so the histogram never lags the ledger.
            metrics::histogram!("keel_job_duration_seconds", "kind" => started.kind.clone(), "outcome" => "succeeded")
                .record(ran.as_secs_f64());
            let recorded = self
                .completions
                .succeed(room, id, value.clone(), Some(entry.clone()))
                .await;
            return match recorded {
                Ok(true) => (Outcome::Succeeded(value), true),
                Ok(false) => {
                    tracing::info!(job_id = %id, "another attempt finished this job first; result discarded");
                    (Outcome::Superseded, true)
                }
                Err(e) => (Outcome::LedgerError(e), false),
            };
        }
        drop(tracked);
        let Err(error) = result else {
            unreachable!("successes returned above")
        };
        let outcome = self
            .finish(started, error, state == supervisor::CANCEL_REQUESTED, t0)
            .await;
        (outcome, false)
    }

    async fn finish(
        &self,
        started: &job::Started,
        error: JobError,
        cancel_requested: bool,
        t0: Instant,
    ) -> Outcome {
        let pool = &self.services.pool;
        let id = started.id;
        let attempt = started.attempt;
        let elapsed = t0.elapsed().as_secs_f64();
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => return Outcome::LedgerError(e.to_string()),
        };
        let (applied, outcome, label) = match error {
            _ if cancel_requested => {
                let r = job::mark_cancelled(&mut conn, id, attempt)
                    .await
                    .map(|done| done.then_some(JobStatus::Cancelled));
                (r, Outcome::Cancelled, "cancelled")
            }
            JobError::Cancelled => {
                // Cancelled without a request (shutdown): give it back rather than lose it.
                drop(conn);
                return match job::hand_back(pool, id, attempt, false).await {
                    Ok(_) => Outcome::HandedBack,
                    Err(e) => Outcome::LedgerError(e.to_string()),
                };
            }
            err @ JobError::Deferred { .. } => {
                let JobError::Deferred { retry_after, .. } = &err else {
                    unreachable!()
                };
                let r =
                    job::defer(&mut conn, id, attempt, *retry_after, &err.to_json(attempt)).await;
                (
                    r,
                    Outcome::Deferred {
                        delay_ms: retry_after.as_millis() as u64,
                        reason: err.to_string(),
                    },
                    "deferred",
                )
            }
            err @ JobError::Retryable { .. } if attempt < started.max_attempts => {
                let JobError::Retryable { retry_after, .. } = &err else {
                    unreachable!()
                };
                let delay = self.config.backoff.next(attempt, *retry_after);
                let mut json = err.to_json(attempt);
                // What was asked, as far as it is waited for (the cap), not a hostile 10^11 ms.
                if let Some(asked) = retry_after {
                    let waited = (*asked).min(self.config.backoff.retry_after_cap());
                    json["retry_after_ms"] = Value::from(waited.as_millis() as u64);
                }
                let r = job::fail_retryable(&mut conn, id, attempt, delay, &json).await;
                (
                    r,
                    Outcome::WillRetry {
                        delay_ms: delay.as_millis() as u64,
                        error: err.to_string(),
                    },
                    "retry",
                )
            }
            err => {
                let json = err.to_final_json(attempt, started.max_attempts);
                let r = job::fail_dead(&mut conn, id, attempt, &json).await;
                (
                    r,
                    Outcome::Dead {
                        error: err.to_string(),
                    },
                    "dead",
                )
            }
        };
        // A cancel requested while the handler failed (before a heartbeat told it) ends the
        // job `cancelled` whatever the error said (see `job::fail_retryable`).
        let (outcome, label) = match &applied {
            Ok(Some(JobStatus::Cancelled)) => (Outcome::Cancelled, "cancelled"),
            _ => (outcome, label),
        };
        metrics::histogram!("keel_job_duration_seconds", "kind" => started.kind.clone(), "outcome" => label)
            .record(elapsed);
        match applied {
            Ok(Some(_)) => {
                // A job that died needs an operator's eye (retry, or fix its input): said at WARN,
                // with its error. It had been a DEBUG line like every other outcome.
                if let Outcome::Dead { error } = &outcome {
                    // Escaped (`?`): the error quotes what receivers and Jira answered.
                    tracing::warn!(job_id = %id, kind = ?started.kind, tenant_id = ?started.tenant_id,
                        attempt, max_attempts = started.max_attempts, error = ?error, "job dead");
                } else {
                    tracing::debug!(job_id = %id, attempt, outcome = label, "job finished");
                }
                outcome
            }
            Ok(None) => {
                tracing::info!(job_id = %id, attempt, "another attempt finished this job first; result discarded");
                Outcome::Superseded
            }
            Err(e) => {
                tracing::warn!(job_id = %id, error = %e, "recording the outcome failed; the job will run again after its lease");
                Outcome::LedgerError(e.to_string())
            }
        }
    }
}

/// The error of an attempt stopped at its kind's time limit, naming the limit and the setting
/// that changes it.
fn timed_out(kind: &str, limit: std::time::Duration) -> JobError {
    let ms = limit.as_millis();
    let limit = if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    };
    JobError::retryable(format!(
        "the attempt ran longer than {limit}, the time limit of {kind} jobs, and was stopped (KEEL_JOB_TIMEOUTS sets it)"
    ))
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".into()
    }
}
