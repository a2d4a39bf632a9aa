//! Per-tenant request rate limits from the tenant's plan (per minute and per hour), counted in
//! Redis so every API process shares one count. Reads (`GET`, `HEAD`: status polls, long polls,
//! listings) and writes (everything else) are counted apart, each against its own allowance:
//! a new Free tenant that had submitted 17 jobs got 429 on every poll of them when one budget
//! served both. Over the limit → 429 with `Retry-After` and the
//! IETF draft `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` headers.
//!
//! Fails open: when Redis cannot be reached the request goes through (and a warning is logged),
//! because refusing work Postgres could durably accept would be worse than a missed limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_billing::catalog::RateLimit;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a tenant's plan limits are cached in the process (a plan change applies within it).
const PLAN_TTL: Duration = Duration::from_secs(30);

/// Switches and the small per-process cache metering and rate limiting use.
pub struct Limits {
    /// Reserve units and enforce quotas at submit (`KEEL_METERING`).
    pub metering: bool,
    /// Enforce the plans' request rate limits (`KEEL_RATE_LIMITS`).
    pub rate_limits: bool,
    plans: Mutex<HashMap<Uuid, (Instant, Allowance)>>,
    /// Add-ons in force per tenant (for the priority lane at submit), cached like `plans`.
    add_ons: Mutex<HashMap<Uuid, (Instant, Vec<String>)>>,
}

impl Limits {
    pub fn new(metering: bool, rate_limits: bool) -> Self {
        Self {
            metering,
            rate_limits,
            plans: Mutex::new(HashMap::new()),
            add_ons: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's add-ons in force (active, trialing or past-due subscription), cached for
    /// [`PLAN_TTL`] so the submit path does not query them per request.
    pub async fn add_ons(
        &self,
        pool: &keel_models::PgPool,
        tenant: Uuid,
    ) -> Result<Vec<String>, sqlx::Error> {
        {
            let cache = self.add_ons.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, ids)) = cache.get(&tenant) {
                if at.elapsed() < PLAN_TTL {
                    return Ok(ids.clone());
                }
            }
        }
        let ids = keel_models::billing::subscriptions::add_ons_in_force(pool, tenant).await?;
        let mut cache = self.add_ons.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(tenant, (Instant::now(), ids.clone()));
        Ok(ids)
    }

    fn cached(&self, tenant: Uuid) -> Option<Allowance> {
        let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .get(&tenant)
            .filter(|(at, _)| at.elapsed() < PLAN_TTL)
            .map(|(_, r)| *r)
    }

    fn remember(&self, tenant: Uuid, limit: Allowance) {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if plans.len() > 100_000 {
            plans.clear(); // bounded memory; entries are cheap to rebuild
        }
        plans.insert(tenant, (Instant::now(), limit));
    }
}

/// A plan's request allowances: writes, and reads counted apart.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    writes: RateLimit,
    reads: RateLimit,
}

/// What a request counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// `GET` and `HEAD` read; every other method writes.
    pub fn of(method: &axum::http::Method) -> Self {
        match *method {
            axum::http::Method::GET | axum::http::Method::HEAD => Access::Read,
            _ => Access::Write,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Counts the request and refuses it when the tenant is over its plan's rate for its kind of
/// access.
pub async fn check(state: &AppState, tenant: Uuid, access: Access) -> Result<(), ApiError> {
    if !state.limits.rate_limits {
        return Ok(());
    }
    let allowance = match state.limits.cached(tenant) {
        Some(a) => a,
        None => {
            let plan_id = keel_models::billing::subscriptions::get(&state.pool, tenant)
                .await?
                .map(|s| s.state.plan_id);
            let catalog = &state.billing.catalog;
            let plan = plan_id
                .and_then(|id| catalog.plan(&id))
                .unwrap_or_else(|| catalog.free_plan());
            let a = Allowance {
                writes: plan.rate_limit,
                reads: plan.read_limit(),
            };
            state.limits.remember(tenant, a);
            a
        }
    };
    let (limit, subject) = match access {
        Access::Write => (allowance.writes, tenant.to_string()),
        Access::Read => (allowance.reads, format!("{tenant}:read")),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let windows = [(60u64, limit.per_minute), (3600u64, limit.per_hour)];
    let counts = match state.lane.count_hit(&subject, &[60, 3600], now).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "rate limit check skipped: Redis unavailable");
            return Ok(());
        }
    };
    for ((window, max), count) in windows.iter().zip(counts) {
        if count > u64::from(*max) {
            let reset = window - now % window;
            let name = if *window == 60 { "minute" } else { "hour" };
            return Err(ApiError::TooManyRequests {
                code: "rate_limited",
                message: format!(
                    "more than {max} {}s per {name} for this plan; retry in {reset} s",
                    access.name()
                ),
                details: json!({ "limit": max, "window_seconds": window, "retry_after": reset,
                                 "counts": access.name() }),
                retry_after: Some(reset),
                headers: vec![
                    ("ratelimit-limit", max.to_string()),
                    ("ratelimit-remaining", "0".to_string()),
                    ("ratelimit-reset", reset.to_string()),
                ],
            });
        }
    }
    Ok(())
}
