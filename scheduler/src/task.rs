//! Tasks: a name, a cron schedule (with seconds, read in the task's time zone: UTC unless
//! configured), a catch-up policy and what each tick enqueues; the built-in tasks and their
//! configuration ([`Schedules`]: per-task cron overrides and time zones); and the pure
//! arithmetic of which ticks are due.
//!
//! # Time zones and daylight saving time
//!
//! A schedule is read as wall-clock time in its zone; each tick is the UTC instant of that wall
//! time, and `schedule_runs.tick` stores that instant. Where the zone changes its offset:
//!
//! - **Clocks go forward** (e.g. Europe/Berlin, last Sunday of March, 02:00 → 03:00): wall times
//!   in the skipped hour do not exist, and the `cron` crate skips them. A daily `0 30 2 * * *`
//!   task does not run that day (it is not moved to 03:00); its next tick is 02:30 the next day.
//!   Schedule daily tasks outside 02:00–03:00 local where that matters.
//! - **Clocks go back** (last Sunday of October, 03:00 → 02:00): wall times in the repeated hour
//!   happen twice, at two different UTC instants. Keying ticks by instant alone would enqueue a
//!   daily 02:30 task twice (00:30 and 01:30 UTC), and the `cron` crate itself yields the second
//!   instant only when it walks across both, i.e. depending on when the scheduler happened to
//!   run. So Keel takes each wall-clock time once, at its first occurrence: the 02:30 task runs
//!   once, at 02:30 summer time (00:30 UTC). A task running more often than hourly has no ticks
//!   during the repeated hour (its wall times were all taken the first time round).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, LocalResult, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
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

/// A bad schedule configuration; each names the task or zone at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown time zone {0:?} (expected an IANA name such as `UTC` or `Europe/Berlin`)")]
    UnknownTimezone(String),
    #[error("{0:?} is not `task=cron expression` (entries are separated by `;`)")]
    Malformed(String),
    #[error("task {0:?} is configured twice")]
    Duplicate(String),
    #[error("task {task:?}: invalid cron expression {cron:?}: {message}")]
    InvalidCron {
        task: String,
        cron: String,
        message: String,
    },
    #[error(
        "task {task:?}: unknown time zone {zone:?} (expected an IANA name such as `Europe/Berlin`)"
    )]
    UnknownTaskTimezone { task: String, zone: String },
    #[error("no scheduled task is named {task:?} (the tasks: {known})")]
    UnknownTask { task: String, known: String },
    #[error("task {task:?}: {cron:?} in {zone} ticks at {tick} UTC, a different month in UTC; its job takes the month from the UTC tick, so its ticks must fall in the same month in UTC (e.g. `{task}=0 0 6 1 * *` for 06:00 on the 1st)")]
    UtcMonth {
        task: String,
        cron: String,
        zone: String,
        tick: String,
    },
}

/// Tasks whose job takes the calendar month from the UTC tick (`billing.monthly_run` bills the
/// UTC month before it): a tick in another month locally than in UTC (midnight on the 1st east
/// of Greenwich is still the last day of the month in UTC) would bill the month before the one
/// meant, so [`Schedules::apply`] refuses such a schedule.
const UTC_MONTH_TASKS: &[&str] = &[crate::billing::MONTHLY_RUN];

/// The first of `task`'s ticks in the next two years (at most 20,000) in another month locally
/// than in UTC, refused.
fn check_utc_months(task: &Task) -> Result<(), ScheduleError> {
    use chrono::Datelike;
    let now = Utc::now();
    let until = now + chrono::Duration::days(2 * 366);
    let bad = ticks_after(&task.schedule, &task.timezone, now)
        .take_while(|t| *t < until)
        .take(20_000)
        .find(|t| t.with_timezone(&task.timezone).month() != t.month());
    match bad {
        None => Ok(()),
        Some(tick) => Err(ScheduleError::UtcMonth {
            task: task.name.to_string(),
            cron: task.schedule.source().to_string(),
            zone: task.timezone.name().to_string(),
            tick: tick.format("%Y-%m-%d %H:%M:%S").to_string(),
        }),
    }
}

/// One task's configured schedule.
#[derive(Debug, Clone)]
pub struct ScheduleOverride {
    pub schedule: cron::Schedule,
    /// Its own zone (`cron@Zone`); `None`: [`Schedules::timezone`].
    pub timezone: Option<Tz>,
}

/// How the built-in tasks' schedules are configured: the zone every schedule is read in
/// (`KEEL_SCHEDULER_TIMEZONE`) and per-task cron overrides (`KEEL_SCHEDULES`).
#[derive(Debug, Clone)]
pub struct Schedules {
    pub timezone: Tz,
    /// By task name.
    pub overrides: BTreeMap<String, ScheduleOverride>,
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            timezone: Tz::UTC,
            overrides: BTreeMap::new(),
        }
    }
}

impl Schedules {
    /// From an IANA zone name and `(task, "cron[@Zone]")` pairs: each cron expression (with
    /// seconds) and zone is checked here; task names when applied ([`Self::apply`]).
    pub fn new<'a>(
        timezone: &str,
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ScheduleError> {
        let zone = parse_zone(timezone)
            .ok_or_else(|| ScheduleError::UnknownTimezone(timezone.to_string()))?;
        let mut out = Self {
            timezone: zone,
            overrides: BTreeMap::new(),
        };
        for (task, spec) in overrides {
            let (task, spec) = (task.trim(), spec.trim());
            // `@Zone` at the end; a leading `@` is cron's own shorthand (`@daily`).
            let (cron, zone) = match spec.rsplit_once('@') {
                Some((cron, zone)) if !cron.trim().is_empty() => (cron.trim(), Some(zone.trim())),
                _ => (spec, None),
            };
            let timezone = zone
                .map(|z| {
                    parse_zone(z).ok_or_else(|| ScheduleError::UnknownTaskTimezone {
                        task: task.to_string(),
                        zone: z.to_string(),
                    })
                })
                .transpose()?;
            let schedule =
                cron::Schedule::from_str(cron).map_err(|e| ScheduleError::InvalidCron {
                    task: task.to_string(),
                    cron: cron.to_string(),
                    message: cron_error(cron, &e),
                })?;
            let o = ScheduleOverride { schedule, timezone };
            if out.overrides.insert(task.to_string(), o).is_some() {
                return Err(ScheduleError::Duplicate(task.to_string()));
            }
        }
        Ok(out)
    }

    /// The pairs of the `KEEL_SCHEDULES` form, `task=cron[@Zone];task=cron[@Zone]…` (blank
    /// entries and spaces around names are ignored).
    pub fn parse_list(spec: &str) -> Result<Vec<(&str, &str)>, ScheduleError> {
        spec.split(';')
            .filter(|e| !e.trim().is_empty())
            .map(|e| match e.split_once('=') {
                Some((task, cron)) if !task.trim().is_empty() && !cron.trim().is_empty() => {
                    Ok((task.trim(), cron.trim()))
                }
                _ => Err(ScheduleError::Malformed(e.trim().to_string())),
            })
            .collect()
    }

    /// `tasks` on their configured schedules, each in its zone; an override naming no task in
    /// `tasks` is refused, and so is a monthly billing run ticking in another month locally
    /// than in UTC.
    pub fn apply(&self, tasks: Vec<Task>) -> Result<Vec<Task>, ScheduleError> {
        if let Some(unknown) = self
            .overrides
            .keys()
            .find(|name| !tasks.iter().any(|t| t.name == name.as_str()))
        {
            let known: Vec<_> = tasks.iter().map(|t| t.name).collect();
            return Err(ScheduleError::UnknownTask {
                task: unknown.clone(),
                known: known.join(", "),
            });
        }
        let tasks: Vec<Task> = tasks
            .into_iter()
            .map(|task| match self.overrides.get(task.name) {
                Some(o) => {
                    let zone = o.timezone.unwrap_or(self.timezone);
                    task.with_schedule(o.schedule.clone(), zone)
                }
                None => {
                    let schedule = task.schedule.clone();
                    task.with_schedule(schedule, self.timezone)
                }
            })
            .collect();
        for task in tasks.iter().filter(|t| UTC_MONTH_TASKS.contains(&t.name)) {
            check_utc_months(task)?;
        }
        Ok(tasks)
    }
}

/// The `cron` crate's parse error on one line: its message shows the expression with a caret
/// under the failing character on the next line.
fn cron_error(cron: &str, e: &cron::error::Error) -> String {
    let text = e.to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed == cron.trim() {
            continue;
        }
        match line.find('^') {
            Some(col) if trimmed.chars().all(|c| c == '^') => {
                parts.push(format!("at character {}", col + 1));
            }
            _ => parts.push(trimmed.to_string()),
        }
    }
    parts.push(
        "expected `sec min hour day-of-month month day-of-week [year]` (6 or 7 fields)".into(),
    );
    parts.join("; ")
}

fn parse_zone(name: &str) -> Option<Tz> {
    name.trim().parse().ok()
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

/// Whether `t` is the second occurrence of its wall-clock time (the hour repeated when clocks
/// go back); such ticks are skipped (see the module docs).
fn is_repeat<Z: TimeZone>(t: &DateTime<Z>) -> bool {
    match t.timezone().from_local_datetime(&t.naive_local()) {
        LocalResult::Ambiguous(_, later) => later == *t,
        _ => false,
    }
}

/// The ticks of `schedule` read in `zone` after `after`, as UTC instants, strictly increasing,
/// each wall-clock time once.
fn ticks_after<'a, Z: TimeZone + 'a>(
    schedule: &'a cron::Schedule,
    zone: &Z,
    after: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + 'a {
    schedule
        .after(&after.with_timezone(zone))
        .filter(|t| !is_repeat(t))
        .map(|t| t.with_timezone(&Utc))
        // Starting inside a repeated hour, the crate yields that hour's first occurrences,
        // which are before `after`.
        .filter(move |t| *t > after)
}

/// The ticks of `schedule` (read in `zone`) due at `now` for a task whose last tick (or start)
/// is `after`: those in `(after, now]` — all of them oldest first (at most [`MAX_CATCH_UP`];
/// `true` when more remain) for [`CatchUp::All`], only the newest for [`CatchUp::Latest`].
/// Daylight saving time: see the module docs.
pub fn due_ticks<Z: TimeZone>(
    schedule: &cron::Schedule,
    zone: &Z,
    catch_up: CatchUp,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, bool) {
    match catch_up {
        CatchUp::All => {
            let mut due: Vec<_> = ticks_after(schedule, zone, after)
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
            // `now` truncated + 1 s yields the newest tick <= now (after a repeated wall time's
            // second occurrence, which is skipped).
            let from = (now.trunc_subsecs(0) + chrono::Duration::seconds(1)).with_timezone(zone);
            let newest = schedule
                .after(&from)
                .rev()
                .filter(|t| !is_repeat(t))
                .map(|t| t.with_timezone(&Utc))
                .find(|t| *t <= now)
                .filter(|t| *t > after);
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
            &Utc,
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
            &Utc,
            CatchUp::Latest,
            at(2030, 1, 1, 3, 15, 0),
            at(2030, 1, 4, 3, 15, 0) + chrono::Duration::milliseconds(500),
        );
        assert_eq!(due, vec![at(2030, 1, 4, 3, 15, 0)]);
        let (due, _) = due_ticks(
            &s,
            &Utc,
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
        let (due, _) = due_ticks(&s, &Utc, CatchUp::All, start, at(2030, 1, 1, 3, 15, 0));
        assert_eq!(due, vec![at(2030, 1, 1, 3, 15, 0)]);
        let start = at(2030, 1, 1, 3, 15, 0) + chrono::Duration::milliseconds(1);
        let (due, _) = due_ticks(&s, &Utc, CatchUp::All, start, at(2030, 1, 2, 3, 0, 0));
        assert!(due.is_empty());
    }

    #[test]
    fn all_caps_one_pass() {
        let every_second = cron::Schedule::from_str("* * * * * *").unwrap();
        let (due, more) = due_ticks(
            &every_second,
            &Utc,
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

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn at_half_past_two() -> cron::Schedule {
        cron::Schedule::from_str("0 30 2 * * *").unwrap()
    }

    /// Every pass a live scheduler would make, one a minute over `(start, end]`, each due tick
    /// recorded as the new last tick: the ticks it would enqueue.
    fn passes(
        s: &cron::Schedule,
        zone: &Tz,
        catch_up: CatchUp,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let (mut last, mut now, mut out) = (start, start, Vec::new());
        while now < end {
            now += chrono::Duration::minutes(1);
            let (due, _) = due_ticks(s, zone, catch_up, last, now);
            if let Some(t) = due.last() {
                last = *t;
            }
            out.extend(due);
        }
        out
    }

    #[test]
    fn ticks_are_wall_clock_times_in_the_zone_stored_as_utc() {
        let s = cron::Schedule::from_str("0 15 3 * * *").unwrap();
        // CET (UTC+1) in January, CEST (UTC+2) in July.
        let (due, _) = due_ticks(
            &s,
            &berlin(),
            CatchUp::All,
            at(2030, 1, 1, 0, 0, 0),
            at(2030, 1, 2, 12, 0, 0),
        );
        assert_eq!(
            due,
            vec![at(2030, 1, 1, 2, 15, 0), at(2030, 1, 2, 2, 15, 0)]
        );
        let (due, _) = due_ticks(
            &s,
            &berlin(),
            CatchUp::Latest,
            at(2030, 7, 1, 0, 0, 0),
            at(2030, 7, 2, 12, 0, 0),
        );
        assert_eq!(due, vec![at(2030, 7, 2, 1, 15, 0)]);
        let task = Task::new("t", "0 15 3 * * *", CatchUp::All, |_| ("noop", json!({})))
            .unwrap()
            .with_schedule(s.clone(), berlin());
        assert_eq!(
            task.next_after(at(2030, 7, 1, 1, 15, 0)),
            Some(at(2030, 7, 2, 1, 15, 0))
        );
        assert_eq!(
            task.due_ticks(at(2030, 1, 1, 0, 0, 0), at(2030, 1, 1, 2, 15, 0))
                .0,
            vec![at(2030, 1, 1, 2, 15, 0)]
        );
    }

    /// 2030-03-31, Europe/Berlin: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    #[test]
    fn spring_forward_skips_a_wall_time_that_does_not_exist_without_doubling_the_next() {
        let s = at_half_past_two();
        let expected = vec![
            at(2030, 3, 30, 1, 30, 0), // 02:30 CET
            // 2030-03-31: no 02:30, no run (not moved to 03:00).
            at(2030, 4, 1, 0, 30, 0), // 02:30 CEST
        ];
        let (start, end) = (at(2030, 3, 29, 12, 0, 0), at(2030, 4, 1, 12, 0, 0));
        let (due, _) = due_ticks(&s, &berlin(), CatchUp::All, start, end);
        assert_eq!(due, expected, "catching up across the transition");
        for catch_up in [CatchUp::All, CatchUp::Latest] {
            assert_eq!(
                passes(&s, &berlin(), catch_up, start, end),
                expected,
                "{catch_up:?}, a pass a minute"
            );
        }
        let task = Task::new("t", "0 30 2 * * *", CatchUp::All, |_| ("noop", json!({})))
            .unwrap()
            .with_schedule(s, berlin());
        assert_eq!(
            task.next_after(at(2030, 3, 30, 12, 0, 0)),
            Some(at(2030, 4, 1, 0, 30, 0))
        );
    }

    /// 2030-10-27, Europe/Berlin: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, at 00:30
    /// and 01:30 UTC. It runs once, at the first.
    #[test]
    fn fall_back_runs_a_repeated_wall_time_once_at_its_first_occurrence() {
        let s = at_half_past_two();
        let expected = vec![
            at(2030, 10, 26, 0, 30, 0), // 02:30 CEST
            at(2030, 10, 27, 0, 30, 0), // 02:30 CEST, the first 02:30 of the day
            at(2030, 10, 28, 1, 30, 0), // 02:30 CET
        ];
        let (start, end) = (at(2030, 10, 25, 12, 0, 0), at(2030, 10, 28, 12, 0, 0));
        // The `cron` crate alone yields both 02:30s when it walks across them.
        let raw: Vec<_> = s
            .after(&start.with_timezone(&berlin()))
            .take(4)
            .map(|t| t.with_timezone(&Utc))
            .collect();
        assert_eq!(
            raw[1..3],
            [at(2030, 10, 27, 0, 30, 0), at(2030, 10, 27, 1, 30, 0)]
        );

        let (due, _) = due_ticks(&s, &berlin(), CatchUp::All, start, end);
        assert_eq!(due, expected, "catching up across the transition");
        for catch_up in [CatchUp::All, CatchUp::Latest] {
            assert_eq!(
                passes(&s, &berlin(), catch_up, start, end),
                expected,
                "{catch_up:?}, a pass a minute"
            );
        }
        // A scheduler first started inside the repeated hour (01:10 UTC, 02:10 CET) finds the
        // 02:30 of that day already past.
        let inside = at(2030, 10, 27, 1, 10, 0);
        for catch_up in [CatchUp::All, CatchUp::Latest] {
            let (due, _) = due_ticks(&s, &berlin(), catch_up, inside, at(2030, 10, 27, 1, 45, 0));
            assert!(due.is_empty(), "{catch_up:?}: {due:?}");
        }
        let task = Task::new("t", "0 30 2 * * *", CatchUp::All, |_| ("noop", json!({})))
            .unwrap()
            .with_schedule(s, berlin());
        assert_eq!(task.next_after(inside), Some(at(2030, 10, 28, 1, 30, 0)));
    }

    #[test]
    fn an_hourly_task_skips_the_repeated_hour_and_every_tick_increases() {
        let hourly = cron::Schedule::from_str("0 0 * * * *").unwrap();
        let (start, end) = (at(2030, 10, 26, 23, 30, 0), at(2030, 10, 27, 3, 30, 0));
        let expected = vec![
            at(2030, 10, 27, 0, 0, 0), // 02:00 CEST
            // 01:00 UTC is 02:00 CET again: skipped.
            at(2030, 10, 27, 2, 0, 0), // 03:00 CET
            at(2030, 10, 27, 3, 0, 0), // 04:00 CET
        ];
        let (due, _) = due_ticks(&hourly, &berlin(), CatchUp::All, start, end);
        assert_eq!(due, expected);
        assert_eq!(
            passes(&hourly, &berlin(), CatchUp::All, start, end),
            expected
        );
        // Every second through the repeated hour: strictly increasing, no panic.
        let every_second = cron::Schedule::from_str("* * * * * *").unwrap();
        let (due, _) = due_ticks(
            &every_second,
            &berlin(),
            CatchUp::All,
            at(2030, 10, 27, 0, 59, 58),
            at(2030, 10, 27, 2, 0, 1),
        );
        assert_eq!(
            due,
            vec![
                at(2030, 10, 27, 0, 59, 59),
                at(2030, 10, 27, 2, 0, 0),
                at(2030, 10, 27, 2, 0, 1)
            ]
        );
    }

    #[test]
    fn overrides_parse_from_the_env_form() {
        let pairs = Schedules::parse_list(
            "monthly-billing-run=0 0 6 1 * *; housekeeping = 0 0 4 * * *@America/New_York;",
        )
        .unwrap();
        assert_eq!(
            pairs,
            [
                ("monthly-billing-run", "0 0 6 1 * *"),
                ("housekeeping", "0 0 4 * * *@America/New_York")
            ]
        );
        assert_eq!(Schedules::parse_list("").unwrap(), []);
        assert_eq!(
            Schedules::parse_list("housekeeping").unwrap_err(),
            ScheduleError::Malformed("housekeeping".into())
        );
        assert_eq!(
            Schedules::parse_list("=0 0 4 * * *").unwrap_err(),
            ScheduleError::Malformed("=0 0 4 * * *".into())
        );

        let schedules = Schedules::new("Europe/Berlin", pairs).unwrap();
        assert_eq!(schedules.timezone, berlin());
        let hk = &schedules.overrides["housekeeping"];
        assert_eq!(hk.schedule.source(), "0 0 4 * * *");
        assert_eq!(hk.timezone, Some("America/New_York".parse().unwrap()));
        assert_eq!(schedules.overrides["monthly-billing-run"].timezone, None);
        // cron's own `@` shorthands are not zones.
        let s = Schedules::new("UTC", [("a", "@daily"), ("b", "@daily@Asia/Tokyo")]).unwrap();
        assert_eq!(s.overrides["a"].timezone, None);
        assert_eq!(
            s.overrides["b"].timezone,
            Some("Asia/Tokyo".parse().unwrap())
        );
    }

    #[test]
    fn cron_errors_are_one_line() {
        for cron in ["0 0 4 * *", "0 0 99 * * *", "0 0 4 * * Funday", "nonsense"] {
            let err = Schedules::new("UTC", [("housekeeping", cron)])
                .unwrap_err()
                .to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains("expected `sec min hour"), "{err}");
        }
    }

    #[test]
    fn bad_overrides_are_refused_naming_the_task() {
        let err = Schedules::new("Mars/Olympus", []).unwrap_err();
        assert_eq!(err, ScheduleError::UnknownTimezone("Mars/Olympus".into()));
        let err = Schedules::new("UTC", [("housekeeping", "0 0 4 * *")]).unwrap_err();
        assert!(
            matches!(&err, ScheduleError::InvalidCron { task, cron, .. }
                if task == "housekeeping" && cron == "0 0 4 * *"),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with("task \"housekeeping\": invalid cron expression"));
        let err = Schedules::new("UTC", [("housekeeping", "0 0 4 * * *@Nowhere")]).unwrap_err();
        assert!(err.to_string().contains("housekeeping") && err.to_string().contains("Nowhere"));
        let err = Schedules::new("UTC", [("a", "@daily"), ("a", "@hourly")]).unwrap_err();
        assert_eq!(err, ScheduleError::Duplicate("a".into()));

        let unknown =
            Schedules::new("UTC", [("housekeeping", "0 0 4 * * *"), ("nope", "@daily")]).unwrap();
        let err = TaskConfig::new(TaskSettings::default(), unknown).unwrap_err();
        assert!(
            matches!(&err, ScheduleError::UnknownTask { task, known }
                if task == "nope" && known.contains("monthly-billing-run")),
            "{err}"
        );
    }

    #[test]
    fn the_monthly_run_must_tick_in_the_same_month_in_utc() {
        // Midnight on the 1st in Berlin is 23:00 UTC on the last day of the month before: the
        // job would bill the month before the one meant.
        let berlin_midnight = Schedules::new("Europe/Berlin", []).unwrap();
        let err = TaskConfig::new(TaskSettings::default(), berlin_midnight).unwrap_err();
        assert!(
            matches!(&err, ScheduleError::UtcMonth { task, zone, .. }
                if task == crate::billing::MONTHLY_RUN && zone == "Europe/Berlin"),
            "{err}"
        );
        assert!(err.to_string().contains("0 0 6 1 * *"), "{err}");
        // West of Greenwich midnight on the 1st is already the 1st in UTC; later on the 1st is
        // fine anywhere in Europe.
        for (zone, spec) in [
            ("America/New_York", ""),
            ("Europe/Berlin", "monthly-billing-run=0 0 6 1 * *"),
        ] {
            let s = Schedules::new(zone, Schedules::parse_list(spec).unwrap()).unwrap();
            TaskConfig::new(TaskSettings::default(), s).unwrap();
        }
    }

    #[test]
    fn the_configuration_applies_to_every_built_in_task() {
        let schedules = Schedules::new(
            "Europe/Berlin",
            Schedules::parse_list("monthly-billing-run=0 0 6 1 * *@UTC").unwrap(),
        )
        .unwrap();
        let config = TaskConfig::new(TaskSettings::default(), schedules).unwrap();
        let tasks = default_tasks(&config);
        assert_eq!(tasks.len(), default_tasks(&TaskSettings::default()).len());
        for t in &tasks {
            if t.name == crate::billing::MONTHLY_RUN {
                assert_eq!(t.schedule.source(), "0 0 6 1 * *");
                assert_eq!(t.timezone, Tz::UTC);
                assert_eq!(
                    t.next_after(at(2030, 1, 15, 0, 0, 0)),
                    Some(at(2030, 2, 1, 6, 0, 0))
                );
            } else {
                assert_eq!(t.timezone, berlin(), "{}", t.name);
            }
        }
        // housekeeping keeps its 03:15, now Berlin's.
        assert_eq!(
            tasks[0].next_after(at(2030, 1, 1, 12, 0, 0)),
            Some(at(2030, 1, 2, 2, 15, 0))
        );
    }
}
