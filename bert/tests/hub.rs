//! `keel model pull` against a local server in the Hub's URL layout
//! (`/{repo}/resolve/{rev}/{file}`, LFS files redirected to `/cdn/{sha256}`
//! with `X-Linked-Etag`): fallbacks on 404, resumed downloads, checksum
//! mismatch, and `KEEL_SENTIMENT_MODEL` resolution.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use keel_bert::hub::{pull, resolve, PullOptions};
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Hub {
    /// URL path → (bytes, etag); LFS files are also reachable at `/cdn/{sha}`.
    files: HashMap<String, (Vec<u8>, String, bool)>,
    /// (method, path, Range header) of every request.
    log: Mutex<Vec<(String, String, Option<String>)>>,
    /// Cut the next CDN body off halfway.
    break_next: AtomicBool,
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-bert")
            .join(file),
    )
    .unwrap()
}

impl Hub {
    fn add(&mut self, repo: &str, file: &str, bytes: Vec<u8>, lfs: bool, etag: Option<String>) {
        let etag = etag.unwrap_or_else(|| {
            if lfs {
                sha256(&bytes)
            } else {
                hex::encode(&Sha256::digest(&bytes)[..20])
            }
        });
        if lfs {
            self.files.insert(
                format!("/cdn/{}", sha256(&bytes)),
                (bytes.clone(), etag.clone(), false),
            );
        }
        self.files
            .insert(format!("/{repo}/resolve/main/{file}"), (bytes, etag, lfs));
    }

    fn requests(&self, method: &str, path_end: &str) -> Vec<Option<String>> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(m, p, _)| m == method && p.ends_with(path_end))
            .map(|(_, _, r)| r.clone())
            .collect()
    }
}

async fn serve(hub: Arc<Hub>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_string();
    let range = headers
        .get("range")
        .map(|v| v.to_str().unwrap().to_string());
    hub.log
        .lock()
        .unwrap()
        .push((method.to_string(), path.clone(), range.clone()));
    let Some((bytes, etag, lfs)) = hub.files.get(&path) else {
        return Response::builder().status(404).body(Body::empty()).unwrap();
    };
    let b = Response::builder().header("etag", format!("\"{etag}\""));
    if *lfs {
        return b
            .status(StatusCode::FOUND)
            .header("x-linked-etag", format!("\"{etag}\""))
            .header("location", format!("/cdn/{}", sha256(bytes)))
            .body(Body::empty())
            .unwrap();
    }
    let start: usize = range.as_deref().map_or(0, |r| {
        r.trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap()
    });
    if start >= bytes.len() && start > 0 {
        return b.status(416).body(Body::empty()).unwrap();
    }
    let b = b.status(if range.is_some() { 206 } else { 200 });
    let rest = bytes[start..].to_vec();
    if method == Method::HEAD {
        return b.body(Body::empty()).unwrap();
    }
    if path.starts_with("/cdn/") && hub.break_next.swap(false, Ordering::SeqCst) {
        let half = rest[..rest.len() / 2].to_vec();
        // Half the body, then the connection breaks (the pause lets the half go out first).
        use futures::StreamExt;
        let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(half)]).chain(
            futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::other("connection reset"))
            }),
        );
        return b
            .header("content-length", rest.len())
            .body(Body::from_stream(stream))
            .unwrap();
    }
    b.body(Body::from(rest)).unwrap()
}

async fn start(hub: Hub) -> (Arc<Hub>, String) {
    let hub = Arc::new(hub);
    let h = hub.clone();
    let app = axum::Router::new()
        .fallback(move |m: Method, u: Uri, hd: HeaderMap| serve(h.clone(), m, u, hd));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hub, format!("http://{addr}"))
}

/// The tiny model as ProsusAI/finbert ships it (no tokenizer.json) plus safetensors.
fn tiny_repo(hub: &mut Hub, repo: &str) {
    hub.add(repo, "config.json", fixture("config.json"), false, None);
    hub.add(
        repo,
        "model.safetensors",
        fixture("model.safetensors"),
        true,
        None,
    );
    hub.add(repo, "vocab.txt", fixture("vocab.txt"), false, None);
    hub.add(
        repo,
        "tokenizer_config.json",
        fixture("tokenizer_config.json"),
        false,
        None,
    );
}

fn options(endpoint: String, cache: &Path) -> PullOptions {
    PullOptions {
        endpoint,
        revision: "main".into(),
        cache_dir: cache.to_path_buf(),
        token: None,
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn pulls_with_fallbacks_and_the_model_loads() {
    let mut hub = Hub::default();
    tiny_repo(&mut hub, "org/tiny");
    let (hub, endpoint) = start(hub).await;
    let cache = tempfile::tempdir().unwrap();
    let opts = options(endpoint, cache.path());
    let dir = pull("org/tiny", &opts).await.unwrap();
    assert_eq!(dir, cache.path().join("org/tiny/main"));
    assert_eq!(
        files(&dir),
        [
            "config.json",
            "model.safetensors",
            "tokenizer_config.json",
            "vocab.txt"
        ]
    );
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        fixture("model.safetensors")
    );
    assert_eq!(
        hub.requests("HEAD", "/tokenizer.json").len(),
        1,
        "tried tokenizer.json first"
    );
    assert!(
        hub.requests("HEAD", "/pytorch_model.bin").is_empty(),
        "safetensors found, no fallback"
    );
    keel_bert::BertEngine::load(&dir).unwrap();

    // KEEL_SENTIMENT_MODEL: a repo name resolves into the cache, a directory is itself.
    assert_eq!(resolve("org/tiny", &opts).unwrap(), dir);
    assert_eq!(resolve(dir.to_str().unwrap(), &opts).unwrap(), dir);
    let err = resolve("org/other", &opts).unwrap_err().to_string();
    assert!(err.contains("keel model pull org/other"), "{err}");
    assert!(resolve("../etc", &opts).is_err());

    // Pulling again downloads nothing.
    let gets = hub.requests("GET", "").len();
    pull("org/tiny", &opts).await.unwrap();
    assert_eq!(hub.requests("GET", "").len(), gets);
}

#[tokio::test]
async fn falls_back_to_pytorch_bin_and_tokenizer_json() {
    let mut hub = Hub::default();
    hub.add(
        "org/bin",
        "config.json",
        fixture("config.json"),
        false,
        None,
    );
    hub.add(
        "org/bin",
        "pytorch_model.bin",
        fixture("pytorch_model.bin"),
        true,
        None,
    );
    hub.add(
        "org/bin",
        "tokenizer.json",
        fixture("tokenizer.json"),
        false,
        None,
    );
    let (_hub, endpoint) = start(hub).await;
    let cache = tempfile::tempdir().unwrap();
    let dir = pull("org/bin", &options(endpoint, cache.path()))
        .await
        .unwrap();
    assert_eq!(
        files(&dir),
        ["config.json", "pytorch_model.bin", "tokenizer.json"]
    );
    keel_bert::BertEngine::load(&dir).unwrap();
}

#[tokio::test]
async fn interrupted_download_resumes_with_a_range_request() {
    let mut hub = Hub::default();
    tiny_repo(&mut hub, "org/tiny");
    hub.break_next.store(true, Ordering::SeqCst);
    let (hub, endpoint) = start(hub).await;
    let cache = tempfile::tempdir().unwrap();
    let opts = options(endpoint, cache.path());
    assert!(
        pull("org/tiny", &opts).await.is_err(),
        "the cut-off body is an error"
    );
    let part: PathBuf = cache.path().join("org/tiny/main/model.safetensors.part");
    let had = std::fs::metadata(&part).map_or(0, |m| m.len());
    eprintln!("part had {had} bytes");
    assert!(!cache
        .path()
        .join("org/tiny/main/model.safetensors")
        .exists());

    let dir = pull("org/tiny", &opts).await.unwrap();
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        fixture("model.safetensors")
    );
    assert!(!part.exists());
    let cdn = hub.requests("GET", &sha256(&fixture("model.safetensors")));
    assert_eq!(cdn.len(), 2);
    assert_eq!(cdn[1], (had > 0).then(|| format!("bytes={had}-")));
}

#[tokio::test]
async fn existing_part_file_is_resumed_not_refetched() {
    let mut hub = Hub::default();
    tiny_repo(&mut hub, "org/tiny");
    let (hub, endpoint) = start(hub).await;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("org/tiny/main");
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixture("model.safetensors");
    std::fs::write(dir.join("model.safetensors.part"), &model[..1000]).unwrap();
    pull("org/tiny", &options(endpoint, cache.path()))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), model);
    let cdn = hub.requests("GET", &sha256(&model));
    assert_eq!(cdn, [Some("bytes=1000-".to_string())]);
}

#[tokio::test]
async fn checksum_mismatch_fails_and_leaves_no_file() {
    let mut hub = Hub::default();
    tiny_repo(&mut hub, "org/tiny");
    let wrong = sha256(b"something else");
    hub.add(
        "org/tiny",
        "model.safetensors",
        fixture("model.safetensors"),
        true,
        Some(wrong.clone()),
    );
    let (_hub, endpoint) = start(hub).await;
    let cache = tempfile::tempdir().unwrap();
    let err = pull("org/tiny", &options(endpoint, cache.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch for model.safetensors") && err.contains(&wrong),
        "{err}"
    );
    let dir = cache.path().join("org/tiny/main");
    assert!(!dir.join("model.safetensors").exists());
    assert!(!dir.join("model.safetensors.part").exists());
}

#[tokio::test]
async fn missing_repository_is_a_clear_error() {
    let (_hub, endpoint) = start(Hub::default()).await;
    let cache = tempfile::tempdir().unwrap();
    let err = pull("org/none", &options(endpoint, cache.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}
