//! How demo issues relate: "Blocks" issue links and the active sprint.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::build::{issue_id, status_json, ts};
use super::spec::Spec;
use super::{DEMO_BOARD_ID, DEMO_SPRINT_ID};

/// "Blocks" links seen from `s`: `inwardIssue` = an issue that blocks `s`
/// ("is blocked by"), `outwardIssue` = an issue `s` blocks ("blocks").
pub(crate) fn issue_links(s: &Spec, all: &[&Spec], base: &str) -> Vec<Value> {
    let link_type = json!({"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks",
                           "self": format!("{base}/rest/api/3/issueLinkType/10000")});
    let index_of = |key: &str| {
        all.iter()
            .position(|o| o.key == key)
            .expect("demo link target exists")
    };
    let linked = |key: &str| {
        let i = index_of(key);
        let o = all[i];
        let (prid, prname) = o.priority.id_name();
        let (tid, tname) = o.kind.id_name();
        json!({"id": issue_id(i), "key": o.key, "self": format!("{base}/rest/api/3/issue/{}", issue_id(i)),
               "fields": {"summary": o.summary, "status": status_json(o.status, base),
                          "priority": {"id": prid, "name": prname}, "issuetype": {"id": tid, "name": tname}}})
    };
    // A link's id is the same on both ends: 30000 + blocked issue index * 10 + position.
    let mut links: Vec<(usize, Value)> = Vec::new();
    for (n, blocker) in s.blocked_by.iter().enumerate() {
        let lid = 30_000 + index_of(s.key) * 10 + n;
        links.push((
            lid,
            json!({"id": lid.to_string(), "type": link_type, "inwardIssue": linked(blocker)}),
        ));
    }
    for other in all {
        if let Some(n) = other.blocked_by.iter().position(|b| *b == s.key) {
            let lid = 30_000 + index_of(other.key) * 10 + n;
            links.push((lid, json!({"id": lid.to_string(), "type": link_type, "outwardIssue": linked(other.key)})));
        }
    }
    links.sort_by_key(|l| l.0);
    links.into_iter().map(|l| l.1).collect()
}

pub(crate) fn sprint_ref() -> Value {
    json!({"id": DEMO_SPRINT_ID, "name": SPRINT_NAME, "state": "active", "boardId": DEMO_BOARD_ID})
}

const SPRINT_NAME: &str = "Demo Sprint 7 (sample data)";

/// The active sprint: started 6 days ago, ends in 8.
pub(crate) fn sprint_json(now: DateTime<Utc>, base: &str) -> Value {
    let day_start = |d: i64| {
        ts((now + Duration::days(d))
            .date_naive()
            .and_hms_opt(8, 0, 0)
            .expect("valid")
            .and_utc())
    };
    json!({
        "id": DEMO_SPRINT_ID,
        "self": format!("{base}/rest/agile/1.0/sprint/{DEMO_SPRINT_ID}"),
        "state": "active",
        "name": SPRINT_NAME,
        "startDate": day_start(-6),
        "endDate": day_start(8),
        "createdDate": day_start(-7),
        "originBoardId": DEMO_BOARD_ID,
        "goal": "Ship payment retries safely (Keel demo sample data)",
    })
}
