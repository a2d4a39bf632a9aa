//! Calls to the Stripe API (async-stripe 1.0), for Stripe mode: Checkout sessions for a plan
//! or a credit pack, and billing portal sessions. Every call carries an idempotency key, so a
//! retried request cannot create a second session. Stripe's 429/5xx and network failures are
//! [`StripeCallError::Retryable`]; card and invalid-request errors are
//! [`StripeCallError::Fatal`] with Stripe's own message. Every call goes through the
//! process-wide circuit breaker ([`super::breaker`]): while it is open, calls fail with
//! [`StripeCallError::CircuitOpen`] without reaching Stripe.
//!
//! Stripe's `Retry-After` is not exposed by async-stripe's error type (only the status and
//! the error body are), so a retryable failure leaves the delay to the job's backoff, or to the
//! breaker's cool-down when that failure opened it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionCustomerCreation, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionSubscriptionData,
};
use stripe_checkout::CheckoutSessionMode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StripeCallError {
    #[error("Stripe is unavailable: {0}")]
    Retryable(String),
    #[error("Stripe refused the request: {0}")]
    Fatal(String),
    /// The breaker is open (Stripe kept failing); nothing was sent. Try after the duration.
    #[error("Stripe is unavailable (circuit breaker open for {}s more)", .0.as_secs().max(1))]
    CircuitOpen(Duration),
}

impl From<StripeCallError> for crate::JobError {
    /// Outages are retried, refusals are fatal, and an open breaker defers the job without
    /// spending an attempt.
    fn from(e: StripeCallError) -> Self {
        match e {
            StripeCallError::Retryable(_) => crate::JobError::retryable(e.to_string()),
            StripeCallError::Fatal(_) => crate::JobError::fatal(e.to_string()),
            StripeCallError::CircuitOpen(d) => crate::JobError::deferred(d, e.to_string()),
        }
    }
}

/// Sends one Stripe request through the breaker: refused at once while it is open; a
/// retryable failure counts towards opening it, any answer from Stripe closes it.
pub(crate) async fn guarded<T>(
    send: impl Future<Output = Result<T, StripeError>>,
) -> Result<T, StripeCallError> {
    let breaker = super::breaker::global();
    breaker.check().map_err(StripeCallError::CircuitOpen)?;
    match send.await.map_err(classify) {
        Ok(v) => {
            breaker.record_success();
            Ok(v)
        }
        Err(e @ StripeCallError::Fatal(_)) => {
            breaker.record_success();
            Err(e)
        }
        Err(e) => {
            breaker.record_failure();
            Err(e)
        }
    }
}

fn classify(e: StripeError) -> StripeCallError {
    match e {
        StripeError::Stripe(err, status) if status != 429 && status < 500 => {
            StripeCallError::Fatal(
                err.message
                    .clone()
                    .unwrap_or_else(|| format!("status {status}")),
            )
        }
        StripeError::Stripe(err, status) => StripeCallError::Retryable(
            err.message
                .clone()
                .unwrap_or_else(|| format!("status {status}")),
        ),
        StripeError::ConfigError(m) => StripeCallError::Fatal(m),
        other => StripeCallError::Retryable(other.to_string()),
    }
}

pub(crate) fn strategy(key: &str) -> Result<RequestStrategy, StripeCallError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeCallError::Fatal(format!("idempotency key: {e}")))
}

/// What a Checkout session sells.
pub enum Sale<'a> {
    /// A recurring plan price, with an optional trial.
    Plan {
        plan_id: &'a str,
        price: &'a str,
        trial_days: u32,
    },
    /// A one-off credit pack price.
    CreditPack { pack_id: &'a str, price: &'a str },
}

pub struct CheckoutRequest<'a> {
    pub tenant_id: String,
    /// The tenant's Stripe customer, when Keel knows one (else Checkout creates it).
    pub customer: Option<String>,
    pub sale: Sale<'a>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// A created Checkout session: where to send the customer.
pub struct CheckoutSessionRef {
    pub id: String,
    pub url: Option<String>,
}

pub struct StripeApi {
    pub(crate) client: Client,
}

/// Per-attempt timeout of every Stripe request (async-stripe has none by default); a timeout
/// is a retryable failure.
const TIMEOUT: Duration = Duration::from_secs(30);

impl StripeApi {
    /// `base` overrides `https://api.stripe.com/` (a fake Stripe in tests).
    pub fn new(secret_key: &str, base: Option<&str>) -> Result<Self, String> {
        let mut builder = ClientBuilder::new(secret_key).timeout(TIMEOUT);
        if let Some(base) = base {
            let base = if base.ends_with('/') {
                base.to_string()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        builder
            .build()
            .map(|client| Self { client })
            .map_err(|e| format!("Stripe client: {e}"))
    }

    pub async fn checkout(
        &self,
        idempotency_key: &str,
        req: CheckoutRequest<'_>,
    ) -> Result<CheckoutSessionRef, StripeCallError> {
        let tenant_meta = HashMap::from([(
            keel_billing::stripe::TENANT_KEY.to_string(),
            req.tenant_id.clone(),
        )]);
        let mut meta = tenant_meta.clone();
        let (mode, price) = match &req.sale {
            Sale::Plan { plan_id, price, .. } => {
                meta.insert(keel_billing::stripe::PLAN_KEY.into(), plan_id.to_string());
                (CheckoutSessionMode::Subscription, *price)
            }
            Sale::CreditPack { pack_id, price } => {
                meta.insert(
                    keel_billing::stripe::CREDIT_PACK_KEY.into(),
                    pack_id.to_string(),
                );
                (CheckoutSessionMode::Payment, *price)
            }
        };
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_string());
        item.quantity = Some(1);
        let mut create = CreateCheckoutSession::new()
            .mode(mode)
            .line_items(vec![item])
            .client_reference_id(req.tenant_id.clone())
            .metadata(meta)
            .success_url(req.success_url)
            .cancel_url(req.cancel_url);
        if let Some(customer) = &req.customer {
            create = create.customer(customer.clone());
        }
        match req.sale {
            Sale::Plan { trial_days, .. } => {
                // The subscription carries the tenant id, so its events resolve the tenant.
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(tenant_meta);
                data.trial_period_days = (trial_days > 0).then_some(trial_days);
                create = create.subscription_data(data);
            }
            Sale::CreditPack { .. } if req.customer.is_none() => {
                create = create.customer_creation(CreateCheckoutSessionCustomerCreation::Always);
            }
            Sale::CreditPack { .. } => {}
        }
        let send = create
            .customize()
            .request_strategy(strategy(idempotency_key)?)
            .send(&self.client);
        let session = guarded(send).await?;
        Ok(CheckoutSessionRef {
            id: session.id.to_string(),
            url: session.url,
        })
    }

    /// A billing portal session for `customer`; returns its URL.
    pub async fn portal(
        &self,
        idempotency_key: &str,
        customer: &str,
        return_url: &str,
    ) -> Result<String, StripeCallError> {
        let create = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url);
        let send = create
            .customize()
            .request_strategy(strategy(idempotency_key)?)
            .send(&self.client);
        let session = guarded(send).await?;
        Ok(session.url)
    }
}
