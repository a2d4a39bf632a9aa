//! Shared builders with a fixed clock.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use keel_risk::{ChangeEvent, CommentSentiment, IssueSnapshot, Label, LinkedIssue, StatusCategory};

/// Tuesday 2024-05-07 12:00 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 7, 12, 0, 0).unwrap()
}

pub fn days_ago(d: i64) -> DateTime<Utc> {
    now() - Duration::days(d)
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn link(key: &str, cat: StatusCategory) -> LinkedIssue {
    LinkedIssue {
        key: key.into(),
        status_category: cat,
        summary: format!("{key} summary"),
    }
}

pub fn comment(days_back: i64, author: &str, sentiment: Label) -> CommentSentiment {
    let negative_prob = match sentiment {
        Label::Negative => 0.9,
        Label::Neutral => 0.2,
        Label::Positive => 0.05,
    };
    CommentSentiment {
        at: days_ago(days_back),
        author: author.into(),
        sentiment,
        negative_prob,
    }
}

pub fn change(days_back: i64, field: &str, from: Option<&str>, to: Option<&str>) -> ChangeEvent {
    ChangeEvent {
        at: days_ago(days_back),
        field: field.into(),
        from: from.map(Into::into),
        to: to.map(Into::into),
    }
}

/// Created yesterday, not started, Medium, due in four weeks.
pub fn fresh_issue() -> IssueSnapshot {
    let mut s = IssueSnapshot::new("ABC-1", "ABC", StatusCategory::New, days_ago(1));
    s.summary = "Add CSV export".into();
    s.status = "To Do".into();
    s.priority = Some("Medium".into());
    s.assignee = Some("alice".into());
    s.due_date = Some(date(2024, 6, 4));
    s.people = ["alice".to_string(), "bob".to_string()].into();
    s
}

/// 90 days old, in progress for 25, ten working days overdue, three open
/// blockers, Highest, ten of twelve comments negative (all four recent ones),
/// one reassignment and one review bounce in the windows.
pub fn doomed_issue() -> IssueSnapshot {
    let mut s = IssueSnapshot::new("ABC-42", "ABC", StatusCategory::Indeterminate, days_ago(90));
    s.summary = "Migrate billing to new provider".into();
    s.status = "In Progress".into();
    s.priority = Some("Highest".into());
    s.assignee = Some("carol".into());
    s.updated = days_ago(1);
    // Tuesday 2024-04-23: ten working days before Tuesday 2024-05-07.
    s.due_date = Some(date(2024, 4, 23));
    s.story_points = Some(13.0);
    s.status_changed_at = Some(days_ago(25));
    s.changelog = vec![
        change(40, "assignee", None, Some("bob")),
        change(10, "assignee", Some("bob"), Some("carol")),
        change(45, "status", Some("To Do"), Some("In Progress")),
        change(28, "status", Some("In Progress"), Some("In Review")),
        change(25, "status", Some("In Review"), Some("In Progress")),
    ];
    s.blocked_by = vec![
        link("ABC-7", StatusCategory::Indeterminate),
        link("OPS-3", StatusCategory::New),
        link("ABC-5", StatusCategory::New),
        link("ABC-2", StatusCategory::Done),
    ];
    s.comments = (0..12)
        .map(|i| {
            let sentiment = if i < 2 {
                Label::Neutral
            } else {
                Label::Negative
            };
            comment(
                22 - 2 * i,
                if i % 2 == 0 { "dave" } else { "erin" },
                sentiment,
            )
        })
        .collect();
    s.people = ["carol", "dave", "erin", "frank"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    s
}
