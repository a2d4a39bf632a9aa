//! The tenant billing API in local mode (no Stripe key): checkout, change, cancel, credit
//! packs, bad input, and the admin stats.

use super::*;

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
    let (status, body) = checkout(&env, &key, trial).await;
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
    let (status, body) = checkout(&env, &key, plan_checkout("team", "month")).await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("already_subscribed")),
        "{body}"
    );

    let (status, body) =
        change_plan(&env, &key, json!({ "plan": "team", "interval": "year" })).await;
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
    let (_, body) = change_plan(&env, &key, json!({ "plan": "team" })).await;
    assert_eq!(body["changed"], false, "{body}");

    let resume = || post(&env, &key, "/api/billing/subscription/resume", json!({}));
    let (status, body) = resume().await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("not_cancelling")),
        "{body}"
    );
    let (status, body) = cancel_plan(&env, &key, json!({ "at_period_end": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        body["plan"], "team",
        "still on team until the period ends: {body}"
    );
    // Asked again, the cancellation keeps its date; resumed, the subscription renews as before
    // (there had been no way back).
    let canceled_at = body["subscription"]["canceled_at"].clone();
    assert!(canceled_at.is_string(), "{body}");
    let (_, body) = cancel_plan(&env, &key, json!({ "at_period_end": true })).await;
    assert_eq!(body["subscription"]["canceled_at"], canceled_at, "{body}");
    let (status, body) = resume().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["subscription"]["cancel_at_period_end"], false,
        "{body}"
    );
    assert!(body["subscription"]["canceled_at"].is_null(), "{body}");
    assert_eq!(body["plan"], "team");
    let (status, body) = cancel_plan(&env, &key, json!({ "at_period_end": true })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = cancel_plan(&env, &key, json!({ "at_period_end": false })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["plan"].as_str(),
            body["subscription"]["status"].as_str()
        ),
        (Some("free"), Some("canceled"))
    );
    let (status, body) = cancel_plan(&env, &key, json!({ "at_period_end": false })).await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("no_subscription")),
        "{body}"
    );

    // After canceling, a new paid checkout works and is invoiced at the plan price.
    let (status, body) = checkout(&env, &key, plan_checkout("starter", "year")).await;
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

/// Cancelling and checking out again with a trial had granted a new trial every time.
#[tokio::test]
async fn local_mode_grants_a_tenant_one_trial() {
    let env = env().await;
    let (_, key, _) = env.tenant("acme").await;
    let mut trial = plan_checkout("starter", "month");
    trial["trial_days"] = json!(14);
    let (status, body) = checkout(&env, &key, trial.clone()).await;
    assert_eq!(
        (status, body["status"].as_str(), body["trial_days"].as_u64()),
        (200, Some("trialing"), Some(14)),
        "{body}"
    );
    let (status, body) = cancel_plan(&env, &key, json!({ "at_period_end": false })).await;
    assert_eq!(status, 200, "{body}");

    // The same ask again: the subscription starts paid, and says no trial was granted.
    let (status, body) = checkout(&env, &key, trial.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["trial_days"].as_u64()),
        (Some("active"), Some(0)),
        "{body}"
    );
    assert!(body["subscription"]["trial_end"].is_null(), "{body}");
    let (_, body) = get(&env, Some(&key), "/api/billing/invoices").await;
    assert_eq!(body["invoices"][0]["amount_paid"], 2900, "{body}");
    assert_eq!(
        count(&env, "SELECT count(*) FROM billing_trials").await,
        1,
        "one trial recorded"
    );

    // Another tenant still gets its own.
    let (_, other, _) = env.tenant("globex").await;
    let (_, body) = checkout(&env, &other, trial).await;
    assert_eq!(
        (body["status"].as_str(), body["trial_days"].as_u64()),
        (Some("trialing"), Some(14)),
        "{body}"
    );
}

#[tokio::test]
async fn local_mode_credit_packs_grant_units_until_they_expire() {
    let env = env().await;
    let (_, key, _) = env.tenant("acme").await;
    let body = json!({ "credit_pack": "pack_250", "success_url": URLS.0, "cancel_url": URLS.1 });
    let (status, answer) = checkout(&env, &key, body).await;
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
        let (status, answer) = checkout(&env, &key, body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{body} → {answer} should say {says:?}"
        );
    }
    let (status, answer) = change_plan(&env, &key, json!({ "plan": "team" })).await;
    assert_eq!(
        (status, code(&answer)),
        (409, Some("no_subscription")),
        "{answer}"
    );
    let (status, _) = cancel_plan(&env, &key, json!({ "at_period_end": "yes" })).await;
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
        checkout(&env, &a, plan_checkout("starter", "month"))
            .await
            .0,
        200
    );
    assert_eq!(
        checkout(&env, &b, plan_checkout("team", "year")).await.0,
        200
    );
    assert_eq!(
        checkout(&env, &c, plan_checkout("starter", "month"))
            .await
            .0,
        200
    );
    assert_eq!(
        cancel_plan(&env, &c, json!({ "at_period_end": false }))
            .await
            .0,
        200
    );
    let pack = json!({ "credit_pack": "pack_50", "success_url": URLS.0, "cancel_url": URLS.1 });
    assert_eq!(checkout(&env, &a, pack).await.0, 200);

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
