//! Keys and tenants (issue 23, item 10): a revoked key stops working in every API process within
//! a second; an operator can disable a tenant (API and CLI), whose keys then answer 401 and whose
//! waiting jobs are held until it is enabled again.

use super::*;

/// A second API process on the same database and Redis, with its own key cache.
async fn second_api(env: &TestEnv) -> String {
    let api = env.keel.api().await.unwrap();
    let base = format!("http://127.0.0.1:{}", api.port());
    let stop = env.shutdown.clone();
    tokio::spawn(async move {
        let _ = api.run_until_stopped(stop).await;
    });
    base
}

async fn status_at(env: &TestEnv, base: &str, key: &str) -> (u16, Value) {
    read(
        env.http
            .get(format!("{base}/api/tenant"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn admin(env: &TestEnv, path: &str) -> (u16, Value) {
    read(
        env.http
            .post(env.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_key_revoked_through_one_api_process_stops_working_in_another_within_a_second() {
    let env = TestEnv::new().await;
    let other = second_api(&env).await;
    let (_, first, _) = env.tenant("acme").await;
    let (status, body) = env.call(Method::POST, "/api/keys", &first, None).await;
    assert_eq!(status, 201, "{body}");
    let (second, second_id) = (
        body["api_key"].as_str().unwrap().to_string(),
        body["id"].as_str().unwrap().to_string(),
    );
    // The other process has the key in its cache.
    assert_eq!(status_at(&env, &other, &second).await.0, 200);
    let (status, _) = env
        .call(
            Method::DELETE,
            &format!("/api/keys/{second_id}"),
            &first,
            None,
        )
        .await;
    assert_eq!(status, 204);
    // Here at once; there once the cache's trust in the lookup (begun before the revoke) ends.
    assert_eq!(status_at(&env, &env.base, &second).await.0, 401);
    tokio::time::sleep(keel_api::key_cache::KEY_TTL).await;
    assert!(keel_api::key_cache::KEY_TTL < Duration::from_secs(1));
    let (status, body) = status_at(&env, &other, &second).await;
    assert_error(status, &body, 401, "unauthorized");
}

#[tokio::test]
async fn a_disabled_tenants_keys_answer_401_and_its_waiting_jobs_are_held_until_enabled() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("careless").await;
    let (_, neighbour, _) = env.tenant("neighbour").await;
    let held: Vec<Uuid> =
        futures::future::join_all((0..3).map(|i| env.submit_ok(&key, noop(i)))).await;

    let (status, body) = admin(&env, &format!("/admin/tenants/{tenant}/disable")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], true);
    assert_eq!(body["held_jobs"], 3);
    // Its keys are refused, saying why; other tenants are untouched.
    let (status, body) = get(&env, &key, "/api/jobs").await;
    assert_error(status, &body, 401, "tenant_disabled");
    let (status, body) = env.submit(&key, noop(9)).await;
    assert_error(status, &body, 401, "tenant_disabled");
    let (status, body) = read(
        env.http
            .get(env.url(&format!("/admin/tenants/{tenant}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["held_jobs"]), (200, &json!(3)), "{body}");

    // A worker runs the neighbour's job; the held jobs stay queued.
    env.spawn_worker(|_| {});
    let marker = env.submit_ok(&neighbour, noop(100)).await;
    env.wait_status(marker, JobStatus::Succeeded, secs(20))
        .await;
    let marker = env.submit_ok(&neighbour, noop(101)).await;
    env.wait_status(marker, JobStatus::Succeeded, secs(20))
        .await;
    for id in &held {
        assert_eq!(env.job(*id).await.status, JobStatus::Queued);
    }

    // Enabled: the keys work and the held jobs run.
    let (status, body) = admin(&env, &format!("/admin/tenants/{tenant}/enable")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["released_jobs"], 3);
    for id in &held {
        let job = env.wait_status(*id, JobStatus::Succeeded, secs(20)).await;
        assert_eq!(job.attempt, 1);
    }
    let (status, _) = get(&env, &key, "/api/jobs").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn disabling_needs_the_admin_token_and_an_existing_tenant() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let (status, body) = env
        .call(
            Method::POST,
            &format!("/admin/tenants/{tenant}/disable"),
            &key,
            None,
        )
        .await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = admin(&env, &format!("/admin/tenants/{}/disable", Uuid::new_v4())).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = admin(&env, "/admin/tenants/nope/disable").await;
    assert_error(status, &body, 400, "invalid_id");
    assert_eq!(get(&env, &key, "/api/tenant").await.0, 200);
}

/// `keel tenant disable|enable NAME` does the same from the command line.
#[tokio::test]
async fn the_cli_disables_and_enables_a_tenant_by_name() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("cli-acme").await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.child_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run(&["tenant", "disable", "cli-acme"]);
    assert!(said.contains("disabled"), "{said}");
    // Another process disabled it: this API refuses the key once its cache stops trusting it.
    tokio::time::sleep(keel_api::key_cache::KEY_TTL).await;
    let (status, body) = get(&env, &key, "/api/tenant").await;
    assert_error(status, &body, 401, "tenant_disabled");
    let said = run(&["tenant", "enable", "cli-acme"]);
    assert!(said.contains("enabled"), "{said}");
    assert_eq!(get(&env, &key, "/api/tenant").await.0, 200);
}
