//! `billing.monthly_run {month: "YYYY-MM"}` (internal): the month's per-tenant billing
//! summaries and its revenue snapshot, each written once (a summary per
//! `(tenant, billing_summary, month)`, the snapshot per month), so a rerun or a caught-up
//! duplicate changes nothing.
//!
//! Usage counts the periods that *ended* in the month (a calendar-month period ending at
//! midnight on the 1st belongs to the month before). MRR, ARR and live subscriptions are read
//! at run time — subscriptions are not historised — so a month caught up late shows the
//! subscriptions of the day it ran; churn and credit-pack sales are counted by timestamp within
//! the month (churn: the 30 days before its end).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{db, notify, overage_price};
use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

/// Notice kind of a tenant's monthly summary; its subject is the month.
pub const SUMMARY: &str = "billing_summary";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthlyRun {
    /// `YYYY-MM`, the month reported.
    pub month: String,
}

/// `[first of month, first of next month)` of `YYYY-MM`.
pub fn month_bounds(month: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    if month.len() != 7 {
        return None;
    }
    let next = first.checked_add_months(chrono::Months::new(1))?;
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
    Some((at(first), at(next)))
}

/// The last complete month before `tick`: the month a run at `tick` reports.
pub fn month_before(tick: DateTime<Utc>) -> String {
    let first = NaiveDate::from_ymd_opt(tick.year(), tick.month(), 1).expect("a valid date");
    (first - Duration::days(1)).format("%Y-%m").to_string()
}

impl MonthlyRun {
    fn bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), ArgsError> {
        month_bounds(&self.month).ok_or_else(|| ArgsError::new("args.month", "must be YYYY-MM"))
    }
}

impl Job for MonthlyRun {
    const NAME: &'static str = "billing.monthly_run";
    const INTERNAL: bool = true;
    /// Every tenant's period of the month.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        self.bounds().map(|_| ())
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        use keel_models::billing_tasks as bt;
        let (start, end) = self
            .bounds()
            .map_err(|e| JobError::fatal(format!("{}: {}", e.path, e.message)))?;
        let catalog = keel_billing::catalog::global();
        let pool = &ctx.services.pool;
        let periods = bt::periods_ending(pool, start, end).await.map_err(db)?;
        let mut per_tenant: BTreeMap<Uuid, Vec<Value>> = BTreeMap::new();
        let mut overage_revenue = 0i64;
        for p in &periods {
            let amount = p.used_overage * overage_price(&catalog, &p.plan_id);
            overage_revenue += amount;
            per_tenant.entry(p.tenant_id).or_default().push(json!({
                "period_start": p.period_start, "period_end": p.period_end, "plan_id": p.plan_id,
                "used_units": p.used_included + p.used_credits + p.used_overage,
                "overage_units": p.used_overage, "overage_amount": amount,
            }));
        }
        let mut summaries = 0;
        for (tenant, periods) in per_tenant {
            let sum = |f: &str| periods.iter().filter_map(|p| p[f].as_i64()).sum::<i64>();
            let body = json!({
                "month": self.month, "currency": catalog.currency,
                "used_units": sum("used_units"), "overage_units": sum("overage_units"),
                "overage_amount": sum("overage_amount"), "periods": periods,
            });
            let mut tx = pool.begin().await.map_err(db)?;
            let stored = notify::notify(&mut tx, tenant, SUMMARY, &self.month, &body)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            summaries += usize::from(stored.is_some());
        }

        let live = keel_models::billing::stats::live_subscriptions(pool)
            .await
            .map_err(db)?;
        let (mut mrr, mut active) = (0i64, BTreeMap::<String, BTreeMap<String, i64>>::new());
        for row in &live {
            *active
                .entry(row.plan_id.clone())
                .or_default()
                .entry(row.status.clone())
                .or_default() += row.n;
            // Priced like `GET /admin/billing/stats`: trials pay nothing yet.
            if matches!(row.status.as_str(), "active" | "past_due") {
                let interval = keel_billing::Interval::parse(&row.billing_interval)
                    .unwrap_or(keel_billing::Interval::Month);
                if let Some(plan) = catalog.plan(&row.plan_id) {
                    mrr += plan.monthly_revenue(interval) * row.n;
                }
            }
        }
        let snapshot = bt::RevenueSnapshot {
            month: start.date_naive(),
            currency: catalog.currency.clone(),
            mrr,
            arr: mrr * 12,
            active_subscriptions: json!(active),
            churned_30d: bt::churned_between(pool, end - Duration::days(30), end)
                .await
                .map_err(db)?,
            overage_revenue,
            credit_pack_sales: bt::credit_pack_sales_between(pool, start, end)
                .await
                .map_err(db)?,
        };
        let written = bt::insert_revenue_snapshot(pool, &snapshot)
            .await
            .map_err(db)?;
        Ok(json!({ "month": self.month, "summaries": summaries, "snapshot_written": written }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_their_bounds() {
        let (s, e) = month_bounds("2030-12").unwrap();
        assert_eq!(s, Utc.with_ymd_and_hms(2030, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap());
        for bad in ["2030-13", "2030-1", "203-01", "2030-01-01", "x"] {
            assert!(month_bounds(bad).is_none(), "{bad}");
        }
        let tick = Utc.with_ymd_and_hms(2030, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(month_before(tick), "2030-02");
        assert_eq!(month_before(tick + Duration::days(14)), "2030-02");
        let jan = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(month_before(jan), "2030-12");
    }
}
