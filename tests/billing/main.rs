//! Billing (issue #5), black-box: the public plan catalog; Stripe webhooks signed with Stripe's
//! scheme (valid, duplicate, out of order, stale, wrong/rotated secret, missing header, unknown
//! type) and their processing by the `stripe.event` job; the operators' event list, replay
//! and stats; the tenant billing API in local mode. Event bodies follow Stripe's documented
//! event and object shapes (API version 2025-10-29.clover: billing periods on subscription
//! items, an invoice's subscription under `parent.subscription_details`).
//!
//! One test binary (each file under `tests/` links the whole application); a module per area.
#![recursion_limit = "256"]

#[path = "../support/mod.rs"]
mod support;

mod catalog;
mod local_mode;
mod operators;
mod plans_file;
mod stripe_mode;
mod webhook_signatures;
mod webhooks;

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;
use support::stripe::percent_decode;
use support::*;
use uuid::Uuid;

const SECRET_OLD: &str = "whsec_test_old_secret_0123456789";
const SECRET_NEW: &str = "whsec_test_new_secret_9876543210";
const API_VERSION: &str = "2025-10-29.clover";

async fn env() -> TestEnv {
    TestEnv::with(|s| {
        s.stripe_webhook_secrets = Some(SecretString::from(format!("{SECRET_OLD},{SECRET_NEW}")))
    })
    .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Stripe's scheme, written out independently of Keel's verifier.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a raw body to `/webhooks/stripe` with an optional `Stripe-Signature`.
async fn deliver_raw(env: &TestEnv, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut req = env
        .http
        .post(env.url("/webhooks/stripe"))
        .header("content-type", "application/json; charset=utf-8");
    if let Some(sig) = signature {
        req = req.header("Stripe-Signature", sig);
    }
    read(req.body(body.to_string()).send().await.unwrap()).await
}

/// Delivers `event` signed now with the first secret; expects 200.
async fn deliver(env: &TestEnv, event: &Value) -> Value {
    let body = event.to_string();
    let (status, answer) =
        deliver_raw(env, &body, Some(stripe_signature(SECRET_OLD, now(), &body))).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn get(env: &TestEnv, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = env.http.get(env.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    read(req.send().await.unwrap()).await
}

async fn post(env: &TestEnv, token: &str, path: &str, body: Value) -> (u16, Value) {
    env.call(reqwest::Method::POST, path, token, Some(&body))
        .await
}

/// The `code` of an error answer (`{"error": {"code": …}}`).
fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn checkout(env: &TestEnv, key: &str, body: Value) -> (u16, Value) {
    post(env, key, "/api/billing/checkout", body).await
}

async fn change_plan(env: &TestEnv, key: &str, body: Value) -> (u16, Value) {
    post(env, key, "/api/billing/subscription/change", body).await
}

async fn cancel_plan(env: &TestEnv, key: &str, body: Value) -> (u16, Value) {
    post(env, key, "/api/billing/subscription/cancel", body).await
}

/// Waits until the stored event leaves `received` (and, when given, reaches `want`).
async fn processed(env: &TestEnv, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ev = keel_models::billing::events::get(&env.keel.pool, id)
            .await
            .unwrap();
        if let Some(ev) = &ev {
            if ev.status == want {
                return serde_json::to_value(ev).unwrap();
            }
        }
        let status = ev.as_ref().map(|e| e.status.clone());
        assert!(
            Instant::now() < deadline,
            "event {id} never reached {want}: {status:?} {:?}",
            ev.map(|e| e.error)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&env.keel.pool)
        .await
        .unwrap()
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": { "object": object, "previous_attributes": {} },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": format!("req_{id}"), "idempotency_key": null },
        "type": kind,
    })
}

/// A Stripe subscription object (one item).
fn subscription(
    sub: &str,
    cus: &str,
    tenant: Uuid,
    price: &str,
    status: &str,
    start: i64,
) -> Value {
    json!({
        "id": sub, "object": "subscription", "application": null,
        "automatic_tax": { "enabled": false, "liability": null },
        "billing_cycle_anchor": start, "cancel_at": null, "cancel_at_period_end": false,
        "canceled_at": null, "collection_method": "charge_automatically", "created": start,
        "currency": "usd", "customer": cus, "default_payment_method": null, "description": null,
        "discounts": [], "ended_at": null,
        "items": {
            "object": "list",
            "data": [{
                "id": format!("si_{sub}"), "object": "subscription_item", "created": start,
                "current_period_start": start, "current_period_end": start + 30 * 86_400,
                "discounts": [], "metadata": {},
                "price": {
                    "id": price, "object": "price", "active": true, "billing_scheme": "per_unit",
                    "created": start - 1000, "currency": "usd", "livemode": false,
                    "lookup_key": null, "metadata": {}, "nickname": null, "product": "prod_keel",
                    "recurring": { "interval": "month", "interval_count": 1, "meter": null,
                                   "usage_type": "licensed" },
                    "tax_behavior": "unspecified", "type": "recurring", "unit_amount": 2900,
                    "unit_amount_decimal": "2900"
                },
                "quantity": 1, "subscription": sub, "tax_rates": []
            }],
            "has_more": false, "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={sub}")
        },
        "latest_invoice": null, "livemode": false,
        "metadata": { "keel_tenant_id": tenant.to_string() },
        "start_date": start, "status": status, "trial_end": null, "trial_start": null
    })
}

fn invoice(id: &str, cus: &str, sub: &str, status: &str, amount: i64, created: i64) -> Value {
    let paid = status == "paid";
    json!({
        "id": id, "object": "invoice", "account_country": "US", "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 },
        "amount_remaining": if paid { 0 } else { amount }, "attempt_count": 1,
        "attempted": true, "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically", "created": created, "currency": "usd",
        "customer": cus, "hosted_invoice_url": format!("https://invoice.stripe.com/i/{id}"),
        "lines": { "object": "list", "data": [], "has_more": false, "total_count": 0,
                   "url": format!("/v1/invoices/{id}/lines") },
        "livemode": false, "metadata": {}, "number": format!("KEEL-{id}"),
        "parent": { "type": "subscription_details", "quote_details": null,
                    "subscription_details": { "metadata": {}, "subscription": sub } },
        "period_start": created - 30 * 86_400, "period_end": created, "status": status,
        "status_transitions": { "finalized_at": created, "marked_uncollectible_at": null,
                                "paid_at": if paid { json!(created) } else { Value::Null },
                                "voided_at": null },
        "subtotal": amount, "total": amount
    })
}

fn checkout_session(id: &str, cus: &str, tenant: Uuid, pack: &str, amount: i64) -> Value {
    json!({
        "id": id, "object": "checkout.session", "amount_subtotal": amount,
        "amount_total": amount, "cancel_url": "https://app.example.com/cancel",
        "client_reference_id": tenant.to_string(), "created": now() - 60, "currency": "usd",
        "customer": cus, "customer_details": { "email": "ops@example.com", "name": "Ops" },
        "livemode": false, "metadata": { "keel_credit_pack": pack }, "mode": "payment",
        "payment_intent": format!("pi_{id}"), "payment_status": "paid", "status": "complete",
        "subscription": null, "success_url": "https://app.example.com/ok", "url": null
    })
}

fn unknown_event() -> Value {
    event(
        "evt_unknown_1",
        "customer.tax_id.created",
        now() - 5,
        json!({ "id": "txi_1", "object": "tax_id", "customer": "cus_1", "type": "eu_vat", "value": "DE123456789" }),
    )
}

const URLS: (&str, &str) = (
    "https://app.example.com/ok",
    "https://app.example.com/cancel",
);

fn plan_checkout(plan: &str, interval: &str) -> Value {
    json!({ "plan": plan, "interval": interval, "success_url": URLS.0, "cancel_url": URLS.1 })
}
