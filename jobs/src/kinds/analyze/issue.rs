//! `jira.analyze.issue` `{issue_key, template?}`: one issue's explained risk.
//!
//! `template: "executive"` (default) answers with the verdict, the costs and the factors that
//! contributed; `"raw"` adds every factor (zero-point ones too) and the snapshot the engine read.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common;
use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    #[default]
    Executive,
    Raw,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeIssue {
    pub issue_key: String,
    #[serde(default)]
    pub template: Template,
}

impl Job for AnalyzeIssue {
    const NAME: &'static str = "jira.analyze.issue";
    const QUEUE: &'static str = "analysis";
    const MAX_ATTEMPTS: i32 = 8;

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        common::check_issue_key("args.issue_key", &self.issue_key)
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let tenant = common::tenant(&ctx)?;
        let client = ctx.services.jira.client(&ctx.services, tenant).await?;
        let settings = common::risk_settings(&ctx, tenant).await?;
        let now = chrono::Utc::now();
        let issue = tokio::select! {
            r = client.issue(&self.issue_key) => r.map_err(common::jira_error)?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let (snapshot, risk) =
            common::assess(&ctx.services, &client, issue, &settings, now).await?;
        common::store(
            &ctx,
            tenant,
            "issue",
            now,
            &[&risk],
            common::catalog_units(Self::NAME, &self),
        )
        .await?;
        Ok(render(&risk, &snapshot, self.template))
    }
}

fn render(
    risk: &keel_risk::IssueRisk,
    snapshot: &keel_risk::IssueSnapshot,
    template: Template,
) -> Value {
    match template {
        Template::Raw => json!({
            "template": "raw",
            "risk": risk,
            "snapshot": snapshot,
        }),
        Template::Executive => {
            let drivers: Vec<&keel_risk::Factor> =
                risk.factors.iter().filter(|f| f.points > 0.0).collect();
            json!({
                "template": "executive",
                "issue_key": risk.issue_key,
                "project": risk.project_key,
                "summary": risk.summary,
                "risk_score": risk.score,
                "risk_level": risk.level,
                "resolved": risk.resolved,
                "daily_cost_of_delay": risk.daily_cost_of_delay,
                "cost_so_far": risk.cost_so_far,
                "overdue_days": risk.overdue_days,
                "people_involved": risk.people_involved,
                "blocker_count": risk.blocker_count,
                "negative_sentiment_share": risk.negative_sentiment_share,
                "age_days": risk.age_days,
                "drivers": drivers,
                "assessed_at": risk.assessed_at,
                "model_version": risk.model_version,
            })
        }
    }
}
