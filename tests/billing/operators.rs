//! The operators' event list, filters and replay.

use super::*;

#[tokio::test]
async fn operators_list_events_newest_first_with_filters_and_replay_one() {
    let env = env().await;
    env.spawn_worker(|_| {});
    for i in 0..3 {
        let ev = event(
            &format!("evt_list_{i}"),
            "customer.tax_id.created",
            now() - 5,
            json!({ "id": format!("txi_{i}"), "object": "tax_id" }),
        );
        deliver(&env, &ev).await;
    }
    let ev = event(
        "evt_list_3",
        "payout.paid",
        now() - 5,
        json!({ "id": "po_1", "object": "payout" }),
    );
    deliver(&env, &ev).await;
    for i in 0..4 {
        processed(&env, &format!("evt_list_{i}"), "ignored").await;
    }
    let (status, body) = get(&env, Some(ADMIN), "/admin/stripe/events").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["evt_list_3", "evt_list_2", "evt_list_1", "evt_list_0"]
    );
    assert_eq!(body["events"][0]["status"], "ignored");
    let (_, body) = get(&env, Some(ADMIN), "/admin/stripe/events?type=payout.paid").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    let (_, body) = get(&env, Some(ADMIN), "/admin/stripe/events?status=processed").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    // Pages of two, no gaps or repeats.
    let (_, page1) = get(&env, Some(ADMIN), "/admin/stripe/events?limit=2").await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = get(
        &env,
        Some(ADMIN),
        &format!("/admin/stripe/events?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(page2["events"][0]["id"], "evt_list_1");
    assert_eq!(page2["events"][1]["id"], "evt_list_0");
    // Bad input and no token.
    assert_eq!(
        get(&env, Some(ADMIN), "/admin/stripe/events?status=nope")
            .await
            .0,
        422
    );
    assert_eq!(
        get(&env, Some(ADMIN), "/admin/stripe/events?limit=0")
            .await
            .0,
        422
    );
    assert_eq!(
        get(&env, Some(ADMIN), "/admin/stripe/events?sort=asc")
            .await
            .0,
        422
    );
    assert_eq!(get(&env, None, "/admin/stripe/events").await.0, 401);
    let (_, key, _) = env.tenant("acme").await;
    assert_eq!(get(&env, Some(&key), "/admin/stripe/events").await.0, 401);

    // Replay: back to received with a new job, then processed again.
    let (status, body) = post(
        &env,
        ADMIN,
        "/admin/stripe/events/evt_list_3/replay",
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "received");
    let job: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();
    env.wait_status(job, keel_models::job::JobStatus::Succeeded, secs(20))
        .await;
    let ev = processed(&env, "evt_list_3", "ignored").await;
    assert_eq!(ev["job_id"], job.to_string());
    let (status, body) = post(
        &env,
        ADMIN,
        "/admin/stripe/events/evt_nope/replay",
        json!({}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        post(
            &env,
            &key,
            "/admin/stripe/events/evt_list_3/replay",
            json!({})
        )
        .await
        .0,
        401
    );
}
