//! `POST /api/jobs/batch`: many jobs in one request and one transaction, accepted all together
//! or not at all — for clients with a list to submit (every issue of a board, a backfill), which
//! would otherwise pay a request and a commit per job.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keel_jobs::enqueue::{self, Submit};
use keel_models::job::{self as ledger, Inserted};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::routes::jobs::{priority_lane, refused, JobView};
use crate::state::AppState;

/// Most jobs in one batch (the 1 MiB body limit applies too).
pub const MAX_JOBS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    jobs: Vec<Submit>,
}

/// One job of the answer, in the order the batch listed them.
#[derive(Serialize)]
pub struct Item {
    /// `false`: the item's idempotency key was used before, and this is the job it created.
    created: bool,
    #[serde(flatten)]
    job: JobView,
}

#[derive(Serialize)]
pub struct Accepted {
    jobs: Vec<Item>,
}

/// → 202 when at least one job is new; 200 when every item met the job its idempotency key
/// created before. Any refused item refuses the batch (its path says which: `jobs[3].args.url`)
/// and nothing is written; metered kinds reserve their units in the same transaction, so a
/// batch that would exceed a quota is refused whole.
pub async fn submit(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Batch>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if body.jobs.is_empty() || body.jobs.len() > MAX_JOBS {
        return Err(ApiError::invalid(
            "jobs",
            format!("must hold 1 to {MAX_JOBS} jobs, not {}", body.jobs.len()),
        ));
    }
    let priority = priority_lane(&state, tenant).await?;
    let mut keys = HashSet::new();
    let mut news = Vec::with_capacity(body.jobs.len());
    let mut jira_checked = false;
    for (i, submit) in body.jobs.into_iter().enumerate() {
        let at = format!("jobs[{i}].");
        if let Some(key) = &submit.idempotency_key {
            if !keys.insert(key.clone()) {
                return Err(ApiError::invalid(
                    &format!("{at}idempotency_key"),
                    "already used by an earlier job of this batch",
                ));
            }
        }
        let mut new = enqueue::prepare(&state.registry, &state.services, Some(tenant), submit)
            .map_err(|e| refused(e, &at))?;
        // One lookup for the batch, with its first Jira kind.
        if !jira_checked && crate::routes::analyses::needs_jira(&new.kind) {
            crate::routes::analyses::jira_connected(&state, tenant, &new.kind).await?;
            jira_checked = true;
        }
        if priority {
            new.queue = keel_jobs::lane::priority_queue(&new.queue);
        }
        news.push(new);
    }

    // The tenant's plan and period, looked up once for every metered item of the batch, and
    // before the transaction holds a pooled connection (see `crate::tenant_gate`).
    let _pass = state.gate.enter(tenant).await?;
    let mut plan = if news.iter().any(|n| crate::metering::metered(&state, n)) {
        Some(crate::metering::Looked::now(&state, tenant, chrono::Utc::now()).await)
    } else {
        None
    };
    let mut tx = state.pool.begin().await?;
    let inserted = insert_in_key_order(&mut tx, &news).await?;
    for (i, (new, row)) in news.iter().zip(&inserted).enumerate() {
        match row {
            Inserted::New(job) if crate::metering::metered(&state, new) => {
                let e = plan
                    .as_mut()
                    .expect("looked up when any item is metered")
                    .get()?;
                crate::metering::reserve_under(&state, &mut tx, tenant, e, new, job.created_at)
                    .await
                    .map_err(|e| of_item(e, i))?;
            }
            Inserted::New(_) => {}
            Inserted::Existing(job) if job.kind != new.kind || job.args != new.args => {
                return Err(ApiError::Conflict {
                    code: "idempotency_key_reused",
                    message: format!(
                        "jobs[{i}]: this idempotency key was used for a different job (kind or \
                         args differ)"
                    ),
                    details: json!({ "index": i, "existing_job_id": job.id }),
                });
            }
            Inserted::Existing(_) => {}
        }
    }
    tx.commit().await?;

    let new_jobs = inserted.iter().filter_map(|r| match r {
        Inserted::New(job) => Some(job),
        Inserted::Existing(_) => None,
    });
    state.submitter.dispatch_all_later(new_jobs.clone());
    let created = new_jobs.count();
    tracing::info!(tenant_id = %tenant, jobs = inserted.len(), created, "job batch accepted");
    let jobs = inserted
        .into_iter()
        .map(|row| match row {
            Inserted::New(job) => Item {
                created: true,
                job: job.into(),
            },
            Inserted::Existing(job) => Item {
                created: false,
                job: job.into(),
            },
        })
        .collect();
    let status = if created > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Accepted { jobs })))
}

/// A quota refusal of item `i`, saying which item: its message starts with `jobs[i]: ` and
/// its details carry `index` (the rest of the batch may have fitted).
fn of_item(e: ApiError, i: usize) -> ApiError {
    match e {
        ApiError::TooManyRequests {
            code,
            message,
            mut details,
            retry_after,
            headers,
        } => {
            if let Some(d) = details.as_object_mut() {
                d.insert("index".into(), json!(i));
            }
            ApiError::TooManyRequests {
                code,
                message: format!("jobs[{i}]: {message}"),
                details,
                retry_after,
                headers,
            }
        }
        e => e,
    }
}

/// Inserts the rows in the order of their idempotency keys and answers in the batch's order.
/// An insert waits on a concurrent transaction inserting the same key; two batches with keys
/// in opposite orders would wait on each other (a deadlock Postgres breaks by failing one). In
/// one order, the later batch waits and then finds the earlier one's jobs.
async fn insert_in_key_order(
    tx: &mut sqlx::PgConnection,
    news: &[keel_models::job::NewJob],
) -> sqlx::Result<Vec<Inserted>> {
    let mut order: Vec<usize> = (0..news.len()).collect();
    order.sort_by(|&a, &b| news[a].idempotency_key.cmp(&news[b].idempotency_key));
    let sorted: Vec<_> = order.iter().map(|&i| news[i].clone()).collect();
    let mut answers: Vec<Option<Inserted>> = (0..news.len()).map(|_| None).collect();
    for (&i, row) in order.iter().zip(ledger::insert_batch(tx, &sorted).await?) {
        answers[i] = Some(row);
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("one answer per row"))
        .collect())
}
