//! Takes back running jobs whose lease ran out.
//!
//! A lease runs out when its worker died, stalled (a paused process, a
//! lost network) or lost the database for longer than the lease. The
//! rescued attempt counts as failed: the job is retried with backoff while
//! attempts remain, discarded after, and cancelled if a cancel was pending.
//! If the old worker comes back, its writes are fenced off by the attempt
//! number and change nothing.

use sqlx::PgPool;

use crate::queue::{self, AttemptError, FailAction, Finish, JobState, RetryPolicy};

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub retried: u64,
    pub discarded: u64,
    pub cancelled: u64,
}

impl Report {
    /// Logs the run at warn when it rescued anything: each rescue means a
    /// worker stopped renewing its leases.
    pub fn log(self) {
        if self.retried + self.discarded + self.cancelled > 0 {
            tracing::warn!(
                retried = self.retried,
                discarded = self.discarded,
                cancelled = self.cancelled,
                "rescued jobs whose lease ran out"
            );
        }
    }
}

/// Rescues up to `batch` expired jobs.
pub async fn run_once(
    pool: &PgPool,
    retry: &RetryPolicy,
    batch: i64,
) -> Result<Report, queue::Error> {
    let mut tx = pool.begin().await?;
    let expired = queue::job_rescue_expired(&mut tx, batch).await?;
    if expired.is_empty() {
        return Ok(Report::default());
    }

    let finishes: Vec<Finish> = expired
        .iter()
        .map(|job| {
            let worker = job.worker_id.as_deref().unwrap_or("unknown");
            let message = format!(
                "lease expired: worker {worker} did not renew it (it stopped, or could not \
                 reach the database)"
            );
            let error = AttemptError::now(job.attempt, message, Vec::new());
            let action = if job.cancel_requested {
                FailAction::Cancel
            } else {
                FailAction::Retry
            };
            tracing::info!(
                job_id = %job.id,
                kind = %job.kind,
                tenant = %job.tenant,
                attempt = job.attempt,
                worker_id = worker,
                "rescuing job"
            );
            Finish::failed(job.seq, job.claim, job.max_attempts, action, &error, retry)
        })
        .collect();
    let finished = queue::job_finish_many(&mut *tx, None, &finishes).await?;
    tx.commit().await?;

    let mut report = Report::default();
    for (_, state) in finished {
        match state {
            JobState::Retryable => report.retried += 1,
            JobState::Cancelled => report.cancelled += 1,
            _ => report.discarded += 1,
        }
    }
    Ok(report)
}
