//! The demo's HTTP surface: exactly the endpoints [`crate::JiraClient`]
//! calls, with Jira's paging, field selection and error shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::agile;
use super::build::{DemoData, DemoIssue};
use super::jql::parse_jql;
use super::{DEMO_EMAIL, DEMO_TOKEN};

/// How many changelog entries and comments an issue response embeds.
/// Kept small on purpose (Jira also embeds only a first slice) so that
/// DEMO-1 needs the paged endpoints.
pub(crate) const EMBED_LIMIT: usize = 10;
/// Largest page the paged endpoints hand out, whatever `maxResults` asks.
pub(crate) const MAX_PAGE: usize = 100;

pub(crate) type Demo = State<Arc<DemoData>>;
pub(crate) type Query_ = Query<HashMap<String, String>>;

pub(crate) fn router(data: Arc<DemoData>) -> Router {
    Router::new()
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/api/3/issue/{key}", get(issue))
        .route("/rest/api/3/issue/{key}/changelog", get(changelog))
        .route("/rest/api/3/issue/{key}/comment", get(comments))
        .route("/rest/api/3/search/jql", post(search))
        .route(
            "/rest/agile/1.0/board/{id}/sprint",
            get(agile::board_sprints),
        )
        .route("/rest/agile/1.0/sprint/{id}", get(agile::sprint))
        .route(
            "/rest/agile/1.0/sprint/{id}/issue",
            get(agile::sprint_issues),
        )
        .fallback(|| async {
            jira_error(
                StatusCode::NOT_FOUND,
                "Resource not found (Keel demo Jira).",
            )
        })
        .layer(middleware::from_fn(basic_auth))
        .with_state(data)
}

/// Jira's error body: `{"errorMessages":[…],"errors":{}}`.
pub(crate) fn jira_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"errorMessages": [message], "errors": {}})),
    )
        .into_response()
}

fn no_issue() -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        "Issue does not exist or you do not have permission to see it.",
    )
}

/// Every request needs HTTP Basic with the demo credentials, like Jira
/// Cloud with an API token, so the connection check behaves as for real.
async fn basic_auth(headers: HeaderMap, request: Request, next: Next) -> Response {
    let expected = format!("{DEMO_EMAIL}:{DEMO_TOKEN}");
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .is_some_and(|decoded| decoded == expected.as_bytes());
    if ok {
        return next.run(request).await;
    }
    let mut resp = jira_error(
        StatusCode::UNAUTHORIZED,
        "Client must be authenticated to access this resource. The Keel demo Jira accepts only the demo credentials.",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"Keel demo Jira\""),
    );
    resp
}

async fn myself(State(d): Demo) -> Response {
    let mut me = super::build::user(super::spec::PRIYA, &d.base_url);
    me["emailAddress"] = json!(DEMO_EMAIL);
    Json(me).into_response()
}

/// `fields=a,b` (or a JSON list in search): which fields to return. `None`
/// means all (`*all`, `*navigable`, absent, empty).
fn wanted(list: Option<Vec<String>>) -> Option<Vec<String>> {
    let list: Vec<String> = list?
        .into_iter()
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    if list.is_empty() || list.iter().any(|f| f == "*all" || f == "*navigable") {
        None
    } else {
        Some(list)
    }
}

pub(crate) fn split_fields(q: &HashMap<String, String>) -> Option<Vec<String>> {
    wanted(
        q.get("fields")
            .map(|f| f.split(',').map(str::to_string).collect()),
    )
}

/// An issue as Jira renders it: requested fields only, `comment` cut to its
/// first [`EMBED_LIMIT`] entries, `changelog` (same cut) with `expand`.
pub(crate) fn render(
    d: &DemoData,
    i: &DemoIssue,
    fields: &Option<Vec<String>>,
    changelog: bool,
    agile: bool,
) -> Value {
    let mut out = Map::new();
    for (name, value) in &i.fields {
        if fields.as_ref().is_some_and(|f| !f.contains(name)) {
            continue;
        }
        let value = if name == "comment" {
            let n = i.comments.len();
            json!({"comments": &i.comments[..n.min(EMBED_LIMIT)], "self": value["self"],
                   "maxResults": n.min(EMBED_LIMIT), "total": n, "startAt": 0})
        } else {
            value.clone()
        };
        out.insert(name.clone(), value);
    }
    let api = if agile { "agile/1.0" } else { "api/3" };
    let mut issue = json!({"expand": "renderedFields,names,schema,operations,editmeta,changelog",
                           "id": i.id, "self": format!("{}/rest/{api}/issue/{}", d.base_url, i.id),
                           "key": i.key, "fields": out});
    if changelog {
        let n = i.histories.len();
        issue["changelog"] = json!({"startAt": 0, "maxResults": n.min(EMBED_LIMIT), "total": n,
                                    "histories": &i.histories[..n.min(EMBED_LIMIT)]});
    }
    issue
}

pub(crate) fn expands_changelog(q: &HashMap<String, String>) -> bool {
    q.get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "changelog"))
}

async fn issue(State(d): Demo, Path(key): Path<String>, Query(q): Query_) -> Response {
    match d.issue(&key) {
        Some(i) => Json(render(
            &d,
            i,
            &split_fields(&q),
            expands_changelog(&q),
            false,
        ))
        .into_response(),
        None => no_issue(),
    }
}

/// `startAt`/`maxResults` from the query; `Err` is the message of Jira's 400.
pub(crate) fn offsets(
    q: &HashMap<String, String>,
    default_size: usize,
) -> Result<(usize, usize), String> {
    let num = |name: &str, default: usize| match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("The '{name}' parameter must be a non-negative number.")),
    };
    Ok((
        num("startAt", 0)?,
        num("maxResults", default_size)?.clamp(1, MAX_PAGE),
    ))
}

fn slice(items: &[Value], start: usize, size: usize) -> &[Value] {
    let start = start.min(items.len());
    &items[start..start.saturating_add(size).min(items.len())]
}

async fn changelog(State(d): Demo, Path(key): Path<String>, Query(q): Query_) -> Response {
    let Some(i) = d.issue(&key) else {
        return no_issue();
    };
    let (start, size) = match offsets(&q, 50) {
        Ok(o) => o,
        Err(m) => return jira_error(StatusCode::BAD_REQUEST, &m),
    };
    let values = slice(&i.histories, start, size);
    let total = i.histories.len();
    Json(json!({"self": format!("{}/rest/api/3/issue/{}/changelog?startAt={start}&maxResults={size}", d.base_url, i.key),
                "maxResults": size, "startAt": start, "total": total,
                "isLast": start + values.len() >= total, "values": values}))
    .into_response()
}

async fn comments(State(d): Demo, Path(key): Path<String>, Query(q): Query_) -> Response {
    let Some(i) = d.issue(&key) else {
        return no_issue();
    };
    let (start, size) = match offsets(&q, 50) {
        Ok(o) => o,
        Err(m) => return jira_error(StatusCode::BAD_REQUEST, &m),
    };
    Json(
        json!({"comments": slice(&i.comments, start, size), "maxResults": size,
                "startAt": start, "total": i.comments.len()}),
    )
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    jql: String,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    expand: Option<String>,
}

/// Enhanced search (`/search/jql`): token paging. The token is opaque to
/// clients; here it is just the offset of the next page.
async fn search(State(d): Demo, body: Bytes) -> Response {
    let body: SearchBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return jira_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid request payload: {e}"),
            )
        }
    };
    let query = match parse_jql(&body.jql) {
        Ok(q) => q,
        Err(message) => return jira_error(StatusCode::BAD_REQUEST, &message),
    };
    if let Some(unknown) = query
        .projects
        .iter()
        .find(|p| !d.issues.iter().any(|i| i.project == p.as_str()))
    {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &format!("The value '{unknown}' does not exist for the field 'project'."),
        );
    }
    let start: usize = match body
        .next_page_token
        .as_deref()
        .map(|t| t.strip_prefix("demo-offset-").and_then(|n| n.parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return jira_error(StatusCode::BAD_REQUEST, "The nextPageToken is invalid."),
    };
    let size = body.max_results.unwrap_or(50).clamp(1, MAX_PAGE);
    let mut matching: Vec<&DemoIssue> = d
        .issues
        .iter()
        .filter(|i| query.projects.is_empty() || query.projects.iter().any(|p| p == i.project))
        .collect();
    if query.descending {
        matching.reverse();
    }
    let fields = wanted(body.fields);
    let changelog = body
        .expand
        .as_deref()
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "changelog"));
    let end = start.saturating_add(size).min(matching.len());
    let page: Vec<Value> = matching[start.min(end)..end]
        .iter()
        .map(|i| render(&d, i, &fields, changelog, false))
        .collect();
    let mut resp = json!({"issues": page, "isLast": end >= matching.len()});
    if end < matching.len() {
        resp["nextPageToken"] = json!(format!("demo-offset-{end}"));
    }
    Json(resp).into_response()
}
