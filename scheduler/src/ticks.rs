//! Which ticks of a schedule are due: the pure arithmetic the scheduler's passes run on.
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

use chrono::{DateTime, LocalResult, SubsecRound, TimeZone, Utc};

use crate::task::CatchUp;

/// Most ticks one task enqueues in one pass when catching up with [`CatchUp::All`]: a task that
/// runs every second and was down for a day must not hold one pass for 86,400 transactions.
/// The rest follow on the next passes (each starts after the last recorded tick).
pub const MAX_CATCH_UP: usize = 1000;

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
pub(crate) fn ticks_after<'a, Z: TimeZone + 'a>(
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
pub(crate) mod tests {
    use super::*;
    use crate::task::Task;
    use crate::until_next_second;
    use chrono::TimeZone;
    use chrono_tz::Tz;
    use serde_json::json;
    use std::str::FromStr;
    use std::time::Duration;

    pub(crate) fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
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

    pub(crate) fn berlin() -> Tz {
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
}
