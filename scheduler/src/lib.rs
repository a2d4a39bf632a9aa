//! Keel's scheduler: cron tasks whose every tick enqueues exactly one job, however many
//! scheduler replicas run.
//!
//! The scheduler only ever enqueues; workers do the work. Each [`Task`] has a cron schedule
//! (with seconds, in UTC) and a function from the tick to the job it enqueues. Once a second,
//! [`Scheduler::tick_at`] works out each task's *due ticks* and, for each, runs one
//! transaction: record the tick in `schedule_runs` (primary key `(task, tick)`, `ON CONFLICT DO
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
#![forbid(unsafe_code)]

pub mod billing;
mod per_tenant;

pub use per_tenant::{FanOutFn, TenantJob};

use std::collections::HashMap;
use std::str::FromStr;
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

/// Where the scheduler gets "now": [`system_clock`] in production, a fake in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What a task enqueues for a tick: the job kind's name and its args.
pub type JobFn = Arc<dyn Fn(DateTime<Utc>) -> (&'static str, Value) + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Most ticks one task enqueues in one pass when catching up with [`CatchUp::All`]: a task that
/// runs every second and was down for a day must not hold one pass for 86,400 transactions.
/// The rest follow on the next passes (each starts after the last recorded tick).
pub const MAX_CATCH_UP: usize = 1000;

/// What to do with ticks missed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Enqueue every missed tick (e.g. one billing run per missed day).
    All,
    /// Enqueue only the newest missed tick (e.g. housekeeping: once is enough).
    Latest,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::All => "all",
            CatchUp::Latest => "latest",
        }
    }
}

/// A scheduled task.
#[derive(Clone)]
pub struct Task {
    /// Stable name, the key of its tick records: never rename a task that has run.
    pub name: &'static str,
    /// When it runs (UTC).
    pub schedule: cron::Schedule,
    pub catch_up: CatchUp,
    /// What a tick enqueues.
    pub job: TaskJob,
}

/// What a task enqueues at a tick.
#[derive(Clone)]
pub enum TaskJob {
    /// One job per tick, keyed by `(task, tick)` in `schedule_runs`.
    PerTick(JobFn),
    /// One job per (tenant, period) the scan finds, keyed by `(task, tenant, period_start)` in
    /// `schedule_tenant_runs`; the tick itself is recorded (without a job) after the scan.
    PerTenant(FanOutFn),
}

impl Task {
    /// A task from a cron expression with seconds: `sec min hour day-of-month month
    /// day-of-week [year]`, e.g. `0 15 3 * * *` for 03:15:00 UTC daily.
    pub fn new(
        name: &'static str,
        cron: &str,
        catch_up: CatchUp,
        job: impl Fn(DateTime<Utc>) -> (&'static str, Value) + Send + Sync + 'static,
    ) -> Result<Self, cron::error::Error> {
        Ok(Self {
            name,
            schedule: cron::Schedule::from_str(cron)?,
            catch_up,
            job: TaskJob::PerTick(Arc::new(job)),
        })
    }

    /// A per-tenant task: at each tick, `scan(pool, tick)` lists the (tenant, period) jobs due;
    /// each is enqueued at most once ever, however many replicas and ticks see it.
    pub fn per_tenant(
        name: &'static str,
        cron: &str,
        catch_up: CatchUp,
        scan: FanOutFn,
    ) -> Result<Self, cron::error::Error> {
        Ok(Self {
            name,
            schedule: cron::Schedule::from_str(cron)?,
            catch_up,
            job: TaskJob::PerTenant(scan),
        })
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("schedule", &self.schedule.source())
            .field("catch_up", &self.catch_up)
            .finish_non_exhaustive()
    }
}

/// What [`default_tasks`] needs from Keel's settings (the scheduler cannot depend on the binary
/// crate that owns them).
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// `KEEL_JOB_RETENTION_DAYS`: finished jobs older than this are deleted by housekeeping.
    pub job_retention_days: u32,
}

/// Name of the housekeeping task.
pub const HOUSEKEEPING: &str = "housekeeping";

/// Keel's own tasks.
///
/// - `housekeeping`, daily at 03:15:00 UTC (a quiet hour for most of Europe and the Americas),
///   [`CatchUp::Latest`]: one prune after downtime deletes everything a missed one would have.
/// - the billing tasks of [`billing::tasks`] (period rollover, monthly run, expiry notices,
///   credit expiry).
pub fn default_tasks(settings: &TaskSettings) -> Vec<Task> {
    let retention_days = settings.job_retention_days;
    let mut tasks = vec![Task::new(
        HOUSEKEEPING,
        "0 15 3 * * *",
        CatchUp::Latest,
        move |_tick| {
            (
                <keel_jobs::kinds::housekeeping::Housekeeping as keel_jobs::Job>::NAME,
                json!({ "retention_days": retention_days }),
            )
        },
    )
    .expect("a valid cron expression")];
    tasks.extend(billing::tasks());
    tasks
}

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
    /// The cron expression (UTC).
    pub cron: String,
    pub catch_up: CatchUp,
    /// The next tick after `now` (`None` when the schedule has no more ticks).
    pub next_run: Option<DateTime<Utc>>,
    pub last_tick: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    /// Status of the last tick's job; `None` when there was none or housekeeping deleted it.
    pub last_job_status: Option<JobStatus>,
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
        for task in &self.tasks {
            match self.tick_task(task, start, now).await {
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
        first_pass: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize, SchedulerError> {
        let last = keel_models::schedule::last_tick(&self.pool, task.name).await?;
        let (due, more) = due_ticks(
            &task.schedule,
            task.catch_up,
            last.unwrap_or(first_pass),
            now,
        );
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
        self.enqueue_tick(task, now.trunc_subsecs(0)).await
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
                catch_up: task.catch_up,
                next_run: task.schedule.after(&now).next(),
                last_tick: last.as_ref().map(|r| r.tick),
                last_job_id: last.as_ref().and_then(|r| r.job_id),
                last_job_status: last.and_then(|r| r.job_status),
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

/// The ticks of `schedule` due at `now` for a task whose last tick (or start) is `after`:
/// those in `(after, now]` — all of them oldest first (at most [`MAX_CATCH_UP`]; `true` when
/// more remain) for [`CatchUp::All`], only the newest for [`CatchUp::Latest`].
pub fn due_ticks(
    schedule: &cron::Schedule,
    catch_up: CatchUp,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, bool) {
    match catch_up {
        CatchUp::All => {
            let mut due: Vec<_> = schedule
                .after(&after)
                .take_while(|t| *t <= now)
                .take(MAX_CATCH_UP + 1)
                .collect();
            let more = due.len() > MAX_CATCH_UP;
            due.truncate(MAX_CATCH_UP);
            (due, more)
        }
        CatchUp::Latest => {
            // Walk back from now instead of forward from `after`, which may be years ago for
            // a task that runs every second. Ticks are whole seconds; iterating back from
            // `now` truncated + 1 s yields the newest tick <= now.
            let newest = schedule
                .after(&(now.trunc_subsecs(0) + chrono::Duration::seconds(1)))
                .next_back()
                .filter(|t| *t > after && *t <= now);
            (newest.into_iter().collect(), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn daily() -> cron::Schedule {
        cron::Schedule::from_str("0 15 3 * * *").unwrap()
    }

    #[test]
    fn all_lists_every_missed_tick_after_the_last_one_up_to_now() {
        let (due, more) = due_ticks(
            &daily(),
            CatchUp::All,
            at(2030, 1, 1, 3, 15, 0),
            at(2030, 1, 4, 3, 15, 0),
        );
        assert_eq!(
            due,
            vec![
                at(2030, 1, 2, 3, 15, 0),
                at(2030, 1, 3, 3, 15, 0),
                at(2030, 1, 4, 3, 15, 0)
            ]
        );
        assert!(!more);
    }

    #[test]
    fn latest_keeps_only_the_newest_and_nothing_when_none_is_due() {
        let s = daily();
        let (due, _) = due_ticks(
            &s,
            CatchUp::Latest,
            at(2030, 1, 1, 3, 15, 0),
            at(2030, 1, 4, 3, 15, 0) + chrono::Duration::milliseconds(500),
        );
        assert_eq!(due, vec![at(2030, 1, 4, 3, 15, 0)]);
        let (due, _) = due_ticks(
            &s,
            CatchUp::Latest,
            at(2030, 1, 4, 3, 15, 0),
            at(2030, 1, 5, 3, 14, 59),
        );
        assert!(due.is_empty());
    }

    #[test]
    fn a_sub_second_start_neither_skips_nor_repeats_a_tick() {
        let s = daily();
        let start = at(2030, 1, 1, 3, 14, 59) + chrono::Duration::milliseconds(700);
        let (due, _) = due_ticks(&s, CatchUp::All, start, at(2030, 1, 1, 3, 15, 0));
        assert_eq!(due, vec![at(2030, 1, 1, 3, 15, 0)]);
        let start = at(2030, 1, 1, 3, 15, 0) + chrono::Duration::milliseconds(1);
        let (due, _) = due_ticks(&s, CatchUp::All, start, at(2030, 1, 2, 3, 0, 0));
        assert!(due.is_empty());
    }

    #[test]
    fn all_caps_one_pass() {
        let every_second = cron::Schedule::from_str("* * * * * *").unwrap();
        let (due, more) = due_ticks(
            &every_second,
            CatchUp::All,
            at(2030, 1, 1, 0, 0, 0),
            at(2030, 1, 2, 0, 0, 0),
        );
        assert_eq!(due.len(), MAX_CATCH_UP);
        assert!(more);
        assert_eq!(due[0], at(2030, 1, 1, 0, 0, 1));
    }

    #[test]
    fn sleeps_until_the_next_whole_second() {
        let t = at(2030, 1, 1, 0, 0, 0) + chrono::Duration::milliseconds(250);
        assert_eq!(until_next_second(t), Duration::from_millis(750));
        assert_eq!(
            until_next_second(at(2030, 1, 1, 0, 0, 0)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_default_housekeeping_task_runs_daily_at_03_15_utc() {
        let tasks = default_tasks(&TaskSettings {
            job_retention_days: 14,
        });
        let t = &tasks[0];
        assert_eq!(t.name, HOUSEKEEPING);
        assert_eq!(t.catch_up, CatchUp::Latest);
        assert_eq!(
            t.schedule.after(&at(2030, 1, 1, 12, 0, 0)).next(),
            Some(at(2030, 1, 2, 3, 15, 0))
        );
        let TaskJob::PerTick(job) = &t.job else {
            panic!("housekeeping is a per-tick task")
        };
        let (kind, args) = job(at(2030, 1, 2, 3, 15, 0));
        assert_eq!(kind, "keel.housekeeping");
        assert_eq!(args, json!({ "retention_days": 14 }));
        keel_jobs::builtin_registry()
            .get(kind)
            .expect("registered")
            .check_shape(&args)
            .unwrap();
    }
}
