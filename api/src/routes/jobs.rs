//! Submitting jobs and following them.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keel_jobs::enqueue::{self, Submit, SubmitError};
use keel_models::job::{self as ledger, CancelOutcome, Inserted, Job, JobStatus};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, TenantId};
use crate::metering::Looked;
use crate::routes::parse_id;
use crate::routes::query;
use crate::state::AppState;
use crate::waits::MAX_WAIT_SECS;

/// The public shape of a job, serialised straight from the row's fields (built by moving them
/// out of the [`Job`], not through an intermediate JSON map: every submit answers with one).
#[derive(Serialize)]
pub struct JobView {
    id: Uuid,
    kind: String,
    queue: String,
    status: JobStatus,
    attempts: i32,
    max_attempts: i32,
    args: Value,
    progress: Option<Value>,
    result: Option<Value>,
    last_error: Option<Value>,
    idempotency_key: Option<String>,
    run_at: DateTime<Utc>,
    cancel_requested: bool,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    status_url: String,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            status_url: format!("/api/jobs/{}", job.id),
            id: job.id,
            kind: job.kind,
            queue: job.queue,
            status: job.status,
            attempts: job.attempt,
            max_attempts: job.max_attempts,
            args: job.args,
            progress: job.progress,
            result: job.result,
            last_error: job.last_error,
            idempotency_key: job.idempotency_key,
            run_at: job.run_at,
            cancel_requested: job.cancel_requested_at.is_some(),
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            updated_at: job.updated_at,
        }
    }
}

/// One page of `GET /api/jobs`.
#[derive(Serialize)]
pub struct JobPage {
    jobs: Vec<JobView>,
    next_cursor: Option<Uuid>,
}

/// `POST /api/jobs` → 202 (new) or 200 (idempotency key seen before, same request).
pub async fn submit(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Submit>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    accept(&state, tenant, body).await
}

/// Validates, inserts and dispatches a tenant's job: the one path every submitting endpoint
/// (`POST /api/jobs`, `POST /api/analyze/*`) takes.
pub(crate) async fn accept(
    state: &AppState,
    tenant: uuid::Uuid,
    body: Submit,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let mut new = enqueue::prepare(&state.registry, &state.services, Some(tenant), body)
        .map_err(|e| refused(e, ""))?;
    crate::routes::analyses::jira_connected(state, tenant, &new.kind).await?;
    if priority_lane(state, tenant).await? {
        new.queue = keel_jobs::lane::priority_queue(&new.queue);
    }
    let metered = crate::metering::metered(state, &new);
    // Only a submit with an idempotency key can meet an existing job, to be compared below.
    let asked = new
        .idempotency_key
        .as_ref()
        .map(|_| (new.kind.clone(), new.args.clone()));
    let inserted = if metered {
        // The job and the reservation of its units commit together or not at all. The plan is
        // looked up before the transaction takes its connection, and the tenant's turn at the
        // gate before that: see `crate::tenant_gate`.
        let _pass = state.gate.enter(tenant).await?;
        let mut plan = Looked::now(state, tenant, chrono::Utc::now()).await;
        let mut tx = state.pool.begin().await?;
        let inserted = ledger::insert(&mut tx, &new).await?;
        if let Inserted::New(job) = &inserted {
            let e = plan.get()?;
            crate::metering::reserve_under(state, &mut tx, tenant, e, &new, job.created_at).await?;
        }
        tx.commit().await?;
        if let Inserted::New(job) = &inserted {
            state.submitter.dispatch_later(job);
        }
        inserted
    } else {
        // Nothing to commit with: the insert joins concurrent submits in one statement and one
        // commit (group commit), durable when it returns and pushed right after. (Producers
        // with business data call `ledger::insert` inside their own transaction.)
        state.submitter.submit(new).await?
    };
    match inserted {
        Inserted::New(job) => {
            tracing::info!(job_id = %job.id, kind = ?job.kind, tenant_id = %tenant, "job accepted");
            Ok((StatusCode::ACCEPTED, Json(JobView::from(job))))
        }
        Inserted::Existing(job) => {
            if asked.is_none_or(|(kind, args)| job.kind != kind || job.args != args) {
                return Err(ApiError::Conflict {
                    code: "idempotency_key_reused",
                    message:
                        "this idempotency key was used for a different job (kind or args differ)"
                            .into(),
                    details: json!({ "existing_job_id": job.id }),
                });
            }
            Ok((StatusCode::OK, Json(JobView::from(job))))
        }
    }
}

/// A submit [`enqueue::prepare`] refused, as a 422 whose `details.path` points at the field
/// (`at` prefixes it: `jobs[3].` for an item of a batch).
pub(crate) fn refused(e: SubmitError, at: &str) -> ApiError {
    match e {
        SubmitError::UnknownKind { kind, known } => ApiError::Unprocessable {
            code: "unknown_kind",
            message: format!(
                "{}unknown job kind {kind:?}; known kinds: {}",
                if at.is_empty() {
                    String::new()
                } else {
                    format!("{at}kind: ")
                },
                known.join(", ")
            ),
            details: json!({ "path": format!("{at}kind"), "known_kinds": known }),
        },
        SubmitError::Invalid(a) => ApiError::invalid(&format!("{at}{}", a.path), a.message),
    }
}

/// Whether the tenant's jobs travel on the priority lanes (an add-on with `priority_lane`).
/// Catalogs that sell no such add-on skip the lookup.
pub(crate) async fn priority_lane(state: &AppState, tenant: uuid::Uuid) -> Result<bool, ApiError> {
    let catalog = &state.billing.catalog;
    let sold = catalog.add_ons.iter().any(|a| {
        a.features
            .get(keel_billing::catalog::FEATURE_PRIORITY_LANE)
            .and_then(|v| v.as_bool())
            == Some(true)
    });
    if !sold {
        return Ok(false);
    }
    let ids = state.limits.add_ons(&state.pool, tenant).await?;
    Ok(catalog.feature_enabled(&ids, keel_billing::catalog::FEATURE_PRIORITY_LANE))
}

/// `GET /api/jobs/{id}[?wait=N]`: the job; with `wait`, answered when it ends or after N
/// seconds (at most [`MAX_WAIT_SECS`]), whichever is first, with the job as it then is.
pub async fn get(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: query::Params,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id, "job")?;
    query::only(&q, &["wait"])?;
    let wait = query::number(&q, "wait", 0..=MAX_WAIT_SECS as i64, || {
        format!("must be a whole number of seconds from 0 to {MAX_WAIT_SECS}")
    })?
    .map(|w| w as u64);
    let mut job = ledger::get_for_tenant(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    if let Some(secs) = wait.filter(|s| *s > 0 && !job.status.is_terminal()) {
        state.waits.until_ended(id, Duration::from_secs(secs)).await;
        job = ledger::get_for_tenant(&state.pool, tenant, id)
            .await?
            .ok_or(ApiError::NotFound("job"))?;
    }
    Ok(Json(JobView::from(job)))
}

/// `GET /api/jobs?status=&kind=&limit=&cursor=`: newest first; pass `next_cursor` as `cursor`.
/// A filtered page may hold fewer than `limit` jobs, even none, and still have a `next_cursor`
/// (see `keel_models::job::list_for_tenant`): the listing is over when `next_cursor` is null.
pub async fn list(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    q: query::Params,
) -> Result<Json<JobPage>, ApiError> {
    query::only(&q, &["status", "kind", "limit", "cursor"])?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            let allowed: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid("status", format!("must be one of {}", allowed.join(", ")))
        })?),
    };
    let limit = query::limit(&q, 50, 200)?;
    let cursor = query::cursor::<uuid::Uuid>(&q)?;
    let kind = q.get("kind").map(String::as_str);
    let filter = ledger::JobFilter {
        status,
        kind,
        before: cursor,
        limit,
    };
    let page = ledger::list_for_tenant(&state.pool, tenant, filter).await?;
    Ok(Json(JobPage {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_cursor: page.next_before,
    }))
}

/// Not started → `cancelled` at once (200). Running → the handler is told (202); the job ends
/// `cancelled` when it stops. Finished → 409.
pub async fn cancel(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let id = parse_id(&id, "job")?;
    match ledger::cancel(&state.pool, tenant, id).await? {
        CancelOutcome::Cancelled(job) => Ok((StatusCode::OK, Json(JobView::from(job)))),
        CancelOutcome::Requested(job) => Ok((StatusCode::ACCEPTED, Json(JobView::from(job)))),
        CancelOutcome::NotCancellable(None) => Err(ApiError::NotFound("job")),
        CancelOutcome::NotCancellable(Some(job)) => Err(ApiError::Conflict {
            code: "not_cancellable",
            message: format!("job is already {}", job.status.as_str()),
            details: json!({ "status": job.status }),
        }),
    }
}

/// `dead|failed → queued`, due now, with a fresh attempt budget. A metered job that died had
/// its units released, so it reserves them again in the same transaction, under today's plan
/// and period: a retry is refused (402, 429) where a submit would be.
pub async fn retry(
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id, "job")?;
    // What the retry's transaction needs from outside it is read first, so the transaction never
    // waits for a second pooled connection (see `crate::tenant_gate`): as at submit, a `jira.*`
    // job retried after Jira was disconnected could only die again, and a dead metered job
    // reserves its units under the tenant's current plan. A job that changes between this read
    // and the guarded update is answered from what the update finds.
    let Some(current) = ledger::get_for_tenant(&state.pool, tenant, id).await? else {
        return Err(ApiError::NotFound("job"));
    };
    if matches!(current.status, JobStatus::Dead | JobStatus::Failed) {
        crate::routes::analyses::jira_connected(&state, tenant, &current.kind).await?;
    }
    let _pass = state.gate.enter(tenant).await?;
    let now = chrono::Utc::now();
    // Only a metered kind can need its units reserved again; the rest skip the plan lookup.
    let mut plan = if crate::metering::metered_kind(&state, &current.kind, &current.args) {
        Looked::now(&state, tenant, now).await
    } else {
        Looked::not_needed()
    };
    let mut tx = state.pool.begin().await?;
    let retried = ledger::retry(&mut tx, tenant, id).await?;
    if let Some(job) = &retried {
        crate::metering::reserve_again(&state, &mut tx, &mut plan, job, now).await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    match retried {
        Some(job) => {
            // The relay would pick it up within a tick; pushing now makes the retry immediate.
            enqueue::dispatch_after_commit_marking(&state.lane, &state.pool, &job).await;
            Ok(Json(JobView::from(job)))
        }
        None => match ledger::get_for_tenant(&state.pool, tenant, id).await? {
            None => Err(ApiError::NotFound("job")),
            Some(job) => Err(ApiError::Conflict {
                code: "not_retryable",
                message: format!(
                    "only dead or failed jobs can be retried; this one is {}",
                    job.status.as_str()
                ),
                details: json!({ "status": job.status }),
            }),
        },
    }
}
