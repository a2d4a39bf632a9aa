//! Billing jobs the scheduler's billing tasks enqueue (issue #6). All internal
//! ([`crate::Job::INTERNAL`]): tenants can neither submit nor see them.
//!
//! - [`close_period::ClosePeriod`] (`billing.close_period`): final usage and overage of one
//!   tenant-period, a usage statement, `closed_at`.
//! - [`monthly_run::MonthlyRun`] (`billing.monthly_run`): per-tenant billing summaries and the
//!   month's revenue snapshot.
//! - [`notices::ExpiryNotices`] (`billing.expiry_notices`): trials, cancellations, credit grants
//!   and failed-payment grace ending soon.
//! - [`notices::ExpireCredits`] (`billing.expire_credits`): zeroes expired grants.
//!
//! Every job is safe to run twice or concurrently: what it writes is keyed (a notice by
//! `(tenant, kind, subject)`, a snapshot by month, a period by its row lock and `closed_at`),
//! and a notice is delivered only by the run that stored it, in the same transaction
//! ([`notify::notify`]).

pub mod close_period;
pub mod monthly_run;
pub mod notices;
pub mod notify;

use chrono::{DateTime, Utc};

use crate::error::JobError;

/// A database error is worth retrying (the job's writes are idempotent).
pub(crate) fn db(e: sqlx::Error) -> JobError {
    JobError::retryable(format!("database error: {e}"))
}

/// RFC 3339 in whole seconds, `Z`: the stable spelling used in notice subjects.
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Overage price per unit of a plan (0 for hard-capped or unknown plans), from the catalog.
pub(crate) fn overage_price(catalog: &keel_billing::Catalog, plan_id: &str) -> i64 {
    match catalog.plan(plan_id).map(|p| p.overage) {
        Some(keel_billing::Overage::PerUnit(cents)) => cents,
        _ => 0,
    }
}
