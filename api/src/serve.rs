//! The HTTP server: axum's router on hyper's HTTP/1 connections, with the bounds
//! `axum::serve` lacks, so that no client can hold a connection (and its file descriptor and
//! memory) for longer than it takes to send a request:
//!
//! - **header timeout**: a new connection, or one that has begun its next request, must deliver
//!   a complete request head within [`Timeouts::header`] (1,000 connections that sent half a
//!   header had been kept open for ever);
//! - **idle timeout**: a kept-alive connection with no request in progress is closed after
//!   [`Timeouts::idle`]; so is one whose client stops reading its response;
//! - **body timeout**: a request's whole body must arrive within [`Timeouts::body`] of its head
//!   (see [`crate::body_deadline`]; a trickled body is cut off, not timed per chunk);
//! - **connection limit**: past [`ServerLimits::max_connections`] open connections the server
//!   stops accepting until one closes (new clients wait in the kernel's backlog).
//!
//! While a request is being handled no connection timer runs: the handler's own deadline
//! (`crate::deadline`) bounds it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Per-connection timeouts (`KEEL_HTTP_*_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
    pub body: Duration,
}

/// The server's bounds (`KEEL_HTTP_*`).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub timeouts: Timeouts,
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            timeouts: Timeouts {
                header: Duration::from_secs(10),
                idle: Duration::from_secs(30),
                body: Duration::from_secs(30),
            },
            max_connections: 4096,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires; then stops accepting, lets requests in
/// progress finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.timeouts.body,
        crate::body_deadline::bound,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut warned_full: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_full.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    warned_full = Some(Instant::now());
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection limit reached (KEEL_HTTP_MAX_CONNECTIONS): not accepting until one closes"
                    );
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => permit.expect("never closed"),
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // not the listener's end. Pause briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Watched::new(stream, limits.timeouts);
        let activity = conn.activity.clone();
        let router = router.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let handling = activity.begin();
            let router = router.clone();
            async move {
                let response = router.oneshot(req.map(axum::body::Body::new)).await;
                drop(handling);
                response
            }
        });
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let http = hyper::server::conn::http1::Builder::new();
            let conn = http.serve_connection(TokioIo::new(conn), TowerToHyperService::new(service));
            tokio::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What the connection's requests are doing, shared by its I/O and its service.
#[derive(Default)]
struct Activity {
    /// Requests being handled (0 or 1 on HTTP/1).
    handling: AtomicUsize,
    /// Requests answered so far.
    answered: AtomicU64,
    /// When the last one was answered.
    answered_at: Mutex<Option<Instant>>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::SeqCst);
        Handling(self.clone())
    }
}

/// A request being handled; dropped when its response is ready (or the request is abandoned).
struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        *self.0.answered_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.0.answered.fetch_add(1, Ordering::SeqCst);
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream that fails its reads and writes once the connection has waited too long for
/// its client (see the module documentation); hyper then closes it.
struct Watched {
    io: TcpStream,
    timeouts: Timeouts,
    activity: Arc<Activity>,
    opened_at: Instant,
    /// `answered` when this side last looked, and when the current request's first byte came.
    seen_answered: u64,
    head_started_at: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    write_stalled_since: Option<Instant>,
}

impl Watched {
    fn new(io: TcpStream, timeouts: Timeouts) -> Self {
        let now = Instant::now();
        Self {
            io,
            timeouts,
            activity: Arc::default(),
            opened_at: now,
            seen_answered: 0,
            head_started_at: None,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_stalled_since: None,
        }
    }

    /// When waiting for the client to send must end; `None` while a request is being handled.
    fn read_deadline(&mut self) -> Option<Instant> {
        if self.activity.handling.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let answered = self.activity.answered.load(Ordering::SeqCst);
        if answered != self.seen_answered {
            // A request was answered since: what arrives next belongs to a new one.
            self.seen_answered = answered;
            self.head_started_at = None;
        }
        Some(match self.head_started_at {
            Some(first_byte) => first_byte + self.timeouts.header,
            None if answered == 0 => self.opened_at + self.timeouts.header,
            None => {
                let at = *self
                    .activity
                    .answered_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                at.unwrap_or(self.opened_at) + self.timeouts.idle
            }
        })
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("client {what}"))
}

/// Waits on `timer` until `deadline`: ready (the connection has waited too long) or pending
/// with the task's waker registered.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && this.head_started_at.is_none()
                    && this.read_deadline().is_some()
                {
                    this.head_started_at = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.read_deadline() {
                Some(deadline) if expired(&mut this.read_timer, deadline, cx) => {
                    Poll::Ready(Err(timed_out("sent no complete request in time")))
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Pending => {
                let since = *this.write_stalled_since.get_or_insert_with(Instant::now);
                if expired(&mut this.write_timer, since + this.timeouts.idle, cx) {
                    return Poll::Ready(Err(timed_out("stopped reading its response")));
                }
                Poll::Pending
            }
            ready => {
                this.write_stalled_since = None;
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
