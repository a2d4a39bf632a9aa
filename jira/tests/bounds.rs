//! What a Jira answer may cost: bytes per response (read in chunks, reading stops at the limit),
//! responses and bytes per job, items per page, and issue caps enforced while paging. The huge
//! and endless answers come from a raw TCP server that counts the bytes it managed to send, so
//! the tests see how much the client actually took in, not just what it said.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_jira::{JiraClient, JiraConfig, JiraError};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const MIB: usize = 1024 * 1024;

fn config() -> JiraConfig {
    JiraConfig {
        allow_insecure_http: true,
        timeout: Duration::from_secs(20),
        ..JiraConfig::default()
    }
}

fn client(base: &str, config: JiraConfig) -> JiraClient {
    JiraClient::new(base, "mia@example.com", SecretString::from("tok"), config).unwrap()
}

/// A server answering each connection with a 200 whose body is `total` bytes of a JSON
/// search page (`None`: endless), chunked or with a `Content-Length`; counts the bytes each
/// write got into the socket. Returns its base URL, the count, and a handle that ends when the
/// client has hung up.
async fn huge_answer(
    total: Option<usize>,
    content_length: bool,
) -> (String, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let count = sent.clone();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let head = match (total, content_length) {
            (Some(n), true) => format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {n}\r\n\r\n"
            ),
            _ => "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_string(),
        };
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // `{"issues":[` then padding spaces forever (valid JSON so far: only the size is wrong).
        let piece = 64 * 1024;
        let mut body = b"{\"issues\":[".to_vec();
        body.resize(piece, b' ');
        let mut left = total;
        loop {
            let n = left.map_or(piece, |l| l.min(piece));
            if n == 0 {
                break;
            }
            let data = if content_length {
                body[..n].to_vec()
            } else {
                let mut d = format!("{n:x}\r\n").into_bytes();
                d.extend_from_slice(&body[..n]);
                d.extend_from_slice(b"\r\n");
                d
            };
            if sock.write_all(&data).await.is_err() {
                return;
            }
            count.fetch_add(n as u64, Ordering::SeqCst);
            body[..11].fill(b' ');
            left = left.map(|l| l - n);
        }
    });
    (base, sent, server)
}

/// The client's error for a search against `base`, and the bytes the server managed to send
/// once the client hung up.
async fn search_error(
    base: &str,
    config: JiraConfig,
    sent: &AtomicU64,
    server: tokio::task::JoinHandle<()>,
) -> (JiraError, u64) {
    let err = client(base, config)
        .search_jql("project = ED", &[])
        .await
        .unwrap_err();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server saw the client hang up")
        .unwrap();
    (err, sent.load(Ordering::SeqCst))
}

#[tokio::test]
async fn an_endless_answer_is_read_up_to_the_response_limit_and_no_further() {
    let (base, sent, server) = huge_answer(None, false).await;
    let cfg = JiraConfig {
        max_response_bytes: MIB,
        ..config()
    };
    let (err, sent) = search_error(&base, cfg, &sent, server).await;
    assert!(matches!(err, JiraError::OverLimit(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "Jira's answer from /rest/api/3/search/jql is larger than 1048576 bytes, the most Keel reads in one response; reading stopped"
    );
    // What the server got out before the client hung up: the limit plus what the sockets'
    // buffers hold, nowhere near the 30 MiB a page of the fake in the worker test is.
    assert!(sent < 16 * MIB as u64, "{sent} bytes sent");
}

#[tokio::test]
async fn a_huge_announced_answer_is_refused_before_reading() {
    let (base, sent, server) = huge_answer(Some(30 * MIB), true).await;
    let (err, sent) = search_error(&base, config(), &sent, server).await;
    assert!(
        err.to_string().contains("larger than 8388608 bytes"),
        "the default limit is 8 MiB: {err}"
    );
    assert!(sent < 16 * MIB as u64, "{sent} bytes sent");
}

/// Answers every search with a full page of fresh issues and a new `nextPageToken`: it never
/// says "last page". Counts the pages served.
struct EndlessSearch {
    page_size: usize,
    served: Arc<AtomicUsize>,
    extra: usize,
}

impl Respond for EndlessSearch {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.served.fetch_add(1, Ordering::SeqCst);
        let issues: Vec<Value> = (0..self.page_size + self.extra)
            .map(|i| {
                let id = n * 1000 + i;
                json!({"id": id.to_string(), "key": format!("ED-{id}"), "fields": {"summary": "x"}})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "isLast": false, "nextPageToken": format!("t{n}"), "issues": issues,
        }))
    }
}

async fn endless_search(page_size: usize, extra: usize) -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let served = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(EndlessSearch {
            page_size,
            served: served.clone(),
            extra,
        })
        .mount(&server)
        .await;
    (server, served)
}

#[tokio::test]
async fn a_capped_search_stops_paging_at_the_cap() {
    let (server, served) = endless_search(10, 0).await;
    let c = client(
        &server.uri(),
        JiraConfig {
            page_size: 10,
            max_issues: 25,
            ..config()
        },
    );
    let capped = c.search_jql_capped("project = ED", &[]).await.unwrap();
    assert!(capped.truncated);
    assert_eq!(
        capped.items.len(),
        30,
        "the page that crossed the cap, whole"
    );
    assert_eq!(served.load(Ordering::SeqCst), 3, "no page past the cap");
}

#[tokio::test]
async fn a_job_stops_at_its_page_budget_across_collections() {
    let (server, served) = endless_search(10, 0).await;
    let shared = client(
        &server.uri(),
        JiraConfig {
            page_size: 10,
            max_job_pages: 5,
            ..config()
        },
    );
    let job = shared.for_job();
    let err = job.search_jql("project = ED", &[]).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "this job has made 5 requests to Jira, the most one job may make; stopping (narrow the query, or raise the limit)"
    );
    assert_eq!(served.load(Ordering::SeqCst), 5);
    // The budget is the job's: another job of the same tenant starts with its own, and the
    // exhausted one stays exhausted.
    assert!(job.search_jql("project = ED", &[]).await.is_err());
    assert_eq!(served.load(Ordering::SeqCst), 5);
    let other = shared.for_job().search_jql("project = ED", &[]).await;
    assert!(other.is_err());
    assert_eq!(served.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_job_stops_at_its_byte_budget() {
    let (server, served) = endless_search(10, 0).await;
    let job = client(
        &server.uri(),
        JiraConfig {
            page_size: 10,
            max_job_bytes: 4096,
            ..config()
        },
    )
    .for_job();
    let err = job.search_jql("project = ED", &[]).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("this job has read 4096 bytes from Jira, the most one job may read"),
        "{err}"
    );
    assert!(served.load(Ordering::SeqCst) < 10);
}

#[tokio::test]
async fn a_page_with_more_items_than_asked_for_is_refused() {
    let (server, _) = endless_search(10, 1).await;
    let err = client(
        &server.uri(),
        JiraConfig {
            page_size: 10,
            ..config()
        },
    )
    .search_jql("project = ED", &[])
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Jira answered /rest/api/3/search/jql with 11 items for a page of at most 10; refusing the page"
    );
}
