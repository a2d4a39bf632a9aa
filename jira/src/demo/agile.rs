//! Jira Software (agile 1.0) endpoints: the demo board's sprints and the
//! issues of its active sprint.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::build::DemoIssue;
use super::routes::{expands_changelog, jira_error, offsets, render, split_fields, Demo, Query_};
use super::{DEMO_BOARD_ID, DEMO_SPRINT_ID};

fn board_not_found(id: &str) -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        &format!("Board {id} does not exist or you do not have permission to see it."),
    )
}

fn sprint_not_found(id: &str) -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        &format!("Sprint with id {id} does not exist or you do not have permission to see it."),
    )
}

pub(crate) async fn board_sprints(
    State(d): Demo,
    Path(id): Path<String>,
    Query(q): Query_,
) -> Response {
    if id != DEMO_BOARD_ID.to_string() {
        return board_not_found(&id);
    }
    // The demo board has one sprint, and it is active.
    let wants_active = q
        .get("state")
        .is_none_or(|s| s.split(',').any(|x| x.trim() == "active"));
    let values: Vec<&Value> = if wants_active {
        vec![&d.sprint]
    } else {
        vec![]
    };
    Json(json!({"maxResults": 50, "startAt": 0, "isLast": true, "values": values})).into_response()
}

pub(crate) async fn sprint(State(d): Demo, Path(id): Path<String>) -> Response {
    if id != DEMO_SPRINT_ID.to_string() {
        return sprint_not_found(&id);
    }
    Json(d.sprint.clone()).into_response()
}

pub(crate) async fn sprint_issues(
    State(d): Demo,
    Path(id): Path<String>,
    Query(q): Query_,
) -> Response {
    if id != DEMO_SPRINT_ID.to_string() {
        return sprint_not_found(&id);
    }
    let (start, size) = match offsets(&q, 50) {
        Ok(o) => o,
        Err(m) => return jira_error(StatusCode::BAD_REQUEST, &m),
    };
    let in_sprint: Vec<&DemoIssue> = d.issues.iter().filter(|i| i.in_sprint).collect();
    let fields = split_fields(&q);
    let end = start.saturating_add(size).min(in_sprint.len());
    let issues: Vec<Value> = in_sprint[start.min(end)..end]
        .iter()
        .map(|i| render(&d, i, &fields, expands_changelog(&q), true))
        .collect();
    Json(
        json!({"expand": "names,schema", "startAt": start, "maxResults": size,
                "total": in_sprint.len(), "issues": issues}),
    )
    .into_response()
}
