//! The HTTP exchange under every [`JiraClient`] call: one request at a time per
//! concurrency slot, a bounded body, at most one in-client retry of a short wait Jira
//! announced, errors classified into [`JiraError`] (which drives the job layer's retries), and
//! offset-paged collections gathered page by page.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Budget, Capped, JiraClient};
use crate::error::JiraError;

impl JiraClient {
    /// Collects an offset-paged collection (`startAt`/`maxResults`/`total`).
    /// Advances by what the server actually returned (Jira may cap the page
    /// size below what was asked) and stops on `isLast`, on reaching `total`,
    /// or on an empty page.
    pub(super) async fn offset_pages<P, T>(
        &self,
        what: &str,
        make_url: impl Fn(u64, u32) -> Url,
        split: impl Fn(P) -> (Vec<T>, Option<u64>, Option<bool>),
    ) -> Result<Vec<T>, JiraError>
    where
        P: DeserializeOwned,
    {
        Ok(self
            .offset_pages_up_to(what, make_url, split, None)
            .await?
            .items)
    }

    /// [`offset_pages`](Self::offset_pages), stopping once `cap` items were
    /// read and there are more (`truncated`).
    pub(super) async fn offset_pages_up_to<P, T>(
        &self,
        what: &str,
        make_url: impl Fn(u64, u32) -> Url,
        split: impl Fn(P) -> (Vec<T>, Option<u64>, Option<bool>),
        cap: Option<usize>,
    ) -> Result<Capped<T>, JiraError>
    where
        P: DeserializeOwned,
    {
        let size = self.inner.config.page_size;
        let mut out = Vec::new();
        let mut start: u64 = 0;
        for _ in 0..self.inner.config.max_pages {
            let url = make_url(start, size);
            let page: P = self.get(url.clone(), what).await?;
            let (items, total, is_last) = split(page);
            check_page_len(&url, items.len(), size)?;
            let n = items.len() as u64;
            out.extend(items);
            start += n;
            let done = is_last == Some(true)
                || n == 0
                || total.map_or(is_last.is_none() && n < u64::from(size), |t| start >= t);
            if done || cap.is_some_and(|cap| out.len() >= cap) {
                return Ok(Capped {
                    items: out,
                    truncated: !done,
                });
            }
        }
        Err(self.too_many_pages(&make_url(start, size)))
    }

    pub(super) fn too_many_pages(&self, url: &Url) -> JiraError {
        JiraError::Decode {
            endpoint: url.path().to_string(),
            message: format!(
                "more than {} pages; stopping (raise max_pages or narrow the query)",
                self.inner.config.max_pages
            ),
        }
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        what: &str,
    ) -> Result<T, JiraError> {
        self.send(Method::GET, url, None, what).await
    }

    /// One logical call: a request, plus at most one in-client retry of a
    /// short, server-announced wait (429/503 with a small `Retry-After`).
    pub(super) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T, JiraError> {
        let mut retried = false;
        loop {
            match self.send_once(method.clone(), &url, body, what).await {
                Ok(bytes) => return decode(&bytes, &url),
                Err(e) => match self.inline_wait(&e) {
                    Some(wait) if !retried => {
                        tracing::info!(
                            path = url.path(),
                            wait_ms = wait.as_millis() as u64,
                            "jira asked to wait briefly; retrying once"
                        );
                        retried = true;
                        // The concurrency slot is not held while sleeping.
                        tokio::time::sleep(wait).await;
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    fn inline_wait(&self, e: &JiraError) -> Option<Duration> {
        let max = self.inner.config.inline_retry_max_wait;
        if max.is_zero() {
            return None;
        }
        match e {
            JiraError::RateLimited {
                retry_after: Some(d),
            }
            | JiraError::Server {
                status: 503,
                retry_after: Some(d),
                ..
            } if *d <= max => Some(*d),
            _ => None,
        }
    }

    /// A single HTTP exchange, holding a concurrency slot from sending the
    /// request until the body has been read. Returns the body of a 2xx.
    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Vec<u8>, JiraError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| JiraError::Invalid("the Jira client was shut down".into()))?;
        let max_pages = self.inner.config.max_job_pages;
        if self.budget.pages.fetch_add(1, Ordering::Relaxed) >= max_pages {
            return Err(JiraError::OverLimit(format!(
                "this job has made {max_pages} requests to Jira, the most one job may make; stopping (narrow the query, or raise the limit)"
            )));
        }
        let started = Instant::now();
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.inner.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = JiraError::transport(&e);
                // `?`: the text comes from the tenant's server; escaped, it cannot forge lines.
                tracing::warn!(%method, path = url.path(), error = ?err.to_string(), "jira request failed");
                return Err(err);
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_body(resp, &self.inner.config, &self.budget, url).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if status.is_success() {
            tracing::debug!(%method, path = url.path(), status = status.as_u16(), elapsed_ms, "jira request");
            return Ok(bytes);
        }
        let err = JiraError::from_response(status, &headers, &bytes, what, chrono::Utc::now());
        tracing::warn!(
            %method,
            path = url.path(),
            status = status.as_u16(),
            elapsed_ms,
            retryable = err.is_retryable(),
            error = ?err.to_string(),
            "jira request rejected"
        );
        Err(err)
    }
}

/// Reads a body chunk by chunk, stopping (and dropping the connection) as
/// soon as it passes the per-response limit or the job's byte budget: what a
/// huge or endless answer costs is the limit, never the whole answer. A
/// `Content-Length` above the limit is refused before reading anything.
async fn read_body(
    mut resp: reqwest::Response,
    config: &crate::JiraConfig,
    budget: &Budget,
    url: &Url,
) -> Result<Vec<u8>, JiraError> {
    let max = config.max_response_bytes;
    let too_big = || {
        JiraError::OverLimit(format!(
            "Jira's answer from {} is larger than {max} bytes, the most Keel reads in one response; reading stopped",
            url.path()
        ))
    };
    let over_budget = || {
        JiraError::OverLimit(format!(
            "this job has read {} bytes from Jira, the most one job may read; reading stopped (narrow the query, or raise the limit)",
            config.max_job_bytes
        ))
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    // Reserved up to the announced length (bounded by `max` above), so the
    // buffer does not double past what the response holds.
    let mut buf = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(|e| JiraError::transport(&e))? {
        if buf.len() + chunk.len() > max {
            return Err(too_big());
        }
        let n = chunk.len() as u64;
        if budget.bytes.fetch_add(n, Ordering::Relaxed) + n > config.max_job_bytes {
            return Err(over_budget());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Jira never answers more items than asked for (`maxResults`); a server
/// that does is not paging as documented, and its page is refused rather
/// than read into memory as a list of any length.
pub(super) fn check_page_len(url: &Url, n: usize, size: u32) -> Result<(), JiraError> {
    if n > size as usize {
        return Err(JiraError::OverLimit(format!(
            "Jira answered {} with {n} items for a page of at most {size}; refusing the page",
            url.path()
        )));
    }
    Ok(())
}

/// Deserializes with the JSON path of the first offending value in the
/// error, so a schema surprise says *where* (e.g. `fields.created`).
fn decode<T: DeserializeOwned>(bytes: &[u8], url: &Url) -> Result<T, JiraError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| JiraError::Decode {
        endpoint: url.path().to_string(),
        message: format!("{} (at {})", e.inner(), e.path()),
    })
}
