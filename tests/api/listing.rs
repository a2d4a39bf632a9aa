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

    let pages = every_page(&env, &key, "limit=2", 5).await;
    for page in &pages {
        assert!(job_ids(page).len() <= 2, "{page}");
    }
    let seen: Vec<Uuid> = pages.iter().flat_map(job_ids).collect();
    assert_eq!(
        seen, newest_first,
        "pages out of order, with gaps or duplicates"
    );
    assert_eq!(pages.len(), 3);

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

    // `%2B5` is `+5`, which Rust's integer parsing alone accepts.
    for limit in ["0", "201", "-1", "ten", "%2B5", "5.0", "%205"] {
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

    // A repeated parameter had been read as its last value: `dead` or `queued`?
    let (status, body) = get(&env, &key, "/api/jobs?status=dead&status=queued").await;
    let details = assert_error_any_code(status, &body, 422);
    assert_eq!(details["path"], "status", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{body}"
    );
    assert_eq!(env.count_jobs().await, 1);
}

/// Routes that take no query parameters refuse one rather than ignore it, so a client that
/// believes it filtered learns it did not; `wait` on a job is whole seconds in digits.
#[tokio::test]
async fn routes_without_parameters_refuse_them_and_wait_takes_digits() {
    let env = TestEnv::new().await;
    let (_, key, _) = env.tenant("acme").await;
    let id = env.submit_ok(&key, noop(1)).await;
    for path in [
        "/api/billing/credits?expired=false",
        "/api/billing/invoices?limit=5",
        "/api/billing/purchases?x=1",
        "/api/billing/subscription?x=1",
        "/api/usage?period=last",
        "/api/tenant?x=1",
        "/api/keys?limit=1",
        "/api/tenant/settings?x=1",
        "/api/plans?x=1",
    ] {
        let (status, body) = get(&env, &key, path).await;
        let details = assert_error_any_code(status, &body, 422);
        let param = path.split_once('?').unwrap().1.split('=').next().unwrap();
        assert_eq!(details["path"], param, "{path}: {body}");
        let (status, body) = get(&env, &key, path.split('?').next().unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for wait in ["%2B1", "1.0", "-1", "31"] {
        let (status, body) = get(&env, &key, &format!("/api/jobs/{id}?wait={wait}")).await;
        let details = assert_error_any_code(status, &body, 422);
        assert_eq!(details["path"], "wait", "wait={wait}: {body}");
    }
    let (status, body) = get(&env, &key, &format!("/api/jobs/{id}?wait=0")).await;
    assert_eq!(status, 200, "{body}");
}

/// Every page of `GET /api/jobs?{query}`, following `next_cursor` until it is null; fails if
/// that takes more than `most` pages.
async fn every_page(env: &TestEnv, key: &str, query: &str, most: usize) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut path = format!("/api/jobs?{query}");
    loop {
        let (status, page) = get(env, key, &path).await;
        assert_eq!(status, 200, "{page}");
        let next = page["next_cursor"].clone();
        pages.push(page);
        assert!(pages.len() <= most, "pagination does not terminate");
        match next.as_str() {
            Some(c) => path = format!("/api/jobs?{query}&cursor={c}"),
            None => {
                assert!(
                    next.is_null(),
                    "next_cursor is neither an id nor null: {next}"
                );
                return pages;
            }
        }
    }
}

/// `n` jobs of `tenant` with ids older than any job submitted during the test, oldest first,
/// the `g`-th (from 1) with id `history_id(g)`: `queued` or `dead` where those say, else
/// `succeeded`.
async fn history(env: &TestEnv, tenant: Uuid, n: i32, queued: &[i32], dead: &[i32]) {
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, status)
         SELECT (lpad(to_hex(g), 12, '0') || '70008000000000000000')::uuid, $1, 'noop',
                'default', '{}', 10,
                (CASE WHEN g = ANY($3) THEN 'queued' WHEN g = ANY($4) THEN 'dead'
                      ELSE 'succeeded' END)::job_status
         FROM generate_series(1, $2) g",
    )
    .bind(tenant)
    .bind(n)
    .bind(queued)
    .bind(dead)
    .execute(&env.keel.pool)
    .await
    .unwrap();
    analyze_jobs(env).await;
}

fn history_id(g: i32) -> Uuid {
    format!("{g:012x}70008000000000000000").parse().unwrap()
}

/// A filter that matches a few jobs scattered through a long history: each request examines
/// a bounded window, and following `next_cursor` still finds every match once, newest first.
#[tokio::test]
async fn a_sparse_filter_pages_through_a_long_history_and_misses_nothing() {
    let env = TestEnv::new().await;
    let (tenant, key, _) = env.tenant("acme").await;
    let (_, other_key, _) = env.tenant("other").await;
    let per_page = keel_models::job::EXAMINED_PER_PAGE as i32;
    let queued = [1, per_page - 1, per_page, per_page + 1, 2 * per_page + 7];
    history(&env, tenant, 2 * per_page + 500, &queued, &[]).await;
    let newest = env.submit_ok(&key, noop(1)).await;
    env.submit_ok(&other_key, noop(2)).await;
    let mut want: Vec<Uuid> = queued.iter().rev().map(|&g| history_id(g)).collect();
    want.insert(0, newest);

    let pages = every_page(&env, &key, "status=queued&limit=2", 10).await;
    for j in pages.iter().flat_map(|p| p["jobs"].as_array().unwrap()) {
        assert_eq!(j["status"], "queued", "{j}");
    }
    let seen: Vec<Uuid> = pages.iter().flat_map(job_ids).collect();
    assert_eq!(seen, want, "matches missed, repeated or out of order");

    // A kind filter pages the same way; the unfiltered listing is unchanged.
    let (_, page) = get(&env, &key, "/api/jobs?kind=webhook.deliver").await;
    assert_eq!(job_ids(&page), Vec::<Uuid>::new());
    assert!(page["next_cursor"].is_string(), "{page}");
    let (_, page) = get(&env, &key, "/api/jobs?limit=3").await;
    let last = 2 * per_page + 500;
    assert_eq!(
        job_ids(&page),
        vec![newest, history_id(last), history_id(last - 1)]
    );
}

/// What a listing request reads must not grow with the tenant's history. A filter had been
/// part of one `ORDER BY id DESC LIMIT n` statement, which walked every job of the tenant to
/// fill a page of rare matches (85 ms at 520,000 jobs); and its `$n IS NULL OR …` conditions
/// kept even the tenant and the cursor out of the index in a generic plan. Checked with the
/// plans Postgres makes per execution and with the generic plan it may switch to.
#[tokio::test]
async fn a_filtered_page_reads_a_bounded_window_of_a_long_history() {
    use keel_models::job::{list_for_tenant, JobFilter};
    let env = TestEnv::new().await;
    let (tenant, _, _) = env.tenant("acme").await;
    history(&env, tenant, 60_000, &[1], &[2]).await;
    for plans in ["auto", "force_generic_plan"] {
        // One connection, so the blocks counted are the listing's.
        let one = one_connection_planning(&env, plans).await;
        let blocks = async || jobs_reads(&mut one.acquire().await.unwrap()).await.blocks;
        // A page of 50 and the blocks of `jobs` and its indexes read for it.
        let listed = async |status, before| {
            let start = blocks().await;
            let filter = JobFilter {
                status,
                kind: None,
                before,
                limit: 50,
            };
            let page = list_for_tenant(&one, tenant, filter).await.unwrap();
            (page, blocks().await - start)
        };
        // Six times each: Postgres plans a statement's first five executions for their values.
        for _ in 0..6 {
            // Without a filter, or with one most jobs match, a page reads about a page of rows.
            for status in [None, Some(JobStatus::Succeeded)] {
                let (page, read) = listed(status, None).await;
                assert!(
                    read < 30,
                    "{plans}: {read} blocks read for a page of {status:?}"
                );
                assert_eq!(page.jobs.len(), 50, "{plans}");
                assert_eq!(page.next_before, Some(history_id(59_951)), "{plans}");
            }

            let (page, read) = listed(Some(JobStatus::Queued), None).await;
            assert!(
                read < 500,
                "{plans}: {read} blocks read for a page of queued jobs"
            );
            assert!(page.jobs.is_empty(), "{plans}: {page:?}");
            assert!(
                page.next_before.is_some(),
                "{plans}: the listing ends too early"
            );

            let deep = Some(history_id(30_000));
            let (page, read) = listed(Some(JobStatus::Queued), deep).await;
            assert!(
                read < 500,
                "{plans}: {read} blocks read for a page deep in the history"
            );
            assert!(page.jobs.is_empty(), "{plans}: {page:?}");

            let (page, read) = listed(Some(JobStatus::Dead), None).await;
            assert!(
                read < 50,
                "{plans}: {read} blocks read to find the one dead job"
            );
            let ids: Vec<Uuid> = page.jobs.iter().map(|j| j.id).collect();
            assert_eq!(ids, vec![history_id(2)], "{plans}");
            assert_eq!(page.next_before, None, "{plans}");
        }
    }
}
