//! The attempts a worker holds, and the heartbeat that keeps their leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::queue;
use crate::runtime::LeaseClock;
use crate::telemetry::error_chain;

/// Why a running attempt is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An operator cancelled the job: record it as cancelled.
    Cancelled,
    /// The worker is shutting down: hand the job back uncharged.
    Shutdown,
    /// The lease was lost (the job was rescued or finished elsewhere):
    /// write nothing, the job is no longer ours.
    LeaseLost,
}

/// A stop signal for one attempt, with its reason.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Stop {
    /// Stops the attempt; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    stop: Stop,
    /// When the lease runs out by this process's clock.
    lease: LeaseClock,
    /// The guest has returned and the outcome is on its way to the
    /// completer; nothing is left to stop.
    ended: bool,
}

/// Attempts between claim and the write of their outcome, by job `seq`
/// and the claim that began them.
///
/// A job usually has one entry. After a crash of the database undid a
/// claim, this worker may claim the same job again, as the same attempt
/// number, while the first attempt still runs: both entries are kept, so
/// that cancellation and shutdown reach both, and the next renewal stops
/// the first, whose claim the table no longer names.
#[derive(Debug, Default)]
pub struct InFlight {
    entries: Mutex<HashMap<(i64, i64), Entry>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, i64), Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an attempt of job `seq`, begun by `claim`, whose lease
    /// runs out at `lease_until`.
    pub fn insert(&self, seq: i64, claim: i64, lease_until: Instant) {
        self.lock().insert(
            (seq, claim),
            Entry {
                stop: Stop::default(),
                lease: LeaseClock::new(lease_until),
                ended: false,
            },
        );
    }

    /// The stop signal and lease clock of an attempt, if it is held.
    pub fn signals(&self, seq: i64, claim: i64) -> Option<(Stop, LeaseClock)> {
        self.lock()
            .get(&(seq, claim))
            .map(|e| (e.stop.clone(), e.lease.clone()))
    }

    /// Moves the local end of an attempt's lease to `until`.
    fn renew(&self, seq: i64, claim: i64, until: Instant) {
        if let Some(entry) = self.lock().get(&(seq, claim)) {
            entry.lease.extend_to(until);
        }
    }

    /// Marks an attempt as ended: its outcome is handed to the completer.
    /// Its lease is renewed until the outcome is written, but it is no
    /// longer stopped.
    pub fn end(&self, seq: i64, claim: i64) {
        if let Some(entry) = self.lock().get_mut(&(seq, claim)) {
            entry.ended = true;
        }
    }

    /// The stop signal of an attempt that is held and has not ended.
    fn running_stop_signal(&self, seq: i64, claim: i64) -> Option<Stop> {
        self.lock()
            .get(&(seq, claim))
            .filter(|e| !e.ended)
            .map(|e| e.stop.clone())
    }

    /// Attempts whose guest has not returned yet.
    pub fn running(&self) -> usize {
        self.lock().values().filter(|e| !e.ended).count()
    }

    /// Forgets an attempt once its outcome is written.
    pub fn remove(&self, seq: i64, claim: i64) {
        self.lock().remove(&(seq, claim));
    }

    /// Stops the attempts of job `seq`, whatever their claim. Returns
    /// whether there were any.
    pub fn stop(&self, seq: i64, reason: StopReason) -> bool {
        let entries = self.lock();
        let mut found = false;
        for entry in entries
            .iter()
            .filter(|((s, _), _)| *s == seq)
            .map(|(_, e)| e)
        {
            entry.stop.stop(reason);
            found = true;
        }
        found
    }

    /// Stops every attempt; returns how many there were.
    pub fn stop_all(&self, reason: StopReason) -> usize {
        let entries = self.lock();
        for entry in entries.values() {
            entry.stop.stop(reason);
        }
        entries.len()
    }

    /// The (job seq, claim) of every attempt held.
    fn snapshot(&self) -> Vec<(i64, i64)> {
        self.lock().keys().copied().collect()
    }
}

/// Renews the leases of held attempts every third of the lease, and when
/// the listener asks for it, until `stop` is cancelled. An attempt whose
/// job was asked to stop is cancelled; one whose lease is gone is stopped
/// without writing. A renewal moves each held attempt's local lease to
/// the instant it was sent plus the lease, which is never later than the
/// database's.
pub async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let period = shared.config.lease / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
            () = shared.renew_now.notified() => {}
        }
        let attempts = shared.inflight.snapshot();
        if attempts.is_empty() {
            continue;
        }

        let sent = Instant::now();
        let held = match queue::job_heartbeat(
            &shared.pool,
            &shared.config.worker_id,
            &attempts,
            shared.config.lease,
        )
        .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(
                    worker_id = %shared.config.worker_id,
                    error = %error_chain(&e),
                    "lease renewal failed; retrying"
                );
                continue;
            }
        };

        let held: HashMap<(i64, i64), bool> = held
            .iter()
            .map(|h| ((h.seq, h.claim), h.cancel_requested))
            .collect();
        for (seq, claim) in attempts {
            // An outcome written since the snapshot also drops the row from
            // the answer. The renewal even waits for such a write, on the
            // row lock, and returns as it commits: before the completer has
            // forgotten the attempt. So only attempts whose guest is still
            // running are stopped; an ended one has nothing left to stop.
            let Some(signal) = shared.inflight.running_stop_signal(seq, claim) else {
                continue;
            };
            match held.get(&(seq, claim)) {
                // A cancelled attempt still holds its lease until it has
                // stopped and written that it was cancelled (it may be
                // compiling, and see the request only after that).
                Some(&cancel_requested) => {
                    shared
                        .inflight
                        .renew(seq, claim, sent + shared.config.lease);
                    if cancel_requested {
                        signal.stop(StopReason::Cancelled);
                    }
                }
                None => {
                    tracing::warn!(
                        worker_id = %shared.config.worker_id,
                        seq,
                        claim,
                        "lease lost; stopping the attempt"
                    );
                    signal.stop(StopReason::LeaseLost);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ended_attempts_are_held_but_not_stopped() {
        let inflight = InFlight::default();
        inflight.insert(7, 1, Instant::now());
        assert!(inflight.running_stop_signal(7, 1).is_some());
        assert!(inflight.running_stop_signal(7, 2).is_none());

        inflight.end(7, 1);

        assert!(inflight.running_stop_signal(7, 1).is_none());
        assert!(inflight.signals(7, 1).is_some());
        assert_eq!(inflight.snapshot(), [(7, 1)]);
        inflight.remove(7, 1);
        assert!(inflight.snapshot().is_empty());
    }

    #[test]
    fn a_job_claimed_twice_keeps_both_attempts_within_reach() {
        let inflight = InFlight::default();
        inflight.insert(7, 1, Instant::now());
        inflight.insert(7, 2, Instant::now());
        inflight.insert(8, 3, Instant::now());
        let (first, _) = inflight.signals(7, 1).unwrap();
        let (second, _) = inflight.signals(7, 2).unwrap();
        let (other, _) = inflight.signals(8, 3).unwrap();

        assert!(inflight.stop(7, StopReason::Cancelled));
        assert_eq!(first.reason(), Some(StopReason::Cancelled));
        assert_eq!(second.reason(), Some(StopReason::Cancelled));
        assert_eq!(other.reason(), None);

        let mut held = inflight.snapshot();
        held.sort_unstable();
        assert_eq!(held, [(7, 1), (7, 2), (8, 3)]);
        inflight.remove(7, 1);
        assert!(inflight.signals(7, 1).is_none());
        assert!(inflight.signals(7, 2).is_some());
        assert!(!inflight.stop(9, StopReason::Cancelled));
    }

    #[test]
    fn renewals_move_the_local_lease_of_the_same_claim_only() {
        let inflight = InFlight::default();
        let start = Instant::now();
        inflight.insert(7, 2, start);
        let (_, lease) = inflight.signals(7, 2).unwrap();

        inflight.renew(7, 1, start + Duration::from_secs(5));
        assert_eq!(lease.until(), start);
        inflight.renew(7, 2, start + Duration::from_secs(5));
        assert_eq!(lease.until(), start + Duration::from_secs(5));
    }
}
