//! Prometheus metrics. One process-wide recorder (the `metrics` facade); `/metrics` renders it
//! and appends ledger-derived gauges (jobs by kind and state, backlog and Redis depth per queue),
//! which are cluster-wide because they come from Postgres and Redis, not from this process.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the recorder once per process and returns its handle.
///
/// The recorder keeps every histogram sample (8 bytes each) until something folds them into
/// buckets: a scrape of `/metrics`, or upkeep. `install_recorder` leaves upkeep to the caller,
/// so a process nobody scrapes — a worker without a metrics address — grew by every job and
/// every request it ever timed. A thread of its own runs upkeep, so it runs whichever runtime
/// (or none) first asked for the handle.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("the metrics recorder is installed once");
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .expect("spawn the metrics upkeep thread");
            handle
        })
        .clone()
}

/// Serves this process's metrics alone on `GET /metrics` (for `keel worker` processes, which
/// have no API; the ledger-wide gauges are on the API's `/metrics`), behind `token` when one is
/// set (`KEEL_METRICS_TOKEN`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    token: Option<secrecy::SecretString>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let handle = handle();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let handle = handle.clone();
            let token = token.clone();
            async move {
                use axum::response::IntoResponse;
                if let Some(token) = &token {
                    let given = crate::extract::bearer_token(&headers);
                    if !crate::extract::token_matches(token, given) {
                        return crate::error::ApiError::Unauthorized("metrics token")
                            .into_response();
                    }
                }
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    crate::serve::serve(
        listener,
        app,
        crate::serve::ServerLimits::default(),
        shutdown,
    )
    .await
}

/// The method as a label: HTTP's own methods by name, any other as `other`. Clients choose
/// the method, and each new name had made a new series, so anyone could grow `/metrics` and
/// the process's memory without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Records `keel_http_request_duration_seconds{method, route, status}`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    metrics::histogram!(
        "keel_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => resp.status().as_u16().to_string()
    )
    .record(t0.elapsed().as_secs_f64());
    resp
}
