//! The scheduled billing tasks (issue #6). Each only enqueues; the `billing.*` jobs
//! (`keel_jobs::kinds::billing_tasks`) do the work on workers.
//!
//! | task | default cron (UTC unless configured) | catch-up | enqueues |
//! |---|---|---|---|
//! | `period-rollover` | hourly, on the hour | latest (it scans) | `billing.close_period` per ended, open tenant-period |
//! | `monthly-billing-run` | 00:00:00 on the 1st | all (every missed month) | `billing.monthly_run {month}` for the month that ended |
//! | `expiry-notices` | daily 09:00:00 | latest | `billing.expiry_notices {as_of}` |
//! | `credit-expiry` | daily 00:10:00 | latest | `billing.expire_credits {as_of}` |
//! | `stripe-reconcile` | daily 03:30:00 | latest | `stripe.reconcile {as_of}` ([`stripe_reconcile_task`], not in [`tasks`]) |

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keel_jobs::kinds::billing_tasks::{close_period, monthly_run, notices};
use keel_jobs::kinds::stripe::reconcile::Reconcile;
use keel_jobs::Job;
use keel_models::PgPool;
use serde_json::json;

use crate::{CatchUp, FanOutFn, Task, TenantJob};

pub const PERIOD_ROLLOVER: &str = "period-rollover";
pub const MONTHLY_RUN: &str = "monthly-billing-run";
pub const EXPIRY_NOTICES: &str = "expiry-notices";
pub const CREDIT_EXPIRY: &str = "credit-expiry";
pub const STRIPE_RECONCILE: &str = "stripe-reconcile";

/// Most periods one rollover tick enqueues; the rest are found by the next tick's scan.
pub const ROLLOVER_BATCH: i64 = 1000;

/// The rollover scan: every usage period that ended by `tick`, is not closed and has no
/// `billing.close_period` yet. Paid plans end at their subscription's period end, free plans
/// at the end of the calendar month (whatever metering recorded as `period_end`).
pub fn rollover_scan() -> FanOutFn {
    Arc::new(|pool: PgPool, tick: DateTime<Utc>| {
        Box::pin(async move {
            let due = keel_models::billing_tasks::periods_to_close(
                &pool,
                PERIOD_ROLLOVER,
                tick,
                ROLLOVER_BATCH,
            )
            .await?;
            Ok(due
                .into_iter()
                .map(|(tenant_id, period_start)| TenantJob {
                    tenant_id,
                    period_start,
                    kind: close_period::ClosePeriod::NAME,
                    args: json!({ "tenant_id": tenant_id, "period_start": period_start }),
                })
                .collect())
        })
    })
}

/// The billing tasks, in the order a pass runs them.
pub fn tasks() -> Vec<Task> {
    let valid = "a valid cron expression";
    vec![
        Task::per_tenant(
            PERIOD_ROLLOVER,
            "0 0 * * * *",
            CatchUp::Latest,
            rollover_scan(),
        )
        .expect(valid),
        Task::new(MONTHLY_RUN, "0 0 0 1 * *", CatchUp::All, |tick| {
            let month = monthly_run::month_before(tick);
            (monthly_run::MonthlyRun::NAME, json!({ "month": month }))
        })
        .expect(valid),
        Task::new(EXPIRY_NOTICES, "0 0 9 * * *", CatchUp::Latest, |tick| {
            (notices::ExpiryNotices::NAME, json!({ "as_of": tick }))
        })
        .expect(valid),
        Task::new(CREDIT_EXPIRY, "0 10 0 * * *", CatchUp::Latest, |tick| {
            (notices::ExpireCredits::NAME, json!({ "as_of": tick }))
        })
        .expect(valid),
    ]
}

/// The daily Stripe reconciliation (`stripe.reconcile`, a no-op in local mode). Kept out of
/// [`tasks`] so the billing-task tests keep their exact job counts; the built-in list adds it.
pub fn stripe_reconcile_task() -> Task {
    Task::new(STRIPE_RECONCILE, "0 30 3 * * *", CatchUp::Latest, |tick| {
        (Reconcile::NAME, json!({ "as_of": tick }))
    })
    .expect("a valid cron expression")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskJob;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn the_billing_tasks_build_valid_jobs_on_their_schedules() {
        let tasks = crate::default_tasks(&crate::TaskSettings {
            job_retention_days: 14,
        });
        let names: Vec<_> = tasks.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                crate::HOUSEKEEPING,
                PERIOD_ROLLOVER,
                MONTHLY_RUN,
                EXPIRY_NOTICES,
                CREDIT_EXPIRY,
                STRIPE_RECONCILE
            ]
        );
        let registry = keel_jobs::builtin_registry();
        let monthly = &tasks[2];
        assert_eq!(monthly.catch_up, CatchUp::All);
        let tick = monthly.schedule.after(&at(2030, 1, 15, 0, 0, 0)).next();
        assert_eq!(tick, Some(at(2030, 2, 1, 0, 0, 0)));
        for t in &tasks[2..] {
            let TaskJob::PerTick(job) = &t.job else {
                panic!("{} is per tick", t.name)
            };
            let (kind, args) = job(at(2030, 2, 1, 0, 0, 0));
            let k = registry.get(kind).expect("registered");
            assert!(k.internal(), "{kind} is internal");
            k.check_shape(&args).unwrap();
        }
        let (_, args) = match &monthly.job {
            TaskJob::PerTick(job) => job(at(2030, 2, 1, 0, 0, 0)),
            TaskJob::PerTenant(_) => unreachable!(),
        };
        assert_eq!(args, json!({ "month": "2030-01" }));
        assert!(matches!(tasks[1].job, TaskJob::PerTenant(_)));
    }

    #[test]
    fn the_stripe_reconciliation_runs_daily_at_half_past_three() {
        let task = stripe_reconcile_task();
        let tick = task.schedule.after(&at(2030, 1, 15, 4, 0, 0)).next();
        assert_eq!(tick, Some(at(2030, 1, 16, 3, 30, 0)));
        let TaskJob::PerTick(job) = &task.job else {
            panic!("per tick")
        };
        let (kind, args) = job(at(2030, 1, 16, 3, 30, 0));
        let registry = keel_jobs::builtin_registry();
        let k = registry.get(kind).expect("registered");
        assert!(k.internal());
        k.check_shape(&args).unwrap();
    }
}
