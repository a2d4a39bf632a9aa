//! Keel's workers.
//!
//! A worker process runs three cooperating loops over one [`keel_jobs::lane::Lane`] and one
//! Postgres pool:
//! - [`fetch`]: `XREADGROUP … BLOCK` for as many entries as it has free slots and places ahead
//!   (both semaphores, so it never takes more than it can run or hold), and one task per
//!   delivery;
//! - [`prefetch`]: while handlers are short, up to `prefetch` more jobs are started ahead of
//!   free slots, so a freed slot runs its next job without a round trip;
//! - [`runner`]: a batch of deliveries → one guarded `start` in the ledger → handlers → guarded
//!   finish → ack;
//! - [`batch`]: successes recorded (and acked) in batches that grow with load;
//! - [`supervisor`]: one batched heartbeat for every job in flight (extends leases, notices
//!   cancel requests and lost jobs);
//! - [`relay`]: pushes ledger rows that Redis lost or never got (every process runs one; SKIP
//!   LOCKED lets them cooperate), and keeps Redis a bounded window.
//!
//! [`Worker::run_until_stopped`] runs them until the shutdown token fires, then drains in-flight
//! jobs within `shutdown_timeout` and hands the rest back. Tests drive a worker one job at a
//! time with [`Worker::process_next`] and the relay with [`relay::Relay::tick`].
#![forbid(unsafe_code)]

pub mod batch;
pub mod config;
pub mod fetch;
pub mod prefetch;
pub mod relay;
pub mod runner;
pub mod supervisor;

pub use config::{JobTimeouts, WorkerConfig};
pub use fetch::Worker;
pub use runner::Outcome;
