//! Shared state of the API.

use std::sync::Arc;

use keel_jobs::lane::Lane;
use keel_jobs::{Registry, Services};
use keel_models::PgPool;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

/// The API's state: one `Arc`, because axum clones it for every extractor of every request
/// (cloning the fields themselves cost a dozen allocations per request). Fields are read
/// through `Deref`: `state.pool`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub pool: PgPool,
    pub lane: Lane,
    pub registry: Arc<Registry>,
    pub services: Arc<Services>,
    pub admin_token: Arc<SecretString>,
    pub metrics: PrometheusHandle,
    /// `KEEL_METRICS_TOKEN`: when set, `/metrics` takes it as a bearer token.
    pub metrics_token: Option<SecretString>,
    /// The ledger-derived gauges of `/metrics`, reused for a few seconds.
    pub gauges: crate::routes::GaugeCache,
    /// Plan catalog and Stripe settings (issue #5).
    pub billing: Arc<BillingConfig>,
    /// The scheduler's task list, for `GET /admin/schedules` (this copy never runs a pass).
    pub scheduler: Arc<keel_scheduler::Scheduler>,
    /// Metering and rate-limit switches, and the plan cache of the rate limiter.
    pub limits: Arc<crate::rate_limit::Limits>,
    /// API keys looked up recently (see [`crate::key_cache`]).
    pub keys: Arc<crate::key_cache::KeyCache>,
    /// Bounds each tenant's write transactions in flight (see [`crate::tenant_gate`]).
    pub gate: crate::tenant_gate::TenantGate,
    /// Batches concurrent standalone submits into one insert and commit.
    pub submitter: keel_jobs::submitter::Submitter,
    /// Requests waiting for their jobs to end (`GET /api/jobs/{id}?wait=N`).
    pub waits: crate::waits::JobWaits,
    /// How long a request may take before it answers 503 (see [`crate::deadline`]).
    pub request_deadline: std::time::Duration,
}

/// What the billing routes need: the catalog, and Stripe settings when Stripe is configured.
pub struct BillingConfig {
    pub catalog: Arc<keel_billing::Catalog>,
    /// Secrets accepted on `POST /webhooks/stripe` (several while one is being rotated).
    pub webhook_secrets: Vec<SecretString>,
    /// Set (`KEEL_STRIPE_SECRET_KEY`): Stripe mode. Unset: local mode (changes apply at once,
    /// without Stripe).
    pub stripe: Option<Arc<keel_jobs::kinds::stripe::client::StripeApi>>,
}

impl BillingConfig {
    /// `"local"` or `"stripe"`, as billing answers report it.
    pub fn mode(&self) -> &'static str {
        if self.stripe.is_some() {
            "stripe"
        } else {
            "local"
        }
    }
}
