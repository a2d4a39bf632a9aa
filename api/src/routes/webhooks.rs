//! Everything that talks to Stripe: Checkout and billing portal sessions in Stripe mode
//! (`POST /api/billing/portal`, and checkout's Stripe branch), and
//! `POST /webhooks/stripe`, Stripe's event deliveries. The signature is checked on the raw
//! body before anything is parsed or stored; a valid event is stored by id together with its
//! `stripe.event` processing job in one transaction, and acknowledged at once (processing
//! runs on a worker). A redelivered event is acknowledged again and changes nothing.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use keel_billing::signature;
use keel_billing::stripe::Event;
use keel_jobs::enqueue::{self, Submit};
use keel_jobs::kinds::stripe::client::{CheckoutRequest, Sale, StripeApi, StripeCallError};
use keel_models::billing::subscriptions as subs;
use keel_models::billing::{events, from_unix};
use keel_models::job::{self as ledger, Inserted, NewJob};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::routes::billing::Checkout;
use crate::routes::plans::{check_url, conflict};
use crate::state::AppState;

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        message: message.into(),
    }
}

/// Bodies up to this size are checked on the request's own task; larger ones on the blocking
/// pool (a 1 MiB body takes about 2 ms to hash per secret, more to parse).
const INLINE_BODY_BYTES: usize = 64 * 1024;

/// The signature (one HMAC of the body per configured secret, see [`signature::verify`]),
/// then the event and its payload.
fn check(
    header: Option<&str>,
    body: &[u8],
    secrets: &[secrecy::SecretString],
    now: i64,
) -> Result<(Event, Value), ApiError> {
    let keys: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    signature::verify(header, body, &keys, now).map_err(|e| {
        tracing::warn!(reason = %e, "Stripe webhook refused");
        bad("invalid_signature", e.to_string())
    })?;
    let event =
        Event::parse(body).map_err(|m| bad("invalid_event", format!("not a Stripe event: {m}")))?;
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| bad("invalid_event", format!("not JSON: {e}")))?;
    Ok((event, payload))
}

/// The processing job for a stored event (also used by the operators' replay).
pub(crate) fn processing_job(state: &AppState, event_id: &str) -> Result<NewJob, ApiError> {
    let submit = Submit {
        kind: <keel_jobs::kinds::stripe::StripeEvent as keel_jobs::Job>::NAME.into(),
        args: json!({ "event_id": event_id }),
        idempotency_key: None,
        run_at: None,
        max_attempts: None,
    };
    enqueue::prepare(&state.registry, &state.services, None, submit)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot enqueue stripe.event: {e}")))
}

pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(crate::body_deadline::unreadable)?;
    let secrets = &state.billing.webhook_secrets;
    if secrets.is_empty() {
        // 503 rather than 400: Stripe retries, and the events arrive once secrets are set.
        return Err(ApiError::Unavailable {
            message: "Stripe webhooks are not configured (set KEEL_STRIPE_WEBHOOK_SECRETS)".into(),
            details: Value::Null,
            retry_after: None,
        });
    }
    let header = match headers.get("stripe-signature") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    bad(
                        "invalid_signature",
                        "the Stripe-Signature header is not ASCII",
                    )
                })?
                .to_owned(),
        ),
    };
    let now = chrono::Utc::now().timestamp();
    // Hashing and parsing a large body is CPU work of up to a few milliseconds a secret: it
    // runs on the blocking pool, so the runtime thread that serves every other request (and,
    // under `keel up`, the worker and scheduler) never waits on it.
    let (event, payload) = if body.len() <= INLINE_BODY_BYTES {
        check(header.as_deref(), &body, secrets, now)?
    } else {
        let secrets = secrets.clone();
        tokio::task::spawn_blocking(move || check(header.as_deref(), &body, &secrets, now))
            .await
            .map_err(|e| ApiError::Internal(e.into()))??
    };
    let created = from_unix(event.created)
        .ok_or_else(|| bad("invalid_event", "created is not a valid unix time"))?;
    let job = processing_job(&state, &event.id)?;
    let mut tx = state.pool.begin().await?;
    let stored = events::insert(
        &mut tx,
        &events::NewEvent {
            id: &event.id,
            kind: &event.kind,
            api_version: event.api_version.as_deref(),
            created,
            livemode: event.livemode,
            payload: &payload,
            job_id: job.id,
        },
    )
    .await?;
    if !stored {
        drop(tx);
        tracing::info!(event_id = %event.id, "Stripe event redelivered; already stored");
        return Ok((
            StatusCode::OK,
            Json(json!({ "received": true, "duplicate": true, "event_id": event.id })),
        ));
    }
    let row = match ledger::insert(&mut tx, &job).await? {
        Inserted::New(j) | Inserted::Existing(j) => j,
    };
    tx.commit().await?;
    state.submitter.dispatch_later(&row);
    tracing::info!(event_id = %event.id, kind = %event.kind, job_id = %row.id, "Stripe event stored");
    Ok((
        StatusCode::OK,
        Json(json!({ "received": true, "duplicate": false, "event_id": event.id })),
    ))
}

/// Stripe mode: a Checkout session to send the customer to. Nothing changes locally until
/// Stripe's `checkout.session.completed` and subscription events arrive by webhook.
pub(crate) async fn stripe_checkout(
    state: &AppState,
    api: &StripeApi,
    tenant: Uuid,
    sale: Sale<'_>,
    body: &Checkout,
) -> Result<Json<Value>, ApiError> {
    let customer = subs::stripe_customer(&state.pool, tenant).await?;
    let what = match &sale {
        Sale::Plan {
            price, trial_days, ..
        } => format!("{price}|{trial_days}"),
        Sale::CreditPack { price, .. } => price.to_string(),
    };
    // The same request again (a client retry) carries the same key, so Stripe answers with
    // the same session instead of creating a second one.
    let digest = Sha256::digest(
        format!(
            "{tenant}|{what}|{}|{}|{customer:?}",
            body.success_url, body.cancel_url
        )
        .as_bytes(),
    );
    let key = format!("keel-checkout-{:x}", digest);
    let request = CheckoutRequest {
        tenant_id: tenant.to_string(),
        customer,
        sale,
        success_url: &body.success_url,
        cancel_url: &body.cancel_url,
    };
    let session = api.checkout(&key, request).await.map_err(stripe_error)?;
    Ok(Json(json!({
        "mode": "stripe", "applied": false, "checkout_url": session.url, "session_id": session.id,
    })))
}

pub(crate) fn stripe_error(e: StripeCallError) -> ApiError {
    match e {
        StripeCallError::Fatal(message) => ApiError::Unprocessable {
            code: "stripe_error",
            message: format!("Stripe refused the request: {message}"),
            details: Value::Null,
        },
        StripeCallError::Retryable(message) => ApiError::Unavailable {
            message: format!("Stripe is unavailable; try again: {message}"),
            details: Value::Null,
            retry_after: None,
        },
        StripeCallError::CircuitOpen(wait) => ApiError::Unavailable {
            message: format!(
                "Stripe has been failing; Keel stopped calling it for {}s. Try again then",
                wait.as_secs().max(1)
            ),
            details: json!({ "retry_after_seconds": wait.as_secs().max(1) }),
            retry_after: Some(wait.as_secs().max(1)),
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Portal {
    return_url: String,
}

/// `POST /api/billing/portal` `{return_url}` (Stripe mode): a billing portal session URL, where
/// the customer changes plan (Stripe prorates), cancels, and manages payment methods.
pub async fn portal(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Portal>,
) -> Result<Json<Value>, ApiError> {
    check_url("return_url", &body.return_url)?;
    let Some(api) = &state.billing.stripe else {
        return Err(conflict(
            "local_mode",
            "there is no billing portal in local mode; use POST /api/billing/subscription/change and /cancel",
            json!({ "mode": "local" }),
        ));
    };
    let customer = subs::stripe_customer(&state.pool, tenant)
        .await?
        .ok_or_else(|| {
            conflict(
                "no_stripe_customer",
                "the tenant has no Stripe customer yet; buy a plan or credit pack first",
                Value::Null,
            )
        })?;
    let key = format!("keel-portal-{}", Uuid::now_v7());
    let url = api
        .portal(&key, &customer, &body.return_url)
        .await
        .map_err(stripe_error)?;
    Ok(Json(json!({ "mode": "stripe", "url": url })))
}
