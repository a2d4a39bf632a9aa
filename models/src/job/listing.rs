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
//! - Every other filter reads the tenant's jobs newest first until the page is full, but no
//!   more than [`EXAMINED_PER_PAGE`] of them per request. When that window runs out first, the
//!   page is shorter (maybe empty) and its cursor resumes below the window, so a client that
//!   follows `next_cursor` still sees every match exactly once. Without a filter, a page reads
//!   a page of rows.
//!
//! Both statements keep the tenant and the cursor as plain index conditions (`id < $n`, no
//! `$n IS NULL OR …`), so a generic plan still walks the index from the cursor instead of from
//! the newest row.

use chrono::{DateTime, Utc};
use serde_json::Value;
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

/// A statement answering [`Examined`] rows: the window is the tenant's jobs where `$window`
/// holds, newest first, at most `$5` of them; `$matches` says which are on the page, at most
/// `$6` rows come back.
macro_rules! examined {
    ($window:literal, $matches:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            Examined,
            r#"SELECT id AS "id!", tenant_id, kind AS "kind!", queue AS "queue!", args AS "args!",
                      status AS "status!: JobStatus", attempt AS "attempt!",
                      max_attempts AS "max_attempts!", run_at AS "run_at!", dispatched_at,
                      lease_until, progress, result, last_error, idempotency_key,
                      cancel_requested_at, created_at AS "created_at!", started_at, finished_at,
                      updated_at AS "updated_at!", n AS "n!", matched AS "matched!"
               FROM (SELECT *, row_number() OVER (ORDER BY id DESC) AS n,
                            ("# + $matches + r#") AS matched
                     FROM (SELECT * FROM jobs WHERE "# + $window + r#"
                           ORDER BY id DESC LIMIT $5) AS w) AS examined
               WHERE matched OR n = $5
               LIMIT $6"#,
            $($arg),*
        )
    };
}

/// One page of `tenant_id`'s jobs, newest first (see the module doc for what a page costs).
pub async fn list_for_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: JobFilter<'_>,
) -> sqlx::Result<JobPage> {
    let before = filter.before.unwrap_or(NEWEST);
    // The examined rows stream newest first, whole; what comes back is each match and, should
    // the window run out, its last row (`n = EXAMINED_PER_PAGE`). Postgres stops reading at
    // the page's last match, so a page of frequent matches reads about a page of rows, each once.
    let rows: Vec<Examined> = match filter.status {
        Some(s @ (JobStatus::Dead | JobStatus::Cancelled)) => {
            // The index's own predicate is spelled out so a generic plan can use it too.
            examined!(
                "tenant_id = $1 AND status IN ('dead', 'cancelled') AND status = $2 AND id < $3",
                "$4::text IS NULL OR kind = $4",
                tenant_id,
                s as JobStatus,
                before,
                filter.kind,
                EXAMINED_PER_PAGE,
                filter.limit
            )
            .fetch_all(pool)
            .await?
        }
        status => {
            examined!(
                "tenant_id = $1 AND id < $2",
                "($3::job_status IS NULL OR status = $3) AND ($4::text IS NULL OR kind = $4)",
                tenant_id,
                before,
                status as Option<JobStatus>,
                filter.kind,
                EXAMINED_PER_PAGE,
                filter.limit
            )
            .fetch_all(pool)
            .await?
        }
    };
    let next_before = match rows.last() {
        // A full page, or the window ran out: more may follow (the next page may be empty).
        Some(last) if rows.len() as i64 == filter.limit || last.n == EXAMINED_PER_PAGE => {
            Some(last.id)
        }
        // The tenant's jobs ran out inside the window.
        _ => None,
    };
    let jobs = rows
        .into_iter()
        .filter(|r| r.matched)
        .map(Job::from)
        .collect();
    Ok(JobPage { jobs, next_before })
}

/// A row of the examined window that came back: a match, or the window's last row.
struct Examined {
    /// Its place in the window, from 1.
    n: i64,
    matched: bool,
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: String,
    queue: String,
    args: Value,
    status: JobStatus,
    attempt: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    dispatched_at: Option<DateTime<Utc>>,
    lease_until: Option<DateTime<Utc>>,
    progress: Option<Value>,
    result: Option<Value>,
    last_error: Option<Value>,
    idempotency_key: Option<String>,
    cancel_requested_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl From<Examined> for Job {
    fn from(r: Examined) -> Self {
        Job {
            id: r.id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            queue: r.queue,
            args: r.args,
            status: r.status,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            run_at: r.run_at,
            dispatched_at: r.dispatched_at,
            lease_until: r.lease_until,
            progress: r.progress,
            result: r.result,
            last_error: r.last_error,
            idempotency_key: r.idempotency_key,
            cancel_requested_at: r.cancel_requested_at,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        }
    }
}
