//! The whole request body must arrive within a deadline (`KEEL_HTTP_BODY_TIMEOUT_MS`), counted
//! from when its head arrived. A per-chunk timeout (tower-http's `RequestBodyTimeout`) would let
//! a client trickle one byte just inside it, indefinitely; this one is not reset by progress.
//! A body cut off this way reads as an error, which the extractors answer 408.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::ApiError;

/// Wraps the request's body in the deadline.
pub async fn bound(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let req = req.map(|body| {
        Body::new(Deadlined {
            body,
            timer: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    });
    next.run(req).await
}

struct Deadlined {
    body: Body,
    timer: Pin<Box<Sleep>>,
    limit: Duration,
}

/// The error a body past its deadline reads as.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimedOut(Duration);

impl http_body::Body for Deadlined {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A body that could not be read, as the API answers it: 413 past the size limit, 408 past
/// the deadline, 400 otherwise.
pub fn unreadable(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge {
            limit: crate::BODY_LIMIT,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(e) = source {
        if let Some(timed_out) = e.downcast_ref::<BodyTimedOut>() {
            return ApiError::RequestTimeout(timed_out.to_string());
        }
        source = e.source();
    }
    ApiError::BadRequest {
        code: "bad_request",
        message: format!("could not read the body: {rejection}"),
    }
}
