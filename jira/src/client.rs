//! [`JiraClient`]: authenticated, rate-limit-aware access to Jira Cloud.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

mod transport;

use transport::check_page_len;

use crate::config::JiraConfig;
use crate::error::JiraError;
use crate::types::{
    AgileIssuePage, Changelog, ChangelogPage, Comment, CommentPage, History, JiraIssue, JiraUser,
    SearchPage, Sprint, SprintPage,
};

/// Fields requested for issues unless the caller asks for others: what
/// [`crate::to_snapshot`] reads, plus the configured story-points field.
pub const SNAPSHOT_FIELDS: &[&str] = &[
    "summary",
    "status",
    "priority",
    "assignee",
    "reporter",
    "created",
    "updated",
    "resolutiondate",
    "duedate",
    "issuelinks",
    "comment",
    "project",
    "issuetype",
    "labels",
];

/// A Jira Cloud client for one tenant's connection (site + account).
///
/// Cheap to clone; clones share the HTTP connection pool *and* the
/// concurrency cap, so hand clones to parallel tasks rather than building
/// new clients. All calls authenticate with HTTP Basic `email:api_token`,
/// which is what Jira Cloud expects for API tokens.
///
/// Retries: 429/503 answers with a `Retry-After` of at most
/// [`JiraConfig::inline_retry_max_wait`] are retried once in the client;
/// everything else is returned as a [`JiraError`] whose
/// [`is_retryable`](JiraError::is_retryable) /
/// [`retry_after`](JiraError::retry_after) drive the job layer's backoff.
///
/// Bounds: every response is read in chunks up to
/// [`JiraConfig::max_response_bytes`]; all requests made through one client
/// value and its clones count against one budget of
/// [`JiraConfig::max_job_pages`] responses and [`JiraConfig::max_job_bytes`]
/// bytes. A job takes [`for_job`](Self::for_job) of its tenant's shared client:
/// the same connections and concurrency cap, a budget of its own.
#[derive(Clone)]
pub struct JiraClient {
    inner: Arc<Inner>,
    budget: Arc<Budget>,
}

/// What the requests made through one client value (and its clones) have
/// read so far: responses and bytes.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    pub(crate) pages: AtomicU32,
    pub(crate) bytes: AtomicU64,
}

/// A collection read up to a cap ([`JiraConfig::max_issues`]).
#[derive(Debug, Clone)]
pub struct Capped<T> {
    /// What was read: every item when not truncated, else at least the cap
    /// (the whole last page that crossed it).
    pub items: Vec<T>,
    /// Whether paging stopped at the cap with more left to read.
    pub truncated: bool,
}

struct Inner {
    http: reqwest::Client,
    /// Site root, e.g. `https://acme.atlassian.net`, no trailing slash.
    base: Url,
    email: String,
    /// `Basic base64(email:token)`, marked sensitive so that reqwest/http
    /// never print it. The raw token is not kept.
    auth: HeaderValue,
    config: JiraConfig,
    permits: Semaphore,
}

impl fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraClient")
            .field("base_url", &self.inner.base.as_str())
            .field("email", &self.inner.email)
            .field("api_token", &"[redacted]")
            .field("config", &self.inner.config)
            .field("available_permits", &self.inner.permits.available_permits())
            .finish()
    }
}

impl JiraClient {
    /// Builds a client for `base_url` (e.g. `https://acme.atlassian.net`).
    ///
    /// Fails with [`JiraError::Invalid`] for a bad configuration, a base URL
    /// that is not `https://` (unless [`JiraConfig::allow_insecure_http`]),
    /// carries credentials, a query or a fragment, or blank credentials.
    pub fn new(
        base_url: &str,
        email: impl Into<String>,
        api_token: SecretString,
        config: JiraConfig,
    ) -> Result<Self, JiraError> {
        Self::with_http_builder(
            base_url,
            email,
            api_token,
            config,
            reqwest::Client::builder(),
        )
    }

    /// Like [`JiraClient::new`], starting from the caller's HTTP client builder, so the job layer
    /// can put its SSRF-guarding DNS resolver under every Jira request (tenants choose the base
    /// URL). Timeouts, redirects and the user agent are still set here.
    pub fn with_http_builder(
        base_url: &str,
        email: impl Into<String>,
        api_token: SecretString,
        config: JiraConfig,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, JiraError> {
        config.validate().map_err(JiraError::Invalid)?;
        let base = parse_base_url(base_url, config.allow_insecure_http)?;
        let email = email.into().trim().to_string();
        if email.is_empty() {
            return Err(JiraError::Invalid("the Jira account email is empty".into()));
        }
        let token = api_token.expose_secret().trim();
        if token.is_empty() {
            return Err(JiraError::Invalid("the Jira API token is empty".into()));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
        let mut auth = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| JiraError::Invalid("the Jira email contains invalid characters".into()))?;
        auth.set_sensitive(true);

        let http = builder
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could carry the Basic credentials elsewhere; report
            // it instead (see JiraError::Redirected).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| JiraError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let permits = Semaphore::new(config.max_concurrency);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                email,
                auth,
                config,
                permits,
            }),
            budget: Arc::default(),
        })
    }

    /// This client with a fresh per-job budget ([`JiraConfig::max_job_pages`],
    /// [`JiraConfig::max_job_bytes`]). It shares the connection pool and the
    /// concurrency cap with `self` (so the tenant's cap holds across its jobs),
    /// but not what `self` has read: one job's reading cannot use up another's.
    pub fn for_job(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            budget: Arc::default(),
        }
    }

    /// The site root this client talks to.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The configuration in use.
    pub fn config(&self) -> &JiraConfig {
        &self.inner.config
    }

    /// Fields requested by [`issue`](Self::issue) and
    /// [`sprint_issues`](Self::sprint_issues), and by
    /// [`search_jql`](Self::search_jql) when given no fields.
    pub fn snapshot_fields(&self) -> Vec<String> {
        let mut f: Vec<String> = SNAPSHOT_FIELDS.iter().map(|s| s.to_string()).collect();
        f.push(self.inner.config.story_points_field.trim().to_string());
        f
    }

    /// `GET /rest/api/3/myself`: who the credentials belong to. Use it to
    /// validate a new or edited connection (a 401 becomes the fatal
    /// "Jira rejected the credentials" error).
    pub async fn myself(&self) -> Result<JiraUser, JiraError> {
        let url = self.url(&["rest", "api", "3", "myself"], &[]);
        self.get(url, "current user").await
    }

    /// `GET /rest/api/3/issue/{key}?expand=changelog&fields=…`, then
    /// completes the changelog and comments when Jira embedded only part of
    /// them (see [`complete_issue`](Self::complete_issue)). The result holds
    /// every changelog entry and every comment, oldest first.
    pub async fn issue(&self, key: &str) -> Result<JiraIssue, JiraError> {
        validate_key(key)?;
        let url = self.url(
            &["rest", "api", "3", "issue", key],
            &[
                ("expand", "changelog".to_string()),
                ("fields", self.snapshot_fields().join(",")),
            ],
        );
        let mut issue: JiraIssue = self.get(url, &format!("issue {key}")).await?;
        self.complete_issue(&mut issue).await?;
        Ok(issue)
    }

    /// Fills in the changelog and comments of an issue from their paged
    /// endpoints when they are missing or partial (`total` larger than what
    /// was embedded). Useful after [`search_jql`](Self::search_jql) or
    /// [`sprint_issues`](Self::sprint_issues), whose issues carry no
    /// changelog.
    ///
    /// The paged endpoints are read from the start and merged with the
    /// embedded entries by id, rather than continuing after the embedded
    /// ones: Jira does not document which slice it embeds (it has differed
    /// between "first N" and "latest N"), so this is correct either way at
    /// the cost of re-reading at most one page.
    pub async fn complete_issue(&self, issue: &mut JiraIssue) -> Result<(), JiraError> {
        validate_key(&issue.key)?;
        let changelog_done = issue.changelog.as_ref().is_some_and(|c| !c.is_partial());
        if !changelog_done {
            let fetched = self.issue_changelog(&issue.key).await?;
            let embedded = issue
                .changelog
                .take()
                .map(|c| c.histories)
                .unwrap_or_default();
            let mut all = merge_by_id(embedded, fetched, |h: &History| h.id.clone());
            all.sort_by_key(|h| h.created);
            let n = all.len() as u64;
            issue.changelog = Some(Changelog {
                start_at: 0,
                max_results: Some(n),
                total: Some(n),
                histories: all,
            });
        }
        let comments_done = issue
            .fields
            .comment
            .as_ref()
            .is_some_and(|c| !c.is_partial());
        if !comments_done {
            let fetched = self.issue_comments(&issue.key).await?;
            let embedded = issue
                .fields
                .comment
                .take()
                .map(|c| c.comments)
                .unwrap_or_default();
            let mut all = merge_by_id(embedded, fetched, |c: &Comment| c.id.clone());
            all.sort_by_key(|c| c.created);
            let n = all.len() as u64;
            issue.fields.comment = Some(CommentPage {
                start_at: 0,
                max_results: Some(n),
                total: Some(n),
                comments: all,
            });
        }
        Ok(())
    }

    /// Every changelog entry of an issue, oldest first:
    /// `GET /rest/api/3/issue/{key}/changelog?startAt=&maxResults=`, all pages.
    pub async fn issue_changelog(&self, key: &str) -> Result<Vec<History>, JiraError> {
        validate_key(key)?;
        let what = format!("issue {key}");
        self.offset_pages(
            &what,
            |start, size| {
                self.url(
                    &["rest", "api", "3", "issue", key, "changelog"],
                    &[
                        ("startAt", start.to_string()),
                        ("maxResults", size.to_string()),
                    ],
                )
            },
            |p: ChangelogPage| (p.values, p.total, p.is_last),
        )
        .await
    }

    /// Every comment of an issue, oldest first:
    /// `GET /rest/api/3/issue/{key}/comment?startAt=&maxResults=&orderBy=created`.
    pub async fn issue_comments(&self, key: &str) -> Result<Vec<Comment>, JiraError> {
        validate_key(key)?;
        let what = format!("issue {key}");
        self.offset_pages(
            &what,
            |start, size| {
                self.url(
                    &["rest", "api", "3", "issue", key, "comment"],
                    &[
                        ("startAt", start.to_string()),
                        ("maxResults", size.to_string()),
                        ("orderBy", "created".to_string()),
                    ],
                )
            },
            |p: CommentPage| (p.comments, p.total, None),
        )
        .await
    }

    /// `POST /rest/api/3/search/jql`: every issue matching `jql`, following
    /// `nextPageToken` until `isLast` (or no token). An empty `fields` means
    /// [`snapshot_fields`](Self::snapshot_fields). Issues carry no
    /// changelog; use [`complete_issue`](Self::complete_issue) or
    /// [`issue`](Self::issue) per issue when it is needed.
    pub async fn search_jql(
        &self,
        jql: &str,
        fields: &[&str],
    ) -> Result<Vec<JiraIssue>, JiraError> {
        Ok(self.search_jql_up_to(jql, fields, None).await?.items)
    }

    /// [`search_jql`](Self::search_jql), stopping once
    /// [`JiraConfig::max_issues`] issues were read and Jira has more
    /// (`truncated`): a query matching 100,000 issues costs the pages up to
    /// the cap, not all of them.
    pub async fn search_jql_capped(
        &self,
        jql: &str,
        fields: &[&str],
    ) -> Result<Capped<JiraIssue>, JiraError> {
        self.search_jql_up_to(jql, fields, Some(self.inner.config.max_issues))
            .await
    }

    async fn search_jql_up_to(
        &self,
        jql: &str,
        fields: &[&str],
        cap: Option<usize>,
    ) -> Result<Capped<JiraIssue>, JiraError> {
        if jql.trim().is_empty() {
            return Err(JiraError::Invalid("the JQL query is empty".into()));
        }
        let fields: Vec<String> = if fields.is_empty() {
            self.snapshot_fields()
        } else {
            fields.iter().map(|s| s.to_string()).collect()
        };
        let url = self.url(&["rest", "api", "3", "search", "jql"], &[]);
        let size = self.inner.config.page_size;
        let mut issues = Vec::new();
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        for _ in 0..self.inner.config.max_pages {
            let mut body = json!({
                "jql": jql,
                "fields": fields,
                "maxResults": size,
            });
            if let Some(t) = &token {
                body["nextPageToken"] = Value::String(t.clone());
            }
            let page: SearchPage = self
                .send(Method::POST, url.clone(), Some(&body), "search results")
                .await?;
            check_page_len(&url, page.issues.len(), size)?;
            issues.extend(page.issues);
            let more = match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if page.is_last != Some(true) => Some(next),
                _ => None,
            };
            let Some(next) = more else {
                return Ok(Capped {
                    items: issues,
                    truncated: false,
                });
            };
            if cap.is_some_and(|cap| issues.len() >= cap) {
                return Ok(Capped {
                    items: issues,
                    truncated: true,
                });
            }
            if !seen_tokens.insert(next.clone()) {
                return Err(JiraError::Decode {
                    endpoint: url.path().to_string(),
                    message: "Jira repeated a nextPageToken; stopping to avoid a loop".into(),
                });
            }
            token = Some(next);
        }
        Err(self.too_many_pages(&url))
    }

    /// `GET /rest/agile/1.0/sprint/{id}/issue`: every issue in a sprint
    /// (with [`snapshot_fields`](Self::snapshot_fields)), following
    /// `startAt`/`maxResults`/`total`.
    pub async fn sprint_issues(&self, sprint_id: u64) -> Result<Vec<JiraIssue>, JiraError> {
        Ok(self.sprint_issues_up_to(sprint_id, None).await?.items)
    }

    /// [`sprint_issues`](Self::sprint_issues), stopping once
    /// [`JiraConfig::max_issues`] issues were read and Jira has more
    /// (`truncated`).
    pub async fn sprint_issues_capped(
        &self,
        sprint_id: u64,
    ) -> Result<Capped<JiraIssue>, JiraError> {
        self.sprint_issues_up_to(sprint_id, Some(self.inner.config.max_issues))
            .await
    }

    async fn sprint_issues_up_to(
        &self,
        sprint_id: u64,
        cap: Option<usize>,
    ) -> Result<Capped<JiraIssue>, JiraError> {
        let id = sprint_id.to_string();
        let fields = self.snapshot_fields().join(",");
        self.offset_pages_up_to(
            &format!("sprint {sprint_id}"),
            |start, size| {
                self.url(
                    &["rest", "agile", "1.0", "sprint", &id, "issue"],
                    &[
                        ("startAt", start.to_string()),
                        ("maxResults", size.to_string()),
                        ("fields", fields.clone()),
                    ],
                )
            },
            |p: AgileIssuePage| (p.issues, p.total, None),
            cap,
        )
        .await
    }

    /// `GET /rest/agile/1.0/board/{id}/sprint?state=active`: the board's
    /// active sprint, `None` when none is running. Boards with parallel
    /// sprints enabled can have several; the first (as Jira orders them) is
    /// returned.
    pub async fn active_sprint(&self, board_id: u64) -> Result<Option<Sprint>, JiraError> {
        let id = board_id.to_string();
        let url = self.url(
            &["rest", "agile", "1.0", "board", &id, "sprint"],
            &[("state", "active".to_string())],
        );
        let page: SprintPage = self.get(url, &format!("board {board_id}")).await?;
        if page.values.len() > 1 {
            tracing::debug!(
                board_id,
                active = page.values.len(),
                "several active sprints; using the first"
            );
        }
        Ok(page.values.into_iter().next())
    }

    /// `GET /rest/agile/1.0/sprint/{id}`.
    pub async fn sprint(&self, sprint_id: u64) -> Result<Sprint, JiraError> {
        let id = sprint_id.to_string();
        let url = self.url(&["rest", "agile", "1.0", "sprint", &id], &[]);
        self.get(url, &format!("sprint {sprint_id}")).await
    }

    // ---- plumbing -------------------------------------------------------

    /// Base URL + percent-encoded path segments + query.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }
}

/// Keeps `first` in order, then appends the items of `second` whose id is new.
fn merge_by_id<T>(first: Vec<T>, second: Vec<T>, id: impl Fn(&T) -> String) -> Vec<T> {
    let mut seen: HashSet<String> = first.iter().map(&id).collect();
    let mut out = first;
    for item in second {
        let key = id(&item);
        if key.is_empty() || seen.insert(key) {
            out.push(item);
        }
    }
    out
}

/// Issue keys (`ABC-123`) and ids (`10001`) only: anything else could walk
/// out of the intended path.
fn validate_key(key: &str) -> Result<(), JiraError> {
    let ok = !key.is_empty()
        && key.len() <= 255
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(JiraError::Invalid(format!(
            "{:?} is not a Jira issue key",
            crate::error::truncate(key, 40)
        )))
    }
}

fn parse_base_url(raw: &str, allow_http: bool) -> Result<Url, JiraError> {
    let invalid = |why: &str| JiraError::Invalid(format!("Jira base URL {raw:?}: {why}"));
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err(invalid("must use https")),
        _ => return Err(invalid("must be an https:// URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<JiraClient, JiraError> {
        JiraClient::new(
            base,
            "mia@example.com",
            SecretString::from("tok"),
            JiraConfig::default(),
        )
    }

    #[test]
    fn base_url_rules() {
        assert!(client("https://acme.atlassian.net/").is_ok());
        assert!(client("http://acme.atlassian.net").is_err());
        assert!(client("ftp://acme.atlassian.net").is_err());
        assert!(client("https://u:p@acme.atlassian.net").is_err());
        assert!(client("https://acme.atlassian.net?x=1").is_err());
        assert!(client("not a url").is_err());
    }

    #[test]
    fn urls_are_built_from_encoded_segments() {
        let c = client("https://acme.atlassian.net/").unwrap();
        let u = c.url(
            &["rest", "api", "3", "issue", "ED-1"],
            &[("fields", "a,b".into())],
        );
        assert_eq!(
            u.as_str(),
            "https://acme.atlassian.net/rest/api/3/issue/ED-1?fields=a%2Cb"
        );
        let c = client("https://proxy.example.com/jira/").unwrap();
        assert_eq!(
            c.url(&["rest", "api", "3", "myself"], &[]).as_str(),
            "https://proxy.example.com/jira/rest/api/3/myself"
        );
    }

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("ABC-123").is_ok());
        assert!(validate_key("10001").is_ok());
        assert!(validate_key("../admin").is_err());
        assert!(validate_key("A B").is_err());
        assert!(validate_key("").is_err());
    }

    #[test]
    fn merge_keeps_first_and_adds_new() {
        let m = merge_by_id(vec![1, 2], vec![2, 3, 1, 4], |n| n.to_string());
        assert_eq!(m, vec![1, 2, 3, 4]);
    }

    #[test]
    fn config_is_validated() {
        let cfg = JiraConfig {
            max_concurrency: 0,
            ..JiraConfig::default()
        };
        assert!(
            JiraClient::new("https://a.atlassian.net", "e", SecretString::from("t"), cfg).is_err()
        );
        assert!(client("https://a.atlassian.net").is_ok());
        assert!(JiraClient::new(
            "https://a.atlassian.net",
            " ",
            SecretString::from("t"),
            JiraConfig::default()
        )
        .is_err());
    }
}
