//! Writes attempt outcomes in batches.
//!
//! Attempts hand their outcome over a channel; the completer writes
//! whatever has queued up in one statement, so that batches grow with the
//! load. While other attempts still run, a batch waits up to [`LINGER`]
//! for their outcomes to join it; a lone outcome is written at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use crate::queue::{self, AttemptError, Finish, JobState, RetryPolicy};
use crate::runtime::clean_message;
use crate::telemetry::error_chain;

/// Outcomes written per statement at most.
const MAX_BATCH: usize = 500;
/// Outcomes waiting to be written before attempts wait to hand theirs over.
const QUEUE_CAPACITY: usize = 4096;
/// How long a batch waits for the outcomes of attempts still running.
const LINGER: Duration = Duration::from_millis(2);

/// What to record for an attempt.
#[derive(Debug)]
pub enum Completion {
    /// Record the attempt's end.
    Finish(Finish),
    /// Hand the job back uncharged, to run again after `delay`.
    Release {
        seq: i64,
        claim: i64,
        delay: Duration,
    },
    /// Write nothing: the job is no longer this attempt's.
    Forget { seq: i64, claim: i64 },
}

impl Completion {
    /// The job and the claim that began the attempt.
    fn key(&self) -> (i64, i64) {
        match self {
            Self::Finish(f) => (f.seq, f.claim),
            Self::Release { seq, claim, .. } | Self::Forget { seq, claim } => (*seq, *claim),
        }
    }
}

pub type Sender = mpsc::Sender<Completion>;

/// Starts the completer. It stops once every sender is dropped and what
/// they sent is written.
pub fn spawn(shared: Arc<Shared>) -> (Sender, JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel(QUEUE_CAPACITY);
    let task = tokio::spawn(async move {
        loop {
            let mut batch: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                break;
            }
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH && shared.inflight.running() > 0 {
                let room = MAX_BATCH - batch.len();
                let more = receiver.recv_many(&mut batch, room);
                if !matches!(tokio::time::timeout_at(deadline, more).await, Ok(1..)) {
                    break;
                }
            }
            write_batch(&shared, batch).await;
        }
    });
    (sender, task)
}

/// Writes one batch, then lets go of its attempts and wakes the claim
/// loop: jobs held back by their tenant's limit may now run.
async fn write_batch(shared: &Shared, batch: Vec<Completion>) {
    write(shared, &batch).await;
    for completion in &batch {
        let (seq, claim) = completion.key();
        shared.inflight.remove(seq, claim);
    }
    shared.wake.notify_one();
}

async fn write(shared: &Shared, batch: &[Completion]) {
    let finishes: Vec<Finish> = batch
        .iter()
        .filter_map(|c| match c {
            Completion::Finish(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    if !finishes.is_empty() {
        finish_all(shared, &finishes).await;
    }

    for completion in batch {
        if let Completion::Release { seq, claim, delay } = completion {
            let release =
                || queue::job_release(&shared.pool, &shared.config.worker_id, *seq, *claim, *delay);
            if let Err(e) = retrying(shared, "hand job back", release).await {
                tracing::warn!(
                    seq,
                    claim,
                    error = %error_chain(&e),
                    "could not hand job back; it will be rescued",
                );
            }
        }
    }
}

/// Writes `finishes` in one statement. If the database refuses the data
/// (a row it cannot store), writes them one by one, and records a row that
/// still fails as discarded with the reason.
async fn finish_all(shared: &Shared, finishes: &[Finish]) {
    let started = Instant::now();
    match retrying(shared, "record outcomes", || record(shared, finishes)).await {
        Ok(written) => {
            tracing::debug!(
                count = finishes.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "recorded outcomes"
            );
            if written.len() < finishes.len() {
                log_unwritten(shared, finishes, &written);
            }
            return;
        }
        Err(e) if !is_data_error(&e) => {
            tracing::warn!(
                count = finishes.len(),
                error = %error_chain(&e),
                "could not record outcomes; their jobs will be rescued"
            );
            return;
        }
        Err(_) => {}
    }

    for finish in finishes {
        let Err(e) = record(shared, std::slice::from_ref(finish)).await else {
            continue;
        };
        let error = AttemptError::now(
            finish.attempt,
            clean_message(&format!(
                "could not store the attempt's outcome: {}",
                error_chain(&e)
            )),
            Vec::new(),
        );
        let discard = Finish::failed(
            finish.seq,
            finish.claim,
            finish.attempt,
            queue::FailAction::Discard,
            &error,
            &RetryPolicy::default(),
        );
        if let Err(e) = record(shared, &[discard]).await {
            tracing::error!(
                seq = finish.seq,
                error = %error_chain(&e),
                "could not record a discarded outcome",
            );
        }
    }
}

/// Says which outcomes the database refused: their attempts no longer
/// held their jobs (rescued, or a crash undid their claim and the job was
/// claimed again), so what they logged as their outcome was not recorded.
fn log_unwritten(shared: &Shared, finishes: &[Finish], written: &[(i64, JobState)]) {
    let written: HashSet<i64> = written.iter().map(|(seq, _)| *seq).collect();
    let mut claims: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for finish in finishes {
        claims.entry(finish.seq).or_default().push(finish.claim);
    }
    for (seq, claims) in claims {
        if !written.contains(&seq) {
            tracing::warn!(
                worker_id = %shared.config.worker_id,
                seq,
                claims = ?claims,
                "outcome not recorded: the attempt no longer holds its job"
            );
        } else if claims.len() > 1 {
            tracing::warn!(
                worker_id = %shared.config.worker_id,
                seq,
                claims = ?claims,
                "attempts of one job ended together; only the one whose claim the job \
                 still names was recorded"
            );
        }
    }
}

/// Writes the ends of this worker's attempts.
async fn record(shared: &Shared, finishes: &[Finish]) -> queue::Result<Vec<(i64, JobState)>> {
    queue::job_finish_many(&shared.pool, Some(&shared.config.worker_id), finishes).await
}

/// Runs `op` until it succeeds, fails on its data, or a lease period has
/// passed (after which the jobs are rescued and the write would change
/// nothing).
async fn retrying<T, F, Fut>(shared: &Shared, what: &str, mut op: F) -> Result<T, queue::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, queue::Error>>,
{
    let started = Instant::now();
    let backoff = RetryPolicy {
        base: Duration::from_millis(50),
        cap: Duration::from_secs(2),
    };
    let mut failures = 0;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if is_data_error(&e) || started.elapsed() > shared.config.lease => {
                return Err(e);
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %error_chain(&e), failures, "{what} failed; retrying");
                tokio::time::sleep(backoff.delay(failures)).await;
            }
        }
    }
}

/// Whether the database refused the statement for its data (SQLSTATE
/// classes 22, data exception, and 23, integrity constraint violation),
/// which retrying cannot fix.
fn is_data_error(error: &queue::Error) -> bool {
    match error {
        queue::Error::Database(sqlx::Error::Database(e)) => e
            .code()
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
        queue::Error::InvalidOutcome { .. } => true,
        _ => false,
    }
}
