//! The built-in demo Jira driven by the real `JiraClient`: every endpoint
//! the client uses, paging (with small pages so that every collection spans
//! several), authentication, Jira's error mapping and the snapshot mapping.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use keel_jira::demo::{
    DemoJira, DEMO_BOARD_ID, DEMO_EMAIL, DEMO_PROJECT_KEYS, DEMO_SPRINT_ID, DEMO_TOKEN,
};
use keel_jira::{JiraClient, JiraConfig, JiraError, Sentiment};
use keel_risk::Label;
use secrecy::SecretString;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(page_size: u32) -> JiraConfig {
    JiraConfig {
        allow_insecure_http: true,
        timeout: Duration::from_secs(10),
        page_size,
        ..JiraConfig::default()
    }
}

fn client(demo: &DemoJira, page_size: u32) -> JiraClient {
    JiraClient::new(
        &demo.base_url,
        DEMO_EMAIL,
        SecretString::from(DEMO_TOKEN),
        config(page_size),
    )
    .unwrap()
}

/// A crude stand-in for the sentiment model: enough to see that the demo's
/// comments are of mixed tone.
fn classify(text: &str) -> Sentiment {
    let t = text.to_lowercase();
    let negative = [
        "blocked",
        "broken",
        "failed",
        "frustrating",
        "slipping",
        "painful",
        "worried",
    ]
    .iter()
    .any(|w| t.contains(w));
    let positive = ["great", "nice", "thank", "lovely"]
        .iter()
        .any(|w| t.contains(w));
    match (negative, positive) {
        (true, _) => Sentiment {
            label: Label::Negative,
            negative_prob: 0.9,
        },
        (false, true) => Sentiment {
            label: Label::Positive,
            negative_prob: 0.05,
        },
        _ => Sentiment {
            label: Label::Neutral,
            negative_prob: 0.2,
        },
    }
}

#[tokio::test]
async fn myself_with_demo_credentials() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    assert!(demo.base_url.starts_with("http://127.0.0.1:"));
    let me = client(&demo, 100).myself().await.unwrap();
    assert_eq!(me.email_address.as_deref(), Some(DEMO_EMAIL));
    assert!(me.display_name.unwrap().contains("demo"));
    demo.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_a_401() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    let wrong = JiraClient::new(
        &demo.base_url,
        DEMO_EMAIL,
        SecretString::from("not-the-token"),
        config(100),
    )
    .unwrap();
    let err = wrong.myself().await.unwrap_err();
    assert!(
        matches!(err, JiraError::Unauthorized { status: 401 }),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // No Authorization header at all: Jira's error body.
    let resp = reqwest::get(format!("{}/rest/api/3/myself", demo.base_url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["errorMessages"][0]
        .as_str()
        .unwrap()
        .contains("authenticated"));
    assert_eq!(body["errors"], serde_json::json!({}));
}

#[tokio::test]
async fn non_loopback_addresses_are_refused() {
    let err = DemoJira::start("0.0.0.0:0".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn issue_gets_full_changelog_and_comments_through_paging() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    let c = client(&demo, 4);

    // The issue response embeds only a first slice...
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/rest/api/3/issue/DEMO-1?expand=changelog&fields=summary,comment",
            demo.base_url
        ))
        .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        raw["fields"].as_object().unwrap().len(),
        2,
        "only the requested fields"
    );
    let embedded = raw["changelog"]["histories"].as_array().unwrap().len() as u64;
    let changelog_total = raw["changelog"]["total"].as_u64().unwrap();
    assert!(
        embedded < changelog_total,
        "{embedded} of {changelog_total}"
    );
    let comment_total = raw["fields"]["comment"]["total"].as_u64().unwrap();
    assert!(
        raw["fields"]["comment"]["comments"]
            .as_array()
            .unwrap()
            .len()
            < comment_total as usize
    );

    // ...and the client completes both from the paged endpoints (pages of 4).
    let issue = c.issue("DEMO-1").await.unwrap();
    assert_eq!(issue.histories().len() as u64, changelog_total);
    assert_eq!(issue.comments().len() as u64, comment_total);
    assert!(issue
        .comments()
        .windows(2)
        .all(|w| w[0].created <= w[1].created));
    assert_eq!(
        c.issue_changelog("DEMO-1").await.unwrap().len() as u64,
        changelog_total
    );
    assert_eq!(
        c.issue_comments("DEMO-1").await.unwrap().len() as u64,
        comment_total
    );

    let snap = c.to_snapshot(&issue, classify).unwrap();
    assert_eq!(snap.project_key, "DEMO");
    assert!(snap.story_points.is_some());
    assert!(snap.due_date.is_some());
    assert!(snap.blocked_by.len() >= 2);
    assert!(snap.changelog.iter().any(|e| e.field == "status"));
    assert!(snap.changelog.iter().any(|e| e.field == "assignee"));
    assert!(snap.comments.iter().any(|c| c.sentiment == Label::Negative));
}

#[tokio::test]
async fn unknown_issue_and_sprint_are_404() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    let c = client(&demo, 100);
    let err = c.issue("DEMO-999").await.unwrap_err();
    assert!(matches!(err, JiraError::NotFound { .. }), "{err:?}");
    let err = c.sprint(999).await.unwrap_err();
    assert!(matches!(err, JiraError::NotFound { .. }), "{err:?}");
    assert!(c.active_sprint(2).await.is_err());

    let resp = reqwest::Client::new()
        .get(format!("{}/rest/api/3/issue/NOPE-1", demo.base_url))
        .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}})
    );
}

#[tokio::test]
async fn search_pages_through_both_projects() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    let c = client(&demo, 7);
    let jql = format!("project in ({}) ORDER BY key", DEMO_PROJECT_KEYS.join(", "));
    let all = c.search_jql(&jql, &[]).await.unwrap();
    assert!(all.len() >= 28, "{}", all.len());
    for p in DEMO_PROJECT_KEYS {
        assert!(all.iter().any(|i| i.project_key() == *p), "{p}");
    }
    let mut keys: Vec<&str> = all.iter().map(|i| i.key.as_str()).collect();
    let before = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), before, "no issue twice across pages");
    assert_eq!(all[0].key, "DEMO-1");
    assert_eq!(all[1].key, "DEMO-2", "natural key order");

    let ops = c.search_jql("project = OPS", &["summary"]).await.unwrap();
    assert_eq!(ops.len(), 12);
    assert!(ops
        .iter()
        .all(|i| i.fields.status.is_none() && i.fields.summary.is_some()));

    let err = c
        .search_jql("assignee = currentUser()", &[])
        .await
        .unwrap_err();
    match err {
        JiraError::Rejected {
            status: 400,
            message,
        } => {
            assert!(message.contains("demo"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let err = c.search_jql("project = NOPE", &[]).await.unwrap_err();
    assert!(
        matches!(err, JiraError::Rejected { status: 400, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn active_sprint_and_its_issues() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    let c = client(&demo, 5);
    let sprint = c.active_sprint(DEMO_BOARD_ID).await.unwrap().unwrap();
    assert_eq!(sprint.id, DEMO_SPRINT_ID);
    assert_eq!(sprint.state, "active");
    let now = Utc::now();
    assert!(sprint.start_date.unwrap() < now && now < sprint.end_date.unwrap());
    assert_eq!(c.sprint(DEMO_SPRINT_ID).await.unwrap().name, sprint.name);
    let issues = c.sprint_issues(DEMO_SPRINT_ID).await.unwrap();
    assert_eq!(issues.len(), 12, "three pages of 5");
    assert!(issues.iter().any(|i| i.key == "DEMO-1"));
}

#[tokio::test]
async fn every_issue_maps_to_a_snapshot_with_risk_signals() {
    let now = Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap();
    let demo = DemoJira::start_at(loopback(), now).await.unwrap();
    let c = client(&demo, 100);
    let mut issues = c.search_jql("project in (DEMO, OPS)", &[]).await.unwrap();
    assert_eq!(issues.len(), 30);
    let (mut blocked, mut negative, mut overdue, mut done) = (0, 0, 0, 0);
    for issue in &mut issues {
        c.complete_issue(issue).await.unwrap();
        let snap = c.to_snapshot(issue, classify).unwrap();
        assert!(snap.created < now, "{}", snap.key);
        assert!(snap.updated <= now, "{}", snap.key);
        if snap
            .blocked_by
            .iter()
            .any(|b| b.status_category != keel_risk::StatusCategory::Done)
        {
            blocked += 1;
        }
        if snap.comments.iter().any(|c| c.sentiment == Label::Negative) {
            negative += 1;
        }
        if snap.status_category == keel_risk::StatusCategory::Done {
            done += 1;
        } else if snap.due_date.is_some_and(|d| d < now.date_naive()) {
            overdue += 1;
        }
        // People are identified by account id; the automation account is not one.
        assert!(
            snap.people.iter().all(|p| !p.contains("automation")),
            "{:?}",
            snap.people
        );
    }
    assert!(blocked >= 4, "issues with unresolved blockers: {blocked}");
    assert!(negative >= 5, "issues with negative comments: {negative}");
    assert!(overdue >= 5, "overdue open issues: {overdue}");
    assert!(done >= 3, "done issues: {done}");
}

#[tokio::test]
async fn data_is_deterministic_for_a_given_now() {
    let now = Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap();
    let a = DemoJira::start_at(loopback(), now).await.unwrap();
    let b = DemoJira::start_at(loopback(), now).await.unwrap();
    let mut one = client(&a, 100).issue("OPS-1").await.unwrap();
    let mut two = client(&b, 100).issue("OPS-1").await.unwrap();
    // Only the self URLs (which carry the port) differ.
    for i in [&mut one, &mut two] {
        i.self_url = None;
    }
    assert_eq!(
        serde_json::to_value(&one.fields.summary).unwrap(),
        serde_json::to_value(&two.fields.summary).unwrap()
    );
    assert_eq!(one.changelog, two.changelog);
    assert_eq!(one.fields.duedate, two.fields.duedate);
    assert_eq!(one.fields.created, two.fields.created);
}

/// The point of the demo: the risk engine finds a spread of risk, with the
/// flagship DEMO-1 on top and finished work at zero.
#[tokio::test]
async fn risk_engine_sees_a_spread_of_risk() {
    // Fixed (a Wednesday), as the engine counts working days.
    let now = Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap();
    let demo = DemoJira::start_at(loopback(), now).await.unwrap();
    let c = client(&demo, 100);
    let settings = keel_risk::Settings::default();
    let mut risks = Vec::new();
    for mut issue in c.search_jql("project in (DEMO, OPS)", &[]).await.unwrap() {
        c.complete_issue(&mut issue).await.unwrap();
        let snap = c.to_snapshot(&issue, classify).unwrap();
        let risk = keel_risk::assess_issue(&snap, &settings, now);
        if snap.status_category == keel_risk::StatusCategory::Done {
            assert_eq!(risk.score, 0, "{}", snap.key);
        }
        risks.push(risk);
    }
    let top = risks.iter().max_by_key(|r| r.score).unwrap();
    assert_eq!(top.issue_key, "DEMO-1");
    let at_least = |level| risks.iter().filter(|r| r.level >= level).count();
    assert!(at_least(keel_risk::RiskLevel::High) >= 2);
    assert!(at_least(keel_risk::RiskLevel::Medium) >= 5);
    assert!(
        risks
            .iter()
            .filter(|r| r.level == keel_risk::RiskLevel::Low)
            .count()
            >= 10
    );
}

#[tokio::test]
async fn paging_edge_cases_answer_like_jira() {
    let demo = DemoJira::start(loopback()).await.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", demo.base_url))
            .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
            .send()
    };
    let resp =
        get("/rest/api/3/issue/DEMO-1/comment?startAt=18446744073709551615&maxResults=100000")
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["comments"], serde_json::json!([]));
    assert_eq!(body["maxResults"], 100, "capped");

    let resp = get("/rest/agile/1.0/sprint/10/issue?startAt=abc")
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["errorMessages"][0]
        .as_str()
        .unwrap()
        .contains("startAt"));

    let resp = http
        .post(format!("{}/rest/api/3/search/jql", demo.base_url))
        .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
        .json(&serde_json::json!({"jql": "project = DEMO", "nextPageToken": "bogus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
