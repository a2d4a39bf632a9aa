use super::*;

#[test]
fn defaults_are_valid_and_dev_key_decodes() {
    Settings::default().validate().unwrap();
}

#[test]
fn schedules_and_time_zone_configure_the_built_in_tasks() {
    let s = Settings {
        scheduler_timezone: "Europe/Berlin".into(),
        schedules: Some(ScheduleOverrides::List(
            "monthly-billing-run=0 0 6 1 * *; housekeeping=0 0 4 * * *@America/New_York".into(),
        )),
        ..Settings::default()
    };
    s.validate().unwrap();
    let tasks = keel_scheduler::default_tasks(&s.task_settings());
    let find = |name: &str| tasks.iter().find(|t| t.name == name).unwrap();
    let monthly = find("monthly-billing-run");
    assert_eq!(monthly.schedule.source(), "0 0 6 1 * *");
    assert_eq!(monthly.timezone.name(), "Europe/Berlin");
    let housekeeping = find("housekeeping");
    assert_eq!(housekeeping.schedule.source(), "0 0 4 * * *");
    assert_eq!(housekeeping.timezone.name(), "America/New_York");
    let rollover = find("period-rollover");
    assert_eq!(rollover.schedule.source(), "0 0 * * * *");
    assert_eq!(rollover.timezone.name(), "Europe/Berlin");

    let table = Settings {
        schedules: Some(ScheduleOverrides::Table(BTreeMap::from([(
            "credit-expiry".to_string(),
            "0 20 0 * * *".to_string(),
        )]))),
        ..Settings::default()
    };
    let tasks = keel_scheduler::default_tasks(&table.task_settings());
    let credit = tasks.iter().find(|t| t.name == "credit-expiry").unwrap();
    assert_eq!(credit.schedule.source(), "0 20 0 * * *");
    assert_eq!(credit.timezone.name(), "UTC");
}

#[test]
fn production_refuses_development_secrets() {
    let s = Settings {
        env: "production".into(),
        ..Settings::default()
    };
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("KEEL_ADMIN_TOKEN"), "{err}");
}

#[test]
fn the_field_names_are_the_settings() {
    let names = super::field_names();
    for name in [
        "database_url",
        "worker_concurrency",
        "schedules",
        "scheduler_timezone",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(!names.contains(&"worker_concurency"));
}

#[test]
fn bad_values_name_their_variable() {
    let refused = |s: Settings, var: &str| {
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains(var), "{var}: {err}");
    };
    let default = Settings::default;
    refused(
        Settings {
            worker_concurrency: 0,
            ..default()
        },
        "KEEL_WORKER_CONCURRENCY",
    );
    refused(
        Settings {
            threads: 1025,
            ..default()
        },
        "KEEL_THREADS",
    );
    for (var, tweak) in [
        (
            "KEEL_WORKER_HEARTBEAT_MS",
            (|s| s.worker_heartbeat_ms = 0) as fn(&mut Settings),
        ),
        ("KEEL_WORKER_HEARTBEAT_MS", |s| {
            s.worker_heartbeat_ms = u64::MAX
        }),
        ("KEEL_WORKER_LEASE_MS", |s| s.worker_lease_ms = u64::MAX),
        ("KEEL_RELAY_INTERVAL_MS", |s| s.relay_interval_ms = 0),
        ("KEEL_WORKER_BLOCK_MS", |s| s.worker_block_ms = 0),
        ("KEEL_DATABASE_MAX_CONNECTIONS", |s| {
            s.database_max_connections = 0
        }),
        ("KEEL_BACKOFF_CAP_MS", |s| s.backoff_cap_ms = 1),
    ] {
        let mut s = default();
        tweak(&mut s);
        refused(s, var);
    }
    for days in [0, 3651] {
        refused(
            Settings {
                job_retention_days: days,
                ..default()
            },
            "KEEL_JOB_RETENTION_DAYS",
        );
    }
    let s = Settings {
        scheduler_timezone: "Mars/Olympus".into(),
        ..Settings::default()
    };
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("KEEL_SCHEDULER_TIMEZONE"), "{err}");
    assert!(err.contains("Mars/Olympus"), "{err}");
    for (spec, names) in [
        ("monthly-billing-run=0 0 6 1 *", "monthly-billing-run"),
        ("no-such-task=0 0 4 * * *", "no-such-task"),
        ("housekeeping=0 0 4 * * *@Mars/Olympus", "Mars/Olympus"),
        ("housekeeping", "housekeeping"),
    ] {
        let s = Settings {
            schedules: Some(ScheduleOverrides::List(spec.into())),
            ..Settings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.starts_with("KEEL_SCHEDULES is invalid"), "{err}");
        assert!(err.contains(names), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    let s = Settings {
        encryption_key: Some(SecretString::from("short")),
        ..Settings::default()
    };
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("KEEL_ENCRYPTION_KEY"));
}

/// A billing month moved out of UTC's month is blamed on the variable that set the zone: an
/// override's own `@Zone` had been reported as `KEEL_SCHEDULER_TIMEZONE`, which was not set.
#[test]
fn a_utc_month_error_names_where_the_zone_came_from() {
    let err = |timezone: &str, spec: Option<&str>| {
        Settings {
            scheduler_timezone: timezone.into(),
            schedules: spec.map(|s| ScheduleOverrides::List(s.into())),
            ..Settings::default()
        }
        .validate()
        .unwrap_err()
        .to_string()
    };
    let own_zone = err("UTC", Some("monthly-billing-run=0 0 0 1 * *@Asia/Tokyo"));
    assert!(
        own_zone.starts_with("KEEL_SCHEDULES is invalid"),
        "{own_zone}"
    );
    let default_zone = err("Asia/Tokyo", None);
    assert!(
        default_zone.starts_with("KEEL_SCHEDULER_TIMEZONE is invalid"),
        "{default_zone}"
    );
    let both = err("Asia/Tokyo", Some("monthly-billing-run=0 0 1 1 * *"));
    assert!(
        both.starts_with("KEEL_SCHEDULER_TIMEZONE with KEEL_SCHEDULES is invalid"),
        "{both}"
    );
}

#[test]
fn job_time_limits_and_jira_bounds_are_checked_and_named() {
    let s = Settings {
        job_timeouts: Some("jira.analyze.portfolio=7200000, *=600000".into()),
        jira_max_issues: 500,
        ..Settings::default()
    };
    s.validate().unwrap();
    let w = s.worker_config();
    let limit = |kind: &str| w.job_timeouts.for_kind(kind, Duration::from_secs(1));
    assert_eq!(limit("jira.analyze.portfolio"), Duration::from_secs(7200));
    assert_eq!(limit("noop"), Duration::from_secs(600));
    assert_eq!(s.jira_config().max_issues, 500);
    for (bad, var) in [
        (
            Settings {
                job_timeouts: Some("webhook.delivr=1000".into()),
                ..Settings::default()
            },
            "KEEL_JOB_TIMEOUTS",
        ),
        (
            Settings {
                jira_max_response_bytes: 0,
                ..Settings::default()
            },
            "KEEL_JIRA_MAX_RESPONSE_BYTES",
        ),
        (
            Settings {
                jira_max_job_pages: 0,
                ..Settings::default()
            },
            "KEEL_JIRA_MAX_JOB_PAGES",
        ),
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(var), "{err}");
    }
}
