//! Checking the values (each in a range it works in, named by its variable when it is not), and
//! the warnings for development defaults still in use.

use secrecy::ExposeSecret;

use super::{Settings, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, DEV_ADMIN_TOKEN};

impl Settings {
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
        if self.jira_concurrency == 0 || self.jira_concurrency > 64 {
            anyhow::bail!("KEEL_JIRA_CONCURRENCY must be between 1 and 64");
        }
        self.job_timeouts_parsed()?;
        if self.worker_concurrency == 0 || self.worker_concurrency > 10_000 {
            anyhow::bail!("KEEL_WORKER_CONCURRENCY must be between 1 and 10000");
        }
        if self.threads > 1024 {
            anyhow::bail!("KEEL_THREADS must be between 0 (one per core) and 1024");
        }
        if self.worker_prefetch.is_some_and(|p| p > 10_000) {
            anyhow::bail!("KEEL_WORKER_PREFETCH must be between 0 and 10000");
        }
        if self.redis_window == 0 {
            anyhow::bail!("KEEL_REDIS_WINDOW must be at least 1");
        }
        // Each in a range it works in: a zero period had panicked the worker's heartbeat task
        // and left it claiming jobs without heartbeats, so their leases expired under them and
        // other workers ran them again; a huge one overflowed where it is doubled.
        const DAY_MS: u64 = 86_400_000;
        for (var, value, min, max) in [
            ("KEEL_WORKER_LEASE_MS", self.worker_lease_ms, 2, DAY_MS),
            (
                "KEEL_WORKER_HEARTBEAT_MS",
                self.worker_heartbeat_ms,
                1,
                DAY_MS / 2,
            ),
            ("KEEL_WORKER_BLOCK_MS", self.worker_block_ms, 1, 60_000),
            (
                "KEEL_WORKER_SHUTDOWN_TIMEOUT_MS",
                self.worker_shutdown_timeout_ms,
                0,
                DAY_MS,
            ),
            ("KEEL_RELAY_INTERVAL_MS", self.relay_interval_ms, 1, 60_000),
            (
                "KEEL_API_REQUEST_TIMEOUT_MS",
                self.api_request_timeout_ms,
                100,
                600_000,
            ),
            (
                "KEEL_HTTP_HEADER_TIMEOUT_MS",
                self.http_header_timeout_ms,
                100,
                600_000,
            ),
            (
                "KEEL_HTTP_IDLE_TIMEOUT_MS",
                self.http_idle_timeout_ms,
                100,
                DAY_MS,
            ),
            (
                "KEEL_HTTP_BODY_TIMEOUT_MS",
                self.http_body_timeout_ms,
                100,
                600_000,
            ),
            (
                "KEEL_HTTP_MAX_CONNECTIONS",
                self.http_max_connections as u64,
                1,
                1_000_000,
            ),
            (
                "KEEL_API_TENANT_CONCURRENT_WRITES",
                self.api_tenant_concurrent_writes as u64,
                1,
                1_000,
            ),
            (
                "KEEL_API_TENANT_QUEUED_WRITES",
                self.api_tenant_queued_writes as u64,
                0,
                100_000,
            ),
            (
                "KEEL_REDISPATCH_AFTER_MS",
                self.redispatch_after_ms,
                1,
                DAY_MS,
            ),
            ("KEEL_BACKOFF_BASE_MS", self.backoff_base_ms, 1, DAY_MS),
            ("KEEL_BACKOFF_CAP_MS", self.backoff_cap_ms, 1, 30 * DAY_MS),
            (
                "KEEL_JIRA_MAX_RESPONSE_BYTES",
                self.jira_max_response_bytes as u64,
                1024,
                1 << 30,
            ),
            (
                "KEEL_JIRA_MAX_JOB_BYTES",
                self.jira_max_job_bytes,
                1024,
                1 << 36,
            ),
            (
                "KEEL_JIRA_MAX_JOB_PAGES",
                self.jira_max_job_pages.into(),
                1,
                1_000_000,
            ),
            (
                "KEEL_JIRA_MAX_ISSUES",
                self.jira_max_issues as u64,
                1,
                100_000,
            ),
            (
                "KEEL_DATABASE_MAX_CONNECTIONS",
                self.database_max_connections.into(),
                1,
                10_000,
            ),
        ] {
            if !(min..=max).contains(&value) {
                anyhow::bail!("{var} must be between {min} and {max}, not {value}");
            }
        }
        if self.worker_heartbeat_ms * 2 > self.worker_lease_ms {
            anyhow::bail!("KEEL_WORKER_HEARTBEAT_MS must be at most half of KEEL_WORKER_LEASE_MS");
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            anyhow::bail!("KEEL_BACKOFF_CAP_MS must be at least KEEL_BACKOFF_BASE_MS");
        }
        if !keel_jobs::kinds::housekeeping::RETENTION_DAYS.contains(&self.job_retention_days) {
            anyhow::bail!("KEEL_JOB_RETENTION_DAYS must be between 1 and 3650");
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            anyhow::bail!("KEEL_REDIS_PREFIX must be non-empty without spaces");
        }
        keel_models::crypto::SecretBox::from_config(self.encryption_key_spec())
            .map_err(|e| anyhow::anyhow!("{e}"))?; // "KEEL_ENCRYPTION_KEY is invalid: …"
        self.validate_billing()?;
        self.task_config()?;
        self.validate_safety()?;
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            anyhow::bail!("KEEL_METRICS_TOKEN must be at least 16 characters");
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
            tracing::warn!("KEEL_ENCRYPTION_KEY is not set: secrets are encrypted with a public development key; set one in production (`openssl rand -hex 32`)");
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

    /// Billing settings: the plan catalog loads and validates, webhook secrets and the Stripe
    /// base URL are well-formed.
    fn validate_billing(&self) -> anyhow::Result<()> {
        self.plan_catalog(&keel_jobs::builtin_registry().names())?;
        if let Some(s) = &self.stripe_webhook_secrets {
            if self.stripe_webhook_secret_list().len() != s.expose_secret().split(',').count() {
                anyhow::bail!(
                    "KEEL_STRIPE_WEBHOOK_SECRETS must be comma-separated non-empty secrets"
                );
            }
        }
        if let Some(k) = &self.stripe_secret_key {
            if !k.expose_secret().starts_with("sk_") && !k.expose_secret().starts_with("rk_") {
                anyhow::bail!("KEEL_STRIPE_SECRET_KEY must be a Stripe secret key (sk_… or rk_…)");
            }
        }
        if let Some(base) = &self.stripe_api_base {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                anyhow::bail!("KEEL_STRIPE_API_BASE must be an http(s) URL");
            }
        }
        Ok(())
    }
}
