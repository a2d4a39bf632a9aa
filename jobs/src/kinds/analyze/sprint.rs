//! `jira.analyze.sprint` `{sprint_id}` or `{board_id}` (the board's active sprint): every issue
//! of the sprint assessed, rolled up (at-risk counts, top risks, blocker graph, cost at risk).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common;
use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeSprint {
    #[serde(default)]
    pub sprint_id: Option<u64>,
    #[serde(default)]
    pub board_id: Option<u64>,
}

impl Job for AnalyzeSprint {
    const NAME: &'static str = "jira.analyze.sprint";
    const QUEUE: &'static str = "analysis";
    const MAX_ATTEMPTS: i32 = 8;
    /// Every issue's changelog and comments, a few requests at a time.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        match (self.sprint_id, self.board_id) {
            (Some(_), Some(_)) => Err(ArgsError::new(
                "args",
                "give either sprint_id or board_id, not both",
            )),
            (None, None) => Err(ArgsError::new(
                "args",
                "give sprint_id, or board_id to analyze the board's active sprint",
            )),
            (Some(0), _) => Err(ArgsError::new("args.sprint_id", "must be positive")),
            (_, Some(0)) => Err(ArgsError::new("args.board_id", "must be positive")),
            _ => Ok(()),
        }
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let tenant = common::tenant(&ctx)?;
        let client = ctx.services.jira.client(&ctx.services, tenant).await?;
        let settings = common::risk_settings(&ctx, tenant).await?;
        let now = chrono::Utc::now();
        let sprint = match (self.sprint_id, self.board_id) {
            (Some(id), _) => client.sprint(id).await.map_err(common::jira_error)?,
            (None, Some(board)) => client
                .active_sprint(board)
                .await
                .map_err(common::jira_error)?
                .ok_or_else(|| JobError::fatal(format!("board {board} has no active sprint")))?,
            (None, None) => return Err(JobError::fatal("no sprint_id or board_id")),
        };
        // Paging stops at the cap (`KEEL_JIRA_MAX_ISSUES`): a "sprint" of 100,000 issues costs
        // the pages up to it, not all of them.
        let found = tokio::select! {
            r = client.sprint_issues_capped(sprint.id) => r.map_err(common::jira_error)?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let max_issues = client.config().max_issues;
        let truncated = found.truncated || found.items.len() > max_issues;
        let mut issues = found.items;
        issues.truncate(max_issues);
        let assessed = common::assess_many(&ctx, &client, issues, &settings, now).await?;
        let (snaps, risks): (Vec<_>, Vec<_>) = assessed.into_iter().unzip();
        let rollup = keel_risk::rollup_sprint(&sprint.id.to_string(), &sprint.name, &risks, &snaps);
        let refs: Vec<&keel_risk::IssueRisk> = risks.iter().collect();
        common::store(
            &ctx,
            tenant,
            "sprint",
            now,
            &refs,
            common::catalog_units(Self::NAME, &self),
        )
        .await?;
        Ok(json!({
            "sprint": {
                "id": sprint.id,
                "name": sprint.name,
                "state": sprint.state,
                "start_date": sprint.start_date,
                "end_date": sprint.end_date,
            },
            "rollup": rollup,
            "truncated": truncated,
            "issues": risks,
        }))
    }
}
