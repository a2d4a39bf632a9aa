//! Scoring one issue: factors → score → level, plus cost of delay.

use crate::calendar::WorkWeek;
use crate::factors::{self, names, Factor, Facts};
use crate::model::IssueSnapshot;
use crate::settings::{Settings, Thresholds};
use crate::util::{money, round2};
use chrono::{DateTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// Version tag of the scoring model, stored with every result so that
/// scores computed under different weights are never compared blindly.
pub const MODEL_VERSION: &str = "keel-risk/1";

/// Risk bucket derived from the score via [`Thresholds`]. Ordered, so
/// `level >= RiskLevel::High` means "at risk".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Below `thresholds.medium`.
    Low,
    /// At least `thresholds.medium`.
    Medium,
    /// At least `thresholds.high`; counted as at risk.
    High,
    /// At least `thresholds.critical`; counted as at risk.
    Critical,
}

impl RiskLevel {
    /// Buckets a score. Checks the highest cutoff first, so even unordered
    /// (unvalidated) thresholds give a deterministic answer.
    pub fn from_score(score: u8, t: &Thresholds) -> Self {
        if score >= t.critical {
            Self::Critical
        } else if score >= t.high {
            Self::High
        } else if score >= t.medium {
            Self::Medium
        } else {
            Self::Low
        }
    }

    /// Whether roll-ups count this level as at risk (`high` or `critical`).
    pub fn is_at_risk(self) -> bool {
        self >= Self::High
    }

    /// The stable string form used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// The engine's verdict on one issue. Field names are a stable API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueRisk {
    /// Issue key.
    pub issue_key: String,
    /// Project key (portfolio grouping).
    pub project_key: String,
    /// Scoring model version ([`MODEL_VERSION`]).
    pub model_version: String,
    /// The clock value the assessment used.
    pub assessed_at: DateTime<Utc>,
    /// 0–100; the rounded sum of factor points.
    pub score: u8,
    /// Level from the score and the tenant's thresholds.
    pub level: RiskLevel,
    /// Whether the issue is done (then score 0 and no cost).
    pub resolved: bool,
    /// Every factor in fixed order, including zero-point ones, so consumers
    /// can show "why not" as well as "why".
    pub factors: Vec<Factor>,
    /// What one more day of delay costs: people involved (min 1) × rate.
    /// 0 for resolved issues.
    pub daily_cost_of_delay: f64,
    /// Distinct people involved (may be 0; the cost uses at least 1).
    pub people_involved: u32,
    /// Working days past the due date (0 when not overdue).
    pub overdue_days: i64,
    /// `overdue_days × daily_cost_of_delay`.
    pub cost_so_far: f64,
    /// Number of unresolved blockers.
    pub blocker_count: u32,
    /// Share (0–1) of comments labelled negative; 0 with no comments.
    pub negative_sentiment_share: f64,
    /// Calendar days since creation.
    pub age_days: f64,
    /// One sentence naming the level, score and top factors.
    pub summary: String,
}

impl IssueRisk {
    /// Points of the named factor, if present.
    pub fn factor_points(&self, name: &str) -> Option<f64> {
        self.factors
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.points)
    }
}

/// Factors below this many points are not named in the summary.
const SUMMARY_MIN_POINTS: f64 = 1.0;
/// At most this many factors are named in the summary.
const SUMMARY_MAX_FACTORS: usize = 3;

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn summarize(level: RiskLevel, score: u8, factors: &[Factor]) -> String {
    let mut top: Vec<(usize, &Factor)> = factors
        .iter()
        .enumerate()
        .filter(|(_, f)| f.points >= SUMMARY_MIN_POINTS)
        .collect();
    // Highest points first; ties keep the fixed factor order (index).
    top.sort_by(|(ia, a), (ib, b)| b.points.total_cmp(&a.points).then(ia.cmp(ib)));
    let head = format!("{} risk (score {score})", capitalize(level.as_str()));
    if top.is_empty() {
        return format!("{head}: no significant risk factors.");
    }
    let parts: Vec<&str> = top
        .iter()
        .take(SUMMARY_MAX_FACTORS)
        .map(|(_, f)| f.detail.as_str())
        .collect();
    format!("{head}: {}.", parts.join("; "))
}

/// Scores one issue.
///
/// Pure: reads only its arguments (`now` is the injected clock) and returns
/// identical output for identical input. Never panics on odd data: future
/// timestamps count as age 0, invalid settings are clamped (see
/// [`Settings::validate`] for the contract).
pub fn assess_issue(snap: &IssueSnapshot, settings: &Settings, now: DateTime<Utc>) -> IssueRisk {
    let people = snap.involved_people().len();
    let people_involved = u32::try_from(people).unwrap_or(u32::MAX);
    let resolved = snap.status_category.is_done();

    let (factors, facts, daily_cost) = if resolved {
        let facts = Facts {
            age_days: (now.signed_duration_since(snap.created).num_seconds() as f64 / 86_400.0)
                .max(0.0),
            overdue_days: 0,
            blocker_count: u32::try_from(snap.unresolved_blockers().len()).unwrap_or(u32::MAX),
            negative_share: negative_share(snap),
        };
        let factor = Factor {
            name: names::RESOLVED.to_string(),
            points: 0.0,
            max_points: 0.0,
            detail: format!(
                "resolved (status '{}' is in the done category); no delivery risk",
                if snap.status.trim().is_empty() {
                    "done"
                } else {
                    snap.status.trim()
                }
            ),
        };
        (vec![factor], facts, 0.0)
    } else {
        let week = if settings.working_days.is_empty() {
            // Unvalidated settings: treat every day as a working day rather
            // than making overdue work look free.
            WorkWeek::new(&[
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ])
        } else {
            WorkWeek::new(&settings.working_days)
        };
        let ctx = factors::Ctx {
            snap,
            now,
            today: now.date_naive(),
            week,
        };
        let (factors, facts) = factors::compute(&ctx);
        let daily = people.max(1) as f64 * settings.effective_rate();
        (factors, facts, daily)
    };

    let sum: f64 = factors.iter().map(|f| f.points).sum();
    let score = sum.round().clamp(0.0, 100.0) as u8;
    let level = if resolved {
        RiskLevel::Low
    } else {
        RiskLevel::from_score(score, &settings.thresholds)
    };
    let summary = if resolved {
        format!("Resolved: {}.", factors[0].detail)
    } else {
        summarize(level, score, &factors)
    };

    IssueRisk {
        issue_key: snap.key.clone(),
        project_key: snap.project_key.clone(),
        model_version: MODEL_VERSION.to_string(),
        assessed_at: now,
        score,
        level,
        resolved,
        factors,
        daily_cost_of_delay: money(daily_cost),
        people_involved,
        overdue_days: facts.overdue_days,
        cost_so_far: money(facts.overdue_days as f64 * daily_cost),
        blocker_count: facts.blocker_count,
        negative_sentiment_share: round2(facts.negative_share),
        age_days: round2(facts.age_days),
        summary,
    }
}

fn negative_share(snap: &IssueSnapshot) -> f64 {
    if snap.comments.is_empty() {
        return 0.0;
    }
    let neg = snap
        .comments
        .iter()
        .filter(|c| c.sentiment == crate::model::Label::Negative)
        .count();
    neg as f64 / snap.comments.len() as f64
}

/// Scores many issues with one clock, preserving input order.
pub fn assess_issues(
    snaps: &[IssueSnapshot],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<IssueRisk> {
    snaps
        .iter()
        .map(|s| assess_issue(s, settings, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_buckets() {
        let t = Thresholds::default();
        assert_eq!(RiskLevel::from_score(0, &t), RiskLevel::Low);
        assert_eq!(RiskLevel::from_score(29, &t), RiskLevel::Low);
        assert_eq!(RiskLevel::from_score(30, &t), RiskLevel::Medium);
        assert_eq!(RiskLevel::from_score(54, &t), RiskLevel::Medium);
        assert_eq!(RiskLevel::from_score(55, &t), RiskLevel::High);
        assert_eq!(RiskLevel::from_score(75, &t), RiskLevel::Critical);
        assert_eq!(RiskLevel::from_score(100, &t), RiskLevel::Critical);
        assert!(RiskLevel::High.is_at_risk() && RiskLevel::Critical.is_at_risk());
        assert!(!RiskLevel::Medium.is_at_risk());
    }

    #[test]
    fn summary_orders_by_points_then_factor_order() {
        let f = |name: &str, points: f64| Factor {
            name: name.into(),
            points,
            max_points: 10.0,
            detail: format!("{name} detail"),
        };
        let s = summarize(
            RiskLevel::High,
            60,
            &[
                f("a", 2.0),
                f("b", 5.0),
                f("c", 2.0),
                f("d", 0.5),
                f("e", 2.0),
            ],
        );
        assert_eq!(s, "High risk (score 60): b detail; a detail; c detail.");
        assert_eq!(
            summarize(RiskLevel::Low, 0, &[f("a", 0.2)]),
            "Low risk (score 0): no significant risk factors."
        );
    }
}
