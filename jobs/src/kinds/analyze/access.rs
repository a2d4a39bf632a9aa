//! Per-tenant Jira clients, shared by every analysis job of a worker process.
//!
//! Why a cache: a [`JiraClient`]'s clones share one concurrency cap, so handing every job of a
//! tenant the same client is what makes the per-tenant cap real — a 500-issue portfolio and a
//! single-issue analysis of the same tenant queue on the same permits, and other tenants are not
//! affected. The cache entry is rebuilt when the tenant changes its connection.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use keel_jira::{JiraClient, JiraConfig};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::JobError;
use crate::job::Services;

/// The cache, plus the client settings every tenant's client is built with.
pub struct JiraClients {
    config: JiraConfig,
    clients: Mutex<HashMap<Uuid, (DateTime<Utc>, JiraClient)>>,
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
        if let Some((version, client)) = self.lock().get(&tenant) {
            if *version == conn.updated_at {
                return Ok(client.clone());
            }
        }
        crate::net::check_url(&conn.base_url, &services.net)
            .map_err(|e| JobError::fatal(format!("the Jira base URL is not allowed: {e}")))?;
        let token = services.secrets.open(&conn.token_sealed).map_err(|e| {
            JobError::fatal(format!(
                "the stored Jira token cannot be decrypted ({e}); reconnect Jira"
            ))
        })?;
        let client = build_client(
            &conn.base_url,
            &conn.email,
            SecretString::from(token),
            self.config.clone(),
            &services.net,
        )
        .map_err(|e| JobError::fatal(e.to_string()))?;
        self.lock()
            .insert(tenant, (conn.updated_at, client.clone()));
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (DateTime<Utc>, JiraClient)>> {
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
