//! The Stripe event inbox and per-object ordering.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Processing states of a stored event.
pub const STATUSES: &[&str] = &[
    "received",
    "processed",
    "ignored",
    "skipped_stale",
    "failed",
];

#[derive(Debug, Clone, Serialize)]
pub struct StripeEvent {
    pub id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub api_version: Option<String>,
    pub created: DateTime<Utc>,
    pub livemode: bool,
    pub payload: Value,
    pub status: String,
    pub error: Option<String>,
    pub job_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

pub struct NewEvent<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub api_version: Option<&'a str>,
    pub created: DateTime<Utc>,
    pub livemode: bool,
    pub payload: &'a Value,
    pub job_id: Uuid,
}

macro_rules! select_event {
    ($tail:literal, $($arg:expr),*) => {
        sqlx::query_as!(
            StripeEvent,
            r#"SELECT id, seq, type AS kind, api_version, created, livemode, payload, status, error,
                      job_id, received_at, processed_at
               FROM stripe_events "# + $tail,
            $($arg),*
        )
    };
}

/// Stores an event (in the caller's transaction, next to its processing job). `false` when an
/// event with this id is already stored: Stripe redelivered it.
pub async fn insert(conn: &mut PgConnection, e: &NewEvent<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        e.id,
        e.kind,
        e.api_version,
        e.created,
        e.livemode,
        e.payload,
        e.job_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(pool: &PgPool, id: &str) -> sqlx::Result<Option<StripeEvent>> {
    select_event!("WHERE id = $1", id)
        .fetch_optional(pool)
        .await
}

/// Locks the event for processing, so two jobs for one event (a replay racing the original)
/// run one after the other and the second sees the first's result.
pub async fn lock(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<StripeEvent>> {
    select_event!("WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await
}

/// Records the outcome of processing.
pub async fn finish(
    conn: &mut PgConnection,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE stripe_events SET status = $2, error = $3, processed_at = now() WHERE id = $1",
        id,
        status,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Newest first (arrival order), keyset-paginated on `seq`.
///
/// Planned for its values every time: a generic plan cannot tell that `failed` events are rare
/// (it counts each status as common as the others), and walked every newer event of the inbox
/// for a page of them. Planned for `failed`, it reads them through `stripe_events_status`.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    kind: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<StripeEvent>> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    let page = select_event!(
        r#"WHERE ($1::text IS NULL OR status = $1)
             AND ($2::text IS NULL OR type = $2)
             AND ($3::int8 IS NULL OR seq < $3)
           ORDER BY seq DESC LIMIT $4"#,
        status,
        kind,
        before_seq,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(page)
}

/// Sets an event back to `received` with a new processing job (operator replay).
pub async fn reset_for_replay(
    conn: &mut PgConnection,
    id: &str,
    job_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE stripe_events SET status = 'received', error = NULL, processed_at = NULL,
                                  job_id = $2
         WHERE id = $1",
        id,
        job_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims `object_id` for an event created at `created` (ties broken by event id). `true`: the
/// event is the newest seen for the object (or the same one again) and may be applied; the
/// claim holds a row lock until the caller's transaction ends. `false`: a newer event was
/// already applied, so this one is stale and must change nothing.
pub async fn claim_version(
    conn: &mut PgConnection,
    object_id: &str,
    created: DateTime<Utc>,
    event_id: &str,
) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "INSERT INTO stripe_object_versions (object_id, event_created, event_id)
         VALUES ($1, $2, $3)
         ON CONFLICT (object_id) DO UPDATE
           SET event_created = EXCLUDED.event_created, event_id = EXCLUDED.event_id,
               updated_at = now()
           WHERE (stripe_object_versions.event_created, stripe_object_versions.event_id)
                 <= (EXCLUDED.event_created, EXCLUDED.event_id)
         RETURNING object_id",
        object_id,
        created,
        event_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}
