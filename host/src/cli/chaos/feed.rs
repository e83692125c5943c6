//! What `spool chaos` feeds the workers: the planned jobs, the latency
//! probes, and cancel and retry requests racing them.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::check::Expect;
use super::{Chaos, KIND, MAX_ATTEMPTS, PROBE_INTERVAL};
use crate::api::types::EnqueueRequest;

impl Chaos<'_> {
    /// Enqueues the planned jobs evenly over the first 80% of the run.
    pub(super) async fn feed(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let span = self.options.duration.mul_f64(0.8);
        let started = Instant::now();
        for n in 0..self.options.jobs {
            if stop.is_cancelled() {
                break;
            }
            let due = span.mul_f64(n as f64 / self.options.jobs as f64);
            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
            let id = format!("job-{n:06}");
            let (params, expect) = self.plan(n);
            self.enqueue(&id, params, 5, expect).await?;
            self.record().enqueued.push(id);
        }
        Ok(())
    }

    /// Job `n`'s params: mostly quick, some slow, some failing.
    fn plan(&self, n: usize) -> (Value, Expect) {
        let ledger = self.ledger.url();
        let lease_ms = self.options.lease.as_millis() as u64;
        match n % 20 {
            0..=11 => (
                json!({"ledger": ledger, "sleep_ms": (n * 7) % 50}),
                Expect::Complete,
            ),
            12..=14 => (
                json!({"ledger": ledger, "sleep_ms": 200 + (n * 37) % 800}),
                Expect::Complete,
            ),
            15 | 16 => {
                let failures = 1 + (n / 20 % 2) as u32;
                let attempts: Vec<u32> = (1..=failures).collect();
                (
                    json!({"ledger": ledger, "sleep_ms": 20, "fail_attempts": attempts}),
                    Expect::Complete,
                )
            }
            17 => (
                json!({"ledger": ledger, "sleep_ms": 20,
                       "fail_attempts": (1..=MAX_ATTEMPTS).collect::<Vec<_>>(),
                       "fail": "discard"}),
                Expect::Discard,
            ),
            _ => (
                json!({"ledger": ledger, "sleep_ms": lease_ms * 3 / 2}),
                Expect::Complete,
            ),
        }
    }

    /// Enqueues one job, retrying while the API or the database is down
    /// (the `job_id` makes a repeat harmless). Returns when the request
    /// that was taken was sent.
    pub(super) async fn enqueue(
        &self,
        id: &str,
        params: Value,
        priority: i64,
        expect: Expect,
    ) -> anyhow::Result<DateTime<Utc>> {
        let request = EnqueueRequest {
            kind: KIND.into(),
            params,
            job_id: Some(id.into()),
            priority: Some(priority),
            ..EnqueueRequest::default()
        };
        self.record().expected.insert(id.to_string(), expect);
        let mut failures = 0;
        loop {
            let sent = Utc::now();
            match self.client.job_enqueue(&request).await {
                Ok(_) => return Ok(sent),
                Err(crate::client::Error::Api { status, body }) if status < 500 => {
                    bail!("enqueue {id}: {} ({status})", body.message)
                }
                Err(e) => {
                    failures += 1;
                    if failures > 300 {
                        return Err(e).with_context(|| format!("enqueue {id}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Enqueues a quick job at the top priority every [`PROBE_INTERVAL`]:
    /// its latency shows how the queue responds.
    pub(super) async fn probe(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut n = 0;
        while !stop.is_cancelled() {
            let id = format!("latency-{n:05}");
            n += 1;
            let params = json!({"ledger": self.ledger.url()});
            let at = self.enqueue(&id, params, 0, Expect::Complete).await?;
            self.record().probes.push((id, at));
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        Ok(())
    }

    /// Sends cancel and retry requests for random jobs already enqueued,
    /// about one for every 40 jobs fed.
    pub(super) async fn race(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let interval = self
            .options
            .duration
            .mul_f64(40.0 / self.options.jobs.max(40) as f64);
        while !stop.is_cancelled() {
            tokio::time::sleep(interval).await;
            let (id, cancel) = {
                let record = self.record();
                if record.enqueued.is_empty() {
                    continue;
                }
                let mut rng = rand::rng();
                let id = record.enqueued[rng.random_range(0..record.enqueued.len())].clone();
                (id, rng.random_bool(0.6))
            };
            {
                let mut record = self.record();
                record.raced.insert(id.clone());
                if !cancel {
                    record.retried.insert(id.clone());
                }
            }
            // Refusals (a finished job cannot be cancelled, a running one
            // not retried) and outages are part of the race.
            let _ = if cancel {
                self.client.job_cancel(&id).await
            } else {
                self.client.job_retry(&id).await
            };
        }
        Ok(())
    }
}
