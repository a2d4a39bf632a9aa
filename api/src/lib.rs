//! Keel's HTTP API.
//!
//! - [`Application`]: builds the router on a bound listener (port 0 in tests) and serves it
//!   until a shutdown token fires.
//! - [`error`]: the one error enum and its HTTP mapping.
//! - [`deadline`]: every request answers within a deadline, also when the database is silent.
//! - [`extract`]: JSON bodies with precise errors; API-key and admin authentication.
//! - [`key_cache`]: API key → tenant, trusted for a few seconds per process.
//! - [`routes`]: tenants and keys, jobs, health/readiness/metrics.
//! - [`metrics`]: the Prometheus recorder and the HTTP request histogram.
//! - [`waits`]: requests waiting for their job to end (`GET /api/jobs/{id}?wait=N`).
#![forbid(unsafe_code)]

pub mod deadline;
pub mod error;
pub mod extract;
pub mod key_cache;
pub mod metering;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod state;
pub mod waits;

use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// The billing logic crate (plan catalog, Stripe signatures), for the binary's settings.
pub use keel_billing as billing;
pub use state::AppState;

/// Request bodies above this get a 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub struct Application {
    listener: TcpListener,
    router: Router,
    submitter: keel_jobs::submitter::Submitter,
    waits: waits::JobWaits,
}

impl Application {
    /// Binds `addr` (use port 0 for a random free port) and builds the router.
    pub async fn build(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (KEEL_API_ADDR): {e}"),
            )
        })?;
        Ok(Self {
            listener,
            submitter: state.submitter.clone(),
            waits: state.waits.clone(),
            router: router(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` fires, then finishes in-flight requests and the Redis pushes of
    /// the jobs they accepted. Requests waiting for a job to end answer at once.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "API listening");
        let waits = self.waits.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                waits.stop();
            })
            .await;
        self.submitter
            .settle(std::time::Duration::from_secs(5))
            .await;
        served
    }
}

pub fn router(state: AppState) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline::within,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(TraceLayer::new_for_http())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
