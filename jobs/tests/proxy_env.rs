//! Guarded clients ignore proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`): a proxy would resolve the tenant's host itself, past the SSRF guard.
//!
//! A test binary of its own with one test: the variables are process-wide, so they are set
//! before anything else runs and no other test can observe them (or race with them).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use keel_jobs::net::{guarded_client, NetPolicy};
use secrecy::SecretString;

/// A server on loopback answering every request with `body` (as JSON), counting connections.
fn serve(body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://{addr}"), connections)
}

#[test]
fn guarded_clients_do_not_go_through_proxies_from_the_environment() {
    let (proxy, via_proxy) = serve(r#"{"from":"proxy"}"#);
    let (target, direct) = serve(r#"{"from":"target","accountId":"5b10a","displayName":"Mia"}"#);
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        std::env::set_var(var, &proxy);
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The control: an ordinary client honours the variables, so this test can fail.
        let plain: serde_json::Value = reqwest::Client::new()
            .get(format!("{target}/hook"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(plain["from"], "proxy", "an ordinary client uses HTTP_PROXY");
        assert_eq!(via_proxy.load(Ordering::SeqCst), 1);

        // Webhook deliveries: straight to the destination.
        let policy = NetPolicy {
            allow_private: true,
        };
        let answer: serde_json::Value = guarded_client(&policy)
            .post(format!("{target}/hook"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["from"], "target");

        // Jira clients are built on the same guarded builder.
        let jira = keel_jobs::kinds::analyze::access::build_client(
            &target,
            "mia@example.com",
            SecretString::from("token".to_string()),
            keel_jira::JiraConfig::default(),
            &policy,
        )
        .unwrap();
        let me = jira.myself().await.unwrap();
        assert_eq!(me.display_name.as_deref(), Some("Mia"));

        assert_eq!(
            via_proxy.load(Ordering::SeqCst),
            1,
            "only the control went through the proxy"
        );
        assert_eq!(direct.load(Ordering::SeqCst), 2);
    });
}
