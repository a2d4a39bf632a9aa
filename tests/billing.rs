#![recursion_limit = "256"]

mod support;

// Billing (issue #5), black-box: the public plan catalog; Stripe webhooks signed with Stripe's
// scheme (valid, duplicate, out of order, stale, wrong/rotated secret, missing header, unknown
// type) and their processing by the `stripe.event` job; the operators' event list, replay
// and stats; the tenant billing API in local mode. Event bodies follow Stripe's documented
// event and object shapes (API version 2025-10-29.clover: billing periods on subscription
// items, an invoice's subscription under `parent.subscription_details`).

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

// ---------------------------------------------------------------------------------------------
// Plan catalog
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_plan_catalog_is_public() {
    let env = env().await;
    let (status, body) = get(&env, None, "/api/plans").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "local");
    let ids: Vec<&str> = body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["free", "starter", "team", "business"]);
    let starter = &body["plans"][1];
    assert_eq!(
        starter["kind_limits"],
        json!({ "jira.analyze.issue": 200, "jira.analyze.sprint": 5, "jira.analyze.portfolio": 1 })
    );
    assert_eq!(
        starter["rate_limit"],
        json!({ "per_minute": 60, "per_hour": 2000 })
    );
    assert_eq!(
        starter["stripe_price_monthly"],
        "price_keel_starter_monthly"
    );
    assert_eq!(
        body["unit_weights"]["sentiment.score"],
        json!({ "units": 1, "per": 100, "item": "texts" })
    );
    assert_eq!(body["unit_weights"]["jira.analyze.portfolio"]["units"], 20);
    let packs: Vec<(u64, u64)> = body["credit_packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["units"].as_u64().unwrap(),
                p["valid_days"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(packs, [(50, 90), (100, 90), (250, 120)]);
    assert_eq!(
        body["add_ons"][0]["features"],
        json!({ "priority_lane": true })
    );
}

// ---------------------------------------------------------------------------------------------
// Webhooks: signatures
// ---------------------------------------------------------------------------------------------

/// Asserts a 400 with the JSON error shape and that nothing was stored or enqueued.
async fn refused(env: &TestEnv, (status, body): (u16, Value), why: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_signature", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(why), "{message:?} should say {why:?}");
    assert_eq!(count(env, "SELECT count(*) FROM stripe_events").await, 0);
    assert_eq!(count(env, "SELECT count(*) FROM jobs").await, 0);
}

fn unknown_event() -> Value {
    event(
        "evt_unknown_1",
        "customer.tax_id.created",
        now() - 5,
        json!({ "id": "txi_1", "object": "tax_id", "customer": "cus_1", "type": "eu_vat", "value": "DE123456789" }),
    )
}

#[tokio::test]
async fn a_stale_signature_timestamp_is_400_and_nothing_is_stored() {
    let env = env().await;
    let body = unknown_event().to_string();
    let old = stripe_signature(SECRET_OLD, now() - 301, &body);
    refused(&env, deliver_raw(&env, &body, Some(old)).await, "tolerance").await;
    let future = stripe_signature(SECRET_OLD, now() + 400, &body);
    refused(
        &env,
        deliver_raw(&env, &body, Some(future)).await,
        "tolerance",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_secret_or_a_tampered_body_is_400_and_nothing_is_stored() {
    let env = env().await;
    let body = unknown_event().to_string();
    let wrong = stripe_signature("whsec_someone_else", now(), &body);
    refused(
        &env,
        deliver_raw(&env, &body, Some(wrong)).await,
        "no v1 signature matches",
    )
    .await;
    let sig = stripe_signature(SECRET_OLD, now(), &body);
    let tampered = body.replace("DE123456789", "DE000000000");
    refused(
        &env,
        deliver_raw(&env, &tampered, Some(sig)).await,
        "no v1 signature matches",
    )
    .await;
}

#[tokio::test]
async fn a_missing_or_malformed_signature_header_is_400_and_nothing_is_stored() {
    let env = env().await;
    let body = unknown_event().to_string();
    refused(&env, deliver_raw(&env, &body, None).await, "missing").await;
    refused(
        &env,
        deliver_raw(&env, &body, Some("v1=abc".into())).await,
        "malformed",
    )
    .await;
    refused(
        &env,
        deliver_raw(&env, &body, Some(format!("t={}", now()))).await,
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn the_rotated_second_secret_and_any_matching_v1_are_accepted() {
    let env = env().await;
    let body = unknown_event().to_string();
    let t = now();
    let (status, answer) =
        deliver_raw(&env, &body, Some(stripe_signature(SECRET_NEW, t, &body))).await;
    assert_eq!(status, 200, "{answer}");
    // Stripe sends one v1 per active secret while one is rolled: any match is enough.
    let other = stripe_signature("whsec_retired", t, &body);
    let ours = stripe_signature(SECRET_OLD, t, &body);
    let header = format!("{},v1={}", other, ours.split_once("v1=").unwrap().1);
    let (status, answer) = deliver_raw(&env, &body, Some(header)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], true);
}

#[tokio::test]
async fn without_configured_secrets_webhooks_answer_503_and_store_nothing() {
    let env = TestEnv::new().await;
    let body = unknown_event().to_string();
    let (status, answer) = deliver_raw(
        &env,
        &body,
        Some(stripe_signature(SECRET_OLD, now(), &body)),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("KEEL_STRIPE_WEBHOOK_SECRETS"));
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 0);
}

#[tokio::test]
async fn a_validly_signed_body_that_is_not_an_event_is_400() {
    let env = env().await;
    let body = json!({ "id": "cus_1", "object": "customer" }).to_string();
    let (status, answer) = deliver_raw(
        &env,
        &body,
        Some(stripe_signature(SECRET_OLD, now(), &body)),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_event");
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Webhooks: storing and processing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_event_type_is_stored_acknowledged_and_ignored() {
    let env = env().await;
    env.spawn_worker(|_| {});
    let answer = deliver(&env, &unknown_event()).await;
    assert_eq!(
        answer,
        json!({ "received": true, "duplicate": false, "event_id": "evt_unknown_1" })
    );
    let ev = processed(&env, "evt_unknown_1", "ignored").await;
    assert!(
        ev["error"].as_str().unwrap().contains("not handled"),
        "{ev}"
    );
    assert_eq!(ev["type"], "customer.tax_id.created");
    assert_eq!(ev["api_version"], API_VERSION);
}

/// Stripe retries an event that is not answered 2xx in time; Keel answers once the event and
/// its job are committed, whatever Redis is doing, and the relay pushes the job later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_while_redis_is_down_is_acknowledged_and_processed_once_it_is_back() {
    let mut redis = PrivateRedis::start();
    let env = TestEnv::with_redis(&redis.url(), |s| {
        s.stripe_webhook_secrets = Some(SecretString::from(format!("{SECRET_OLD},{SECRET_NEW}")))
    })
    .await;
    env.spawn_worker(|_| {});
    redis.stop();
    let answer = deliver(&env, &unknown_event()).await;
    assert_eq!(answer["duplicate"], false, "{answer}");
    let job = count(
        &env,
        "SELECT count(*) FROM jobs WHERE kind = 'stripe.event' AND status = 'queued'",
    )
    .await;
    assert_eq!(job, 1);
    // The push after the answer failed, and the row says so: the relay will dispatch it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(
        &env,
        "SELECT count(*) FROM jobs WHERE dispatched_at IS NULL",
    )
    .await
        != 1
    {
        assert!(Instant::now() < deadline, "dispatched_at never cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.restart();
    processed(&env, "evt_unknown_1", "ignored").await;
}

#[tokio::test]
async fn a_subscription_event_is_stored_processed_and_shown_to_the_tenant() {
    let env = env().await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let start = now() - 3600;
    let sub = subscription(
        "sub_1",
        "cus_1",
        tenant,
        "price_keel_team_monthly",
        "active",
        start,
    );
    deliver(
        &env,
        &event(
            "evt_sub_1",
            "customer.subscription.created",
            now() - 10,
            sub,
        ),
    )
    .await;
    processed(&env, "evt_sub_1", "processed").await;
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM jobs WHERE kind = 'stripe.event'"
        )
        .await,
        1
    );

    let (status, body) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plan"], "team");
    assert_eq!(body["status"], "active");
    let s = &body["subscription"];
    assert_eq!(s["source"], "stripe");
    assert_eq!(s["stripe_subscription_id"], "sub_1");
    assert_eq!(s["stripe_customer_id"], "cus_1");
    assert_eq!(s["interval"], "month");
    let end: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(s["current_period_end"].clone()).unwrap();
    assert_eq!(end.timestamp(), start + 30 * 86_400);

    // Invoices of that customer: a failed payment, then paid.
    let failed = invoice("in_1", "cus_1", "sub_1", "open", 9900, now() - 9);
    deliver(
        &env,
        &event("evt_in_1", "invoice.payment_failed", now() - 9, failed),
    )
    .await;
    processed(&env, "evt_in_1", "processed").await;
    let paid = invoice("in_1", "cus_1", "sub_1", "paid", 9900, now() - 9);
    deliver(&env, &event("evt_in_2", "invoice.paid", now() - 8, paid)).await;
    processed(&env, "evt_in_2", "processed").await;
    let (_, body) = get(&env, Some(&key), "/api/billing/invoices").await;
    let inv = &body["invoices"][0];
    assert_eq!(body["invoices"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(
        (inv["status"].as_str(), inv["amount_paid"].as_i64()),
        (Some("paid"), Some(9900))
    );
    assert_eq!(inv["stripe_subscription_id"], "sub_1");
    assert!(
        inv["payment_failed_at"].is_string() && inv["paid_at"].is_string(),
        "{inv}"
    );
}

#[tokio::test]
async fn a_redelivered_credit_pack_event_is_acknowledged_and_applied_once() {
    let env = env().await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let ev = event(
        "evt_cs_1",
        "checkout.session.completed",
        now() - 30,
        checkout_session("cs_1", "cus_9", tenant, "pack_100", 1600),
    );
    let first = deliver(&env, &ev).await;
    assert_eq!(first["duplicate"], false);
    let again = deliver(&env, &ev).await; // possibly before processing
    assert_eq!(again["duplicate"], true);
    processed(&env, "evt_cs_1", "processed").await;
    let late = deliver(&env, &ev).await; // after processing
    assert_eq!(late["duplicate"], true);
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 1);
    assert_eq!(count(&env, "SELECT count(*) FROM jobs").await, 1);
    // An operator replay re-runs the job; the grant still happens once.
    let (status, body) = post(
        &env,
        ADMIN,
        "/admin/stripe/events/evt_cs_1/replay",
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    processed(&env, "evt_cs_1", "processed").await;
    let job: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();
    env.wait_status(job, keel_models::job::JobStatus::Succeeded, secs(20))
        .await;
    let (_, credits) = get(&env, Some(&key), "/api/billing/credits").await;
    assert_eq!(credits["available_units"], 100, "{credits}");
    assert_eq!(credits["grants"].as_array().unwrap().len(), 1);
    let grant = &credits["grants"][0];
    let granted: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(grant["granted_at"].clone()).unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(grant["expires_at"].clone()).unwrap();
    assert_eq!((expires - granted).num_days(), 90);
    let (_, purchases) = get(&env, Some(&key), "/api/billing/purchases").await;
    assert_eq!(
        purchases["purchases"].as_array().unwrap().len(),
        1,
        "{purchases}"
    );
    assert_eq!(
        purchases["purchases"][0]["stripe_checkout_session_id"],
        "cs_1"
    );
}

#[tokio::test]
async fn events_out_of_order_never_overwrite_newer_state() {
    let env = env().await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let t0 = now() - 200;
    let sub = |status: &str, price: &str| subscription("sub_9", "cus_9", tenant, price, status, t0);
    // `updated` (newer: moved to business, past_due) arrives before `created` (starter).
    deliver(
        &env,
        &event(
            "evt_b",
            "customer.subscription.updated",
            t0 + 20,
            sub("past_due", "price_keel_business_monthly"),
        ),
    )
    .await;
    processed(&env, "evt_b", "processed").await;
    deliver(
        &env,
        &event(
            "evt_a",
            "customer.subscription.created",
            t0 + 10,
            sub("active", "price_keel_starter_monthly"),
        ),
    )
    .await;
    let stale = processed(&env, "evt_a", "skipped_stale").await;
    assert!(
        stale["error"].as_str().unwrap().contains("newer event"),
        "{stale}"
    );
    let (_, body) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(
        (body["plan"].as_str(), body["status"].as_str()),
        (Some("business"), Some("past_due")),
        "{body}"
    );

    // `deleted`, then an older `updated` that still says active: the tenant stays canceled.
    deliver(
        &env,
        &event(
            "evt_d",
            "customer.subscription.deleted",
            t0 + 40,
            sub("canceled", "price_keel_business_monthly"),
        ),
    )
    .await;
    processed(&env, "evt_d", "processed").await;
    deliver(
        &env,
        &event(
            "evt_c",
            "customer.subscription.updated",
            t0 + 30,
            sub("active", "price_keel_business_monthly"),
        ),
    )
    .await;
    processed(&env, "evt_c", "skipped_stale").await;
    let (_, body) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(body["plan"], "free", "{body}");
    assert_eq!(body["subscription"]["status"], "canceled", "{body}");
    assert!(body["subscription"]["ended_at"].is_string(), "{body}");
}

#[tokio::test]
async fn an_event_for_an_unknown_tenant_fails_with_a_reason_shown_to_operators() {
    let env = env().await;
    env.spawn_worker(|_| {});
    let mut sub = subscription(
        "sub_x",
        "cus_x",
        Uuid::now_v7(),
        "price_keel_team_monthly",
        "active",
        now() - 100,
    );
    sub["metadata"] = json!({});
    deliver(
        &env,
        &event("evt_x", "customer.subscription.created", now() - 5, sub),
    )
    .await;
    let ev = processed(&env, "evt_x", "failed").await;
    assert!(
        ev["error"].as_str().unwrap().contains("no Keel tenant"),
        "{ev}"
    );
    let (status, body) = get(&env, Some(ADMIN), "/admin/stripe/events?status=failed").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["id"], "evt_x");
}

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn operators_list_events_newest_first_with_filters_and_replay_one() {
    let env = env().await;
    env.spawn_worker(|_| {});
    for i in 0..3 {
        let ev = event(
            &format!("evt_list_{i}"),
            "customer.tax_id.created",
            now() - 5,
            json!({ "id": format!("txi_{i}"), "object": "tax_id" }),
        );
        deliver(&env, &ev).await;
    }
    let ev = event(
        "evt_list_3",
        "payout.paid",
        now() - 5,
        json!({ "id": "po_1", "object": "payout" }),
    );
    deliver(&env, &ev).await;
    for i in 0..4 {
        processed(&env, &format!("evt_list_{i}"), "ignored").await;
    }
    let (status, body) = get(&env, Some(ADMIN), "/admin/stripe/events").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["evt_list_3", "evt_list_2", "evt_list_1", "evt_list_0"]
    );
    assert_eq!(body["events"][0]["status"], "ignored");
    let (_, body) = get(&env, Some(ADMIN), "/admin/stripe/events?type=payout.paid").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    let (_, body) = get(&env, Some(ADMIN), "/admin/stripe/events?status=processed").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    // Pages of two, no gaps or repeats.
    let (_, page1) = get(&env, Some(ADMIN), "/admin/stripe/events?limit=2").await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = get(
        &env,
        Some(ADMIN),
        &format!("/admin/stripe/events?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(page2["events"][0]["id"], "evt_list_1");
    assert_eq!(page2["events"][1]["id"], "evt_list_0");
    // Bad input and no token.
    assert_eq!(
        get(&env, Some(ADMIN), "/admin/stripe/events?status=nope")
            .await
            .0,
        422
    );
    assert_eq!(
        get(&env, Some(ADMIN), "/admin/stripe/events?limit=0")
            .await
            .0,
        422
    );
    assert_eq!(
        get(&env, Some(ADMIN), "/admin/stripe/events?sort=asc")
            .await
            .0,
        422
    );
    assert_eq!(get(&env, None, "/admin/stripe/events").await.0, 401);
    let (_, key, _) = env.tenant("acme").await;
    assert_eq!(get(&env, Some(&key), "/admin/stripe/events").await.0, 401);

    // Replay: back to received with a new job, then processed again.
    let (status, body) = post(
        &env,
        ADMIN,
        "/admin/stripe/events/evt_list_3/replay",
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "received");
    let job: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();
    env.wait_status(job, keel_models::job::JobStatus::Succeeded, secs(20))
        .await;
    let ev = processed(&env, "evt_list_3", "ignored").await;
    assert_eq!(ev["job_id"], job.to_string());
    let (status, body) = post(
        &env,
        ADMIN,
        "/admin/stripe/events/evt_nope/replay",
        json!({}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        post(
            &env,
            &key,
            "/admin/stripe/events/evt_list_3/replay",
            json!({})
        )
        .await
        .0,
        401
    );
}

// ---------------------------------------------------------------------------------------------
// Billing API, local mode
// ---------------------------------------------------------------------------------------------

const URLS: (&str, &str) = (
    "https://app.example.com/ok",
    "https://app.example.com/cancel",
);

fn plan_checkout(plan: &str, interval: &str) -> Value {
    json!({ "plan": plan, "interval": interval, "success_url": URLS.0, "cancel_url": URLS.1 })
}

#[tokio::test]
async fn local_mode_checkout_change_and_cancel_apply_at_once() {
    let env = env().await;
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["mode"].as_str(), body["plan"].as_str()),
        (Some("local"), Some("free"))
    );

    let mut trial = plan_checkout("starter", "month");
    trial["trial_days"] = json!(14);
    let (status, body) = post(&env, &key, "/api/billing/checkout", trial).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "local");
    assert_eq!(body["applied"], true);
    assert_eq!(body["redirect_url"], URLS.0);
    assert_eq!(
        (body["plan"].as_str(), body["status"].as_str()),
        (Some("starter"), Some("trialing"))
    );
    assert!(body["subscription"]["trial_end"].is_string());

    // A second checkout for a plan is refused: change it instead.
    let (status, body) = post(
        &env,
        &key,
        "/api/billing/checkout",
        plan_checkout("team", "month"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_subscribed")),
        "{body}"
    );

    let (status, body) = post(
        &env,
        &key,
        "/api/billing/subscription/change",
        json!({ "plan": "team", "interval": "year" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["plan"].as_str(), body["changed"].as_bool()),
        (Some("team"), Some(true))
    );
    assert_eq!(body["subscription"]["interval"], "year");
    assert_eq!(
        body["proration_amount"], 0,
        "no charge during a trial: {body}"
    );
    let (_, body) = post(
        &env,
        &key,
        "/api/billing/subscription/change",
        json!({ "plan": "team" }),
    )
    .await;
    assert_eq!(body["changed"], false, "{body}");

    let (status, body) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        body["plan"], "team",
        "still on team until the period ends: {body}"
    );
    let (status, body) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": false }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["plan"].as_str(),
            body["subscription"]["status"].as_str()
        ),
        (Some("free"), Some("canceled"))
    );
    let (status, body) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": false }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("no_subscription")),
        "{body}"
    );

    // After canceling, a new paid checkout works and is invoiced at the plan price.
    let (status, body) = post(
        &env,
        &key,
        "/api/billing/checkout",
        plan_checkout("starter", "year"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("active")),
        "{body}"
    );
    let (_, body) = get(&env, Some(&key), "/api/billing/invoices").await;
    assert_eq!(body["invoices"][0]["amount_paid"], 29000, "{body}");
    let (_, body) = get(&env, Some(&key), "/api/billing/purchases").await;
    assert_eq!(body["purchases"].as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn local_mode_credit_packs_grant_units_until_they_expire() {
    let env = env().await;
    let (_, key, _) = env.tenant("acme").await;
    let body = json!({ "credit_pack": "pack_250", "success_url": URLS.0, "cancel_url": URLS.1 });
    let (status, answer) = post(&env, &key, "/api/billing/checkout", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mode"], "local");
    assert_eq!(answer["credit_grant"]["units"], 250);
    let (_, credits) = get(&env, Some(&key), "/api/billing/credits").await;
    assert_eq!(credits["available_units"], 250, "{credits}");
    let g = &credits["grants"][0];
    let granted: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(g["granted_at"].clone()).unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(g["expires_at"].clone()).unwrap();
    assert_eq!((expires - granted).num_days(), 120);
    let (_, p) = get(&env, Some(&key), "/api/billing/purchases").await;
    assert_eq!(
        (
            p["purchases"][0]["amount"].as_i64(),
            p["purchases"][0]["source"].as_str()
        ),
        (Some(3500), Some("local"))
    );
}

#[tokio::test]
async fn bad_billing_input_is_a_clear_4xx_and_changes_nothing() {
    let env = env().await;
    let (_, key, _) = env.tenant("acme").await;
    let cases = [
        (
            json!({ "plan": "starter", "interval": "month", "credit_pack": "pack_50", "success_url": URLS.0, "cancel_url": URLS.1 }),
            "not both",
        ),
        (
            json!({ "success_url": URLS.0, "cancel_url": URLS.1 }),
            "plan or credit_pack",
        ),
        (plan_checkout("platinum", "month"), "unknown plan"),
        (plan_checkout("free", "month"), "free plan"),
        (plan_checkout("starter", "week"), "interval"),
        (
            json!({ "plan": "starter", "success_url": URLS.0, "cancel_url": URLS.1 }),
            "interval",
        ),
        (
            json!({ "plan": "starter", "interval": "month", "trial_days": 365, "success_url": URLS.0, "cancel_url": URLS.1 }),
            "trial_days",
        ),
        (
            json!({ "credit_pack": "pack_7", "success_url": URLS.0, "cancel_url": URLS.1 }),
            "unknown pack",
        ),
        (
            json!({ "credit_pack": "pack_50", "interval": "month", "success_url": URLS.0, "cancel_url": URLS.1 }),
            "credit packs",
        ),
        (
            json!({ "plan": "starter", "interval": "month", "success_url": "javascript:alert(1)", "cancel_url": URLS.1 }),
            "success_url",
        ),
        (
            json!({ "plan": "starter", "interval": "month", "success_url": URLS.0 }),
            "cancel_url",
        ),
        (
            json!({ "plan": "starter", "interval": "month", "coupon": "x", "success_url": URLS.0, "cancel_url": URLS.1 }),
            "coupon",
        ),
    ];
    for (body, says) in cases {
        let (status, answer) = post(&env, &key, "/api/billing/checkout", body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{body} → {answer} should say {says:?}"
        );
    }
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/change",
        json!({ "plan": "team" }),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("no_subscription")),
        "{answer}"
    );
    let (status, _) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": "yes" }),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post(
        &env,
        "kl_live_nope",
        "/api/billing/checkout",
        plan_checkout("starter", "month"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(get(&env, None, "/api/billing/subscription").await.0, 401);
    for table in [
        "billing_subscriptions",
        "billing_purchases",
        "billing_invoices",
        "billing_credit_grants",
    ] {
        assert_eq!(
            count(&env, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn admin_stats_count_revenue_subscriptions_churn_and_pack_sales() {
    let env = env().await;
    let (_, a, _) = env.tenant("a").await;
    let (_, b, _) = env.tenant("b").await;
    let (_, c, _) = env.tenant("c").await;
    assert_eq!(
        post(
            &env,
            &a,
            "/api/billing/checkout",
            plan_checkout("starter", "month")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &env,
            &b,
            "/api/billing/checkout",
            plan_checkout("team", "year")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &env,
            &c,
            "/api/billing/checkout",
            plan_checkout("starter", "month")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &env,
            &c,
            "/api/billing/subscription/cancel",
            json!({ "at_period_end": false })
        )
        .await
        .0,
        200
    );
    let pack = json!({ "credit_pack": "pack_50", "success_url": URLS.0, "cancel_url": URLS.1 });
    assert_eq!(post(&env, &a, "/api/billing/checkout", pack).await.0, 200);

    assert_eq!(get(&env, Some(&a), "/admin/billing/stats").await.0, 401);
    let (status, s) = get(&env, Some(ADMIN), "/admin/billing/stats").await;
    assert_eq!(status, 200, "{s}");
    let mrr = 2900 + 99000 / 12;
    assert_eq!(
        (s["mrr"].as_i64(), s["arr"].as_i64()),
        (Some(mrr), Some(mrr * 12)),
        "{s}"
    );
    assert_eq!(
        s["subscriptions_per_plan"],
        json!({ "starter": { "active": 1 }, "team": { "active": 1 } })
    );
    assert_eq!(s["churn_30d"]["canceled"], 1);
    assert!(
        (s["churn_30d"]["rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(
        (
            s["credit_pack_sales_30d"]["count"].as_i64(),
            s["credit_pack_sales_30d"]["amount"].as_i64()
        ),
        (Some(1), Some(900))
    );
}

/// A usage period as the period rollover leaves it: `used_overage` units billed as overage,
/// closed `closed_days_ago` days ago (`None`: still open).
async fn period(
    env: &TestEnv,
    tenant: Uuid,
    plan: &str,
    months_ago: i32,
    used_overage: i64,
    closed_days_ago: Option<i32>,
) {
    sqlx::query(
        "INSERT INTO usage_periods (tenant_id, period_start, period_end, plan_id, included_units,
             used_included, used_overage, closed_at)
         VALUES ($1, date_trunc('month', now()) - make_interval(months => $2 + 1),
                 date_trunc('month', now()) - make_interval(months => $2), $3, 2500, 2500, $4,
                 now() - make_interval(days => $5))",
    )
    .bind(tenant)
    .bind(months_ago)
    .bind(plan)
    .bind(used_overage)
    .bind(closed_days_ago)
    .execute(&env.keel.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn admin_stats_price_the_overage_of_periods_closed_in_the_last_30_days() {
    let env = env().await;
    let (_, s) = get(&env, Some(ADMIN), "/admin/billing/stats").await;
    assert_eq!(s["overage_revenue"], 0, "{s}");
    assert_eq!(s["overage_30d"]["periods"], 0, "{s}");

    let (a, _, _) = env.tenant("a").await;
    let (b, _, _) = env.tenant("b").await;
    let (c, _, _) = env.tenant("c").await;
    // Counted: Team (4 cents a unit) and Business (3), closed within 30 days; a hard-capped
    // Starter period has no overage price.
    period(&env, a, "team", 0, 120, Some(2)).await;
    period(&env, b, "business", 0, 50, Some(29)).await;
    period(&env, c, "starter", 0, 7, Some(1)).await;
    // Not counted: closed 31+ days ago, or not closed yet.
    period(&env, a, "team", 1, 1000, Some(31)).await;
    period(&env, b, "team", 1, 500, None).await;

    let (status, s) = get(&env, Some(ADMIN), "/admin/billing/stats").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["overage_revenue"], 120 * 4 + 50 * 3, "{s}");
    assert_eq!(s["overage_30d"]["amount"], 120 * 4 + 50 * 3, "{s}");
    assert_eq!(s["overage_30d"]["units"], 120 + 50 + 7, "{s}");
    assert_eq!(s["overage_30d"]["periods"], 3, "{s}");
    assert_eq!(
        s["overage_30d"]["per_plan"],
        json!([
            {"plan_id": "business", "periods": 1, "units": 50, "amount": 150},
            {"plan_id": "starter", "periods": 1, "units": 7, "amount": 0},
            {"plan_id": "team", "periods": 1, "units": 120, "amount": 480},
        ]),
        "{s}"
    );
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[test]
fn a_bad_plans_file_stops_start_up_naming_the_variable_and_the_entry() {
    use keel::settings::Settings;
    let default = include_str!("../config/plans.toml");
    let dir = std::env::temp_dir().join(format!("keel-plans-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        Some(p.to_string_lossy().into_owned())
    };
    let ok = Settings {
        plans_file: write("ok.toml", default),
        ..Settings::default()
    };
    ok.validate().unwrap();
    let dup = default.replacen("id = \"team\"", "id = \"starter\"", 1);
    let bad = Settings {
        plans_file: write("dup.toml", &dup),
        ..Settings::default()
    };
    let refusal = |s: Settings| s.validate().unwrap_err().to_string();
    let err = refusal(bad);
    assert!(
        err.contains("KEEL_PLANS_FILE") && err.contains("\"starter\" is used twice"),
        "{err}"
    );
    for (settings, variable) in [
        (
            Settings {
                plans_file: Some("/nonexistent/plans.toml".into()),
                ..Settings::default()
            },
            "KEEL_PLANS_FILE",
        ),
        (
            Settings {
                stripe_webhook_secrets: Some(SecretString::from("whsec_a,,whsec_b")),
                ..Settings::default()
            },
            "KEEL_STRIPE_WEBHOOK_SECRETS",
        ),
        (
            Settings {
                stripe_secret_key: Some(SecretString::from("pk_test_public")),
                ..Settings::default()
            },
            "KEEL_STRIPE_SECRET_KEY",
        ),
    ] {
        let err = refusal(settings);
        assert!(err.contains(variable), "{variable}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_store_one_row_and_one_job() {
    let env = env().await;
    let ev = unknown_event();
    let answers = futures::future::join_all((0..8).map(|_| deliver(&env, &ev))).await;
    let fresh = answers.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(fresh, 1, "{answers:?}");
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 1);
    assert_eq!(count(&env, "SELECT count(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn subscription_checkout_trial_and_customer_events_are_applied() {
    let env = env().await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let t = now() - 100;
    // Checkout of a subscription links the customer to the tenant (client_reference_id).
    let mut cs = checkout_session("cs_sub", "cus_c", tenant, "", 2900);
    cs["mode"] = json!("subscription");
    cs["metadata"] = json!({ "keel_plan": "starter" });
    cs["subscription"] = json!("sub_c");
    deliver(&env, &event("evt_c1", "checkout.session.completed", t, cs)).await;
    processed(&env, "evt_c1", "processed").await;
    // The subscription carries no tenant metadata: the linked customer resolves it.
    let mut sub = subscription(
        "sub_c",
        "cus_c",
        tenant,
        "price_keel_starter_annual",
        "trialing",
        t,
    );
    sub["metadata"] = json!({});
    sub["trial_end"] = json!(t + 3 * 86_400);
    sub["items"]["data"][0]["price"]["recurring"]["interval"] = json!("year");
    deliver(
        &env,
        &event("evt_c2", "customer.subscription.trial_will_end", t + 1, sub),
    )
    .await;
    processed(&env, "evt_c2", "processed").await;
    let (_, body) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(
        (body["plan"].as_str(), body["status"].as_str()),
        (Some("starter"), Some("trialing")),
        "{body}"
    );
    assert_eq!(body["subscription"]["interval"], "year");
    assert!(body["subscription"]["trial_end"].is_string());
    let (_, p) = get(&env, Some(&key), "/api/billing/purchases").await;
    assert_eq!(
        (
            p["purchases"][0]["kind"].as_str(),
            p["purchases"][0]["item_id"].as_str()
        ),
        (Some("subscription"), Some("starter")),
        "{p}"
    );

    let customer = |email: &str| json!({ "id": "cus_c", "object": "customer", "address": null, "balance": 0, "created": t - 10, "currency": "usd", "delinquent": false, "email": email, "invoice_prefix": "KEEL", "livemode": false, "metadata": {}, "name": "Acme", "phone": null });
    deliver(
        &env,
        &event(
            "evt_c3",
            "customer.updated",
            t + 3,
            customer("new@example.com"),
        ),
    )
    .await;
    processed(&env, "evt_c3", "processed").await;
    deliver(
        &env,
        &event(
            "evt_c4",
            "customer.updated",
            t + 2,
            customer("old@example.com"),
        ),
    )
    .await;
    processed(&env, "evt_c4", "skipped_stale").await;
    let email: Option<String> = sqlx::query_scalar(
        "SELECT email FROM billing_customers WHERE stripe_customer_id = 'cus_c'",
    )
    .fetch_one(&env.keel.pool)
    .await
    .unwrap();
    assert_eq!(email.as_deref(), Some("new@example.com"));
    let mut gone = customer("new@example.com");
    gone["deleted"] = json!(true);
    deliver(&env, &event("evt_c5", "customer.deleted", t + 4, gone)).await;
    processed(&env, "evt_c5", "processed").await;
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM billing_customers WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Stripe mode, against a fake Stripe (wiremock) answering with Stripe's documented objects
// ---------------------------------------------------------------------------------------------

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SK: &str = "sk_test_keel_0123456789";

async fn stripe_env(stripe: &MockServer) -> TestEnv {
    let base = stripe.uri();
    TestEnv::with(move |s| {
        s.stripe_secret_key = Some(SecretString::from(SK));
        s.stripe_api_base = Some(base);
        s.stripe_webhook_secrets = Some(SecretString::from(SECRET_OLD));
    })
    .await
}

/// A Checkout Session as `POST /v1/checkout/sessions` returns it.
fn checkout_session_response(mode: &str, tenant: Uuid) -> Value {
    json!({
        "id": "cs_test_a1b2c3", "object": "checkout.session",
        "adaptive_pricing": { "enabled": true }, "after_expiration": null,
        "allow_promotion_codes": null, "amount_subtotal": 2900, "amount_total": 2900,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null, "cancel_url": URLS.1,
        "client_reference_id": tenant.to_string(), "client_secret": null,
        "collected_information": null, "consent": null, "consent_collection": null,
        "created": now(), "currency": "usd", "currency_conversion": null, "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null,
                         "terms_of_service_acceptance": null },
        "customer": null, "customer_creation": "always", "customer_details": null,
        "customer_email": null, "discounts": [], "expires_at": now() + 86_400, "invoice": null,
        "invoice_creation": null, "livemode": false, "locale": null, "metadata": {},
        "mode": mode, "origin_context": null, "payment_intent": null, "payment_link": null,
        "payment_method_collection": "always", "payment_method_configuration_details": null,
        "payment_method_options": null, "payment_method_types": ["card"],
        "payment_status": "unpaid", "permissions": null,
        "phone_number_collection": { "enabled": false }, "recovered_from": null,
        "saved_payment_method_options": null, "setup_intent": null,
        "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [],
        "status": "open", "submit_type": null, "subscription": null, "success_url": URLS.0,
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted", "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
        "wallet_options": null
    })
}

/// The form fields of each request the fake Stripe received, decoded, with its idempotency key.
async fn received(stripe: &MockServer) -> Vec<(Vec<String>, Option<String>)> {
    stripe
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body).to_string();
            let fields = body.split('&').map(percent_decode).collect();
            let key = r
                .headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_string());
            (fields, key)
        })
        .collect()
}

#[tokio::test]
async fn stripe_mode_checkout_asks_stripe_for_a_session_with_an_idempotency_key() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let (tenant, key, _) = env.tenant("acme").await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .and(header("authorization", format!("Bearer {SK}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(checkout_session_response("subscription", tenant)),
        )
        .mount(&stripe)
        .await;
    let mut body = plan_checkout("starter", "year");
    body["trial_days"] = json!(14);
    let (status, answer) = post(&env, &key, "/api/billing/checkout", body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mode"], "stripe");
    assert_eq!(answer["applied"], false);
    assert_eq!(
        answer["checkout_url"],
        "https://checkout.stripe.com/c/pay/cs_test_a1b2c3"
    );
    assert_eq!(answer["session_id"], "cs_test_a1b2c3");
    // A client retry sends the same idempotency key.
    assert_eq!(post(&env, &key, "/api/billing/checkout", body).await.0, 200);
    let sent = received(&stripe).await;
    assert_eq!(sent.len(), 2);
    let (fields, k1) = &sent[0];
    let k1 = k1.as_deref().expect("Idempotency-Key sent");
    assert!(k1.starts_with("keel-checkout-"), "{k1}");
    assert_eq!(sent[1].1.as_deref(), Some(k1));
    let t = tenant.to_string();
    for want in [
        "mode=subscription".to_string(),
        "line_items[0][price]=price_keel_starter_annual".into(),
        "line_items[0][quantity]=1".into(),
        format!("client_reference_id={t}"),
        format!("subscription_data[metadata][keel_tenant_id]={t}"),
        "subscription_data[trial_period_days]=14".into(),
        "metadata[keel_plan]=starter".into(),
        format!("success_url={}", URLS.0),
    ] {
        assert!(fields.contains(&want), "{want} not in {fields:?}");
    }
    // Nothing changes locally until Stripe's events arrive.
    assert_eq!(
        count(&env, "SELECT count(*) FROM billing_subscriptions").await,
        0
    );
    let (_, sub) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(
        (sub["mode"].as_str(), sub["plan"].as_str()),
        (Some("stripe"), Some("free"))
    );

    // A credit pack: a one-off payment that creates the customer.
    let pack = json!({ "credit_pack": "pack_250", "success_url": URLS.0, "cancel_url": URLS.1 });
    assert_eq!(post(&env, &key, "/api/billing/checkout", pack).await.0, 200);
    let sent = received(&stripe).await;
    let (fields, k3) = &sent[2];
    assert_ne!(k3.as_deref(), Some(k1));
    for want in [
        "mode=payment",
        "line_items[0][price]=price_keel_pack_250",
        "metadata[keel_credit_pack]=pack_250",
        "customer_creation=always",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} not in {fields:?}");
    }
    // Change and cancel call Stripe's subscription API (tests/stripe_jobs.rs); with no
    // subscription yet there is nothing to cancel.
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": true }),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("no_subscription")),
        "{answer}"
    );
}

#[tokio::test]
async fn stripe_refusals_are_422_with_stripes_message_and_outages_503() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let (_, key, _) = env.tenant("acme").await;
    let refusal = json!({ "error": {
        "code": "resource_missing", "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        "message": "No such price: 'price_keel_team_monthly'", "param": "line_items[0][price]",
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_x", "type": "invalid_request_error"
    }});
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(refusal))
        .up_to_n_times(1)
        .mount(&stripe)
        .await;
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/checkout",
        plan_checkout("team", "month"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("stripe_error")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No such price"),
        "{answer}"
    );
    let outage =
        json!({ "error": { "message": "An unknown error occurred", "type": "api_error" } });
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(outage))
        .mount(&stripe)
        .await;
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/checkout",
        plan_checkout("team", "month"),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
}

#[tokio::test]
async fn the_billing_portal_needs_stripe_mode_and_a_stripe_customer() {
    let local = env().await;
    let (_, key, _) = local.tenant("acme").await;
    let body = json!({ "return_url": URLS.0 });
    let (status, answer) = post(&local, &key, "/api/billing/portal", body.clone()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("local_mode")),
        "{answer}"
    );

    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let (status, answer) = post(&env, &key, "/api/billing/portal", body.clone()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("no_stripe_customer")),
        "{answer}"
    );
    // The completed checkout links the customer.
    let cs = checkout_session("cs_p", "cus_portal", tenant, "pack_50", 900);
    deliver(
        &env,
        &event("evt_p", "checkout.session.completed", now() - 5, cs),
    )
    .await;
    processed(&env, "evt_p", "processed").await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bps_1", "object": "billing_portal.session", "configuration": "bpc_1",
            "created": now(), "customer": "cus_portal", "customer_account": null, "flow": null,
            "livemode": false, "locale": null, "on_behalf_of": null, "return_url": URLS.0,
            "url": "https://billing.stripe.com/p/session/test_bps_1"
        })))
        .mount(&stripe)
        .await;
    let (status, answer) = post(&env, &key, "/api/billing/portal", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["url"],
        "https://billing.stripe.com/p/session/test_bps_1"
    );
    let sent = received(&stripe).await;
    let (fields, k) = sent.last().unwrap();
    assert!(
        fields.contains(&"customer=cus_portal".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&format!("return_url={}", URLS.0)),
        "{fields:?}"
    );
    assert!(k.as_deref().unwrap().starts_with("keel-portal-"));
}
