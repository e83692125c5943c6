//! Turns `NOTIFY`s into wake-ups of the claim loop and cancellations of
//! running attempts.
//!
//! Notifications are a latency optimisation, not a source of truth: while
//! the listening connection is down the claim loop still polls and the
//! heartbeat still sees cancel requests. Each time the listener connects,
//! it has the claim loop claim and the heartbeat renew at once, so that
//! neither new jobs nor cancel requests announced while it was down wait
//! for the next poll or renewal.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::inflight::StopReason;
use crate::queue::{CANCEL_CHANNEL, JOBS_CHANNEL, RetryPolicy};
use crate::telemetry::error_chain;

/// Listens until `stop` is cancelled, reconnecting after failures.
pub async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let backoff = RetryPolicy {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
    };
    let mut failures = 0;
    loop {
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = listen(&shared) => result,
        };
        if let Err(e) = result {
            failures += 1;
            tracing::warn!(
                worker_id = %shared.config.worker_id,
                error = %error_chain(&e),
                "notification listener lost its connection; reconnecting"
            );
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff.delay(failures)) => {}
        }
    }
}

async fn listen(shared: &Shared) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.listen_all([JOBS_CHANNEL, CANCEL_CHANNEL]).await?;
    catch_up(shared);

    loop {
        let Some(notification) = listener.try_recv().await? else {
            // The connection was lost and has been re-established with its
            // channels; notifications sent meanwhile are gone.
            tracing::warn!(
                worker_id = %shared.config.worker_id,
                "notification listener reconnected"
            );
            catch_up(shared);
            continue;
        };
        match notification.channel() {
            JOBS_CHANNEL => shared.wake.notify_one(),
            CANCEL_CHANNEL => {
                if let Ok(seq) = notification.payload().parse::<i64>() {
                    shared.inflight.stop(seq, StopReason::Cancelled);
                }
            }
            _ => {}
        }
    }
}

/// Makes up for notifications that may have been missed: claims, and
/// renews leases, which also reports cancel requests.
fn catch_up(shared: &Shared) {
    shared.wake.notify_one();
    shared.renew_now.notify_one();
}
