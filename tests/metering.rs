mod support;

// Metering, black-box: units reserved at submit in the job's own transaction, consumed when the
// job succeeds, released when it is cancelled or dies (credits go back), exactly once even when
// the worker is SIGKILLed mid-job; per-kind limits and the included allowance answer 429
// `quota_exceeded`; credits cover usage beyond the allowance, oldest expiry first; an unpaid or
// long past-due subscription answers 402, an ended one falls back to free; request rates answer 429 with `Retry-After` and
// `RateLimit-*` headers, counted in Redis across API processes.

use std::time::Duration;

use chrono::{Datelike, Utc};
use keel_models::billing::ledger::{CreditGrant, Purchase};
use keel_models::billing::subscriptions::SubscriptionState;
use keel_models::job::JobStatus;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// The shipped catalog with test-sized numbers: the free plan includes 30 units, allows 4
/// sentiment jobs a period, 5 writes and 8 reads a minute; `webhook.deliver` costs 2 units.
fn test_catalog() -> String {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/plans.toml")).unwrap();
    let free = shipped
        .find("[[plans]]\nid = \"free\"")
        .expect("free plan first");
    let end = free + shipped[free..].find("\n\n").unwrap();
    let test_free = r#"[[plans]]
id = "free"
name = "Free"
free = true
monthly_price = 0
annual_price = 0
included_units = 30
overage = "hard_cap"
rate_limit = { per_minute = 5, per_hour = 500 }
read_rate_limit = { per_minute = 8, per_hour = 500 }
kind_limits = { "sentiment.score" = 4 }"#;
    let body = format!("{}{}{}", &shipped[..free], test_free, &shipped[end..]);
    let body = body.replacen(
        "[[plans]]",
        "[unit_weights.\"webhook.deliver\"]\nunits = 2\n\n[[plans]]",
        1,
    );
    let path = std::env::temp_dir().join(format!("keel-test-plans-{}.toml", Uuid::now_v7()));
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

async fn metered_env() -> TestEnv {
    let plans = test_catalog();
    TestEnv::with(|s| {
        s.metering = true;
        s.plans_file = Some(plans);
    })
    .await
}

/// A sentiment job of `n` texts (1 unit per 100 texts).
fn sentiment(n: usize) -> Value {
    json!({ "kind": "sentiment.score", "args": { "texts": vec!["revenue fell"; n] } })
}

async fn usage(env: &TestEnv, key: &str) -> Value {
    let (status, body) = env
        .call(reqwest::Method::GET, "/api/usage", key, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn kind<'a>(usage: &'a Value, kind: &str) -> &'a Value {
    usage["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap()
}

#[tokio::test]
async fn units_are_reserved_at_submit_and_the_allowance_is_a_hard_cap() {
    let env = metered_env().await;
    let (_, key, _) = env.tenant("acme").await;
    // 3 × 10 units use the 30 included units up (reserved: no worker runs them).
    for _ in 0..3 {
        env.submit_ok(&key, sentiment(1000)).await;
    }
    let u = usage(&env, &key).await;
    assert_eq!(u["reserved"], 30, "{u}");
    assert_eq!(u["remaining_included"], 0, "{u}");
    assert_eq!(kind(&u, "sentiment.score")["reserved"], 3);

    let (status, body) = env.submit(&key, sentiment(1)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    let d = &body["error"]["details"];
    assert_eq!(d["limit"], 30);
    assert_eq!(d["used"], 30);
    let now = Utc::now();
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    assert_eq!(
        d["resets_at"],
        format!("{y:04}-{m:02}-01T00:00:00Z"),
        "{body}"
    );
    assert_eq!(env.count_jobs().await, 3, "a refused job is not stored");

    // Unmetered kinds are not affected.
    env.submit_ok(&key, noop(1)).await;
}

#[tokio::test]
async fn a_per_kind_limit_refuses_the_next_job_of_that_kind() {
    let env = metered_env().await;
    let (_, key, _) = env.tenant("acme").await;
    for _ in 0..4 {
        env.submit_ok(&key, sentiment(1)).await;
    }
    let (status, body) = env.submit(&key, sentiment(1)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["details"]["kind"], "sentiment.score");
    assert_eq!(body["error"]["details"]["limit"], 4);
    assert_eq!(
        kind(&usage(&env, &key).await, "sentiment.score")["remaining"],
        0
    );
}

#[tokio::test]
async fn success_consumes_and_cancel_releases_exactly_once() {
    let env = metered_env().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let a = env.submit_ok(&key, sentiment(250)).await; // 3 units
    let b = env.submit_ok(&key, sentiment(100)).await; // 1 unit
    let c = env.submit_ok(&key, sentiment(500)).await; // 5 units
    assert_eq!(
        env.post(&key, &format!("/api/jobs/{c}/cancel"))
            .await
            .status(),
        200
    );
    env.spawn_worker(|_| {});
    for id in [a, b] {
        env.wait_status(id, JobStatus::Succeeded, secs(20)).await;
    }
    // Settlement commits with the job's final status; give the success batch a moment.
    let u = wait_usage(&env, &key, |u| u["reserved"] == 0).await;
    assert_eq!(u["used"], 4, "{u}");
    assert_eq!(u["from_included"], 4);
    assert_eq!(kind(&u, "sentiment.score")["used"], 2);
    let pool = &env.keel.pool;
    assert_eq!(
        keel_models::metering::reservation_state(pool, a)
            .await
            .unwrap()
            .as_deref(),
        Some("consumed")
    );
    assert_eq!(
        keel_models::metering::reservation_state(pool, c)
            .await
            .unwrap()
            .as_deref(),
        Some("released")
    );
    // A finished job finished again (a duplicate delivery's late success) changes nothing.
    let before = keel_models::metering::periods(pool, tenant, 1)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    keel_models::job::retry(&mut conn, tenant, a).await.unwrap(); // not retryable: succeeded
    let after = keel_models::metering::periods(pool, tenant, 1)
        .await
        .unwrap();
    assert_eq!(before[0].used_included, after[0].used_included);
}

/// A dead job's units were released; `retry` runs it again, so it reserves them again, under
/// the quota a submit meets. Before, a retry reserved nothing and its success was counted past
/// the allowance: a tenant at its hard cap could still run jobs by retrying dead ones.
#[tokio::test]
async fn a_retried_dead_job_reserves_its_units_again_within_the_quota() {
    let env = metered_env().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    // Refuses the first delivery (fatal: the job dies), accepts the next.
    let receiver = receiver_answering_once(wiremock::ResponseTemplate::new(400)).await;
    let hook = |run_at: Option<chrono::DateTime<Utc>>| {
        let mut body = webhook(&receiver.uri(), json!({ "a": 1 }));
        if let Some(at) = run_at {
            body["run_at"] = json!(at.to_rfc3339());
        }
        body
    };
    let dead = env.submit_ok(&key, hook(None)).await; // 2 units
    env.wait_status(dead, JobStatus::Dead, secs(20)).await;
    let u = wait_usage(&env, &key, |u| u["reserved"] == 0).await;
    assert_eq!(u["used"], 0, "{u}");

    // The free plan's 30 units, all reserved by jobs due in an hour.
    let later = Some(Utc::now() + chrono::Duration::hours(1));
    let mut waiting = Vec::new();
    for _ in 0..15 {
        waiting.push(env.submit_ok(&key, hook(later)).await);
    }
    let (status, body) = read(env.post(&key, &format!("/api/jobs/{dead}/retry")).await).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert_eq!(
        env.job(dead).await.status,
        JobStatus::Dead,
        "a refused retry changes nothing"
    );
    assert_eq!(usage(&env, &key).await["reserved"], 30);

    // Room for it again: the retry reserves its 2 units, and its success consumes them.
    let resp = env
        .post(&key, &format!("/api/jobs/{}/cancel", waiting[0]))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = env.post(&key, &format!("/api/jobs/{dead}/retry")).await;
    assert_eq!(resp.status(), 200);
    // Its 2 units are held: still reserved, or already used if the worker was quicker than
    // this read (the retry is pushed at once; reading `reserved` alone raced with it).
    let u = usage(&env, &key).await;
    assert_eq!(
        u["reserved"].as_i64().unwrap() + u["used"].as_i64().unwrap(),
        30,
        "{u}"
    );
    env.wait_status(dead, JobStatus::Succeeded, secs(20)).await;
    let u = wait_usage(&env, &key, |u| u["reserved"] == 28).await;
    assert_eq!(u["used"], 2, "{u}");
    assert_eq!(u["remaining_included"], 0, "{u}");
}

async fn wait_usage(env: &TestEnv, key: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + secs(20);
    loop {
        let u = usage(env, key).await;
        if pred(&u) {
            return u;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage never matched: {u}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn grant(env: &TestEnv, tenant: Uuid, units: i64, days: i64) -> Uuid {
    let mut tx = env.keel.pool.begin().await.unwrap();
    let now = Utc::now();
    let purchase = keel_models::billing::ledger::insert_purchase(
        &mut tx,
        &Purchase {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            kind: "credit_pack".into(),
            item_id: "pack_50".into(),
            amount: 900,
            currency: "usd".into(),
            source: "local".into(),
            stripe_checkout_session_id: Some(format!("cs_test_{}", Uuid::now_v7().simple())),
            created_at: now,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let id = Uuid::now_v7();
    keel_models::billing::ledger::insert_credit_grant(
        &mut tx,
        &CreditGrant {
            id,
            tenant_id: tenant,
            purchase_id: purchase.id,
            pack_id: "pack_50".into(),
            units,
            remaining: units,
            granted_at: now,
            expires_at: now + chrono::Duration::days(days),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn credits_cover_usage_past_the_allowance_oldest_expiry_first_and_return_on_release() {
    let env = metered_env().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let late = grant(&env, tenant, 50, 90).await;
    let soon = grant(&env, tenant, 5, 10).await;
    for _ in 0..3 {
        env.submit_ok(&key, sentiment(1000)).await; // the 30 included units
    }
    let over = env.submit_ok(&key, sentiment(800)).await; // 8 units: 5 soon + 3 late
    let u = usage(&env, &key).await;
    assert_eq!(u["credits"]["available"], 47, "{u}");
    let grants = keel_models::billing::ledger::list_credit_grants(&env.keel.pool, tenant, 10)
        .await
        .unwrap();
    let left = |id: Uuid| grants.iter().find(|g| g.id == id).unwrap().remaining;
    assert_eq!((left(soon), left(late)), (0, 47));

    assert_eq!(
        env.post(&key, &format!("/api/jobs/{over}/cancel"))
            .await
            .status(),
        200
    );
    let u = usage(&env, &key).await;
    assert_eq!(
        u["credits"]["available"], 55,
        "released credits go back: {u}"
    );
}

async fn subscribe(env: &TestEnv, tenant: Uuid, status: &str) {
    subscriptions::store(env, &subscriptions::team(tenant, status)).await;
}

/// Money owed stops metered jobs (402); a subscription that simply ended puts the tenant back
/// on the free plan, as cancelling promises. Before, a canceled tenant got 402 for every
/// metered job and for its usage, where a tenant that never subscribed had the free allowance.
#[tokio::test]
async fn unpaid_or_long_past_due_subscriptions_answer_402_and_ended_ones_fall_back_to_free() {
    let env = metered_env().await;
    let (tenant, key, _) = env.tenant("acme").await;
    subscribe(&env, tenant, "active").await;
    env.submit_ok(&key, sentiment(1)).await;
    let u = usage(&env, &key).await;
    assert_eq!(u["plan"], "team");
    assert_eq!(u["included"], 2500);

    for ended in ["canceled", "incomplete_expired"] {
        subscribe(&env, tenant, ended).await;
        env.submit_ok(&key, sentiment(1)).await;
        let u = usage(&env, &key).await;
        assert_eq!(u["plan"], "free", "{ended}: {u}");
    }

    subscribe(&env, tenant, "unpaid").await;
    let (status, body) = env.submit(&key, sentiment(1)).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], "payment_required");

    for owing in ["past_due", "canceled"] {
        subscribe(&env, tenant, owing).await;
        // No failed payment on record: within grace.
        env.submit_ok(&key, sentiment(1)).await;
    }
    subscribe(&env, tenant, "past_due").await;
    let mut conn = env.keel.pool.acquire().await.unwrap();
    for (id, days) in [("in_test_recent", 2), ("in_test_old", 8)] {
        let at = Utc::now() - chrono::Duration::days(days);
        keel_models::billing::ledger::upsert_invoice(
            &mut conn,
            &keel_models::billing::ledger::Invoice {
                id: id.into(),
                tenant_id: tenant,
                stripe_subscription_id: None,
                number: None,
                status: "open".into(),
                amount_due: 9900,
                amount_paid: 0,
                currency: "usd".into(),
                description: None,
                period_start: None,
                period_end: None,
                hosted_invoice_url: None,
                payment_failed_at: Some(at),
                paid_at: None,
                created_at: at,
            },
        )
        .await
        .unwrap();
        let (status, body) = env.submit(&key, sentiment(1)).await;
        let want = if days > 7 { 402 } else { 202 };
        assert_eq!(status, want, "failed {days} days ago: {body}");
    }
    // Ended with that payment still failing: owed, so not the free plan either.
    subscribe(&env, tenant, "canceled").await;
    let (status, body) = env.submit(&key, sentiment(1)).await;
    assert_eq!(status, 402, "{body}");
    // Unmetered kinds still run (nothing is billed for them).
    env.submit_ok(&key, noop(1)).await;
}

#[tokio::test]
async fn request_rates_are_limited_across_api_processes() {
    let plans = test_catalog();
    let env = TestEnv::with(|s| {
        s.rate_limits = true;
        s.plans_file = Some(plans);
    })
    .await;
    let (_, key, _) = env.tenant("acme").await;
    // A second API process on the same database and Redis prefix.
    let second = keel::startup::Keel::connect(env.keel.settings.clone(), false)
        .await
        .unwrap();
    let api = second.api().await.unwrap();
    let other = format!("http://{}", api.local_addr());
    tokio::spawn(api.run_until_stopped(env.shutdown.child_token()));

    let get = |base: String| {
        let http = env.http.clone();
        let key = key.clone();
        async move {
            http.get(format!("{base}/api/tenant"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        }
    };
    let submit = |base: String| {
        let http = env.http.clone();
        let key = key.clone();
        async move {
            http.post(format!("{base}/api/jobs"))
                .bearer_auth(key)
                .json(&noop(1))
                .send()
                .await
                .unwrap()
        }
    };
    let base = |i: usize| {
        if i.is_multiple_of(2) {
            env.base.clone()
        } else {
            other.clone()
        }
    };
    // Five writes a minute, counted across both processes.
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(submit(base(i)).await.status().as_u16());
    }
    assert_eq!(statuses, [202; 5]);
    let refused = submit(other.clone()).await;
    assert_eq!(refused.status(), 429);
    let h = refused.headers();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["ratelimit-limit"], "5");
    assert_eq!(h["ratelimit-remaining"], "0");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["details"]["counts"], "write");
    // Reads are counted apart: the spent write budget does not stop polling, and reads have
    // their own limit (eight a minute here), also across processes.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(get(base(i)).await.status().as_u16());
    }
    assert_eq!(statuses, [200; 8]);
    let refused = get(env.base.clone()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["ratelimit-limit"], "8");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["details"]["counts"], "read", "{body}");
    // Another tenant has its own budget.
    let (_, other_key, _) = env.tenant("other").await;
    let resp = env
        .http
        .get(env.url("/api/tenant"))
        .bearer_auth(other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_still_meters_each_job_exactly_once() {
    let plans = test_catalog();
    let mut env = TestEnv::with(|s| {
        s.metering = true;
        s.plans_file = Some(plans);
    })
    .await;
    let (tenant, key, _) = env.tenant("acme").await;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_delay(secs(3)))
        .mount(&server)
        .await;
    let a = env.spawn_worker_process(&[]);
    let hook = format!("{}/hook", server.uri());
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(env.submit_ok(&key, webhook(&hook, json!({ "n": n }))).await);
    }
    env.wait_for(ids[0], secs(20), |j| j.status == JobStatus::Running)
        .await;
    env.signal(a, "KILL");
    env.wait_child(a, secs(5)).await;
    let _b = env.spawn_worker_process(&[]);
    for id in &ids {
        env.wait_status(*id, JobStatus::Succeeded, secs(30)).await;
    }
    assert_eq!(
        env.job(ids[0]).await.attempt,
        2,
        "the first attempt died with its worker"
    );
    let u = wait_usage(&env, &key, |u| u["reserved"] == 0).await;
    assert_eq!(u["used"], 6, "3 jobs × 2 units, once each: {u}");
    assert_eq!(kind(&u, "webhook.deliver")["used"], 3);
    let periods = keel_models::metering::periods(&env.keel.pool, tenant, 5)
        .await
        .unwrap();
    assert_eq!(periods.len(), 1);
    assert_eq!(periods[0].used_included, 6);
}

#[tokio::test]
async fn a_priority_lane_tenants_job_overtakes_the_backlog() {
    let env = TestEnv::new().await;
    let (_, normal, _) = env.tenant("normal").await;
    let (vip, key, _) = env.tenant("vip").await;
    subscribe(&env, vip, "active").await;
    let mut tx = env.keel.pool.begin().await.unwrap();
    let mut sub: SubscriptionState = keel_models::billing::subscriptions::lock(&mut tx, vip)
        .await
        .unwrap()
        .unwrap()
        .into();
    sub.add_ons = vec!["priority_lane".into()];
    keel_models::billing::subscriptions::upsert(&mut tx, &sub)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let backlog: Vec<Uuid> = {
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(env.submit_ok(&normal, noop(i)).await);
        }
        ids
    };
    let fast = env.submit_ok(&key, noop(99)).await;
    assert_eq!(env.job(fast).await.queue, "default.priority");
    assert_eq!(env.job(backlog[0]).await.queue, "default");

    env.spawn_worker(|c| c.concurrency = 1);
    let fast = env.wait_status(fast, JobStatus::Succeeded, secs(20)).await;
    let mut before = 0;
    for id in &backlog {
        let job = env.wait_status(*id, JobStatus::Succeeded, secs(20)).await;
        if job.finished_at < fast.finished_at {
            before += 1;
        }
    }
    assert!(
        before <= 2,
        "{before} backlog jobs finished before the priority one"
    );
}

/// A batch reserves every item's units in its one transaction: one item over a quota refuses
/// the batch, and nothing of it is stored or reserved.
#[tokio::test]
async fn a_batch_over_a_quota_is_refused_whole() {
    let env = metered_env().await;
    let (_, key, _) = env.tenant("acme").await;
    let batch = |n: usize| {
        let jobs: Vec<Value> = (0..n).map(|_| sentiment(1)).collect();
        let body = json!({ "jobs": jobs });
        let env = &env;
        let key = key.clone();
        async move {
            env.call(reqwest::Method::POST, "/api/jobs/batch", &key, Some(&body))
                .await
        }
    };
    let (status, body) = batch(5).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["details"]["kind"], "sentiment.score");
    // The item that did not fit: the fifth (the plan allows four a period).
    assert_eq!(body["error"]["details"]["index"], 4, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("jobs[4]: "), "{body}");
    assert_eq!(env.count_jobs().await, 0);
    assert_eq!(usage(&env, &key).await["reserved"], 0);

    let (status, body) = batch(4).await;
    assert_eq!(status, 202, "{body}");
    let u = usage(&env, &key).await;
    assert_eq!(kind(&u, "sentiment.score")["reserved"], 4, "{u}");
    assert_eq!(env.count_jobs().await, 4);
}
