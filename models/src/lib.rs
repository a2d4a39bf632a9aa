//! Keel's domain types and every SQL statement it runs.
//!
//! Postgres is Keel's source of truth; this crate is the only place that speaks SQL, so every
//! statement is compile-checked by `sqlx::query!` (offline data lives in `.sqlx/` at the
//! workspace root). Nothing here knows about HTTP, Redis or job handlers.
//!
//! - [`db`]: connecting (creating the database when it is missing) and migrations.
//! - [`crypto`]: API-key hashing and AES-256-GCM encryption of secrets at rest.
//! - [`tenant`]: tenants and their API keys.
//! - [`job`]: the job ledger — insert, guarded state transitions, relay queries, listings.
//! - [`schedule`]: the scheduler's exactly-once tick records, and pruning of old finished jobs.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod db;
pub mod job;
pub mod schedule;
pub mod tenant;

pub use sqlx::{PgConnection, PgPool, Postgres, Transaction};
