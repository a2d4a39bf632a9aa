//! Every request answers within a deadline (`KEEL_API_REQUEST_TIMEOUT_MS`, default 30 s).
//!
//! The hot paths (submit batches, the worker's statements) hold their connections with a
//! deadline of their own (`keel_models::held`), but reads and authentication go through sqlx's
//! pool, which has none once a statement is sent: when the database host goes silent (a
//! partition, a failover that moved its address, a paused VM) a request waited as long as TCP
//! retransmits, about 15 minutes, and so did its client. Past the deadline the request is
//! dropped and answers 503 `unavailable` with `Retry-After`. (The pool's connections get no
//! `statement_timeout`: migrations, billing runs and housekeeping share that pool and may
//! rightly run longer. sqlx closes a connection whose statement was abandoned unless it
//! answers a ping afterwards.)
//!
//! A submit cut off this way may still commit once the host answers again: as with any
//! timeout, a client retries with the same `idempotency_key` to get the job it may already
//! have. `GET /api/jobs/{id}?wait=N` gets its `N` seconds on top of the deadline.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::waits::MAX_WAIT_SECS;

/// Runs the request, or answers 503 once its deadline has passed.
pub async fn within(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let deadline = state.request_deadline + waiting(&req);
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "request cut off at its deadline"
            );
            ApiError::Unavailable {
                message: format!(
                    "the request did not finish within {} ms (the database did not answer); retry shortly",
                    deadline.as_millis()
                ),
                details: json!({ "deadline_ms": deadline.as_millis() as u64 }),
                retry_after: Some(1),
            }
            .into_response()
        }
    }
}

/// The long-poll time a request asks for (`wait=N`, capped as the route caps it), on `GET`
/// only: no other method has a route that waits, and a `POST …?wait=600` had been given ten more
/// minutes to hold its connection and task. Any route other than `GET /api/jobs/{id}` refuses
/// the parameter, and a malformed one is refused before the handler waits, so reading it
/// leniently here gives nothing away.
fn waiting(req: &Request) -> Duration {
    if req.method() != axum::http::Method::GET {
        return Duration::ZERO;
    }
    let secs = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(name, _)| name == "wait")
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .map_or(0, |s| s.min(MAX_WAIT_SECS));
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn only_a_get_waits_and_never_past_the_cap() {
        assert_eq!(
            waiting(&request("GET", "/api/jobs/x?wait=5")),
            Duration::from_secs(5)
        );
        assert_eq!(
            waiting(&request("GET", "/api/jobs/x?wait=999999")),
            Duration::from_secs(MAX_WAIT_SECS)
        );
        assert_eq!(
            waiting(&request("POST", "/api/jobs?wait=30")),
            Duration::ZERO
        );
        assert_eq!(
            waiting(&request("DELETE", "/api/keys/x?wait=30")),
            Duration::ZERO
        );
    }
}
