//! Group-commit inserts: many independent submits in one statement (the API's concurrent
//! `POST /api/jobs`, and `POST /api/jobs/batch`), each row bound as one element of an array
//! per column and unnested by Postgres.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Inserted, Job, JobStatus, NewJob};

/// [`super::insert`] for many independent submits at once: one statement and one commit for the
/// batch (the API coalesces concurrent `POST /api/jobs` this way). Answers one [`Inserted`] per
/// row, in order. An idempotency key seen before (or twice in the batch) answers the job that
/// holds it. Each row is durable when this returns; one bad row fails the whole statement, so
/// callers retry rows one by one to give each submit its own answer.
pub async fn insert_batch(conn: &mut PgConnection, news: &[NewJob]) -> sqlx::Result<Vec<Inserted>> {
    if news.iter().all(|n| n.idempotency_key.is_none()) {
        return insert_batch_keyless(conn, news).await;
    }
    let c = Columns::of(news);
    let keys: Vec<Option<&str>> = news.iter().map(|n| n.idempotency_key.as_deref()).collect();
    let rows = returning_job!(
        r#"INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, run_at,
                             idempotency_key, dispatched_at)
           SELECT id, tenant_id, kind, queue, args, max_attempts, COALESCE(run_at, now()), key,
                  CASE WHEN dispatched AND COALESCE(run_at, now()) <= now() THEN now() END
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::int4[],
                       $7::timestamptz[], $8::text[], $9::bool[])
                AS t(id, tenant_id, kind, queue, args, max_attempts, run_at, key, dispatched)
           ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"#,
        &c.ids,
        &c.tenants as &[Option<Uuid>],
        &c.kinds as &[&str],
        &c.queues as &[&str],
        &c.args as &[&Value],
        &c.max_attempts,
        &c.run_ats as &[Option<DateTime<Utc>>],
        &keys as &[Option<&str>],
        &c.dispatched,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, Job> =
        rows.into_iter().map(|j| (j.id, j)).collect();
    let mut out = Vec::with_capacity(news.len());
    for new in news {
        match by_id.remove(&new.id) {
            Some(job) => out.push(Inserted::New(job)),
            None => {
                // By the (tenant, key) pair, as in `super::insert`.
                let existing = select_job!(
                    "WHERE tenant_id = $1 AND idempotency_key = $2",
                    new.tenant_id,
                    new.idempotency_key
                )
                .fetch_one(&mut *conn)
                .await?;
                out.push(Inserted::Existing(existing));
            }
        }
    }
    Ok(out)
}

/// [`insert_batch`] for rows none of which has an idempotency key (most submits): nothing can
/// conflict, so the statement skips `ON CONFLICT`, which costs Postgres a speculative insertion
/// per row (an arbiter-index probe and an extra WAL record to confirm each row). It answers
/// only what Postgres decides (the timestamps); the rest of each new row is what was inserted
/// and the table's defaults, which `tests/api/lifecycle.rs`
/// (`a_submit_answers_the_job_exactly_as_stored`) holds equal to the stored row.
async fn insert_batch_keyless(
    conn: &mut PgConnection,
    news: &[NewJob],
) -> sqlx::Result<Vec<Inserted>> {
    let c = Columns::of(news);
    let rows = sqlx::query!(
        r#"INSERT INTO jobs (id, tenant_id, kind, queue, args, max_attempts, run_at, dispatched_at)
           SELECT id, tenant_id, kind, queue, args, max_attempts, COALESCE(run_at, now()),
                  CASE WHEN dispatched AND COALESCE(run_at, now()) <= now() THEN now() END
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::int4[],
                       $7::timestamptz[], $8::bool[])
                AS t(id, tenant_id, kind, queue, args, max_attempts, run_at, dispatched)
           RETURNING id, run_at, dispatched_at, created_at, updated_at"#,
        &c.ids,
        &c.tenants as &[Option<Uuid>],
        &c.kinds as &[&str],
        &c.queues as &[&str],
        &c.args as &[&Value],
        &c.max_attempts,
        &c.run_ats as &[Option<DateTime<Utc>>],
        &c.dispatched,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, _> =
        rows.into_iter().map(|r| (r.id, r)).collect();
    news.iter()
        .map(|new| {
            let row = by_id.remove(&new.id).ok_or_else(|| {
                sqlx::Error::Protocol(format!("no row returned for inserted job {}", new.id))
            })?;
            Ok(Inserted::New(Job {
                id: new.id,
                tenant_id: new.tenant_id,
                kind: new.kind.clone(),
                queue: new.queue.clone(),
                args: new.args.clone(),
                status: JobStatus::Queued,
                attempt: 0,
                max_attempts: new.max_attempts,
                run_at: row.run_at,
                dispatched_at: row.dispatched_at,
                lease_until: None,
                progress: None,
                result: None,
                last_error: None,
                idempotency_key: None,
                cancel_requested_at: None,
                created_at: row.created_at,
                started_at: None,
                finished_at: None,
                updated_at: row.updated_at,
            }))
        })
        .collect()
}

/// The columns both batch statements bind, one array each, borrowing from the rows.
struct Columns<'a> {
    ids: Vec<Uuid>,
    tenants: Vec<Option<Uuid>>,
    kinds: Vec<&'a str>,
    queues: Vec<&'a str>,
    args: Vec<&'a Value>,
    max_attempts: Vec<i32>,
    run_ats: Vec<Option<DateTime<Utc>>>,
    dispatched: Vec<bool>,
}

impl<'a> Columns<'a> {
    fn of(news: &'a [NewJob]) -> Self {
        Self {
            ids: news.iter().map(|n| n.id).collect(),
            tenants: news.iter().map(|n| n.tenant_id).collect(),
            kinds: news.iter().map(|n| n.kind.as_str()).collect(),
            queues: news.iter().map(|n| n.queue.as_str()).collect(),
            args: news.iter().map(|n| &n.args).collect(),
            max_attempts: news.iter().map(|n| n.max_attempts).collect(),
            run_ats: news.iter().map(|n| n.run_at).collect(),
            dispatched: news.iter().map(|n| n.dispatched).collect(),
        }
    }
}
