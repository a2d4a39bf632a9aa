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

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use keel_jira::{JiraClient, JiraConfig};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::JobError;
use crate::job::Services;

/// What a cached client was built from: the connection's version and the concurrency cap.
type CacheKey = (DateTime<Utc>, usize);

/// The highest per-tenant cap an add-on can grant (the bound of `KEEL_JIRA_CONCURRENCY` too).
pub const MAX_JIRA_CONCURRENCY: usize = 64;

/// The cache, plus the client settings every tenant's client is built with.
pub struct JiraClients {
    config: JiraConfig,
    clients: Mutex<HashMap<Uuid, (CacheKey, JiraClient)>>,
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

    /// The tenant's client, built from its stored connection (token unsealed here, never
    /// logged). No connection is fatal: retrying cannot connect Jira for the tenant.
    pub async fn client(&self, services: &Services, tenant: Uuid) -> Result<JiraClient, JobError> {
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
        if let Some((built_from, client)) = self.lock().get(&tenant) {
            if *built_from == key {
                return Ok(client.clone());
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
        self.lock().insert(tenant, (key, client.clone()));
        Ok(client)
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (CacheKey, JiraClient)>> {
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
