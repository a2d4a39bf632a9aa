use crate::fixtures::*;
use keel_risk::{
    assess_issue, assess_issues, factor_names as n, IssueRisk, Label, RiskLevel, Settings,
    StatusCategory, WEIGHTS,
};

fn points(r: &IssueRisk, name: &str) -> f64 {
    r.factor_points(name)
        .unwrap_or_else(|| panic!("factor {name} missing"))
}

fn detail<'a>(r: &'a IssueRisk, name: &str) -> &'a str {
    &r.factors.iter().find(|f| f.name == name).unwrap().detail
}

#[test]
fn fresh_issue_scores_low() {
    let r = assess_issue(&fresh_issue(), &Settings::default(), now());
    assert_eq!(r.level, RiskLevel::Low);
    assert!(r.score <= 5, "score {}", r.score);
    assert!(!r.resolved);
    assert_eq!(r.overdue_days, 0);
    assert_eq!(r.cost_so_far, 0.0);
    assert_eq!(r.blocker_count, 0);
    assert_eq!(points(&r, n::BLOCKERS), 0.0);
    assert_eq!(points(&r, n::DUE_DATE), 0.0);
    assert_eq!(points(&r, n::PRIORITY), 0.0);
    assert_eq!(
        r.summary,
        format!("Low risk (score {}): no significant risk factors.", r.score)
    );
}

#[test]
fn doomed_issue_is_critical_with_explained_factors() {
    let r = assess_issue(&doomed_issue(), &Settings::default(), now());
    assert_eq!(
        r.level,
        RiskLevel::Critical,
        "score {} factors {:#?}",
        r.score,
        r.factors
    );
    assert!(r.score >= 75);
    assert_eq!(r.overdue_days, 10);
    assert_eq!(r.blocker_count, 3);
    assert_eq!(
        detail(&r, n::BLOCKERS),
        "blocked by 3 unresolved issues: ABC-5, ABC-7, OPS-3"
    );
    assert_eq!(
        detail(&r, n::DUE_DATE),
        "overdue by 10 working days (due 2024-04-23)"
    );
    assert_eq!(detail(&r, n::PRIORITY), "priority Highest");
    assert_eq!(
        detail(&r, n::NEGATIVE_SENTIMENT),
        "10 of 12 comments negative (83%)"
    );
    for name in [
        n::AGE,
        n::TIME_IN_STATUS,
        n::BLOCKERS,
        n::DUE_DATE,
        n::PRIORITY,
        n::NEGATIVE_SENTIMENT,
    ] {
        assert!(points(&r, name) > 0.0, "{name} should contribute");
    }
    assert_eq!(points(&r, n::PRIORITY), 8.0);
    // 1 - 0.4^3 = 0.936 of 20.
    assert_eq!(points(&r, n::BLOCKERS), 18.72);
    // 12 * 10 / (12 + 2)
    assert_eq!(points(&r, n::NEGATIVE_SENTIMENT), 8.57);
    assert!((r.negative_sentiment_share - 0.83).abs() < 1e-9);
    assert_eq!(r.age_days, 90.0);
    assert!(r.summary.starts_with(&format!(
        "Critical risk (score {}): overdue by 10 working days",
        r.score
    )));
    assert!(r.summary.contains("blocked by 3 unresolved issues"));
    assert_eq!(
        detail(&r, n::REASSIGNMENT_CHURN),
        "reassigned 1 time in the last 14 days"
    );
    assert_eq!(points(&r, n::REASSIGNMENT_CHURN), 2.0);
    assert_eq!(points(&r, n::STATUS_CHURN), 2.0);
    // recent 4/4 negative vs older 6/8 → +0.25 of 6
    assert_eq!(points(&r, n::SENTIMENT_TREND), 1.5);
}

#[test]
fn doomed_issue_is_critical_even_without_churn_or_trend() {
    let mut s = doomed_issue();
    s.changelog.clear();
    for c in &mut s.comments {
        c.at = days_ago(20);
    }
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(
        points(&r, n::REASSIGNMENT_CHURN)
            + points(&r, n::STATUS_CHURN)
            + points(&r, n::SENTIMENT_TREND),
        0.0
    );
    assert_eq!(r.level, RiskLevel::Critical, "score {}", r.score);
}

#[test]
fn score_is_rounded_sum_of_factor_points() {
    for snap in [fresh_issue(), doomed_issue()] {
        let r = assess_issue(&snap, &Settings::default(), now());
        let sum: f64 = r.factors.iter().map(|f| f.points).sum();
        assert_eq!(r.score, sum.round() as u8);
        assert_eq!(r.factors.len(), WEIGHTS.len());
        for (f, (name, w)) in r.factors.iter().zip(WEIGHTS) {
            assert_eq!(f.name, name, "factors keep the documented order");
            assert_eq!(f.max_points, w);
            assert!(f.points >= 0.0 && f.points <= f.max_points);
        }
    }
}

#[test]
fn done_issue_scores_zero_with_resolved_factor() {
    let mut s = doomed_issue();
    s.status_category = StatusCategory::Done;
    s.status = "Closed".into();
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.score, 0);
    assert_eq!(r.level, RiskLevel::Low);
    assert!(r.resolved);
    assert_eq!(r.factors.len(), 1);
    assert_eq!(r.factors[0].name, n::RESOLVED);
    assert_eq!(r.factors[0].points, 0.0);
    assert!(r.factors[0].detail.contains("resolved"));
    assert_eq!(r.daily_cost_of_delay, 0.0);
    assert_eq!(r.cost_so_far, 0.0);
    assert_eq!(r.overdue_days, 0);
    assert!(r.summary.starts_with("Resolved:"));
}

#[test]
fn overdue_friday_to_tuesday_is_two_working_days() {
    let mut s = fresh_issue();
    s.due_date = Some(date(2024, 5, 3)); // Friday; now is Tuesday 2024-05-07
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.overdue_days, 2);
    assert_eq!(
        detail(&r, n::DUE_DATE),
        "overdue by 2 working days (due 2024-05-03)"
    );
}

#[test]
fn overdue_counts_configured_working_days_only() {
    let mut s = fresh_issue();
    s.due_date = Some(date(2024, 5, 3)); // Friday
    let settings = Settings {
        working_days: vec![chrono::Weekday::Sat, chrono::Weekday::Sun],
        ..Settings::default()
    };
    let r = assess_issue(&s, &settings, now());
    assert_eq!(r.overdue_days, 2);
    let settings = Settings {
        working_days: vec![chrono::Weekday::Wed],
        ..Settings::default()
    };
    let r = assess_issue(&s, &settings, now());
    assert_eq!(r.overdue_days, 0, "no Wednesday between Fri and Tue");
    assert!(points(&r, n::DUE_DATE) > 0.0, "still overdue by calendar");
    assert_eq!(r.cost_so_far, 0.0);
}

#[test]
fn due_today_is_not_overdue_but_due_soon() {
    let mut s = fresh_issue();
    s.due_date = Some(now().date_naive());
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.overdue_days, 0);
    // 0.45 * 3/3 of 22
    assert_eq!(points(&r, n::DUE_DATE), 9.9);
    s.due_date = Some(date(2024, 5, 9)); // Thursday: 2 working days left
    let r2 = assess_issue(&s, &Settings::default(), now());
    assert_eq!(points(&r2, n::DUE_DATE), 3.3);
    assert_eq!(
        detail(&r2, n::DUE_DATE),
        "due in 2 working days (2024-05-09)"
    );
    s.due_date = Some(date(2024, 5, 10)); // Friday: 3 left, outside window
    let r3 = assess_issue(&s, &Settings::default(), now());
    assert_eq!(points(&r3, n::DUE_DATE), 0.0);
}

#[test]
fn cost_math() {
    let s = doomed_issue(); // 4 people (carol assignee, dave/erin commenters, frank)
    let settings = Settings {
        daily_rate_per_person: 1000.0,
        ..Settings::default()
    };
    let r = assess_issue(&s, &settings, now());
    assert_eq!(r.people_involved, 4);
    assert_eq!(r.daily_cost_of_delay, 4000.0);
    assert_eq!(r.cost_so_far, 40_000.0); // 10 working days
                                         // Default rate.
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.daily_cost_of_delay, 10_000.0);
    assert_eq!(r.cost_so_far, 100_000.0);
}

#[test]
fn cost_uses_at_least_one_person_and_unions_people() {
    let mut s = fresh_issue();
    s.people.clear();
    s.assignee = None;
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.people_involved, 0);
    assert_eq!(r.daily_cost_of_delay, 2500.0);

    s.assignee = Some("zoe".into());
    s.comments.push(comment(1, "yan", Label::Positive));
    s.comments.push(comment(1, "zoe", Label::Positive));
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.people_involved, 2);
    assert_eq!(r.daily_cost_of_delay, 5000.0);
}

#[test]
fn cost_rounds_to_cents() {
    let mut s = fresh_issue();
    s.due_date = Some(date(2024, 5, 6)); // Monday: 1 working day overdue
    let settings = Settings {
        daily_rate_per_person: 333.333_3,
        ..Settings::default()
    };
    let r = assess_issue(&s, &settings, now());
    assert_eq!(r.people_involved, 2);
    assert_eq!(r.daily_cost_of_delay, 666.67);
    assert_eq!(r.cost_so_far, 666.67);
}

#[test]
fn priority_levels() {
    let mut s = fresh_issue();
    let mut got = Vec::new();
    for p in [
        Some("Highest"),
        Some("high"),
        Some("Medium"),
        Some("Low"),
        Some("Lowest"),
        None,
        Some("Blocker"),
    ] {
        s.priority = p.map(Into::into);
        got.push(points(
            &assess_issue(&s, &Settings::default(), now()),
            n::PRIORITY,
        ));
    }
    assert_eq!(got, vec![8.0, 4.8, 0.0, 0.0, 0.0, 0.0, 8.0]);
}

#[test]
fn reassignments_in_window_count_initial_assignment_does_not() {
    let mut s = fresh_issue();
    s.changelog = vec![
        change(3, "assignee", None, Some("alice")), // initial: not churn
        change(2, "assignee", Some("alice"), Some("bob")),
        change(1, "Assignee", Some("bob"), Some("carol")),
        change(20, "assignee", Some("x"), Some("y")), // outside 14 days
        change(1, "status", Some("To Do"), Some("In Progress")),
    ];
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(
        detail(&r, n::REASSIGNMENT_CHURN),
        "reassigned 2 times in the last 14 days"
    );
    // 6 * 2 / (2 + 2)
    assert_eq!(points(&r, n::REASSIGNMENT_CHURN), 3.0);
}

#[test]
fn status_flip_flops_counted() {
    let mut s = fresh_issue();
    s.changelog = vec![
        change(10, "status", Some("To Do"), Some("In Progress")),
        change(8, "status", Some("In Progress"), Some("In Review")),
        change(6, "status", Some("In Review"), Some("In Progress")), // back
        change(5, "status", Some("In Progress"), Some("In Review")), // back
        change(4, "status", Some("In Review"), Some("Done")),
        change(3, "status", Some("Done"), Some("in progress")), // reopen (case-insensitive)
        change(40, "status", Some("A"), Some("B")),             // outside 30 days
    ];
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(
        detail(&r, n::STATUS_CHURN),
        "3 back-and-forth status transitions in the last 30 days"
    );
    // 6 * 3 / 5
    assert_eq!(points(&r, n::STATUS_CHURN), 3.6);

    // A forward-only workflow has no churn.
    s.changelog.truncate(2);
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(points(&r, n::STATUS_CHURN), 0.0);
}

#[test]
fn sentiment_trend_needs_history_and_measures_rise() {
    let mut s = fresh_issue();
    s.comments = vec![comment(2, "a", Label::Negative)];
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(points(&r, n::SENTIMENT_TREND), 0.0);
    assert!(detail(&r, n::SENTIMENT_TREND).starts_with("not enough comment history"));

    s.comments = vec![
        comment(20, "a", Label::Neutral),
        comment(15, "a", Label::Negative),
        comment(10, "b", Label::Positive),
        comment(9, "b", Label::Neutral),
        comment(3, "a", Label::Negative),
        comment(2, "b", Label::Negative),
        comment(1, "c", Label::Neutral),
        comment(0, "c", Label::Negative),
    ];
    let r = assess_issue(&s, &Settings::default(), now());
    // recent 3/4 = 0.75, older 1/4 = 0.25 → 0.5 * 6
    assert_eq!(points(&r, n::SENTIMENT_TREND), 3.0);
    assert_eq!(
        detail(&r, n::SENTIMENT_TREND),
        "negative share rose from 25% to 75% in the last 7 days"
    );

    // Improving discussion adds nothing.
    for c in &mut s.comments {
        c.sentiment = if c.at > days_ago(7) {
            Label::Positive
        } else {
            Label::Negative
        };
    }
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(points(&r, n::SENTIMENT_TREND), 0.0);
}

#[test]
fn time_in_status_depends_on_category() {
    let mut s = fresh_issue();
    s.status_changed_at = Some(days_ago(7));
    s.status_category = StatusCategory::New;
    let new = points(
        &assess_issue(&s, &Settings::default(), now()),
        n::TIME_IN_STATUS,
    );
    s.status_category = StatusCategory::Indeterminate;
    let wip = points(
        &assess_issue(&s, &Settings::default(), now()),
        n::TIME_IN_STATUS,
    );
    // 7 days is the in-progress norm (half of 12) but only half the backlog norm.
    assert_eq!(wip, 6.0);
    assert_eq!(new, 2.4);
    // Fallback to `created` when the status change time is unknown.
    s.status_changed_at = None;
    s.created = days_ago(7);
    assert_eq!(
        points(
            &assess_issue(&s, &Settings::default(), now()),
            n::TIME_IN_STATUS
        ),
        6.0
    );
}

#[test]
fn future_timestamps_do_not_go_negative() {
    let mut s = fresh_issue();
    s.created = now() + chrono::Duration::days(3);
    s.status_changed_at = Some(now() + chrono::Duration::days(3));
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.age_days, 0.0);
    assert_eq!(points(&r, n::AGE), 0.0);
    assert_eq!(points(&r, n::TIME_IN_STATUS), 0.0);
}

#[test]
fn thresholds_from_settings_drive_level() {
    let s = doomed_issue();
    let base = assess_issue(&s, &Settings::default(), now());
    let mut settings = Settings::default();
    settings.thresholds.medium = base.score.saturating_sub(2).max(1);
    settings.thresholds.high = base.score.saturating_sub(1).max(2);
    settings.thresholds.critical = 100;
    let r = assess_issue(&s, &settings, now());
    assert_eq!(r.score, base.score);
    assert_eq!(r.level, RiskLevel::High);
}

#[test]
fn assess_issues_keeps_order() {
    let rs = assess_issues(
        &[doomed_issue(), fresh_issue()],
        &Settings::default(),
        now(),
    );
    assert_eq!(
        rs.iter().map(|r| r.issue_key.as_str()).collect::<Vec<_>>(),
        vec!["ABC-42", "ABC-1"]
    );
}

#[test]
fn determinism_same_input_same_bytes() {
    let settings = Settings::default();
    let a = serde_json::to_string(&assess_issue(&doomed_issue(), &settings, now())).unwrap();
    let b = serde_json::to_string(&assess_issue(&doomed_issue(), &settings, now())).unwrap();
    assert_eq!(a, b);

    // Input order of changelog/comments/blockers does not matter.
    let mut shuffled = doomed_issue();
    shuffled.blocked_by.reverse();
    shuffled.comments.reverse();
    shuffled.changelog.reverse();
    let c = serde_json::to_string(&assess_issue(&shuffled, &settings, now())).unwrap();
    assert_eq!(a, c);
}
