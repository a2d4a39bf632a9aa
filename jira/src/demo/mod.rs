//! A built-in demo Jira: sample data served on loopback (feature `demo`).
//!
//! `keel up --demo` needs a Jira to analyse in the first minute, before
//! anyone has an Atlassian site or an API token at hand. [`DemoJira`] serves
//! a small, invented Jira site (projects `DEMO` and `OPS`, one board with an
//! active sprint) with exactly the endpoints and JSON shapes that
//! [`crate::JiraClient`] reads, so the whole pipeline (client, paging,
//! snapshot mapping, risk scoring) runs unchanged against it.
//!
//! * **Clearly demo data**: project names end in "(sample data)", people
//!   are suffixed "(demo)", every description says the issue is invented
//!   and every issue carries the label `keel-demo`.
//! * **Always current**: dates are computed from the `now` the server
//!   starts with, so there is always overdue, stale and blocked work.
//!   Deterministic: no randomness, same `now` gives the same data.
//! * **Behaves like Jira**: HTTP Basic with [`DEMO_EMAIL`] /
//!   [`DEMO_TOKEN`] (anything else is a 401), Jira's error bodies
//!   (`{"errorMessages":[…],"errors":{}}`), 404 for unknown issues, offset
//!   paging for changelogs, comments and sprint issues, `nextPageToken`
//!   paging for JQL search. Issue responses embed at most 10 changelog
//!   entries and 10 comments, and `DEMO-1` has more of both, so the
//!   client's paged endpoints are exercised too.
//! * **Loopback only**: [`DemoJira::start`] refuses other addresses; the
//!   credentials are public, so the server must not be reachable from
//!   elsewhere.
//!
//! JQL: only `project = A`, `project in (A, B)` and `ORDER BY key
//! [ASC|DESC]` (what Keel sends); anything else is a 400 saying so.

mod agile;
mod build;
mod data_demo;
mod data_ops;
mod history;
mod jql;
mod relations;
mod routes;
mod spec;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Email of the demo account (HTTP Basic user name).
pub const DEMO_EMAIL: &str = "demo@keel.example";
/// API token of the demo account. Public on purpose: it only opens the
/// sample data served on loopback.
pub const DEMO_TOKEN: &str = "keel-demo-token";
/// The demo board (Jira Software board id).
pub const DEMO_BOARD_ID: u64 = 1;
/// The demo board's active sprint.
pub const DEMO_SPRINT_ID: u64 = 10;
/// The demo projects, in key order.
pub const DEMO_PROJECT_KEYS: &[&str] = &["DEMO", "OPS"];
/// The story-points field the demo fills (the [`crate::JiraConfig`] default).
pub const DEMO_STORY_POINTS_FIELD: &str = "customfield_10016";

/// A running demo Jira. Dropping it (or [`shutdown`](Self::shutdown)) stops
/// the server.
#[derive(Debug)]
pub struct DemoJira {
    /// Site root to give [`crate::JiraClient::new`], e.g.
    /// `http://127.0.0.1:41234` (needs [`crate::JiraConfig::allow_insecure_http`]).
    pub base_url: String,
    /// The address actually bound (the real port when started on port 0).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DemoJira {
    /// Binds `addr` (a loopback address; port 0 picks a free port), builds
    /// the sample data relative to the current time and serves it in a
    /// background task. Must be called inside a Tokio runtime.
    pub async fn start(addr: SocketAddr) -> io::Result<DemoJira> {
        Self::start_at(addr, Utc::now()).await
    }

    /// [`start`](Self::start) with the data built relative to `now`
    /// (deterministic; for tests and reproducible demos).
    pub async fn start_at(addr: SocketAddr, now: DateTime<Utc>) -> io::Result<DemoJira> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the demo Jira only listens on loopback (127.0.0.1 or ::1), not {addr}"),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let data = Arc::new(build::DemoData::build(now, &base_url));
        let app = routes::router(data);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "demo Jira server stopped with an error");
            }
        });
        tracing::info!(%base_url, "demo Jira (sample data) listening");
        Ok(DemoJira {
            base_url,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops accepting connections, lets requests in flight finish and
    /// waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // Clients with long-lived keep-alive connections could hold a
            // graceful shutdown open; do not wait for them forever.
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for DemoJira {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
