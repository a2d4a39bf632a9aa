//! Turns the [`Spec`] tables into Jira-shaped JSON, relative to `now`.
//!
//! Deterministic: the same `now` and base URL give the same data (no
//! randomness, no clock reads). Ids are derived from table positions.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::data_demo::DEMO;
use super::data_ops::OPS;
use super::history;
use super::relations::{issue_links, sprint_json, sprint_ref};
use super::spec::{Spec, St, P, PEOPLE};

/// `(key, id, name)` of the demo projects.
pub(crate) const PROJECTS: [(&str, &str, &str); 2] = [
    ("DEMO", "10000", "Keel Demo Shop (sample data)"),
    ("OPS", "10001", "Keel Demo Ops (sample data)"),
];

/// One demo issue, ready to serve.
#[derive(Debug, Clone)]
pub(crate) struct DemoIssue {
    pub id: String,
    pub key: String,
    pub project: &'static str,
    pub number: u32,
    /// Every field, `comment` holding *all* comments (the routes cut it to
    /// the embedded page).
    pub fields: Map<String, Value>,
    /// Changelog entries, oldest first.
    pub histories: Vec<Value>,
    pub comments: Vec<Value>,
    pub in_sprint: bool,
}

/// All demo data for one server.
#[derive(Debug, Clone)]
pub(crate) struct DemoData {
    pub base_url: String,
    /// Sorted by project, then number (`DEMO-2` before `DEMO-10`).
    pub issues: Vec<DemoIssue>,
    pub sprint: Value,
}

impl DemoData {
    pub(crate) fn build(now: DateTime<Utc>, base_url: &str) -> DemoData {
        let specs: Vec<&Spec> = DEMO.iter().chain(OPS.iter()).collect();
        let mut issues: Vec<DemoIssue> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| build_issue(i, s, &specs, now, base_url))
            .collect();
        issues.sort_by(|a, b| (a.project, a.number).cmp(&(b.project, b.number)));
        DemoData {
            base_url: base_url.to_string(),
            issues,
            sprint: sprint_json(now, base_url),
        }
    }

    /// By key (case-insensitive, as Jira) or numeric id.
    pub(crate) fn issue(&self, key_or_id: &str) -> Option<&DemoIssue> {
        self.issues
            .iter()
            .find(|i| i.key.eq_ignore_ascii_case(key_or_id) || i.id == key_or_id)
    }
}

/// Jira's timestamp format: `2024-01-15T10:30:00.000+0000`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

pub(crate) fn user(p: P, base: &str) -> Value {
    let (id, name, email, kind) = PEOPLE[p.0];
    json!({
        "self": format!("{base}/rest/api/3/user?accountId={id}"),
        "accountId": id,
        "emailAddress": email,
        "displayName": name,
        "active": true,
        "timeZone": "Europe/Berlin",
        "accountType": kind,
    })
}

/// A one-paragraph Atlassian Document Format body (API v3).
fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    ]})
}

pub(crate) fn status_json(s: St, base: &str) -> Value {
    let (id, name, cat_id, cat_key, colour, cat_name) = s.parts();
    json!({
        "self": format!("{base}/rest/api/3/status/{id}"),
        "name": name,
        "id": id,
        "statusCategory": {
            "self": format!("{base}/rest/api/3/statuscategory/{cat_id}"),
            "id": cat_id, "key": cat_key, "colorName": colour, "name": cat_name,
        },
    })
}

pub(crate) fn issue_id(index: usize) -> String {
    (10001 + index).to_string()
}

fn build_issue(index: usize, s: &Spec, all: &[&Spec], now: DateTime<Utc>, base: &str) -> DemoIssue {
    let (project, num) = s.key.split_once('-').expect("demo keys are PROJECT-N");
    let number: u32 = num.parse().expect("demo keys end in a number");
    // Spread creation over the working day so issues do not share a minute.
    let created =
        now - Duration::days(s.created_days_ago) - Duration::minutes(37 * i64::from(number % 11));
    let (events, resolved) = history::events(s, created, now);
    let histories: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(n, (t, who, item))| {
            json!({"id": (100_000 + index * 100 + n).to_string(), "author": user(*who, base),
                   "created": ts(*t), "items": [item]})
        })
        .collect();

    let id = issue_id(index);
    let comments: Vec<Value> = s
        .comments
        .iter()
        .enumerate()
        .map(|(n, (who, hours_ago, text))| {
            let t = (now - Duration::hours(*hours_ago)).max(created + Duration::hours(1));
            let cid = (200_000 + index * 100 + n).to_string();
            json!({"self": format!("{base}/rest/api/3/issue/{id}/comment/{cid}"), "id": cid,
                   "author": user(*who, base), "body": adf(text), "updateAuthor": user(*who, base),
                   "created": ts(t), "updated": ts(t), "jsdPublic": true})
        })
        .collect();
    let updated = events
        .iter()
        .map(|e| e.0)
        .chain(
            comments
                .iter()
                .filter_map(|c| crate::types::parse_jira_datetime(c["created"].as_str()?)),
        )
        .fold(created, DateTime::max);

    let links = issue_links(s, all, base);
    let (pid, pname) = PROJECTS
        .iter()
        .find(|p| p.0 == project)
        .map(|p| (p.1, p.2))
        .expect("demo project");
    let (tid, tname) = s.kind.id_name();
    let (prid, prname) = s.priority.id_name();
    let mut labels: Vec<&str> = s.labels.to_vec();
    labels.push("keel-demo");
    labels.sort_unstable();
    let due = s.due_in_days.map(|d| {
        (now + Duration::days(d))
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
    });
    let description = format!(
        "Sample data for the Keel demo: an invented issue in an invented project, served by Keel's \
         built-in demo Jira. Not a real project. ({})",
        s.summary
    );
    let fields = json!({
        "summary": s.summary,
        "description": adf(&description),
        "status": status_json(s.status, base),
        "priority": {"self": format!("{base}/rest/api/3/priority/{prid}"), "name": prname, "id": prid},
        "assignee": s.assignee.map(|p| user(p, base)),
        "reporter": user(s.reporter, base),
        "created": ts(created),
        "updated": ts(updated),
        "resolutiondate": resolved.map(ts),
        "resolution": resolved.map(|_| json!({"id": "10000", "name": "Done"})),
        "duedate": due,
        "issuelinks": links,
        "comment": {"comments": comments.clone(), "self": format!("{base}/rest/api/3/issue/{id}/comment"),
                    "maxResults": comments.len(), "total": comments.len(), "startAt": 0},
        "project": {"self": format!("{base}/rest/api/3/project/{pid}"), "id": pid, "key": project, "name": pname},
        "issuetype": {"self": format!("{base}/rest/api/3/issuetype/{tid}"), "id": tid, "name": tname, "subtask": false},
        "labels": labels,
        "customfield_10016": s.points,
        "customfield_10020": if s.in_sprint { json!([sprint_ref()]) } else { Value::Null },
    });
    let Value::Object(fields) = fields else {
        unreachable!("json! object")
    };
    DemoIssue {
        id,
        key: s.key.to_string(),
        project,
        number,
        fields,
        histories,
        comments,
        in_sprint: s.in_sprint,
    }
}
