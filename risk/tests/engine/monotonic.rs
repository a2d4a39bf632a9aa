//! Each factor is monotonic: more of the bad thing never lowers the score.

use crate::fixtures::*;
use chrono::Duration;
use keel_risk::{assess_issue, factor_names as n, IssueSnapshot, Label, Settings, StatusCategory};

/// Applies `step(snapshot, i)` for increasing `i` and checks that both the
/// named factor's points and the total score never decrease.
fn assert_monotonic(name: &str, steps: usize, step: impl Fn(&mut IssueSnapshot, usize)) {
    for base in [fresh_issue(), doomed_issue()] {
        let mut prev: Option<(f64, u8)> = None;
        let mut first_last = (0.0, 0.0);
        for i in 0..steps {
            let mut s = base.clone();
            step(&mut s, i);
            let r = assess_issue(&s, &Settings::default(), now());
            let p = r.factor_points(name).unwrap();
            if let Some((pp, ps)) = prev {
                assert!(
                    p >= pp,
                    "{name}: points fell from {pp} to {p} at step {i} (base {})",
                    base.key
                );
                assert!(
                    r.score >= ps,
                    "{name}: score fell from {ps} to {} at step {i} (base {})",
                    r.score,
                    base.key
                );
            } else {
                first_last.0 = p;
            }
            first_last.1 = p;
            prev = Some((p, r.score));
        }
        assert!(
            first_last.1 > first_last.0,
            "{name}: factor never moved on base {}",
            base.key
        );
    }
}

#[test]
fn more_blockers_never_lower_score() {
    assert_monotonic(n::BLOCKERS, 25, |s, i| {
        s.blocked_by = (0..i)
            .map(|k| link(&format!("DEP-{k}"), StatusCategory::New))
            .collect();
    });
}

#[test]
fn resolved_blockers_do_not_count() {
    let mut s = fresh_issue();
    s.blocked_by = (0..5)
        .map(|k| link(&format!("DEP-{k}"), StatusCategory::Done))
        .collect();
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.factor_points(n::BLOCKERS), Some(0.0));
    assert_eq!(r.blocker_count, 0);
}

#[test]
fn blockers_have_diminishing_returns() {
    let pts = |k: usize| {
        let mut s = fresh_issue();
        s.blocked_by = (0..k)
            .map(|j| link(&format!("DEP-{j}"), StatusCategory::New))
            .collect();
        assert_eq!(
            assess_issue(&s, &Settings::default(), now()).blocker_count as usize,
            k
        );
        assess_issue(&s, &Settings::default(), now())
            .factor_points(n::BLOCKERS)
            .unwrap()
    };
    let (p1, p2, p3) = (pts(1), pts(2), pts(3));
    assert_eq!(p1, 12.0);
    assert!(p2 - p1 < p1 && p3 - p2 < p2 - p1);
    assert!(pts(100) <= 20.0);
}

#[test]
fn older_issue_never_lower() {
    assert_monotonic(n::AGE, 120, |s, i| {
        s.created = days_ago(i as i64);
        s.status_changed_at = Some(days_ago(0));
    });
}

#[test]
fn longer_in_status_never_lower() {
    assert_monotonic(n::TIME_IN_STATUS, 60, |s, i| {
        s.status_changed_at = Some(days_ago(i as i64))
    });
}

#[test]
fn later_due_date_passage_never_lower() {
    // Step i moves the due date one day earlier: from 30 days ahead to 60 behind.
    assert_monotonic(n::DUE_DATE, 91, |s, i| {
        s.due_date = Some(now().date_naive() + Duration::days(30 - i as i64));
    });
}

#[test]
fn overdue_always_beats_due_soon() {
    let mut s = fresh_issue();
    s.due_date = Some(now().date_naive());
    let soon = assess_issue(&s, &Settings::default(), now())
        .factor_points(n::DUE_DATE)
        .unwrap();
    s.due_date = Some(now().date_naive() - Duration::days(1));
    let overdue = assess_issue(&s, &Settings::default(), now())
        .factor_points(n::DUE_DATE)
        .unwrap();
    assert!(overdue > soon);
}

#[test]
fn higher_priority_never_lower() {
    let order = ["Lowest", "Low", "Medium", "High", "Highest"];
    assert_monotonic(n::PRIORITY, order.len(), |s, i| {
        s.priority = Some(order[i].into())
    });
}

#[test]
fn more_reassignments_never_lower() {
    assert_monotonic(n::REASSIGNMENT_CHURN, 15, |s, i| {
        s.changelog = (0..i)
            .map(|k| {
                change(
                    1,
                    "assignee",
                    Some(&format!("p{k}")),
                    Some(&format!("p{}", k + 1)),
                )
            })
            .collect();
    });
}

#[test]
fn more_flip_flops_never_lower() {
    assert_monotonic(n::STATUS_CHURN, 15, |s, i| {
        s.changelog = vec![change(20, "status", Some("To Do"), Some("In Progress"))];
        for k in 0..i {
            let (from, to) = if k % 2 == 0 {
                ("In Progress", "In Review")
            } else {
                ("In Review", "In Progress")
            };
            s.changelog
                .push(change(19 - k as i64, "status", Some(from), Some(to)));
        }
    });
}

#[test]
fn more_negative_comments_never_lower() {
    assert_monotonic(n::NEGATIVE_SENTIMENT, 30, |s, i| {
        s.comments
            .extend((0..i).map(|_| comment(10, "x", Label::Negative)));
    });
}

#[test]
fn more_recent_negativity_never_lower() {
    assert_monotonic(n::SENTIMENT_TREND, 20, |s, i| {
        s.comments = (0..5).map(|_| comment(20, "x", Label::Neutral)).collect();
        s.comments.extend((0..20).map(|k| {
            comment(
                1,
                "y",
                if k < i {
                    Label::Negative
                } else {
                    Label::Neutral
                },
            )
        }));
    });
}
