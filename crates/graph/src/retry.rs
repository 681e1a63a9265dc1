//! Retry policy: exponential backoff with full jitter, and `Retry-After` parsing.
//!
//! Full jitter (a uniformly random wait between zero and the exponential ceiling) spreads the
//! retries of many concurrent workers so that they do not hit Graph again in lock step.

use std::time::Duration;

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included (at least 1).
    pub max_attempts: u32,
    /// Ceiling of the first backoff; it doubles with every further attempt.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// Longest `Retry-After` the client waits out by itself; a longer one is returned to the
    /// caller as [`crate::GraphError::Throttled`] so that a job can be rescheduled instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The exponential ceiling before attempt number `retry` (0 = first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The full-jitter wait before retry number `retry`, given a uniform sample in `[0, 1)`.
    pub fn backoff(&self, retry: u32, unit_sample: f64) -> Duration {
        let sample = if unit_sample.is_finite() {
            unit_sample.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ceiling(retry).mul_f64(sample)
    }

    /// The full-jitter wait before retry number `retry`, with a random sample.
    pub fn random_backoff(&self, retry: u32) -> Duration {
        self.backoff(retry, rand::random::<f64>())
    }
}

/// Parses a `Retry-After` header value: delay-seconds (Graph's form) or an HTTP date.
pub fn parse_retry_after(value: &str, now_utc: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            // The header comes from the network: a value too large for a Duration is the
            // longest wait (from_secs_f64 would panic on it).
            return Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
        }
        return None;
    }
    let date =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = date - now_utc;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        wait.unsigned_abs()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ceiling_doubles_until_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(60),
        };
        let ceilings: Vec<_> = (0..6).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_scales_the_ceiling_by_the_sample() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(2, 0.5), Duration::from_secs(1));
        assert_eq!(policy.backoff(2, f64::NAN), Duration::ZERO);
        for _ in 0..200 {
            let wait = policy.random_backoff(3);
            assert!(wait <= Duration::from_secs(4), "{wait:?} above the ceiling");
        }
    }

    #[test]
    fn random_backoff_is_spread_out() {
        let policy = RetryPolicy::default();
        let waits: std::collections::HashSet<_> =
            (0..50).map(|_| policy.random_backoff(4)).collect();
        assert!(
            waits.len() > 40,
            "full jitter must not repeat the same wait"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = datetime!(2026-05-01 10:00:00 UTC);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after(" 2.5 ", now),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            parse_retry_after("Fri, 01 May 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 01 May 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        // Beyond what a Duration holds: the longest wait, not a panic.
        assert_eq!(parse_retry_after("1e20", now), Some(Duration::MAX));
        assert_eq!(
            parse_retry_after("99999999999999999999", now),
            Some(Duration::MAX)
        );
        assert_eq!(parse_retry_after("inf", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
