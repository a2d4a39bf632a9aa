//! The risk factors: one documented, bounded, monotonic function each.
//!
//! Every factor maps facts about an issue to `points ∈ [0, max_points]`.
//! The maxima ([`WEIGHTS`]) sum to 100, so the score is simply the sum of
//! the points. Functions are smooth and saturating so that one extreme
//! fact (a 3-year-old ticket, 40 blockers) cannot dominate the others and
//! small changes in input produce small changes in score.
//!
//! Shapes used:
//! * `exp_sat(x, s) = 1 − e^(−x/s)`: rises quickly then flattens; ≈95% at `3s`.
//! * `hyper(n, h) = n / (n + h)`: counts with diminishing returns; 50% at `h`.
//! * `ratio²/(1 + ratio²)`: ignores small ratios, 50% at ratio 1.

use crate::calendar::WorkWeek;
use crate::model::{IssueSnapshot, Label, StatusCategory};
use crate::util::{plural, unit};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Stable factor identifiers (the `name` field of [`Factor`]).
pub mod names {
    /// How long the issue has existed.
    pub const AGE: &str = "age";
    /// How long it has sat in its current status.
    pub const TIME_IN_STATUS: &str = "time_in_status";
    /// Unresolved blocking issues.
    pub const BLOCKERS: &str = "blockers";
    /// Overdue or due very soon.
    pub const DUE_DATE: &str = "due_date";
    /// Jira priority.
    pub const PRIORITY: &str = "priority";
    /// Recent assignee hand-offs.
    pub const REASSIGNMENT_CHURN: &str = "reassignment_churn";
    /// Recent back-and-forth status transitions.
    pub const STATUS_CHURN: &str = "status_churn";
    /// Share of negative comments.
    pub const NEGATIVE_SENTIMENT: &str = "negative_sentiment";
    /// Negative share rising recently.
    pub const SENTIMENT_TREND: &str = "sentiment_trend";
    /// Only factor of a done issue (0 points).
    pub const RESOLVED: &str = "resolved";
}

/// Maximum points per factor, in output order. Sums to 100.
///
/// Schedule facts (due date, blockers) weigh most because they are the most
/// direct evidence of slipping delivery; process noise (churn, tone) weighs
/// less because it is a leading but noisier signal.
pub const WEIGHTS: [(&str, f64); 9] = [
    (names::AGE, 8.0),
    (names::TIME_IN_STATUS, 12.0),
    (names::BLOCKERS, 20.0),
    (names::DUE_DATE, 22.0),
    (names::PRIORITY, 8.0),
    (names::REASSIGNMENT_CHURN, 6.0),
    (names::STATUS_CHURN, 6.0),
    (names::NEGATIVE_SENTIMENT, 12.0),
    (names::SENTIMENT_TREND, 6.0),
];

/// Age at which the age factor reaches 63%; ≈95% at 60 days.
pub const AGE_SCALE_DAYS: f64 = 20.0;
/// Days an issue may reasonably wait in a `new` status (half points here).
pub const EXPECTED_DAYS_NEW: f64 = 14.0;
/// Days an issue may reasonably stay `indeterminate` (half points here).
pub const EXPECTED_DAYS_IN_PROGRESS: f64 = 7.0;
/// Each unresolved blocker leaves this fraction of the remaining headroom:
/// 1 blocker = 60%, 2 = 84%, 3 = 94% of the blocker weight.
pub const BLOCKER_DECAY: f64 = 0.4;
/// Fraction of the due-date weight for being overdue at all.
pub const OVERDUE_BASE: f64 = 0.7;
/// Overdue working days at which the remaining 30% is 63% used.
pub const OVERDUE_SCALE_DAYS: f64 = 5.0;
/// "Due soon" window in working days.
pub const DUE_SOON_WORKING_DAYS: i64 = 2;
/// Fraction of the due-date weight when due today (tapers to the window).
pub const DUE_SOON_MAX: f64 = 0.45;
/// Look-back window for reassignments.
pub const REASSIGNMENT_WINDOW_DAYS: i64 = 14;
/// Reassignments giving half the reassignment weight.
pub const REASSIGNMENT_HALF: f64 = 2.0;
/// Look-back window for status flip-flops.
pub const STATUS_CHURN_WINDOW_DAYS: i64 = 30;
/// Flip-flops giving half the status-churn weight.
pub const STATUS_CHURN_HALF: f64 = 2.0;
/// Pseudo-count of non-negative comments added before taking the negative
/// share, so one grumpy comment on a quiet issue does not max the factor.
pub const SENTIMENT_PRIOR: f64 = 2.0;
/// Comments newer than this many days are "recent" for the trend.
pub const TREND_WINDOW_DAYS: i64 = 7;

/// One explained contribution to the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Stable id from [`names`]; safe to key dashboards and alerts on.
    pub name: String,
    /// Contribution to the score (0..=`max_points`, 2 decimals).
    pub points: f64,
    /// The factor's weight: the most it can contribute.
    pub max_points: f64,
    /// Human explanation, e.g. "blocked by 2 unresolved issues: ABC-1, ABC-7".
    pub detail: String,
}

/// Facts computed along the way that are also reported on the risk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub age_days: f64,
    pub overdue_days: i64,
    pub blocker_count: u32,
    pub negative_share: f64,
}

/// Looks up a weight by factor name (0 for unknown names).
pub fn weight(name: &str) -> f64 {
    WEIGHTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0.0, |(_, w)| *w)
}

fn exp_sat(x: f64, scale: f64) -> f64 {
    unit(1.0 - (-(x.max(0.0)) / scale).exp())
}

fn hyper(n: f64, half: f64) -> f64 {
    let n = n.max(0.0);
    unit(n / (n + half))
}

fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let secs = to.signed_duration_since(from).num_seconds() as f64;
    (secs / 86_400.0).max(0.0)
}

fn window_start(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    TimeDelta::try_days(days)
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn nonblank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Inputs shared by all factor functions.
pub(crate) struct Ctx<'a> {
    pub snap: &'a IssueSnapshot,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub week: WorkWeek,
}

struct Raw {
    name: &'static str,
    fraction: f64,
    detail: String,
}

/// Computes all factors for an open issue, in [`WEIGHTS`] order.
pub(crate) fn compute(ctx: &Ctx<'_>) -> (Vec<Factor>, Facts) {
    let mut facts = Facts::default();
    let raws = [
        age(ctx, &mut facts),
        time_in_status(ctx),
        blockers(ctx, &mut facts),
        due_date(ctx, &mut facts),
        priority(ctx),
        reassignment_churn(ctx),
        status_churn(ctx),
        negative_sentiment(ctx, &mut facts),
        sentiment_trend(ctx),
    ];
    let factors = raws
        .into_iter()
        .map(|r| {
            let max = weight(r.name);
            Factor {
                name: r.name.to_string(),
                points: crate::util::round2(unit(r.fraction) * max),
                max_points: max,
                detail: r.detail,
            }
        })
        .collect();
    (factors, facts)
}

/// Old work is more likely to be forgotten, under-specified or stuck.
fn age(ctx: &Ctx<'_>, facts: &mut Facts) -> Raw {
    let days = days_between(ctx.snap.created, ctx.now);
    facts.age_days = days;
    Raw {
        name: names::AGE,
        fraction: exp_sat(days, AGE_SCALE_DAYS),
        detail: format!("open for {days:.1} days"),
    }
}

/// Sitting in one status much longer than that status usually lasts is the
/// classic sign of a stalled ticket; "long" depends on the category.
fn time_in_status(ctx: &Ctx<'_>) -> Raw {
    let since = ctx.snap.status_changed_at.unwrap_or(ctx.snap.created);
    let days = days_between(since, ctx.now);
    let (expected, kind) = match ctx.snap.status_category {
        StatusCategory::Indeterminate => (EXPECTED_DAYS_IN_PROGRESS, "in-progress"),
        _ => (EXPECTED_DAYS_NEW, "not-started"),
    };
    let r = days / expected;
    let status = if ctx.snap.status.trim().is_empty() {
        ctx.snap.status_category.as_str().to_string()
    } else {
        ctx.snap.status.trim().to_string()
    };
    Raw {
        name: names::TIME_IN_STATUS,
        fraction: r * r / (1.0 + r * r),
        detail: format!("in status '{status}' for {days:.1} days (expected about {expected:.0} for {kind} work)"),
    }
}

/// Work that cannot proceed until other work finishes; each extra blocker
/// adds less because the issue is already stuck.
fn blockers(ctx: &Ctx<'_>, facts: &mut Facts) -> Raw {
    let keys = ctx.snap.unresolved_blockers();
    let n = keys.len();
    facts.blocker_count = u32::try_from(n).unwrap_or(u32::MAX);
    let detail = if n == 0 {
        "no unresolved blockers".to_string()
    } else {
        format!(
            "blocked by {}: {}",
            plural(n as u64, "unresolved issue", "unresolved issues"),
            keys.join(", ")
        )
    };
    Raw {
        name: names::BLOCKERS,
        fraction: 1.0 - BLOCKER_DECAY.powi(i32::try_from(n).unwrap_or(i32::MAX)),
        detail,
    }
}

/// Missing a commitment is the most direct delivery risk; being about to
/// miss one is a smaller, earlier warning.
fn due_date(ctx: &Ctx<'_>, facts: &mut Facts) -> Raw {
    let Some(due) = ctx.snap.due_date else {
        return Raw {
            name: names::DUE_DATE,
            fraction: 0.0,
            detail: "no due date".to_string(),
        };
    };
    if ctx.today > due {
        let wd = ctx.week.working_days_between(due, ctx.today);
        facts.overdue_days = wd;
        let fraction = OVERDUE_BASE + (1.0 - OVERDUE_BASE) * exp_sat(wd as f64, OVERDUE_SCALE_DAYS);
        return Raw {
            name: names::DUE_DATE,
            fraction,
            detail: format!(
                "overdue by {} (due {due})",
                plural(wd as u64, "working day", "working days")
            ),
        };
    }
    let left = ctx.week.working_days_between(ctx.today, due);
    if left <= DUE_SOON_WORKING_DAYS {
        let window = (DUE_SOON_WORKING_DAYS + 1) as f64;
        let fraction = DUE_SOON_MAX * (window - left as f64) / window;
        let when = if left == 0 {
            format!("due today or before the next working day ({due})")
        } else {
            format!(
                "due in {} ({due})",
                plural(left as u64, "working day", "working days")
            )
        };
        return Raw {
            name: names::DUE_DATE,
            fraction,
            detail: when,
        };
    }
    Raw {
        name: names::DUE_DATE,
        fraction: 0.0,
        detail: format!(
            "due {due} ({} left)",
            plural(left as u64, "working day", "working days")
        ),
    }
}

/// Urgent work that slips hurts more; the priority also says someone is
/// watching it.
fn priority(ctx: &Ctx<'_>) -> Raw {
    let Some(p) = nonblank(&ctx.snap.priority) else {
        return Raw {
            name: names::PRIORITY,
            fraction: 0.0,
            detail: "no priority set".to_string(),
        };
    };
    let fraction = match p.to_ascii_lowercase().as_str() {
        // Older Jira schemes use Blocker/Critical/Major instead.
        "highest" | "blocker" | "critical" => 1.0,
        "high" | "major" => 0.6,
        _ => 0.0,
    };
    let detail = if fraction > 0.0 {
        format!("priority {p}")
    } else {
        format!("priority {p} (no extra weight)")
    };
    Raw {
        name: names::PRIORITY,
        fraction,
        detail,
    }
}

/// Hand-offs lose context and usually mean nobody owns the problem.
fn reassignment_churn(ctx: &Ctx<'_>) -> Raw {
    let start = window_start(ctx.now, REASSIGNMENT_WINDOW_DAYS);
    let n = ctx
        .snap
        .changelog
        .iter()
        .filter(|e| e.field.trim().eq_ignore_ascii_case("assignee") && e.at >= start)
        .filter(|e| {
            let from = nonblank(&e.from);
            // Initial assignment (from nobody) is not churn.
            from.is_some() && from != nonblank(&e.to)
        })
        .count();
    Raw {
        name: names::REASSIGNMENT_CHURN,
        fraction: hyper(n as f64, REASSIGNMENT_HALF),
        detail: format!(
            "reassigned {} in the last {REASSIGNMENT_WINDOW_DAYS} days",
            plural(n as u64, "time", "times")
        ),
    }
}

/// Counts transitions back into a status already visited in the window
/// (A→B→A, or Done→In Progress re-opens): rework and failed reviews.
pub(crate) fn count_status_flip_flops(snap: &IssueSnapshot, start: DateTime<Utc>) -> usize {
    let mut events: Vec<_> = snap
        .changelog
        .iter()
        .filter(|e| e.field.trim().eq_ignore_ascii_case("status") && e.at >= start)
        .collect();
    // Stable sort: ties keep input order, so the result is deterministic.
    events.sort_by_key(|e| e.at);
    let mut visited: BTreeSet<String> = BTreeSet::new();
    let mut flips = 0;
    for e in events {
        let from = nonblank(&e.from).map(str::to_lowercase);
        let to = nonblank(&e.to).map(str::to_lowercase);
        if let Some(f) = from {
            visited.insert(f);
        }
        if let Some(t) = to {
            if !visited.insert(t) {
                flips += 1;
            }
        }
    }
    flips
}

/// Back-and-forth transitions signal rework, unclear acceptance criteria or
/// failing reviews.
fn status_churn(ctx: &Ctx<'_>) -> Raw {
    let start = window_start(ctx.now, STATUS_CHURN_WINDOW_DAYS);
    let n = count_status_flip_flops(ctx.snap, start);
    Raw {
        name: names::STATUS_CHURN,
        fraction: hyper(n as f64, STATUS_CHURN_HALF),
        detail: format!(
            "{} in the last {STATUS_CHURN_WINDOW_DAYS} days",
            plural(
                n as u64,
                "back-and-forth status transition",
                "back-and-forth status transitions"
            )
        ),
    }
}

/// Frustrated discussion is an early signal that delivery is in trouble.
fn negative_sentiment(ctx: &Ctx<'_>, facts: &mut Facts) -> Raw {
    let total = ctx.snap.comments.len();
    let neg = ctx
        .snap
        .comments
        .iter()
        .filter(|c| c.sentiment == Label::Negative)
        .count();
    if total == 0 {
        return Raw {
            name: names::NEGATIVE_SENTIMENT,
            fraction: 0.0,
            detail: "no comments".to_string(),
        };
    }
    let share = neg as f64 / total as f64;
    facts.negative_share = share;
    Raw {
        name: names::NEGATIVE_SENTIMENT,
        fraction: neg as f64 / (total as f64 + SENTIMENT_PRIOR),
        detail: format!(
            "{neg} of {} negative ({})",
            plural(total as u64, "comment", "comments"),
            pct(share)
        ),
    }
}

/// A discussion turning sour is more alarming than one that always was.
fn sentiment_trend(ctx: &Ctx<'_>) -> Raw {
    let start = window_start(ctx.now, TREND_WINDOW_DAYS);
    let (mut recent, mut recent_neg, mut older, mut older_neg) = (0usize, 0usize, 0usize, 0usize);
    for c in &ctx.snap.comments {
        let neg = usize::from(c.sentiment == Label::Negative);
        if c.at > start {
            recent += 1;
            recent_neg += neg;
        } else {
            older += 1;
            older_neg += neg;
        }
    }
    if recent == 0 || older == 0 {
        return Raw {
            name: names::SENTIMENT_TREND,
            fraction: 0.0,
            detail: format!(
                "not enough comment history ({recent} recent, {older} older than {TREND_WINDOW_DAYS} days)"
            ),
        };
    }
    let rs = recent_neg as f64 / recent as f64;
    let os = older_neg as f64 / older as f64;
    let trend = rs - os;
    let detail = if trend > 0.0 {
        format!(
            "negative share rose from {} to {} in the last {TREND_WINDOW_DAYS} days",
            pct(os),
            pct(rs)
        )
    } else {
        format!(
            "negative share {} in the last {TREND_WINDOW_DAYS} days vs {} before (not rising)",
            pct(rs),
            pct(os)
        )
    };
    Raw {
        name: names::SENTIMENT_TREND,
        fraction: trend,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_100_and_names_unique() {
        let sum: f64 = WEIGHTS.iter().map(|(_, w)| w).sum();
        assert_eq!(sum, 100.0);
        let names: BTreeSet<_> = WEIGHTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), WEIGHTS.len());
        assert_eq!(weight("nope"), 0.0);
    }

    #[test]
    fn shapes_are_bounded_and_monotonic() {
        let mut prev = (0.0, 0.0);
        for i in 0..1000 {
            let x = i as f64 * 0.5;
            let (a, b) = (exp_sat(x, 20.0), hyper(x, 2.0));
            assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b));
            assert!(a >= prev.0 && b >= prev.1);
            prev = (a, b);
        }
        assert_eq!(exp_sat(-5.0, 1.0), 0.0);
        assert_eq!(hyper(f64::NAN, 2.0), 0.0);
        assert!(exp_sat(60.0, AGE_SCALE_DAYS) > 0.94);
    }

    #[test]
    fn window_start_saturates() {
        assert_eq!(
            window_start(DateTime::<Utc>::MIN_UTC, 7),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
