//! Keel's scheduler process.
//!
//! The scheduler only ever enqueues; workers do the work. Its tasks (monthly usage resets,
//! billing runs, expiry notices, housekeeping) and their exactly-once tick records arrive with
//! the scheduler issue; until then [`Scheduler`] runs as a process with no tasks, so `keel up`
//! and the compose file already have their final shape.
#![forbid(unsafe_code)]

use keel_jobs::lane::Lane;
use keel_models::PgPool;
use tokio_util::sync::CancellationToken;

pub struct Scheduler {
    #[allow(dead_code)]
    pool: PgPool,
    #[allow(dead_code)]
    lane: Lane,
}

impl Scheduler {
    pub fn new(pool: PgPool, lane: Lane) -> Self {
        Self { pool, lane }
    }

    /// Runs until `shutdown` fires.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        tracing::info!("scheduler started (no scheduled tasks are defined yet)");
        shutdown.cancelled().await;
        tracing::info!("scheduler stopped");
    }
}
