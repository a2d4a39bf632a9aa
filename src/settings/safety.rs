//! Safe defaults: what Keel refuses to start with because it would be unsafe beyond a laptop.
//!
//! - The development admin token and encryption key are public (they are in this repository):
//!   they apply only while every listener is on loopback, and never in production.
//! - Local billing (no Stripe key) grants plans and credit packs for free: in production only
//!   when asked for (`KEEL_BILLING_MODE=local`).
//! - Private networks let tenants' webhooks and Jira URLs reach internal services: in production
//!   only with `KEEL_ALLOW_PRIVATE_NETWORKS_IN_PRODUCTION=true` as well.

use std::net::SocketAddr;

use super::Settings;

/// The first listener that is not on loopback, if any: where the development secrets would
/// let anyone who can reach it in.
pub fn beyond_loopback<'a>(listeners: &[(&'a str, SocketAddr)]) -> Option<(&'a str, SocketAddr)> {
    listeners
        .iter()
        .find(|(_, addr)| !addr.ip().to_canonical().is_loopback())
        .copied()
}

impl Settings {
    /// Every address this deployment's processes listen on, with the variable that sets it.
    /// A new listener is one more entry here; [`Self::check_dev_secrets`] then covers it.
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut listeners = vec![("KEEL_API_ADDR", self.api_addr)];
        if let Some(addr) = self.worker_metrics_addr {
            listeners.push(("KEEL_WORKER_METRICS_ADDR", addr));
        }
        if let Some(addr) = self.metrics_addr {
            listeners.push(("KEEL_METRICS_ADDR", addr));
        }
        listeners
    }

    /// Refuses the development admin token and encryption key unless every one of `listeners`
    /// is on loopback. The one message names both variables, and which are unset.
    pub fn check_dev_secrets(&self, listeners: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
        let Some((var, addr)) = beyond_loopback(listeners) else {
            return Ok(());
        };
        let unset = self.unset_secrets();
        if unset.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{var}={addr} is not a loopback address, so the public development secrets are refused: \
             set KEEL_ADMIN_TOKEN (16+ characters) and KEEL_ENCRYPTION_KEY (openssl rand -hex 32); \
             unset: {}",
            unset.join(", ")
        )
    }

    /// `KEEL_ADMIN_TOKEN` and `KEEL_ENCRYPTION_KEY`, those of them that are unset.
    fn unset_secrets(&self) -> Vec<&'static str> {
        let mut unset = Vec::new();
        if self.admin_token.is_none() {
            unset.push("KEEL_ADMIN_TOKEN");
        }
        if self.encryption_key.is_none() {
            unset.push("KEEL_ENCRYPTION_KEY");
        }
        unset
    }

    /// The checks of `KEEL_ENV=production` and of the billing mode (run by `validate`).
    pub(super) fn validate_safety(&self) -> anyhow::Result<()> {
        match self.billing_mode.as_deref() {
            None => {}
            Some("local") if self.stripe_secret_key.is_some() => anyhow::bail!(
                "KEEL_BILLING_MODE=local contradicts KEEL_STRIPE_SECRET_KEY (or STRIPE_SECRET_KEY), which is set: unset one of them"
            ),
            Some("stripe") if self.stripe_secret_key.is_none() => anyhow::bail!(
                "KEEL_BILLING_MODE=stripe needs KEEL_STRIPE_SECRET_KEY (or STRIPE_SECRET_KEY)"
            ),
            Some("local" | "stripe") => {}
            Some(other) => {
                anyhow::bail!("KEEL_BILLING_MODE must be `stripe` or `local`, not {other:?}")
            }
        }
        if !self.production() {
            return Ok(());
        }
        let unset = self.unset_secrets();
        if !unset.is_empty() {
            anyhow::bail!(
                "KEEL_ADMIN_TOKEN and KEEL_ENCRYPTION_KEY must be set when KEEL_ENV=production; unset: {}",
                unset.join(", ")
            );
        }
        if self.stripe_secret_key.is_none() && self.billing_mode.is_none() {
            anyhow::bail!(
                "KEEL_ENV=production without KEEL_STRIPE_SECRET_KEY (or STRIPE_SECRET_KEY) would run \
                 local billing, which grants plans and credit packs for free: set the Stripe key, \
                 or KEEL_BILLING_MODE=local to run it on purpose"
            );
        }
        if self.allow_private_networks && !self.allow_private_networks_in_production {
            anyhow::bail!(
                "KEEL_ALLOW_PRIVATE_NETWORKS=true lets tenants' webhooks and Jira URLs reach internal \
                 addresses; with KEEL_ENV=production it also needs \
                 KEEL_ALLOW_PRIVATE_NETWORKS_IN_PRODUCTION=true"
            );
        }
        Ok(())
    }
}
