//! Worker settings. Defaults suit production; tests shorten the timings.

use std::collections::HashMap;
use std::time::Duration;

use keel_jobs::backoff::Backoff;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues to consume; empty = every queue of the registry.
    pub queues: Vec<String>,
    /// Jobs in flight at most (per process): handlers running at once.
    pub concurrency: usize,
    /// Jobs started ahead of a free slot (`None`: four per slot, Celery's default prefetch
    /// multiplier; `Some(0)`: none).
    /// Their start is recorded while the slots are busy, so a slot that frees up runs the next
    /// job at once instead of after a Postgres round trip. Only while this worker's handlers
    /// are short (see [`crate::prefetch`]), and never for longer than `prefetch_wait`.
    pub prefetch: Option<usize>,
    /// A job started ahead that found no free slot within this long is handed back
    /// (uncounted) so that another worker can run it.
    pub prefetch_wait: Duration,
    /// How long a started job belongs to this worker without a heartbeat. After that another
    /// worker may take it over (its worker is presumed dead).
    pub lease: Duration,
    /// Batched heartbeat period; also how fast a cancel request reaches a running handler.
    pub heartbeat: Duration,
    /// How long `XREADGROUP` blocks when nothing waits (bounds shutdown latency, not pick-up).
    pub block: Duration,
    /// Relay period (due `run_at` jobs start within about this much of their time).
    pub relay_interval: Duration,
    /// A row dispatched but not started after this long is pushed again (Redis lost it).
    pub redispatch_after: Duration,
    /// Redis entries delivered but unacked for this long are reaped (their worker died).
    pub reap_idle: Duration,
    pub backoff: Backoff,
    /// On shutdown, how long in-flight jobs may take to finish before being handed back.
    pub shutdown_timeout: Duration,
    /// Name of this consumer in the Redis group (unique per process).
    pub consumer: String,
    /// Run the relay in this process.
    pub relay: bool,
    /// Each kind's time limit per attempt, where the operator overrides the kind's own
    /// ([`keel_jobs::Job::TIMEOUT`]).
    pub job_timeouts: JobTimeouts,
}

/// Operator overrides of the kinds' time limits (`KEEL_JOB_TIMEOUTS`): `kind=ms` pairs, and
/// `*=ms` for every kind not named.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobTimeouts {
    pub every_kind: Option<Duration>,
    pub per_kind: HashMap<String, Duration>,
}

impl JobTimeouts {
    /// Longest limit one may set: a week (a limit is a bound, not a way to turn it off).
    pub const MAX: Duration = Duration::from_secs(7 * 86_400);

    /// Parses `kind=ms[,kind=ms…]` (`*` for every other kind). `known` says whether a kind
    /// exists, so a misspelt one is refused instead of silently not applying.
    pub fn parse(spec: &str, known: impl Fn(&str) -> bool) -> Result<Self, String> {
        let mut out = Self::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((kind, ms)) = pair.split_once('=') else {
                return Err(format!("{pair:?} is not kind=milliseconds"));
            };
            let (kind, ms) = (kind.trim(), ms.trim());
            let ms: u64 = ms
                .parse()
                .ok()
                .filter(|_| ms.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    format!("{ms:?} (for {kind}) is not a whole number of milliseconds")
                })?;
            let limit = Duration::from_millis(ms);
            if limit.is_zero() || limit > Self::MAX {
                return Err(format!(
                    "{kind}={ms}: a limit is between 1 and {} ms",
                    Self::MAX.as_millis()
                ));
            }
            if kind == "*" {
                out.every_kind = Some(limit);
            } else if known(kind) {
                out.per_kind.insert(kind.to_string(), limit);
            } else {
                return Err(format!("{kind:?} is not a job kind"));
            }
        }
        Ok(out)
    }

    /// The limit of one attempt of `kind`, whose own is `default`.
    pub fn for_kind(&self, kind: &str, default: Duration) -> Duration {
        self.per_kind
            .get(kind)
            .copied()
            .or(self.every_kind)
            .unwrap_or(default)
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queues: Vec::new(),
            concurrency: 16,
            prefetch: None,
            prefetch_wait: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            block: Duration::from_secs(1),
            relay_interval: Duration::from_millis(200),
            redispatch_after: Duration::from_secs(60),
            reap_idle: Duration::from_secs(300),
            backoff: Backoff::default(),
            shutdown_timeout: Duration::from_secs(25),
            consumer: default_consumer_name(),
            relay: true,
            job_timeouts: JobTimeouts::default(),
        }
    }
}

impl WorkerConfig {
    /// Jobs this worker may start ahead of a free slot.
    pub fn prefetch(&self) -> usize {
        self.prefetch.unwrap_or(4 * self.concurrency)
    }
}

/// `<hostname>-<pid>-<random>`: unique even when pods reuse pids.
pub fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_timeouts_name_kinds_or_every_kind() {
        let known = |k: &str| matches!(k, "noop" | "webhook.deliver");
        let t = JobTimeouts::parse(" webhook.deliver=2500, *=60000 ,", known).unwrap();
        let own = Duration::from_secs(300);
        assert_eq!(
            t.for_kind("webhook.deliver", own),
            Duration::from_millis(2500)
        );
        assert_eq!(t.for_kind("noop", own), Duration::from_secs(60));
        assert_eq!(
            JobTimeouts::parse("noop=10", known)
                .unwrap()
                .for_kind("webhook.deliver", own),
            own,
            "a kind not named keeps its own limit"
        );
        assert_eq!(
            JobTimeouts::parse("", known).unwrap(),
            JobTimeouts::default()
        );
        for bad in [
            "nope=10",
            "noop",
            "noop=0",
            "noop=1.5",
            "noop=+5",
            "noop=999999999999",
        ] {
            assert!(JobTimeouts::parse(bad, known).is_err(), "{bad}");
        }
    }
}
