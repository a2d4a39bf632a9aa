//! A tenant's jobs, newest first, for `GET /api/jobs`: keyset pages whose cost is bounded by
//! the page, not by how many jobs the tenant has.
//!
//! A filter by status or kind used to be part of one `ORDER BY id DESC LIMIT n` statement, so a
//! filter that matched few of the tenant's jobs walked the tenant's whole history to fill the
//! page (85 ms at 520,000 jobs for `status=queued` with none queued, and growing with the
//! retention window), on every request of a client that polls. Now:
//! - `dead` and `cancelled` are read through `jobs_tenant_ended_unsuccessfully`, an index of
//!   exactly those rows per tenant, so "what failed" is one index range however old it is. The
//!   hot path (insert, start, success) never writes to that index.
//! - Every other filter looks at no more than [`EXAMINED_PER_PAGE`] of the tenant's jobs per
//!   request. When that window runs out before the page is full, the page is shorter (maybe
//!   empty) and its cursor resumes below the window, so a client that follows `next_cursor`
//!   still sees every match exactly once.
//!
//! Both statements keep the tenant and the cursor as plain index conditions (`id < $n`, no
//! `$n IS NULL OR …`), so a generic plan still walks the index from the cursor instead of from
//! the newest row.

use sqlx::PgPool;
use uuid::Uuid;

use super::{Job, JobStatus};

/// The most jobs one listing request examines for its filters (a few milliseconds of work).
pub const EXAMINED_PER_PAGE: i64 = 5_000;

/// What to list; `before` is the cursor (an id, exclusive).
#[derive(Debug, Clone, Copy)]
pub struct JobFilter<'a> {
    pub status: Option<JobStatus>,
    pub kind: Option<&'a str>,
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// One page: the jobs, and where the next page starts (`None`: nothing older matches).
#[derive(Debug)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_before: Option<Uuid>,
}

/// Above every UUID: the first page's cursor, so the cursor is always an index bound.
const NEWEST: Uuid = Uuid::max();

/// One page of `tenant_id`'s jobs, newest first (see the module doc for what a page costs).
pub async fn list_for_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: JobFilter<'_>,
) -> sqlx::Result<JobPage> {
    let before = filter.before.unwrap_or(NEWEST);
    let window = match filter.status {
        Some(s @ (JobStatus::Dead | JobStatus::Cancelled)) => {
            // The index's own predicate is spelled out so a generic plan can use it too.
            sqlx::query_as!(
                Window,
                r#"WITH examined AS MATERIALIZED (
                       SELECT id, kind FROM jobs
                       WHERE tenant_id = $1 AND status IN ('dead', 'cancelled') AND status = $2
                         AND id < $3
                       ORDER BY id DESC LIMIT $4
                   )
                   SELECT count(*) AS "examined!",
                          (SELECT id FROM examined ORDER BY id LIMIT 1) AS oldest,
                          (array_agg(id ORDER BY id DESC)
                             FILTER (WHERE $5::text IS NULL OR kind = $5))[1:$6::int] AS ids
                   FROM examined"#,
                tenant_id,
                s as JobStatus,
                before,
                EXAMINED_PER_PAGE,
                filter.kind,
                filter.limit as i32
            )
            .fetch_one(pool)
            .await?
        }
        status => {
            sqlx::query_as!(
                Window,
                r#"WITH examined AS MATERIALIZED (
                       SELECT id, status, kind FROM jobs
                       WHERE tenant_id = $1 AND id < $2
                       ORDER BY id DESC LIMIT $3
                   )
                   SELECT count(*) AS "examined!",
                          (SELECT id FROM examined ORDER BY id LIMIT 1) AS oldest,
                          (array_agg(id ORDER BY id DESC)
                             FILTER (WHERE ($4::job_status IS NULL OR status = $4)
                                       AND ($5::text IS NULL OR kind = $5)))[1:$6::int] AS ids
                   FROM examined"#,
                tenant_id,
                before,
                EXAMINED_PER_PAGE,
                status as Option<JobStatus>,
                filter.kind,
                filter.limit as i32
            )
            .fetch_one(pool)
            .await?
        }
    };
    let ids = window.ids.unwrap_or_default();
    let jobs = if ids.is_empty() {
        Vec::new()
    } else {
        select_job!(
            "WHERE id = ANY($1) AND tenant_id = $2 ORDER BY id DESC",
            &ids,
            tenant_id
        )
        .fetch_all(pool)
        .await?
    };
    let next_before = if ids.len() as i64 >= filter.limit {
        // Full page: more may follow it (the next page may turn out empty).
        ids.last().copied()
    } else if window.examined >= EXAMINED_PER_PAGE {
        // The window ran out first: resume below it.
        window.oldest
    } else {
        None
    };
    Ok(JobPage { jobs, next_before })
}

/// The jobs one request examined: how many, the oldest, and the matches (at most a page).
struct Window {
    examined: i64,
    oldest: Option<Uuid>,
    ids: Option<Vec<Uuid>>,
}
