//! Deletes finished jobs once their retention has passed.

use std::time::Duration;

use sqlx::PgPool;

use crate::queue::{self, JobState};

/// How long finished jobs are kept, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub completed: Duration,
    pub cancelled: Duration,
    pub discarded: Duration,
}

impl Default for Retention {
    /// A day for completed jobs; a week for the others, which someone may
    /// want to look into or retry.
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        Self {
            completed: DAY,
            cancelled: 7 * DAY,
            discarded: 7 * DAY,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub deleted: u64,
}

impl Report {
    pub fn log(self) {
        if self.deleted > 0 {
            tracing::info!(
                deleted = self.deleted,
                "deleted finished jobs past their retention"
            );
        } else {
            tracing::debug!("no finished jobs past their retention");
        }
    }
}

/// Deletes every finished job past its retention, `batch` per statement.
pub async fn run_once(
    pool: &PgPool,
    retention: &Retention,
    batch: i64,
) -> Result<Report, queue::Error> {
    let mut conn = pool.acquire().await?;
    let mut report = Report::default();
    for (state, keep) in [
        (JobState::Completed, retention.completed),
        (JobState::Cancelled, retention.cancelled),
        (JobState::Discarded, retention.discarded),
    ] {
        report.deleted += queue::job_prune(&mut conn, None, state, keep, batch).await?;
    }
    Ok(report)
}
