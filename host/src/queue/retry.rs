//! What happens after a failed attempt: the retry policy and the row
//! updates that record an attempt's end.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use super::{AttemptError, Finish, JobState};

/// First retry delay unless configured.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay unless configured.
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(60 * 60);
/// Attempts a module grants unless deployed with its own number: with the
/// default backoff they span about ten hours.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 20;

/// What a job should do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailAction {
    /// Retry with backoff while attempts remain.
    Retry,
    /// Retry after this delay while attempts remain.
    RetryAfter(Duration),
    /// Discard the job.
    Discard,
    /// Cancel the job.
    Cancel,
}

/// Exponential backoff with jitter: attempt `n` waits `base * 2^(n-1)`,
/// at most `cap`, each delay moved by up to ±20% so that jobs that failed
/// together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: DEFAULT_RETRY_BASE,
            cap: DEFAULT_RETRY_CAP,
        }
    }
}

impl RetryPolicy {
    /// The jitter-free delay after failed attempt `attempt` (1-based).
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay after failed attempt `attempt`, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = rand::rng().random_range(0.8..=1.2);
        self.nominal_delay(attempt).mul_f64(factor)
    }
}

impl Finish {
    /// Records the success of attempt `attempt` of job `seq`, begun by
    /// `claim`.
    pub fn completed(seq: i64, claim: i64, attempt: i32, result: String) -> Self {
        Self {
            seq,
            claim,
            attempt,
            state: JobState::Completed,
            result: Some(result),
            error: None,
            retry_in_secs: 0.0,
        }
    }

    /// Records the failure of the attempt of job `seq` begun by `claim`:
    /// retryable while attempts remain and the failure allows it, discarded
    /// or cancelled otherwise.
    pub fn failed(
        seq: i64,
        claim: i64,
        max_attempts: i32,
        action: FailAction,
        error: &AttemptError,
        policy: &RetryPolicy,
    ) -> Self {
        let attempts_left = error.attempt < max_attempts;
        let (state, delay) = match action {
            FailAction::Retry if attempts_left => (
                JobState::Retryable,
                policy.delay(error.attempt.max(1).unsigned_abs()),
            ),
            FailAction::RetryAfter(delay) if attempts_left => (JobState::Retryable, delay),
            FailAction::Retry | FailAction::RetryAfter(_) | FailAction::Discard => {
                (JobState::Discarded, Duration::ZERO)
            }
            FailAction::Cancel => (JobState::Cancelled, Duration::ZERO),
        };
        Self {
            seq,
            claim,
            attempt: error.attempt,
            state,
            result: None,
            error: Some(serde_json::to_string(error).expect("an attempt error serializes")),
            retry_in_secs: delay.as_secs_f64(),
        }
    }
}

impl AttemptError {
    /// An entry for attempt `attempt` failing now with `error`.
    pub fn now(attempt: i32, error: String, log: Vec<String>) -> Self {
        Self {
            attempt,
            at: Utc::now(),
            error,
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        let table = [
            (1, 1),
            (2, 2),
            (3, 4),
            (4, 8),
            (6, 32),
            (7, 60),
            (30, 60),
            (u32::MAX, 60),
        ];
        for (attempt, seconds) in table {
            assert_eq!(
                policy.nominal_delay(attempt),
                Duration::from_secs(seconds),
                "{attempt}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_a_fifth_of_the_delay() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(60),
        };
        for _ in 0..1000 {
            let delay = policy.delay(1);
            assert!(
                delay >= Duration::from_secs(8) && delay <= Duration::from_secs(12),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn failures_retry_while_attempts_remain() {
        let policy = RetryPolicy::default();
        let error = |attempt| AttemptError::now(attempt, "boom".into(), vec![]);

        let finish = Finish::failed(1, 9, 3, FailAction::Retry, &error(2), &policy);
        assert_eq!(finish.state, JobState::Retryable);
        assert!(finish.retry_in_secs >= 1.6 && finish.retry_in_secs <= 2.4);

        let finish = Finish::failed(1, 9, 3, FailAction::Retry, &error(3), &policy);
        assert_eq!(finish.state, JobState::Discarded);

        let after = FailAction::RetryAfter(Duration::from_secs(90));
        let finish = Finish::failed(1, 9, 3, after, &error(1), &policy);
        assert_eq!(
            (finish.state, finish.retry_in_secs),
            (JobState::Retryable, 90.0)
        );

        let finish = Finish::failed(1, 9, 3, FailAction::Discard, &error(1), &policy);
        assert_eq!(finish.state, JobState::Discarded);
        let finish = Finish::failed(1, 9, 3, FailAction::Cancel, &error(1), &policy);
        assert_eq!(finish.state, JobState::Cancelled);
        assert!(finish.error.unwrap().contains("\"error\":\"boom\""));
    }
}
