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

/// The inbox grows with every Stripe event. A filtered page reads its few rows through the
/// filter's index whatever the plan: under a generic plan, the one statement with
/// `$n IS NULL OR …` conditions walked every newer event to find the failed one.
#[tokio::test]
async fn a_filtered_page_of_a_long_inbox_reads_a_few_blocks() {
    use keel_models::billing::events::list;
    let env = env().await;
    // 40,000 events, processed, of two common types; the oldest one failed, of a rare type.
    sqlx::query(
        "INSERT INTO stripe_events (id, type, created, payload, status)
         SELECT 'evt_' || n,
                CASE WHEN n = 1 THEN 'charge.dispute.created'
                     WHEN n % 2 = 0 THEN 'invoice.paid'
                     ELSE 'customer.subscription.updated' END,
                now(), '{}', CASE WHEN n = 1 THEN 'failed' ELSE 'processed' END
         FROM generate_series(1, 40000) n",
    )
    .execute(&env.keel.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE stripe_events")
        .execute(&env.keel.pool)
        .await
        .unwrap();
    let rare = Some("charge.dispute.created");
    for plans in ["auto", "force_generic_plan"] {
        // One connection, so the blocks counted are the listing's.
        let one = one_connection_planning(&env, plans).await;
        let blocks = async || {
            table_reads(&mut one.acquire().await.unwrap(), "stripe_events")
                .await
                .blocks
        };
        // Six times each: Postgres plans a statement's first five executions for their values.
        for _ in 0..6 {
            for (status, kind, expected) in [
                (Some("failed"), None, vec!["evt_1"]),
                (None, rare, vec!["evt_1"]),
                (Some("failed"), rare, vec!["evt_1"]),
                (
                    Some("processed"),
                    Some("invoice.paid"),
                    vec!["evt_40000", "evt_39998"],
                ),
                (None, None, vec!["evt_40000", "evt_39999"]),
                (Some("processed"), None, vec!["evt_40000", "evt_39999"]),
            ] {
                let start = blocks().await;
                let page = list(&one, status, kind, None, 2).await.unwrap();
                let read = blocks().await - start;
                let ids: Vec<&str> = page.iter().map(|e| e.id.as_str()).collect();
                assert_eq!(ids, expected, "{plans}: {status:?} {kind:?}");
                assert!(
                    read < 30,
                    "{plans}: {read} blocks read for a page of {status:?} {kind:?}"
                );
            }
        }
    }
}
