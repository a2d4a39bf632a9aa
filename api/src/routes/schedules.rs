//! `GET /admin/schedules` (operators): every scheduled task with its effective cron expression
//! and the time zone it is read in (`KEEL_SCHEDULES`, `KEEL_SCHEDULER_TIMEZONE`), catch-up
//! policy, next run (UTC), and its last tick's job and outcome — the same view as
//! `keel scheduler list`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::Admin;
use crate::routes::query::NoParams;
use crate::state::AppState;

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    _: NoParams,
) -> Result<Json<Value>, ApiError> {
    let now = state.scheduler.now();
    let tasks = state
        .scheduler
        .list(now)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "cron": t.cron,
                "timezone": t.timezone,
                "catch_up": t.catch_up.as_str(),
                "next_run": t.next_run,
                "last_tick": t.last_tick,
                "last_job_id": t.last_job_id,
                "last_job_status": t.last_job_status,
            })
        })
        .collect();
    Ok(Json(json!({ "now": now, "tasks": tasks })))
}
