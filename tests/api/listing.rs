//! Listing: keyset pages, filters, bad parameters.

use super::*;

#[tokio::test]
async fn listing_pages_newest_first_without_gaps_or_duplicates() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let mut submitted = Vec::new();
    for n in 0..5 {
        submitted.push(env.submit_ok(&key, noop(n)).await);
    }
    let newest_first: Vec<Uuid> = submitted.iter().rev().copied().collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/jobs?limit=2".to_string(),
            Some(c) => format!("/api/jobs?limit=2&cursor={c}"),
        };
        let (status, page) = get(&env, &key, &path).await;
        assert_eq!(status, 200, "{page}");
        let ids = job_ids(&page);
        assert!(ids.len() <= 2, "{page}");
        seen.extend(ids);
        pages += 1;
        assert!(pages <= 5, "pagination does not terminate");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(
        seen, newest_first,
        "pages out of order, with gaps or duplicates"
    );
    assert_eq!(pages, 3);

    // Without a limit: everything, newest first, and no next page.
    let (_, page) = get(&env, &key, "/api/jobs").await;
    assert_eq!(job_ids(&page), newest_first);
    assert!(page["next_cursor"].is_null(), "{page}");
}

#[tokio::test]
async fn listing_filters_by_status_and_kind() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let n1 = env.submit_ok(&key, noop(1)).await;
    let n2 = env.submit_ok(&key, noop(2)).await;
    let w1 = env
        .submit_ok(&key, webhook("http://127.0.0.1:9/hook", json!({ "a": 1 })))
        .await;
    let (status, body) = cancel(&env, &key, n1).await;
    assert_eq!(status, 200, "{body}");

    let (_, page) = get(&env, &key, "/api/jobs?status=cancelled").await;
    assert_eq!(job_ids(&page), vec![n1]);
    let (_, page) = get(&env, &key, "/api/jobs?status=queued").await;
    assert_eq!(job_ids(&page), vec![w1, n2]);
    let (_, page) = get(&env, &key, "/api/jobs?kind=noop").await;
    assert_eq!(job_ids(&page), vec![n2, n1]);
    let (_, page) = get(&env, &key, "/api/jobs?kind=webhook.deliver").await;
    assert_eq!(job_ids(&page), vec![w1]);
    for j in page["jobs"].as_array().unwrap() {
        assert_eq!(j["kind"], "webhook.deliver");
    }
    let (_, page) = get(&env, &key, "/api/jobs?kind=noop&status=queued").await;
    assert_eq!(job_ids(&page), vec![n2]);
    let (_, page) = get(&env, &key, "/api/jobs?status=succeeded").await;
    assert_eq!(job_ids(&page), Vec::<Uuid>::new());
    let (_, page) = get(&env, &key, "/api/jobs?kind=unheard.of").await;
    assert_eq!(job_ids(&page), Vec::<Uuid>::new());
}

#[tokio::test]
async fn listing_rejects_bad_parameters_with_422() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    env.submit_ok(&key, noop(1)).await;

    let (status, body) = get(&env, &key, "/api/jobs?status=bogus").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "status", "{body}");
    let text = body["error"].to_string();
    for s in [
        "queued",
        "running",
        "succeeded",
        "failed",
        "dead",
        "cancelled",
    ] {
        assert!(text.contains(s), "allowed value {s} not listed: {body}");
    }

    for limit in ["0", "201", "-1", "ten"] {
        let (status, body) = get(&env, &key, &format!("/api/jobs?limit={limit}")).await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "limit", "limit={limit}: {body}");
    }
    for limit in ["1", "200"] {
        let (status, body) = get(&env, &key, &format!("/api/jobs?limit={limit}")).await;
        assert_eq!(status, 200, "limit={limit}: {body}");
    }

    let (status, body) = get(&env, &key, "/api/jobs?cursor=garbage").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "cursor", "{body}");

    let (status, body) = get(&env, &key, "/api/jobs?colour=blue").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "colour", "{body}");
    assert_eq!(env.count_jobs().await, 1);
}
