//! Stable JSON: field names and shapes are an API for the job store and UI.

use crate::fixtures::*;
use keel_risk::{assess_issue, rollup_sprint, IssueRisk, IssueSnapshot, Settings, SprintRollup};

#[test]
fn issue_risk_json_snapshot() {
    let r = assess_issue(&doomed_issue(), &Settings::default(), now());
    let json = serde_json::to_string_pretty(&r).unwrap();
    assert_eq!(json, EXPECTED.trim(), "actual JSON:\n{json}");
    let back: IssueRisk = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn snapshot_round_trips() {
    let s = doomed_issue();
    let json = serde_json::to_string(&s).unwrap();
    let back: IssueSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert!(json.contains(r#""status_category":"indeterminate""#));
    assert!(json.contains(r#""sentiment":"negative""#));
}

#[test]
fn snapshot_optional_fields_default() {
    let json = r#"{"key":"A-1","project_key":"A","status_category":"new",
        "created":"2024-05-01T00:00:00Z","updated":"2024-05-01T00:00:00Z"}"#;
    let s: IssueSnapshot = serde_json::from_str(json).unwrap();
    assert!(s.comments.is_empty() && s.people.is_empty() && s.due_date.is_none());
    let r = assess_issue(&s, &Settings::default(), now());
    assert_eq!(r.issue_key, "A-1");
}

#[test]
fn sprint_rollup_round_trips_with_stable_names() {
    let snaps = vec![doomed_issue(), fresh_issue()];
    let risks: Vec<_> = snaps
        .iter()
        .map(|s| assess_issue(s, &Settings::default(), now()))
        .collect();
    let r = rollup_sprint("9", "Sprint 9", &risks, &snaps);
    let v = serde_json::to_value(&r).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    let mut expected = vec![
        "sprint_id",
        "sprint_name",
        "total",
        "done",
        "at_risk",
        "by_level",
        "top_risks",
        "blocker_graph",
        "cost_at_risk",
        "total_daily_cost",
        "average_score",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(v["by_level"]["critical"], 1);
    assert_eq!(v["blocker_graph"]["edges"][0]["from"], "ABC-2");
    assert_eq!(v["top_risks"][0]["level"], "critical");
    let back: SprintRollup = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

/// Update deliberately (and bump `MODEL_VERSION` if scores change).
const EXPECTED: &str = r#"{
  "issue_key": "ABC-42",
  "project_key": "ABC",
  "model_version": "keel-risk/1",
  "assessed_at": "2024-05-07T12:00:00Z",
  "score": 81,
  "level": "critical",
  "resolved": false,
  "factors": [
    {
      "name": "age",
      "points": 7.91,
      "max_points": 8.0,
      "detail": "open for 90.0 days"
    },
    {
      "name": "time_in_status",
      "points": 11.13,
      "max_points": 12.0,
      "detail": "in status 'In Progress' for 25.0 days (expected about 7 for in-progress work)"
    },
    {
      "name": "blockers",
      "points": 18.72,
      "max_points": 20.0,
      "detail": "blocked by 3 unresolved issues: ABC-5, ABC-7, OPS-3"
    },
    {
      "name": "due_date",
      "points": 21.11,
      "max_points": 22.0,
      "detail": "overdue by 10 working days (due 2024-04-23)"
    },
    {
      "name": "priority",
      "points": 8.0,
      "max_points": 8.0,
      "detail": "priority Highest"
    },
    {
      "name": "reassignment_churn",
      "points": 2.0,
      "max_points": 6.0,
      "detail": "reassigned 1 time in the last 14 days"
    },
    {
      "name": "status_churn",
      "points": 2.0,
      "max_points": 6.0,
      "detail": "1 back-and-forth status transition in the last 30 days"
    },
    {
      "name": "negative_sentiment",
      "points": 8.57,
      "max_points": 12.0,
      "detail": "10 of 12 comments negative (83%)"
    },
    {
      "name": "sentiment_trend",
      "points": 1.5,
      "max_points": 6.0,
      "detail": "negative share rose from 75% to 100% in the last 7 days"
    }
  ],
  "daily_cost_of_delay": 10000.0,
  "people_involved": 4,
  "overdue_days": 10,
  "cost_so_far": 100000.0,
  "blocker_count": 3,
  "negative_sentiment_share": 0.83,
  "age_days": 90.0,
  "summary": "Critical risk (score 81): overdue by 10 working days (due 2024-04-23); blocked by 3 unresolved issues: ABC-5, ABC-7, OPS-3; in status 'In Progress' for 25.0 days (expected about 7 for in-progress work)."
}
"#;
