//! Connecting once and building the parts of Keel from one set of settings.

use std::sync::Arc;
use std::time::Duration;

use keel_api::{AppState, Application};
use keel_jobs::lane::Lane;
use keel_jobs::net::NetPolicy;
use keel_jobs::{Registry, Services};
use keel_models::crypto::SecretBox;
use keel_models::PgPool;
use keel_scheduler::Scheduler;
use keel_worker::{Worker, WorkerConfig};

use crate::settings::Settings;

/// Connections and shared services of one Keel process.
#[derive(Clone)]
pub struct Keel {
    pub settings: Settings,
    pub pool: PgPool,
    pub lane: Lane,
    pub registry: Arc<Registry>,
    pub services: Arc<Services>,
}

impl Keel {
    /// Connects to Postgres and Redis (one-line errors naming the URL that failed). With
    /// `prepare_database`, creates the database if missing and applies migrations first.
    pub async fn connect(settings: Settings, prepare_database: bool) -> anyhow::Result<Self> {
        Self::connect_with_registry(settings, prepare_database, keel_jobs::builtin_registry()).await
    }

    pub async fn connect_with_registry(
        settings: Settings,
        prepare_database: bool,
        registry: Registry,
    ) -> anyhow::Result<Self> {
        if prepare_database {
            keel_models::db::create_database_if_missing(&settings.database_url).await?;
        }
        let pool =
            keel_models::db::connect(&settings.database_url, settings.database_max_connections)
                .await?;
        if prepare_database {
            keel_models::db::migrate(&pool).await?;
        } else {
            keel_models::db::check_migrated(&pool, &settings.database_url).await?;
        }
        let lane = Lane::connect(
            &settings.redis_url,
            &settings.redis_prefix,
            settings.redis_window,
        )
        .await?;
        // The plan catalog, checked against this registry's kinds. Job handlers read it through
        // `keel_billing::catalog::global()` (the first catalog installed in a process wins).
        keel_api::billing::catalog::install(settings.plan_catalog(&registry.names())?);
        let secrets = SecretBox::from_config(settings.encryption_key_spec())?;
        let mut services = Services::new(
            pool.clone(),
            secrets,
            NetPolicy {
                allow_private: settings.allow_private_networks,
            },
        )
        .with_jira_config(settings.jira_config());
        // FinBERT: its files are checked now, the weights load on the first job that asks.
        if let Some(spec) = &settings.sentiment_model {
            let engine = keel_bert::finbert_engine(spec)
                .map_err(|e| anyhow::anyhow!("KEEL_SENTIMENT_MODEL={spec}: {e:#}"))?;
            services = services.with_finbert(engine);
        }
        let services = Arc::new(services);
        // Stripe calls made by jobs (customer sync, meter events, reconciliation) use one
        // process-wide client, like the plan catalog; `None` (local mode) makes them no-ops.
        let stripe = match &settings.stripe_secret_key {
            Some(key) => {
                use secrecy::ExposeSecret;
                let api = keel_jobs::kinds::stripe::client::StripeApi::new(
                    key.expose_secret(),
                    settings.stripe_api_base.as_deref(),
                )
                .map_err(anyhow::Error::msg)?;
                Some(Arc::new(api))
            }
            None => None,
        };
        keel_jobs::kinds::stripe::ops::install(stripe, settings.stripe_meter_event.clone());
        Ok(Self {
            settings,
            pool,
            lane,
            registry: Arc::new(registry),
            services,
        })
    }

    pub async fn api(&self) -> std::io::Result<Application> {
        let state = AppState::new(keel_api::state::Shared {
            pool: self.pool.clone(),
            lane: self.lane.clone(),
            registry: self.registry.clone(),
            services: self.services.clone(),
            admin_token: Arc::new(self.settings.admin_token()),
            metrics: keel_api::metrics::handle(),
            metrics_token: self.settings.metrics_token.clone(),
            gauges: Default::default(),
            billing: Arc::new(keel_api::state::BillingConfig {
                catalog: keel_api::billing::catalog::global(),
                webhook_secrets: self.settings.stripe_webhook_secret_list(),
                stripe: self.stripe_api()?.map(Arc::new),
            }),
            scheduler: Arc::new(self.scheduler()),
            limits: Arc::new(keel_api::rate_limit::Limits::new(
                self.settings.metering,
                self.settings.rate_limits,
            )),
            keys: Default::default(),
            gate: keel_api::tenant_gate::TenantGate::new(
                self.settings.api_tenant_concurrent_writes,
                self.settings.api_tenant_queued_writes,
            ),
            submitter: keel_jobs::submitter::Submitter::spawn(self.pool.clone(), self.lane.clone()),
            waits: keel_api::waits::JobWaits::new(self.pool.clone()),
            request_deadline: Duration::from_millis(self.settings.api_request_timeout_ms),
        });
        let app =
            Application::build_with(self.settings.api_addr, state, self.settings.server_limits())
                .await?;
        match self.settings.metrics_addr {
            Some(addr) => app.with_metrics_on(addr).await,
            None => Ok(app),
        }
    }

    /// The Stripe API client when `KEEL_STRIPE_SECRET_KEY` is set (Stripe mode).
    fn stripe_api(&self) -> std::io::Result<Option<keel_jobs::kinds::stripe::client::StripeApi>> {
        use secrecy::ExposeSecret;
        let Some(key) = &self.settings.stripe_secret_key else {
            return Ok(None);
        };
        keel_jobs::kinds::stripe::client::StripeApi::new(
            key.expose_secret(),
            self.settings.stripe_api_base.as_deref(),
        )
        .map(Some)
        .map_err(std::io::Error::other)
    }

    /// The scheduler with Keel's built-in tasks, on the system clock.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.pool.clone(),
            self.lane.clone(),
            self.registry.clone(),
            keel_scheduler::default_tasks(&self.settings.task_settings()),
            keel_scheduler::system_clock(),
        )
    }

    pub fn worker(&self, config: WorkerConfig) -> Worker {
        // Installs the recorder so job histograms are kept even in worker-only processes.
        let _ = keel_api::metrics::handle();
        Worker::new(
            config,
            self.registry.clone(),
            self.services.clone(),
            self.lane.clone(),
        )
    }
}
