//! `stripe.event` (internal) `{event_id}`: applies one stored Stripe event to Keel's billing
//! records. The webhook endpoint stores the event and enqueues this job in one transaction,
//! so an acknowledged event is never lost; this job is where it takes effect.
//!
//! Exactly-once effect under redelivery, replay and retries:
//! - the event row is locked for the whole run and its final status (`processed`, `ignored`,
//!   `skipped_stale`) is written in the same transaction as the effect, so a second job for
//!   the same event finds it finished and does nothing;
//! - per Stripe object, the newest applied event's `(created, id)` is kept
//!   ([`keel_models::billing::events::claim_version`]): an older event is `skipped_stale`;
//! - one-off effects (credit grants) hang off a row unique per checkout session.
//!
//! Failures roll the effect back and leave the event `failed` with the error: database
//! trouble and events naming a tenant Keel cannot resolve yet (the linking event may still be
//! on its way) are retried; payloads Keel cannot read or prices missing from the catalog are
//! fatal (fix the catalog, then replay from `POST /admin/stripe/events/{id}/replay`).

use keel_billing::Catalog;
use keel_models::billing::events;
use keel_models::PgPool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::apply::{ApplyError, Outcome};
use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

/// Per event type: what changes (in `stripe_apply.rs`).
#[path = "stripe_apply.rs"]
pub mod apply;
/// The circuit breaker every Stripe call goes through (in `stripe_breaker.rs`).
#[path = "stripe_breaker.rs"]
pub mod breaker;
/// Stripe API calls for Stripe mode (in `stripe_client.rs`).
#[path = "stripe_client.rs"]
pub mod client;
/// Customers, subscription changes, meter events; the jobs' Stripe client (`stripe_ops.rs`).
#[path = "stripe_ops.rs"]
pub mod ops;
/// `stripe.reconcile`, the daily comparison with Stripe (in `stripe_reconcile.rs`).
#[path = "stripe_reconcile.rs"]
pub mod reconcile;
/// `stripe.sync_customer` and `stripe.report_usage` (in `stripe_sync.rs`).
#[path = "stripe_sync.rs"]
pub mod sync;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeEvent {
    pub event_id: String,
}

impl Job for StripeEvent {
    const NAME: &'static str = "stripe.event";
    const MAX_ATTEMPTS: i32 = 10;
    const INTERNAL: bool = true;

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        if !self.event_id.starts_with("evt_") {
            return Err(ArgsError::new(
                "args.event_id",
                "must be a Stripe event id (evt_…)",
            ));
        }
        Ok(())
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let catalog = keel_billing::catalog::global();
        process(&ctx.services.pool, &catalog, &self.event_id).await
    }
}

fn db(e: sqlx::Error) -> JobError {
    JobError::retryable(format!("database error: {e}"))
}

/// Processes one stored event; see the module docs.
pub async fn process(pool: &PgPool, catalog: &Catalog, event_id: &str) -> Result<Value, JobError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let Some(event) = events::lock(&mut tx, event_id).await.map_err(db)? else {
        return Err(JobError::fatal(format!(
            "Stripe event {event_id} is not stored"
        )));
    };
    if matches!(
        event.status.as_str(),
        "processed" | "ignored" | "skipped_stale"
    ) {
        return Ok(json!({ "event_id": event_id, "status": event.status, "already": true }));
    }
    let outcome = apply::apply(&mut tx, catalog, &event).await;
    match outcome {
        Ok(o) => {
            let (status, note, detail) = match o {
                Outcome::Applied(v) => ("processed", None, v),
                Outcome::Ignored(m) => ("ignored", Some(m.clone()), json!(m)),
                Outcome::Stale(m) => ("skipped_stale", Some(m.clone()), json!(m)),
            };
            events::finish(&mut tx, event_id, status, note.as_deref())
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            tracing::info!(event_id, kind = %event.kind, status, "Stripe event processed");
            Ok(json!({ "event_id": event_id, "status": status, "detail": detail }))
        }
        Err(e) => {
            drop(tx); // rolls the partial effect back
            let message = e.to_string();
            let mut conn = pool.acquire().await.map_err(db)?;
            events::finish(&mut conn, event_id, "failed", Some(&message))
                .await
                .map_err(db)?;
            tracing::warn!(event_id, kind = %event.kind, error = %message, "Stripe event failed");
            Err(match e {
                ApplyError::Invalid(m) => JobError::fatal(m),
                ApplyError::Unresolved(m) => JobError::retryable(m),
                ApplyError::Db(e) => db(e),
            })
        }
    }
}
