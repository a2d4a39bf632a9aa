//! `keel model pull`: downloads a model from the Hugging Face Hub URL layout
//! `{endpoint}/{repo}/resolve/{revision}/{file}` into
//! `{cache}/{repo}/{revision}/` (default cache `~/.cache/keel/models`).
//!
//! - **Which files**: `config.json`; `model.safetensors`, else
//!   `pytorch_model.bin`; `tokenizer.json`, else `vocab.txt`; and
//!   `tokenizer_config.json` when present. A 404 moves on to the fallback.
//! - **Checksums**: a HEAD request (redirects not followed) reads
//!   `X-Linked-Etag`, else `ETag`; for LFS files that is the file's sha256
//!   (64 hex digits) and the download is verified against it. Other etags (git
//!   blob ids of small files) are not checkable and are ignored.
//! - **Resumable, atomic**: bytes go to `{file}.part`; a later pull asks for
//!   the rest with `Range: bytes=N-`; the file appears under its real name only
//!   after it is complete and verified (rename). A mismatch deletes the part.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reqwest::header::{HeaderMap, AUTHORIZATION, ETAG, LOCATION, RANGE};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Files to fetch: each group needs one of its names (first found wins).
const REQUIRED: [&[&str]; 3] = [
    &["config.json"],
    &["model.safetensors", "pytorch_model.bin"],
    &["tokenizer.json", "vocab.txt"],
];
/// Fetched when the repository has them.
const OPTIONAL: [&str; 1] = ["tokenizer_config.json"];

/// Where and what to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Hub base URL (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// Cache root (default `~/.cache/keel/models`, `$XDG_CACHE_HOME` honoured).
    pub cache_dir: PathBuf,
    /// Bearer token for gated models (`HF_TOKEN`).
    pub token: Option<String>,
}

impl PullOptions {
    /// Defaults from the environment.
    pub fn from_env() -> Self {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        Self {
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".into()),
            revision: "main".into(),
            cache_dir: cache.join("keel").join("models"),
            token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }

    /// The cache directory of `repo` at this revision.
    pub fn model_dir(&self, repo: &str) -> Result<PathBuf> {
        check_name("repository", repo, 2)?;
        check_name("revision", &self.revision, 8)?;
        Ok(self.cache_dir.join(repo).join(&self.revision))
    }
}

/// Names become paths: only `[A-Za-z0-9._-]` segments, no `.`/`..`.
fn check_name(what: &str, s: &str, max_segments: usize) -> Result<()> {
    let segs: Vec<&str> = s.split('/').collect();
    let ok = segs.len() <= max_segments
        && segs.iter().all(|g| {
            !g.is_empty()
                && *g != "."
                && *g != ".."
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if !ok {
        bail!("invalid {what} name {s:?}");
    }
    Ok(())
}

/// Resolves `KEEL_SENTIMENT_MODEL`: an existing directory is used as is;
/// otherwise `repo` or `repo@revision` is looked up in the cache.
pub fn resolve(spec: &str, opts: &PullOptions) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut opts = opts.clone();
    let repo = match spec.split_once('@') {
        Some((repo, rev)) => {
            opts.revision = rev.to_string();
            repo
        }
        None => spec,
    };
    let dir = opts
        .model_dir(repo)
        .with_context(|| format!("model {spec:?} is neither a directory nor a repository name"))?;
    if !dir.join("config.json").is_file() {
        bail!(
            "model {spec:?} is not a directory and has not been pulled into {}; run `keel model pull {repo}`",
            dir.display()
        );
    }
    Ok(dir)
}

/// Downloads `repo` (e.g. `ProsusAI/finbert`) and returns its directory.
/// Safe to re-run: complete files are kept, partial ones resumed.
pub async fn pull(repo: &str, opts: &PullOptions) -> Result<PathBuf> {
    let dir = opts.model_dir(repo)?;
    tokio::fs::create_dir_all(&dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let hub = Hub::new(opts)?;
    for group in REQUIRED {
        let mut found = false;
        for file in group {
            if hub.fetch(repo, file, &dir).await? {
                found = true;
                break;
            }
        }
        if !found {
            bail!("{repo}@{} has none of {group:?}", opts.revision);
        }
    }
    for file in OPTIONAL {
        hub.fetch(repo, file, &dir).await?;
    }
    Ok(dir)
}

struct Hub<'a> {
    opts: &'a PullOptions,
    base: Url,
    head: reqwest::Client,
    get: reqwest::Client,
}

impl<'a> Hub<'a> {
    fn new(opts: &'a PullOptions) -> Result<Self> {
        let base = Url::parse(opts.endpoint.trim_end_matches('/'))
            .with_context(|| format!("invalid hub endpoint {:?}", opts.endpoint))?;
        let build = |redirects| {
            reqwest::Client::builder()
                .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(std::time::Duration::from_secs(30))
                .redirect(redirects)
                .build()
        };
        Ok(Self {
            opts,
            base,
            head: build(reqwest::redirect::Policy::none())?,
            get: build(reqwest::redirect::Policy::limited(10))?,
        })
    }

    fn auth(&self, url: &Url, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        // The token goes to the hub only, never to the CDN a file redirects to.
        if let Some(t) = &self.opts.token {
            if url.host_str() == self.base.host_str() {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            }
        }
        req
    }

    /// Fetches one file into `dir`. `Ok(false)` when the hub has no such file.
    async fn fetch(&self, repo: &str, file: &str, dir: &Path) -> Result<bool> {
        let dest = dir.join(file);
        if dest.is_file() {
            return Ok(true);
        }
        let url = Url::parse(&format!(
            "{}/{repo}/resolve/{}/{file}",
            self.base.as_str().trim_end_matches('/'),
            self.opts.revision
        ))?;
        let head = self.auth(&url, self.head.head(url.clone())).send().await;
        let head = head.with_context(|| format!("HEAD {url}"))?;
        let location = match head.status() {
            StatusCode::NOT_FOUND => return Ok(false),
            s if s.is_redirection() => {
                let loc = head.headers().get(LOCATION).and_then(|v| v.to_str().ok());
                url.join(loc.context("redirect without Location")?)?
            }
            s if s.is_success() => url.clone(),
            s => bail!("HEAD {url}: {s}"),
        };
        let expected = sha256_etag(head.headers());
        let mut part = OsString::from(dest.as_os_str());
        part.push(".part");
        let part = PathBuf::from(part);
        let have = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
        let mut req = self.auth(&location, self.get.get(location.clone()));
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
        }
        let mut resp = req.send().await.with_context(|| format!("GET {url}"))?;
        let mut out = match resp.status() {
            StatusCode::PARTIAL_CONTENT => open(&part, true).await?,
            StatusCode::OK => open(&part, false).await?,
            // Nothing left to fetch: the part is whole (verified below).
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => open(&part, true).await?,
            StatusCode::NOT_FOUND => return Ok(false),
            s => bail!("GET {url}: {s}"),
        };
        let mut copied = Ok(());
        if resp.status() != StatusCode::RANGE_NOT_SATISFIABLE {
            copied = async {
                while let Some(chunk) = resp.chunk().await? {
                    out.write_all(&chunk).await?;
                }
                anyhow::Ok(())
            }
            .await;
        }
        // Keep what arrived even when the connection broke: the next pull resumes from it.
        out.flush().await?;
        out.sync_all().await?;
        drop(out);
        copied.with_context(|| format!("GET {url} (interrupted; run the pull again to resume)"))?;
        if let Some(want) = expected {
            let got = sha256_file(&part).await?;
            if got != want {
                tokio::fs::remove_file(&part).await.ok();
                bail!("checksum mismatch for {file}: expected sha256 {want}, got {got}; the partial download was deleted, run the pull again");
            }
        }
        tokio::fs::rename(&part, &dest)
            .await
            .with_context(|| format!("renaming {} into place", part.display()))?;
        Ok(true)
    }
}

async fn open(path: &Path, append: bool) -> Result<tokio::fs::File> {
    let mut o = tokio::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

/// The sha256 an LFS file's etag carries, if it is one.
fn sha256_etag(h: &HeaderMap) -> Option<String> {
    let raw = h
        .get("x-linked-etag")
        .or_else(|| h.get(ETAG))?
        .to_str()
        .ok()?;
    let tag = raw.trim().trim_start_matches("W/").trim_matches('"');
    (tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| tag.to_ascii_lowercase())
}

async fn sha256_file(path: &Path) -> Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<String> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex::encode(h.finalize()))
    })
    .await?
}
