mod support;

// Jira delivery-risk analysis, black-box: connecting a tenant's Jira (credentials checked
// against a fake Jira serving Atlassian-shaped responses, token sealed at rest), the three
// analysis jobs with their results, progress, history, trend (JSON and SVG) and usage, and the
// failure modes (401, 404, 429, bad input, no connection).

use keel_models::job::JobStatus;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EMAIL: &str = "mia@example.com";
const TOKEN: &str = "ATATT3xFfGF0-very-secret-jira-token";

fn fixture(name: &str) -> Value {
    let p = format!("{}/jira/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn ok(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(fixture(name))
}

fn jira_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"errorMessages": [message], "errors": {}}))
}

/// A fake Jira that knows the account and answers the paging endpoints with empty pages.
async fn fake_jira() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ok("myself.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rest/api/3/issue/[A-Z]+-\d+/changelog$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"startAt": 0, "maxResults": 100, "total": 0, "isLast": true, "values": []}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rest/api/3/issue/[A-Z]+-\d+/comment$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"startAt": 0, "maxResults": 100, "total": 0, "comments": []}),
            ),
        )
        .mount(&server)
        .await;
    server
}

async fn send_json(
    env: &TestEnv,
    method: reqwest::Method,
    key: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    env.call(method, path, key, Some(&body)).await
}

async fn put_json(env: &TestEnv, key: &str, path: &str, body: Value) -> (u16, Value) {
    send_json(env, reqwest::Method::PUT, key, path, body).await
}

async fn post_json(env: &TestEnv, key: &str, path: &str, body: Value) -> (u16, Value) {
    send_json(env, reqwest::Method::POST, key, path, body).await
}

async fn get(env: &TestEnv, key: &str, path: &str) -> (u16, String) {
    let resp = env
        .http
        .get(env.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn connect(env: &TestEnv, key: &str, jira: &MockServer) {
    let (status, body) = put_json(
        env,
        key,
        "/api/tenant/jira",
        json!({"base_url": jira.uri(), "email": EMAIL, "api_token": TOKEN}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Submits an analysis and waits for it to end; returns the job.
async fn analyze(env: &TestEnv, key: &str, what: &str, body: Value) -> keel_models::job::Job {
    let (status, resp) = post_json(env, key, &format!("/api/analyze/{what}"), body).await;
    assert_eq!(status, 202, "{resp}");
    let id: Uuid = resp["id"].as_str().unwrap().parse().unwrap();
    env.wait_for(id, secs(30), |j| {
        matches!(j.status, JobStatus::Succeeded | JobStatus::Dead)
    })
    .await
}

#[tokio::test]
async fn connecting_jira_checks_credentials_and_seals_the_token() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let jira = fake_jira().await;
    connect(&env, &key, &jira).await;

    let (status, me) = get(&env, &key, "/api/tenant").await;
    assert_eq!(status, 200);
    assert!(
        !me.contains(TOKEN),
        "the token must never be answered: {me}"
    );
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["jira"]["email"], EMAIL);
    assert_eq!(me["jira"]["account_id"], "5b10a2844c20165700ede21g");
    assert_eq!(me["settings"]["risk"]["daily_rate_per_person"], 2500.0);

    let stored = keel_models::jira::connection(&env.keel.pool, tenant)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.token_sealed.contains(TOKEN),
        "token stored in clear"
    );
    assert_eq!(
        env.keel
            .services
            .secrets
            .open(
                keel_models::crypto::Field::JiraToken,
                tenant,
                &stored.token_sealed
            )
            .unwrap(),
        TOKEN
    );

    // Jira saw Basic auth with exactly these credentials.
    let seen = &jira.received_requests().await.unwrap()[0];
    let auth = seen.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.starts_with("Basic "));
}

#[tokio::test]
async fn wrong_credentials_are_a_422_and_unreachable_jira_a_502_and_nothing_is_stored() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
        .mount(&jira)
        .await;
    let body = json!({"base_url": jira.uri(), "email": EMAIL, "api_token": TOKEN});
    let (status, resp) = put_json(&env, &key, "/api/tenant/jira", body).await;
    assert_eq!(status, 422, "{resp}");
    assert_eq!(resp["error"]["code"], "jira_credentials_rejected");
    assert!(resp["error"]["message"].as_str().unwrap().contains("401"));
    assert_eq!(resp["error"]["details"]["jira_status"], 401);

    let closed = format!("http://127.0.0.1:{}", free_port());
    let body = json!({"base_url": closed, "email": EMAIL, "api_token": TOKEN});
    let (status, resp) = put_json(&env, &key, "/api/tenant/jira", body).await;
    assert_eq!(status, 502, "{resp}");
    assert_eq!(resp["error"]["code"], "jira_unreachable");

    for (body, field) in [
        (
            json!({"base_url": "ftp://x", "email": EMAIL, "api_token": TOKEN}),
            "base_url",
        ),
        (
            json!({"base_url": jira.uri(), "email": "nope", "api_token": TOKEN}),
            "email",
        ),
        (
            json!({"base_url": jira.uri(), "email": EMAIL, "api_token": " "}),
            "api_token",
        ),
    ] {
        let (status, resp) = put_json(&env, &key, "/api/tenant/jira", body).await;
        assert_eq!(status, 422, "{resp}");
        assert_eq!(resp["error"]["details"]["path"], field, "{resp}");
    }
    assert!(keel_models::jira::connection(&env.keel.pool, tenant)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn analyze_issue_stores_history_trend_and_usage_once() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-1"))
        .and(query_param("expand", "changelog"))
        .respond_with(ok("issue_full.json"))
        .mount(&jira)
        .await;
    connect(&env, &key, &jira).await;
    env.spawn_worker(|_| {});

    let first = analyze(&env, &key, "issue", json!({"issue_key": "ED-1"})).await;
    assert_eq!(first.status, JobStatus::Succeeded, "{first:#?}");
    let result = first.result.clone().unwrap();
    assert_eq!(result["template"], "executive");
    assert_eq!(result["issue_key"], "ED-1");
    let score = result["risk_score"].as_u64().unwrap();
    assert!(score <= 100);
    assert!(
        result["summary"].as_str().unwrap().contains("ED-1")
            || !result["summary"].as_str().unwrap().is_empty()
    );
    assert!(result["drivers"].is_array());
    assert!(result["daily_cost_of_delay"].as_f64().unwrap() >= 2500.0);

    let raw = analyze(
        &env,
        &key,
        "issue",
        json!({"issue_key": "ED-1", "template": "raw"}),
    )
    .await;
    let raw = raw.result.unwrap();
    assert_eq!(raw["template"], "raw");
    assert!(raw["risk"]["factors"].as_array().unwrap().len() >= 5);
    assert_eq!(raw["snapshot"]["key"], "ED-1");

    let (status, history) = get(&env, &key, "/api/analyses/issues/ED-1/history?limit=1").await;
    assert_eq!(status, 200, "{history}");
    let history: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history["analyses"].as_array().unwrap().len(), 1);
    let cursor = history["next_cursor"].as_str().unwrap();
    let (_, page2) = get(
        &env,
        &key,
        &format!("/api/analyses/issues/ED-1/history?limit=1&cursor={cursor}"),
    )
    .await;
    let page2: Value = serde_json::from_str(&page2).unwrap();
    assert_eq!(page2["analyses"].as_array().unwrap().len(), 1);
    assert_eq!(
        page2["analyses"][0]["job_id"],
        first.id.to_string(),
        "newest first"
    );

    let (_, trend) = get(&env, &key, "/api/analyses/issues/ED-1/trend").await;
    let trend: Value = serde_json::from_str(&trend).unwrap();
    assert_eq!(trend["points"].as_array().unwrap().len(), 2);
    assert_eq!(trend["points"][0]["risk_score"], score);
    let (status, svg) = get(&env, &key, "/api/analyses/issues/ED-1/trend?format=svg").await;
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") && svg.contains("ED-1"), "{svg}");

    let usage = keel_models::usage::list(&env.keel.pool, tenant, 10)
        .await
        .unwrap();
    assert_eq!(usage.len(), 2);
    assert!(usage.iter().all(|u| u.kind == "issue" && u.units == 1));

    // Another tenant sees none of it.
    let (_, other, _) = env.tenant("other").await;
    let (_, h) = get(&env, &other, "/api/analyses/issues/ED-1/history").await;
    assert_eq!(
        serde_json::from_str::<Value>(&h).unwrap()["analyses"],
        json!([])
    );
}

#[tokio::test]
async fn a_job_run_twice_records_usage_and_history_once() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-1"))
        .respond_with(ok("issue_full.json"))
        .mount(&jira)
        .await;
    connect(&env, &key, &jira).await;
    // The same job delivered twice (at-least-once): run its handler twice with one job id.
    let ctx = keel_jobs::JobContext {
        job_id: Uuid::now_v7(),
        tenant_id: Some(tenant),
        attempt: 1,
        max_attempts: 3,
        cancel: Default::default(),
        services: env.keel.services.clone(),
    };
    use keel_jobs::Job;
    for _ in 0..2 {
        let job = keel_jobs::kinds::analyze::AnalyzeIssue {
            issue_key: "ED-1".into(),
            template: Default::default(),
        };
        job.run(ctx.clone()).await.unwrap();
    }
    assert_eq!(
        keel_models::usage::for_job(&env.keel.pool, ctx.job_id)
            .await
            .unwrap()
            .len(),
        1
    );
    let history = keel_models::analysis::history(&env.keel.pool, tenant, "ED-1", None, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn jira_failures_map_to_retry_or_fatal() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let jira = fake_jira().await;
    // 429 without Retry-After once, then the issue: retried with backoff, then succeeds.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-1"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-1"))
        .respond_with(ok("issue_full.json"))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-404"))
        .respond_with(jira_error(
            404,
            "Issue does not exist or you do not have permission to see it.",
        ))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-401"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-500"))
        .respond_with(jira_error(503, "try later"))
        .mount(&jira)
        .await;
    connect(&env, &key, &jira).await;
    env.spawn_worker(|_| {});

    let job = analyze(&env, &key, "issue", json!({"issue_key": "ED-1"})).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert_eq!(job.attempt, 2, "the 429 cost one attempt");

    let job = analyze(&env, &key, "issue", json!({"issue_key": "ED-404"})).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempt, 1, "404 is fatal");
    let err = job.last_error.unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("not found or not visible"),
        "{err}"
    );

    let job = analyze(&env, &key, "issue", json!({"issue_key": "ED-401"})).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempt, 1, "401 is fatal");
    assert!(job.last_error.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("credentials"));

    // 5xx is retryable: with max 8 attempts and short backoff it keeps failing, then goes dead.
    let (status, resp) = post_json(
        &env,
        &key,
        "/api/analyze/issue",
        json!({"issue_key": "ED-500"}),
    )
    .await;
    assert_eq!(status, 202);
    let id: Uuid = resp["id"].as_str().unwrap().parse().unwrap();
    let job = env.wait_for(id, secs(30), |j| j.attempt >= 2).await;
    assert_eq!(job.last_error.unwrap()["kind"], "retryable");
}

#[tokio::test]
async fn sprint_and_portfolio_analyses_roll_up_with_progress() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/board/84/sprint"))
        .and(query_param("state", "active"))
        .respond_with(ok("board_sprints_active.json"))
        .mount(&jira)
        .await;
    let sprint_id = fixture("board_sprints_active.json")["values"][0]["id"]
        .as_u64()
        .unwrap();
    Mock::given(method("GET"))
        .and(path(format!("/rest/agile/1.0/sprint/{sprint_id}/issue")))
        .and(query_param("startAt", "0"))
        .respond_with(ok("sprint_issues_page1.json"))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/rest/agile/1.0/sprint/{sprint_id}/issue")))
        .and(query_param("startAt", "2"))
        .respond_with(ok("sprint_issues_page2.json"))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(wiremock::matchers::body_partial_json(
            json!({"nextPageToken": "CAEaAggD"}),
        ))
        .respond_with(ok("search_page2.json"))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(wiremock::matchers::body_partial_json(
            json!({"jql": "project in (ED) ORDER BY key ASC"}),
        ))
        .respond_with(ok("search_page1.json"))
        .mount(&jira)
        .await;
    connect(&env, &key, &jira).await;
    env.spawn_worker(|_| {});

    let job = analyze(&env, &key, "sprint", json!({"board_id": 84})).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    let result = job.result.unwrap();
    assert_eq!(result["sprint"]["id"], sprint_id);
    assert_eq!(result["rollup"]["total"], 3);
    assert_eq!(result["issues"].as_array().unwrap().len(), 3);
    assert!(result["rollup"]["blocker_graph"].is_object());
    assert_eq!(job.progress.unwrap(), json!({"done": 3, "total": 3}));

    let job = analyze(&env, &key, "portfolio", json!({"project_keys": ["ED"]})).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    let result = job.result.unwrap();
    assert_eq!(result["analyzed"], 3);
    assert_eq!(result["truncated"], false);
    let projects = result["rollup"]["projects"].as_array().unwrap();
    assert!(
        projects.iter().any(|p| p["project_key"] == "ED"),
        "{result}"
    );

    let usage = keel_models::usage::list(&env.keel.pool, tenant, 10)
        .await
        .unwrap();
    let mut kinds: Vec<(&str, i32)> = usage.iter().map(|u| (u.kind.as_str(), u.units)).collect();
    kinds.sort();
    // The catalog's units (metering is off here): every event had said 1.
    assert_eq!(kinds, [("portfolio", 20), ("sprint", 5)]);
    // Every issue of both jobs is in the history.
    let h = keel_models::analysis::history(&env.keel.pool, tenant, "HSP-1", None, 10)
        .await
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].source, "sprint");
}

/// Retrying a dead `jira.*` job after Jira was disconnected is refused as its submit would be
/// (it had been queued and died again at once), and the job stays dead.
#[tokio::test]
async fn retrying_a_jira_job_after_jira_was_disconnected_is_409() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let jira = fake_jira().await; // no such issue: 404, fatal
    connect(&env, &key, &jira).await;
    env.spawn_worker(|_| {});
    let job = analyze(&env, &key, "issue", json!({"issue_key": "ED-404"})).await;
    assert_eq!(job.status, JobStatus::Dead, "{job:#?}");

    let resp = env
        .http
        .delete(env.url("/api/tenant/jira"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let (status, body) = read(env.post(&key, &format!("/api/jobs/{}/retry", job.id)).await).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "jira_not_connected", "{body}");
    let after = env.job(job.id).await;
    assert_eq!(after.status, JobStatus::Dead);
    assert_eq!(after.attempt, job.attempt);
}

#[tokio::test]
async fn bad_analysis_requests_are_refused_and_change_nothing() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;

    // No Jira connection yet: 409 that says what to do.
    let (status, resp) = post_json(
        &env,
        &key,
        "/api/analyze/issue",
        json!({"issue_key": "ED-1"}),
    )
    .await;
    assert_eq!(status, 409, "{resp}");
    assert_eq!(resp["error"]["code"], "jira_not_connected");
    // The same kind through the generic submit, alone or in a batch: it had been accepted and
    // died at its first attempt.
    let kind = json!({"kind": "jira.analyze.issue", "args": {"issue_key": "ED-1"}});
    let (status, resp) = post_json(&env, &key, "/api/jobs", kind.clone()).await;
    assert_eq!(status, 409, "{resp}");
    assert_eq!(resp["error"]["code"], "jira_not_connected");
    let batch = json!({"jobs": [{"kind": "noop"}, kind]});
    let (status, resp) = post_json(&env, &key, "/api/jobs/batch", batch).await;
    assert_eq!(status, 409, "{resp}");
    assert_eq!(resp["error"]["code"], "jira_not_connected");
    assert_eq!(env.count_jobs().await, 0);

    let jira = fake_jira().await;
    connect(&env, &key, &jira).await;
    for (what, body, field) in [
        ("issue", json!({"issue_key": "not a key"}), "issue_key"),
        (
            "issue",
            json!({"issue_key": "ED-1", "template": "fancy"}),
            "template",
        ),
        ("sprint", json!({"sprint_id": 1, "board_id": 2}), "args"),
        ("sprint", json!({}), "args"),
        ("portfolio", json!({"project_keys": []}), "project_keys"),
        // `ok` is the key `OK` (keys in any case); `BAD KEY` is no key at all.
        (
            "portfolio",
            json!({"project_keys": ["ok", "BAD KEY"]}),
            "project_keys[1]",
        ),
        ("portfolio", json!({"jql": " "}), "jql"),
    ] {
        let (status, resp) =
            post_json(&env, &key, &format!("/api/analyze/{what}"), body.clone()).await;
        assert_eq!(status, 422, "{what} {body}: {resp}");
        assert_eq!(
            resp["error"]["details"]["path"], field,
            "{what} {body}: {resp}"
        );
    }
    let (status, _) = get(&env, &key, "/api/analyses/issues/nope/history").await;
    assert_eq!(status, 400);
    let (status, _) = get(&env, &key, "/api/analyses/issues/ED-1/trend?format=png").await;
    assert_eq!(status, 422);
    assert_eq!(
        env.count_jobs().await,
        0,
        "no bad request may enqueue anything"
    );

    let (status, resp) = put_json(
        &env,
        &key,
        "/api/tenant/settings",
        json!({"daily_rate_per_person": -1}),
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    let (status, resp) = put_json(
        &env,
        &key,
        "/api/tenant/settings",
        json!({"daily_rate_per_person": 900}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["risk"]["daily_rate_per_person"], 900.0);
}

#[tokio::test]
async fn the_demo_tenant_analyzes_the_sample_jira_like_the_readme_says() {
    // `keel up --demo` without the process: the same start-up function, on this test's Keel.
    let env = TestEnv::with(|s| s.metering = true).await;
    let demo = keel::demo::start(&env.keel).await.unwrap();
    env.spawn_worker(|_| {});
    let key = demo.api_key.clone();
    let banner = keel::demo::banner(
        &demo,
        env.base.trim_start_matches("http://").parse().unwrap(),
    );
    assert!(
        banner.contains(&key) && banner.contains("sample Jira data"),
        "{banner}"
    );

    let issue = analyze(&env, &key, "issue", json!({"issue_key": "DEMO-1"})).await;
    assert_eq!(issue.status, JobStatus::Succeeded, "{issue:#?}");
    assert!(issue.result.unwrap()["blocker_count"].as_u64().unwrap() > 0);
    let sprint = analyze(&env, &key, "sprint", json!({"board_id": 1})).await;
    assert_eq!(sprint.status, JobStatus::Succeeded, "{sprint:#?}");
    let total = sprint.result.unwrap()["rollup"]["total"].as_u64().unwrap();
    assert_eq!(
        sprint.progress.unwrap(),
        json!({"done": total, "total": total})
    );
    let portfolio = analyze(
        &env,
        &key,
        "portfolio",
        // Keys in any case, as the history routes take them (`demo` had been refused).
        json!({"project_keys": ["demo", "OPS"]}),
    )
    .await;
    assert_eq!(portfolio.status, JobStatus::Succeeded, "{portfolio:#?}");
    assert_eq!(portfolio.result.unwrap()["analyzed"], 30);

    let lower = analyze(&env, &key, "issue", json!({"issue_key": "demo-2"})).await;
    assert_eq!(lower.status, JobStatus::Succeeded, "{lower:#?}");
    assert_eq!(lower.args["issue_key"], "DEMO-2");
    let (status, svg) = get(&env, &key, "/api/analyses/issues/DEMO-1/trend?format=svg").await;
    assert_eq!(status, 200);
    assert!(svg.contains("DEMO-1"));
    // The demo tenant is on the Business plan: the four jobs used 1 + 1 + 5 + 20 units of it.
    let (_, usage) = get(&env, &key, "/api/usage").await;
    let usage: Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage["plan"], "business", "{usage}");
    // Each usage event carries the units its reservation held, so the history adds up to the
    // period's use (every event had said 1).
    let events = keel_models::usage::list(&env.keel.pool, demo.tenant_id, 10)
        .await
        .unwrap();
    let mut units: Vec<i32> = events.iter().map(|e| e.units).collect();
    units.sort();
    assert_eq!(units, [1, 1, 5, 20]);
    assert_eq!(usage["used"], 27, "{usage}");

    // A second start reuses the tenant and hands out a new key.
    let again = keel::demo::start(&env.keel).await.unwrap();
    assert_eq!(again.tenant_id, demo.tenant_id);
    assert_ne!(again.api_key, demo.api_key);
}

/// Answers with `body` after `delay`, noting when each request arrived: a request is in flight
/// from its arrival until `delay` later.
struct Slow {
    delay: std::time::Duration,
    body: Value,
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl wiremock::Respond for Slow {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.arrivals
            .lock()
            .unwrap()
            .push(std::time::Instant::now());
        ResponseTemplate::new(200)
            .set_body_json(self.body.clone())
            .set_delay(self.delay)
    }
}

/// The most requests that arrived within one `delay` of each other. A client capped at `n`
/// starts a request only after an earlier one got its answer (at least `delay` after that one
/// arrived), so this never exceeds `n`; `n` requests started together reach it.
fn max_in_flight(arrivals: &[std::time::Instant], delay: std::time::Duration) -> usize {
    let mut a = arrivals.to_vec();
    a.sort();
    (0..a.len())
        .map(|i| a[..=i].iter().filter(|t| a[i] - **t < delay).count())
        .max()
        .unwrap_or(0)
}

async fn set_add_ons(env: &TestEnv, tenant: Uuid, status: &str, add_ons: &[&str]) {
    let mut sub = subscriptions::team(tenant, status);
    sub.add_ons = add_ons.iter().map(|s| s.to_string()).collect();
    subscriptions::store(env, &sub).await;
}

#[tokio::test]
async fn the_jira_concurrency_add_on_raises_the_tenants_cap_while_the_subscription_is_in_force() {
    const ISSUES: usize = 16;
    let delay = std::time::Duration::from_millis(300);
    let env = TestEnv::new().await;
    let default_cap = env.keel.settings.jira_concurrency;
    let add_on_cap = keel_api::billing::catalog::global()
        .feature_max(
            &["jira_concurrency".to_string()],
            keel_api::billing::catalog::FEATURE_JIRA_CONCURRENCY,
        )
        .unwrap() as usize;
    assert!(add_on_cap > default_cap && add_on_cap < ISSUES);
    let (tenant, key, _) = env.tenant("acme").await;

    // A slow Jira with a sprint of 16 issues whose changelogs and comments must be fetched.
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ok("myself.json"))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/board/84/sprint"))
        .and(query_param("state", "active"))
        .respond_with(ok("board_sprints_active.json"))
        .mount(&jira)
        .await;
    let sprint_id = fixture("board_sprints_active.json")["values"][0]["id"]
        .as_u64()
        .unwrap();
    let template = fixture("sprint_issues_page1.json")["issues"][0].clone();
    let issues: Vec<Value> = (1..=ISSUES)
        .map(|i| {
            let mut issue = template.clone();
            issue["id"] = json!((10000 + i).to_string());
            issue["key"] = json!(format!("HSP-{i}"));
            issue["fields"].as_object_mut().unwrap().remove("comment");
            issue
        })
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("/rest/agile/1.0/sprint/{sprint_id}/issue")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "expand": "names,schema", "startAt": 0, "maxResults": 50, "total": ISSUES,
            "issues": issues,
        })))
        .mount(&jira)
        .await;
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path_regex(r"^/rest/api/3/issue/[A-Z]+-\d+/changelog$"))
        .respond_with(Slow {
            delay,
            body: json!({"startAt": 0, "maxResults": 100, "total": 0, "isLast": true, "values": []}),
            arrivals: arrivals.clone(),
        })
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rest/api/3/issue/[A-Z]+-\d+/comment$"))
        .respond_with(Slow {
            delay,
            body: json!({"startAt": 0, "maxResults": 100, "total": 0, "comments": []}),
            arrivals: arrivals.clone(),
        })
        .mount(&jira)
        .await;
    connect(&env, &key, &jira).await;
    env.spawn_worker(|_| {});

    // Runs the sprint analysis and answers the most Jira requests it had in flight at once.
    let run = || async {
        arrivals.lock().unwrap().clear();
        let job = analyze(&env, &key, "sprint", json!({"board_id": 84})).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
        assert_eq!(job.result.unwrap()["rollup"]["total"], ISSUES);
        let arrivals = arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), 2 * ISSUES);
        max_in_flight(&arrivals, delay)
    };

    // No subscription: the default cap.
    let n = run().await;
    assert!(
        n <= default_cap && n >= 2,
        "{n} in flight, cap {default_cap}"
    );
    // Another add-on switches nothing on for Jira.
    set_add_ons(&env, tenant, "active", &["priority_lane"]).await;
    let n = run().await;
    assert!(n <= default_cap, "{n} in flight, cap {default_cap}");
    // The add-on: the next job's client is rebuilt with the higher cap.
    set_add_ons(
        &env,
        tenant,
        "active",
        &["priority_lane", "jira_concurrency"],
    )
    .await;
    let n = run().await;
    assert!(
        n > default_cap && n <= add_on_cap,
        "{n} in flight, cap {add_on_cap}"
    );
    // Past due still counts as in force.
    set_add_ons(&env, tenant, "past_due", &["jira_concurrency"]).await;
    let n = run().await;
    assert!(n > default_cap && n <= add_on_cap, "{n} in flight");
    // Canceled: back to the default.
    set_add_ons(&env, tenant, "canceled", &["jira_concurrency"]).await;
    let n = run().await;
    assert!(n <= default_cap, "{n} in flight, cap {default_cap}");
}
