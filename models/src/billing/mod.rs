//! Billing records (issue #5). Stripe is mirrored, never trusted blindly: webhooks land in
//! [`events`] (the inbox, one row per Stripe event id) and the `stripe.event` job applies them
//! to [`subscriptions`], customers, [`ledger`] (invoices, purchases, credit grants), guarded per
//! Stripe object by [`events::claim_version`] so an older event never overwrites newer state.
//! [`stats`] answers the operators' revenue questions; [`reconcile`] keeps what the daily
//! Stripe reconciliation found.

pub mod events;
pub mod ledger;
pub mod reconcile;
pub mod stats;
pub mod subscriptions;

use chrono::{DateTime, TimeZone, Utc};

/// Stripe's unix seconds as a timestamp (out-of-range values become `None`).
pub fn from_unix(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}
