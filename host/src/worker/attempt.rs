//! One attempt: load the component, run it, decide what to record.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::completer::{Completion, Sender};
use super::inflight::{Stop, StopReason};
use super::{HOST_FAULT_DELAY, Shared};
use crate::queue::{AttemptError, Claimed, FailAction, Finish, JobState};
use crate::runtime::{self, Attempt, Blame, LeaseClock, Limits, Outcome};

/// Runs `job`'s attempt in `slot` and hands its outcome to the completer.
/// The slot is freed once the outcome is handed over: it counts guests at
/// work, not outcomes waiting to be written. While the completer's queue
/// is full, the handover waits and keeps the slot, so a worker that cannot
/// write claims no more.
pub async fn run(
    shared: Arc<Shared>,
    job: Claimed,
    completions: Sender,
    slot: OwnedSemaphorePermit,
) {
    let span = tracing::info_span!(
        "attempt",
        job_id = %job.id,
        kind = %job.kind,
        tenant = %job.tenant,
        queue = %job.queue,
        attempt = job.attempt,
        max_attempts = job.max_attempts,
    );
    async move {
        let (stop, lease) = shared
            .inflight
            .signals(job.seq, job.claim)
            .expect("the claim registered the attempt");
        // Polled first, the lease is checked before the guest runs on,
        // also right after the process wakes from a pause.
        let outcome = tokio::select! {
            biased;
            () = lease.expiry() => None,
            outcome = execute(&shared, &job, &stop, &lease) => Some(outcome),
        };

        let completion = match outcome {
            Some(outcome) if !lease.expired() => decide(&shared, &job, outcome, stop.reason()),
            _ => {
                stop.stop(StopReason::LeaseLost);
                lease_lost(
                    &job,
                    "attempt stopped: its lease ran out before it was renewed",
                )
            }
        };
        shared.inflight.end(job.seq, job.claim);
        if completions.send(completion).await.is_err() {
            tracing::error!("completer is gone; the outcome is lost and the job will be rescued");
        }
        shared.free_slot(slot);
    }
    .instrument(span)
    .await
}

async fn execute(shared: &Shared, job: &Claimed, stop: &Stop, lease: &LeaseClock) -> Outcome {
    let Some(digest) = &job.digest else {
        return Outcome::Failed {
            action: FailAction::Discard,
            message: format!("kind {:?} has no deployed module", job.kind),
            blame: Blame::Host,
            log: Vec::new(),
            elapsed: Duration::ZERO,
        };
    };
    let prepared = match shared.prepare(digest).await {
        Ok(prepared) => prepared,
        Err(e) => return Outcome::host_fault(format!("load module {digest}: {e}")),
    };

    let limits = Limits {
        timeout: job.timeout_ms.map_or(runtime::DEFAULT_TIMEOUT, |ms| {
            Duration::from_millis(ms.unsigned_abs().into())
        }),
        memory_bytes: job
            .memory_limit_bytes
            .map_or(runtime::DEFAULT_MEMORY_LIMIT_BYTES, |b| b.unsigned_abs()),
        allowed_hosts: job.allowed_hosts.clone().unwrap_or_default(),
    };
    let attempt = Attempt {
        seq: job.seq,
        claim: job.claim,
        worker_id: &shared.config.worker_id,
        id: &job.id,
        kind: &job.kind,
        queue: &job.queue,
        tenant: &job.tenant,
        attempt: job.attempt.unsigned_abs(),
        max_attempts: job.max_attempts.unsigned_abs(),
        params: &job.params,
        limits,
        lease: shared.config.lease,
        lease_clock: lease.clone(),
    };
    shared.runtime.run(&prepared, attempt, stop.token()).await
}

/// An attempt that may no longer hold its job writes nothing.
fn lease_lost(job: &Claimed, message: &str) -> Completion {
    tracing::warn!(outcome = "lease_lost", "{message}");
    Completion::Forget {
        seq: job.seq,
        claim: job.claim,
    }
}

/// Turns an outcome into what the completer writes, and logs it.
fn decide(
    shared: &Shared,
    job: &Claimed,
    outcome: Outcome,
    stopped: Option<StopReason>,
) -> Completion {
    let (seq, claim) = (job.seq, job.claim);
    match (outcome, stopped) {
        (_, Some(StopReason::LeaseLost)) => {
            lease_lost(job, "attempt stopped: its job is no longer ours")
        }
        (
            Outcome::Failed {
                action: FailAction::Cancel,
                ..
            },
            Some(StopReason::Shutdown),
        ) => {
            tracing::info!(
                outcome = "handed_back",
                "attempt interrupted by shutdown; job handed back"
            );
            Completion::Release {
                seq,
                claim,
                delay: Duration::ZERO,
            }
        }
        (
            Outcome::Completed {
                result, elapsed, ..
            },
            _,
        ) => {
            tracing::info!(
                outcome = "completed",
                elapsed_ms = elapsed.as_millis() as u64,
                "attempt completed"
            );
            Completion::Finish(Finish::completed(seq, claim, job.attempt, result))
        }
        (
            Outcome::Failed {
                action: FailAction::Retry,
                message,
                blame: Blame::Host,
                ..
            },
            _,
        ) => {
            tracing::error!(
                outcome = "host_fault",
                blame = Blame::Host.as_str(),
                error = %message,
                "attempt could not run; job handed back"
            );
            Completion::Release {
                seq,
                claim,
                delay: HOST_FAULT_DELAY,
            }
        }
        (
            Outcome::Failed {
                action,
                message,
                log,
                elapsed,
                blame,
            },
            _,
        ) => {
            let on_request = stopped == Some(StopReason::Cancelled) && action == FailAction::Cancel;
            let error = AttemptError::now(job.attempt, message, log);
            let finish = Finish::failed(
                seq,
                claim,
                job.max_attempts,
                action,
                &error,
                &shared.config.retry,
            );
            if on_request {
                // Stopped on request: nobody's fault.
                tracing::info!(
                    outcome = %finish.state,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "attempt cancelled on request"
                );
            } else {
                tracing::info!(
                    outcome = %finish.state,
                    blame = blame.as_str(),
                    error = %error.error,
                    elapsed_ms = elapsed.as_millis() as u64,
                    retry_in_secs = (finish.state == JobState::Retryable)
                        .then_some(finish.retry_in_secs),
                    "attempt failed"
                );
            }
            Completion::Finish(finish)
        }
    }
}
