//! `keel.housekeeping` (internal): deletes finished jobs older than the retention period, so the
//! ledger — the hot table every submit, start and finish touches — stays the size of recent
//! work rather than growing forever.
//!
//! The scheduler enqueues it daily (`KEEL_JOB_RETENTION_DAYS`); tenants cannot submit it
//! ([`Job::INTERNAL`]). Safe to run twice or concurrently: deleting what is already gone changes
//! nothing, and batches skip rows another session holds.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

/// Rows deleted per statement: small enough to keep each statement's locks and WAL short.
pub const BATCH: i64 = 1_000;
/// How long the scheduler's tick records are kept (each task's newest is always kept): long
/// enough to audit a year of monthly billing runs.
pub const SCHEDULE_RUN_RETENTION_DAYS: u64 = 400;
/// Accepted retention, in days (the same bounds as `KEEL_JOB_RETENTION_DAYS`).
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Housekeeping {
    /// Finished jobs (`succeeded`, `dead`, `cancelled`) whose `finished_at` is older than this
    /// many days are deleted.
    pub retention_days: u32,
}

impl Housekeeping {
    fn check_retention(&self) -> Result<(), ArgsError> {
        if RETENTION_DAYS.contains(&self.retention_days) {
            Ok(())
        } else {
            Err(ArgsError::new(
                "args.retention_days",
                format!(
                    "must be between {} and {}",
                    RETENTION_DAYS.start(),
                    RETENTION_DAYS.end()
                ),
            ))
        }
    }
}

impl Job for Housekeeping {
    const NAME: &'static str = "keel.housekeeping";
    const MAX_ATTEMPTS: i32 = 5;
    /// Deletes in batches; a first run over a long history takes a while.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60 * 60);
    const INTERNAL: bool = true;

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        self.check_retention()
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        // The scheduler checks only the args' shape, so the range is enforced here too: a
        // retention of 0 would delete every finished job.
        self.check_retention()
            .map_err(|e| JobError::fatal(format!("{}: {}", e.path, e.message)))?;
        let older_than = Duration::from_secs(u64::from(self.retention_days) * 86_400);
        let prune =
            keel_models::schedule::prune_finished_jobs(&ctx.services.pool, older_than, BATCH);
        // Batches already deleted stay deleted; a cancelled run is simply resumed next time.
        let deleted = tokio::select! {
            r = prune => r.map_err(|e| JobError::retryable(format!("pruning finished jobs failed: {e}")))?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let runs = keel_models::schedule::prune_runs(
            &ctx.services.pool,
            Duration::from_secs(SCHEDULE_RUN_RETENTION_DAYS * 86_400),
        )
        .await
        .map_err(|e| JobError::retryable(format!("pruning schedule runs failed: {e}")))?;
        tracing::info!(
            deleted,
            schedule_runs_deleted = runs,
            retention_days = self.retention_days,
            "housekeeping pruned finished jobs"
        );
        Ok(json!({ "deleted": deleted, "schedule_runs_deleted": runs }))
    }
}
