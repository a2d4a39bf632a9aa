//! What the three analysis kinds share: Jira errors → job errors, issue-key and args checks,
//! turning fetched issues into assessments, and storing results + usage exactly once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use keel_jira::{JiraClient, JiraError, JiraIssue, Sentiment};
use keel_models::analysis::NewAnalysis;
use keel_risk::assess::{assess_issue, IssueRisk};
use keel_risk::model::{IssueSnapshot, Label};
use keel_risk::settings::Settings;
use uuid::Uuid;

use crate::error::JobError;
use crate::job::{ArgsError, JobContext, Services};

/// Jira's own failure, classified: 429/5xx/timeouts retry (after `Retry-After` when given);
/// 401/403/404/bad input are fatal with a message the tenant can act on.
pub fn jira_error(e: JiraError) -> JobError {
    if e.is_retryable() {
        JobError::Retryable {
            message: e.to_string(),
            retry_after: e.retry_after(),
        }
    } else {
        JobError::fatal(e.to_string())
    }
}

/// `ABC-123`: a project key (a letter, then letters, digits or `_`) and a number.
pub fn check_issue_key(path: &str, key: &str) -> Result<(), ArgsError> {
    let ok = key.len() <= 64
        && key.split_once('-').is_some_and(|(project, number)| {
            check_project_key(project)
                && !number.is_empty()
                && number.len() <= 12
                && number.bytes().all(|b| b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(ArgsError::new(
            path,
            format!("{key:?} is not a Jira issue key (like \"ABC-123\")"),
        ))
    }
}

pub fn check_project_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    (1..=32).contains(&key.len())
        && bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The tenant's engine settings as stored (defaults when none are), shared by the jobs and the
/// API. The outer error is the database's; the inner one says the stored JSON no longer parses.
pub async fn stored_risk_settings(
    pool: &keel_models::PgPool,
    tenant: Uuid,
) -> sqlx::Result<Result<Settings, String>> {
    Ok(
        match keel_models::jira::risk_settings(pool, tenant).await? {
            None => Ok(Settings::default()),
            Some(v) => serde_json::from_value(v).map_err(|e| e.to_string()),
        },
    )
}

/// [`stored_risk_settings`] for a job: a database failure retries, invalid settings are fatal.
pub async fn risk_settings(ctx: &JobContext, tenant: Uuid) -> Result<Settings, JobError> {
    stored_risk_settings(&ctx.services.pool, tenant)
        .await
        .map_err(|e| JobError::retryable(format!("loading risk settings failed: {e}")))?
        .map_err(|e| JobError::fatal(format!("stored risk settings are invalid: {e}")))
}

fn label(s: &keel_sentiment::Scores) -> Sentiment {
    let label = match s.label() {
        keel_sentiment::Label::Negative => Label::Negative,
        keel_sentiment::Label::Neutral => Label::Neutral,
        keel_sentiment::Label::Positive => Label::Positive,
    };
    Sentiment {
        label,
        negative_prob: s.negative,
    }
}

/// Snapshot + assessment of one fully fetched issue. Comment sentiment comes from the worker's
/// shared [`keel_sentiment::service::SentimentService`] (the built-in model), so comments of
/// concurrent analyses are scored in merged batches; the mapping and scoring run off the async
/// threads.
pub async fn assess(
    services: &Services,
    client: &JiraClient,
    issue: JiraIssue,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<(IssueSnapshot, IssueRisk), JobError> {
    let texts: Vec<String> = issue.comments().iter().map(|c| c.text()).collect();
    let scores = if texts.is_empty() {
        Vec::new()
    } else {
        services
            .sentiment
            .default
            .score(texts.clone())
            .await
            .map_err(|e| JobError::retryable(format!("scoring comment sentiment failed: {e}")))?
    };
    let by_text: HashMap<String, Sentiment> =
        texts.into_iter().zip(scores.iter().map(label)).collect();
    let client = client.clone();
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let classify = |text: &str| {
            by_text.get(text).copied().unwrap_or(Sentiment {
                label: Label::Neutral,
                negative_prob: 0.0,
            })
        };
        let snap = client.to_snapshot(&issue, classify).map_err(jira_error)?;
        let risk = assess_issue(&snap, &settings, now);
        Ok((snap, risk))
    })
    .await
    .map_err(|e| JobError::retryable(format!("assessment task failed: {e}")))?
}

/// Completes (changelog + comments) and assesses many issues, a few at a time (the client's
/// per-tenant cap bounds the real concurrency), recording progress `{done, total}` as it goes.
/// Results keep the input order.
pub async fn assess_many(
    ctx: &JobContext,
    client: &JiraClient,
    issues: Vec<JiraIssue>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<(IssueSnapshot, IssueRisk)>, JobError> {
    let total = issues.len();
    let _ = ctx
        .set_progress(&serde_json::json!({"done": 0, "total": total}))
        .await;
    let mut done = 0usize;
    let mut out: Vec<Option<(IssueSnapshot, IssueRisk)>> = (0..total).map(|_| None).collect();
    let mut tasks = stream::iter(issues.into_iter().enumerate())
        .map(|(i, mut issue)| async move {
            client
                .complete_issue(&mut issue)
                .await
                .map_err(jira_error)?;
            let pair = assess(&ctx.services, client, issue, settings, now).await?;
            Ok::<_, JobError>((i, pair))
        })
        .buffer_unordered(client.config().max_concurrency.max(1));
    loop {
        let next = tokio::select! {
            next = tasks.next() => next,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let Some(res) = next else { break };
        let (i, pair) = res?;
        out[i] = Some(pair);
        done += 1;
        // Every issue on small jobs; about every 5% on big ones, so progress costs few writes.
        if done == total || done.is_multiple_of((total / 20).max(1)) {
            let _ = ctx
                .set_progress(&serde_json::json!({"done": done, "total": total}))
                .await;
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// The stored form of one assessment.
pub fn history_row(risk: &IssueRisk) -> NewAnalysis {
    NewAnalysis {
        issue_key: risk.issue_key.clone(),
        project: risk.project_key.clone(),
        risk_score: i16::from(risk.score),
        risk_level: risk.level.as_str().to_string(),
        daily_cost: risk.daily_cost_of_delay,
        blocker_count: risk.blocker_count as i32,
        negative_share: risk.negative_sentiment_share,
        age_days: risk.age_days,
        result: serde_json::to_value(risk).unwrap_or_default(),
    }
}

/// The units a job of `kind` with `args` costs in the plan catalog (1 if it is not metered
/// there): recorded when the job holds no reservation (metering off).
pub fn catalog_units(kind: &str, args: &impl serde::Serialize) -> i32 {
    let args = serde_json::to_value(args).unwrap_or_default();
    keel_billing::catalog::global()
        .units_for(kind, &args)
        .map_or(1, |u| u.min(i32::MAX as u64) as i32)
}

/// Writes the job's history rows and its usage event in one transaction. A retried or twice
/// delivered job rewrites its own rows and records usage once (both keyed by the job id), with
/// the units its reservation holds, else `units`.
pub async fn store(
    ctx: &JobContext,
    tenant: Uuid,
    source: &str,
    now: DateTime<Utc>,
    risks: &[&IssueRisk],
    units: i32,
) -> Result<(), JobError> {
    let db = |e: sqlx::Error| JobError::retryable(format!("storing the analysis failed: {e}"));
    let rows: Vec<NewAnalysis> = risks.iter().map(|r| history_row(r)).collect();
    let mut tx = ctx.services.pool.begin().await.map_err(db)?;
    keel_models::analysis::store(&mut tx, tenant, ctx.job_id, source, now, &rows)
        .await
        .map_err(db)?;
    keel_models::usage::record(&mut tx, tenant, ctx.job_id, source, units)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// The tenant running the job (analysis kinds are never internal).
pub fn tenant(ctx: &JobContext) -> Result<Uuid, JobError> {
    ctx.tenant_id
        .ok_or_else(|| JobError::fatal("analysis jobs need a tenant"))
}
