//! Keel's HTTP API.
//!
//! - [`Application`]: builds the router on a bound listener (port 0 in tests) and serves it
//!   until a shutdown token fires.
//! - [`error`]: the one error enum and its HTTP mapping.
//! - [`serve`]: the HTTP server loop, with header, idle and body timeouts and a connection limit.
//! - [`body_deadline`]: a request body must arrive whole within a deadline.
//! - [`deadline`]: every request answers within a deadline, also when the database is silent.
//! - [`tenant_gate`]: a tenant's write transactions in flight are bounded, so one tenant cannot
//!   take the connection pool.
//! - [`extract`]: JSON bodies with precise errors; API-key and admin authentication.
//! - [`key_cache`]: API key → tenant, trusted for a few seconds per process.
//! - [`routes`]: tenants and keys, jobs, health/readiness/metrics.
//! - [`metrics`]: the Prometheus recorder and the HTTP request histogram.
//! - [`waits`]: requests waiting for their job to end (`GET /api/jobs/{id}?wait=N`).
#![forbid(unsafe_code)]

pub mod body_deadline;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod key_cache;
pub mod metering;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod serve;
pub mod state;
pub mod tenant_gate;
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
    state: AppState,
    limits: serve::ServerLimits,
    /// `/metrics` on an address of its own (`KEEL_METRICS_ADDR`) rather than the API's.
    metrics_listener: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, var: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({var}): {e}")))
}

impl Application {
    /// Binds `addr` (use port 0 for a random free port) and builds the router, with the
    /// server's default bounds.
    pub async fn build(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        Self::build_with(addr, state, serve::ServerLimits::default()).await
    }

    /// [`Self::build`] with the server's timeouts and connection limit.
    pub async fn build_with(
        addr: SocketAddr,
        state: AppState,
        limits: serve::ServerLimits,
    ) -> std::io::Result<Self> {
        Ok(Self {
            listener: bind(addr, "KEEL_API_ADDR").await?,
            state,
            limits,
            metrics_listener: None,
        })
    }

    /// Serves `/metrics` on `addr` instead of the API's address (`KEEL_METRICS_ADDR`), so it
    /// can stay inside the cluster while the API faces the internet.
    pub async fn with_metrics_on(mut self, addr: SocketAddr) -> std::io::Result<Self> {
        self.metrics_listener = Some(bind(addr, "KEEL_METRICS_ADDR").await?);
        Ok(self)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener has an address"))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` fires, then finishes in-flight requests and the Redis pushes of
    /// the jobs they accepted. Requests waiting for a job to end answer at once.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "API listening");
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        let waits = self.state.waits.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            waits.stop();
            stopping.cancel();
        });
        let submitter = self.state.submitter.clone();
        let api = match self.metrics_listener {
            None => router(self.state),
            Some(listener) => {
                tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
                let metrics = layered(routes::metrics_router(), self.state.clone());
                tokio::spawn(serve::serve(
                    listener,
                    metrics,
                    serve::ServerLimits::default(),
                    stop.clone(),
                ));
                layered(routes::router(), self.state)
            }
        };
        let served = serve::serve(self.listener, api, self.limits, stop).await;
        submitter.settle(std::time::Duration::from_secs(5)).await;
        served
    }
}

/// Every route, `/metrics` included, with the API's layers.
pub fn router(state: AppState) -> Router {
    layered(routes::router().merge(routes::metrics_router()), state)
}

fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
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
