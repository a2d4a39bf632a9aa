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
    let period = (now - Duration::days(3), now + Duration::days(27));
    let mut sub = SubscriptionState::local(tenant, "team", "month", period, 1);
    sub.status = status.into();
    sub
}

/// Stores `s` as the tenant's subscription (inserted or replaced).
pub async fn store(env: &TestEnv, s: &SubscriptionState) {
    let mut conn = env.keel.pool.acquire().await.unwrap();
    subscriptions::upsert(&mut conn, s).await.unwrap();
}
