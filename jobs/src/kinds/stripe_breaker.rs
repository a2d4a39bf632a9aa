//! A process-wide circuit breaker in front of every Stripe call Keel makes.
//!
//! Why: when Stripe is down, each Stripe job would otherwise spend one attempt per outage
//! probe and end `dead` after a long outage, although nothing was wrong with the job. After
//! [`BreakerConfig::threshold`] consecutive retryable failures (429, 5xx, network errors,
//! timeouts) the breaker opens for [`BreakerConfig::cool_down`]: callers are told how long
//! is left ([`Breaker::check`]) and do not call Stripe at all; jobs turn that into
//! [`crate::JobError::Deferred`], which puts them back in the queue without counting the
//! attempt. When the cool-down is over the breaker is half-open: calls go through, the first
//! success closes it, and a single further failure opens it again at once.
//!
//! Refusals (4xx other than 429) count as successes: Stripe answered, so it is up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive retryable failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open before letting a probe through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct State {
    config: BreakerConfig,
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// See the module docs. [`global`] is the one every Stripe call of this process shares.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Breaker {
    pub const fn new(config: BreakerConfig) -> Self {
        Self {
            state: Mutex::new(State {
                config,
                consecutive_failures: 0,
                open_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the threshold and cool-down (start-up, tests) and closes the breaker.
    pub fn configure(&self, config: BreakerConfig) {
        let mut s = self.lock();
        s.config = config;
        s.consecutive_failures = 0;
        s.open_until = None;
    }

    /// `Err(remaining cool-down)` while open; `Ok` when a call may go through.
    pub fn check(&self) -> Result<(), Duration> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), Duration> {
        match self.lock().open_until {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Stripe answered (success or refusal): close the breaker.
    pub fn record_success(&self) {
        let mut s = self.lock();
        if s.open_until.take().is_some() || s.consecutive_failures > 0 {
            tracing::info!("Stripe answered again; circuit breaker closed");
        }
        s.consecutive_failures = 0;
    }

    /// A retryable failure. Returns the cool-down when this failure opened the breaker.
    pub fn record_failure(&self) -> Option<Duration> {
        self.record_failure_at(Instant::now())
    }

    fn record_failure_at(&self, now: Instant) -> Option<Duration> {
        let mut s = self.lock();
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        // Half-open (a cool-down ran out): one failure is enough to open it again.
        let half_open = s.open_until.is_some_and(|u| u <= now);
        if s.consecutive_failures >= s.config.threshold.max(1) || half_open {
            let cool_down = s.config.cool_down;
            s.open_until = Some(now + cool_down);
            tracing::warn!(
                failures = s.consecutive_failures,
                cool_down_ms = cool_down.as_millis() as u64,
                "Stripe keeps failing; circuit breaker open"
            );
            return Some(cool_down);
        }
        None
    }
}

static GLOBAL: Breaker = Breaker::new(BreakerConfig {
    threshold: 5,
    cool_down: Duration::from_secs(30),
});

/// The breaker shared by every Stripe call of this process.
pub fn global() -> &'static Breaker {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            threshold: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_and_reports_the_remaining_cool_down() {
        let b = breaker();
        let t0 = Instant::now();
        assert_eq!(b.record_failure_at(t0), None);
        assert_eq!(b.record_failure_at(t0), None);
        assert!(b.check_at(t0).is_ok());
        assert_eq!(b.record_failure_at(t0), Some(Duration::from_secs(10)));
        assert_eq!(
            b.check_at(t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        // Half-open after the cool-down: calls pass, one failure reopens at once.
        let later = t0 + Duration::from_secs(11);
        assert!(b.check_at(later).is_ok());
        assert!(b.record_failure_at(later).is_some());
        assert!(b.check_at(later).is_err());
    }

    #[test]
    fn a_success_closes_it_and_resets_the_count() {
        let b = breaker();
        let t0 = Instant::now();
        b.record_failure_at(t0);
        b.record_failure_at(t0);
        b.record_success();
        assert_eq!(b.record_failure_at(t0), None);
        assert_eq!(b.record_failure_at(t0), None);
        assert!(b.check_at(t0).is_ok());
        b.record_failure_at(t0);
        assert!(b.check_at(t0).is_err());
        b.record_success();
        assert!(b.check_at(t0).is_ok());
    }
}
