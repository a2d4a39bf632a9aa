//! The `keel` binary's library: settings, start-up and the command line, so tests can boot
//! exactly what the binary runs.
//!
//! - [`settings`]: typed, layered configuration.
//! - [`startup`]: [`startup::Keel`] connects Postgres and Redis once and builds the API,
//!   workers and scheduler from them.
//! - [`cli`]: the subcommands (`up`, `api`, `worker`, `scheduler`, `migrate`, `tenant`,
//!   `model`, `secrets`).
//! - [`secrets`]: `keel secrets rotate`.
//! - [`demo`]: `keel up --demo`, a sample Jira on loopback and a demo tenant connected to it.
//! - [`telemetry`]: tracing set-up.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod runtime;
pub mod secrets;
pub mod settings;
pub mod startup;
pub mod telemetry;
