//! Connecting once and building the parts of Keel from one set of settings.

use std::sync::Arc;

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
        }
        let lane = Lane::connect(
            &settings.redis_url,
            &settings.redis_prefix,
            settings.redis_window,
        )
        .await?;
        let secrets = SecretBox::from_config(settings.encryption_key_spec())?;
        let services = Arc::new(Services::new(
            pool.clone(),
            secrets,
            NetPolicy {
                allow_private: settings.allow_private_networks,
            },
        ));
        Ok(Self {
            settings,
            pool,
            lane,
            registry: Arc::new(registry),
            services,
        })
    }

    pub async fn api(&self) -> std::io::Result<Application> {
        let state = AppState {
            pool: self.pool.clone(),
            lane: self.lane.clone(),
            registry: self.registry.clone(),
            services: self.services.clone(),
            admin_token: Arc::new(self.settings.admin_token()),
            metrics: keel_api::metrics::handle(),
        };
        Application::build(self.settings.api_addr, state).await
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
