#![recursion_limit = "256"]

mod support;

// Stripe calls made by Keel (issue #5), against a wiremock fake Stripe answering with objects
// shaped like Stripe's API reference (API 2025-10-29.clover): the customer created with each
// tenant, plan change and cancel, overage as Billing Meter events, and the circuit breaker
// that defers Stripe jobs (attempts uncounted) while Stripe is down.
//
// Each test runs in its own process (nextest), so the process-wide Stripe client for jobs and
// the breaker are installed per test.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keel_jobs::kinds::stripe::breaker::{self, BreakerConfig};
use keel_jobs::kinds::stripe::client::StripeApi;
use keel_jobs::kinds::stripe::ops;
use keel_models::job::JobStatus;
use secrecy::SecretString;
use serde_json::{json, Value};
use support::stripe::percent_decode;
use support::*;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SK: &str = "sk_test_keel_0123456789";

async fn stripe_env(stripe: &MockServer) -> TestEnv {
    let base = stripe.uri();
    ops::install(
        Some(Arc::new(StripeApi::new(SK, Some(&base)).unwrap())),
        Some("keel_test_overage".into()),
    );
    TestEnv::with(move |s| {
        s.stripe_secret_key = Some(SecretString::from(SK));
        s.stripe_api_base = Some(base);
        s.stripe_meter_event = Some("keel_test_overage".into());
    })
    .await
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// A Customer as `POST /v1/customers` returns it.
fn customer(id: &str, name: &str, tenant: &str) -> Value {
    json!({
        "id": id, "object": "customer", "address": null, "balance": 0, "created": now(),
        "currency": null, "default_source": null, "delinquent": false, "description": null,
        "discount": null, "email": null, "invoice_prefix": "8D2C1F0A",
        "invoice_settings": { "custom_fields": null, "default_payment_method": null,
                              "footer": null, "rendering_options": null },
        "livemode": false, "metadata": { "keel_tenant_id": tenant }, "name": name,
        "next_invoice_sequence": 1, "phone": null, "preferred_locales": [], "shipping": null,
        "tax_exempt": "none", "test_clock": null
    })
}

/// A Subscription with one plan item, as the subscriptions API returns it.
fn subscription(price: &str, interval: &str, cancel_at_period_end: bool, status: &str) -> Value {
    let start = now() - 86_400;
    let amount = 2900;
    json!({
        "id": "sub_keel1", "object": "subscription", "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
        "billing_cycle_anchor": start, "billing_cycle_anchor_config": null,
        "billing_mode": { "flexible": null, "type": "classic", "updated_at": null },
        "billing_schedules": [], "billing_thresholds": null, "cancel_at": null,
        "cancel_at_period_end": cancel_at_period_end, "canceled_at": null,
        "cancellation_details": { "comment": null, "feedback": null, "reason": null },
        "collection_method": "charge_automatically", "created": start, "currency": "usd",
        "customer": "cus_keel1", "customer_account": null, "days_until_due": null,
        "default_payment_method": null, "default_source": null, "default_tax_rates": [],
        "description": null, "discounts": [], "ended_at": null,
        "invoice_settings": { "account_tax_ids": null, "issuer": { "type": "self" } },
        "items": {
            "object": "list",
            "data": [{
                "id": "si_keel1", "object": "subscription_item", "billing_thresholds": null,
                "created": start, "current_period_end": start + 30 * 86_400,
                "current_period_start": start, "discounts": [], "metadata": {},
                "plan": {
                    "id": price, "object": "plan", "active": true, "amount": amount,
                    "amount_decimal": "2900", "billing_scheme": "per_unit", "created": start,
                    "currency": "usd", "interval": interval, "interval_count": 1,
                    "livemode": false, "metadata": {}, "meter": null, "nickname": null,
                    "product": "prod_keel", "tiers_mode": null, "transform_usage": null,
                    "trial_period_days": null, "usage_type": "licensed"
                },
                "price": {
                    "id": price, "object": "price", "active": true, "billing_scheme": "per_unit",
                    "created": start, "currency": "usd", "custom_unit_amount": null,
                    "livemode": false, "lookup_key": null, "metadata": {}, "nickname": null,
                    "product": "prod_keel",
                    "recurring": { "interval": interval, "interval_count": 1, "meter": null,
                                   "trial_period_days": null, "usage_type": "licensed" },
                    "tax_behavior": "unspecified", "tiers_mode": null,
                    "transform_quantity": null, "type": "recurring", "unit_amount": amount,
                    "unit_amount_decimal": "2900"
                },
                "quantity": 1, "subscription": "sub_keel1", "tax_rates": []
            }],
            "has_more": false, "total_count": 1,
            "url": "/v1/subscription_items?subscription=sub_keel1"
        },
        "latest_invoice": "in_keel1", "livemode": false, "metadata": {},
        "next_pending_invoice_item_invoice": null, "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": { "payment_method_options": null, "payment_method_types": null,
                              "save_default_payment_method": "off" },
        "pending_invoice_item_interval": null, "pending_setup_intent": null,
        "pending_update": null, "schedule": null, "start_date": start, "status": status,
        "test_clock": null, "transfer_data": null, "trial_end": null,
        "trial_settings": { "end_behavior": { "missing_payment_method": "create_invoice" } },
        "trial_start": null
    })
}

/// One request the fake Stripe received: method, path, decoded form fields, idempotency key.
#[derive(Debug)]
struct Sent {
    method: String,
    path: String,
    fields: Vec<String>,
    key: Option<String>,
}

async fn sent(stripe: &MockServer) -> Vec<Sent> {
    let reqs = stripe.received_requests().await.unwrap();
    reqs.iter()
        .map(|r| Sent {
            method: r.method.to_string(),
            path: r.url.path().to_string(),
            fields: String::from_utf8_lossy(&r.body)
                .split('&')
                .filter(|f| !f.is_empty())
                .map(percent_decode)
                .collect(),
            key: r
                .headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_string()),
        })
        .collect()
}

fn has(s: &Sent, field: &str) -> bool {
    s.fields.iter().any(|f| f == field)
}

async fn customer_job(env: &TestEnv, tenant: Uuid) -> Uuid {
    sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM jobs WHERE kind = 'stripe.sync_customer' AND args->>'tenant_id' = $1",
    )
    .bind(tenant.to_string())
    .fetch_one(&env.keel.pool)
    .await
    .unwrap()
}

async fn linked(env: &TestEnv, tenant: Uuid) -> Option<String> {
    keel_models::billing::subscriptions::stripe_customer(&env.keel.pool, tenant)
        .await
        .unwrap()
}

async fn post(env: &TestEnv, key: &str, path: &str, body: Value) -> (u16, Value) {
    env.call(reqwest::Method::POST, path, key, Some(&body))
        .await
}

/// The id the fake Stripe gives the customer of `tenant` (`{prefix}_{last 12 hex digits}`:
/// the random end of a UUIDv7).
fn cus(prefix: &str, tenant: impl ToString) -> String {
    let t = tenant.to_string();
    format!("{prefix}_{}", &t[t.len() - 12..])
}

/// Answers `POST /v1/customers` like Stripe: a new customer carrying the request's name and
/// tenant metadata.
fn customers_endpoint(prefix: &'static str) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(move |req: &wiremock::Request| {
            let body = String::from_utf8_lossy(&req.body).to_string();
            let field = |name: &str| {
                body.split('&')
                    .map(percent_decode)
                    .find_map(|f| f.strip_prefix(&format!("{name}=")).map(str::to_string))
                    .unwrap_or_default()
            };
            let (name, tenant) = (field("name"), field("metadata[keel_tenant_id]"));
            ResponseTemplate::new(200).set_body_json(customer(
                &cus(prefix, &tenant),
                &name,
                &tenant,
            ))
        })
}

#[tokio::test]
async fn a_new_tenant_gets_its_stripe_customer_and_checkout_reuses_it() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    customers_endpoint("cus_acme").mount(&stripe).await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let job = customer_job(&env, tenant).await;
    let done = env.wait_status(job, JobStatus::Succeeded, secs(20)).await;
    let id = cus("cus_acme", tenant);
    assert_eq!(done.result.unwrap()["stripe_customer_id"], id.as_str());
    assert_eq!(linked(&env, tenant).await, Some(id.clone()));
    let calls = sent(&stripe).await;
    let create = calls.iter().rfind(|s| s.path == "/v1/customers").unwrap();
    assert_eq!(
        create.key.as_deref(),
        Some(format!("keel-customer-{tenant}").as_str())
    );
    assert!(
        has(create, &format!("metadata[keel_tenant_id]={tenant}")),
        "{create:?}"
    );
    assert!(has(create, "name=acme"), "{create:?}");

    // Checkout uses the linked customer instead of letting Stripe create another.
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({ "error": { "message": "An unknown error occurred", "type": "api_error" } }),
        ))
        .mount(&stripe)
        .await;
    let pack = json!({ "credit_pack": "pack_50", "success_url": "https://app.example.com/ok",
                       "cancel_url": "https://app.example.com/cancel" });
    let (status, _) = post(&env, &key, "/api/billing/checkout", pack).await;
    assert_eq!(status, 503);
    let calls = sent(&stripe).await;
    let checkout = calls.last().unwrap();
    assert_eq!(checkout.path, "/v1/checkout/sessions");
    assert!(has(checkout, &format!("customer={id}")), "{checkout:?}");
    assert!(!has(checkout, "customer_creation=always"), "{checkout:?}");
}

#[tokio::test]
async fn while_stripe_fails_the_breaker_opens_and_defers_jobs_without_spending_attempts() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let cool_down = Duration::from_secs(4);
    breaker::global().configure(BreakerConfig {
        threshold: 2,
        cool_down,
    });
    let outage =
        json!({ "error": { "message": "An unknown error occurred", "type": "api_error" } });
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(500).set_body_json(outage))
        .named("outage")
        .mount(&stripe)
        .await;
    env.spawn_worker(|_| {});
    let (first, _, _) = env.tenant("first").await;
    let first_job = customer_job(&env, first).await;
    // Two 500s (attempts 1 and 2; the backoff is 100 ms) open the breaker.
    env.wait_for(first_job, secs(20), |j| {
        j.last_error
            .as_ref()
            .is_some_and(|e| e["kind"] == "deferred")
    })
    .await;
    assert_eq!(
        sent(&stripe).await.len(),
        2,
        "only two calls reached Stripe"
    );
    // Jobs arriving while it is open wait without calling Stripe and without using attempts.
    let mut later = Vec::new();
    for name in ["second", "third"] {
        let (tenant, _, _) = env.tenant(name).await;
        let job = customer_job(&env, tenant).await;
        let deferred = env
            .wait_for(job, secs(10), |j| {
                j.last_error
                    .as_ref()
                    .is_some_and(|e| e["kind"] == "deferred")
            })
            .await;
        assert_eq!(deferred.status, JobStatus::Queued, "{deferred:#?}");
        assert_eq!(deferred.attempt, 0, "a deferral spends no attempt");
        assert!(deferred.run_at > Utc::now(), "due after the cool-down");
        let err = deferred.last_error.unwrap();
        assert!(err["retry_after_ms"].as_u64().unwrap() <= cool_down.as_millis() as u64);
        assert!(err["message"].as_str().unwrap().contains("circuit breaker"));
        later.push((tenant, job));
    }
    assert_eq!(
        sent(&stripe).await.len(),
        2,
        "no call while the breaker is open"
    );
    let first_row = env.job(first_job).await;
    assert_eq!(
        (first_row.status, first_row.attempt),
        (JobStatus::Queued, 2)
    );

    // Stripe is back: after the cool-down every job succeeds, each on its first counted attempt.
    stripe.reset().await;
    customers_endpoint("cus_back").mount(&stripe).await;
    for (tenant, job) in later {
        let done = env.wait_status(job, JobStatus::Succeeded, secs(30)).await;
        assert_eq!(done.attempt, 1);
        assert_eq!(linked(&env, tenant).await, Some(cus("cus_back", tenant)));
    }
    let done = env
        .wait_status(first_job, JobStatus::Succeeded, secs(30))
        .await;
    assert_eq!(done.attempt, 3, "two failed calls, then the success");
    assert!(breaker::global().check().is_ok());
}

/// A live Stripe-managed subscription in Keel's copy, as the webhooks would have left it.
async fn stripe_subscription_row(env: &TestEnv, tenant: Uuid) {
    let start = Utc::now() - chrono::Duration::days(1);
    let mut sub = subscriptions::team(tenant, "active");
    sub.mode = "stripe".into();
    sub.plan_id = "starter".into();
    sub.current_period_start = Some(start);
    sub.current_period_end = Some(start + chrono::Duration::days(30));
    sub.stripe_customer_id = Some("cus_keel1".into());
    sub.stripe_subscription_id = Some("sub_keel1".into());
    subscriptions::store(env, &sub).await;
}

#[tokio::test]
async fn stripe_mode_change_cancel_and_resume_call_stripes_subscription_api() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let (tenant, key, _) = env.tenant("acme").await;
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/change",
        json!({ "plan": "team" }),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("no_subscription"))
    );
    stripe_subscription_row(&env, tenant).await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_keel1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "price_keel_starter_monthly",
            "month",
            false,
            "active",
        )))
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_keel1"))
        .respond_with(|req: &wiremock::Request| {
            let body = percent_decode(&String::from_utf8_lossy(&req.body));
            let sub = if body.contains("cancel_at_period_end=true") {
                subscription("price_keel_starter_monthly", "month", true, "active")
            } else {
                subscription("price_keel_team_monthly", "month", false, "active")
            };
            ResponseTemplate::new(200).set_body_json(sub)
        })
        .mount(&stripe)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_keel1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "price_keel_starter_monthly",
            "month",
            false,
            "canceled",
        )))
        .mount(&stripe)
        .await;

    // Change: the plan item moves to the new price, prorated; Keel's copy waits for the webhook.
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/change",
        json!({ "plan": "team" }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["mode"].as_str(),
            answer["changed"].as_bool(),
            answer["applied"].as_bool()
        ),
        (Some("stripe"), Some(true), Some(false))
    );
    assert_eq!(
        answer["stripe_subscription"]["prices"],
        json!(["price_keel_team_monthly"])
    );
    let calls = sent(&stripe).await;
    let update = calls.iter().find(|s| s.method == "POST").unwrap();
    for want in [
        "items[0][id]=si_keel1",
        "items[0][price]=price_keel_team_monthly",
        "proration_behavior=create_prorations",
    ] {
        assert!(has(update, want), "{want} not in {update:?}");
    }
    assert!(update.key.as_deref().unwrap().starts_with("keel-change-"));
    let row = keel_models::billing::subscriptions::get(&env.keel.pool, tenant)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.plan_id, "starter",
        "Stripe's event updates the local copy"
    );

    // Asking for the price the item already has changes nothing in Stripe.
    let before = sent(&stripe).await.len();
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/change",
        json!({ "plan": "starter", "interval": "month" }),
    )
    .await;
    assert_eq!(
        (status, answer["changed"].as_bool()),
        (200, Some(false)),
        "{answer}"
    );
    let calls = sent(&stripe).await;
    assert_eq!(calls.len(), before + 1);
    assert_eq!(calls.last().unwrap().method, "GET");

    // Cancel at the period's end, then now.
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": true }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stripe_subscription"]["cancel_at_period_end"], true);
    let calls = sent(&stripe).await;
    let cancel = calls.last().unwrap();
    assert_eq!(
        (cancel.method.as_str(), cancel.path.as_str()),
        ("POST", "/v1/subscriptions/sub_keel1")
    );
    assert_eq!(cancel.fields, vec!["cancel_at_period_end=true".to_string()]);
    assert!(cancel.key.as_deref().unwrap().starts_with("keel-cancel-"));

    // Resume: refused while Keel's copy shows no scheduled cancellation; once Stripe's event
    // has said so, it calls the cancellation off in Stripe.
    let (status, answer) = post(&env, &key, "/api/billing/subscription/resume", json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("not_cancelling")),
        "{answer}"
    );
    sqlx::query(
        "UPDATE billing_subscriptions SET cancel_at_period_end = true WHERE tenant_id = $1",
    )
    .bind(tenant)
    .execute(&env.keel.pool)
    .await
    .unwrap();
    let (status, answer) = post(&env, &key, "/api/billing/subscription/resume", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mode"], "stripe");
    let calls = sent(&stripe).await;
    let resume = calls.last().unwrap();
    assert_eq!(
        (resume.method.as_str(), resume.path.as_str()),
        ("POST", "/v1/subscriptions/sub_keel1")
    );
    assert_eq!(
        resume.fields,
        vec!["cancel_at_period_end=false".to_string()]
    );
    assert!(resume.key.as_deref().unwrap().starts_with("keel-resume-"));
    let (status, answer) = post(
        &env,
        &key,
        "/api/billing/subscription/cancel",
        json!({ "at_period_end": false }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stripe_subscription"]["status"], "canceled");
    let calls = sent(&stripe).await;
    let delete = calls.last().unwrap();
    assert_eq!(
        (delete.method.as_str(), delete.path.as_str()),
        ("DELETE", "/v1/subscriptions/sub_keel1")
    );
    assert!(delete.key.as_deref().unwrap().starts_with("keel-cancel-"));
}

#[tokio::test]
async fn a_closed_period_with_overage_is_reported_as_one_billing_meter_event() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let (tenant, _, _) = env.tenant("acme").await;
    let mut conn = env.keel.pool.acquire().await.unwrap();
    keel_models::billing::subscriptions::link_customer(&mut conn, tenant, "cus_meter1")
        .await
        .unwrap();
    let end = Utc::now() - chrono::Duration::hours(1);
    let end = chrono::DateTime::from_timestamp(end.timestamp(), 0).unwrap();
    let start = end - chrono::Duration::days(30);
    sqlx::query(
        "INSERT INTO usage_periods (tenant_id, period_start, period_end, plan_id, included_units,
                                    used_included, used_overage)
         VALUES ($1, $2, $3, 'team', 1000, 1000, 42)",
    )
    .bind(tenant)
    .bind(start)
    .bind(end)
    .execute(&mut *conn)
    .await
    .unwrap();
    let close = || keel_jobs::kinds::billing_tasks::close_period::ClosePeriod {
        tenant_id: tenant,
        period_start: start,
    };
    let ctx = keel_jobs::JobContext {
        job_id: Uuid::now_v7(),
        tenant_id: None,
        attempt: 1,
        max_attempts: 10,
        cancel: tokio_util::sync::CancellationToken::new(),
        services: env.keel.services.clone(),
    };
    let closed = keel_jobs::Job::run(close(), ctx.clone()).await.unwrap();
    let report: Uuid = closed["usage_report_job_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let again = keel_jobs::Job::run(close(), ctx).await.unwrap();
    assert_eq!(again["closed"], false);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'stripe.report_usage'")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "one report per tenant-period");

    let identifier = format!(
        "{tenant}:{}",
        start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "billing.meter_event", "created": now(),
            "event_name": "keel_test_overage", "identifier": identifier, "livemode": false,
            "payload": { "stripe_customer_id": "cus_meter1", "value": "42" },
            "timestamp": end.timestamp()
        })))
        .mount(&stripe)
        .await;
    env.spawn_worker(|_| {});
    let done = env
        .wait_status(report, JobStatus::Succeeded, secs(20))
        .await;
    assert_eq!(done.result.unwrap()["identifier"], identifier.as_str());
    let calls = sent(&stripe).await;
    let meter: Vec<_> = calls
        .iter()
        .filter(|s| s.path == "/v1/billing/meter_events")
        .collect();
    assert_eq!(meter.len(), 1);
    for want in [
        "event_name=keel_test_overage".to_string(),
        "payload[stripe_customer_id]=cus_meter1".into(),
        "payload[value]=42".into(),
        format!("identifier={identifier}"),
        format!("timestamp={}", end.timestamp()),
    ] {
        assert!(has(meter[0], &want), "{want} not in {:?}", meter[0]);
    }
    assert_eq!(
        meter[0].key.as_deref(),
        Some(format!("keel-usage-{identifier}").as_str())
    );
}

#[tokio::test]
async fn the_daily_reconciliation_fixes_a_stale_copy_and_records_each_discrepancy() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let (tenant, _, _) = env.tenant("acme").await;
    stripe_subscription_row(&env, tenant).await;
    // Keel missed the renewal, the upgrade to Team, the failed payment and the cancel request.
    sqlx::query(
        "UPDATE billing_subscriptions SET current_period_start = current_period_start - interval '30 days',
                current_period_end = current_period_end - interval '30 days' WHERE tenant_id = $1",
    )
    .bind(tenant)
    .execute(&env.keel.pool)
    .await
    .unwrap();
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_keel1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            "price_keel_team_monthly",
            "month",
            true,
            "past_due",
        )))
        .mount(&stripe)
        .await;
    let ctx = keel_jobs::JobContext {
        job_id: Uuid::now_v7(),
        tenant_id: None,
        attempt: 1,
        max_attempts: 10,
        cancel: tokio_util::sync::CancellationToken::new(),
        services: env.keel.services.clone(),
    };
    let run = || keel_jobs::kinds::stripe::reconcile::Reconcile { as_of: Utc::now() };
    let result = keel_jobs::Job::run(run(), ctx.clone()).await.unwrap();
    assert_eq!(result["checked"], 1, "{result}");
    let row = keel_models::billing::subscriptions::get(&env.keel.pool, tenant)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            row.plan_id.as_str(),
            row.status.as_str(),
            row.cancel_at_period_end
        ),
        ("team", "past_due", true)
    );
    let start = sqlx::query_scalar::<_, i64>(
        "SELECT extract(epoch FROM current_period_start)::bigint FROM billing_subscriptions",
    )
    .fetch_one(&env.keel.pool)
    .await
    .unwrap();
    assert!(
        (start - (now() - 86_400)).abs() <= 5,
        "the period as Stripe has it"
    );
    let found = keel_models::billing::reconcile::for_tenant(&env.keel.pool, tenant)
        .await
        .unwrap();
    let mut fields: Vec<_> = found.iter().map(|d| d.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "cancel_at_period_end",
            "current_period_end",
            "current_period_start",
            "plan",
            "status"
        ]
    );
    let plan = found.iter().find(|d| d.field == "plan").unwrap();
    assert_eq!(
        (&plan.local_value, &plan.stripe_value),
        (&json!("starter"), &json!("team"))
    );

    // In step now: a second run finds nothing to fix.
    let again = keel_jobs::Job::run(run(), ctx).await.unwrap();
    assert_eq!(again["fixed"], json!([]), "{again}");
    assert_eq!(
        keel_models::billing::reconcile::for_tenant(&env.keel.pool, tenant)
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn in_local_mode_no_stripe_job_is_enqueued() {
    let env = TestEnv::new().await;
    ops::install(None, None);
    let (tenant, _, _) = env.tenant("acme").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind LIKE 'stripe.%'")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let ctx = keel_jobs::JobContext {
        job_id: Uuid::now_v7(),
        tenant_id: None,
        attempt: 1,
        max_attempts: 10,
        cancel: tokio_util::sync::CancellationToken::new(),
        services: env.keel.services.clone(),
    };
    let skipped = keel_jobs::Job::run(
        keel_jobs::kinds::stripe::reconcile::Reconcile { as_of: Utc::now() },
        ctx,
    )
    .await
    .unwrap();
    assert!(skipped["skipped"].is_string(), "{skipped}");
    assert!(linked(&env, tenant).await.is_none());
}
