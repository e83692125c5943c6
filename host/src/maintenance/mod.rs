//! Periodic services that keep the queue healthy, one file each:
//!
//! - [`scheduler`]: makes scheduled and retryable jobs available when due;
//! - [`rescuer`]: takes back running jobs whose lease ran out (their worker
//!   died or stalled) and retries, discards or cancels them;
//! - [`cleaner`]: deletes finished jobs older than their retention.
//!
//! Every process that runs workers or the API runs them too. Concurrent
//! runs are safe: each run locks the rows it changes with `SKIP LOCKED` or
//! deletes in bounded batches, so several processes share the work.

pub mod cleaner;
pub mod rescuer;
pub mod scheduler;

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::queue::RetryPolicy;
use crate::telemetry::error_chain;

/// Rows one statement of a maintenance run changes at most.
pub const DEFAULT_BATCH: i64 = 1000;

/// Settings of the maintenance services.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Longest wait between two scheduler runs; a run also happens when
    /// the next job is due.
    pub scheduler_interval: Duration,
    /// How often the rescuer looks for expired leases.
    pub rescuer_interval: Duration,
    /// How often the cleaner runs.
    pub cleaner_interval: Duration,
    /// How long finished jobs are kept.
    pub retention: cleaner::Retention,
    /// Backoff for rescued jobs that are retried.
    pub retry: RetryPolicy,
    pub batch: i64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            scheduler_interval: Duration::from_secs(1),
            rescuer_interval: Duration::from_secs(5),
            cleaner_interval: Duration::from_secs(60),
            retention: cleaner::Retention::default(),
            retry: RetryPolicy::default(),
            batch: DEFAULT_BATCH,
        }
    }
}

/// Runs every service until `shutdown` is cancelled.
pub async fn run(config: MaintenanceConfig, pool: PgPool, shutdown: CancellationToken) {
    tokio::join!(
        scheduler::run(&config, &pool, &shutdown),
        repeat("rescuer", config.rescuer_interval, &shutdown, || async {
            rescuer::run_once(&pool, &config.retry, config.batch)
                .await
                .map(|r| r.log())
        }),
        repeat("cleaner", config.cleaner_interval, &shutdown, || async {
            cleaner::run_once(&pool, &config.retention, config.batch)
                .await
                .map(|r| r.log())
        }),
    );
}

/// Calls `run_once` every `interval`, starting after a random part of it
/// so that processes started together do not run in step.
async fn repeat<F, Fut>(
    name: &str,
    interval: Duration,
    shutdown: &CancellationToken,
    mut run_once: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), crate::queue::Error>>,
{
    let mut wait = interval.mul_f64(rand::random::<f64>());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = run_once().await {
            tracing::warn!(service = name, error = %error_chain(&e), "maintenance run failed");
        }
        wait = interval;
    }
}
