//! Typed settings, loaded once: defaults < optional TOML file (`KEEL_CONFIG`, else `keel.toml`
//! when present) < environment (`KEEL_*`, plus `DATABASE_URL` and `REDIS_URL`). Secrets are
//! [`SecretString`]s (never printed). [`Settings::validate`] names the variable at fault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use keel_jobs::backoff::Backoff;
use keel_worker::WorkerConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod whole;

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
    pub admin_token: Option<SecretString>,
    /// AES-256-GCM key(s): `id:base64[,id:base64…]`, first is primary.
    pub encryption_key: Option<SecretString>,
    /// Let webhooks reach loopback/private addresses (tests, on-prem receivers).
    pub allow_private_networks: bool,
    /// Stripe secret API key (`KEEL_STRIPE_SECRET_KEY`); unset: billing runs in local mode
    /// (plan changes and credit packs apply at once, answers say `"mode": "local"`).
    pub stripe_secret_key: Option<SecretString>,
    /// Stripe webhook endpoint secrets, comma-separated (`KEEL_STRIPE_WEBHOOK_SECRETS`): a
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
            admin_token: None,
            encryption_key: None,
            allow_private_networks: false,
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
            metering: true,
            rate_limits: true,
            sentiment_model: None,
            schedules: None,
            scheduler_timezone: "UTC".into(),
        }
    }
}

/// The settings' names, as `Settings`' derived `Deserialize` declares them: a deserializer that
/// only records the field list it is asked for, so the list cannot drift from the struct.
fn field_names() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Fields(&[])
        }
    }
    struct FieldNames;
    impl<'de> Deserializer<'de> for FieldNames {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match Settings::deserialize(FieldNames) {
        Err(Fields(names)) => names,
        Ok(_) => &[],
    }
}

impl Settings {
    /// Loads from the file and the environment.
    pub fn load() -> anyhow::Result<Self> {
        // One line: a TOML parse error quotes the file with a caret under the fault.
        let one_line = |e: config::ConfigError| {
            let e = e.to_string();
            let e: Vec<&str> = e.split_whitespace().collect();
            anyhow::anyhow!("invalid configuration: {}", e.join(" "))
        };
        let file = match std::env::var("KEEL_CONFIG") {
            Ok(path) => config::File::with_name(&path).required(true),
            Err(_) => config::File::with_name("keel.toml").required(false),
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
                    .with_list_parse_key("worker_queues"),
            )
            .set_override_option("database_url", std::env::var("DATABASE_URL").ok())?
            .set_override_option("redis_url", std::env::var("REDIS_URL").ok())?;
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
                "KEEL_REDISPATCH_AFTER_MS",
                self.redispatch_after_ms,
                1,
                DAY_MS,
            ),
            ("KEEL_BACKOFF_BASE_MS", self.backoff_base_ms, 1, DAY_MS),
            ("KEEL_BACKOFF_CAP_MS", self.backoff_cap_ms, 1, 30 * DAY_MS),
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
                ScheduleError::UtcMonth { .. } => {
                    anyhow::anyhow!("KEEL_SCHEDULER_TIMEZONE with KEEL_SCHEDULES is invalid: {e}")
                }
                e => anyhow::anyhow!("KEEL_SCHEDULES is invalid: {e}"),
            })
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
    fn schedules_and_time_zone_configure_the_built_in_tasks() {
        let s = Settings {
            scheduler_timezone: "Europe/Berlin".into(),
            schedules: Some(ScheduleOverrides::List(
                "monthly-billing-run=0 0 6 1 * *; housekeeping=0 0 4 * * *@America/New_York".into(),
            )),
            ..Settings::default()
        };
        s.validate().unwrap();
        let tasks = keel_scheduler::default_tasks(&s.task_settings());
        let find = |name: &str| tasks.iter().find(|t| t.name == name).unwrap();
        let monthly = find("monthly-billing-run");
        assert_eq!(monthly.schedule.source(), "0 0 6 1 * *");
        assert_eq!(monthly.timezone.name(), "Europe/Berlin");
        let housekeeping = find("housekeeping");
        assert_eq!(housekeeping.schedule.source(), "0 0 4 * * *");
        assert_eq!(housekeeping.timezone.name(), "America/New_York");
        let rollover = find("period-rollover");
        assert_eq!(rollover.schedule.source(), "0 0 * * * *");
        assert_eq!(rollover.timezone.name(), "Europe/Berlin");

        let table = Settings {
            schedules: Some(ScheduleOverrides::Table(BTreeMap::from([(
                "credit-expiry".to_string(),
                "0 20 0 * * *".to_string(),
            )]))),
            ..Settings::default()
        };
        let tasks = keel_scheduler::default_tasks(&table.task_settings());
        let credit = tasks.iter().find(|t| t.name == "credit-expiry").unwrap();
        assert_eq!(credit.schedule.source(), "0 20 0 * * *");
        assert_eq!(credit.timezone.name(), "UTC");
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
    fn the_field_names_are_the_settings() {
        let names = super::field_names();
        for name in [
            "database_url",
            "worker_concurrency",
            "schedules",
            "scheduler_timezone",
        ] {
            assert!(names.contains(&name), "{names:?}");
        }
        assert!(!names.contains(&"worker_concurency"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let refused = |s: Settings, var: &str| {
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        };
        let default = Settings::default;
        refused(
            Settings {
                worker_concurrency: 0,
                ..default()
            },
            "KEEL_WORKER_CONCURRENCY",
        );
        refused(
            Settings {
                threads: 1025,
                ..default()
            },
            "KEEL_THREADS",
        );
        for (var, tweak) in [
            (
                "KEEL_WORKER_HEARTBEAT_MS",
                (|s| s.worker_heartbeat_ms = 0) as fn(&mut Settings),
            ),
            ("KEEL_WORKER_HEARTBEAT_MS", |s| {
                s.worker_heartbeat_ms = u64::MAX
            }),
            ("KEEL_WORKER_LEASE_MS", |s| s.worker_lease_ms = u64::MAX),
            ("KEEL_RELAY_INTERVAL_MS", |s| s.relay_interval_ms = 0),
            ("KEEL_WORKER_BLOCK_MS", |s| s.worker_block_ms = 0),
            ("KEEL_DATABASE_MAX_CONNECTIONS", |s| {
                s.database_max_connections = 0
            }),
            ("KEEL_BACKOFF_CAP_MS", |s| s.backoff_cap_ms = 1),
        ] {
            let mut s = default();
            tweak(&mut s);
            refused(s, var);
        }
        for days in [0, 3651] {
            refused(
                Settings {
                    job_retention_days: days,
                    ..default()
                },
                "KEEL_JOB_RETENTION_DAYS",
            );
        }
        let s = Settings {
            scheduler_timezone: "Mars/Olympus".into(),
            ..Settings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("KEEL_SCHEDULER_TIMEZONE"), "{err}");
        assert!(err.contains("Mars/Olympus"), "{err}");
        for (spec, names) in [
            ("monthly-billing-run=0 0 6 1 *", "monthly-billing-run"),
            ("no-such-task=0 0 4 * * *", "no-such-task"),
            ("housekeeping=0 0 4 * * *@Mars/Olympus", "Mars/Olympus"),
            ("housekeeping", "housekeeping"),
        ] {
            let s = Settings {
                schedules: Some(ScheduleOverrides::List(spec.into())),
                ..Settings::default()
            };
            let err = s.validate().unwrap_err().to_string();
            assert!(err.starts_with("KEEL_SCHEDULES is invalid"), "{err}");
            assert!(err.contains(names), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
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
