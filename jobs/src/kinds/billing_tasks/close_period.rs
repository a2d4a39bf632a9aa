//! `billing.close_period` (internal): closes one tenant's usage period after it ended.
//!
//! In one transaction, under the period's row lock: final usage from the period's counters,
//! overage = `used_overage` × the plan's overage price (catalog), a `usage_statement` notice
//! (stored once, delivered to the tenant's notification URL if any), and `closed_at`. A second
//! run finds `closed_at` set and changes nothing. The new period's counters start lazily at the
//! tenant's next metered submit, so closing the old period is the counter reset.
//!
//! In Stripe mode, a period with overage also gets its `stripe.report_usage` job in the same
//! transaction (one per tenant-period): the overage reaches Stripe as a Billing Meter event
//! if and only if the period closed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{db, notify, overage_price, stamp};
use crate::error::JobError;
use crate::job::{Job, JobContext};

/// Notice kind of a period's statement; its subject is the period start.
pub const STATEMENT: &str = "usage_statement";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosePeriod {
    pub tenant_id: Uuid,
    pub period_start: DateTime<Utc>,
}

impl Job for ClosePeriod {
    const NAME: &'static str = "billing.close_period";
    const INTERNAL: bool = true;

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        use keel_models::billing_tasks as bt;
        let catalog = keel_billing::catalog::global();
        let mut tx = ctx.services.pool.begin().await.map_err(db)?;
        let Some(p) =
            keel_models::metering::lock_existing_period(&mut tx, self.tenant_id, self.period_start)
                .await
                .map_err(db)?
        else {
            return Err(JobError::fatal(format!(
                "tenant {} has no usage period starting {}",
                self.tenant_id,
                stamp(self.period_start)
            )));
        };
        if let Some(at) = p.closed_at {
            return Ok(json!({ "closed": false, "already_closed_at": at }));
        }
        let price = overage_price(&catalog, &p.plan_id);
        let kinds = bt::period_kinds(&mut tx, self.tenant_id, self.period_start)
            .await
            .map_err(db)?;
        let closed_at = Utc::now();
        let statement = json!({
            "tenant_id": p.tenant_id,
            "period_start": p.period_start,
            "period_end": p.period_end,
            "plan_id": p.plan_id,
            "currency": catalog.currency,
            "included_units": p.included_units,
            "used_included": p.used_included,
            "used_credits": p.used_credits,
            "used_overage": p.used_overage,
            "used_units": p.used_included + p.used_credits + p.used_overage,
            // Held by jobs still unfinished at closing; they settle into this period later but
            // are not on this statement.
            "pending_units": p.reserved_included + p.reserved_credits + p.reserved_overage,
            "overage_units": p.used_overage,
            "overage_unit_price": price,
            "overage_amount": p.used_overage * price,
            "jobs_by_kind": kinds,
            "closed_at": closed_at,
        });
        let stored = notify::notify(
            &mut tx,
            self.tenant_id,
            STATEMENT,
            &stamp(self.period_start),
            &statement,
        )
        .await
        .map_err(db)?;
        bt::mark_period_closed(&mut tx, self.tenant_id, self.period_start, closed_at)
            .await
            .map_err(db)?;
        let mut usage_job = None;
        if p.used_overage > 0 && crate::kinds::stripe::ops::installed().is_some() {
            let report = crate::kinds::stripe::sync::ReportUsage {
                tenant_id: p.tenant_id,
                period_start: p.period_start,
                period_end: p.period_end,
                units: p.used_overage,
            };
            let inserted = keel_models::job::insert(&mut tx, &report.job())
                .await
                .map_err(db)?;
            usage_job = Some(match inserted {
                keel_models::job::Inserted::New(j) | keel_models::job::Inserted::Existing(j) => {
                    j.id
                }
            });
        }
        tx.commit().await.map_err(db)?;
        tracing::info!(tenant_id = %self.tenant_id, period_start = %self.period_start,
            overage_units = p.used_overage, "usage period closed");
        Ok(json!({
            "closed": true,
            "overage_units": p.used_overage,
            "overage_amount": p.used_overage * price,
            "notification_id": stored.map(|s| s.id),
            "delivery_job_id": stored.and_then(|s| s.delivery_job_id),
            "usage_report_job_id": usage_job,
        }))
    }
}
