//! Retries: exponential backoff with full jitter, capped, honouring the provider's Retry-After,
//! within a budget of attempts and of time spent waiting.
//!
//! Full jitter (`sleep = random(0, min(cap, base·2^attempt))`) spreads the retries of many workers
//! that failed together, instead of having them come back in lockstep. A Retry-After is a floor: we
//! never come back before the provider asked us to.

use std::time::Duration;

use rand::Rng;

use crate::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Calls in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Longest total wait a call may spend in-process (backoff, rate-limit waits, full slots).
    /// Anything longer goes back to the caller as an error with `retry_after`, so a queue consumer
    /// delays the message instead of holding a Lambda.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, base: Duration::from_millis(200), cap: Duration::from_secs(5), budget: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `attempt + 1` (attempt counts from 0), full jitter.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.base.saturating_mul(2u32.saturating_pow(attempt.min(20))).min(self.cap);
        let micros = ceiling.as_micros() as u64;
        Duration::from_micros(if micros == 0 { 0 } else { rng.gen_range(0..=micros) })
    }

    /// The wait before retrying after `err` on attempt `attempt`, or None when it should not be
    /// retried here (not retryable, attempts spent, or the wait does not fit the remaining budget).
    pub fn next_delay(&self, err: &Error, attempt: u32, spent: Duration, rng: &mut impl Rng) -> Option<Duration> {
        if !err.is_retryable() || attempt + 1 >= self.max_attempts {
            return None;
        }
        let jitter = self.backoff(attempt, rng);
        let wait = match err.retry_after() {
            Some(floor) => floor.max(jitter.min(floor + self.base)),
            None => jitter,
        };
        (spent + wait <= self.budget).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Provider;
    use rand::SeedableRng;

    #[test]
    fn backoff_is_jittered_below_a_capped_exponential() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            budget: Duration::from_secs(60),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..10 {
            let ceiling = Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_secs(1));
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                let d = p.backoff(attempt, &mut rng);
                assert!(d <= ceiling, "{d:?} > {ceiling:?}");
                seen.insert(d);
            }
            assert!(seen.len() > 10, "jittered");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_the_budget_bounds_waits() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let limited =
            Error::ProviderRateLimited { provider: Provider::Xero, problem: "minute".into(), retry_after: Some(Duration::from_secs(3)) };
        let d = p.next_delay(&limited, 0, Duration::ZERO, &mut rng).unwrap();
        assert!(d >= Duration::from_secs(3));
        // Does not fit what is left of the budget.
        assert_eq!(p.next_delay(&limited, 0, Duration::from_secs(8), &mut rng), None);
        // Not retryable, or out of attempts.
        let bad = Error::ProviderPermanent { provider: Provider::Xero, status: Some(400), message: "x".into() };
        assert_eq!(p.next_delay(&bad, 0, Duration::ZERO, &mut rng), None);
        let transient = Error::ProviderTransient { provider: Provider::Xero, status: Some(503), message: "x".into() };
        assert!(p.next_delay(&transient, 1, Duration::ZERO, &mut rng).is_some());
        assert_eq!(p.next_delay(&transient, 2, Duration::ZERO, &mut rng), None);
    }
}
