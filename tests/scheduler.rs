//! The scheduler against the real Postgres and Redis, with simulated time: exactly one job per
//! tick across racing replicas, catch-up after downtime, no replay of the past on first start,
//! a broken task not blocking the others, housekeeping through a real worker, and the
//! `keel scheduler` subcommands. No test sleeps through time: every "now" is handed in.

mod support;

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Duration as Span, SecondsFormat, TimeZone, Utc};
use keel_models::job::{JobStatus, NewJob};
use keel_scheduler::{
    default_tasks, CatchUp, Scheduler, Schedules, Task, TaskSettings, HOUSEKEEPING,
};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// A task enqueuing a `noop` daily at 03:15:00 UTC, its args naming the task and the tick.
fn daily(name: &'static str, catch_up: CatchUp) -> Task {
    Task::new(name, "0 15 3 * * *", catch_up, move |tick| {
        ("noop", json!({ "task": name, "tick": tick }))
    })
    .unwrap()
}

/// A scheduler on the env's database whose clock is stopped at `clock` (tests pass every
/// `now` explicitly; the clock only serves `run_until_stopped` and the CLI).
fn scheduler(env: &TestEnv, tasks: Vec<Task>, clock: DateTime<Utc>) -> Scheduler {
    Scheduler::new(
        env.keel.pool.clone(),
        env.keel.lane.clone(),
        env.keel.registry.clone(),
        tasks,
        Arc::new(move || clock),
    )
}

async fn scalar(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&env.keel.pool)
        .await
        .unwrap()
}

async fn recorded_ticks(env: &TestEnv, task: &str) -> Vec<DateTime<Utc>> {
    sqlx::query_scalar("SELECT tick FROM schedule_runs WHERE task = $1 ORDER BY tick")
        .bind(task)
        .fetch_all(&env.keel.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn three_replicas_over_120_days_enqueue_exactly_one_job_per_tick() {
    let env = TestEnv::new().await;
    // Three replicas, each with its own connection pool, as three processes would have.
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let pool = keel_models::db::connect(&env.keel.settings.database_url, 3)
            .await
            .unwrap();
        replicas.push(Scheduler::new(
            pool,
            env.keel.lane.clone(),
            env.keel.registry.clone(),
            vec![daily("daily-report", CatchUp::All)],
            keel_scheduler::system_clock(),
        ));
    }
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    let start = at(2030, 1, 1, 0, 0, 0);
    let mut enqueued = 0;
    // Every 6 simulated hours for 120 days, the three replicas tick at the same instant.
    for step in 0..=(120 * 4) {
        let now = start + Span::hours(6 * step);
        let (ra, rb, rc) = tokio::join!(a.tick_at(now), b.tick_at(now), c.tick_at(now));
        enqueued += ra.unwrap() + rb.unwrap() + rc.unwrap();
    }
    assert_eq!(enqueued, 120, "jobs the replicas say they enqueued");

    let ticks = recorded_ticks(&env, "daily-report").await;
    let expected: Vec<_> = (0..120)
        .map(|d| at(2030, 1, 1, 3, 15, 0) + Span::days(d))
        .collect();
    assert_eq!(ticks, expected, "one record per daily tick, none twice");
    assert_eq!(
        scalar(&env, "SELECT count(*) FROM jobs WHERE kind = 'noop'").await,
        120
    );
    // Each tick's job is the one its record points at, built for that tick, keyed by it.
    let rows: Vec<(DateTime<Utc>, Value, Option<String>)> = sqlx::query_as(
        "SELECT r.tick, j.args, j.idempotency_key FROM schedule_runs r JOIN jobs j ON j.id = r.job_id",
    )
    .fetch_all(&env.keel.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 120);
    let mut args_ticks = HashSet::new();
    for (tick, args, key) in rows {
        let tick_text = tick.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        assert_eq!(
            args["tick"]
                .as_str()
                .map(|s| s.parse::<DateTime<Utc>>().unwrap()),
            Some(tick)
        );
        assert_eq!(key, Some(format!("schedule:daily-report:{tick_text}")));
        args_ticks.insert(tick);
    }
    assert_eq!(args_ticks.len(), 120);
}

#[tokio::test]
async fn after_downtime_catch_up_all_enqueues_every_missed_tick_and_latest_only_the_newest() {
    let env = TestEnv::new().await;
    let t = at(2030, 3, 1, 3, 15, 0);
    let s = scheduler(
        &env,
        vec![
            daily("catch-all", CatchUp::All),
            daily("catch-latest", CatchUp::Latest),
        ],
        t,
    );
    // Both ran at T (recorded like any tick), then no scheduler ran for five days.
    for task in ["catch-all", "catch-latest"] {
        let job = s.run_once(task, t).await.unwrap().expect("first run at T");
        assert_eq!(job.kind, "noop");
    }
    let back = t + Span::days(5) + Span::hours(1);
    assert_eq!(s.tick_at(back).await.unwrap(), 5 + 1);

    let missed: Vec<_> = (0..=5).map(|d| t + Span::days(d)).collect();
    assert_eq!(recorded_ticks(&env, "catch-all").await, missed);
    assert_eq!(
        recorded_ticks(&env, "catch-latest").await,
        vec![t, t + Span::days(5)]
    );
    let jobs_for = |task: &'static str| {
        let pool = env.keel.pool.clone();
        async move {
            sqlx::query_scalar::<_, Value>(
                "SELECT args FROM jobs WHERE args->>'task' = $1 ORDER BY id",
            )
            .bind(task)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        jobs_for("catch-all").await.len(),
        6,
        "T plus one per missed day"
    );
    let latest = jobs_for("catch-latest").await;
    assert_eq!(latest.len(), 2, "T plus only the newest missed tick");
    assert_eq!(
        latest[1]["tick"],
        json!(t + Span::days(5)),
        "the job is for the newest tick"
    );
    // Nothing more is due at the same instant.
    assert_eq!(s.tick_at(back).await.unwrap(), 0);
}

#[tokio::test]
async fn a_first_start_enqueues_nothing_from_the_past() {
    let env = TestEnv::new().await;
    let tasks = || {
        vec![
            daily("daily-all", CatchUp::All),
            daily("daily-latest", CatchUp::Latest),
            Task::new("hourly", "0 0 * * * *", CatchUp::All, |tick| {
                ("noop", json!({ "tick": tick }))
            })
            .unwrap(),
        ]
    };
    let first_start = at(2030, 6, 1, 12, 0, 0);
    let s = scheduler(&env, tasks(), first_start);
    // Every daily and hourly tick since the epoch lies before now: none is replayed.
    assert_eq!(s.tick_at(first_start).await.unwrap(), 0);
    assert_eq!(scalar(&env, "SELECT count(*) FROM schedule_runs").await, 0);
    assert_eq!(env.count_jobs().await, 0);

    // From then on, ticks after the first start are due as usual.
    let later = at(2030, 6, 2, 3, 15, 0);
    let n = s.tick_at(later).await.unwrap();
    // One tick of each daily task, and the hourly ticks 13:00 on June 1 to 03:00 on June 2.
    assert_eq!(n, 2 + 15);
    assert_eq!(
        recorded_ticks(&env, "daily-all").await,
        vec![at(2030, 6, 2, 3, 15, 0)]
    );
    let hourly = recorded_ticks(&env, "hourly").await;
    assert_eq!(hourly.first(), Some(&(first_start + Span::hours(1))));
    assert_eq!(hourly.last(), Some(&at(2030, 6, 2, 3, 0, 0)));
}

#[tokio::test]
async fn a_task_that_fails_does_not_stop_the_other_tasks() {
    let env = TestEnv::new().await;
    let broken = Task::new("broken", "0 15 3 * * *", CatchUp::All, |_| {
        ("no.such.kind", json!({}))
    })
    .unwrap();
    let start = at(2030, 1, 1, 0, 0, 0);
    // The broken task comes first, so the healthy one runs after a failure in the same pass.
    let s = scheduler(&env, vec![broken, daily("healthy", CatchUp::All)], start);
    assert_eq!(s.tick_at(start).await.unwrap(), 0);

    let report = s.tick_report(start + Span::days(1)).await;
    assert_eq!(report.enqueued, 1);
    assert_eq!(report.failures.len(), 1);
    let (task, error) = &report.failures[0];
    assert_eq!(*task, "broken");
    assert!(
        error.to_string().contains("no.such.kind"),
        "the error names the kind: {error}"
    );
    // tick_at reports the healthy task's job; the failure is logged, not fatal to the pass.
    assert_eq!(s.tick_at(start + Span::days(2)).await.unwrap(), 1);
    assert!(recorded_ticks(&env, "broken").await.is_empty());
    assert_eq!(recorded_ticks(&env, "healthy").await.len(), 2);
    assert_eq!(env.count_jobs().await, 2);
    // A scheduler whose every task fails says so.
    let only_broken = scheduler(
        &env,
        vec![Task::new("broken", "* * * * * *", CatchUp::All, |_| {
            ("no.such.kind", json!({}))
        })
        .unwrap()],
        start,
    );
    only_broken.tick_at(start).await.unwrap();
    assert!(only_broken.tick_at(start + Span::seconds(5)).await.is_err());
}

/// Inserts a job row directly in a given state (queue `parked`, which no worker reads) and
/// backdates its `finished_at`.
async fn parked_job(env: &TestEnv, status: JobStatus, finished_days_ago: Option<i64>) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = env.keel.pool.acquire().await.unwrap();
    let new = NewJob {
        id,
        tenant_id: None,
        kind: "noop".into(),
        queue: "parked".into(),
        args: json!({}),
        max_attempts: 3,
        run_at: Some(Utc::now() + Span::days(365)),
        idempotency_key: None,
        dispatched: false,
    };
    keel_models::job::insert(&mut conn, &new).await.unwrap();
    sqlx::query(
        "UPDATE jobs SET status = $2, finished_at = now() - make_interval(days => $3::int),
                         lease_until = CASE WHEN $2 = 'running'::job_status
                                            THEN now() + interval '1 day' END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(finished_days_ago.map(|d| d as i32))
    .execute(&mut *conn)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn housekeeping_deletes_only_finished_jobs_older_than_the_retention() {
    let env = TestEnv::new().await;
    assert_eq!(env.keel.settings.job_retention_days, 14);
    let old = vec![
        parked_job(&env, JobStatus::Succeeded, Some(30)).await,
        parked_job(&env, JobStatus::Dead, Some(20)).await,
        parked_job(&env, JobStatus::Cancelled, Some(15)).await,
    ];
    let kept = vec![
        parked_job(&env, JobStatus::Succeeded, Some(1)).await,
        parked_job(&env, JobStatus::Dead, Some(13)).await,
        parked_job(&env, JobStatus::Queued, None).await,
        parked_job(&env, JobStatus::Running, None).await,
        // Not finished, whatever its finished_at says: it waits for its next attempt.
        parked_job(&env, JobStatus::Failed, Some(40)).await,
    ];
    // Tick records older than the retention go, except a task's newest one: its job is pruned
    // but the record stays (it is what stops the tick repeating).
    let mut tx = env.keel.pool.begin().await.unwrap();
    for (day, job) in [(1, old[1]), (2, old[0])] {
        assert!(keel_models::schedule::record_tick(
            &mut tx,
            "old-task",
            at(2020, 1, day, 0, 0, 0),
            job
        )
        .await
        .unwrap());
    }
    tx.commit().await.unwrap();

    env.spawn_worker(|_| {});
    let tasks = default_tasks(&TaskSettings {
        job_retention_days: env.keel.settings.job_retention_days,
    });
    let s = scheduler(&env, tasks, Utc::now());
    let job = s
        .run_once(HOUSEKEEPING, Utc::now())
        .await
        .unwrap()
        .expect("enqueued");
    assert_eq!(job.kind, "keel.housekeeping");
    assert_eq!(job.tenant_id, None);
    let done = env
        .wait_status(job.id, JobStatus::Succeeded, secs(20))
        .await;
    assert_eq!(
        done.result,
        Some(json!({ "deleted": 3, "schedule_runs_deleted": 1 }))
    );

    for id in &old {
        assert!(
            keel_models::job::get(&env.keel.pool, *id)
                .await
                .unwrap()
                .is_none(),
            "{id} should be deleted"
        );
    }
    for id in &kept {
        assert!(
            keel_models::job::get(&env.keel.pool, *id)
                .await
                .unwrap()
                .is_some(),
            "{id} should be kept"
        );
    }
    let runs = keel_models::schedule::runs(&env.keel.pool, "old-task", 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].tick,
        at(2020, 1, 2, 0, 0, 0),
        "the newest tick is kept"
    );
    assert_eq!(runs[0].job_id, None);
    assert_eq!(runs[0].job_status, None);
    // Its own run is listed with its status.
    let listed = s.list(Utc::now()).await.unwrap();
    assert_eq!(listed[0].last_job_id, Some(job.id));
    assert_eq!(listed[0].last_job_status, Some(JobStatus::Succeeded));
}

#[tokio::test]
async fn tenants_cannot_submit_or_see_internal_kinds() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "keel.housekeeping", "args": { "retention_days": 1 } }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_kind");
    // Tenants are told the public kinds only: every registered kind that is not internal.
    let registry = keel_jobs::builtin_registry();
    let public: Vec<&str> = registry.public_names();
    assert!(public.contains(&"noop") && !public.contains(&"keel.housekeeping"));
    assert_eq!(body["error"]["details"]["known_kinds"], json!(public));
    assert_eq!(env.count_jobs().await, 0);
}

fn keel_cli(env: &TestEnv, args: &[&str]) -> Output {
    keel_cli_with(env, args, &[])
}

fn keel_cli_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.child_env())
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run keel")
}

#[tokio::test]
async fn keel_scheduler_run_once_and_list() {
    let env = TestEnv::new().await;
    let housekeeping = &default_tasks(&TaskSettings {
        job_retention_days: 14,
    })[0];
    let next_before = housekeeping.schedule.after(&Utc::now()).next().unwrap();

    let out = keel_cli(&env, &["scheduler", "run-once", HOUSEKEEPING]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job_id: Uuid = stdout
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a job id in {stdout:?}"));
    let job = env.job(job_id).await;
    assert_eq!(job.kind, "keel.housekeeping");
    assert_eq!(job.args, json!({ "retention_days": 14 }));

    let out = keel_cli(&env, &["scheduler", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{list}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let next_after = housekeeping.schedule.after(&Utc::now()).next().unwrap();
    let line = list
        .lines()
        .find(|l| l.starts_with("housekeeping"))
        .unwrap_or_else(|| panic!("housekeeping in {list:?}"));
    assert!(line.contains("0 15 3 * * *"), "{line}");
    assert!(
        [next_before, next_after]
            .iter()
            .any(|n| line.contains(&n.to_rfc3339_opts(SecondsFormat::Secs, true))),
        "next run ({next_before} or {next_after}) in {line:?}"
    );
    assert!(line.contains(&format!("{job_id} queued")), "{line}");

    // A per-tenant scan's ticks have no job of their own: said so (it had read "(deleted)").
    let out = keel_cli(&env, &["scheduler", "run-once", "period-rollover"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("no tenant was due"), "{said}");
    let out = keel_cli(&env, &["scheduler", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    let line = list
        .lines()
        .find(|l| l.starts_with("period-rollover"))
        .unwrap_or_else(|| panic!("period-rollover in {list:?}"));
    assert!(line.ends_with("(one per tenant due)"), "{line}");

    let out = keel_cli(&env, &["scheduler", "run-once", "no-such-task"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no scheduled task is named"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn operators_list_schedules_over_http() {
    let env = TestEnv::new().await;
    let url = env.url("/admin/schedules");
    let denied = env.http.get(&url).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let (_, key, _) = env.tenant("acme").await;
    let tenant = env.http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(tenant.status(), 401, "a tenant key is not the admin token");

    let resp = env.http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let task = body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == HOUSEKEEPING)
        .unwrap_or_else(|| panic!("housekeeping missing: {body}"));
    assert_eq!(task["cron"], "0 15 3 * * *");
    assert_eq!(task["timezone"], "UTC");
    assert_eq!(task["catch_up"], "latest");
    assert!(task["next_run"].as_str().unwrap().contains("T03:15:00"));
    assert_eq!(task["last_tick"], Value::Null);
}

/// `KEEL_SCHEDULES`-style overrides in a time zone, through two racing replicas with one pass
/// every 10 simulated minutes, over both daylight-saving transitions of Europe/Berlin in 2030.
#[tokio::test]
async fn an_overridden_schedule_in_a_time_zone_runs_once_per_wall_clock_time_across_dst() {
    let env = TestEnv::new().await;
    let schedules = Schedules::new(
        "Europe/Berlin",
        Schedules::parse_list("spring=0 30 2 * * *;fall=0 30 2 * * *;catch-up=0 30 2 * * *")
            .unwrap(),
    )
    .unwrap();
    let tasks = schedules
        .apply(vec![
            daily("spring", CatchUp::All),
            daily("fall", CatchUp::All),
            daily("catch-up", CatchUp::All),
        ])
        .unwrap();
    let configured = |name: &str| tasks.iter().find(|t| t.name == name).unwrap().clone();
    async fn drive(
        env: &TestEnv,
        task: Task,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Span,
    ) -> Scheduler {
        let a = scheduler(env, vec![task.clone()], from);
        let b = scheduler(env, vec![task], from);
        let mut now = from;
        while now <= to {
            let (ra, rb) = tokio::join!(a.tick_at(now), b.tick_at(now));
            ra.unwrap();
            rb.unwrap();
            now += step;
        }
        a
    }

    // 2030-03-31: clocks go from 02:00 CET to 03:00 CEST, so there is no 02:30 that day: the
    // `cron` crate skips it (no run, not moved to 03:00), and nothing runs twice.
    let s = drive(
        &env,
        configured("spring"),
        at(2030, 3, 29, 12, 0, 0),
        at(2030, 4, 1, 12, 0, 0),
        Span::minutes(10),
    )
    .await;
    assert_eq!(
        recorded_ticks(&env, "spring").await,
        [at(2030, 3, 30, 1, 30, 0), at(2030, 4, 1, 0, 30, 0)]
    );
    let listed = s.list(at(2030, 4, 1, 12, 0, 0)).await.unwrap();
    assert_eq!(listed[0].cron, "0 30 2 * * *");
    assert_eq!(listed[0].timezone, "Europe/Berlin");
    assert_eq!(listed[0].next_run, Some(at(2030, 4, 2, 0, 30, 0)));
    assert_eq!(listed[0].last_tick, Some(at(2030, 4, 1, 0, 30, 0)));

    // 2030-10-27: clocks go from 03:00 CEST back to 02:00 CET, so 02:30 happens at 00:30 and
    // again at 01:30 UTC. Two instants would be two keys in schedule_runs; the task runs once,
    // at the first, whether the scheduler ran through the night or catches up after it.
    let fall = [
        at(2030, 10, 26, 0, 30, 0),
        at(2030, 10, 27, 0, 30, 0),
        at(2030, 10, 28, 1, 30, 0),
    ];
    drive(
        &env,
        configured("fall"),
        at(2030, 10, 25, 12, 0, 0),
        at(2030, 10, 28, 12, 0, 0),
        Span::minutes(10),
    )
    .await;
    assert_eq!(recorded_ticks(&env, "fall").await, fall);
    drive(
        &env,
        configured("catch-up"),
        at(2030, 10, 25, 12, 0, 0),
        at(2030, 10, 28, 12, 0, 0),
        Span::days(1),
    )
    .await;
    assert_eq!(recorded_ticks(&env, "catch-up").await, fall);
    assert_eq!(
        scalar(&env, "SELECT count(*) FROM jobs WHERE kind = 'noop'").await,
        2 + 3 + 3
    );
}

#[tokio::test]
async fn keel_reads_schedules_and_time_zone_from_the_environment_and_refuses_bad_ones() {
    let env = TestEnv::new().await;
    let out = keel_cli_with(
        &env,
        &["scheduler", "list"],
        &[
            ("KEEL_SCHEDULER_TIMEZONE", "Europe/Berlin"),
            (
                "KEEL_SCHEDULES",
                "housekeeping=0 0 4 * * *;monthly-billing-run=0 0 6 1 * *@UTC",
            ),
        ],
    );
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{list}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {list:?}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let header = line("TASK");
    assert_eq!(header[1..3], ["SCHEDULE", "TIME ZONE"]);
    assert_eq!(line(HOUSEKEEPING)[1..3], ["0 0 4 * * *", "Europe/Berlin"]);
    assert_eq!(line("monthly-billing-run")[1..3], ["0 0 6 1 * *", "UTC"]);
    assert_eq!(
        line("expiry-notices")[1..3],
        ["0 0 9 * * *", "Europe/Berlin"]
    );

    for (vars, names) in [
        (
            [("KEEL_SCHEDULES", "monthly-billing-run=0 0 6 1 *")],
            ["KEEL_SCHEDULES", "monthly-billing-run"],
        ),
        (
            [("KEEL_SCHEDULES", "monthly-billing=0 0 6 1 * *")],
            ["KEEL_SCHEDULES", "monthly-billing"],
        ),
        (
            [("KEEL_SCHEDULER_TIMEZONE", "Europe/Berlinn")],
            ["KEEL_SCHEDULER_TIMEZONE", "Europe/Berlinn"],
        ),
    ] {
        let out = keel_cli_with(&env, &["scheduler", "list"], &vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{vars:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        for name in names {
            assert!(stderr.contains(name), "{name} in {stderr}");
        }
    }
}
