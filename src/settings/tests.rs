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
    assert!(
        err.contains("KEEL_ENCRYPTION_KEY"),
        "both in one message: {err}"
    );
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

const TOKEN: &str = "an-admin-token-of-32-characters!";
const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Production settings that pass: real secrets, local billing asked for.
fn production() -> Settings {
    Settings {
        env: "production".into(),
        admin_token: Some(SecretString::from(TOKEN)),
        encryption_key: Some(SecretString::from(HEX_KEY)),
        billing_mode: Some("local".into()),
        ..Settings::default()
    }
}

#[test]
fn development_secrets_apply_only_while_every_listener_is_on_loopback() {
    let check = |s: &Settings| s.check_dev_secrets(&s.listeners());
    let loopback = [
        "127.0.0.1:8080",
        "127.0.0.2:80",
        "[::1]:8080",
        "[::ffff:127.0.0.1]:1",
    ];
    for addr in loopback {
        let s = Settings {
            api_addr: addr.parse().unwrap(),
            ..Settings::default()
        };
        check(&s).unwrap_or_else(|e| panic!("{addr}: {e}"));
    }
    let refused = |s: &Settings, var: &str, unset: &str| {
        let err = check(s).unwrap_err().to_string();
        for name in [var, "KEEL_ADMIN_TOKEN", "KEEL_ENCRYPTION_KEY"] {
            assert!(err.contains(name), "{name}: {err}");
        }
        assert!(err.ends_with(&format!("unset: {unset}")), "{err}");
    };
    for addr in [
        "0.0.0.0:8080",
        "[::]:8080",
        "10.0.0.5:8080",
        "192.168.1.2:80",
    ] {
        let s = Settings {
            api_addr: addr.parse().unwrap(),
            ..Settings::default()
        };
        refused(
            &s,
            &format!("KEEL_API_ADDR={addr}"),
            "KEEL_ADMIN_TOKEN, KEEL_ENCRYPTION_KEY",
        );
    }
    // A worker's metrics listener counts as much as the API's.
    let worker = Settings {
        worker_metrics_addr: Some("0.0.0.0:9100".parse().unwrap()),
        ..Settings::default()
    };
    refused(
        &worker,
        "KEEL_WORKER_METRICS_ADDR=0.0.0.0:9100",
        "KEEL_ADMIN_TOKEN, KEEL_ENCRYPTION_KEY",
    );
    // One secret set is not enough; both are.
    let half = Settings {
        api_addr: "0.0.0.0:8080".parse().unwrap(),
        admin_token: Some(SecretString::from(TOKEN)),
        ..Settings::default()
    };
    refused(&half, "KEEL_API_ADDR", "KEEL_ENCRYPTION_KEY");
    let both = Settings {
        encryption_key: Some(SecretString::from(HEX_KEY)),
        ..half
    };
    check(&both).unwrap();
    // The check is over whatever listeners it is given.
    let listeners = [
        ("KEEL_API_ADDR", "127.0.0.1:1".parse().unwrap()),
        ("KEEL_METRICS_ADDR", "0.0.0.0:2".parse().unwrap()),
    ];
    assert_eq!(
        super::safety::beyond_loopback(&listeners).map(|(v, _)| v),
        Some("KEEL_METRICS_ADDR")
    );
    let err = Settings::default()
        .check_dev_secrets(&listeners)
        .unwrap_err()
        .to_string();
    assert!(err.contains("KEEL_METRICS_ADDR=0.0.0.0:2"), "{err}");
    assert!(Settings::default().check_dev_secrets(&[]).is_ok());
}

#[test]
fn production_billing_is_stripe_or_local_on_purpose() {
    production().validate().unwrap();
    let no_mode = Settings {
        billing_mode: None,
        ..production()
    };
    let err = no_mode.validate().unwrap_err().to_string();
    for name in ["KEEL_BILLING_MODE=local", "KEEL_STRIPE_SECRET_KEY", "free"] {
        assert!(err.contains(name), "{name}: {err}");
    }
    let stripe = Settings {
        stripe_secret_key: Some(SecretString::from("sk_test_123")),
        ..no_mode.clone()
    };
    stripe.validate().unwrap();
    Settings {
        billing_mode: Some("stripe".into()),
        ..stripe.clone()
    }
    .validate()
    .unwrap();
    // Development keeps local mode without a word.
    Settings::default().validate().unwrap();
    let refused = |s: Settings, want: &[&str]| {
        let err = s.validate().unwrap_err().to_string();
        for w in want {
            assert!(err.contains(w), "{w}: {err}");
        }
    };
    refused(
        Settings {
            billing_mode: Some("stripe".into()),
            ..Settings::default()
        },
        &["KEEL_BILLING_MODE=stripe", "KEEL_STRIPE_SECRET_KEY"],
    );
    refused(
        Settings {
            billing_mode: Some("local".into()),
            ..stripe
        },
        &["KEEL_BILLING_MODE=local", "KEEL_STRIPE_SECRET_KEY"],
    );
    refused(
        Settings {
            billing_mode: Some("free".into()),
            ..Settings::default()
        },
        &["KEEL_BILLING_MODE", "\"free\""],
    );
}

#[test]
fn private_networks_in_production_need_an_acknowledgement() {
    let open = Settings {
        allow_private_networks: true,
        ..production()
    };
    let err = open.validate().unwrap_err().to_string();
    assert!(err.contains("KEEL_ALLOW_PRIVATE_NETWORKS=true"), "{err}");
    assert!(
        err.contains("KEEL_ALLOW_PRIVATE_NETWORKS_IN_PRODUCTION=true"),
        "{err}"
    );
    Settings {
        allow_private_networks_in_production: true,
        ..open
    }
    .validate()
    .unwrap();
    Settings {
        allow_private_networks: true,
        ..Settings::default()
    }
    .validate()
    .unwrap();
}

/// The environment given to [`Settings::load_from`].
fn env(vars: &[(&str, &str)]) -> config::Map<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn stripes_conventional_names_are_read_where_the_keel_names_are_unset() {
    let s = Settings::load_from(env(&[
        ("STRIPE_SECRET_KEY", "sk_test_conventional"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_conventional"),
    ]))
    .unwrap();
    let secret = |v: &Option<SecretString>| v.as_ref().map(|s| s.expose_secret().to_string());
    assert_eq!(
        secret(&s.stripe_secret_key).as_deref(),
        Some("sk_test_conventional")
    );
    assert_eq!(
        secret(&s.stripe_webhook_secrets).as_deref(),
        Some("whsec_conventional")
    );
    let s = Settings::load_from(env(&[
        ("STRIPE_SECRET_KEY", "sk_test_conventional"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_conventional"),
        ("KEEL_STRIPE_SECRET_KEY", "sk_test_keel"),
        ("KEEL_STRIPE_WEBHOOK_SECRETS", "whsec_new,whsec_old"),
    ]))
    .unwrap();
    assert_eq!(
        secret(&s.stripe_secret_key).as_deref(),
        Some("sk_test_keel")
    );
    assert_eq!(s.stripe_webhook_secret_list().len(), 2);
    // Compose passes an unset variable as an empty one: still local mode.
    let s = Settings::load_from(env(&[
        ("STRIPE_SECRET_KEY", ""),
        ("STRIPE_WEBHOOK_SECRET", " "),
    ]))
    .unwrap();
    assert!(s.stripe_secret_key.is_none() && s.stripe_webhook_secrets.is_none());
    // A bad conventional key is refused like a bad KEEL_ one.
    let err = Settings::load_from(env(&[("STRIPE_SECRET_KEY", "pk_test_public")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("STRIPE_SECRET_KEY"), "{err}");
    // In production the conventional key counts as the Stripe key.
    Settings::load_from(env(&[
        ("KEEL_ENV", "production"),
        ("KEEL_ADMIN_TOKEN", TOKEN),
        ("KEEL_ENCRYPTION_KEY", HEX_KEY),
        ("STRIPE_SECRET_KEY", "sk_live_conventional"),
    ]))
    .unwrap();
}

#[test]
fn the_encryption_key_may_be_hex_or_base64_with_or_without_an_id() {
    let base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for spec in [
        HEX_KEY.to_string(),
        HEX_KEY.to_uppercase(),
        format!("main:{HEX_KEY}"),
        base64.to_string(),
        format!("new:{HEX_KEY},old:{base64}"),
    ] {
        let s = Settings::load_from(env(&[("KEEL_ENCRYPTION_KEY", &spec)]))
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(s.encryption_key_spec(), spec);
    }
    for bad in [&HEX_KEY[..60], "zz", "main:", "k:0123"] {
        let err = Settings::load_from(env(&[("KEEL_ENCRYPTION_KEY", bad)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEEL_ENCRYPTION_KEY"), "{bad}: {err}");
    }
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
