//! Tasks: a name, a cron schedule (with seconds, read in the task's time zone: UTC unless
//! configured), a catch-up policy and what each tick enqueues; the built-in tasks and their
//! configuration ([`TaskConfig`]). How schedules are configured is in [`crate::schedules`],
//! which ticks are due in [`crate::ticks`].

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::per_tenant::FanOutFn;
use crate::schedules::{ScheduleError, Schedules};
use crate::ticks::{due_ticks, ticks_after};

/// Where the scheduler gets "now": [`system_clock`] in production, a fake in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What a task enqueues for a tick: the job kind's name and its args.
pub type JobFn = Arc<dyn Fn(DateTime<Utc>) -> (&'static str, Value) + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

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
    /// When it runs: wall-clock times in [`Self::timezone`].
    pub schedule: cron::Schedule,
    /// The zone [`Self::schedule`] is read in (UTC unless configured, see [`Schedules`]).
    pub timezone: Tz,
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
    /// A per-tenant scan: its ticks have no job of their own (it enqueues one per tenant due).
    pub fn is_per_tenant(&self) -> bool {
        matches!(self.job, TaskJob::PerTenant(_))
    }

    /// A task from a cron expression with seconds: `sec min hour day-of-month month
    /// day-of-week [year]`, e.g. `0 15 3 * * *` for 03:15:00 daily, in UTC (see
    /// [`Self::with_schedule`]).
    pub fn new(
        name: &'static str,
        cron: &str,
        catch_up: CatchUp,
        job: impl Fn(DateTime<Utc>) -> (&'static str, Value) + Send + Sync + 'static,
    ) -> Result<Self, cron::error::Error> {
        Ok(Self {
            name,
            schedule: cron::Schedule::from_str(cron)?,
            timezone: Tz::UTC,
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
            timezone: Tz::UTC,
            catch_up,
            job: TaskJob::PerTenant(scan),
        })
    }

    /// This task on `schedule`, read in `timezone`.
    pub fn with_schedule(mut self, schedule: cron::Schedule, timezone: Tz) -> Self {
        self.schedule = schedule;
        self.timezone = timezone;
        self
    }

    /// The first tick after `t` (`None` when the schedule has no more).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        ticks_after(&self.schedule, &self.timezone, t).next()
    }

    /// [`due_ticks`] of this task's schedule in its zone.
    pub fn due_ticks(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (Vec<DateTime<Utc>>, bool) {
        due_ticks(&self.schedule, &self.timezone, self.catch_up, after, now)
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("schedule", &self.schedule.source())
            .field("timezone", &self.timezone)
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

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            job_retention_days: 14,
        }
    }
}

/// [`TaskSettings`] with the [`Schedules`] of the built-in tasks, checked: it exists only when
/// every override names a built-in task, so [`default_tasks`] cannot fail.
#[derive(Debug, Clone, Default)]
pub struct TaskConfig {
    settings: TaskSettings,
    schedules: Schedules,
}

impl TaskConfig {
    pub fn new(settings: TaskSettings, schedules: Schedules) -> Result<Self, ScheduleError> {
        schedules.apply(builtin_tasks(&settings))?;
        Ok(Self {
            settings,
            schedules,
        })
    }

    pub fn settings(&self) -> &TaskSettings {
        &self.settings
    }

    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }
}

/// What [`default_tasks`] builds from: a bare [`TaskSettings`] (the built-in schedules, in UTC)
/// or a checked [`TaskConfig`].
pub trait ToTaskConfig {
    fn to_task_config(&self) -> TaskConfig;
}

impl ToTaskConfig for TaskSettings {
    fn to_task_config(&self) -> TaskConfig {
        TaskConfig {
            settings: self.clone(),
            schedules: Schedules::default(),
        }
    }
}

impl ToTaskConfig for TaskConfig {
    fn to_task_config(&self) -> TaskConfig {
        self.clone()
    }
}

/// Name of the housekeeping task.
pub const HOUSEKEEPING: &str = "housekeeping";

/// Keel's own tasks, on their configured schedules (a bare [`TaskSettings`]: the built-in
/// schedules below, in UTC).
///
/// - `housekeeping`, daily at 03:15:00 (UTC: a quiet hour for most of Europe and the Americas),
///   [`CatchUp::Latest`]: one prune after downtime deletes everything a missed one would have.
/// - the billing tasks of [`crate::billing::tasks`] (period rollover, monthly run, expiry
///   notices, credit expiry) and the daily Stripe reconciliation (a no-op in local mode).
pub fn default_tasks(config: &impl ToTaskConfig) -> Vec<Task> {
    let config = config.to_task_config();
    config
        .schedules
        .apply(builtin_tasks(&config.settings))
        .expect("TaskConfig::new checked every override names a built-in task")
}

fn builtin_tasks(settings: &TaskSettings) -> Vec<Task> {
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
    tasks.extend(crate::billing::tasks());
    tasks.push(crate::billing::stripe_reconcile_task());
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticks::tests::at;

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
