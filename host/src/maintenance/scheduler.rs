//! Makes scheduled and retryable jobs available when their run_at comes.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::MaintenanceConfig;
use crate::queue;
use crate::telemetry::error_chain;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub promoted: u64,
}

/// Promotes every due job, a batch per statement.
pub async fn run_once(pool: &PgPool, batch: i64) -> Result<Report, queue::Error> {
    let mut report = Report::default();
    loop {
        let mut conn = pool.acquire().await?;
        let promoted = queue::job_promote_due(&mut conn, batch).await?;
        report.promoted += promoted;
        if promoted < batch as u64 {
            break;
        }
    }
    if report.promoted > 0 {
        tracing::debug!(promoted = report.promoted, "scheduler promoted due jobs");
    }
    Ok(report)
}

/// Runs until `shutdown`, sleeping until the next job is due but never
/// longer than the configured interval (a job enqueued meanwhile may be
/// due sooner).
pub async fn run(config: &MaintenanceConfig, pool: &PgPool, shutdown: &CancellationToken) {
    loop {
        let wait = match run_once(pool, config.batch).await {
            Ok(_) => queue::job_next_due_in(pool)
                .await
                .ok()
                .flatten()
                .map_or(config.scheduler_interval, |due| {
                    due.min(config.scheduler_interval)
                }),
            Err(e) => {
                tracing::warn!(
                    service = "scheduler",
                    error = %error_chain(&e),
                    "maintenance run failed",
                );
                config.scheduler_interval
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            // A job due "now" may still be a few microseconds away by the
            // database clock; never spin.
            () = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}
