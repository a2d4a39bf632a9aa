//! Tasks: a name, a cron schedule (UTC, with seconds), a catch-up policy and what each tick
//! enqueues; the built-in tasks; and the pure arithmetic of which ticks are due.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::per_tenant::FanOutFn;

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
/// - the billing tasks of [`crate::billing::tasks`] (period rollover, monthly run, expiry
///   notices, credit expiry) and the daily Stripe reconciliation (a no-op in local mode).
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
    tasks.extend(crate::billing::tasks());
    tasks.push(crate::billing::stripe_reconcile_task());
    tasks
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
    use crate::until_next_second;
    use chrono::TimeZone;
    use std::time::Duration;

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
