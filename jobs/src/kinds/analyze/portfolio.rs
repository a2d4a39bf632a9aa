//! `jira.analyze.portfolio` `{project_keys}` or `{jql}`: every matching issue assessed and rolled
//! up per project and overall. Capped at `KEEL_JIRA_MAX_ISSUES` issues (2,000) so one query cannot
//! hold a worker (and the tenant's Jira budget) for hours: the search stops paging at the cap,
//! and the answer says when it was truncated.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common;
use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

pub const MAX_PROJECTS: usize = 50;
pub const MAX_JQL_CHARS: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzePortfolio {
    #[serde(default)]
    pub project_keys: Option<Vec<String>>,
    #[serde(default)]
    pub jql: Option<String>,
}

impl AnalyzePortfolio {
    fn query(&self) -> String {
        match (&self.project_keys, &self.jql) {
            (Some(keys), _) => format!("project in ({}) ORDER BY key ASC", keys.join(", ")),
            (None, Some(jql)) => jql.trim().to_string(),
            (None, None) => String::new(),
        }
    }
}

impl Job for AnalyzePortfolio {
    const NAME: &'static str = "jira.analyze.portfolio";
    const QUEUE: &'static str = "analysis";
    const MAX_ATTEMPTS: i32 = 8;
    /// Up to the issue cap's changelogs and comments, a few requests at a time.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60 * 60);

    fn validate(&self, _services: &Services) -> Result<(), ArgsError> {
        match (&self.project_keys, &self.jql) {
            (Some(_), Some(_)) => Err(ArgsError::new(
                "args",
                "give either project_keys or jql, not both",
            )),
            (None, None) => Err(ArgsError::new("args", "give project_keys or jql")),
            (Some(keys), None) => {
                if keys.is_empty() || keys.len() > MAX_PROJECTS {
                    return Err(ArgsError::new(
                        "args.project_keys",
                        format!("must hold 1 to {MAX_PROJECTS} project keys"),
                    ));
                }
                for (i, k) in keys.iter().enumerate() {
                    if !common::check_project_key(k) {
                        return Err(ArgsError::new(
                            format!("args.project_keys[{i}]"),
                            format!("{k:?} is not a Jira project key (like \"ABC\")"),
                        ));
                    }
                }
                Ok(())
            }
            (None, Some(jql)) => {
                let n = jql.trim().chars().count();
                if n == 0 || n > MAX_JQL_CHARS {
                    Err(ArgsError::new(
                        "args.jql",
                        format!("must be 1 to {MAX_JQL_CHARS} characters"),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn run(self, ctx: JobContext) -> Result<Value, JobError> {
        let tenant = common::tenant(&ctx)?;
        let client = ctx.services.jira.client(&ctx.services, tenant).await?;
        let settings = common::risk_settings(&ctx, tenant).await?;
        let now = chrono::Utc::now();
        let query = self.query();
        let found = tokio::select! {
            r = client.search_jql_capped(&query, &[]) => r.map_err(common::jira_error)?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let max_issues = client.config().max_issues;
        let mut issues = found.items;
        // Read up to the page that reached the cap; at most the cap is assessed.
        let matched = issues.len();
        let truncated = found.truncated || matched > max_issues;
        issues.truncate(max_issues);
        let assessed = common::assess_many(&ctx, &client, issues, &settings, now).await?;
        let risks: Vec<keel_risk::IssueRisk> = assessed.into_iter().map(|(_, r)| r).collect();
        let rollup = keel_risk::rollup_portfolio(&risks);
        let refs: Vec<&keel_risk::IssueRisk> = risks.iter().collect();
        common::store(
            &ctx,
            tenant,
            "portfolio",
            now,
            &refs,
            common::catalog_units(Self::NAME, &self),
        )
        .await?;
        Ok(json!({
            "query": query,
            "matched": matched,
            "analyzed": risks.len(),
            "truncated": truncated,
            "rollup": rollup,
            "issues": risks,
        }))
    }
}
