//! Worker settings. Defaults suit production; tests shorten the timings.

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
