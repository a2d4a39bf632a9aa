//! JiraClient against a wiremock Jira: endpoints, paging, error mapping,
//! authentication, secrecy and the concurrency cap. Payloads in
//! `tests/fixtures/` follow Atlassian's documented response examples.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_jira::{JiraClient, JiraConfig, JiraError, Sentiment};
use keel_risk::{Label, StatusCategory};
use secrecy::SecretString;
use serde_json::Value;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const EMAIL: &str = "mia@example.com";
const TOKEN: &str = "ATATT3xFfGF0-super-secret-token";

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn config() -> JiraConfig {
    JiraConfig {
        allow_insecure_http: true,
        timeout: Duration::from_secs(5),
        ..JiraConfig::default()
    }
}

fn client_with(server: &MockServer, config: JiraConfig) -> JiraClient {
    JiraClient::new(&server.uri(), EMAIL, SecretString::from(TOKEN), config).unwrap()
}

fn client(server: &MockServer) -> JiraClient {
    client_with(server, config())
}

fn ok(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(fixture(name))
}

fn neutral(_: &str) -> Sentiment {
    Sentiment {
        label: Label::Neutral,
        negative_prob: 0.1,
    }
}

// ---- endpoints ----------------------------------------------------------

#[tokio::test]
async fn issue_with_changelog_comments_and_links() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-1"))
        .and(query_param("expand", "changelog"))
        .respond_with(ok("issue_full.json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let issue = c.issue("ED-1").await.unwrap();

    // The fields parameter asks for what the snapshot needs, incl. story points.
    let reqs = server.received_requests().await.unwrap();
    let fields = reqs[0]
        .url
        .query_pairs()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    for f in [
        "summary",
        "status",
        "issuelinks",
        "comment",
        "duedate",
        "customfield_10016",
    ] {
        assert!(
            fields.split(',').any(|x| x == f),
            "{f} missing from {fields}"
        );
    }

    assert_eq!(issue.key, "ED-1");
    assert_eq!(
        issue.fields.summary.as_deref(),
        Some("Saved-card checkout fails")
    );
    let status = issue.fields.status.as_ref().unwrap();
    assert_eq!(status.name, "In Progress");
    assert_eq!(
        status.status_category.as_ref().unwrap().key,
        "indeterminate"
    );
    assert_eq!(issue.fields.priority.as_ref().unwrap().name, "High");
    assert_eq!(
        issue
            .fields
            .assignee
            .as_ref()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Mia Krystof")
    );
    assert_eq!(issue.histories().len(), 5);
    assert_eq!(issue.comments().len(), 3);
    assert_eq!(
        issue.comments()[0].text(),
        "Customers can't pay with saved cards. This is urgent."
    );
    assert_eq!(issue.fields.issuelinks.len(), 4);

    let snap = c
        .to_snapshot(&issue, |text| {
            if text.contains("broken") {
                Sentiment {
                    label: Label::Negative,
                    negative_prob: 0.8,
                }
            } else {
                neutral(text)
            }
        })
        .unwrap();
    assert_eq!(snap.project_key, "ED");
    assert_eq!(snap.status_category, StatusCategory::Indeterminate);
    assert_eq!(snap.story_points, Some(5.0));
    assert_eq!(snap.due_date.unwrap().to_string(), "2024-02-01");
    assert_eq!(snap.created.to_rfc3339(), "2024-01-15T10:30:00+00:00");
    assert_eq!(
        snap.status_changed_at.unwrap().to_rfc3339(),
        "2024-01-24T08:00:00+00:00"
    );
    assert_eq!(snap.assignee.as_deref(), Some("5b10a2844c20165700ede21g"));
    assert_eq!(snap.changelog.len(), 6);
    let blocked: Vec<_> = snap.blocked_by.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(blocked, vec!["PAY-7", "ED-3"]);
    assert_eq!(snap.unresolved_blockers(), vec!["PAY-7"]);
    let blocks: Vec<_> = snap.blocks.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(blocks, vec!["ED-9"]);
    assert_eq!(snap.comments.len(), 3);
    assert_eq!(
        snap.comments
            .iter()
            .filter(|c| c.sentiment == Label::Negative)
            .count(),
        1
    );
    // Mia (assignee), Emma (reporter), Kim (commenter + changelog author).
    assert_eq!(snap.people.len(), 3);
}

#[tokio::test]
async fn partial_changelog_and_comments_are_paged_in() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-2"))
        .respond_with(ok("issue_partial.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-2/changelog"))
        .and(query_param("startAt", "0"))
        .and(query_param("maxResults", "3"))
        .respond_with(ok("changelog_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-2/changelog"))
        .and(query_param("startAt", "3"))
        .respond_with(ok("changelog_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    // Jira answers 2 per page although 3 were asked: the client follows
    // what came back.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-2/comment"))
        .and(query_param("startAt", "0"))
        .respond_with(ok("comments_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-2/comment"))
        .and(query_param("startAt", "2"))
        .respond_with(ok("comments_page2.json"))
        .expect(1)
        .mount(&server)
        .await;

    let c = client_with(
        &server,
        JiraConfig {
            page_size: 3,
            ..config()
        },
    );
    let issue = c.issue("ED-2").await.unwrap();
    let ids: Vec<_> = issue.histories().iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, vec!["10001", "10002", "10003", "10004", "10005"]);
    let cl = issue.changelog.as_ref().unwrap();
    assert_eq!((cl.total, cl.histories.len()), (Some(5), 5));
    let ids: Vec<_> = issue.comments().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["10000", "10001", "10002"]);
    assert!(!issue.fields.comment.as_ref().unwrap().is_partial());

    let snap = c.to_snapshot(&issue, neutral).unwrap();
    assert_eq!(
        snap.status_changed_at.unwrap().to_rfc3339(),
        "2024-01-24T08:00:00+00:00"
    );
    assert_eq!(snap.comments.len(), 3);
}

#[tokio::test]
async fn jql_search_follows_next_page_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_partial_json(
            serde_json::json!({"nextPageToken": "CAEaAggD"}),
        ))
        .respond_with(ok("search_page2.json"))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_partial_json(
            serde_json::json!({"jql": "project = ED ORDER BY key", "fields": ["summary", "status"]}),
        ))
        .respond_with(ok("search_page1.json"))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let issues = client(&server)
        .search_jql("project = ED ORDER BY key", &["summary", "status"])
        .await
        .unwrap();
    let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, vec!["ED-1", "ED-2", "ED-5"]);
    let reqs = server.received_requests().await.unwrap();
    let first: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert!(first.get("nextPageToken").is_none());
    assert_eq!(first["maxResults"], 100);
}

#[tokio::test]
async fn jql_search_bad_query_is_fatal_with_jira_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("error_400_jql.json")))
        .mount(&server)
        .await;
    let e = client(&server)
        .search_jql("project = garbage garbage", &[])
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(
        e.to_string(),
        "Jira rejected the request (400): Error in the JQL Query: Expecting operator but got 'garbage'. (line 1, character 9)"
    );
}

#[tokio::test]
async fn sprint_issues_follow_start_at_and_total() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/sprint/37/issue"))
        .and(query_param("startAt", "0"))
        .respond_with(ok("sprint_issues_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/sprint/37/issue"))
        .and(query_param("startAt", "2"))
        .respond_with(ok("sprint_issues_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let issues = c.sprint_issues(37).await.unwrap();
    let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, vec!["HSP-1", "HSP-2", "HSP-3"]);
    // Agile API comment bodies are plain strings, not ADF.
    assert_eq!(issues[0].comments()[0].text(), "Waiting on *design* again");
    assert_eq!(issues[0].fields.number("customfield_10016"), Some(3.0));
}

#[tokio::test]
async fn active_sprint_of_a_board_and_sprint_by_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/board/5/sprint"))
        .and(query_param("state", "active"))
        .respond_with(ok("board_sprints_active.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/board/6/sprint"))
        .and(query_param("state", "active"))
        .respond_with(ok("board_sprints_none.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/agile/1.0/sprint/23"))
        .respond_with(ok("sprint.json"))
        .mount(&server)
        .await;
    let c = client(&server);
    let s = c.active_sprint(5).await.unwrap().unwrap();
    assert_eq!(
        (s.id, s.state.as_str(), s.name.as_str()),
        (37, "active", "sprint 1")
    );
    assert_eq!(
        s.start_date.unwrap().to_rfc3339(),
        "2024-01-15T05:22:00+00:00"
    );
    assert_eq!(s.origin_board_id, Some(5));
    assert!(c.active_sprint(6).await.unwrap().is_none());
    let closed = c.sprint(23).await.unwrap();
    assert_eq!(closed.state, "closed");
    assert_eq!(
        closed.complete_date.unwrap().to_rfc3339(),
        "2015-04-20T01:04:00+00:00"
    );
    assert_eq!(closed.goal.as_deref(), Some("sprint 0 goal"));
}

#[tokio::test]
async fn myself_validates_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ok("myself.json"))
        .mount(&server)
        .await;
    let me = client(&server).myself().await.unwrap();
    assert_eq!(me.account_id.as_deref(), Some("5b10a2844c20165700ede21g"));
    assert_eq!(me.display_name.as_deref(), Some("Mia Krystof"));
}

// ---- auth and secrecy ---------------------------------------------------

#[tokio::test]
async fn basic_auth_header_is_base64_of_email_and_token() {
    let server = MockServer::start().await;
    // base64("mia@example.com:ATATT3xFfGF0-super-secret-token")
    let expected = "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMC1zdXBlci1zZWNyZXQtdG9rZW4=";
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(header("authorization", expected))
        .and(header("accept", "application/json"))
        .respond_with(ok("myself.json"))
        .expect(1)
        .mount(&server)
        .await;
    client(&server).myself().await.unwrap();
}

#[tokio::test]
async fn token_never_appears_in_debug_output() {
    let server = MockServer::start().await;
    let c = client(&server);
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(TOKEN), "{dbg}");
    assert!(!dbg.contains("super-secret"), "{dbg}");
    assert!(!dbg.contains("bWlhQGV4YW1wbGUuY29t"), "{dbg}");
    assert!(dbg.contains("[redacted]"), "{dbg}");
    assert!(dbg.contains(EMAIL), "{dbg}");
    // Alternate form too.
    assert!(!format!("{c:#?}").contains(TOKEN));
}

// ---- error mapping ------------------------------------------------------

async fn error_for(response: ResponseTemplate, config: JiraConfig) -> (JiraError, usize) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ED-1"))
        .respond_with(response)
        .mount(&server)
        .await;
    let e = client_with(&server, config)
        .issue("ED-1")
        .await
        .unwrap_err();
    let n = server.received_requests().await.unwrap().len();
    (e, n)
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_retryable_with_delay() {
    let (e, n) = error_for(
        ResponseTemplate::new(429).insert_header("Retry-After", "30"),
        config(),
    )
    .await;
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(n, 1, "a long wait is left to the job layer");
    assert_eq!(e.to_string(), "Jira rate limit hit (429), retry after 30s");
}

#[tokio::test]
async fn rate_limit_with_reset_timestamp() {
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(60))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let (e, _) = error_for(
        ResponseTemplate::new(429).insert_header("X-RateLimit-Reset", reset.as_str()),
        config(),
    )
    .await;
    assert!(e.is_retryable());
    let wait = e.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
}

#[tokio::test]
async fn rate_limit_without_headers_leaves_backoff_to_caller() {
    let (e, n) = error_for(ResponseTemplate::new(429), config()).await;
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), None);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn short_rate_limit_is_retried_once_in_client() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ok("myself.json"))
        .with_priority(2)
        .mount(&server)
        .await;
    client(&server).myself().await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // ... but only once, and not at all when disabled.
    let (e, n) = error_for(
        ResponseTemplate::new(429).insert_header("Retry-After", "0"),
        config(),
    )
    .await;
    assert!(e.is_retryable());
    assert_eq!(n, 2);
    let (_, n) = error_for(
        ResponseTemplate::new(429).insert_header("Retry-After", "0"),
        JiraConfig {
            inline_retry_max_wait: Duration::ZERO,
            ..config()
        },
    )
    .await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn server_error_is_retryable() {
    let (e, _) = error_for(
        ResponseTemplate::new(500).set_body_json(serde_json::json!({
            "errorMessages": ["Internal server error"], "errors": {}
        })),
        config(),
    )
    .await;
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), None);
    assert_eq!(e.status(), Some(500));
    assert_eq!(
        e.to_string(),
        "Jira server error (500): Internal server error"
    );
}

#[tokio::test]
async fn unauthorized_is_fatal_with_actionable_message() {
    let (e, _) = error_for(
        ResponseTemplate::new(401)
            .set_body_string("Client must be authenticated to access this resource."),
        config(),
    )
    .await;
    assert!(!e.is_retryable());
    assert_eq!(e.retry_after(), None);
    assert_eq!(
        e.to_string(),
        "Jira rejected the credentials (401): update the Jira connection (email and API token)"
    );
    let (e, _) = error_for(ResponseTemplate::new(403), config()).await;
    assert!(!e.is_retryable());
    assert!(e
        .to_string()
        .starts_with("Jira rejected the credentials (403)"));
}

#[tokio::test]
async fn not_found_is_fatal() {
    let (e, _) = error_for(
        ResponseTemplate::new(404).set_body_json(fixture("error_404.json")),
        config(),
    )
    .await;
    assert!(!e.is_retryable());
    assert!(matches!(e, JiraError::NotFound { .. }));
    assert_eq!(
        e.to_string(),
        "Jira issue ED-1 not found or not visible to this account (404)"
    );
}

#[tokio::test]
async fn timeout_is_retryable() {
    let (e, _) = error_for(
        ResponseTemplate::new(200)
            .set_body_json(fixture("issue_full.json"))
            .set_delay(Duration::from_millis(1500)),
        JiraConfig {
            timeout: Duration::from_millis(200),
            ..config()
        },
    )
    .await;
    assert!(e.is_retryable(), "{e}");
    assert!(
        matches!(
            e,
            JiraError::Transport {
                kind: "timeout",
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = JiraClient::new(
        &format!("http://127.0.0.1:{port}"),
        EMAIL,
        SecretString::from(TOKEN),
        config(),
    )
    .unwrap();
    let e = c.myself().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(!e.to_string().contains(TOKEN));
}

#[tokio::test]
async fn schema_surprise_is_fatal_and_names_the_path() {
    let mut body = fixture("issue_full.json");
    body["fields"]["created"] = Value::String("last tuesday".into());
    let (e, _) = error_for(ResponseTemplate::new(200).set_body_json(body), config()).await;
    assert!(!e.is_retryable());
    let msg = e.to_string();
    assert!(msg.contains("/rest/api/3/issue/ED-1"), "{msg}");
    assert!(msg.contains("fields"), "{msg}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (e, n) = error_for(
        ResponseTemplate::new(301).insert_header("Location", "https://elsewhere.example.com/x"),
        config(),
    )
    .await;
    assert_eq!(n, 1);
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("elsewhere.example.com"), "{e}");
}

#[tokio::test]
async fn invalid_issue_key_never_reaches_the_network() {
    let server = MockServer::start().await;
    let e = client(&server).issue("../../admin").await.unwrap_err();
    assert!(matches!(e, JiraError::Invalid(_)));
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---- concurrency cap ----------------------------------------------------

/// Records when each request arrived; answers after `delay`.
struct Recorder {
    hits: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
    delay: Duration,
}

impl Respond for Recorder {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.arrivals.lock().unwrap().push(Instant::now());
        ok("myself.json").set_delay(self.delay)
    }
}

#[tokio::test]
async fn concurrency_cap_is_shared_by_clones() {
    let server = MockServer::start().await;
    let delay = Duration::from_millis(300);
    let recorder = Arc::new(Recorder {
        hits: AtomicUsize::new(0),
        arrivals: Mutex::new(Vec::new()),
        delay,
    });
    struct Shared(Arc<Recorder>);
    impl Respond for Shared {
        fn respond(&self, r: &Request) -> ResponseTemplate {
            self.0.respond(r)
        }
    }
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(Shared(recorder.clone()))
        .mount(&server)
        .await;

    let c = client_with(
        &server,
        JiraConfig {
            max_concurrency: 2,
            ..config()
        },
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let c = c.clone();
        tasks.spawn(async move { c.myself().await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(recorder.hits.load(Ordering::SeqCst), 6);

    // Request i is in flight on the server for at least [arrival, arrival +
    // delay). Count the most that overlap: it must be exactly the cap.
    let mut at = recorder.arrivals.lock().unwrap().clone();
    at.sort();
    let max_in_flight = at
        .iter()
        .map(|&t| at.iter().filter(|&&s| s <= t && t < s + delay).count())
        .max()
        .unwrap();
    assert_eq!(max_in_flight, 2, "arrivals: {at:?}");
}
