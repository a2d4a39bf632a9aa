//! Stripe calls beyond Checkout and the portal: customers, subscription changes and Billing
//! Meter events, all through the circuit breaker ([`super::client::guarded`]), writes with an
//! idempotency key. Also the Stripe client job handlers use ([`install`], [`installed`]):
//! the shared `Services` has no slot for it, so, like the plan catalog, it is process-wide.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_billing::subscription::{
    CancelSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
/// Stripe's subscription object, as the calls below return it.
pub use stripe_billing::Subscription;
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};

use super::client::{guarded, strategy, StripeApi, StripeCallError};

/// The Billing Meter `event_name` overage is reported under unless configured otherwise
/// (`KEEL_STRIPE_METER_EVENT`); the meter in Stripe must use the same name and sum `value`.
pub const DEFAULT_METER_EVENT: &str = "keel_overage_units";

struct ForJobs {
    api: Option<Arc<StripeApi>>,
    meter_event: Option<String>,
}

static FOR_JOBS: RwLock<ForJobs> = RwLock::new(ForJobs {
    api: None,
    meter_event: None,
});

/// Makes `api` the Stripe client of this process's job handlers (Stripe mode); `None` is
/// local mode. The last call wins (tests install one per fake Stripe).
pub fn install(api: Option<Arc<StripeApi>>, meter_event: Option<String>) {
    let mut g = FOR_JOBS.write().unwrap_or_else(|p| p.into_inner());
    g.api = api;
    g.meter_event = meter_event;
}

/// The installed client: `Some` in Stripe mode.
pub fn installed() -> Option<Arc<StripeApi>> {
    FOR_JOBS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .api
        .clone()
}

/// The meter event name overage is reported under.
pub fn meter_event_name() -> String {
    FOR_JOBS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .meter_event
        .clone()
        .unwrap_or_else(|| DEFAULT_METER_EVENT.to_string())
}

#[derive(Serialize)]
struct CreateCustomer<'a> {
    name: &'a str,
    metadata: HashMap<&'static str, String>,
}

/// A usage report for one tenant-period.
pub struct MeterEvent<'a> {
    pub event_name: &'a str,
    pub customer: &'a str,
    pub value: i64,
    /// Stripe dedupes meter events by identifier (24 h window at least), so a retried report
    /// counts once.
    pub identifier: &'a str,
    pub timestamp: i64,
}

impl StripeApi {
    /// `POST /v1/customers` with `metadata[keel_tenant_id]`; returns the customer id. The key
    /// is per tenant, so a retried job gets the customer the first attempt created.
    pub async fn create_customer(
        &self,
        idempotency_key: &str,
        tenant_id: &str,
        name: &str,
    ) -> Result<String, StripeCallError> {
        let form = CreateCustomer {
            name,
            metadata: HashMap::from([(keel_billing::stripe::TENANT_KEY, tenant_id.to_string())]),
        };
        let send = RequestBuilder::new(StripeMethod::Post, "/customers")
            .form(&form)
            .customize::<stripe_shared::Customer>()
            .request_strategy(strategy(idempotency_key)?)
            .send(&self.client);
        Ok(guarded(send).await?.id.to_string())
    }

    /// `GET /v1/subscriptions/{id}`.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeCallError> {
        let req = RetrieveSubscription::new(id);
        guarded(req.send(&self.client)).await
    }

    /// Moves subscription item `item` to `price`, prorated (`create_prorations`: the unused
    /// time is credited and the difference lands on the next invoice).
    pub async fn change_price(
        &self,
        idempotency_key: &str,
        subscription: &str,
        item: &str,
        price: &str,
    ) -> Result<Subscription, StripeCallError> {
        let mut it = UpdateSubscriptionItems::new();
        it.id = Some(item.to_string());
        it.price = Some(price.to_string());
        let req = UpdateSubscription::new(subscription)
            .items(vec![it])
            .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations);
        let send = req
            .customize()
            .request_strategy(strategy(idempotency_key)?)
            .send(&self.client);
        guarded(send).await
    }

    /// At the period's end (`cancel_at_period_end=true`), or now (`DELETE`).
    pub async fn cancel(
        &self,
        idempotency_key: &str,
        subscription: &str,
        at_period_end: bool,
    ) -> Result<Subscription, StripeCallError> {
        let strategy = strategy(idempotency_key)?;
        if at_period_end {
            let req = UpdateSubscription::new(subscription).cancel_at_period_end(true);
            let send = req
                .customize()
                .request_strategy(strategy)
                .send(&self.client);
            guarded(send).await
        } else {
            let req = CancelSubscription::new(subscription);
            let send = req
                .customize()
                .request_strategy(strategy)
                .send(&self.client);
            guarded(send).await
        }
    }

    /// `POST /v1/subscriptions/{id}` with `cancel_at_period_end=false`: a cancellation
    /// scheduled for the period's end is called off (Stripe's "renew").
    pub async fn resume(
        &self,
        idempotency_key: &str,
        subscription: &str,
    ) -> Result<Subscription, StripeCallError> {
        let req = UpdateSubscription::new(subscription).cancel_at_period_end(false);
        let send = req
            .customize()
            .request_strategy(strategy(idempotency_key)?)
            .send(&self.client);
        guarded(send).await
    }

    /// `POST /v1/billing/meter_events` with `payload[stripe_customer_id]` and
    /// `payload[value]`.
    pub async fn meter_event(
        &self,
        idempotency_key: &str,
        e: MeterEvent<'_>,
    ) -> Result<(), StripeCallError> {
        let payload = HashMap::from([
            ("stripe_customer_id".to_string(), e.customer.to_string()),
            ("value".to_string(), e.value.to_string()),
        ]);
        let req = CreateBillingMeterEvent::new(e.event_name, payload)
            .identifier(e.identifier)
            .timestamp(e.timestamp);
        let send = req
            .customize()
            .request_strategy(strategy(idempotency_key)?)
            .send(&self.client);
        guarded(send).await.map(|_| ())
    }
}
