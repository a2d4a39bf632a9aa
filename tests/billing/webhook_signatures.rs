//! Stripe webhooks refused before anything is stored: stale, wrong, missing or malformed
//! signatures, no configured secret, a signed body that is not an event; rotated secrets accepted.

use super::*;

/// Asserts a 400 with the JSON error shape and that nothing was stored or enqueued.
async fn refused(env: &TestEnv, (status, body): (u16, Value), why: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_signature", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(why), "{message:?} should say {why:?}");
    assert_eq!(count(env, "SELECT count(*) FROM stripe_events").await, 0);
    assert_eq!(count(env, "SELECT count(*) FROM jobs").await, 0);
}

#[tokio::test]
async fn a_stale_signature_timestamp_is_400_and_nothing_is_stored() {
    let env = env().await;
    let body = unknown_event().to_string();
    let old = stripe_signature(SECRET_OLD, now() - 301, &body);
    refused(&env, deliver_raw(&env, &body, Some(old)).await, "tolerance").await;
    let future = stripe_signature(SECRET_OLD, now() + 400, &body);
    refused(
        &env,
        deliver_raw(&env, &body, Some(future)).await,
        "tolerance",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_secret_or_a_tampered_body_is_400_and_nothing_is_stored() {
    let env = env().await;
    let body = unknown_event().to_string();
    let wrong = stripe_signature("whsec_someone_else", now(), &body);
    refused(
        &env,
        deliver_raw(&env, &body, Some(wrong)).await,
        "no v1 signature matches",
    )
    .await;
    let sig = stripe_signature(SECRET_OLD, now(), &body);
    let tampered = body.replace("DE123456789", "DE000000000");
    refused(
        &env,
        deliver_raw(&env, &tampered, Some(sig)).await,
        "no v1 signature matches",
    )
    .await;
}

#[tokio::test]
async fn a_missing_or_malformed_signature_header_is_400_and_nothing_is_stored() {
    let env = env().await;
    let body = unknown_event().to_string();
    refused(&env, deliver_raw(&env, &body, None).await, "missing").await;
    refused(
        &env,
        deliver_raw(&env, &body, Some("v1=abc".into())).await,
        "malformed",
    )
    .await;
    refused(
        &env,
        deliver_raw(&env, &body, Some(format!("t={}", now()))).await,
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn the_rotated_second_secret_and_any_matching_v1_are_accepted() {
    let env = env().await;
    let body = unknown_event().to_string();
    let t = now();
    let (status, answer) =
        deliver_raw(&env, &body, Some(stripe_signature(SECRET_NEW, t, &body))).await;
    assert_eq!(status, 200, "{answer}");
    // Stripe sends one v1 per active secret while one is rolled: any match is enough.
    let other = stripe_signature("whsec_retired", t, &body);
    let ours = stripe_signature(SECRET_OLD, t, &body);
    let header = format!("{},v1={}", other, ours.split_once("v1=").unwrap().1);
    let (status, answer) = deliver_raw(&env, &body, Some(header)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], true);
}

#[tokio::test]
async fn without_configured_secrets_webhooks_answer_503_and_store_nothing() {
    let env = TestEnv::new().await;
    let body = unknown_event().to_string();
    let (status, answer) = deliver_raw(
        &env,
        &body,
        Some(stripe_signature(SECRET_OLD, now(), &body)),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("KEEL_STRIPE_WEBHOOK_SECRETS"));
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 0);
}

#[tokio::test]
async fn a_validly_signed_body_that_is_not_an_event_is_400() {
    let env = env().await;
    let body = json!({ "id": "cus_1", "object": "customer" }).to_string();
    let (status, answer) = deliver_raw(
        &env,
        &body,
        Some(stripe_signature(SECRET_OLD, now(), &body)),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_event");
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 0);

    // An event whose `created` Postgres cannot store (it had answered 500, so Stripe would
    // have retried it for days), or that no Stripe event has.
    for created in [-300_000_000_000_i64, -1, 8_210_266_876_799] {
        let mut ev = event(
            "evt_far",
            "payout.paid",
            0,
            json!({ "id": "po_1", "object": "payout" }),
        );
        ev["created"] = json!(created);
        let body = ev.to_string();
        let (status, answer) = deliver_raw(
            &env,
            &body,
            Some(stripe_signature(SECRET_OLD, now(), &body)),
        )
        .await;
        assert_eq!(status, 400, "{created}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_event", "{answer}");
    }
    assert_eq!(count(&env, "SELECT count(*) FROM stripe_events").await, 0);
}

/// The probe's request: a 1 MiB body and a `Stripe-Signature` of 65,000 `v1=00` entries. The
/// body had been hashed once per entry (47–53 s, during which `/health` did not answer); the
/// header is now refused by its size before anything is hashed.
#[tokio::test]
async fn a_flooded_signature_header_on_a_large_body_is_refused_without_hashing_per_entry() {
    let env = env().await;
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1024 * 1024 - 64));
    let mut header = format!("t={}", now());
    for _ in 0..65_000 {
        header.push_str(",v1=00");
    }
    refused(
        &env,
        deliver_raw(&env, &body, Some(header)).await,
        "longer than 4096 bytes",
    )
    .await;
}
