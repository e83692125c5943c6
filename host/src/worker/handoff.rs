//! Jobs handed to this process's worker by its API as they are enqueued.
//!
//! An idle worker has nothing to claim, so a job enqueued through the API
//! of its process would wait for a wake-up and a claim statement: a trip
//! to the database and back before the guest starts. Instead, the API
//! reserves a slot of the idle worker and inserts the job already claimed
//! for it ([`queue::ClaimOnInsert`]); the worker starts the attempt as soon
//! as the insert commits.
//!
//! Only an idle worker takes jobs this way: with every slot free, it has
//! found no job waiting in its queues, so the new job jumps no queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::completer::Sender;
use super::{Shared, attempt};
use crate::queue::{self, ClaimOnInsert, Claimed};
use crate::telemetry::error_chain;

/// This process's worker, as its API sees it.
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<Shared>,
    pub(super) handed: mpsc::UnboundedSender<Handed>,
}

/// A job claimed at insert, on its way to the worker with its slot.
pub(super) struct Handed {
    job: Claimed,
    slot: OwnedSemaphorePermit,
}

impl Handle {
    /// Says that jobs may have become available.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// A slot of the worker for a job of `queue` about to be inserted, if
    /// the worker serves that queue, is running and is idle.
    pub fn reserve(&self, queue: &str) -> Option<Reservation> {
        let shared = &self.shared;
        let idle = shared.slots.available_permits() == shared.config.concurrency;
        if !idle || self.handed.is_closed() || !shared.config.queues.iter().any(|q| q == queue) {
            return None;
        }
        let slot = shared.slots.clone().try_acquire_owned().ok()?;
        Some(Reservation {
            handle: self.clone(),
            slot,
            claim: queue::new_claim(),
            sent: Instant::now(),
        })
    }
}

/// A slot held for a job that the insert may claim; dropping it frees the
/// slot.
pub struct Reservation {
    handle: Handle,
    slot: OwnedSemaphorePermit,
    claim: i64,
    /// The claim's lease starts no sooner than this.
    sent: Instant,
}

impl Reservation {
    /// What the insert needs to claim the job for the worker.
    pub fn claim_on_insert(&self) -> ClaimOnInsert<'_> {
        let config = &self.handle.shared.config;
        ClaimOnInsert {
            worker_id: &config.worker_id,
            claim: self.claim,
            lease: config.lease,
        }
    }

    /// Starts the attempt that the insert claimed.
    pub fn start(self, job: Claimed) {
        let Self {
            handle, slot, sent, ..
        } = self;
        let shared = &handle.shared;
        let (seq, claim) = (job.seq, job.claim);
        // Registered before the attempt starts, so that renewals and
        // cancel requests reach it from now on.
        shared
            .inflight
            .insert(seq, claim, sent + shared.config.lease);
        tracing::debug!(
            worker_id = %shared.config.worker_id,
            job_id = %job.id,
            kind = %job.kind,
            tenant = %job.tenant,
            attempt = job.attempt,
            "job claimed as it was enqueued"
        );
        if handle.handed.send(Handed { job, slot }).is_err() {
            // The worker stopped between the reservation and the insert.
            shared.inflight.end(seq, claim);
            let shared = shared.clone();
            tokio::spawn(async move {
                let config = &shared.config;
                let released =
                    queue::job_release(&shared.pool, &config.worker_id, seq, claim, Duration::ZERO)
                        .await;
                if let Err(e) = released {
                    tracing::warn!(
                        worker_id = %config.worker_id,
                        seq,
                        error = %error_chain(&e),
                        "could not hand back a job enqueued as the worker stopped; \
                         it runs again once its lease passes"
                    );
                }
            });
        }
    }
}

/// Starts the attempts of jobs handed over until `shutdown`, then those
/// handed over before the channel closed: they are claimed, and run (or are
/// handed back) under the drain like any other.
pub(super) async fn accept(
    shared: &Arc<Shared>,
    mut handed: mpsc::UnboundedReceiver<Handed>,
    attempts: &TaskTracker,
    completions: &Sender,
    shutdown: &CancellationToken,
) {
    let start = |Handed { job, slot }| {
        attempts.spawn(attempt::run(shared.clone(), job, completions.clone(), slot));
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            next = handed.recv() => match next {
                Some(next) => start(next),
                None => return,
            },
        }
    }
    handed.close();
    while let Some(next) = handed.recv().await {
        start(next);
    }
}
