//! The README's walk-through, as a test: create a tenant, submit a job, poll it to completion.

mod support;

use std::time::Duration;

use keel_models::job::JobStatus;
use serde_json::Value;
use support::*;
use uuid::Uuid;

#[tokio::test]
async fn a_submitted_job_runs_to_succeeded_and_is_visible_through_the_api() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = env.submit(&key, noop(7)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(body["status_url"], format!("/api/jobs/{id}"));
    env.wait_status(id, JobStatus::Succeeded, Duration::from_secs(10))
        .await;
    let resp = env
        .http
        .get(env.url(&format!("/api/jobs/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["result"]["n"], 7);
}

/// Unreachable services: one line naming the URL and how to start the service, exit code ≠ 0.
#[test]
fn unreachable_postgres_or_redis_is_one_line_naming_the_url() {
    let port = support::free_port();
    for (var, url, service) in [
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/keel"),
            "Postgres",
        ),
        ("REDIS_URL", format!("redis://127.0.0.1:{port}"), "Redis"),
    ] {
        // Its own database: with Redis down, `up` has created and migrated one by then.
        let db = ScratchDatabase::new();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .arg("up")
            .env("DATABASE_URL", &db.url)
            .env(var, &url)
            .env("RUST_LOG", "off")
            .output()
            .expect("run keel");
        assert!(
            !out.status.success(),
            "{service}: exit status {:?}",
            out.status
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{service}: {stderr}");
        assert!(lines[0].contains(&url), "{service}: {stderr}");
        assert!(
            lines[0].contains(&format!("cannot reach {service}")),
            "{stderr}"
        );
        assert!(lines[0].contains("Start it"), "{stderr}");
    }
}

/// Processes started at once on a database that does not exist yet (compose starts `migrate`,
/// `api`, `worker` and `scheduler` together): every one comes up, and the schema is whole.
/// Before, all but one failed creating the database, and the migrations deadlocked: a process
/// waiting in `pg_advisory_lock` held a snapshot that `CREATE INDEX CONCURRENTLY` waited on,
/// and Postgres failed the index build, leaving an invalid index that failed every later run.
#[test]
fn keel_processes_starting_at_once_on_a_fresh_database_all_come_up() {
    let db = ScratchDatabase::new();
    let url = &db.url;
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
                .arg("migrate")
                .env("DATABASE_URL", url)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run keel migrate")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = keel_models::db::connect(url, 1).await.unwrap();
        let (applied, invalid): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM _sqlx_migrations WHERE success),
                    (SELECT count(*) FROM pg_index WHERE NOT indisvalid)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(applied as usize, keel_models::db::MIGRATOR.iter().count());
        assert_eq!(invalid, 0, "invalid indexes left behind");
        pool.close().await;
    });
}

/// `keel api`, `worker` and `scheduler` do not migrate (`keel migrate` and `keel up` do). On a
/// database that is missing they say to run `keel migrate` (they had said to start Postgres,
/// which was running); on one not migrated they refuse to start (the API had answered `/ready`
/// 200 and every request 500, `relation "jobs" does not exist`).
#[test]
fn a_process_that_does_not_migrate_refuses_a_missing_or_unmigrated_database() {
    let db = ScratchDatabase::new();
    let start = |command: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .arg(command)
            .env("DATABASE_URL", &db.url)
            .env("KEEL_API_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command} started");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        stderr
    };
    for command in ["api", "worker", "scheduler"] {
        let stderr = start(command);
        assert!(
            stderr.contains("does not exist") && stderr.contains("keel migrate"),
            "{stderr}"
        );
        assert!(!stderr.contains("pg_ctlcluster"), "{stderr}");
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(keel_models::db::create_database_if_missing(&db.url))
        .unwrap();
    for command in ["api", "worker", "scheduler"] {
        let stderr = start(command);
        assert!(
            stderr.contains("not migrated") && stderr.contains("keel migrate"),
            "{stderr}"
        );
    }
}

/// A no-transaction migration that failed during `CREATE INDEX CONCURRENTLY` (a deadlock, a
/// kill) leaves its index behind, invalid, and itself unrecorded. The next `keel migrate` drops
/// the leftover and builds it again; before, every later run failed with "relation … already
/// exists" until someone dropped the index by hand.
#[tokio::test]
async fn a_migration_whose_concurrent_index_build_failed_runs_again() {
    let env = TestEnv::new().await;
    let pool = &env.keel.pool;
    let index = "jobs_tenant_ended_unsuccessfully";
    let (version,): (i64,) = sqlx::query_as(
        "SELECT version FROM _sqlx_migrations WHERE description LIKE '%tenant ended unsuccessfully%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    // As the failed build leaves it: the index invalid, the migration not recorded.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(version)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1::regclass")
        .bind(index)
        .execute(pool)
        .await
        .unwrap();

    keel_models::db::migrate(pool).await.unwrap();
    let (valid, recorded): (bool, bool) = sqlx::query_as(
        "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = $1::regclass),
                EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $2 AND success)",
    )
    .bind(index)
    .bind(version)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(valid && recorded, "valid {valid}, recorded {recorded}");
}

/// A malformed configuration file: one line (the TOML error had quoted the file over several).
#[test]
fn a_malformed_config_file_is_one_line() {
    let path = std::env::temp_dir().join(format!("keel-test-{}.toml", Uuid::new_v4()));
    std::fs::write(&path, "worker_concurrency = 4\n[unclosed\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("migrate")
        .env("KEEL_CONFIG", &path)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("invalid configuration"), "{stderr}");
}

/// A misspelt key in the configuration file is refused, naming it (it had been ignored, the
/// setting silently left at its default); the file's right keys, `[schedules]` included, load.
#[tokio::test]
async fn an_unknown_key_in_the_config_file_is_refused() {
    let env = TestEnv::new().await;
    let run = |text: &str| {
        let path = std::env::temp_dir().join(format!("keel-test-{}.toml", Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["scheduler", "list"])
            .envs(env.child_env())
            .env("KEEL_CONFIG", &path)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        out
    };
    let out = run("worker_concurency = 4\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"worker_concurency\""), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let out = run("worker_concurrency = 4\n[schedules]\nhousekeeping = \"0 0 4 * * *\"\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A whole-number setting given anything else is refused, naming it: the `config` crate had
/// rounded `1.5` to 2 and read `yes` as 1.
#[test]
fn a_whole_number_setting_given_a_fraction_or_a_word_is_refused() {
    for (var, value, key) in [
        ("KEEL_WORKER_CONCURRENCY", "1.5", "worker_concurrency"),
        ("KEEL_WORKER_PREFETCH", "yes", "worker_prefetch"),
        ("KEEL_WORKER_LEASE_MS", "-30000", "worker_lease_ms"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["scheduler", "list"])
            .env(var, value)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("whole number"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// A worker's bad flags or queues are usage errors like a bad setting: exit code 2 and one
/// line, before anything connects (they had been 1, after connecting).
#[test]
fn a_workers_bad_flags_or_queues_exit_2() {
    for (args, env, says) in [
        (&["worker", "--queues", "bogus"][..], None, "\"bogus\""),
        (&["worker", "--concurrency", "0"], None, "--concurrency"),
        (&["worker", "--prefetch", "10001"], None, "--prefetch"),
        (
            &["worker"],
            Some(("KEEL_WORKER_QUEUES", "bogus")),
            "KEEL_WORKER_QUEUES",
        ),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keel"));
        command
            .args(args)
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
            .env("RUST_LOG", "off");
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("cannot reach Postgres"), "{stderr}");
    }
}

/// An address already taken: one line naming it and its variable (it had been only "Address
/// already in use (os error 98)").
#[tokio::test]
async fn an_api_address_in_use_is_one_line_naming_it() {
    let env = TestEnv::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("api")
        .envs(env.child_env())
        .env("KEEL_API_ADDR", &addr)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&addr) && lines[0].contains("KEEL_API_ADDR"),
        "{stderr}"
    );
}

/// A worker process's own `/metrics` carries the job duration histogram of the jobs it ran.
#[tokio::test]
async fn worker_metrics_endpoint_serves_the_job_duration_histogram() {
    let env = TestEnv::new().await;
    env.spawn_worker(|_| {});
    let (_, key, _) = env.tenant("acme").await;
    let id = env.submit_ok(&key, noop(1)).await;
    env.wait_status(id, JobStatus::Succeeded, Duration::from_secs(10))
        .await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(keel_api::metrics::serve(
        listener,
        None,
        env.shutdown.clone(),
    ));
    let body = env
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(r#"keel_job_duration_seconds_bucket{kind="noop",outcome="succeeded""#),
        "{body}"
    );
}

/// The Docker image (README § Docker) builds with the Rust of its `FROM rust:X.Y` line, which
/// must be at least the `rust-version` of every crate in Cargo.lock: the image stayed on 1.88
/// while async-stripe and uuid moved to 1.89, and `cargo build --locked` in it would have failed.
#[test]
fn the_docker_image_uses_a_rust_every_locked_crate_accepts() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a FROM rust:X.Y line");
    let version = |v: &str| -> (u32, u32) {
        let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let have = version(image);
    // Only the crates the image builds (Linux): unfiltered, the resolve also wants every other
    // platform's crates (Android, Windows, …), which a machine that has only built Keel here
    // never downloaded, so `--offline` failed on a fresh clone's first run.
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let too_new: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > have).then(|| format!("{} {} needs {needs}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "Dockerfile has rust:{image}; {too_new:?}"
    );
}

/// Off loopback the public development secrets are refused: the Docker image's default
/// (`keel up` on 0.0.0.0, `KEEL_ENV` unset) had granted `POST /api/tenants` to the token in
/// this repository. Exit code 2, one line naming both variables, before anything connects.
#[test]
fn beyond_loopback_keel_refuses_to_start_without_its_secrets() {
    let keel = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(args)
            .env_remove("KEEL_ADMIN_TOKEN")
            .env_remove("KEEL_ENCRYPTION_KEY")
            .env_remove("KEEL_ENV")
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
            .env("RUST_LOG", "off")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for (args, env, var) in [
        (
            &["up"][..],
            &[("KEEL_API_ADDR", "0.0.0.0:0")][..],
            "KEEL_API_ADDR=0.0.0.0:0",
        ),
        (
            &["api"],
            &[("KEEL_API_ADDR", "[::]:0")],
            "KEEL_API_ADDR=[::]:0",
        ),
        (
            &["worker"],
            &[("KEEL_WORKER_METRICS_ADDR", "0.0.0.0:0")],
            "KEEL_WORKER_METRICS_ADDR=0.0.0.0:0",
        ),
        (
            &["tenant", "create", "--name", "x"],
            &[("KEEL_API_ADDR", "0.0.0.0:0")],
            "KEEL_API_ADDR",
        ),
    ] {
        let (code, stderr) = keel(args, env);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        for name in [var, "KEEL_ADMIN_TOKEN", "KEEL_ENCRYPTION_KEY"] {
            assert!(stderr.contains(name), "{args:?}: {name} not in {stderr}");
        }
    }
    // With both set it gets as far as the database; `migrate` uses neither secret.
    let secrets = [
        ("KEEL_API_ADDR", "0.0.0.0:0"),
        ("KEEL_ADMIN_TOKEN", "an-admin-token-of-32-characters!"),
        (
            "KEEL_ENCRYPTION_KEY",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ];
    for (args, env) in [(&["api"][..], &secrets[..]), (&["migrate"], &secrets[..1])] {
        let (code, stderr) = keel(args, env);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("127.0.0.1:1"), "{args:?}: {stderr}");
    }
}

/// `keel secrets rotate` against the real database: values sealed under key `a` (one of them
/// in the format from before values were bound to their tenant) are re-sealed under `b`, after
/// which `b` alone opens them; a second run changes nothing; a value copied into another
/// tenant's row opens for no one and is reported, and the command fails.
#[tokio::test]
async fn secrets_rotate_reseals_every_stored_secret_under_the_new_key() {
    use keel_models::crypto::{Field, SecretBox};
    const KEY_A: &str = "a:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY_B: &str = "b:HxEdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";
    /// `whsec_sealed_before_v2_0123456789` sealed by Keel under key `a` before v2 (no
    /// associated data).
    const V1: &str =
        "v1.a.CQkJCQkJCQkJCQkJxHB7XuTAMMGwZVWd9PTeqVZgunEsNB-FIsVRX6YBvH-x22eStsZ86zDpZ_S9gdHdSQ";
    let env = TestEnv::with(|s| s.encryption_key = Some(KEY_A.into())).await;
    let pool = &env.keel.pool;
    let (acme, _, acme_secret) = env.tenant("acme").await;
    let (legacy, _, _) = env.tenant("legacy").await;
    sqlx::query("UPDATE tenants SET signing_secret = $1 WHERE id = $2")
        .bind(V1)
        .bind(legacy)
        .execute(pool)
        .await
        .unwrap();
    let token = env
        .keel
        .services
        .secrets
        .seal(Field::JiraToken, acme, "jira-api-token");
    keel_models::jira::upsert_connection(
        pool,
        acme,
        &keel_models::jira::NewJiraConnection {
            base_url: "https://acme.atlassian.net",
            email: "ops@acme.example",
            token_sealed: &token,
            account_id: "acc-1",
            display_name: None,
        },
    )
    .await
    .unwrap();

    let rotate = |key: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["secrets", "rotate", "--batch-size", "1"])
            .envs(env.child_env())
            .env("KEEL_ENCRYPTION_KEY", key)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = rotate(&format!("{KEY_B},{KEY_A}"));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for line in [
        "tenants.signing_secret: 2 re-sealed, 0 already current, 0 changed meanwhile (left as written), 0 unreadable",
        "tenant_jira.token_sealed: 1 re-sealed, 0 already current",
    ] {
        assert!(stdout.contains(line), "{line} not in {stdout}");
    }

    let only_b = SecretBox::from_config(KEY_B).unwrap();
    let signing = |tenant| async move {
        keel_models::tenant::sealed_signing_secret(pool, tenant)
            .await
            .unwrap()
            .unwrap()
    };
    for (tenant, want) in [
        (acme, acme_secret.as_str()),
        (legacy, "whsec_sealed_before_v2_0123456789"),
    ] {
        let sealed = signing(tenant).await;
        assert!(sealed.starts_with("v2.b."), "{sealed}");
        assert_eq!(
            only_b.open(Field::SigningSecret, tenant, &sealed).unwrap(),
            want
        );
    }
    let jira = keel_models::jira::connection(pool, acme)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        only_b
            .open(Field::JiraToken, acme, &jira.token_sealed)
            .unwrap(),
        "jira-api-token"
    );

    // Again: nothing left to do.
    let (code, stdout, _) = rotate(&format!("{KEY_B},{KEY_A}"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("tenants.signing_secret: 0 re-sealed, 2 already current"),
        "{stdout}"
    );

    // A ciphertext copied into another tenant's row (or column) opens for no one there.
    let (copy, _, _) = env.tenant("copycat").await;
    let acme_sealed = signing(acme).await;
    assert!(only_b
        .open(Field::SigningSecret, copy, &acme_sealed)
        .is_err());
    assert!(only_b.open(Field::JiraToken, acme, &acme_sealed).is_err());
    sqlx::query("UPDATE tenants SET signing_secret = $1 WHERE id = $2")
        .bind(&acme_sealed)
        .bind(copy)
        .execute(pool)
        .await
        .unwrap();
    let (code, stdout, stderr) = rotate(KEY_B);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("1 unreadable"), "{stdout}");
    assert!(stderr.contains(&copy.to_string()), "{stderr}");
    assert!(
        !stderr.contains(&acme_secret),
        "no secret in errors: {stderr}"
    );
}
