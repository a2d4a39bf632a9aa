//! Working-day arithmetic.
//!
//! Overdue days and cost so far count only the tenant's working days: a
//! task due on Friday that is still open on Tuesday has burned two paid
//! days (Mon, Tue), not four calendar days. Counting is O(1) (whole weeks
//! plus a remainder) so absurd dates in bad data cannot stall a job.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// A set of working weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkWeek {
    mask: [bool; 7],
}

impl WorkWeek {
    /// Builds a work week; duplicates are harmless.
    pub fn new(days: &[Weekday]) -> Self {
        let mut mask = [false; 7];
        for d in days {
            mask[d.num_days_from_monday() as usize] = true;
        }
        Self { mask }
    }

    /// Whether `date` falls on a working weekday.
    pub fn is_working(&self, date: NaiveDate) -> bool {
        self.mask[date.weekday().num_days_from_monday() as usize]
    }

    fn per_week(&self) -> i64 {
        self.mask.iter().filter(|&&w| w).count() as i64
    }

    /// Number of working days `d` with `after < d <= until`.
    ///
    /// This is "how many working days have started since `after`": for due
    /// date Friday and today Tuesday it returns 2 (Mon, Tue). Returns 0 when
    /// `until <= after`.
    pub fn working_days_between(&self, after: NaiveDate, until: NaiveDate) -> i64 {
        let days = (until - after).num_days();
        if days <= 0 {
            return 0;
        }
        let full_weeks = days / 7;
        let rem = days % 7;
        let mut count = full_weeks * self.per_week();
        // Remainder days are the first `rem` days after `after`; they are all
        // <= `until`, so the additions cannot overflow the date range.
        for i in 1..=rem {
            if let Some(d) = after.checked_add_days(Days::new(i as u64)) {
                if self.is_working(d) {
                    count += 1;
                }
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn mon_fri() -> WorkWeek {
        WorkWeek::new(&[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ])
    }

    /// Brute-force reference implementation.
    fn naive(w: &WorkWeek, after: NaiveDate, until: NaiveDate) -> i64 {
        let mut n = 0;
        let mut cur = after;
        while cur < until {
            cur = cur.succ_opt().unwrap();
            if w.is_working(cur) {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn friday_to_tuesday_is_two_days() {
        // 2024-05-03 is a Friday, 2024-05-07 a Tuesday.
        assert_eq!(d(2024, 5, 3).weekday(), Weekday::Fri);
        assert_eq!(
            mon_fri().working_days_between(d(2024, 5, 3), d(2024, 5, 7)),
            2
        );
    }

    #[test]
    fn weekend_only_span_is_zero() {
        assert_eq!(
            mon_fri().working_days_between(d(2024, 5, 3), d(2024, 5, 5)),
            0
        );
    }

    #[test]
    fn reversed_or_equal_is_zero() {
        assert_eq!(
            mon_fri().working_days_between(d(2024, 5, 7), d(2024, 5, 3)),
            0
        );
        assert_eq!(
            mon_fri().working_days_between(d(2024, 5, 7), d(2024, 5, 7)),
            0
        );
    }

    #[test]
    fn matches_brute_force_for_many_spans() {
        let weeks = [
            mon_fri(),
            WorkWeek::new(&[
                Weekday::Sun,
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
            ]),
            WorkWeek::new(&[Weekday::Sat]),
            WorkWeek::new(&[]),
        ];
        let start = d(2024, 2, 20);
        for w in &weeks {
            for a in 0..10u64 {
                for len in 0..40u64 {
                    let after = start + Days::new(a);
                    let until = after + Days::new(len);
                    assert_eq!(w.working_days_between(after, until), naive(w, after, until));
                }
            }
        }
    }

    #[test]
    fn extreme_dates_do_not_panic() {
        let w = mon_fri();
        let n = w.working_days_between(NaiveDate::MIN, NaiveDate::MAX);
        assert!(n > 0);
    }
}
