//! Tenant isolation: another tenant's job is 404 for reading, cancelling and retrying.

use super::*;

#[tokio::test]
async fn another_tenant_can_neither_see_nor_touch_a_job() {
    let env = TestEnv::new().await;
    let (_, key_a, _) = env.tenant("a").await;
    let (_, key_b, _) = env.tenant("b").await;
    let id = env.submit_ok(&key_a, noop(1)).await;
    let b_own = env.submit_ok(&key_b, noop(2)).await;
    let before = env.job(id).await;

    let (status, body) = get(&env, &key_b, &format!("/api/jobs/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = cancel(&env, &key_b, id).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = retry(&env, &key_b, id).await;
    assert_error(status, &body, 404, "not_found");

    let (status, page) = get(&env, &key_b, "/api/jobs").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(job_ids(&page), vec![b_own]);
    for filter in ["?status=queued", "?kind=noop"] {
        let (_, page) = get(&env, &key_b, &format!("/api/jobs{filter}")).await;
        assert_eq!(job_ids(&page), vec![b_own], "{filter}");
    }
    // A cursor pointing past A's job does not reveal it either.
    let (_, page) = get(&env, &key_b, &format!("/api/jobs?cursor={}", Uuid::max())).await;
    assert_eq!(job_ids(&page), vec![b_own]);

    let after = env.job(id).await;
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(after.status, before.status);
    assert_eq!(after.cancel_requested_at, None);
    assert_eq!(after.finished_at, None);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.attempt, before.attempt);

    // A still sees its job.
    let (status, body) = get(&env, &key_a, &format!("/api/jobs/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued");
    let (_, page) = get(&env, &key_a, "/api/jobs").await;
    assert_eq!(job_ids(&page), vec![id]);
}
