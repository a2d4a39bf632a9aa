//! # keel-jira: Keel's Jira Cloud client
//!
//! Keel analyses delivery risk from Jira. This crate is the only place that
//! speaks Jira's REST dialect: it fetches issues (with their *complete*
//! changelog and comments), runs JQL searches, reads sprints, turns every
//! failure into a retryable-or-fatal [`JiraError`], and maps Jira's JSON into
//! the risk engine's [`keel_risk::IssueSnapshot`].
//!
//! ## Map of the crate
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`client`] | [`JiraClient`]: Basic auth, timeout, per-tenant concurrency cap, endpoints, paging |
//! | [`config`] | [`JiraConfig`]: timeouts, concurrency, page size, story-points field, in-client retry |
//! | [`error`] | [`JiraError`]: `is_retryable()` / `retry_after()` for the job layer; 429 header parsing |
//! | [`types`] | response types shaped like Atlassian's documented JSON (v3 + agile 1.0) |
//! | [`adf`] | Atlassian Document Format → plain text (comment bodies, for sentiment) |
//! | [`snapshot`] | [`to_snapshot`]: [`JiraIssue`] → [`keel_risk::IssueSnapshot`] |
//! | `demo` | (feature `demo`) `DemoJira`: built-in sample Jira on loopback for `keel up --demo` |
//!
//! ## Flow
//!
//! ```no_run
//! # async fn demo() -> Result<(), keel_jira::JiraError> {
//! use keel_jira::{JiraClient, JiraConfig, Sentiment};
//! use keel_risk::Label;
//! use secrecy::SecretString;
//!
//! let client = JiraClient::new(
//!     "https://acme.atlassian.net",
//!     "bot@acme.com",
//!     SecretString::from("api-token"),
//!     JiraConfig::default(),
//! )?;
//! client.myself().await?; // validates the credentials
//! let issue = client.issue("ED-1").await?;
//! let snapshot = client.to_snapshot(&issue, |_text| Sentiment {
//!     label: Label::Neutral,
//!     negative_prob: 0.0,
//! })?;
//! # let _ = snapshot; Ok(()) }
//! ```
//!
//! ## Errors and the job layer
//!
//! `keel-jobs` is deliberately not a dependency (the API uses this crate to
//! test a connection). A job handler maps errors as
//! `if e.is_retryable() { JobError::Retryable { message: e.to_string(), retry_after: e.retry_after() } } else { JobError::Fatal { message: e.to_string() } }`.
//! See the crate README for the status → error table.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adf;
pub mod client;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod snapshot;
pub mod types;

pub use client::{Capped, JiraClient, SNAPSHOT_FIELDS};
pub use config::JiraConfig;
pub use error::{retry_after_from_headers, JiraError, CREDENTIALS_REJECTED};
pub use snapshot::{to_snapshot, Sentiment};
pub use types::{
    ChangeItem, Changelog, Comment, CommentPage, History, IssueFields, IssueLink, JiraIssue,
    JiraUser, Sprint,
};
