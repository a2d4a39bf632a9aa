//! `stripe.reconcile {as_of}` (internal, daily from the scheduler's `stripe-reconcile` task):
//! Keel's copy of every Stripe-managed subscription is compared with Stripe's and fixed.
//!
//! Why: webhooks are the normal path, but an endpoint misconfigured for a while, an event
//! dead after its retries, or a change made while Keel was down leaves Keel's copy behind, and
//! quotas and the 402 check read that copy. For each live Stripe subscription the job retrieves
//! it from Stripe and compares status, plan, interval, period and `cancel_at_period_end`;
//! when any differ, the local row is updated and each differing field recorded in
//! `billing_discrepancies`, in one transaction per tenant.
//!
//! Errors: an open breaker defers the whole job (uncounted); an outage is retried (the run is
//! idempotent: fixed rows no longer differ); a subscription Stripe refuses (e.g. deleted
//! there) or whose price is not in the catalog is skipped and listed in the result.

use chrono::{DateTime, Utc};
use keel_billing::catalog::PriceRef;
use keel_models::billing::from_unix;
use keel_models::billing::reconcile::{self, Discrepancy};
use keel_models::billing::subscriptions::{self as subs, SubscriptionState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::StripeCallError;
use super::ops::{self, Subscription};
use crate::error::JobError;
use crate::job::{Job, JobContext};

fn db(e: sqlx::Error) -> JobError {
    JobError::retryable(format!("database error: {e}"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    pub as_of: DateTime<Utc>,
}

impl Job for Reconcile {
    const NAME: &'static str = "stripe.reconcile";
    const MAX_ATTEMPTS: i32 = 10;
    /// One Stripe read per managed subscription.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
    const INTERNAL: bool = true;

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let Some(api) = ops::installed() else {
            return Ok(json!({ "skipped": "local mode: no Stripe client" }));
        };
        let catalog = keel_billing::catalog::global();
        let pool = &ctx.services.pool;
        let managed = reconcile::stripe_managed(pool).await.map_err(db)?;
        let (mut checked, mut fixed, mut skipped) = (0, Vec::new(), Vec::new());
        for (tenant, sub_id) in managed {
            if ctx.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let remote = match api.subscription(&sub_id).await {
                Ok(s) => s,
                Err(StripeCallError::Fatal(m)) => {
                    skipped.push(json!({ "tenant_id": tenant, "subscription": sub_id, "why": m }));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            checked += 1;
            let Some(want) = stripe_view(&catalog, &remote) else {
                let why = "no plan price of this catalog on the subscription";
                skipped.push(json!({ "tenant_id": tenant, "subscription": sub_id, "why": why }));
                continue;
            };
            let fields = fix(pool, tenant, &sub_id, &want).await?;
            if !fields.is_empty() {
                tracing::warn!(tenant_id = %tenant, subscription = %sub_id, ?fields, "Keel's copy of a Stripe subscription was out of step; fixed");
                fixed
                    .push(json!({ "tenant_id": tenant, "subscription": sub_id, "fields": fields }));
            }
        }
        Ok(json!({ "as_of": self.as_of, "checked": checked, "fixed": fixed, "skipped": skipped }))
    }
}

/// The fields Keel mirrors, as Stripe has them.
struct View {
    status: String,
    plan_id: String,
    interval: String,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
}

fn stripe_view(catalog: &keel_billing::Catalog, s: &Subscription) -> Option<View> {
    s.items
        .data
        .iter()
        .find_map(|i| match catalog.price(i.price.id.as_str()) {
            Some(PriceRef::Plan(p, iv)) => Some(View {
                status: s.status.as_str().to_string(),
                plan_id: p.id.clone(),
                interval: iv.as_str().to_string(),
                start: from_unix(i.current_period_start),
                end: from_unix(i.current_period_end),
                cancel_at_period_end: s.cancel_at_period_end,
            }),
            _ => None,
        })
}

/// Compares under the row lock and, when anything differs, updates the row and records each
/// field, in one transaction. Returns the fields that differed.
async fn fix(
    pool: &keel_models::PgPool,
    tenant: Uuid,
    sub_id: &str,
    want: &View,
) -> Result<Vec<String>, JobError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let Some(cur) = subs::lock(&mut tx, tenant).await.map_err(db)? else {
        return Ok(Vec::new()); // gone meanwhile
    };
    if cur.stripe_subscription_id.as_deref() != Some(sub_id) {
        return Ok(Vec::new()); // replaced by a newer subscription meanwhile
    }
    let pairs: [(&str, Value, Value); 6] = [
        ("status", json!(cur.status), json!(want.status)),
        ("plan", json!(cur.plan_id), json!(want.plan_id)),
        (
            "billing_interval",
            json!(cur.billing_interval),
            json!(want.interval),
        ),
        (
            "current_period_start",
            json!(cur.current_period_start),
            json!(want.start),
        ),
        (
            "current_period_end",
            json!(cur.current_period_end),
            json!(want.end),
        ),
        (
            "cancel_at_period_end",
            json!(cur.cancel_at_period_end),
            json!(want.cancel_at_period_end),
        ),
    ];
    let differing: Vec<_> = pairs.into_iter().filter(|(_, l, r)| l != r).collect();
    if differing.is_empty() {
        return Ok(Vec::new());
    }
    let mut next: SubscriptionState = cur.into();
    next.status = want.status.clone();
    next.plan_id = want.plan_id.clone();
    next.billing_interval = want.interval.clone();
    next.current_period_start = want.start;
    next.current_period_end = want.end;
    next.cancel_at_period_end = want.cancel_at_period_end;
    subs::upsert(&mut tx, &next).await.map_err(db)?;
    let mut fields = Vec::new();
    for (field, local_value, stripe_value) in differing {
        let d = Discrepancy {
            tenant_id: tenant,
            stripe_subscription_id: sub_id.to_string(),
            field: field.to_string(),
            local_value,
            stripe_value,
        };
        reconcile::record(&mut tx, &d).await.map_err(db)?;
        fields.push(d.field);
    }
    tx.commit().await.map_err(db)?;
    Ok(fields)
}
