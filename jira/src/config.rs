//! [`JiraConfig`]: per-connection knobs of the client.

use std::time::Duration;

/// Tuning for one tenant's Jira connection. `Default` gives production values.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraConfig {
    /// Whole-request timeout (connect + response + body). A timeout is a
    /// retryable error.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Most requests this client (and all its clones) runs at once. Jira
    /// Cloud rate-limits per site and per user, so one big portfolio sync
    /// should not be able to monopolise the tenant's budget, nor the
    /// worker's sockets, while other jobs for the same tenant wait.
    pub max_concurrency: usize,
    /// `maxResults` asked for on paged endpoints. Jira may return fewer; the
    /// client follows what the server actually returned.
    pub page_size: u32,
    /// Hard stop for one paged collection, so that a server that never says
    /// "last page" cannot loop us forever.
    pub max_pages: usize,
    /// Most responses (pages) one job reads, over every collection and issue
    /// it fetches; see [`crate::JiraClient::for_job`]. A portfolio of 2,000
    /// issues needs about 2,000–4,000.
    pub max_job_pages: u32,
    /// Most response bytes one job reads, over all its requests: with
    /// `max_job_pages`, what bounds a job against a server that answers
    /// forever in pages that are each small enough.
    pub max_job_bytes: u64,
    /// Most issues a capped collection ([`crate::JiraClient::search_jql_capped`],
    /// [`crate::JiraClient::sprint_issues_capped`]) reads: paging stops once
    /// past it, instead of reading everything and cutting afterwards.
    pub max_issues: usize,
    /// Custom field holding story points (`customfield_10016` is "Story
    /// point estimate" on most Cloud sites; company-managed projects often
    /// use another id). Requested by default and read by
    /// [`crate::to_snapshot`].
    pub story_points_field: String,
    /// A 429/503 whose `Retry-After` is at most this long is retried once in
    /// the client, after sleeping (without holding a concurrency slot).
    /// Longer or unknown waits are returned as retryable errors for the job
    /// layer's backoff. `Duration::ZERO` disables in-client retries.
    ///
    /// Why retry here at all: a 40-page JQL sync that trips a 1-second rate
    /// limit on page 39 would otherwise restart from page 1.
    pub inline_retry_max_wait: Duration,
    /// Largest response body read (bytes). The body is read in chunks and
    /// reading stops past this ([`crate::JiraError::OverLimit`]), so a huge or
    /// endless answer costs at most this much memory, not an out-of-memory
    /// worker. Jira's pages of 100 issues are a few hundred KiB.
    pub max_response_bytes: usize,
    /// Allow `http://` base URLs. Off in production (the Basic credentials
    /// must not travel in clear text); tests against a local mock turn it on.
    pub allow_insecure_http: bool,
    /// `User-Agent` sent with every request (helps Atlassian support and
    /// tenants' admins identify the traffic).
    pub user_agent: String,
}

impl Default for JiraConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 4,
            page_size: 100,
            max_pages: 1000,
            max_job_pages: 10_000,
            max_job_bytes: 256 * 1024 * 1024,
            max_issues: 2000,
            story_points_field: "customfield_10016".to_string(),
            inline_retry_max_wait: Duration::from_secs(2),
            max_response_bytes: 8 * 1024 * 1024,
            allow_insecure_http: false,
            user_agent: concat!("keel-jira/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl JiraConfig {
    /// Rejects values that would make the client useless or unsafe.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrency == 0 {
            return Err("max_concurrency must be at least 1".into());
        }
        if self.max_concurrency > tokio::sync::Semaphore::MAX_PERMITS {
            return Err("max_concurrency is too large".into());
        }
        if self.page_size == 0 || self.page_size > 5000 {
            return Err("page_size must be between 1 and 5000".into());
        }
        if self.max_pages == 0 {
            return Err("max_pages must be at least 1".into());
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err("timeouts must be positive".into());
        }
        if self.max_response_bytes == 0 || self.max_job_bytes == 0 {
            return Err("max_response_bytes and max_job_bytes must be positive".into());
        }
        if self.max_job_pages == 0 || self.max_issues == 0 {
            return Err("max_job_pages and max_issues must be at least 1".into());
        }
        let sp = self.story_points_field.trim();
        if sp.is_empty() || sp.contains(',') || sp.chars().any(char::is_whitespace) {
            return Err("story_points_field must be a single field id".into());
        }
        Ok(())
    }
}
