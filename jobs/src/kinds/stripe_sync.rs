//! Jobs that push Keel's state to Stripe (Stripe mode). Both internal: enqueued by Keel in
//! the transaction that makes them necessary, so they happen if and only if that commits.
//!
//! - `stripe.sync_customer {tenant_id}`: the tenant's Stripe customer, created once (key
//!   `keel-customer-{tenant_id}`, `metadata[keel_tenant_id]`) and linked in
//!   `billing_customers`, so Checkout and the portal use it instead of creating another.
//! - `stripe.report_usage {tenant_id, period_start, period_end, units}`: a closed period's
//!   overage as one Billing Meter event, identified by `{tenant_id}:{period_start}` so Stripe
//!   counts a retried report once.
//!
//! Stripe errors map through [`super::client::StripeCallError`]: outages are retried, refusals
//! are fatal with Stripe's message, and an open circuit breaker defers the job uncounted.

use chrono::{DateTime, Utc};
use keel_models::billing::subscriptions as subs;
use keel_models::job::{Inserted, Job as JobRow, NewJob};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::StripeApi;
use super::ops::{self, MeterEvent};
use crate::error::JobError;
use crate::job::{Job, JobContext};
use crate::kinds::billing_tasks::stamp;

fn db(e: sqlx::Error) -> JobError {
    JobError::retryable(format!("database error: {e}"))
}

/// The installed Stripe client; a worker without one cannot run Stripe jobs (another worker
/// configured for Stripe may: retried).
fn api() -> Result<std::sync::Arc<StripeApi>, JobError> {
    ops::installed().ok_or_else(|| {
        JobError::retryable("this worker has no Stripe client (KEEL_STRIPE_SECRET_KEY unset)")
    })
}

/// The ledger row of an internal job, with no tenant (internal kinds run for Keel itself),
/// left for the relay to dispatch (the caller's transaction has no Redis handle).
pub fn internal_job<J: Job>(args: &J, idempotency_key: String) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        tenant_id: None,
        kind: J::NAME.to_string(),
        queue: J::QUEUE.to_string(),
        args: serde_json::to_value(args).expect("job args serialise"),
        max_attempts: J::MAX_ATTEMPTS,
        run_at: None,
        idempotency_key: Some(idempotency_key),
        dispatched: false,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncCustomer {
    pub tenant_id: Uuid,
}

impl SyncCustomer {
    /// The job row for a new tenant (one per tenant).
    pub fn job(tenant_id: Uuid) -> NewJob {
        internal_job(&Self { tenant_id }, format!("stripe-customer:{tenant_id}"))
    }

    /// Creates a tenant and, in Stripe mode, its customer job, in the caller's transaction: so
    /// every tenant gets its Stripe customer exactly when it exists, whichever way it was made
    /// (`POST /api/tenants`, `keel tenant create`; the CLI had made tenants without one). The
    /// job is stamped dispatched: push it after commit (or clear the stamp for the relay).
    pub async fn create_tenant(
        conn: &mut keel_models::PgConnection,
        name: &str,
        secrets: &keel_models::crypto::SecretBox,
        stripe_mode: bool,
    ) -> sqlx::Result<(keel_models::tenant::CreatedTenant, Option<JobRow>)> {
        let created = keel_models::tenant::create(&mut *conn, name, secrets).await?;
        if !stripe_mode {
            return Ok((created, None));
        }
        let mut job = Self::job(created.tenant.id);
        job.dispatched = true;
        let job = match keel_models::job::insert(conn, &job).await? {
            Inserted::New(j) | Inserted::Existing(j) => j,
        };
        Ok((created, Some(job)))
    }
}

impl Job for SyncCustomer {
    const NAME: &'static str = "stripe.sync_customer";
    const MAX_ATTEMPTS: i32 = 25;
    const INTERNAL: bool = true;

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let pool = &ctx.services.pool;
        let tenant = self.tenant_id;
        if let Some(customer) = subs::stripe_customer(pool, tenant).await.map_err(db)? {
            return Ok(json!({ "stripe_customer_id": customer, "created": false }));
        }
        let t = keel_models::tenant::get(pool, tenant)
            .await
            .map_err(db)?
            .ok_or_else(|| JobError::fatal(format!("tenant {tenant} does not exist")))?;
        let api = api()?;
        let key = format!("keel-customer-{tenant}");
        let customer = api
            .create_customer(&key, &tenant.to_string(), &t.name)
            .await?;
        let mut conn = pool.acquire().await.map_err(db)?;
        // Keeps a customer linked meanwhile (e.g. by a completed Checkout) if there is one.
        subs::link_customer(&mut conn, tenant, &customer)
            .await
            .map_err(db)?;
        let linked = subs::stripe_customer(pool, tenant).await.map_err(db)?;
        tracing::info!(tenant_id = %tenant, stripe_customer_id = %customer, "Stripe customer created");
        Ok(json!({
            "stripe_customer_id": linked, "created": true, "created_customer": customer,
        }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportUsage {
    pub tenant_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Overage units of the closed period (> 0).
    pub units: i64,
}

impl ReportUsage {
    /// Stripe's dedupe key for this report: one per tenant-period.
    pub fn identifier(&self) -> String {
        format!("{}:{}", self.tenant_id, stamp(self.period_start))
    }

    /// The job row, one per tenant-period.
    pub fn job(&self) -> NewJob {
        internal_job(self, format!("stripe-usage:{}", self.identifier()))
    }
}

impl Job for ReportUsage {
    const NAME: &'static str = "stripe.report_usage";
    const MAX_ATTEMPTS: i32 = 25;
    const INTERNAL: bool = true;

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        if self.units <= 0 {
            return Ok(json!({ "reported": false, "reason": "no overage" }));
        }
        let customer = subs::stripe_customer(&ctx.services.pool, self.tenant_id)
            .await
            .map_err(db)?
            .ok_or_else(|| {
                JobError::fatal(format!(
                    "tenant {} has no Stripe customer; {} overage units not reported",
                    self.tenant_id, self.units
                ))
            })?;
        let api = api()?;
        let identifier = self.identifier();
        let event_name = ops::meter_event_name();
        let event = MeterEvent {
            event_name: &event_name,
            customer: &customer,
            value: self.units,
            identifier: &identifier,
            timestamp: self.period_end.timestamp(),
        };
        api.meter_event(&format!("keel-usage-{identifier}"), event)
            .await?;
        tracing::info!(tenant_id = %self.tenant_id, units = self.units, %identifier, "overage reported to Stripe");
        Ok(json!({
            "reported": true, "identifier": identifier, "event_name": event_name,
            "stripe_customer_id": customer, "value": self.units,
        }))
    }
}
