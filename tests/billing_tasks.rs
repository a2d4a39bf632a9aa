//! The scheduled billing tasks (issue #6) against the real Postgres and Redis with simulated
//! time: one `billing.close_period` per tenant-period and one `billing.monthly_run` per month
//! across three racing replicas, monthly catch-up, statements with overage delivered signed,
//! expiry notices once per subject and threshold, credit expiry, and a broken task not
//! blocking the others. No test sleeps through time: every "now" is handed in.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration as Span, NaiveDate, TimeZone, Utc};
use keel_models::billing::ledger::{self, CreditGrant, Invoice, Purchase};
use keel_models::billing_tasks as bt;
use keel_models::job::{JobStatus, NewJob};
use keel_models::metering::{self, NewReservation};
use keel_scheduler::billing::{self, CREDIT_EXPIRY, EXPIRY_NOTICES, MONTHLY_RUN, PERIOD_ROLLOVER};
use keel_scheduler::{CatchUp, Scheduler, Task, TenantJob};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn month(y: i32, m: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = at(y, m, 1, 0, 0, 0);
    let end = if m == 12 {
        at(y + 1, 1, 1, 0, 0, 0)
    } else {
        at(y, m + 1, 1, 0, 0, 0)
    };
    (start, end)
}

/// The billing tasks named `names` (all when empty).
fn tasks(names: &[&str]) -> Vec<Task> {
    billing::tasks()
        .into_iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .collect()
}

fn scheduler(env: &TestEnv, tasks: Vec<Task>) -> Scheduler {
    let now = Utc::now();
    Scheduler::new(
        env.keel.pool.clone(),
        env.keel.lane.clone(),
        env.keel.registry.clone(),
        tasks,
        Arc::new(move || now),
    )
}

/// A usage period as metering creates it at a submit.
async fn period(
    env: &TestEnv,
    tenant: Uuid,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    plan: &str,
) {
    let mut tx = env.keel.pool.begin().await.unwrap();
    metering::lock_period(&mut tx, tenant, start, end, plan, 2500)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Consumes units in a period the way a metered job does: a reservation at submit, settled by
/// the job's success (the `jobs_settle_usage` trigger). Needs a running worker.
async fn consume(env: &TestEnv, tenant: Uuid, start: DateTime<Utc>, included: i64, overage: i64) {
    let job = NewJob {
        id: Uuid::now_v7(),
        tenant_id: Some(tenant),
        kind: "noop".into(),
        queue: "default".into(),
        args: json!({}),
        max_attempts: 3,
        run_at: None,
        idempotency_key: None,
        dispatched: false,
    };
    let mut tx = env.keel.pool.begin().await.unwrap();
    keel_models::job::insert(&mut tx, &job).await.unwrap();
    metering::reserve(
        &mut tx,
        &reservation(job.id, tenant, start, included, 0, overage),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    env.wait_status(job.id, JobStatus::Succeeded, secs(20))
        .await;
}

fn reservation(
    job: Uuid,
    tenant: Uuid,
    start: DateTime<Utc>,
    inc: i64,
    cred: i64,
    over: i64,
) -> NewReservation {
    NewReservation {
        job_id: job,
        tenant_id: tenant,
        period_start: start,
        kind: "noop".into(),
        units: inc + cred + over,
        from_included: inc,
        from_credits: cred,
        from_overage: over,
        credit_grants: json!([]),
    }
}

/// Inserts a job of `kind` with `args` directly (a duplicate run of what the scheduler enqueued).
async fn run_again(env: &TestEnv, kind: &str, args: Value) -> Uuid {
    let job = NewJob {
        id: Uuid::now_v7(),
        tenant_id: None,
        kind: kind.into(),
        queue: "default".into(),
        args,
        max_attempts: 3,
        run_at: None,
        idempotency_key: None,
        dispatched: false,
    };
    let mut conn = env.keel.pool.acquire().await.unwrap();
    keel_models::job::insert(&mut conn, &job).await.unwrap();
    job.id
}

async fn jobs_of(env: &TestEnv, kind: &str) -> Vec<(Uuid, Value)> {
    sqlx::query_as("SELECT id, args FROM jobs WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(&env.keel.pool)
        .await
        .unwrap()
}

/// The `month` of every `billing.monthly_run` job, in the order they were enqueued.
async fn monthly_run_months(env: &TestEnv) -> Vec<Value> {
    jobs_of(env, "billing.monthly_run")
        .await
        .into_iter()
        .map(|(_, a)| a["month"].clone())
        .collect()
}

async fn all_succeed(env: &TestEnv, kind: &str) -> Vec<Value> {
    let mut results = Vec::new();
    for (id, _) in jobs_of(env, kind).await {
        let job = env.wait_status(id, JobStatus::Succeeded, secs(30)).await;
        results.push(job.result.unwrap());
    }
    results
}

async fn notices(env: &TestEnv, tenant: Uuid) -> Vec<bt::Notification> {
    bt::list_notifications(&env.keel.pool, tenant, None, 200)
        .await
        .unwrap()
}

fn subject_list(n: &[bt::Notification]) -> Vec<String> {
    let mut s: Vec<_> = n
        .iter()
        .map(|n| format!("{} {}", n.kind, n.subject))
        .collect();
    s.sort();
    s
}

#[tokio::test]
async fn three_replicas_over_four_months_close_each_tenant_period_once_and_run_each_month_once() {
    let env = TestEnv::new().await;
    let mut tenants = Vec::new();
    for name in ["a", "b", "c"] {
        let (id, _, _) = env.tenant(name).await;
        for m in 1..=4 {
            period(&env, id, month(2030, m), "free").await;
        }
        tenants.push(id);
    }
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let pool = keel_models::db::connect(&env.keel.settings.database_url, 3)
            .await
            .unwrap();
        replicas.push(Scheduler::new(
            pool,
            env.keel.lane.clone(),
            env.keel.registry.clone(),
            tasks(&[]),
            keel_scheduler::system_clock(),
        ));
    }
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    let start = at(2030, 1, 1, 0, 0, 0);
    let end = at(2030, 5, 1, 6, 0, 0);
    let mut enqueued = 0;
    let mut now = start;
    while now <= end {
        let (ra, rb, rc) = tokio::join!(a.tick_at(now), b.tick_at(now), c.tick_at(now));
        enqueued += ra.unwrap() + rb.unwrap() + rc.unwrap();
        now += Span::hours(6);
    }

    let closes = jobs_of(&env, "billing.close_period").await;
    assert_eq!(closes.len(), 12, "3 tenants x 4 ended months");
    let mut keys: Vec<(String, String)> = closes
        .iter()
        .map(|(_, a)| (a["tenant_id"].to_string(), a["period_start"].to_string()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 12, "one job per tenant-period");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM schedule_tenant_runs")
        .fetch_one(&env.keel.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 12);

    let months = monthly_run_months(&env).await;
    assert_eq!(
        months,
        vec![
            json!("2030-01"),
            json!("2030-02"),
            json!("2030-03"),
            json!("2030-04")
        ]
    );
    // The daily tasks: one job per daily tick in (start, end].
    let daily = |name: &str| {
        let task = tasks(&[name]).pop().unwrap();
        let n = task
            .schedule
            .after(&start)
            .take_while(|t| *t <= end)
            .count();
        assert!(n >= 120, "{name}: {n}");
        n
    };
    let notices = jobs_of(&env, "billing.expiry_notices").await.len();
    let expiries = jobs_of(&env, "billing.expire_credits").await.len();
    assert_eq!(notices, daily(EXPIRY_NOTICES));
    assert_eq!(expiries, daily(CREDIT_EXPIRY));
    assert_eq!(
        enqueued,
        12 + 4 + notices + expiries,
        "what the replicas say they enqueued"
    );
    assert_eq!(env.count_jobs().await as usize, enqueued);
}

/// A run by hand (`keel scheduler run-once`) after missed month boundaries runs the missed
/// months first: recorded alone, the manual tick had become the last tick and hidden them from
/// catch-up, so those months were never billed.
#[tokio::test]
async fn a_run_by_hand_after_missed_months_runs_the_missed_months_first() {
    let env = TestEnv::new().await;
    let s = scheduler(&env, tasks(&[]));
    s.run_once(MONTHLY_RUN, at(2030, 1, 1, 0, 0, 0))
        .await
        .unwrap()
        .expect("January 1 run");
    // No scheduler ran from January 1 to April 15; then an operator runs the task by hand.
    s.run_once(MONTHLY_RUN, at(2030, 4, 15, 12, 0, 0))
        .await
        .unwrap()
        .expect("the run by hand");
    let months = monthly_run_months(&env).await;
    assert_eq!(
        months,
        ["2029-12", "2030-01", "2030-02", "2030-03", "2030-03"].map(|m| json!(m)),
        "January 1, the missed February to April 1 runs, then the run by hand"
    );
    // Nothing is left for a scheduler to catch up.
    assert_eq!(s.tick_at(at(2030, 4, 15, 12, 0, 1)).await.unwrap(), 0);
}

#[tokio::test]
async fn after_three_missed_month_boundaries_each_missed_month_runs_once() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (tenant, _, _) = env.tenant("acme").await;
    // February on the Team plan with 120 units of overage (4 cents each).
    period(&env, tenant, month(2030, 2), "team").await;
    consume(&env, tenant, month(2030, 2).0, 30, 120).await;

    let s = scheduler(&env, tasks(&[]));
    s.run_once(MONTHLY_RUN, at(2030, 1, 1, 0, 0, 0))
        .await
        .unwrap()
        .expect("January 1 run");
    // Down from January 1 to April 15: February, March and April 1 were missed.
    let back = at(2030, 4, 15, 12, 0, 0);
    assert_eq!(
        s.tick_at(back).await.unwrap(),
        3,
        "only the missed monthly runs"
    );
    assert_eq!(s.tick_at(back).await.unwrap(), 0);
    let restarted = scheduler(&env, tasks(&[]));
    assert_eq!(restarted.tick_at(back + Span::days(5)).await.unwrap(), 0);
    let months = monthly_run_months(&env).await;
    assert_eq!(
        months,
        vec![
            json!("2029-12"),
            json!("2030-01"),
            json!("2030-02"),
            json!("2030-03")
        ]
    );

    all_succeed(&env, "billing.monthly_run").await;
    let snaps = bt::revenue_snapshots(&env.keel.pool).await.unwrap();
    let snap_months: Vec<_> = snaps.iter().map(|s| s.month).collect();
    let first = |m| NaiveDate::from_ymd_opt(2030, m, 1).unwrap();
    assert_eq!(
        snap_months,
        vec![
            NaiveDate::from_ymd_opt(2029, 12, 1).unwrap(),
            first(1),
            first(2),
            first(3)
        ]
    );
    assert_eq!(
        snaps[2].overage_revenue, 480,
        "February: 120 units x 4 cents"
    );
    assert_eq!(snaps[1].overage_revenue + snaps[3].overage_revenue, 0);
    let summary = notices(&env, tenant).await;
    assert_eq!(subject_list(&summary), vec!["billing_summary 2030-02"]);
    assert_eq!(summary[0].body["overage_amount"], 480);
    assert_eq!(summary[0].body["used_units"], 150);

    // Running a month again writes nothing twice.
    let again = run_again(&env, "billing.monthly_run", json!({ "month": "2030-02" })).await;
    let done = env.wait_status(again, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(
        done.result.unwrap(),
        json!({ "month": "2030-02", "summaries": 0, "snapshot_written": false })
    );
    assert_eq!(
        bt::revenue_snapshots(&env.keel.pool).await.unwrap().len(),
        4
    );
    assert_eq!(notices(&env, tenant).await.len(), 1);
}

#[tokio::test]
async fn closing_a_period_bills_its_overage_once_and_delivers_a_signed_statement() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let (tenant, key, secret) = env.tenant("acme").await;
    let put = |body: Value| {
        env.http
            .put(env.url("/api/tenant/notifications"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    assert_eq!(
        put(json!({ "url": "ftp://example.com/x" }))
            .await
            .unwrap()
            .status(),
        422
    );
    // `url` is required: `{}` had been read as null and silently stopped deliveries.
    let (status, body) = read(put(json!({})).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["path"], "url", "{body}");
    let url = format!("{}/hooks", receiver.uri());
    let resp = put(json!({ "url": url })).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = read(put(json!({})).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    // What is set can be read back.
    let got = |path: &'static str| env.http.get(env.url(path)).bearer_auth(&key).send();
    let (status, body) = read(got("/api/tenant/notifications").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["url"], url.as_str());

    let jan = month(2030, 1);
    period(&env, tenant, jan, "team").await;
    consume(&env, tenant, jan.0, 30, 120).await;
    let s = scheduler(&env, tasks(&[PERIOD_ROLLOVER]));
    assert_eq!(
        s.tick_at(at(2030, 1, 31, 12, 0, 0)).await.unwrap(),
        0,
        "not ended yet"
    );
    assert_eq!(s.tick_at(at(2030, 2, 1, 0, 0, 0)).await.unwrap(), 1);
    assert_eq!(
        s.tick_at(at(2030, 2, 1, 5, 0, 0)).await.unwrap(),
        0,
        "enqueued once"
    );
    let by_hand = s.run_once(PERIOD_ROLLOVER, at(2030, 2, 1, 5, 30, 0)).await;
    assert!(by_hand.unwrap().is_none(), "run-once: nothing more is due");
    let results = all_succeed(&env, "billing.close_period").await;
    assert_eq!(results[0]["closed"], true);
    assert_eq!(results[0]["overage_amount"], 480);

    // The job again: the period is closed, nothing more is stored or sent.
    let args = jobs_of(&env, "billing.close_period").await[0].1.clone();
    let again = run_again(&env, "billing.close_period", args).await;
    let done = env.wait_status(again, JobStatus::Succeeded, secs(20)).await;
    assert_eq!(done.result.unwrap()["closed"], false);
    let stored = notices(&env, tenant).await;
    assert_eq!(stored.len(), 1, "one statement");
    let st = &stored[0];
    assert_eq!(
        (st.kind.as_str(), st.subject.as_str()),
        ("usage_statement", "2030-01-01T00:00:00Z")
    );
    assert_eq!(st.body["plan_id"], "team");
    assert_eq!(st.body["used_units"], 150);
    assert_eq!(st.body["overage_units"], 120);
    assert_eq!(st.body["overage_unit_price"], 4);
    assert_eq!(st.body["overage_amount"], 480);
    let closed = metering::periods(&env.keel.pool, tenant, 5).await.unwrap();
    assert!(closed[0].closed_at.is_some());

    let delivery = st.delivery_job_id.expect("delivered: the tenant has a URL");
    env.wait_status(delivery, JobStatus::Succeeded, secs(20))
        .await;
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    let header = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(header("keel-event"), "usage.statement");
    assert_eq!(header("keel-delivery"), delivery.to_string());
    let sig = header("keel-signature");
    let t: i64 = sig
        .trim_start_matches("t=")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        keel_jobs::kinds::webhook::signature_header(&secret, t, &r.body)
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], json!(st.id));
    assert_eq!(body["data"]["overage_amount"], 480);

    // The tenant reads it back.
    let listed: Value = env
        .http
        .get(env.url("/api/notifications"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["notifications"][0]["id"], json!(st.id));
}

async fn subscribe(
    env: &TestEnv,
    tenant: Uuid,
    status: &str,
    trial_end: Option<DateTime<Utc>>,
    cancel_at: Option<DateTime<Utc>>,
) {
    let mut sub = subscriptions::team(tenant, status);
    sub.current_period_start = cancel_at.map(|e| e - Span::days(30));
    sub.current_period_end = cancel_at;
    sub.cancel_at_period_end = cancel_at.is_some();
    sub.trial_end = trial_end;
    subscriptions::store(env, &sub).await;
}

async fn grant(
    env: &TestEnv,
    tenant: Uuid,
    units: i64,
    remaining: i64,
    granted: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Uuid {
    let mut tx = env.keel.pool.begin().await.unwrap();
    let purchase = Purchase::local(tenant, "credit_pack", "pack_50", 900, "usd");
    let purchase = ledger::insert_purchase(&mut tx, &purchase)
        .await
        .unwrap()
        .unwrap();
    let mut g = CreditGrant::for_purchase(&purchase, units, 90, granted);
    g.remaining = remaining;
    g.expires_at = expires;
    ledger::insert_credit_grant(&mut tx, &g).await.unwrap();
    tx.commit().await.unwrap();
    g.id
}

#[tokio::test]
async fn expiry_notices_go_out_once_per_subject_and_threshold_over_daily_runs() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let d0 = at(2030, 3, 1, 9, 0, 0);
    let (trial, key, _) = env.tenant("trialing").await;
    let (leaving, _, _) = env.tenant("leaving").await;
    let (late, _, _) = env.tenant("late-payer").await;
    subscribe(&env, trial, "trialing", Some(d0 + Span::days(8)), None).await;
    subscribe(
        &env,
        leaving,
        "active",
        None,
        Some(d0 + Span::days(4) + Span::hours(12)),
    )
    .await;
    subscribe(&env, late, "past_due", None, None).await;
    let failed = d0 - Span::days(5); // grace ends at d0 + 2 days
    let mut inv = Invoice::local_paid(
        late,
        9900,
        "usd",
        "Team".into(),
        (failed, failed + Span::days(30)),
    );
    (
        inv.status,
        inv.amount_paid,
        inv.paid_at,
        inv.payment_failed_at,
    ) = ("open".into(), 0, None, Some(failed));
    let mut tx = env.keel.pool.begin().await.unwrap();
    ledger::upsert_invoice(&mut tx, &inv).await.unwrap();
    tx.commit().await.unwrap();
    let g = grant(
        &env,
        trial,
        50,
        50,
        d0 - Span::days(80),
        d0 + Span::days(7) + Span::hours(12),
    )
    .await;
    let _used_up = grant(&env, trial, 50, 0, d0 - Span::days(80), d0 + Span::days(2)).await;

    let s = scheduler(&env, tasks(&[EXPIRY_NOTICES]));
    assert_eq!(s.tick_at(d0 - Span::hours(1)).await.unwrap(), 0);
    for day in 0..=9 {
        assert_eq!(s.tick_at(d0 + Span::days(day)).await.unwrap(), 1);
    }
    // Some days run twice (a retried or duplicated job).
    for day in [1, 5, 7] {
        run_again(
            &env,
            "billing.expiry_notices",
            json!({ "as_of": d0 + Span::days(day) }),
        )
        .await;
    }
    all_succeed(&env, "billing.expiry_notices").await;

    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let trial_end = stamp(d0 + Span::days(8));
    let mut want_trial: Vec<String> = ["1d", "3d", "7d"]
        .iter()
        .map(|t| format!("trial_ending trial:{trial}:{trial_end}:{t}"))
        .collect();
    want_trial.extend(
        ["1d", "7d"]
            .iter()
            .map(|t| format!("credits_expiring grant:{g}:{t}")),
    );
    want_trial.sort();
    assert_eq!(subject_list(&notices(&env, trial).await), want_trial);
    let ends = stamp(d0 + Span::days(4) + Span::hours(12));
    assert_eq!(
        subject_list(&notices(&env, leaving).await),
        ["1d", "3d", "7d"]
            .iter()
            .map(|t| format!("subscription_ending sub:{leaving}:{ends}:{t}"))
            .collect::<Vec<_>>()
    );
    let f = stamp(failed);
    assert_eq!(
        subject_list(&notices(&env, late).await),
        vec![
            format!("payment_grace_ending grace:{late}:{f}:1d"),
            format!("payment_grace_ending grace:{late}:{f}:3d")
        ]
    );

    // Newest first, two per page.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = env.url("/api/notifications?limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = env
            .http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for n in page["notifications"].as_array().unwrap() {
            seen.push(n["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<String> = notices(&env, trial)
        .await
        .iter()
        .map(|n| n.id.to_string())
        .collect();
    assert_eq!(seen, newest_first);
    assert_eq!(seen.len(), 5);
    for bad in ["limit=0", "cursor=nope", "page=2"] {
        let url = env.url(&format!("/api/notifications?{bad}"));
        let resp = env.http.get(&url).bearer_auth(&key).send().await.unwrap();
        assert_eq!(resp.status(), 422, "{bad}");
    }
    let other = env
        .http
        .get(env.url("/api/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
}

#[tokio::test]
async fn credit_expiry_zeroes_only_expired_grants_and_leaves_reservations_alone() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (tenant, _, _) = env.tenant("acme").await;
    let day = at(2030, 6, 1, 0, 10, 0);
    let expired = grant(
        &env,
        tenant,
        50,
        50,
        at(2030, 3, 1, 0, 0, 0),
        at(2030, 5, 31, 0, 0, 0),
    )
    .await;
    let empty = grant(
        &env,
        tenant,
        50,
        0,
        at(2030, 3, 1, 0, 0, 0),
        at(2030, 5, 30, 0, 0, 0),
    )
    .await;
    let live = grant(
        &env,
        tenant,
        50,
        50,
        at(2030, 5, 1, 0, 0, 0),
        at(2030, 8, 1, 0, 0, 0),
    )
    .await;
    // A job submitted in May holds 10 credits of the soon-expiring grant.
    let may = month(2030, 5);
    period(&env, tenant, may, "free").await;
    let held = Uuid::now_v7();
    let mut tx = env.keel.pool.begin().await.unwrap();
    let taken = metering::take_credits(&mut tx, tenant, 10, at(2030, 5, 10, 0, 0, 0))
        .await
        .unwrap();
    assert_eq!(taken, vec![(expired, 10)]);
    let mut r = reservation(held, tenant, may.0, 0, 10, 0);
    r.credit_grants = json!([{ "grant_id": expired, "units": 10 }]);
    metering::reserve(&mut tx, &r).await.unwrap();
    tx.commit().await.unwrap();

    let s = scheduler(&env, tasks(&[CREDIT_EXPIRY]));
    s.tick_at(day - Span::hours(1)).await.unwrap();
    assert_eq!(s.tick_at(day).await.unwrap(), 1);
    let args = jobs_of(&env, "billing.expire_credits").await[0].1.clone();
    run_again(&env, "billing.expire_credits", args).await;
    let mut results = all_succeed(&env, "billing.expire_credits").await;
    results.sort_by_key(|r| -r["expired_units"].as_i64().unwrap());
    assert_eq!(
        (
            results[0]["expired_grants"].clone(),
            results[0]["expired_units"].clone()
        ),
        (json!(1), json!(40))
    );
    assert_eq!(
        results[1]["expired_grants"], 0,
        "the second run finds nothing"
    );

    let grants = ledger::list_credit_grants(&env.keel.pool, tenant, 10)
        .await
        .unwrap();
    let left = |id: Uuid| grants.iter().find(|g| g.id == id).unwrap().remaining;
    assert_eq!((left(expired), left(empty), left(live)), (0, 0, 50));
    assert_eq!(
        metering::reservation_state(&env.keel.pool, held)
            .await
            .unwrap()
            .as_deref(),
        Some("reserved")
    );
    let stored = notices(&env, tenant).await;
    assert_eq!(
        subject_list(&stored),
        vec![format!("credits_expired grant:{expired}:expired")]
    );
    assert_eq!(stored[0].body["expired_units"], 40);
}

#[tokio::test]
async fn a_broken_billing_task_does_not_block_the_others() {
    let env = TestEnv::new().await;
    let (tenant, _, _) = env.tenant("acme").await;
    period(&env, tenant, month(2030, 1), "free").await;
    let bad_args = Task::new("bad-monthly", "0 0 0 1 * *", CatchUp::All, |_| {
        ("billing.monthly_run", json!({ "month": 202001 }))
    })
    .unwrap();
    let bad_scan = Task::per_tenant(
        "bad-scan",
        "0 0 * * * *",
        CatchUp::Latest,
        Arc::new(|_pool, tick| {
            Box::pin(async move {
                Ok(vec![TenantJob {
                    tenant_id: Uuid::now_v7(),
                    period_start: tick,
                    kind: "no.such.kind",
                    args: json!({}),
                }])
            })
        }),
    )
    .unwrap();
    let mut all = vec![bad_args, bad_scan];
    all.extend(tasks(&[PERIOD_ROLLOVER, MONTHLY_RUN]));
    let s = scheduler(&env, all);
    s.tick_at(at(2030, 1, 15, 0, 0, 0)).await.unwrap();
    let report = s.tick_report(at(2030, 2, 1, 0, 0, 0)).await;
    let mut failed: Vec<_> = report
        .failures
        .iter()
        .map(|(t, e)| format!("{t}: {e}"))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0].starts_with("bad-monthly") && failed[0].contains("args.month"),
        "{failed:?}"
    );
    assert!(
        failed[1].starts_with("bad-scan") && failed[1].contains("no.such.kind"),
        "{failed:?}"
    );
    assert_eq!(
        report.enqueued, 2,
        "the rollover's close_period and the monthly run"
    );
    assert_eq!(jobs_of(&env, "billing.close_period").await.len(), 1);
    assert_eq!(jobs_of(&env, "billing.monthly_run").await.len(), 1);
}
