//! `spool:job/jobs`: follow-up jobs and progress.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::bindings::spool::job::jobs::{EnqueueError, EnqueueOptions, Enqueued, Host};
use super::{HostFault, State};
use crate::queue::{self, NewJob, rules};
use crate::telemetry::error_chain;

/// Follow-up jobs one attempt may enqueue.
const MAX_ENQUEUES: u32 = 100;
/// Shortest gap between two progress writes of one attempt; reports in
/// between are dropped.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest progress message kept, in characters.
const MAX_PROGRESS_CHARS: usize = 256;

/// Progress and follow-up bookkeeping of one attempt.
#[derive(Debug, Default)]
pub struct JobCalls {
    enqueued: u32,
    last_progress: Option<Instant>,
}

fn fault(what: &str, error: &queue::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostFault(format!("{what}: {}", error_chain(error))))
}

impl State {
    fn follow_up(
        &self,
        kind: String,
        params: &str,
        options: EnqueueOptions,
    ) -> Result<NewJob, EnqueueError> {
        let invalid = |e: rules::Invalid| EnqueueError::Invalid(e.message);
        rules::check_kind("kind", &kind).map_err(invalid)?;
        let params: Value = serde_json::from_str(params)
            .map_err(|e| EnqueueError::Invalid(format!("params: not JSON: {e}")))?;
        rules::check_params("params", &params).map_err(invalid)?;
        if let Some(id) = &options.job_id {
            rules::check_job_id("job_id", id).map_err(invalid)?;
        }
        let queue = options.queue.unwrap_or_else(|| self.job.queue.clone());
        rules::check_queue("queue", &queue).map_err(invalid)?;
        let priority = rules::check_priority("priority", options.priority.unwrap_or(0).into())
            .map_err(invalid)?;
        let max_attempts = options
            .max_attempts
            .map(|n| rules::check_max_attempts("max_attempts", n.into()))
            .transpose()
            .map_err(invalid)?;
        let delay_secs =
            rules::check_delay_secs("delay_seconds", options.delay_seconds.unwrap_or(0).into())
                .map_err(invalid)?;

        Ok(NewJob {
            tenant: self.job.tenant.clone(),
            kind,
            params,
            job_id: options.job_id,
            run_at: None,
            delay_secs,
            queue,
            priority,
            max_attempts,
        })
    }
}

impl Host for State {
    async fn enqueue(
        &mut self,
        kind: String,
        params: String,
        options: EnqueueOptions,
    ) -> wasmtime::Result<Result<Enqueued, EnqueueError>> {
        self.check_lease("enqueue")?;
        if self.job_calls.enqueued >= MAX_ENQUEUES {
            return Ok(Err(EnqueueError::LimitReached(format!(
                "an attempt may enqueue at most {MAX_ENQUEUES} jobs"
            ))));
        }
        let new = match self.follow_up(kind, &params, options) {
            Ok(new) => new,
            Err(e) => return Ok(Err(e)),
        };

        let mut conn = self
            .job
            .pool
            .acquire()
            .await
            .map_err(|e| fault("enqueue", &e.into()))?;
        match queue::job_insert(&mut conn, &new).await {
            Ok(inserted) => {
                self.job_calls.enqueued += 1;
                tracing::debug!(
                    follow_up = %inserted.job.id,
                    created = inserted.created,
                    "enqueued a follow-up job",
                );
                Ok(Ok(Enqueued {
                    id: inserted.job.id,
                    created: inserted.created,
                }))
            }
            Err(queue::Error::UnknownKind { kind }) => Ok(Err(EnqueueError::UnknownKind(format!(
                "kind: {kind:?} has no deployed module"
            )))),
            Err(e) => Err(fault("enqueue", &e)),
        }
    }

    async fn progress(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        self.check_lease("progress")?;
        let now = Instant::now();
        if self
            .job_calls
            .last_progress
            .is_some_and(|last| now - last < PROGRESS_INTERVAL)
        {
            return Ok(());
        }
        self.job_calls.last_progress = Some(now);

        let message: String = message
            .chars()
            .take(MAX_PROGRESS_CHARS)
            .map(|c| if c == '\0' { '\u{fffd}' } else { c })
            .collect();
        let percent = i16::from(percent.min(100));
        let held = queue::job_progress(
            &self.job.pool,
            &self.job.worker_id,
            self.job.seq,
            self.job.claim,
            percent,
            &message,
            self.job.lease,
        )
        .await
        .map_err(|e| fault("record progress", &e))?;
        if held {
            // The renewal was sent at `now`: the database's lease ends no
            // sooner than `now + lease`.
            self.job.lease_clock.extend_to(now + self.job.lease);
        }
        Ok(())
    }
}
