//! Jobs that this process's API hands to its worker, while it waits for
//! work, as they are enqueued.
//!
//! A job enqueued while the worker waits for work would otherwise wait for
//! its insert to commit, a wake-up and a claim statement: a second trip to
//! the database before its guest starts. Instead the API offers the new
//! job to the worker, and the claim loop, while it waits, inserts the job
//! already claimed for itself in one statement
//! ([`queue::job_insert_claimed`]) and starts the attempt.
//!
//! The claim loop takes offers between its claims, never beside them, so
//! a tenant's `max_running` holds for these jobs as for claimed ones, and
//! the statement claims a job only when no other job waits in its queue
//! (otherwise it inserts it `available`, and the loop claims). The attempt
//! starts whether or not the API's caller is still there to hear of it.
//! When the worker cannot take an offer (it is busy or stopping, has no
//! free slot, the statement fails or meets a job with the same id), it
//! declines it with nothing written, and the API inserts the job the
//! usual way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::completer::Sender;
use super::{Shared, start_attempt};
use crate::database;
use crate::queue::{self, Job, NewJob};
use crate::telemetry::error_chain;

/// The API's side: where it offers new jobs.
#[derive(Debug, Clone)]
pub struct Handover {
    offers: mpsc::Sender<Offer>,
    waiting: Arc<AtomicBool>,
    queues: Arc<[String]>,
}

/// The worker's side, where its claim loop takes offers.
pub struct Desk {
    offers: mpsc::Receiver<Offer>,
    waiting: Arc<AtomicBool>,
}

#[derive(Debug)]
pub(super) struct Offer {
    job: NewJob,
    /// Dropped unanswered when the offer is declined.
    written: oneshot::Sender<Job>,
}

/// A hand-over channel for a worker of `queues`.
pub fn channel(queues: &[String]) -> (Handover, Desk) {
    // One offer at a time: another one meanwhile is inserted as usual.
    let (offers, received) = mpsc::channel(1);
    let waiting = Arc::new(AtomicBool::new(false));
    let handover = Handover {
        offers,
        waiting: waiting.clone(),
        queues: queues.into(),
    };
    let desk = Desk {
        offers: received,
        waiting,
    };
    (handover, desk)
}

impl Handover {
    /// Offers `job` to the worker. Returns the job as the worker inserted
    /// it (`running`, or `available` if it could not take it after all),
    /// or `None` when the worker declined and nothing was written.
    ///
    /// Only a job that may run now, of a queue the worker serves, is
    /// offered, and only while the worker waits for work. The job must have
    /// its id ([`queue::new_job_id`]), so that an insert made after a
    /// declined offer cannot write the job twice.
    pub async fn offer(&self, job: &NewJob) -> Option<Job> {
        let runs_now = job.run_at.is_none() && job.delay_secs <= 0.0;
        if job.job_id.is_none()
            || !runs_now
            || !self.waiting.load(Ordering::Acquire)
            || !self.queues.contains(&job.queue)
        {
            return None;
        }
        let (written, answer) = oneshot::channel();
        let offer = Offer {
            job: job.clone(),
            written,
        };
        self.offers.try_send(offer).ok()?;
        answer.await.ok()
    }
}

impl Desk {
    /// Takes offers from now on, until [`Desk::close`].
    pub(super) fn open(&self) {
        self.waiting.store(true, Ordering::Release);
    }

    /// Stops taking offers and declines those not taken. Offers that
    /// arrive after this wait for the next [`Desk::open`] or `close`.
    pub(super) fn close(&mut self) {
        self.waiting.store(false, Ordering::Release);
        while self.offers.try_recv().is_ok() {}
    }

    /// The next offer; pending forever once every [`Handover`] is gone.
    pub(super) async fn next(&mut self) -> Offer {
        match self.offers.recv().await {
            Some(offer) => offer,
            None => std::future::pending().await,
        }
    }
}

/// The connection a worker inserts offered jobs on: its commit is the
/// enqueue's, so it waits for the flush as the API's own inserts do. It
/// waits on no row lock held by another transaction for long (a job of
/// the same id being written): the offer is declined instead.
pub(super) fn handover_pool(pool: &PgPool) -> PgPool {
    let options = pool.connect_options().as_ref().clone().options([
        // The statement's checks make PostgreSQL judge a custom plan
        // cheaper; planning it anew each time costs more than it runs.
        ("plan_cache_mode", "force_generic_plan"),
        ("lock_timeout", "50ms"),
    ]);
    database::pool_options(1).connect_lazy_with(options)
}

/// Inserts the offered job claimed for this worker and starts its attempt.
/// Returns whether it did; when the job was inserted unclaimed, or the
/// offer declined, the claim loop should claim.
pub(super) async fn take(
    shared: &Arc<Shared>,
    offer: Offer,
    attempts: &TaskTracker,
    completions: &Sender,
) -> bool {
    let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
        return false;
    };
    let config = &shared.config;
    let claim = queue::new_claim();
    // The claim's lease starts no sooner than the statement is sent.
    let sent = Instant::now();
    let inserted = queue::job_insert_claimed(
        &shared.handovers,
        &offer.job,
        &config.worker_id,
        claim,
        config.lease,
    )
    .await;
    let (job, claimed) = match inserted {
        Ok(Some(written)) => written,
        Ok(None) => return false,
        Err(e) => {
            tracing::debug!(
                worker_id = %config.worker_id,
                tenant = %offer.job.tenant,
                kind = %offer.job.kind,
                error = %error_chain(&e),
                "declined a job offered at enqueue; it is inserted as usual"
            );
            return false;
        }
    };
    let Some(claimed) = claimed else {
        // The caller may have gone; the job is in the table either way.
        let _ = offer.written.send(job);
        return false;
    };
    tracing::debug!(
        worker_id = %config.worker_id,
        job_id = %claimed.id,
        kind = %claimed.kind,
        tenant = %claimed.tenant,
        attempt = claimed.attempt,
        elapsed_us = sent.elapsed().as_micros() as u64,
        "claimed a job as it was enqueued"
    );
    start_attempt(
        shared,
        claimed,
        sent + config.lease,
        slot,
        attempts,
        completions,
    );
    let _ = offer.written.send(job);
    true
}
