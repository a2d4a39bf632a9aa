//! Stripe mode, against a fake Stripe (wiremock) answering with Stripe's documented objects.

use super::*;

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

/// The form fields of each Checkout session of a plan the fake Stripe was asked for (a worker
/// also creates the tenant's customer).
async fn sessions(stripe: &MockServer) -> Vec<Vec<String>> {
    let subscription = "mode=subscription".to_string();
    let sent = received(stripe).await.into_iter().map(|(fields, _)| fields);
    sent.filter(|fields| fields.contains(&subscription))
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
    let (status, answer) = checkout(&env, &key, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mode"], "stripe");
    assert_eq!(answer["applied"], false);
    assert_eq!(
        answer["checkout_url"],
        "https://checkout.stripe.com/c/pay/cs_test_a1b2c3"
    );
    assert_eq!(answer["session_id"], "cs_test_a1b2c3");
    // A client retry sends the same idempotency key.
    assert_eq!(checkout(&env, &key, body).await.0, 200);
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
    assert_eq!(checkout(&env, &key, pack).await.0, 200);
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
    let (status, answer) = cancel_plan(&env, &key, json!({ "at_period_end": true })).await;
    assert_eq!(
        (status, code(&answer)),
        (409, Some("no_subscription")),
        "{answer}"
    );
}

/// A trial is the tenant's once: after Stripe reported a trialing subscription, the next
/// Checkout session (after cancelling) carries no `trial_period_days`.
#[tokio::test]
async fn a_tenant_that_had_a_trial_is_offered_none_at_its_next_checkout() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(checkout_session_response("subscription", tenant)),
        )
        .mount(&stripe)
        .await;
    let mut body = plan_checkout("starter", "month");
    body["trial_days"] = json!(14);
    let trial_field = |fields: &[String]| {
        fields
            .iter()
            .find(|f| f.starts_with("subscription_data[trial_period_days]"))
            .cloned()
    };

    let (status, answer) = checkout(&env, &key, body.clone()).await;
    assert_eq!(
        (status, answer["trial_days"].as_u64()),
        (200, Some(14)),
        "{answer}"
    );
    let sent = sessions(&stripe).await;
    assert_eq!(
        trial_field(&sent[0]).as_deref(),
        Some("subscription_data[trial_period_days]=14")
    );

    // Stripe reports the trial, then the cancellation.
    let t = now() - 100;
    let mut sub = subscription(
        "sub_trial",
        "cus_trial",
        tenant,
        "price_keel_starter_monthly",
        "trialing",
        t,
    );
    sub["trial_start"] = json!(t);
    sub["trial_end"] = json!(t + 14 * 86_400);
    deliver(
        &env,
        &event("evt_t1", "customer.subscription.created", t, sub.clone()),
    )
    .await;
    processed(&env, "evt_t1", "processed").await;
    sub["status"] = json!("canceled");
    sub["canceled_at"] = json!(t + 1);
    sub["ended_at"] = json!(t + 1);
    deliver(
        &env,
        &event("evt_t2", "customer.subscription.deleted", t + 1, sub),
    )
    .await;
    processed(&env, "evt_t2", "processed").await;
    let (_, now_sub) = get(&env, Some(&key), "/api/billing/subscription").await;
    assert_eq!(now_sub["plan"], "free", "{now_sub}");

    let (status, answer) = checkout(&env, &key, body).await;
    assert_eq!(
        (status, answer["trial_days"].as_u64()),
        (200, Some(0)),
        "{answer}"
    );
    let sent = sessions(&stripe).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(trial_field(&sent[1]), None, "{:?}", sent[1]);
    assert!(sent[1].contains(&"line_items[0][price]=price_keel_starter_monthly".to_string()));
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
    let (status, answer) = checkout(&env, &key, plan_checkout("team", "month")).await;
    assert_eq!(
        (status, code(&answer)),
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
    let (status, answer) = checkout(&env, &key, plan_checkout("team", "month")).await;
    assert_eq!(status, 503, "{answer}");
}

#[tokio::test]
async fn the_billing_portal_needs_stripe_mode_and_a_stripe_customer() {
    let local = env().await;
    let (_, key, _) = local.tenant("acme").await;
    let body = json!({ "return_url": URLS.0 });
    let (status, answer) = post(&local, &key, "/api/billing/portal", body.clone()).await;
    assert_eq!(
        (status, code(&answer)),
        (409, Some("local_mode")),
        "{answer}"
    );

    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    env.spawn_worker(|_| {});
    let (tenant, key, _) = env.tenant("acme").await;
    let (status, answer) = post(&env, &key, "/api/billing/portal", body.clone()).await;
    assert_eq!(
        (status, code(&answer)),
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

/// `keel tenant create` in Stripe mode queues the tenant's `stripe.sync_customer` job in the
/// tenant's transaction, as `POST /api/tenants` does; it had made tenants without one.
#[tokio::test]
async fn the_cli_creates_a_tenant_with_its_stripe_customer_job() {
    let stripe = MockServer::start().await;
    let env = stripe_env(&stripe).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["tenant", "create", "--name", "cli-co"])
        .envs(env.child_env())
        .env("KEEL_STRIPE_SECRET_KEY", SK)
        .env("KEEL_STRIPE_API_BASE", stripe.uri())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenant: Uuid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tenant_id:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (jobs,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM jobs WHERE kind = 'stripe.sync_customer' AND args->>'tenant_id' = $1",
    )
    .bind(tenant.to_string())
    .fetch_one(&env.keel.pool)
    .await
    .unwrap();
    assert_eq!(jobs, 1);
}
