//! Typed settings, loaded once: defaults < optional TOML file (`KEEL_CONFIG`, else `keel.toml`
//! when present) < environment (`KEEL_*`, plus `DATABASE_URL` and `REDIS_URL`). Secrets are
//! [`SecretString`]s (never printed). [`Settings::validate`] names the variable at fault.

use std::net::SocketAddr;
use std::time::Duration;

use keel_jobs::backoff::Backoff;
use keel_worker::WorkerConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub const DEV_ADMIN_TOKEN: &str = "keel-dev-admin-token";
/// base64 of the 32 bytes "keel-development-key-not-secret!": fine on a laptop, never in
/// production (`KEEL_ENV=production` refuses it).
pub const DEV_ENCRYPTION_KEY: &str = "dev:a2VlbC1kZXZlbG9wbWVudC1rZXktbm90LXNlY3JldCE=";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keel";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` (default) or `production` (refuses development secrets).
    pub env: String,
    pub database_url: String,
    pub database_max_connections: u32,
    pub redis_url: String,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_prefix: String,
    /// Most job ids held in Redis per queue; the rest wait in Postgres for the relay.
    pub redis_window: usize,
    pub api_addr: SocketAddr,
    pub admin_token: Option<SecretString>,
    /// AES-256-GCM key(s): `id:base64[,id:base64…]`, first is primary.
    pub encryption_key: Option<SecretString>,
    /// Let webhooks reach loopback/private addresses (tests, on-prem receivers).
    pub allow_private_networks: bool,
    pub log_format: String,
    pub worker_concurrency: usize,
    pub worker_queues: Vec<String>,
    pub worker_lease_ms: u64,
    pub worker_heartbeat_ms: u64,
    pub worker_block_ms: u64,
    pub worker_shutdown_timeout_ms: u64,
    /// Where a `keel worker` process serves its own `/metrics` (job duration histograms live in
    /// the process that ran the jobs). Off when unset; `keel up` serves them on the API.
    pub worker_metrics_addr: Option<SocketAddr>,
    pub relay_interval_ms: u64,
    pub redispatch_after_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// Finished jobs (succeeded, dead, cancelled) are deleted by the daily housekeeping task
    /// this many days after they finished, so the ledger stays the size of recent work.
    pub job_retention_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        let w = WorkerConfig::default();
        Self {
            env: "development".into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            database_max_connections: 20,
            redis_url: DEFAULT_REDIS_URL.into(),
            redis_prefix: "keel".into(),
            redis_window: 10_000,
            api_addr: "127.0.0.1:8080".parse().unwrap(),
            admin_token: None,
            encryption_key: None,
            allow_private_networks: false,
            log_format: "text".into(),
            worker_concurrency: w.concurrency,
            worker_queues: Vec::new(),
            worker_lease_ms: w.lease.as_millis() as u64,
            worker_heartbeat_ms: w.heartbeat.as_millis() as u64,
            worker_block_ms: w.block.as_millis() as u64,
            worker_shutdown_timeout_ms: w.shutdown_timeout.as_millis() as u64,
            worker_metrics_addr: None,
            relay_interval_ms: w.relay_interval.as_millis() as u64,
            redispatch_after_ms: w.redispatch_after.as_millis() as u64,
            backoff_base_ms: w.backoff.base.as_millis() as u64,
            backoff_cap_ms: w.backoff.cap.as_millis() as u64,
            job_retention_days: 14,
        }
    }
}

impl Settings {
    /// Loads from the file and the environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        match std::env::var("KEEL_CONFIG") {
            Ok(path) => builder = builder.add_source(config::File::with_name(&path).required(true)),
            Err(_) => {
                builder = builder.add_source(config::File::with_name("keel.toml").required(false))
            }
        }
        builder = builder
            .add_source(
                config::Environment::with_prefix("KEEL")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("worker_queues"),
            )
            .set_override_option("database_url", std::env::var("DATABASE_URL").ok())?
            .set_override_option("redis_url", std::env::var("REDIS_URL").ok())?;
        let settings: Settings = builder
            .build()?
            .try_deserialize()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn production(&self) -> bool {
        self.env == "production"
    }

    /// Checks values and, in production, refuses development secrets; names the variable.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.env.as_str(), "development" | "production") {
            anyhow::bail!(
                "KEEL_ENV must be `development` or `production`, not {:?}",
                self.env
            );
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            anyhow::bail!("KEEL_LOG_FORMAT must be `text` or `json`");
        }
        if self.worker_concurrency == 0 || self.worker_concurrency > 10_000 {
            anyhow::bail!("KEEL_WORKER_CONCURRENCY must be between 1 and 10000");
        }
        if self.redis_window == 0 {
            anyhow::bail!("KEEL_REDIS_WINDOW must be at least 1");
        }
        if self.worker_heartbeat_ms * 2 > self.worker_lease_ms {
            anyhow::bail!("KEEL_WORKER_HEARTBEAT_MS must be at most half of KEEL_WORKER_LEASE_MS");
        }
        if !keel_jobs::kinds::housekeeping::RETENTION_DAYS.contains(&self.job_retention_days) {
            anyhow::bail!("KEEL_JOB_RETENTION_DAYS must be between 1 and 3650");
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            anyhow::bail!("KEEL_REDIS_PREFIX must be non-empty without spaces");
        }
        keel_models::crypto::SecretBox::from_config(self.encryption_key_spec())
            .map_err(|e| anyhow::anyhow!("KEEL_ENCRYPTION_KEY is invalid: {e}"))?;
        if self.production() {
            if self.admin_token.is_none() {
                anyhow::bail!("KEEL_ADMIN_TOKEN must be set when KEEL_ENV=production");
            }
            if self.encryption_key.is_none() {
                anyhow::bail!("KEEL_ENCRYPTION_KEY must be set when KEEL_ENV=production");
            }
        }
        if let Some(t) = &self.admin_token {
            if t.expose_secret().len() < 16 {
                anyhow::bail!("KEEL_ADMIN_TOKEN must be at least 16 characters");
            }
        }
        Ok(())
    }

    /// Logs one warning per development default still in use.
    pub fn warn_dev_defaults(&self) {
        if self.admin_token.is_none() {
            tracing::warn!("KEEL_ADMIN_TOKEN is not set: using the development token {DEV_ADMIN_TOKEN:?}; set a secret one in production");
        }
        if self.encryption_key.is_none() {
            tracing::warn!("KEEL_ENCRYPTION_KEY is not set: secrets are encrypted with a public development key; set one in production (`openssl rand -base64 32`)");
        }
        if std::env::var_os("DATABASE_URL").is_none() && self.database_url == DEFAULT_DATABASE_URL {
            tracing::warn!("DATABASE_URL is not set: using {DEFAULT_DATABASE_URL}");
        }
        if std::env::var_os("REDIS_URL").is_none() && self.redis_url == DEFAULT_REDIS_URL {
            tracing::warn!("REDIS_URL is not set: using {DEFAULT_REDIS_URL}");
        }
        if self.allow_private_networks {
            tracing::warn!("KEEL_ALLOW_PRIVATE_NETWORKS is on: webhooks may reach loopback and private addresses");
        }
    }

    pub fn admin_token(&self) -> SecretString {
        self.admin_token
            .clone()
            .unwrap_or_else(|| SecretString::from(DEV_ADMIN_TOKEN))
    }

    pub fn encryption_key_spec(&self) -> &str {
        self.encryption_key
            .as_ref()
            .map(|s| s.expose_secret())
            .unwrap_or(DEV_ENCRYPTION_KEY)
    }

    /// What the scheduler's built-in tasks need.
    pub fn task_settings(&self) -> keel_scheduler::TaskSettings {
        keel_scheduler::TaskSettings {
            job_retention_days: self.job_retention_days,
        }
    }

    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            queues: self.worker_queues.clone(),
            concurrency: self.worker_concurrency,
            lease: Duration::from_millis(self.worker_lease_ms),
            heartbeat: Duration::from_millis(self.worker_heartbeat_ms),
            block: Duration::from_millis(self.worker_block_ms),
            relay_interval: Duration::from_millis(self.relay_interval_ms),
            redispatch_after: Duration::from_millis(self.redispatch_after_ms),
            backoff: Backoff {
                base: Duration::from_millis(self.backoff_base_ms),
                cap: Duration::from_millis(self.backoff_cap_ms),
            },
            shutdown_timeout: Duration::from_millis(self.worker_shutdown_timeout_ms),
            ..WorkerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_dev_key_decodes() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn production_refuses_development_secrets() {
        let s = Settings {
            env: "production".into(),
            ..Settings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("KEEL_ADMIN_TOKEN"), "{err}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let s = Settings {
            worker_concurrency: 0,
            ..Settings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("KEEL_WORKER_CONCURRENCY"));
        for days in [0, 3651] {
            let s = Settings {
                job_retention_days: days,
                ..Settings::default()
            };
            assert!(s
                .validate()
                .unwrap_err()
                .to_string()
                .contains("KEEL_JOB_RETENTION_DAYS"));
        }
        let s = Settings {
            encryption_key: Some(SecretString::from("short")),
            ..Settings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("KEEL_ENCRYPTION_KEY"));
    }
}
