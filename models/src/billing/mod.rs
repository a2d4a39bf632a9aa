//! Billing records (issue #5). Stripe is mirrored, never trusted blindly: webhooks land in
//! [`events`] (the inbox, one row per Stripe event id) and the `stripe.event` job applies them
//! to [`subscriptions`], customers, [`ledger`] (invoices, purchases, credit grants), guarded per
//! Stripe object by [`events::claim_version`] so an older event never overwrites newer state.
//! [`stats`] answers the operators' revenue questions; [`reconcile`] keeps what the daily
//! Stripe reconciliation found; [`trials`] that a tenant had its one trial.

pub mod events;
pub mod ledger;
pub mod reconcile;
pub mod stats;
pub mod subscriptions;
pub mod trials;

use chrono::{DateTime, TimeZone, Utc};

/// The last second of year 9999: no Stripe time is later.
const LAST_UNIX_SECOND: i64 = 253_402_300_799;

/// Stripe's unix seconds as a timestamp; `None` before 1970 or after year 9999. chrono takes
/// a far wider range than Postgres stores: a signed event with `created` in 9,500 BC reached
/// the insert and answered 500, so Stripe would have retried it for days.
pub fn from_unix(secs: i64) -> Option<DateTime<Utc>> {
    if !(0..=LAST_UNIX_SECOND).contains(&secs) {
        return None;
    }
    Utc.timestamp_opt(secs, 0).single()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stripe_times_are_between_1970_and_9999() {
        use super::from_unix;
        assert!(from_unix(-1).is_none());
        assert!(from_unix(-300_000_000_000).is_none());
        assert!(from_unix(253_402_300_800).is_none());
        assert_eq!(
            from_unix(0).unwrap().to_rfc3339(),
            "1970-01-01T00:00:00+00:00"
        );
        assert_eq!(
            from_unix(253_402_300_799).unwrap().to_rfc3339(),
            "9999-12-31T23:59:59+00:00"
        );
    }
}
