//! Jira delivery-risk analysis: `jira.analyze.issue`, `jira.analyze.sprint` and
//! `jira.analyze.portfolio`.
//!
//! Each job loads the tenant's Jira connection ([`access`]), fetches the issues with their full
//! changelog and comments (`keel-jira`), scores comment sentiment with the built-in model, asks
//! the pure risk engine (`keel-risk`) for an explained verdict, and writes every assessment to
//! `analysis_history` plus one usage event, in one transaction keyed by the job id ([`common`]),
//! so retries and duplicate deliveries never count twice.

pub mod access;
pub mod common;
pub mod issue;
pub mod portfolio;
pub mod sprint;

pub use access::JiraClients;
pub use issue::AnalyzeIssue;
pub use portfolio::AnalyzePortfolio;
pub use sprint::AnalyzeSprint;
