//! `analysis_history`: every issue assessment Keel made, for history listings and trends.
//!
//! Rows are keyed by (job, issue): a retried or redelivered job replaces its own rows, so the
//! history never shows one job's analysis twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One issue's assessment as stored.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub source: String,
    pub issue_key: String,
    pub project: String,
    pub risk_score: i16,
    pub risk_level: String,
    pub daily_cost: f64,
    pub blocker_count: i32,
    pub negative_share: f64,
    pub age_days: f64,
    pub result: Value,
    pub analyzed_at: DateTime<Utc>,
}

/// What a job writes for one assessed issue.
#[derive(Debug, Clone)]
pub struct NewAnalysis {
    pub issue_key: String,
    pub project: String,
    pub risk_score: i16,
    pub risk_level: String,
    pub daily_cost: f64,
    pub blocker_count: i32,
    pub negative_share: f64,
    pub age_days: f64,
    pub result: Value,
}

/// Stores a job's assessments (all in one statement). Idempotent per (job, issue).
pub async fn store(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    job_id: Uuid,
    source: &str,
    analyzed_at: DateTime<Utc>,
    rows: &[NewAnalysis],
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
    let keys: Vec<String> = rows.iter().map(|r| r.issue_key.clone()).collect();
    let projects: Vec<String> = rows.iter().map(|r| r.project.clone()).collect();
    let scores: Vec<i16> = rows.iter().map(|r| r.risk_score).collect();
    let levels: Vec<String> = rows.iter().map(|r| r.risk_level.clone()).collect();
    let costs: Vec<f64> = rows.iter().map(|r| r.daily_cost).collect();
    let blockers: Vec<i32> = rows.iter().map(|r| r.blocker_count).collect();
    let negatives: Vec<f64> = rows.iter().map(|r| r.negative_share).collect();
    let ages: Vec<f64> = rows.iter().map(|r| r.age_days).collect();
    let results: Vec<Value> = rows.iter().map(|r| r.result.clone()).collect();
    sqlx::query!(
        "INSERT INTO analysis_history (id, tenant_id, job_id, source, issue_key, project, risk_score,
             risk_level, daily_cost, blocker_count, negative_share, age_days, result, analyzed_at)
         SELECT u.id, $1, $2, $3, u.key, u.project, u.score, u.level, u.cost, u.blockers,
                u.negative, u.age, u.result, $4
         FROM UNNEST($5::uuid[], $6::text[], $7::text[], $8::int2[], $9::text[], $10::float8[],
                     $11::int4[], $12::float8[], $13::float8[], $14::jsonb[])
              AS u(id, key, project, score, level, cost, blockers, negative, age, result)
         ON CONFLICT (job_id, issue_key) DO UPDATE SET
             risk_score = EXCLUDED.risk_score, risk_level = EXCLUDED.risk_level,
             daily_cost = EXCLUDED.daily_cost, blocker_count = EXCLUDED.blocker_count,
             negative_share = EXCLUDED.negative_share, age_days = EXCLUDED.age_days,
             result = EXCLUDED.result, analyzed_at = EXCLUDED.analyzed_at",
        tenant_id,
        job_id,
        source,
        analyzed_at,
        &ids,
        &keys,
        &projects,
        &scores,
        &levels,
        &costs,
        &blockers,
        &negatives,
        &ages,
        &results
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of one issue's history, newest first. `after` is the id of the last row of the
/// previous page (the keyset cursor).
pub async fn history(
    pool: &PgPool,
    tenant_id: Uuid,
    issue_key: &str,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<AnalysisRow>> {
    sqlx::query_as!(
        AnalysisRow,
        "SELECT id, job_id, source, issue_key, project, risk_score, risk_level, daily_cost,
                blocker_count, negative_share, age_days, result, analyzed_at
         FROM analysis_history
         WHERE tenant_id = $1 AND issue_key = $2
           AND ($3::uuid IS NULL OR (analyzed_at, id) <
                (SELECT c.analyzed_at, c.id FROM analysis_history c
                 WHERE c.id = $3 AND c.tenant_id = $1))
         ORDER BY analyzed_at DESC, id DESC
         LIMIT $4",
        tenant_id,
        issue_key,
        after,
        limit
    )
    .fetch_all(pool)
    .await
}

/// One point of an issue's trend (the numbers only, no JSON).
#[derive(Debug, Clone, Serialize)]
pub struct TrendRow {
    pub analyzed_at: DateTime<Utc>,
    pub risk_score: i16,
    pub blocker_count: i32,
    pub negative_share: f64,
    pub daily_cost: f64,
}

/// The issue's most recent `limit` analyses, oldest first (the order a chart draws them).
pub async fn trend(
    pool: &PgPool,
    tenant_id: Uuid,
    issue_key: &str,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<TrendRow>> {
    sqlx::query_as!(
        TrendRow,
        "SELECT analyzed_at, risk_score, blocker_count, negative_share, daily_cost FROM (
             SELECT analyzed_at, id, risk_score, blocker_count, negative_share, daily_cost
             FROM analysis_history
             WHERE tenant_id = $1 AND issue_key = $2
               AND ($3::timestamptz IS NULL OR analyzed_at >= $3)
             ORDER BY analyzed_at DESC, id DESC
             LIMIT $4
         ) recent ORDER BY analyzed_at, id",
        tenant_id,
        issue_key,
        since,
        limit
    )
    .fetch_all(pool)
    .await
}
