//! How the built-in tasks' schedules are configured: a zone for all of them and per-task cron
//! overrides (`KEEL_SCHEDULER_TIMEZONE`, `KEEL_SCHEDULES`), checked when read.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::Utc;
use chrono_tz::Tz;

use crate::task::Task;
use crate::ticks::ticks_after;

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
            // `0 0 4 31 2 *` (31 February) or a year gone by parses, and the task would never
            // run again without a word.
            if schedule.after(&Utc::now()).next().is_none() {
                return Err(ScheduleError::InvalidCron {
                    task: task.to_string(),
                    cron: cron.to_string(),
                    message: "it never fires from now on (no future date matches it)".into(),
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{default_tasks, TaskConfig, TaskSettings};
    use crate::ticks::tests::{at, berlin};

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
        for never in ["0 0 4 31 2 *", "0 0 4 1 1 * 2020"] {
            let err = Schedules::new("UTC", [("housekeeping", never)]).unwrap_err();
            assert!(err.to_string().contains("never fires"), "{never}: {err}");
        }
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
