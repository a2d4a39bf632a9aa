//! Shared state of the API.

use std::sync::Arc;

use keel_jobs::lane::Lane;
use keel_jobs::{Registry, Services};
use keel_models::PgPool;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub lane: Lane,
    pub registry: Arc<Registry>,
    pub services: Arc<Services>,
    pub admin_token: Arc<SecretString>,
    pub metrics: PrometheusHandle,
}
