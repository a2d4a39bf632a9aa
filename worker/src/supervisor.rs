//! Jobs in flight in this process, kept alive by one batched heartbeat.
//!
//! One `UPDATE … WHERE id = ANY(…)` per period extends every lease this process holds (not one query
//! per job), and its answer doubles as the cancel signal: a job whose row has a cancel request
//! gets its token fired; a job missing from the answer was taken over by another worker after
//! its lease expired, so this attempt's token fires too and its result will not be recorded
//! (unless it is a success that lands first — see `keel_models::job::succeed_many`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_models::held::Held;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const RUNNING: u8 = 0;
pub const CANCEL_REQUESTED: u8 = 1;
pub const LOST: u8 = 2;

struct Entry {
    attempt: i32,
    token: CancellationToken,
    state: Arc<AtomicU8>,
}

pub struct Supervisor {
    jobs: Mutex<HashMap<Uuid, Entry>>,
    /// Its one connection (a heartbeat at a time).
    conn: Held,
    lease: Duration,
}

/// Registration of one attempt; dropping it stops the heartbeats for that job.
pub struct Tracked {
    supervisor: Arc<Supervisor>,
    id: Uuid,
    pub token: CancellationToken,
    pub state: Arc<AtomicU8>,
}

impl Tracked {
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.supervisor.jobs.lock().unwrap().remove(&self.id);
    }
}

impl Supervisor {
    pub fn new(conn: Held, lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            jobs: Mutex::new(HashMap::new()),
            conn,
            lease,
        })
    }

    pub fn track(self: &Arc<Self>, id: Uuid, attempt: i32, parent: &CancellationToken) -> Tracked {
        let token = parent.child_token();
        let state = Arc::new(AtomicU8::new(RUNNING));
        self.jobs.lock().unwrap().insert(
            id,
            Entry {
                attempt,
                token: token.clone(),
                state: state.clone(),
            },
        );
        Tracked {
            supervisor: self.clone(),
            id,
            token,
            state,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// One batched heartbeat.
    pub async fn beat(&self) {
        let (ids, attempts): (Vec<Uuid>, Vec<i32>) = {
            let jobs = self.jobs.lock().unwrap();
            let mut pairs: Vec<(Uuid, i32)> = jobs.iter().map(|(id, e)| (*id, e.attempt)).collect();
            // Lock rows in id order, as the completion batches do.
            pairs.sort_unstable();
            pairs.into_iter().unzip()
        };
        if ids.is_empty() {
            return;
        }
        let lease = self.lease;
        let beat = self
            .conn
            .run(async |c| keel_models::job::heartbeat_many(c, &ids, &attempts, lease).await)
            .await;
        let answer = match beat {
            Ok(a) => a,
            Err(e) => {
                // Leases stay valid until they expire; the next beat tries again.
                tracing::warn!(error = %e, "heartbeat failed");
                return;
            }
        };
        let answered: HashMap<Uuid, bool> = answer.into_iter().collect();
        let jobs = self.jobs.lock().unwrap();
        for (id, attempt) in ids.iter().zip(&attempts) {
            let Some(entry) = jobs.get(id) else { continue };
            if entry.attempt != *attempt {
                continue;
            }
            match answered.get(id) {
                Some(true) => {
                    if entry.state.swap(CANCEL_REQUESTED, Ordering::SeqCst) != CANCEL_REQUESTED {
                        tracing::info!(job_id = %id, "cancel requested; telling the handler");
                    }
                    entry.token.cancel();
                }
                Some(false) => {}
                None => {
                    if entry.state.swap(LOST, Ordering::SeqCst) != LOST {
                        tracing::warn!(job_id = %id, attempt, "lost the job (lease taken over); stopping this attempt");
                    }
                    entry.token.cancel();
                }
            }
        }
    }

    /// Beats every `period` until `stop` fires.
    pub async fn run(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.beat().await,
                _ = stop.cancelled() => return,
            }
        }
    }
}
