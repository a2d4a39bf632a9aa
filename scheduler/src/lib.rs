//! Keel's scheduler: cron tasks whose every tick enqueues exactly one job, however many
//! scheduler replicas run.
//!
//! The scheduler only ever enqueues; workers do the work. Each [`Task`] has a cron schedule
//! (with seconds, read in the task's time zone: UTC unless configured, see [`Schedules`]; ticks
//! are UTC instants, and daylight saving time is handled as `ticks.rs` documents) and a function
//! from the tick to the job it enqueues. Once a second, [`Scheduler::tick_at`] works out each
//! task's *due ticks* and, for each, runs one transaction: record the tick in `schedule_runs` (primary key `(task, tick)`, `ON CONFLICT DO
//! NOTHING`), then insert the job. Replicas racing for the same tick serialise on that primary
//! key: exactly one records it and commits its job, the others roll back having enqueued
//! nothing. The job is pushed to Redis only after commit, like every other producer's.
//!
//! Due ticks are the schedule's ticks after the task's last recorded tick, up to now. A task
//! that has never run starts at the scheduler's first pass: nothing from before it is enqueued
//! (adding a task to a long-running deployment must not replay its history). After downtime,
//! [`CatchUp::All`] enqueues every missed tick (at most [`MAX_CATCH_UP`] per pass, the rest on
//! the next passes) and [`CatchUp::Latest`] only the newest one.
//!
//! Per-tenant tasks ([`Task::per_tenant`], see `per_tenant.rs`) enqueue at each tick one job
//! per (tenant, period) their scan finds, each keyed in `schedule_tenant_runs` in the
//! transaction that inserts it. The billing tasks (`billing.rs`) are built on both kinds.
//!
//! Time comes from an injectable [`Clock`], so tests drive months of ticks without sleeping.
//!
//! Files: `task.rs` (tasks and the built-in ones), `schedules.rs` (their configured schedules
//! and zones), `ticks.rs` (which ticks are due), `per_tenant.rs`, `billing.rs`, and this
//! file's [`Scheduler`] (the passes and their transactions).
#![forbid(unsafe_code)]

pub mod billing;
mod per_tenant;
mod schedules;
mod task;
mod ticks;

/// The time zones schedules are read in (IANA, from `chrono-tz`).
pub use chrono_tz::Tz;
pub use schedules::{ScheduleError, ScheduleOverride, Schedules};
pub use task::{
    default_tasks, system_clock, CatchUp, Clock, JobFn, Task, TaskConfig, TaskJob, TaskSettings,
    ToTaskConfig, HOUSEKEEPING,
};
pub use ticks::{due_ticks, MAX_CATCH_UP};

pub use per_tenant::{FanOutFn, TenantJob};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use keel_jobs::lane::Lane;
use keel_jobs::Registry;
use keel_models::job::{Inserted, Job as JobRow, JobStatus, NewJob};
use keel_models::PgPool;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no scheduled task is named {0:?}")]
    UnknownTask(String),
    #[error("task {task:?} enqueues job kind {kind:?}, which is not registered")]
    UnknownKind { task: &'static str, kind: String },
    #[error("task {task:?} builds invalid args for {kind}: {path}: {message}")]
    InvalidArgs {
        task: &'static str,
        kind: String,
        path: String,
        message: String,
    },
    #[error("task {task:?}: the job's idempotency key {key:?} was already used")]
    KeyReused { task: &'static str, key: String },
    #[error("every scheduled task failed; the first: {0}")]
    AllTasksFailed(Box<SchedulerError>),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The pass could not read the tasks' last ticks (one query for all), so every task fails.
    #[error("reading the last recorded ticks failed: {0}")]
    LastTicks(Arc<sqlx::Error>),
}

/// The outcome of one pass over every task.
#[derive(Debug, Default)]
pub struct TickReport {
    /// Jobs this scheduler enqueued (ticks other replicas won are not counted).
    pub enqueued: usize,
    /// Tasks that failed this pass; the others went on.
    pub failures: Vec<(&'static str, SchedulerError)>,
}

/// One task as `keel scheduler list` shows it.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    pub name: &'static str,
    /// The cron expression, read in `timezone`.
    pub cron: String,
    /// The IANA name of the zone `cron` is read in (`UTC` unless configured).
    pub timezone: String,
    pub catch_up: CatchUp,
    /// The next tick after `now` (`None` when the schedule has no more ticks).
    pub next_run: Option<DateTime<Utc>>,
    pub last_tick: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    /// Status of the last tick's job; `None` when there was none or housekeeping deleted it.
    pub last_job_status: Option<JobStatus>,
    /// A per-tenant scan: its ticks have no job of their own (it enqueues one per tenant due).
    pub per_tenant: bool,
}

pub struct Scheduler {
    pool: PgPool,
    lane: Lane,
    registry: Arc<Registry>,
    tasks: Vec<Task>,
    clock: Clock,
    /// `now` of this scheduler's first pass: a task with no recorded tick starts here.
    first_pass: OnceLock<DateTime<Utc>>,
    /// Last error logged per task, so a task failing every second logs once, not 86,400 times
    /// a day, and logs again when it recovers.
    failing: Mutex<HashMap<&'static str, String>>,
}

impl Scheduler {
    /// `tasks` must have distinct names (a duplicate is a bug; this panics at start-up).
    pub fn new(
        pool: PgPool,
        lane: Lane,
        registry: Arc<Registry>,
        tasks: Vec<Task>,
        clock: Clock,
    ) -> Self {
        let mut names: Vec<_> = tasks.iter().map(|t| t.name).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            panic!("scheduled task {:?} is defined twice", w[0]);
        }
        Self {
            pool,
            lane,
            registry,
            tasks,
            clock,
            first_pass: OnceLock::new(),
            failing: Mutex::new(HashMap::new()),
        }
    }

    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Now, by this scheduler's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// One pass at `now`: enqueues every task's due ticks; returns how many jobs this scheduler
    /// enqueued. A failing task is logged and skipped (it retries on the next pass from its
    /// last recorded tick); the pass fails only when every task failed.
    pub async fn tick_at(&self, now: DateTime<Utc>) -> Result<usize, SchedulerError> {
        let report = self.tick_report(now).await;
        if !self.tasks.is_empty() && report.failures.len() == self.tasks.len() {
            let (_, first) = report.failures.into_iter().next().expect("non-empty");
            return Err(SchedulerError::AllTasksFailed(Box::new(first)));
        }
        Ok(report.enqueued)
    }

    /// [`Self::tick_at`] with each task's failure.
    pub async fn tick_report(&self, now: DateTime<Utc>) -> TickReport {
        let start = *self.first_pass.get_or_init(|| now);
        let mut report = TickReport::default();
        let names: Vec<&str> = self.tasks.iter().map(|t| t.name).collect();
        let lasts = match keel_models::schedule::last_ticks(&self.pool, &names).await {
            Ok(lasts) => lasts.into_iter().map(Ok).collect(),
            // Every task fails this pass with the same error.
            Err(e) => vec![Err(Arc::new(e)); names.len()],
        };
        for (task, last) in self.tasks.iter().zip(lasts) {
            let ticked = match last {
                Ok(last) => self.tick_task(task, last.unwrap_or(start), now).await,
                Err(e) => Err(SchedulerError::LastTicks(e)),
            };
            match ticked {
                Ok(n) => {
                    report.enqueued += n;
                    if self.failing_lock().remove(task.name).is_some() {
                        tracing::info!(task = task.name, "scheduled task recovered");
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if self.failing_lock().insert(task.name, message.clone()) != Some(message) {
                        tracing::error!(task = task.name, error = %e,
                            "scheduled task failed; the other tasks go on and it is retried every second");
                    }
                    report.failures.push((task.name, e));
                }
            }
        }
        report
    }

    fn failing_lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, String>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn tick_task(
        &self,
        task: &Task,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize, SchedulerError> {
        let (due, more) = task.due_ticks(after, now);
        if more {
            tracing::warn!(
                task = task.name,
                from = %due[0],
                "catching up more than {MAX_CATCH_UP} missed ticks; the rest follow on the next passes"
            );
        }
        let mut enqueued = 0;
        // In order: a tick is recorded only after every earlier one, so the last recorded tick
        // is always where to resume.
        for tick in due {
            enqueued += match &task.job {
                TaskJob::PerTick(_) => usize::from(self.enqueue_tick(task, tick).await?.is_some()),
                TaskJob::PerTenant(scan) => self.fan_out(task, scan, tick).await?.len(),
            };
        }
        Ok(enqueued)
    }

    /// Records `tick` for `task` and inserts its job, in one transaction; pushes the job after
    /// commit. `None`: the tick was already recorded (another replica won), nothing enqueued.
    async fn enqueue_tick(
        &self,
        task: &Task,
        tick: DateTime<Utc>,
    ) -> Result<Option<JobRow>, SchedulerError> {
        let job = match &task.job {
            TaskJob::PerTick(job) => job,
            // A per-tenant task run by hand (`run-once`): its scan at this tick; the last job
            // it enqueued, if any.
            TaskJob::PerTenant(scan) => return Ok(self.fan_out(task, scan, tick).await?.pop()),
        };
        let (kind_name, args) = job(tick);
        let key = format!(
            "schedule:{}:{}",
            task.name,
            tick.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        );
        let new = self.new_job(task, kind_name, args, key.clone())?;
        let mut tx = self.pool.begin().await?;
        // The tick first: its primary-key lock decides the race between replicas before any job
        // exists (the job_id foreign key is checked at commit).
        if !keel_models::schedule::record_tick(&mut tx, task.name, tick, new.id).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let job = match keel_models::job::insert(&mut tx, &new).await? {
            Inserted::New(job) => job,
            // Jobs without a tenant do not share idempotency keys today (NULLs are distinct in
            // the unique index); should that change, refuse rather than point the tick at a
            // job enqueued by someone else.
            Inserted::Existing(_) => {
                tx.rollback().await?;
                return Err(SchedulerError::KeyReused {
                    task: task.name,
                    key,
                });
            }
        };
        tx.commit().await?;
        keel_jobs::enqueue::dispatch_after_commit(&self.lane, &self.pool, &job).await;
        tracing::info!(task = task.name, %tick, job_id = %job.id, kind = %job.kind,
            "scheduled job enqueued");
        Ok(Some(job))
    }

    /// The job row for `kind_name` with `args`, checked against the registry (kind known, args
    /// of the kind's shape) so a broken task fails at enqueue, not as a dead job later.
    fn new_job(
        &self,
        task: &Task,
        kind_name: &str,
        args: Value,
        key: String,
    ) -> Result<NewJob, SchedulerError> {
        let kind = self
            .registry
            .get(kind_name)
            .ok_or_else(|| SchedulerError::UnknownKind {
                task: task.name,
                kind: kind_name.to_string(),
            })?;
        let args = if args.is_null() { json!({}) } else { args };
        kind.check_shape(&args)
            .map_err(|e| SchedulerError::InvalidArgs {
                task: task.name,
                kind: kind_name.to_string(),
                path: e.path,
                message: e.message,
            })?;
        Ok(NewJob {
            id: Uuid::now_v7(),
            tenant_id: None,
            kind: kind.name().to_string(),
            queue: kind.queue().to_string(),
            args,
            max_attempts: kind.max_attempts(),
            run_at: None,
            idempotency_key: Some(key),
            dispatched: true,
        })
    }

    /// Enqueues one run of `task` now, for the explicit tick `now` (truncated to the second),
    /// recorded like any tick: it becomes the task's last tick, so scheduled ticks at or before
    /// it are not enqueued again. `None`: that tick was already recorded.
    ///
    /// Scheduled ticks still due before it are enqueued first, as a scheduler's pass would
    /// (every one for [`CatchUp::All`], the newest for [`CatchUp::Latest`]): recorded after
    /// them, the manual tick would hide them from catch-up, and a month whose billing run was
    /// missed while no scheduler ran was never billed.
    pub async fn run_once(
        &self,
        task: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRow>, SchedulerError> {
        let task = self
            .tasks
            .iter()
            .find(|t| t.name == task)
            .ok_or_else(|| SchedulerError::UnknownTask(task.to_string()))?;
        let now = now.trunc_subsecs(0);
        // Up to, not including, the manual tick (a scheduled tick at `now` is that tick), in
        // passes of at most `MAX_CATCH_UP` ticks. A task that never ran has nothing to catch up.
        let before = now - chrono::Duration::seconds(1);
        while let Some(last) = self.last_tick(task).await? {
            if self.tick_task(task, last, before).await? == 0 {
                break;
            }
        }
        self.enqueue_tick(task, now).await
    }

    /// The task's newest recorded tick (`None`: it never ran).
    async fn last_tick(&self, task: &Task) -> Result<Option<DateTime<Utc>>, SchedulerError> {
        Ok(keel_models::schedule::last_ticks(&self.pool, &[task.name])
            .await
            .map_err(|e| SchedulerError::LastTicks(Arc::new(e)))?
            .pop()
            .flatten())
    }

    /// Every task with its next run after `now` and its last tick's job.
    pub async fn list(&self, now: DateTime<Utc>) -> Result<Vec<TaskStatus>, SchedulerError> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for task in &self.tasks {
            let last = keel_models::schedule::runs(&self.pool, task.name, 1)
                .await?
                .pop();
            out.push(TaskStatus {
                name: task.name,
                cron: task.schedule.source().to_string(),
                timezone: task.timezone.name().to_string(),
                catch_up: task.catch_up,
                next_run: task.next_after(now),
                last_tick: last.as_ref().map(|r| r.tick),
                last_job_id: last.as_ref().and_then(|r| r.job_id),
                last_job_status: last.and_then(|r| r.job_status),
                per_tenant: task.is_per_tenant(),
            });
        }
        Ok(out)
    }

    /// Runs a pass every second, on the second, until `shutdown` fires (a pass in progress
    /// finishes first: it is a few short transactions).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let names: Vec<_> = self.tasks.iter().map(|t| t.name).collect();
        tracing::info!(tasks = ?names, "scheduler started");
        while !shutdown.is_cancelled() {
            let now = self.now();
            // Failures are logged per task in `tick_report`.
            let _ = self.tick_report(now).await;
            let wait = until_next_second(self.now());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }
}

/// Time from `now` to the next whole second (a full second when `now` is on one).
fn until_next_second(now: DateTime<Utc>) -> Duration {
    // A leap second reports up to 1,999,999,999 ns.
    let nanos = u64::from(now.timestamp_subsec_nanos() % 1_000_000_000);
    Duration::from_nanos(1_000_000_000 - nanos)
}
