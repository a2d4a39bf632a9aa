//! Liveness, readiness and metrics.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The process is alive (no dependencies checked).
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Postgres and Redis both answer within a second; otherwise 503 naming which does not.
pub async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = Duration::from_secs(1);
    let pg = matches!(
        tokio::time::timeout(limit, keel_models::db::ping(&state.pool)).await,
        Ok(Ok(()))
    );
    let redis = matches!(
        tokio::time::timeout(limit, state.lane.ping()).await,
        Ok(Ok(()))
    );
    let checks = json!({
        "postgres": if pg { "ok" } else { "unreachable" },
        "redis": if redis { "ok" } else { "unreachable" },
    });
    if pg && redis {
        return Ok(Json(json!({"status": "ready", "checks": checks})));
    }
    let down: Vec<&str> = [(!pg).then_some("postgres"), (!redis).then_some("redis")]
        .into_iter()
        .flatten()
        .collect();
    Err(ApiError::Unavailable {
        message: format!("not ready: {} unreachable", down.join(" and ")),
        details: checks,
        retry_after: None,
    })
}

/// How long the ledger-derived gauges of `/metrics` are reused. They come from aggregate queries
/// over the jobs table; run per scrape, every Prometheus replica (and anyone who can reach the
/// endpoint) made the database count the ledger again.
pub const LEDGER_GAUGES_TTL: Duration = Duration::from_secs(5);

/// The ledger-derived part of `/metrics`, computed at most once per [`LEDGER_GAUGES_TTL`]
/// however many scrapes arrive (concurrent ones wait for the one computing it).
#[derive(Default)]
pub struct GaugeCache(tokio::sync::Mutex<Option<(std::time::Instant, String)>>);

/// Prometheus text format: this process's recorder, then the ledger's gauges (cached). With
/// `KEEL_METRICS_TOKEN` set it takes `Authorization: Bearer <token>`.
pub async fn metrics(
    _: crate::extract::MetricsReader,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let mut out = state.metrics.render();
    {
        let mut cached = state.gauges.0.lock().await;
        match &*cached {
            Some((at, text)) if at.elapsed() < LEDGER_GAUGES_TTL => out.push_str(text),
            _ => {
                let text = ledger_gauges(&state).await?;
                out.push_str(&text);
                *cached = Some((std::time::Instant::now(), text));
            }
        }
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    ))
}

/// Jobs by kind and status, the backlog and the Redis window per queue.
async fn ledger_gauges(state: &AppState) -> Result<String, ApiError> {
    let mut out = String::new();
    let counts = keel_models::job::counts_except_succeeded(&state.pool).await?;
    out.push_str(
        "# HELP keel_jobs Jobs in the ledger by kind and status, every status but succeeded.\n# TYPE keel_jobs gauge\n",
    );
    for (kind, status, n) in counts {
        let _ = writeln!(
            out,
            "keel_jobs{{kind=\"{kind}\",status=\"{}\"}} {n}",
            status.as_str()
        );
    }
    out.push_str("# HELP keel_queue_backlog Due jobs waiting to start, per queue (Postgres).\n# TYPE keel_queue_backlog gauge\n");
    let mut queues: Vec<String> = state
        .registry
        .queues()
        .into_iter()
        .map(String::from)
        .collect();
    // Every known queue has a sample, 0 when nothing waits: a series that vanished when its
    // queue drained read as "no data" to dashboards and alerts, not as an empty queue.
    let backlog = keel_models::job::backlog_by_queue(&state.pool).await?;
    for (queue, _) in &backlog {
        if !queues.contains(queue) {
            queues.push(queue.clone());
        }
    }
    for queue in &queues {
        let n = backlog
            .iter()
            .find(|(q, _)| q == queue)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "keel_queue_backlog{{queue=\"{queue}\"}} {n}");
    }
    out.push_str("# HELP keel_queue_redis_entries Entries in the queue's Redis stream (the bounded window).\n# TYPE keel_queue_redis_entries gauge\n");
    for queue in queues {
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), state.lane.len(&queue)).await
        {
            let _ = writeln!(out, "keel_queue_redis_entries{{queue=\"{queue}\"}} {n}");
        }
    }
    Ok(out)
}
