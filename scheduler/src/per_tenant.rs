//! Per-tenant tasks: at a tick, a scan lists (tenant, period) jobs; each is enqueued under its
//! own exactly-once key.
//!
//! For each job, one transaction records `(task, tenant, period_start)` in
//! `schedule_tenant_runs` (`ON CONFLICT DO NOTHING`, taking the primary-key lock that decides
//! races between replicas) and inserts the job; a replica that finds the key taken rolls back
//! having enqueued nothing. The scan may list what was enqueued already (a racing replica, an
//! earlier tick): the key makes that harmless. After the scan the tick is recorded in
//! `schedule_runs` (with no job), so listings show the task's last run and catch-up resumes
//! from it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use keel_models::job::{Inserted, Job as JobRow};
use keel_models::PgPool;
use serde_json::Value;
use uuid::Uuid;

use crate::{Scheduler, SchedulerError, Task};

/// One job a per-tenant task enqueues at most once for `(tenant_id, period_start)`.
#[derive(Debug, Clone)]
pub struct TenantJob {
    pub tenant_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub kind: &'static str,
    pub args: Value,
}

/// A per-tenant task's scan: the jobs due at a tick (at most a bounded batch; what is left is
/// found by the next tick's scan).
pub type FanOutFn = Arc<
    dyn Fn(
            PgPool,
            DateTime<Utc>,
        ) -> Pin<Box<dyn Future<Output = sqlx::Result<Vec<TenantJob>>> + Send>>
        + Send
        + Sync,
>;

impl Scheduler {
    /// Runs `scan` for `tick` and enqueues each job it lists unless its key exists; returns the
    /// jobs this scheduler enqueued. A job that fails to enqueue fails the pass for this task
    /// (retried on the next pass; the tick is not recorded until every job went through).
    pub(crate) async fn fan_out(
        &self,
        task: &Task,
        scan: &FanOutFn,
        tick: DateTime<Utc>,
    ) -> Result<Vec<JobRow>, SchedulerError> {
        let jobs = scan(self.pool.clone(), tick).await?;
        let mut enqueued = Vec::new();
        for job in jobs {
            let period = job
                .period_start
                .to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let key = format!("schedule:{}:{}:{period}", task.name, job.tenant_id);
            let new = self.new_job(task, job.kind, job.args, key.clone())?;
            let mut tx = self.pool.begin().await?;
            if !keel_models::billing_tasks::record_tenant_run(
                &mut tx,
                task.name,
                job.tenant_id,
                job.period_start,
                new.id,
            )
            .await?
            {
                tx.rollback().await?;
                continue;
            }
            let row = match keel_models::job::insert(&mut tx, &new).await? {
                Inserted::New(row) => row,
                Inserted::Existing(_) => {
                    tx.rollback().await?;
                    return Err(SchedulerError::KeyReused {
                        task: task.name,
                        key,
                    });
                }
            };
            tx.commit().await?;
            keel_jobs::enqueue::dispatch_after_commit(&self.lane, &self.pool, &row).await;
            tracing::info!(task = task.name, tenant_id = %job.tenant_id, %period,
                job_id = %row.id, kind = %row.kind, "scheduled per-tenant job enqueued");
            enqueued.push(row);
        }
        keel_models::billing_tasks::record_fan_out_tick(&self.pool, task.name, tick).await?;
        Ok(enqueued)
    }
}
