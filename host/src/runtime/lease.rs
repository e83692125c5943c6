//! An attempt's lease by this process's monotonic clock.
//!
//! The database decides who holds a job, but a worker that was paused (a
//! stopped process, a frozen VM) learns that it lost a job only when it
//! next reaches the database, and by then its guest may have run on for a
//! long time beside the attempt that replaced it. So every attempt also
//! knows the instant its lease runs out locally: the time a claim or a
//! renewal was *sent*, plus the lease. That instant is never later than
//! the database's own `leased_until`, so once it has passed the job may
//! already be someone else's: the guest is dropped, its host calls that
//! write are refused, and its outcome is not recorded.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Instant;

/// The local end of one attempt's lease; clones share it.
#[derive(Debug, Clone)]
pub struct LeaseClock(Arc<Mutex<Instant>>);

impl LeaseClock {
    /// A lease that runs out at `until`.
    pub fn new(until: Instant) -> Self {
        Self(Arc::new(Mutex::new(until)))
    }

    /// Moves the end of the lease to `until`, if that is later.
    pub fn extend_to(&self, until: Instant) {
        let mut current = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *current = (*current).max(until);
    }

    /// When the lease runs out.
    pub fn until(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.until()
    }

    /// Resolves once the lease has run out. Every poll reads the clock
    /// first, so a process that wakes after a pause sees the expiry on its
    /// first poll, before any timer has fired.
    pub fn expiry(&self) -> impl Future<Output = ()> + '_ {
        let mut sleep = Box::pin(tokio::time::sleep_until(self.until().into()));
        std::future::poll_fn(move |cx| {
            loop {
                let until = self.until();
                if Instant::now() >= until {
                    return Poll::Ready(());
                }
                if sleep.deadline() != until.into() {
                    sleep.as_mut().reset(until.into());
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn expiry_follows_extensions() {
        let start = Instant::now();
        let clock = LeaseClock::new(start + Duration::from_millis(50));
        clock.extend_to(start + Duration::from_millis(150));
        clock.extend_to(start + Duration::from_millis(100));
        assert_eq!(clock.until(), start + Duration::from_millis(150));
        assert!(!clock.expired());

        clock.expiry().await;
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(clock.expired());
    }

    #[tokio::test]
    async fn a_passed_lease_is_seen_on_the_first_poll() {
        let clock = LeaseClock::new(Instant::now() - Duration::from_millis(1));
        let polled = futures::poll!(pin!(clock.expiry()));
        assert!(polled.is_ready());
    }
}
