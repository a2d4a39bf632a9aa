//! Stripe webhooks stored and processed by the `stripe.event` job: unknown types, Redis down,
//! subscriptions, credit packs, redeliveries, concurrent deliveries, events out of order.

use super::*;

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
