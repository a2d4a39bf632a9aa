//! Keel's domain types and every SQL statement it runs.
//!
//! Postgres is Keel's source of truth; this crate is the only place that speaks SQL, so every
//! statement is compile-checked by `sqlx::query!` (offline data lives in `.sqlx/` at the
//! workspace root). Nothing here knows about HTTP, Redis or job handlers.
//!
//! - [`db`]: connecting (creating the database when it is missing) and migrations.
//! - [`held`]: long-lived connections for the hot batch statements (no pool pings, generic
//!   plans).
//! - [`crypto`]: API-key hashing and AES-256-GCM encryption of secrets at rest.
//! - [`secrets`]: `keel secrets rotate`, re-sealing every stored secret under the primary key.
//! - [`tenant`]: tenants and their API keys.
//! - [`tenant_state`]: disabling a tenant (keys refused, waiting jobs held) and enabling it.
//! - [`job`]: the job ledger — insert, guarded state transitions, relay queries, listings.
//! - [`jira`]: a tenant's Jira connection (token sealed) and risk settings.
//! - [`analysis`]: `analysis_history`, every issue assessment (history and trends).
//! - [`metering`]: per-period allowance counters and per-job reservations (quota at submit).
//! - [`usage`]: the append-only usage ledger, one row per successful job.
//! - [`schedule`]: the scheduler's exactly-once tick records, and pruning of old finished jobs.
//! - [`billing_tasks`]: per-tenant-period run keys, notifications, revenue snapshots (issue #6).
#![forbid(unsafe_code)]

pub mod analysis;
pub mod billing;
pub mod billing_tasks;
pub mod crypto;
pub mod db;
pub mod held;
pub mod jira;
pub mod job;
pub mod metering;
pub mod schedule;
pub mod secrets;
pub mod tenant;
pub mod tenant_state;
pub mod usage;

pub use sqlx::{PgConnection, PgPool, Postgres, Transaction};
