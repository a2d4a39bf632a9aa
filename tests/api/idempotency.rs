//! Idempotency keys: the same key and body → the same job (200), a different body → 409,
//! per tenant, under concurrency.

use super::*;

#[tokio::test]
async fn the_same_idempotency_key_and_body_returns_the_same_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let body = json!({ "kind": "noop", "args": { "n": 1 }, "idempotency_key": "order-42" });

    let (s1, b1) = env.submit(&key, body.clone()).await;
    assert_eq!(s1, 202, "{b1}");
    let (s2, b2) = env.submit(&key, body.clone()).await;
    assert_eq!(s2, 200, "{b2}");
    assert_eq!(b1["id"], b2["id"]);
    assert_eq!(b2["idempotency_key"], "order-42");
    assert_eq!(env.count_jobs().await, 1);

    let (s3, b3) = env.submit(&key, body).await;
    assert_eq!(s3, 200, "{b3}");
    assert_eq!(b1["id"], b3["id"]);
    assert_eq!(env.count_jobs().await, 1);
}

/// Concurrent submits share one insert and commit (group commit): each still gets its own
/// job, and submits racing with the same idempotency key — in one batch or across batches —
/// all answer the one job that holds the key.
#[tokio::test]
async fn concurrent_submits_each_get_their_job_and_shared_keys_one_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let submits = (0..60u64).map(|n| {
        let body = if n % 3 == 0 {
            json!({ "kind": "noop", "args": { "n": 0 }, "idempotency_key": "same" })
        } else {
            json!({ "kind": "noop", "args": { "n": n } })
        };
        env.submit(&key, body)
    });
    let answers = futures::future::join_all(submits).await;
    let mut keyed = std::collections::HashSet::new();
    let mut plain = std::collections::HashSet::new();
    let mut created = 0;
    for (n, (status, body)) in answers.iter().enumerate() {
        assert!(*status == 202 || *status == 200, "{status} {body}");
        if *status == 202 {
            created += 1;
        }
        if n % 3 == 0 {
            keyed.insert(body["id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(*status, 202, "{body}");
            assert_eq!(
                body["args"]["n"], n as u64,
                "each submit gets its own row: {body}"
            );
            plain.insert(body["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(keyed.len(), 1, "one job for the shared key: {keyed:?}");
    assert_eq!(plain.len(), 40);
    assert_eq!(created, 41, "exactly one 202 for the shared key");
    assert_eq!(env.count_jobs().await, 41);
}

#[tokio::test]
async fn the_same_idempotency_key_with_different_args_is_409() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let (s1, b1) = env
        .submit(
            &key,
            json!({ "kind": "noop", "args": { "n": 1 }, "idempotency_key": "k" }),
        )
        .await;
    assert_eq!(s1, 202, "{b1}");
    let (status, body) = env
        .submit(
            &key,
            json!({ "kind": "noop", "args": { "n": 2 }, "idempotency_key": "k" }),
        )
        .await;
    let details = assert_error(status, &body, 409, "idempotency_key_reused");
    assert_eq!(details["existing_job_id"], b1["id"], "{body}");
    assert_eq!(env.count_jobs().await, 1);
    let id: Uuid = b1["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(env.job(id).await.args, json!({ "n": 1 }));
}

#[tokio::test]
async fn the_same_idempotency_key_in_two_tenants_makes_two_jobs() {
    let env = TestEnv::new().await;
    let (ta, key_a, _) = env.tenant("a").await;
    let (tb, key_b, _) = env.tenant("b").await;
    let body = json!({ "kind": "noop", "args": { "n": 1 }, "idempotency_key": "shared" });
    let (sa, ba) = env.submit(&key_a, body.clone()).await;
    let (sb, bb) = env.submit(&key_b, body).await;
    assert_eq!(sa, 202, "{ba}");
    assert_eq!(sb, 202, "{bb}");
    assert_ne!(ba["id"], bb["id"]);
    assert_eq!(env.count_jobs().await, 2);
    let ja = env.job(ba["id"].as_str().unwrap().parse().unwrap()).await;
    let jb = env.job(bb["id"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!(ja.tenant_id, Some(ta));
    assert_eq!(jb.tenant_id, Some(tb));
}

#[tokio::test]
async fn an_empty_or_overlong_idempotency_key_is_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    for k in [String::new(), "k".repeat(256)] {
        let (status, body) = env
            .submit(
                &key,
                json!({ "kind": "noop", "args": {}, "idempotency_key": k }),
            )
            .await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "idempotency_key", "{body}");
    }
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn concurrent_submits_with_one_idempotency_key_make_one_job() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let body = json!({ "kind": "noop", "args": { "n": 9 }, "idempotency_key": "race" });
    let answers = futures::future::join_all((0..8).map(|_| env.submit(&key, body.clone()))).await;
    let created = answers.iter().filter(|(s, _)| *s == 202).count();
    let replayed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 7), "{answers:?}");
    let first = &answers[0].1["id"];
    assert!(
        answers.iter().all(|(_, b)| &b["id"] == first),
        "{answers:?}"
    );
    assert_eq!(env.count_jobs().await, 1);
}

/// A key met again is looked up by the (tenant, key) pair, both columns of the index. The
/// lookup had been `tenant_id IS NOT DISTINCT FROM $1`, which cannot use the index's first
/// column: Postgres read every keyed job's entry, 4.8 ms at 50,000 and growing with them.
#[tokio::test]
async fn a_key_met_again_is_found_without_reading_every_keyed_job() {
    let env = TestEnv::new().await;
    let (tenant, _, _) = env.tenant("acme").await;
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, idempotency_key)
         SELECT gen_random_uuid(), $1, 'noop', 'default', '{}', 10, 'order-' || g
         FROM generate_series(1, 20000) g",
    )
    .bind(tenant)
    .execute(&env.keel.pool)
    .await
    .unwrap();
    let again = keel_models::job::NewJob {
        id: Uuid::now_v7(),
        tenant_id: Some(tenant),
        kind: "noop".into(),
        queue: "default".into(),
        args: json!({}),
        max_attempts: 10,
        run_at: None,
        idempotency_key: Some("order-77".into()),
        dispatched: false,
    };
    let mut conn = env.keel.pool.acquire().await.unwrap();
    let before = jobs_reads(&mut conn).await.blocks;
    let single = keel_models::job::insert(&mut conn, &again).await.unwrap();
    let batch = keel_models::job::insert_batch(&mut conn, std::slice::from_ref(&again))
        .await
        .unwrap();
    let read = jobs_reads(&mut conn).await.blocks - before;
    for inserted in [single, batch.into_iter().next().unwrap()] {
        match inserted {
            keel_models::job::Inserted::Existing(job) => {
                assert_eq!(job.idempotency_key.as_deref(), Some("order-77"))
            }
            keel_models::job::Inserted::New(_) => panic!("the key was used: no new job"),
        }
    }
    // Two conflict checks and two lookups touch about 20 blocks; reading every keyed job's
    // index entry touched about 1,000.
    assert!(
        read < 100,
        "{read} blocks of jobs and its indexes read to find one key"
    );
    assert_eq!(env.count_jobs().await, 20000);
}
