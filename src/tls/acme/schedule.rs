//! When to renew, and how long to wait after a failure.
//!
//! Without ACME Renewal Information the renewal is due at two thirds of the lifetime (day 60
//! of Let's Encrypt's 90, day 4 of its 6-day certificates); with it, at a random point in the
//! CA's suggested window (RFC 9773 section 4.2). Failures back off exponentially from 10 s to
//! 1 h, with jitter, so replicas and a fleet of edges do not retry in step.

use std::time::{Duration, SystemTime};

/// First wait after a failure (before jitter).
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// Longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Two thirds into the validity period.
pub fn two_thirds(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + life * 2 / 3
}

/// A point in `[start, end]` at `fraction` (0 to 1) of the way: RFC 9773's uniformly random
/// choice when `fraction` is random.
pub fn in_window(start: SystemTime, end: SystemTime, fraction: f64) -> SystemTime {
    let span = end.duration_since(start).unwrap_or(Duration::ZERO);
    start + span.mul_f64(fraction.clamp(0.0, 1.0))
}

/// Capped exponential backoff with jitter.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_RETRY }
    }
}

impl Backoff {
    /// The wait before the next attempt: the current step scaled by `jitter` (0.5 to 1);
    /// the step doubles, up to the cap.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let wait = self.next.mul_f64(jitter.clamp(0.5, 1.0));
        self.next = (self.next * 2).min(MAX_RETRY);
        wait
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_two_thirds_copes_with_six_day_certificates() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(two_thirds(start, start + 90 * day), start + 60 * day);
        assert_eq!(two_thirds(start, start + 6 * day), start + 4 * day);
        assert_eq!(two_thirds(start + day, start), start + day);
    }

    #[test]
    fn a_point_in_the_suggested_window() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let end = start + Duration::from_secs(100);
        assert_eq!(in_window(start, end, 0.0), start);
        assert_eq!(in_window(start, end, 0.5), start + Duration::from_secs(50));
        assert_eq!(in_window(start, end, 7.0), end);
        assert_eq!(in_window(end, start, 0.5), end);
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.next(1.0), Duration::from_secs(10));
        assert_eq!(b.next(0.5), Duration::from_secs(10));
        assert_eq!(b.next(0.0), Duration::from_secs(20));
        let last = (0..20).map(|_| b.next(1.0)).last().unwrap();
        assert_eq!(last, Duration::from_secs(3600));
        b.reset();
        assert_eq!(b.next(1.0), Duration::from_secs(10));
    }
}
