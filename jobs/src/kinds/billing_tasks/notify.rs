//! Telling a tenant something: store the notice once (`GET /api/notifications`) and, when the
//! tenant set a notification URL, enqueue its `webhook.deliver` job in the same transaction —
//! so a notice is delivered if and only if it was stored, and never twice.

use keel_models::job::{Inserted, NewJob};
use keel_models::PgConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::job::Job;
use crate::kinds::webhook::WebhookDeliver;

/// A notice this call stored.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub id: Uuid,
    /// The `webhook.deliver` job carrying it, when the tenant has a notification URL.
    pub delivery_job_id: Option<Uuid>,
}

/// The `Keel-Event` of a notice kind: `usage_statement` → `usage.statement`.
pub fn event_name(kind: &str) -> String {
    kind.replace('_', ".")
}

/// Stores `(tenant, kind, subject)` unless it exists, in the caller's transaction; `None` when
/// it existed (nothing is delivered again). The delivery job is left for the relay to dispatch
/// (handlers have no Redis handle; the relay picks up undispatched rows within its interval).
pub async fn notify(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    kind: &str,
    subject: &str,
    body: &Value,
) -> sqlx::Result<Option<Stored>> {
    use keel_models::billing_tasks as bt;
    let Some(id) = bt::insert_notification(conn, tenant_id, kind, subject, body).await? else {
        return Ok(None);
    };
    let Some(url) = bt::notification_url(conn, tenant_id).await? else {
        return Ok(Some(Stored {
            id,
            delivery_job_id: None,
        }));
    };
    let payload = json!({
        "id": id, "kind": kind, "subject": subject, "tenant_id": tenant_id, "data": body,
    });
    let job = NewJob {
        id: Uuid::now_v7(),
        tenant_id: Some(tenant_id),
        kind: WebhookDeliver::NAME.to_string(),
        queue: WebhookDeliver::QUEUE.to_string(),
        args: json!({ "url": url, "event": event_name(kind), "payload": payload }),
        max_attempts: WebhookDeliver::MAX_ATTEMPTS,
        run_at: None,
        idempotency_key: Some(format!("notification:{id}")),
        dispatched: false,
    };
    let job_id = match keel_models::job::insert(conn, &job).await? {
        Inserted::New(j) | Inserted::Existing(j) => j.id,
    };
    bt::set_delivery_job(conn, id, job_id).await?;
    Ok(Some(Stored {
        id,
        delivery_job_id: Some(job_id),
    }))
}
