//! Keel billing logic with no I/O (no SQL, no HTTP), so it is unit-tested in isolation:
//!
//! - [`catalog`]: the plan catalog (`config/plans.toml`, embedded; `KEEL_PLANS_FILE`
//!   overrides) — plans, unit weights per job kind, credit packs, add-ons — and Stripe price
//!   id lookups; `validate.rs` holds the rules checked at start.
//! - [`proration`]: what a mid-period plan change costs (local mode).
//! - [`signature`]: verifying (and, for tests, producing) `Stripe-Signature` headers.
//! - [`stripe`]: the Stripe event and object fields Keel reads.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod proration;
pub mod signature;
pub mod stripe;
mod validate;

#[cfg(test)]
mod tests;

pub use catalog::{Catalog, Interval, Overage, Plan, PriceRef};
pub use validate::RESERVED_KINDS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("plan catalog cannot be read: {0}")]
    Read(String),
    #[error("plan catalog is not valid TOML for its schema: {0}")]
    Parse(String),
    #[error("plan catalog is invalid: {0}")]
    Invalid(String),
}
