//! Exponential backoff with jitter, capped: `d = min(cap, base · 2^(attempt-1))`, then a delay
//! drawn uniformly from `[d/2, d]` ("equal jitter"), so retries of many jobs that failed together
//! spread out instead of arriving in waves, while the delay still grows with every attempt.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The ceiling for `attempt` (1-based: the attempt that just failed).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exp = attempt.clamp(1, 63) as u32 - 1;
        let factor = 1u64.checked_shl(exp).unwrap_or(u64::MAX);
        let base_ms = self.base.as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(base_ms.saturating_mul(factor)).min(self.cap)
    }

    pub fn delay(&self, attempt: i32) -> Duration {
        let d = self.ceiling(attempt);
        let half = d / 2;
        let jitter_ms = rand::thread_rng().gen_range(0..=(d - half).as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// The most a server's `Retry-After` is waited for: the cap, and at least an hour, so a
    /// hostile value cannot park a job for years.
    pub fn retry_after_cap(&self) -> Duration {
        self.cap.max(Duration::from_secs(3600))
    }

    /// The delay before the next attempt: the backoff, or the server's `Retry-After` (capped)
    /// when that is longer. `Retry-After` says "not before"; a server answering `0` (or a second
    /// while the backoff has grown past it) had turned the backoff off, and an overloaded
    /// receiver got every attempt of every job within seconds.
    pub fn next(&self, attempt: i32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.delay(attempt);
        match retry_after {
            Some(d) => d.min(self.retry_after_cap()).max(backoff),
            None => backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_bounds_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        };
        for attempt in 1..=12 {
            let ceiling = b.ceiling(attempt);
            let expected = Duration::from_millis(100 * (1u64 << (attempt - 1))).min(b.cap);
            assert_eq!(ceiling, expected);
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
            }
        }
        assert_eq!(b.ceiling(1000), b.cap);
    }

    #[test]
    fn jitter_spreads_delays() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        };
        let distinct: std::collections::BTreeSet<_> = (0..100).map(|_| b.delay(5)).collect();
        assert!(distinct.len() > 10);
    }

    #[test]
    fn retry_after_is_waited_for_capped_and_never_shortens_the_backoff() {
        let b = Backoff::default();
        assert_eq!(
            b.next(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            b.next(3, Some(Duration::from_secs(10_000_000))),
            Duration::from_secs(3600)
        );
        // `Retry-After: 0` (or one shorter than the backoff) waits the backoff.
        for attempt in [1, 5, 10] {
            for retry_after in [0, 1] {
                let d = b.next(attempt, Some(Duration::from_secs(retry_after)));
                assert!(
                    d >= b.ceiling(attempt) / 2,
                    "{attempt}, {retry_after}: {d:?}"
                );
            }
        }
    }
}
