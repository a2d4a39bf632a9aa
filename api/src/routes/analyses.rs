//! Jira analyses: submitting them (`POST /api/analyze/{issue,sprint,portfolio}`) and reading an
//! issue's history and trend (`GET /api/analyses/issues/{key}/{history,trend}`).
//!
//! The analyze endpoints are typed front doors to `POST /api/jobs`: the body is the job's args,
//! checked here so errors name the body's fields, then the job takes the same submit path.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keel_jobs::enqueue::Submit;
use keel_jobs::kinds::analyze::{common, AnalyzeIssue, AnalyzePortfolio, AnalyzeSprint};
use keel_jobs::Job;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::routes::jobs::{accept, JobView};
use crate::routes::query;
use crate::state::AppState;

async fn submit<J: Job>(
    state: &AppState,
    tenant: Uuid,
    args: J,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    args.validate(&state.services).map_err(|e| {
        ApiError::invalid(e.path.strip_prefix("args.").unwrap_or(&e.path), e.message)
    })?;
    let body = Submit {
        kind: J::NAME.to_string(),
        args: serde_json::to_value(&args).map_err(anyhow::Error::from)?,
        idempotency_key: None,
        run_at: None,
        max_attempts: None,
    };
    accept(state, tenant, body).await
}

/// Whether jobs of `kind` read the tenant's Jira.
pub(crate) fn needs_jira(kind: &str) -> bool {
    kind.starts_with("jira.")
}

/// 409 `jira_not_connected` for a kind that reads the tenant's Jira while it has no
/// connection: such a job could only die at its first attempt. Every submitting endpoint
/// asks, `POST /api/jobs` and batches included.
pub(crate) async fn jira_connected(
    state: &AppState,
    tenant: Uuid,
    kind: &str,
) -> Result<(), ApiError> {
    if !needs_jira(kind)
        || keel_models::jira::connection(&state.pool, tenant)
            .await?
            .is_some()
    {
        return Ok(());
    }
    Err(ApiError::Conflict {
        code: "jira_not_connected",
        message: "connect Jira first: PUT /api/tenant/jira {base_url, email, api_token}".into(),
        details: Value::Null,
    })
}

/// Issue and project keys are taken in any case and stored as Jira writes them (upper case),
/// as the history and trend routes read them: `demo-1` had been refused here and accepted there.
/// `POST /api/jobs` takes a kind's args exactly as given.
pub async fn issue(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(mut body): ApiJson<AnalyzeIssue>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    body.issue_key.make_ascii_uppercase();
    submit(&state, tenant, body).await
}

pub async fn sprint(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AnalyzeSprint>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    submit(&state, tenant, body).await
}

pub async fn portfolio(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(mut body): ApiJson<AnalyzePortfolio>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    for key in body.project_keys.iter_mut().flatten() {
        key.make_ascii_uppercase();
    }
    submit(&state, tenant, body).await
}

fn issue_key(raw: &str) -> Result<String, ApiError> {
    let key = raw.to_ascii_uppercase();
    common::check_issue_key("issue_key", &key).map_err(|e| ApiError::BadRequest {
        code: "invalid_issue_key",
        message: e.message,
    })?;
    Ok(key)
}

/// `GET /api/analyses/issues/{key}/history?limit=&cursor=`: every analysis, newest first.
pub async fn history(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: query::Params,
) -> Result<Json<Value>, ApiError> {
    query::only(&q, &["limit", "cursor"])?;
    let key = issue_key(&key)?;
    let limit = query::limit(&q, 20, 200)?;
    let cursor = query::cursor::<Uuid>(&q)?;
    let rows = keel_models::analysis::history(&state.pool, tenant, &key, cursor, limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({
        "issue_key": key,
        "analyses": rows,
        "next_cursor": next_cursor,
    })))
}

/// `GET /api/analyses/issues/{key}/trend?format=json|svg&since=&limit=`: risk score, blockers,
/// negative-sentiment share and daily cost over time (oldest first), as JSON or an SVG chart.
pub async fn trend(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: query::Params,
) -> Result<Response, ApiError> {
    query::only(&q, &["format", "since", "limit"])?;
    let key = issue_key(&key)?;
    let limit = query::limit(&q, 100, 1000)?;
    let since = match q.get("since") {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::invalid("since", "must be an RFC 3339 time"))?
                .with_timezone(&chrono::Utc),
        ),
    };
    let svg = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("svg") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or svg")),
    };
    let rows = keel_models::analysis::trend(&state.pool, tenant, &key, since, limit).await?;
    let points: Vec<keel_risk::trend::TrendPoint> = rows
        .iter()
        .map(|r| keel_risk::trend::TrendPoint {
            at: r.analyzed_at,
            risk_score: r.risk_score.clamp(0, 100) as u8,
            blocker_count: r.blocker_count.max(0) as u32,
            negative_share: r.negative_share,
            daily_cost: r.daily_cost,
        })
        .collect();
    if svg {
        let body = keel_risk::trend::render_svg(&key, &points, "");
        return Ok((
            [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
            body,
        )
            .into_response());
    }
    Ok(Json(json!({ "issue_key": key, "points": points })).into_response())
}
