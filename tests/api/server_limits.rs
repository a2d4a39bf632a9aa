//! The HTTP server's bounds (issue 23, item 4), tried with raw TCP as a slow or hostile client
//! would: a connection that sends half a request head, or nothing, or idles after a response,
//! is closed by the server; a body trickled past its deadline is answered 408; past the
//! connection limit a new connection is not served until another closes.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

async fn limited(tweak: impl FnOnce(&mut keel::settings::Settings)) -> TestEnv {
    TestEnv::with(|s| {
        s.http_header_timeout_ms = 300;
        s.http_idle_timeout_ms = 400;
        s.http_body_timeout_ms = 500;
        tweak(s);
    })
    .await
}

async fn connect(env: &TestEnv) -> TcpStream {
    TcpStream::connect(env.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or 10 s pass, which fails the test); returns
/// what it sent.
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_connection_that_stalls_in_its_request_head_is_closed_at_the_header_timeout() {
    let env = limited(|_| {}).await;
    let mut conn = connect(&env).await;
    let t0 = Instant::now();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: keel\r\nX-Half: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut conn).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "closed by the timer"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn a_connection_that_never_sends_is_closed_at_the_header_timeout() {
    let env = limited(|_| {}).await;
    let mut conn = connect(&env).await;
    let t0 = Instant::now();
    assert_eq!(read_until_closed(&mut conn).await, "");
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_idle_timeout() {
    let env = limited(|_| {}).await;
    let mut conn = connect(&env).await;
    // Two requests on the connection, the second after a pause shorter than the idle timeout
    // but longer than the header timeout: waiting between requests is idling, not a slow head.
    for pause in [0, 350] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        conn.write_all(b"GET /health HTTP/1.1\r\nHost: keel\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let t0 = Instant::now();
    assert_eq!(read_until_closed(&mut conn).await, "");
    assert!(t0.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_body_deadline_with_408() {
    let env = limited(|_| {}).await;
    let (_, key, _) = env.tenant("slow").await;
    let mut conn = connect(&env).await;
    let head = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: keel\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\":"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // One byte every 100 ms: progress, but never the whole body within 500 ms. (A per-chunk
    // timeout would never fire.)
    let trickle = async {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if conn.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(secs(2), trickle).await;
    let answer = read_until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(env.count_jobs().await, 0);
}

#[tokio::test]
async fn past_the_connection_limit_a_new_connection_waits_for_one_to_close() {
    let env = TestEnv::with(|s| s.http_max_connections = 2).await;
    let mut first = connect(&env).await;
    let _second = connect(&env).await;
    let mut third = connect(&env).await; // in the listen backlog, not accepted
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the connection limit");
    first.shutdown().await.unwrap();
    drop(first);
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
