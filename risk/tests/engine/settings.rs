use chrono::Weekday;
use keel_risk::{Settings, Thresholds};

#[test]
fn serde_defaults_fill_missing_fields() {
    let s: Settings = serde_json::from_str("{}").unwrap();
    assert_eq!(s, Settings::default());
    let s: Settings =
        serde_json::from_str(r#"{"working_days":["Sun","monday"],"thresholds":{"critical":90}}"#)
            .unwrap();
    assert_eq!(s.working_days, vec![Weekday::Sun, Weekday::Mon]);
    assert_eq!(
        s.thresholds,
        Thresholds {
            medium: 30,
            high: 55,
            critical: 90
        }
    );
    assert_eq!(s.daily_rate_per_person, 2500.0);
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn settings_json_shape_is_stable() {
    let json = serde_json::to_string(&Settings::default()).unwrap();
    assert_eq!(
        json,
        r#"{"daily_rate_per_person":2500.0,"working_days":["Mon","Tue","Wed","Thu","Fri"],"thresholds":{"medium":30,"high":55,"critical":75}}"#
    );
}

#[test]
fn rejects_a_rate_below_zero_above_the_bound_or_not_finite() {
    for rate in [-1.0, f64::NAN, f64::INFINITY, 1e308, 1_000_000.5] {
        let s = Settings {
            daily_rate_per_person: rate,
            ..Settings::default()
        };
        let err = s.validate().unwrap_err();
        assert!(err.contains("daily_rate_per_person"), "{err}");
    }
    for rate in [0.0, 1_000_000.0] {
        let s = Settings {
            daily_rate_per_person: rate,
            ..Settings::default()
        };
        assert_eq!(s.validate(), Ok(()));
    }
}

#[test]
fn rejects_empty_working_days() {
    let s = Settings {
        working_days: vec![],
        ..Settings::default()
    };
    assert_eq!(
        s.validate().unwrap_err(),
        "working_days must contain at least one day"
    );
}

#[test]
fn rejects_a_working_day_listed_twice() {
    let s: Settings = serde_json::from_str(r#"{"working_days":["Mon","Tue","monday"]}"#).unwrap();
    let err = s.validate().unwrap_err();
    assert!(
        err.contains("working_days lists Mon more than once"),
        "{err}"
    );
}

#[test]
fn rejects_unordered_or_out_of_range_thresholds() {
    let bad = [
        Thresholds {
            medium: 55,
            high: 30,
            critical: 75,
        },
        Thresholds {
            medium: 30,
            high: 55,
            critical: 55,
        },
        Thresholds {
            medium: 30,
            high: 80,
            critical: 75,
        },
    ];
    for t in bad {
        let s = Settings {
            thresholds: t,
            ..Settings::default()
        };
        assert!(
            s.validate().unwrap_err().contains("strictly increasing"),
            "{t:?}"
        );
    }
    let s = Settings {
        thresholds: Thresholds {
            medium: 30,
            high: 55,
            critical: 101,
        },
        ..Settings::default()
    };
    assert_eq!(
        s.validate().unwrap_err(),
        "thresholds.critical must be <= 100 (got 101)"
    );
    let s = Settings {
        thresholds: Thresholds {
            medium: 0,
            high: 55,
            critical: 75,
        },
        ..Settings::default()
    };
    assert_eq!(s.validate().unwrap_err(), "thresholds.medium must be > 0");
}

#[test]
fn reports_all_errors_at_once() {
    let s = Settings {
        daily_rate_per_person: -3.0,
        working_days: vec![],
        thresholds: Thresholds {
            medium: 10,
            high: 5,
            critical: 200,
        },
    };
    let err = s.validate().unwrap_err();
    assert_eq!(err.split("; ").count(), 4, "{err}");
}
