//! `spool chaos --scale-out 1,2,4`: throughput against the number of
//! worker processes, with no faults. For each count the harness starts
//! that many workers, enqueues the same jobs in one batch and measures
//! from the first attempt's start to the last completion, as the database
//! recorded them.
//!
//! Two kinds of job: ones that wait (`sleep_ms`, like a job calling a
//! slow service), whose throughput is bounded by the attempt slots and so
//! grows with every worker; and instant ones, bounded by the CPU that the
//! workers and PostgreSQL share, which show where the machine saturates.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;

use super::check::{Check, Expect, Verdict};
use super::{Chaos, ChaosReport, KIND};
use crate::api::types::EnqueueRequest;

/// How long a waiting job sleeps.
const WAIT_MS: u64 = 50;
/// Jobs per batch request.
const BATCH: usize = 5_000;
/// How long one step may take before the harness gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// One measured step.
struct Step {
    workers: usize,
    sleep_ms: u64,
    jobs: usize,
    seconds: f64,
    /// Whether every job completed, each in exactly one run.
    clean: bool,
}

impl Step {
    fn rate(&self) -> f64 {
        self.jobs as f64 / self.seconds.max(f64::EPSILON)
    }
}

impl Chaos<'_> {
    /// Measures each worker count in `counts` on waiting, then instant,
    /// jobs.
    pub(super) async fn scale_out(&self, counts: &[usize]) -> anyhow::Result<ChaosReport> {
        let mut steps = Vec::new();
        for sleep_ms in [WAIT_MS, 0] {
            for &workers in counts {
                let step = self.scale_step(steps.len(), workers, sleep_ms).await?;
                self.progress.step(format!(
                    "{}, {sleep_ms} ms jobs: {:.0} jobs/s",
                    worker_count(step.workers),
                    step.rate()
                ));
                steps.push(step);
            }
        }
        Ok(scale_report(self.options, counts, &steps))
    }

    /// Starts `workers` workers, feeds them the step's jobs, waits until
    /// they are done and stops the workers.
    async fn scale_step(
        &self,
        number: usize,
        workers: usize,
        sleep_ms: u64,
    ) -> anyhow::Result<Step> {
        for _ in 0..workers {
            self.start_worker().await?;
        }
        let prefix = format!("scale-{number}-");
        let jobs: Vec<EnqueueRequest> = (0..self.options.jobs)
            .map(|n| EnqueueRequest {
                kind: KIND.into(),
                params: json!({"ledger": self.ledger.url(), "sleep_ms": sleep_ms}),
                job_id: Some(format!("{prefix}{n:06}")),
                ..EnqueueRequest::default()
            })
            .collect();
        self.record().expected.extend(
            jobs.iter()
                .filter_map(|job| job.job_id.clone())
                .map(|id| (id, Expect::Complete)),
        );
        for batch in jobs.chunks(BATCH) {
            self.client
                .job_enqueue_batch(batch)
                .await
                .context("enqueue a scale-out step")?;
        }
        let quiescent = self.settle(STEP_TIMEOUT).await?;
        ensure!(
            quiescent,
            "{workers} workers did not finish {} jobs within {STEP_TIMEOUT:?}",
            jobs.len(),
        );
        self.stop_workers().await;

        let span = sqlx::query!(
            r#"
            select count(*) filter (where state = 'completed') as "completed!",
                   extract(epoch from max(finalized_at) - min(attempted_at))::float8 as "seconds!"
            from spool.jobs
            where starts_with(id, $1)
            "#,
            prefix
        )
        .fetch_one(&self.pool)
        .await
        .context("read a scale-out step's span")?;
        let mut runs: HashMap<&str, u32> = HashMap::new();
        let ledger = self.ledger.entries();
        for entry in ledger.iter().filter(|e| e.outcome.is_none()) {
            if entry.job.starts_with(&prefix) {
                *runs.entry(entry.job.as_str()).or_default() += 1;
            }
        }
        let clean = span.completed as usize == jobs.len()
            && runs.len() == jobs.len()
            && runs.values().all(|&n| n == 1);
        Ok(Step {
            workers,
            sleep_ms,
            jobs: jobs.len(),
            seconds: span.seconds,
            clean,
        })
    }
}

fn scale_report(options: &super::ChaosOptions, counts: &[usize], steps: &[Step]) -> ChaosReport {
    let unclean: Vec<String> = steps
        .iter()
        .filter(|s| !s.clean)
        .map(|s| format!("{} workers, {} ms jobs", s.workers, s.sleep_ms))
        .collect();
    let checks = vec![Check {
        name: "every job completed, in exactly one run",
        ok: unclean.is_empty(),
        detail: if unclean.is_empty() {
            format!("{} steps of {} jobs", steps.len(), options.jobs)
        } else {
            format!("not in: {}", unclean.join(", "))
        },
    }];
    let figures = steps
        .iter()
        .map(|step| {
            let alone = steps
                .iter()
                .find(|s| s.sleep_ms == step.sleep_ms && s.workers == counts[0])
                .map_or(1.0, Step::rate);
            let slots = step.workers * options.concurrency;
            (
                format!(
                    "{} ({slots} slots), {} ms jobs",
                    worker_count(step.workers),
                    step.sleep_ms
                ),
                format!(
                    "{:.0} jobs/s ({:.2}x {})",
                    step.rate(),
                    step.rate() / alone,
                    worker_count(counts[0])
                ),
            )
        })
        .collect();
    let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
    ChaosReport {
        options_line: format!(
            "`spool chaos --scale-out {} --jobs {} --concurrency {}`: no faults; each step \
             enqueues its jobs in one go to idle workers and times the first start to the \
             last completion",
            counts.join(","),
            options.jobs,
            options.concurrency
        ),
        verdict: Verdict { checks, figures },
        faults: Vec::new(),
    }
}

fn worker_count(n: usize) -> String {
    match n {
        1 => "1 worker".into(),
        n => format!("{n} workers"),
    }
}
