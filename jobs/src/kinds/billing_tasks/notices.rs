//! `billing.expiry_notices {as_of}` and `billing.expire_credits {as_of}` (internal, daily).
//!
//! `as_of` is the scheduler's tick, so a run means the same thing whenever a worker gets to it
//! (and tests can run simulated days). Each notice is keyed by its subject and threshold
//! (`trial:{tenant}:{trial_end}:3d`, `grant:{id}:1d`, …): a thing ending in 5 days gets its
//! 7-day notice, and that notice is stored (and delivered) once however many daily runs see it.
//! A missed day sends only the most urgent notice due, not the ones it skipped.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{db, notify, stamp};
use crate::error::JobError;
use crate::job::{Job, JobContext};

/// Days before the end that trials and subscriptions set to cancel are announced.
pub const SUBSCRIPTION_THRESHOLDS: &[i64] = &[1, 3, 7];
/// Days before expiry that credit grants with units left are announced.
pub const GRANT_THRESHOLDS: &[i64] = &[1, 7];
/// Days before a past-due subscription's grace ends that it is announced.
pub const GRACE_THRESHOLDS: &[i64] = &[1, 3];
/// A past-due tenant keeps running jobs this long after its oldest failed payment (the same
/// rule as metering's `PAST_DUE_GRACE_DAYS` in the API).
pub const PAST_DUE_GRACE_DAYS: i64 = 7;

/// The threshold (in days) whose notice is due for something ending at `ends` seen at `as_of`:
/// the smallest threshold at or above the whole days left (rounded up). `None` when it ended
/// or is further away than the largest threshold.
pub fn threshold(as_of: DateTime<Utc>, ends: DateTime<Utc>, thresholds: &[i64]) -> Option<i64> {
    let secs = (ends - as_of).num_seconds();
    if secs <= 0 {
        return None;
    }
    let days_left = (secs + 86_399) / 86_400;
    thresholds.iter().copied().find(|t| days_left <= *t)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryNotices {
    pub as_of: DateTime<Utc>,
}

/// One notice to store for one tenant.
struct Notice {
    tenant: Uuid,
    kind: &'static str,
    subject: String,
    body: Value,
}

impl ExpiryNotices {
    async fn due(&self, pool: &keel_models::PgPool) -> sqlx::Result<Vec<Notice>> {
        use keel_models::billing_tasks as bt;
        let as_of = self.as_of;
        let horizon = as_of + Duration::days(7);
        let mut out = Vec::new();
        let mut ending = |kind, prefix, e: bt::Ending| {
            if let Some(t) = threshold(as_of, e.ends_at, SUBSCRIPTION_THRESHOLDS) {
                out.push(Notice {
                    tenant: e.tenant_id,
                    kind,
                    subject: format!("{prefix}:{}:{}:{t}d", e.tenant_id, stamp(e.ends_at)),
                    body: json!({ "plan_id": e.plan_id, "ends_at": e.ends_at, "days": t }),
                });
            }
        };
        for e in bt::trials_ending(pool, as_of, horizon).await? {
            ending("trial_ending", "trial", e);
        }
        for e in bt::cancellations_ending(pool, as_of, horizon).await? {
            ending("subscription_ending", "sub", e);
        }
        for g in bt::grants_expiring(pool, as_of, horizon).await? {
            if let Some(t) = threshold(as_of, g.expires_at, GRANT_THRESHOLDS) {
                out.push(Notice {
                    tenant: g.tenant_id,
                    kind: "credits_expiring",
                    subject: format!("grant:{}:{t}d", g.id),
                    body: json!({ "grant_id": g.id, "pack_id": g.pack_id, "remaining": g.remaining,
                                  "expires_at": g.expires_at, "days": t }),
                });
            }
        }
        for tenant in bt::past_due_tenants(pool).await? {
            let Some(failed) = keel_models::metering::oldest_failed_payment(pool, tenant).await?
            else {
                continue;
            };
            let grace_end = failed + Duration::days(PAST_DUE_GRACE_DAYS);
            if let Some(t) = threshold(as_of, grace_end, GRACE_THRESHOLDS) {
                out.push(Notice {
                    tenant,
                    kind: "payment_grace_ending",
                    subject: format!("grace:{tenant}:{}:{t}d", stamp(failed)),
                    body: json!({ "payment_failed_at": failed, "grace_ends_at": grace_end,
                                  "days": t }),
                });
            }
        }
        Ok(out)
    }
}

impl Job for ExpiryNotices {
    const NAME: &'static str = "billing.expiry_notices";
    const INTERNAL: bool = true;
    /// One transaction per notice due, over every tenant.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let pool = &ctx.services.pool;
        let due = self.due(pool).await.map_err(db)?;
        let mut stored = 0;
        for n in &due {
            let mut tx = pool.begin().await.map_err(db)?;
            let s = notify::notify(&mut tx, n.tenant, n.kind, &n.subject, &n.body)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            stored += usize::from(s.is_some());
        }
        Ok(json!({ "as_of": self.as_of, "due": due.len(), "stored": stored }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireCredits {
    pub as_of: DateTime<Utc>,
}

impl Job for ExpireCredits {
    const NAME: &'static str = "billing.expire_credits";
    const INTERNAL: bool = true;

    /// One transaction: the expired grants are locked and zeroed and each gets its
    /// `credits_expired` notice, or nothing happens. Only grants with `expires_at <= as_of` and
    /// units left are touched; units already held by reservations were taken off `remaining`
    /// at submit, so those jobs keep them.
    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let mut tx = ctx.services.pool.begin().await.map_err(db)?;
        let grants = keel_models::billing_tasks::expire_grants(&mut tx, self.as_of)
            .await
            .map_err(db)?;
        for g in &grants {
            let body = json!({ "grant_id": g.id, "pack_id": g.pack_id, "units": g.units,
                               "expired_units": g.remaining, "expires_at": g.expires_at });
            let subject = format!("grant:{}:expired", g.id);
            notify::notify(&mut tx, g.tenant_id, "credits_expired", &subject, &body)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(json!({
            "as_of": self.as_of,
            "expired_grants": grants.len(),
            "expired_units": grants.iter().map(|g| g.remaining).sum::<i64>(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_most_urgent_threshold_not_yet_passed_is_due() {
        let end = Utc.with_ymd_and_hms(2030, 1, 10, 0, 0, 0).unwrap();
        let at = |days: i64, hours: i64| end - Duration::days(days) - Duration::hours(hours);
        let t = |a| threshold(a, end, SUBSCRIPTION_THRESHOLDS);
        assert_eq!(t(at(8, 0)), None, "further than 7 days");
        assert_eq!(t(at(7, 0)), Some(7));
        assert_eq!(t(at(4, 0)), Some(7));
        assert_eq!(t(at(3, 0)), Some(3));
        assert_eq!(
            t(at(1, 1)),
            Some(3),
            "1 day 1 hour left rounds up to 2 days"
        );
        assert_eq!(t(at(0, 5)), Some(1));
        assert_eq!(t(end), None, "ended");
        assert_eq!(threshold(at(5, 0), end, GRANT_THRESHOLDS), Some(7));
        assert_eq!(threshold(at(2, 0), end, GRANT_THRESHOLDS), Some(7));
        assert_eq!(threshold(at(1, 0), end, GRANT_THRESHOLDS), Some(1));
    }
}
