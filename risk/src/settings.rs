//! Tenant-configurable knobs: money, calendar and level thresholds.
//!
//! Settings come from tenant configuration (JSON/TOML via serde), so every
//! field has a serde default and [`Settings::validate`] rejects values that
//! would make scores or costs meaningless. The engine itself never panics
//! on bad settings; it clamps, but validated settings are the contract.

use chrono::Weekday;
use serde::{Deserialize, Serialize};

/// Cutoffs (inclusive lower bounds, 0–100) that turn a score into a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Scores at or above this are at least `medium` (default 30).
    pub medium: u8,
    /// Scores at or above this are at least `high` (default 55); `high` and
    /// above count as "at risk" in roll-ups.
    pub high: u8,
    /// Scores at or above this are `critical` (default 75).
    pub critical: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            medium: 30,
            high: 55,
            critical: 75,
        }
    }
}

/// Engine settings for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Loaded cost of one person-day, in the tenant's currency (default
    /// 2500.0). Cost of delay is "people involved × this rate" per day.
    pub daily_rate_per_person: f64,
    /// Days that count as working days for overdue/cost arithmetic
    /// (default Monday–Friday). Serialized as `"Mon"`, `"Tue"`, …
    pub working_days: Vec<Weekday>,
    /// Score → level cutoffs.
    pub thresholds: Thresholds,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            daily_rate_per_person: 2500.0,
            working_days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            thresholds: Thresholds::default(),
        }
    }
}

/// The highest `daily_rate_per_person` accepted: a million a day per person is beyond any real
/// rate, and keeps every cost the engine multiplies out of it (people × days × rate) finite,
/// where `1e308` had given costs of infinity, which JSON cannot carry.
pub const MAX_DAILY_RATE: f64 = 1_000_000.0;

impl Settings {
    /// Checks the settings, returning every problem found joined by `"; "`.
    ///
    /// Rules: `daily_rate_per_person` is from 0 to [`MAX_DAILY_RATE`]; at least one
    /// working day; thresholds satisfy `0 < medium < high < critical ≤ 100`
    /// so that every level is reachable and levels are ordered.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if !(0.0..=MAX_DAILY_RATE).contains(&self.daily_rate_per_person) {
            errors.push(format!(
                "daily_rate_per_person must be a number from 0 to {MAX_DAILY_RATE} (got {})",
                self.daily_rate_per_person
            ));
        }
        if self.working_days.is_empty() {
            errors.push("working_days must contain at least one day".to_string());
        }
        // A day listed twice changes nothing the engine computes, but a settings answer that
        // echoes `["Mon","Mon"]` says the client meant something it did not get.
        for (i, day) in self.working_days.iter().enumerate() {
            if self.working_days[..i].contains(day) {
                errors.push(format!("working_days lists {day:?} more than once"));
                break;
            }
        }
        let t = self.thresholds;
        if t.medium == 0 {
            errors.push("thresholds.medium must be > 0".to_string());
        }
        if !(t.medium < t.high && t.high < t.critical) {
            errors.push(format!(
                "thresholds must be strictly increasing: medium ({}) < high ({}) < critical ({})",
                t.medium, t.high, t.critical
            ));
        }
        if t.critical > 100 {
            errors.push(format!(
                "thresholds.critical must be <= 100 (got {})",
                t.critical
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The rate the engine actually uses: invalid rates count as 0 so that
    /// unvalidated settings can never produce NaN or negative costs.
    pub(crate) fn effective_rate(&self) -> f64 {
        if self.daily_rate_per_person.is_finite() && self.daily_rate_per_person > 0.0 {
            self.daily_rate_per_person
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.daily_rate_per_person, 2500.0);
        assert_eq!(s.working_days.len(), 5);
        assert_eq!(
            s.thresholds,
            Thresholds {
                medium: 30,
                high: 55,
                critical: 75
            }
        );
    }

    #[test]
    fn effective_rate_clamps() {
        for bad in [f64::NAN, -5.0, f64::NEG_INFINITY, f64::INFINITY] {
            let s = Settings {
                daily_rate_per_person: bad,
                ..Settings::default()
            };
            assert_eq!(s.effective_rate(), 0.0);
        }
        let s = Settings {
            daily_rate_per_person: 10.0,
            ..Settings::default()
        };
        assert_eq!(s.effective_rate(), 10.0);
    }
}
