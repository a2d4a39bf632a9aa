//! Per-tenant Jira clients, shared by every analysis job of a worker process.
//!
//! Why a cache: a [`JiraClient`]'s clones share one concurrency cap, so handing every job of a
//! tenant the same client is what makes the per-tenant cap real — a 500-issue portfolio and a
//! single-issue analysis of the same tenant queue on the same permits, and other tenants are not
//! affected. The cache entry is rebuilt when the tenant changes its connection or its cap.
//!
//! The cap is the operator's default (`KEEL_JIRA_CONCURRENCY`) unless the tenant's subscription
//! (active, trialing or past-due) has an add-on whose `features` set `jira_concurrency` higher
//! (see `config/plans.toml`); an add-on never lowers it.
//!
//! The cap also bounds the tenant's Jira *jobs* running in this process ([`JobJira`]): a job
//! that finds them all taken does not wait in its worker slot (see [`JiraClients::client`]).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_jira::{JiraClient, JiraConfig};
use rand::Rng;
use secrecy::SecretString;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::JobError;
use crate::job::Services;

/// What a cached client was built from: the connection's version and the concurrency cap.
type CacheKey = (DateTime<Utc>, usize);

/// The highest per-tenant cap an add-on can grant (the bound of `KEEL_JIRA_CONCURRENCY` too).
pub const MAX_JIRA_CONCURRENCY: usize = 64;

/// A cached tenant client, with the places of the tenant's Jira jobs running in this process.
type Entry = (CacheKey, JiraClient, Arc<Semaphore>);

/// The cache, plus the client settings every tenant's client is built with.
pub struct JiraClients {
    config: JiraConfig,
    clients: Mutex<HashMap<Uuid, Entry>>,
}

/// One job's Jira access: the tenant's shared client (its connections and request cap) with a
/// budget of the job's own ([`JiraClient::for_job`]), and the job's place among the tenant's
/// Jira jobs in this process, given back when the job ends (this is dropped).
pub struct JobJira {
    client: JiraClient,
    _place: OwnedSemaphorePermit,
}

impl Deref for JobJira {
    type Target = JiraClient;
    fn deref(&self) -> &JiraClient {
        &self.client
    }
}

impl JiraClients {
    pub fn new(config: JiraConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &JiraConfig {
        &self.config
    }

    /// The tenant's client for one job, built from its stored connection (token unsealed here,
    /// never logged). No connection is fatal: retrying cannot connect Jira for the tenant.
    ///
    /// At most the tenant's cap of its Jira jobs run at once in this process. A job that finds
    /// every place taken is *deferred* at once ([`JobError::Deferred`]: back to `queued`, due in
    /// a second or two, the attempt not counted) rather than waiting for a place. Waiting would
    /// hold a worker slot for as long as the tenant's other jobs run (a portfolio takes minutes),
    /// so a tenant with a backlog of analyses could fill every slot of a worker with jobs doing
    /// nothing, and other tenants' jobs would wait behind them; deferred, the wait happens in
    /// the ledger, where it costs one row update per try. Not counted, because the job did
    /// nothing wrong: its tenant's other jobs hold the places. A job holding a place still
    /// queues for the cap's request permits, but only behind the other placed jobs' requests,
    /// each bounded by the client's timeout.
    pub async fn client(&self, services: &Services, tenant: Uuid) -> Result<JobJira, JobError> {
        let (client, places) = self.shared_client(services, tenant).await?;
        let cap = client.config().max_concurrency;
        let place = places.try_acquire_owned().map_err(|_| {
            let wait = Duration::from_millis(rand::thread_rng().gen_range(1000..3000));
            JobError::deferred(
                wait,
                format!(
                    "the tenant's Jira concurrency ({cap}) is in use by its other analyses; trying again shortly"
                ),
            )
        })?;
        Ok(JobJira {
            client: client.for_job(),
            _place: place,
        })
    }

    /// The tenant's cached client (built when missing or outdated) and its job places.
    async fn shared_client(
        &self,
        services: &Services,
        tenant: Uuid,
    ) -> Result<(JiraClient, Arc<Semaphore>), JobError> {
        let conn = keel_models::jira::connection(&services.pool, tenant)
            .await
            .map_err(|e| JobError::retryable(format!("loading the Jira connection failed: {e}")))?
            .ok_or_else(|| {
                JobError::fatal("Jira is not connected for this tenant; PUT /api/tenant/jira first")
            })?;
        let add_ons = keel_models::billing::subscriptions::add_ons_in_force(&services.pool, tenant)
            .await
            .map_err(|e| JobError::retryable(format!("loading the subscription failed: {e}")))?;
        let cap = self.cap_for(&keel_billing::catalog::global(), &add_ons);
        let key = (conn.updated_at, cap);
        if let Some((built_from, client, places)) = self.lock().get(&tenant) {
            if *built_from == key {
                return Ok((client.clone(), places.clone()));
            }
        }
        crate::net::check_url(&conn.base_url, &services.net)
            .map_err(|e| JobError::fatal(format!("the Jira base URL is not allowed: {e}")))?;
        let token = services
            .secrets
            .open(
                keel_models::crypto::Field::JiraToken,
                tenant,
                &conn.token_sealed,
            )
            .map_err(|e| {
                JobError::fatal(format!(
                    "the stored Jira token cannot be decrypted ({e}); reconnect Jira"
                ))
            })?;
        let config = JiraConfig {
            max_concurrency: cap,
            ..self.config.clone()
        };
        let client = build_client(
            &conn.base_url,
            &conn.email,
            SecretString::from(token),
            config,
            &services.net,
        )
        .map_err(|e| JobError::fatal(e.to_string()))?;
        // Jobs still holding the previous client finish on its permits; new jobs share this one.
        let mut clients = self.lock();
        // Another job of the tenant built it meanwhile: share that one, places included.
        if let Some((built_from, client, places)) = clients.get(&tenant) {
            if *built_from == key {
                return Ok((client.clone(), places.clone()));
            }
        }
        let places = Arc::new(Semaphore::new(cap));
        clients.insert(tenant, (key, client.clone(), places.clone()));
        Ok((client, places))
    }

    /// The concurrency cap of a tenant whose subscription has `add_ons`: the highest
    /// `jira_concurrency` they set, but never below the default (nor above
    /// [`MAX_JIRA_CONCURRENCY`]).
    pub fn cap_for(&self, catalog: &keel_billing::Catalog, add_ons: &[String]) -> usize {
        let default = self.config.max_concurrency;
        catalog
            .feature_max(add_ons, keel_billing::catalog::FEATURE_JIRA_CONCURRENCY)
            .map_or(default, |n| {
                usize::try_from(n)
                    .unwrap_or(MAX_JIRA_CONCURRENCY)
                    .min(MAX_JIRA_CONCURRENCY)
                    .max(default)
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A client whose DNS resolver applies the SSRF guard; plain `http://` only where private
/// networks are allowed (development, tests, the demo Jira on loopback).
pub fn build_client(
    base_url: &str,
    email: &str,
    token: SecretString,
    mut config: JiraConfig,
    net: &crate::net::NetPolicy,
) -> Result<JiraClient, keel_jira::JiraError> {
    config.allow_insecure_http = config.allow_insecure_http || net.allow_private;
    JiraClient::with_http_builder(
        base_url,
        email,
        token,
        config,
        crate::net::guarded_builder(net),
    )
}
