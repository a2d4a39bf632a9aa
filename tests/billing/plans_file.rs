//! A bad plans file or Stripe setting stops start-up, naming the variable.

use super::*;

#[test]
fn a_bad_plans_file_stops_start_up_naming_the_variable_and_the_entry() {
    use keel::settings::Settings;
    let default = include_str!("../../config/plans.toml");
    let dir = std::env::temp_dir().join(format!("keel-plans-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        Some(p.to_string_lossy().into_owned())
    };
    let ok = Settings {
        plans_file: write("ok.toml", default),
        ..Settings::default()
    };
    ok.validate().unwrap();
    let dup = default.replacen("id = \"team\"", "id = \"starter\"", 1);
    let bad = Settings {
        plans_file: write("dup.toml", &dup),
        ..Settings::default()
    };
    let refusal = |s: Settings| s.validate().unwrap_err().to_string();
    let err = refusal(bad);
    assert!(
        err.contains("KEEL_PLANS_FILE") && err.contains("\"starter\" is used twice"),
        "{err}"
    );
    for (settings, variable) in [
        (
            Settings {
                plans_file: Some("/nonexistent/plans.toml".into()),
                ..Settings::default()
            },
            "KEEL_PLANS_FILE",
        ),
        (
            Settings {
                stripe_webhook_secrets: Some(SecretString::from("whsec_a,,whsec_b")),
                ..Settings::default()
            },
            "KEEL_STRIPE_WEBHOOK_SECRETS",
        ),
        (
            Settings {
                stripe_secret_key: Some(SecretString::from("pk_test_public")),
                ..Settings::default()
            },
            "KEEL_STRIPE_SECRET_KEY",
        ),
    ] {
        let err = refusal(settings);
        assert!(err.contains(variable), "{variable}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
