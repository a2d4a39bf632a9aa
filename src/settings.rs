//! Typed settings, loaded once: defaults < optional TOML file (`KEEL_CONFIG`, else `keel.toml`
//! when present) < environment (`KEEL_*`, plus `DATABASE_URL` and `REDIS_URL`, and
//! `STRIPE_SECRET_KEY` / `STRIPE_WEBHOOK_SECRET` where the `KEEL_` names are unset). Secrets are
//! [`SecretString`]s (never printed). [`Settings::validate`] names the variable at fault.
//!
//! - `checks`: the values' ranges and rules, and the development-default warnings.
//! - `file_keys`: the names a configuration file may use (an unknown one is refused).
//! - `safety`: what Keel refuses beyond loopback and in production (development secrets, free
//!   local billing, private networks).
//! - `whole`: whole-number settings read strictly (no rounding of `1.5`, no `yes` as 1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use keel_jobs::backoff::Backoff;
use keel_worker::WorkerConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod checks;
mod file_keys;
mod safety;
#[cfg(test)]
mod tests;
mod whole;

use file_keys::field_names;

pub const DEV_ADMIN_TOKEN: &str = "keel-dev-admin-token";
/// base64 of the 32 bytes "keel-development-key-not-secret!": fine on a laptop, never in
/// production (`KEEL_ENV=production` refuses it).
pub const DEV_ENCRYPTION_KEY: &str = "dev:a2VlbC1kZXZlbG9wbWVudC1rZXktbm90LXNlY3JldCE=";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keel";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The variables read besides `KEEL_*`.
const CONVENTIONAL: [&str; 4] = [
    "DATABASE_URL",
    "REDIS_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` (default) or `production` (refuses development secrets).
    pub env: String,
    pub database_url: String,
    #[serde(deserialize_with = "whole::number")]
    pub database_max_connections: u32,
    pub redis_url: String,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_prefix: String,
    /// Most job ids held in Redis per queue; the rest wait in Postgres for the relay.
    #[serde(deserialize_with = "whole::number")]
    pub redis_window: usize,
    pub api_addr: SocketAddr,
    /// How long an API request may take before it answers 503 (`KEEL_API_REQUEST_TIMEOUT_MS`,
    /// default 30 s; a long poll's `wait` comes on top). See `keel_api::deadline`.
    #[serde(deserialize_with = "whole::number")]
    pub api_request_timeout_ms: u64,
    /// HTTP server bounds (`KEEL_HTTP_*`, see `keel_api::serve`): a new connection, or one that
    /// began a request, must send the whole request head within the header timeout; a kept-alive
    /// connection with no request is closed after the idle timeout; a request's body must arrive
    /// within the body timeout; past the connection limit the server stops accepting.
    #[serde(deserialize_with = "whole::number")]
    pub http_header_timeout_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub http_idle_timeout_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub http_body_timeout_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub http_max_connections: usize,
    /// Write transactions (metered submits, batches, retries) one tenant may have open at once
    /// in one API process, and how many more may wait for one before the next is answered 429
    /// (`keel_api::tenant_gate`).
    #[serde(deserialize_with = "whole::number")]
    pub api_tenant_concurrent_writes: usize,
    #[serde(deserialize_with = "whole::number")]
    pub api_tenant_queued_writes: usize,
    /// Bearer token `/metrics` requires (`KEEL_METRICS_TOKEN`); unset: open to whoever reaches it.
    pub metrics_token: Option<SecretString>,
    /// Serve the API's `/metrics` on this address instead of `KEEL_API_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    pub admin_token: Option<SecretString>,
    /// AES-256-GCM key(s): `id:key[,id:key…]`, first is primary; a key is 32 bytes as 64 hex
    /// characters or base64 (see `keel_models::crypto::SecretBox::from_config`).
    pub encryption_key: Option<SecretString>,
    /// Let webhooks reach loopback/private addresses (tests, on-prem receivers).
    pub allow_private_networks: bool,
    /// The acknowledgement `KEEL_ALLOW_PRIVATE_NETWORKS` needs with `KEEL_ENV=production`
    /// (`KEEL_ALLOW_PRIVATE_NETWORKS_IN_PRODUCTION=true`).
    pub allow_private_networks_in_production: bool,
    /// `stripe` or `local` (`KEEL_BILLING_MODE`); unset: `stripe` when a Stripe key is set,
    /// else `local` — which production refuses unless it is set explicitly, since local mode
    /// grants plans and credit packs for free.
    pub billing_mode: Option<String>,
    /// Stripe secret API key (`KEEL_STRIPE_SECRET_KEY`, else `STRIPE_SECRET_KEY`); unset: billing runs in local mode
    /// (plan changes and credit packs apply at once, answers say `"mode": "local"`).
    pub stripe_secret_key: Option<SecretString>,
    /// Stripe webhook endpoint secrets, comma-separated (`KEEL_STRIPE_WEBHOOK_SECRETS`, else
    /// `STRIPE_WEBHOOK_SECRET`): a
    /// signature matching any of them is accepted, so a secret can be rotated without downtime.
    pub stripe_webhook_secrets: Option<SecretString>,
    /// Stripe API base URL (`KEEL_STRIPE_API_BASE`), for a fake Stripe in tests.
    pub stripe_api_base: Option<String>,
    /// Billing Meter `event_name` overage is reported under (`KEEL_STRIPE_METER_EVENT`); unset:
    /// `keel_overage_units`. The Stripe meter must use the same name and sum `value`.
    pub stripe_meter_event: Option<String>,
    /// Plan catalog file (`KEEL_PLANS_FILE`); unset: the embedded `config/plans.toml`.
    pub plans_file: Option<String>,
    pub log_format: String,
    /// Tokio runtime threads of this process (`KEEL_THREADS`, default 1; 0: one per core). What
    /// each value builds, and why one is the default: [`crate::runtime::build`].
    #[serde(deserialize_with = "whole::number")]
    pub threads: usize,
    #[serde(deserialize_with = "whole::number")]
    pub worker_concurrency: usize,
    /// Jobs a worker starts ahead of a free slot (`KEEL_WORKER_PREFETCH`, default: four per slot
    /// of its concurrency; 0 turns it off). See `keel_worker::prefetch`.
    #[serde(deserialize_with = "whole::optional")]
    pub worker_prefetch: Option<usize>,
    pub worker_queues: Vec<String>,
    #[serde(deserialize_with = "whole::number")]
    pub worker_lease_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub worker_heartbeat_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub worker_block_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub worker_shutdown_timeout_ms: u64,
    /// Where a `keel worker` process serves its own `/metrics` (job duration histograms live in
    /// the process that ran the jobs). Off when unset; `keel up` serves them on the API.
    pub worker_metrics_addr: Option<SocketAddr>,
    #[serde(deserialize_with = "whole::number")]
    pub relay_interval_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub redispatch_after_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub backoff_base_ms: u64,
    #[serde(deserialize_with = "whole::number")]
    pub backoff_cap_ms: u64,
    /// Finished jobs (succeeded, dead, cancelled) are deleted by the daily housekeeping task
    /// this many days after they finished, so the ledger stays the size of recent work.
    #[serde(deserialize_with = "whole::number")]
    pub job_retention_days: u32,
    /// Most Jira requests one worker process runs at once for one tenant, so one tenant's big
    /// portfolio cannot take every socket (or the tenant's Jira rate budget) from the rest.
    #[serde(deserialize_with = "whole::number")]
    pub jira_concurrency: usize,
    /// Largest Jira response read (`KEEL_JIRA_MAX_RESPONSE_BYTES`, default 8 MiB): reading
    /// stops there and the job fails, so a huge or endless answer costs no more memory.
    #[serde(deserialize_with = "whole::number")]
    pub jira_max_response_bytes: usize,
    /// Most bytes one job reads from Jira over all its requests (`KEEL_JIRA_MAX_JOB_BYTES`,
    /// default 256 MiB), and most responses (pages) it reads (`KEEL_JIRA_MAX_JOB_PAGES`,
    /// default 10,000). See `keel_jira::JiraConfig`.
    #[serde(deserialize_with = "whole::number")]
    pub jira_max_job_bytes: u64,
    #[serde(deserialize_with = "whole::number")]
    pub jira_max_job_pages: u32,
    /// Most issues a sprint or portfolio analysis assesses (`KEEL_JIRA_MAX_ISSUES`, default
    /// 2,000): paging stops once past it and the result says `"truncated": true`.
    #[serde(deserialize_with = "whole::number")]
    pub jira_max_issues: usize,
    /// Per-kind time limits of one attempt (`KEEL_JOB_TIMEOUTS`): `kind=ms[,kind=ms…]`, `*` for
    /// every kind not named; unset, each kind's own (`keel_jobs::Job::TIMEOUT`).
    pub job_timeouts: Option<String>,
    /// Reserve each metered job's units against the tenant's plan at submit and refuse jobs
    /// over quota (`KEEL_METERING`, on by default; off for a deployment without billing).
    pub metering: bool,
    /// Enforce the plans' per-tenant request rates (`KEEL_RATE_LIMITS`, on by default).
    pub rate_limits: bool,
    /// FinBERT model for `sentiment.score` `{"model": "finbert"}` (`KEEL_SENTIMENT_MODEL`): a
    /// model directory, or a repository name fetched with `keel model pull` (`repo[@revision]`).
    pub sentiment_model: Option<String>,
    /// Per-task cron overrides (`KEEL_SCHEDULES`): `task=cron[@Zone];task=cron[@Zone]…`, e.g.
    /// `monthly-billing-run=0 0 6 1 * *;housekeeping=0 0 4 * * *@Europe/Berlin`; in keel.toml
    /// also a `[schedules]` table of `task = "cron[@Zone]"`. Unset: the built-in schedules.
    pub schedules: Option<ScheduleOverrides>,
    /// IANA time zone every task's cron expression is read in (`KEEL_SCHEDULER_TIMEZONE`,
    /// default `UTC`), unless its override names its own. Ticks are stored in UTC.
    pub scheduler_timezone: String,
}

/// `KEEL_SCHEDULES` as a string, or keel.toml's `[schedules]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScheduleOverrides {
    List(String),
    Table(BTreeMap<String, String>),
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
            api_request_timeout_ms: 30_000,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 30_000,
            http_body_timeout_ms: 30_000,
            http_max_connections: 4096,
            api_tenant_concurrent_writes: 4,
            api_tenant_queued_writes: 256,
            metrics_token: None,
            metrics_addr: None,
            admin_token: None,
            encryption_key: None,
            allow_private_networks: false,
            allow_private_networks_in_production: false,
            billing_mode: None,
            stripe_secret_key: None,
            stripe_webhook_secrets: None,
            stripe_api_base: None,
            stripe_meter_event: None,
            plans_file: None,
            log_format: "text".into(),
            threads: 1,
            worker_concurrency: w.concurrency,
            worker_prefetch: w.prefetch,
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
            jira_concurrency: 4,
            jira_max_response_bytes: keel_jira::JiraConfig::default().max_response_bytes,
            jira_max_job_bytes: keel_jira::JiraConfig::default().max_job_bytes,
            jira_max_job_pages: keel_jira::JiraConfig::default().max_job_pages,
            jira_max_issues: keel_jira::JiraConfig::default().max_issues,
            job_timeouts: None,
            metering: true,
            rate_limits: true,
            sentiment_model: None,
            schedules: None,
            scheduler_timezone: "UTC".into(),
        }
    }
}

impl Settings {
    /// Loads from the file and the environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut env = config::Map::new();
        for (key, value) in std::env::vars_os() {
            let Ok(key) = key.into_string() else { continue };
            match value.into_string() {
                Ok(value) => {
                    env.insert(key, value);
                }
                Err(_) if key.starts_with("KEEL_") || CONVENTIONAL.contains(&key.as_str()) => {
                    anyhow::bail!("invalid configuration: {key} is not valid UTF-8")
                }
                Err(_) => {}
            }
        }
        Self::load_from(env)
    }

    /// [`Self::load`] with `env` as the environment (tests give their own).
    pub fn load_from(env: config::Map<String, String>) -> anyhow::Result<Self> {
        // One line: a TOML parse error quotes the file with a caret under the fault.
        let one_line = |e: config::ConfigError| {
            let e = e.to_string();
            let e: Vec<&str> = e.split_whitespace().collect();
            anyhow::anyhow!("invalid configuration: {}", e.join(" "))
        };
        let var = |name: &str| env.get(name).cloned();
        let file = match var("KEEL_CONFIG") {
            Some(path) => config::File::with_name(&path).required(true),
            None => config::File::with_name("keel.toml").required(false),
        };
        // A misspelt key in the file (`worker_concurency = 4`) had been ignored without a word.
        // The environment is not checked: it holds every other `KEEL_*` variable too.
        let in_file = config::Config::builder()
            .add_source(file)
            .build()
            .map_err(one_line)?;
        if let Some(key) = in_file
            .clone()
            .try_deserialize::<BTreeMap<String, serde::de::IgnoredAny>>()
            .map_err(one_line)?
            .into_keys()
            .find(|k| !field_names().contains(&k.as_str()))
        {
            anyhow::bail!(
                "invalid configuration: unknown setting {key:?} in the configuration file (the settings are in README, Configuration)"
            );
        }
        // The file as read above (read once), then the environment over it.
        let builder = config::Config::builder()
            .add_source(in_file)
            .add_source(
                config::Environment::with_prefix("KEEL")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("worker_queues")
                    .source(Some(env.clone())),
            )
            .set_override_option("database_url", var("DATABASE_URL"))?
            .set_override_option("redis_url", var("REDIS_URL"))?;
        // Stripe's conventional names, where the `KEEL_` ones are unset (an empty value, as
        // compose passes an unset one, counts as unset).
        let mut builder = builder;
        for (keel, conventional, field) in [
            (
                "KEEL_STRIPE_SECRET_KEY",
                "STRIPE_SECRET_KEY",
                "stripe_secret_key",
            ),
            (
                "KEEL_STRIPE_WEBHOOK_SECRETS",
                "STRIPE_WEBHOOK_SECRET",
                "stripe_webhook_secrets",
            ),
        ] {
            if var(keel).is_none() {
                let value = var(conventional).filter(|v| !v.trim().is_empty());
                builder = builder.set_override_option(field, value)?;
            }
        }
        let settings: Settings = builder
            .build()
            .map_err(one_line)?
            .try_deserialize()
            .map_err(one_line)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn production(&self) -> bool {
        self.env == "production"
    }

    /// The plan catalog (`KEEL_PLANS_FILE` or the embedded default), validated against `kinds`.
    pub fn plan_catalog(&self, kinds: &[&str]) -> anyhow::Result<keel_api::billing::Catalog> {
        keel_api::billing::Catalog::load(self.plans_file.as_deref(), kinds).map_err(|e| {
            let from = self
                .plans_file
                .as_deref()
                .unwrap_or("the embedded config/plans.toml");
            anyhow::anyhow!("KEEL_PLANS_FILE ({from}): {e}")
        })
    }

    /// The configured webhook secrets, in order, blanks dropped.
    pub fn stripe_webhook_secret_list(&self) -> Vec<SecretString> {
        self.stripe_webhook_secrets
            .as_ref()
            .map(|s| {
                s.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(SecretString::from)
                    .collect()
            })
            .unwrap_or_default()
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

    /// What the scheduler's built-in tasks need, with their schedules. Panics on a bad
    /// schedule configuration, which [`Self::validate`] (run by [`Self::load`]) refuses first.
    pub fn task_settings(&self) -> keel_scheduler::TaskConfig {
        self.task_config()
            .unwrap_or_else(|e| panic!("unvalidated settings: {e}"))
    }

    /// [`Self::task_settings`], or what is wrong with `KEEL_SCHEDULER_TIMEZONE` or
    /// `KEEL_SCHEDULES` (every cron expression and zone parses, every task exists).
    pub fn task_config(&self) -> anyhow::Result<keel_scheduler::TaskConfig> {
        use keel_scheduler::{ScheduleError, Schedules};
        let settings = keel_scheduler::TaskSettings {
            job_retention_days: self.job_retention_days,
        };
        let schedules = match &self.schedules {
            None => Schedules::new(&self.scheduler_timezone, []),
            Some(ScheduleOverrides::List(spec)) => Schedules::parse_list(spec)
                .and_then(|pairs| Schedules::new(&self.scheduler_timezone, pairs)),
            Some(ScheduleOverrides::Table(table)) => Schedules::new(
                &self.scheduler_timezone,
                table.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        };
        schedules
            .and_then(|s| keel_scheduler::TaskConfig::new(settings, s))
            .map_err(|e| match e {
                ScheduleError::UnknownTimezone(_) => {
                    anyhow::anyhow!("KEEL_SCHEDULER_TIMEZONE is invalid: {e}")
                }
                // Named by where the zone came from: an override's own `@Zone`, the default zone
                // alone, or the default zone under an overridden expression.
                ScheduleError::UtcMonth { ref zone, .. } => {
                    let from = if *zone != self.scheduler_timezone {
                        "KEEL_SCHEDULES"
                    } else if self.schedules.is_none() {
                        "KEEL_SCHEDULER_TIMEZONE"
                    } else {
                        "KEEL_SCHEDULER_TIMEZONE with KEEL_SCHEDULES"
                    };
                    anyhow::anyhow!("{from} is invalid: {e}")
                }
                e => anyhow::anyhow!("KEEL_SCHEDULES is invalid: {e}"),
            })
    }

    /// The HTTP server's bounds.
    pub fn server_limits(&self) -> keel_api::serve::ServerLimits {
        keel_api::serve::ServerLimits {
            timeouts: keel_api::serve::Timeouts {
                header: Duration::from_millis(self.http_header_timeout_ms),
                idle: Duration::from_millis(self.http_idle_timeout_ms),
                body: Duration::from_millis(self.http_body_timeout_ms),
            },
            max_connections: self.http_max_connections,
        }
    }

    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            queues: self.worker_queues.clone(),
            concurrency: self.worker_concurrency,
            prefetch: self.worker_prefetch,
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
            job_timeouts: self
                .job_timeouts_parsed()
                .unwrap_or_else(|e| panic!("unvalidated settings: {e}")),
            ..WorkerConfig::default()
        }
    }

    /// `KEEL_JOB_TIMEOUTS`, checked against the built-in kinds.
    pub fn job_timeouts_parsed(&self) -> anyhow::Result<keel_worker::JobTimeouts> {
        let Some(spec) = &self.job_timeouts else {
            return Ok(Default::default());
        };
        let kinds = keel_jobs::builtin_registry();
        keel_worker::JobTimeouts::parse(spec, |k| kinds.get(k).is_some())
            .map_err(|e| anyhow::anyhow!("KEEL_JOB_TIMEOUTS is invalid: {e}"))
    }

    /// The Jira client settings every tenant's client is built with.
    pub fn jira_config(&self) -> keel_jira::JiraConfig {
        keel_jira::JiraConfig {
            max_concurrency: self.jira_concurrency,
            max_response_bytes: self.jira_max_response_bytes,
            max_job_bytes: self.jira_max_job_bytes,
            max_job_pages: self.jira_max_job_pages,
            max_issues: self.jira_max_issues,
            ..keel_jira::JiraConfig::default()
        }
    }
}
