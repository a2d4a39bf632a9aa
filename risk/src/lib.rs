//! # keel-risk: the delivery-risk engine of Keel
//!
//! Keel's background jobs fetch Jira issues, classify comment sentiment and
//! then ask this crate one question: *how likely is this work to slip, why,
//! and what does the delay cost?* The crate is a pure, deterministic
//! library: no I/O, no global clock, no randomness, no hash-order output.
//! Same inputs and same `now` give byte-identical JSON, which makes results
//! cacheable, diffable between runs and testable.
//!
//! ## Map of the crate
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | input types: [`IssueSnapshot`] and its parts (not Jira JSON) |
//! | [`settings`] | tenant knobs: [`Settings`], [`Thresholds`], validation |
//! | [`factors`] | the nine scoring factors, their [`WEIGHTS`] and constants |
//! | [`assess`] | [`assess_issue`] → [`IssueRisk`] (score, level, costs, summary) |
//! | [`rollup`] | [`rollup_sprint`] (with blocker graph) and [`rollup_portfolio`] |
//! | [`calendar`] | working-day counting used for overdue days and cost |
//! | [`trend`] | [`trend::TrendPoint`], [`trend::render_svg`]: an issue's risk over time as an SVG chart |
//!
//! ## Flow
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use keel_risk::{assess_issue, rollup_portfolio, IssueSnapshot, RiskLevel, Settings, StatusCategory};
//!
//! let now = Utc.with_ymd_and_hms(2024, 5, 7, 12, 0, 0).unwrap();
//! let created = Utc.with_ymd_and_hms(2024, 5, 6, 9, 0, 0).unwrap();
//! let issue = IssueSnapshot::new("ABC-1", "ABC", StatusCategory::New, created);
//! let settings = Settings::default();
//! settings.validate().expect("valid settings");
//!
//! let risk = assess_issue(&issue, &settings, now);
//! assert_eq!(risk.level, RiskLevel::Low);
//! let portfolio = rollup_portfolio(&[risk]);
//! assert_eq!(portfolio.projects[0].project_key, "ABC");
//! ```
//!
//! The scoring model (weights, formulas, rationale) is documented in the
//! crate README and in [`factors`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assess;
pub mod calendar;
pub mod factors;
pub mod model;
pub mod rollup;
pub mod settings;
pub mod trend;
mod util;

pub use assess::{assess_issue, assess_issues, IssueRisk, RiskLevel, MODEL_VERSION};
pub use factors::{names as factor_names, Factor, WEIGHTS};
pub use model::{ChangeEvent, CommentSentiment, IssueSnapshot, Label, LinkedIssue, StatusCategory};
pub use rollup::{
    blocker_graph, rollup_portfolio, rollup_sprint, BlockerEdge, BlockerGraph, LevelCounts,
    PortfolioRollup, ProjectRollup, SprintRollup, TopRisk, OVERALL_KEY, TOP_RISKS,
};
pub use settings::{Settings, Thresholds};
pub use util::issue_key_cmp;
