//! Subscriptions written straight into Keel's copy, as the billing API or Stripe's webhooks
//! would have left them, for tests about what follows from a subscription.

use chrono::{Duration, Utc};
use keel_models::billing::subscriptions::{self, SubscriptionState};
use uuid::Uuid;

use super::TestEnv;

/// A local-mode monthly `team` subscription in `status`, in a period that began three days ago;
/// change fields before [`store`] for other cases.
pub fn team(tenant: Uuid, status: &str) -> SubscriptionState {
    let now = Utc::now();
    SubscriptionState {
        tenant_id: tenant,
        mode: "local".into(),
        plan_id: "team".into(),
        billing_interval: "month".into(),
        status: status.into(),
        add_ons: Vec::new(),
        current_period_start: Some(now - Duration::days(3)),
        current_period_end: Some(now + Duration::days(27)),
        cancel_at_period_end: false,
        canceled_at: None,
        ended_at: None,
        trial_end: None,
        stripe_customer_id: None,
        stripe_subscription_id: None,
        catalog_version: 1,
    }
}

/// Stores `s` as the tenant's subscription (inserted or replaced).
pub async fn store(env: &TestEnv, s: &SubscriptionState) {
    let mut conn = env.keel.pool.acquire().await.unwrap();
    subscriptions::upsert(&mut conn, s).await.unwrap();
}
