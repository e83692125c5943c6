//! The worker: claims jobs, runs them in the runtime, records outcomes.
//!
//! Tasks of one worker process:
//!
//! - the claim loop takes batches of available jobs while attempt slots
//!   are free, and sleeps until woken by `NOTIFY` (new jobs, freed slots)
//!   or the poll interval passes; while it sleeps, it takes jobs its
//!   process's API hands over as they are enqueued ([`handover`]);
//! - one task per attempt runs the component and hands its outcome to
//! - the completer, which writes outcomes in batches;
//! - the heartbeat renews the leases of running attempts, learns of cancel
//!   requests, and stops attempts whose job was taken away;
//! - the listener turns notifications into wake-ups and cancellations.
//!
//! On shutdown the worker stops claiming, lets running attempts finish for
//! up to the drain timeout, then hands the rest back uncharged, flushes
//! the completer and exits.

mod attempt;
mod completer;
mod handover;
mod inflight;
mod listener;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use sqlx::PgPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::database;
use crate::queue::{self, RetryPolicy};
use crate::runtime::{Prepared, Runtime};
use crate::telemetry::error_chain;

use inflight::InFlight;

pub use handover::{Desk, Handover, channel as handover_channel};

/// Attempts one worker runs at once unless configured.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// How long a claim holds before maintenance may rescue the job.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often an idle worker looks for jobs without being notified.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopping worker waits for running attempts.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay before a job handed back after a host fault may run again.
const HOST_FAULT_DELAY: Duration = Duration::from_secs(5);
/// Available jobs whose kinds a starting worker compiles before it claims,
/// and the most modules it compiles then; the rest compile on first use.
const WARM_UP_SAMPLE: i64 = 1_000;
const WARM_UP_MODULES: i64 = 16;
/// Most jobs claimed in one statement.
const MAX_CLAIM_BATCH: usize = 500;

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Identifies this process in `worker_id` columns and logs.
    pub worker_id: String,
    /// Queues to claim from, in turn.
    pub queues: Vec<String>,
    /// Attempts running at once.
    pub concurrency: usize,
    /// Lease of a claim; renewed every third of it while the attempt runs.
    pub lease: Duration,
    /// How often an idle worker polls when no notification arrives.
    pub poll_interval: Duration,
    /// How long a stopping worker waits for running attempts before it
    /// interrupts them and hands their jobs back.
    pub drain_timeout: Duration,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
}

impl WorkerConfig {
    /// The defaults, with a fresh worker id.
    pub fn new() -> Self {
        Self {
            worker_id: new_worker_id(),
            queues: vec!["default".to_string()],
            concurrency: DEFAULT_CONCURRENCY,
            lease: DEFAULT_LEASE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// `<host>-<pid>-<random>`: unique per process, readable in `jobs.worker_id`.
fn new_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "worker".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// What the worker's tasks share.
struct Shared {
    config: WorkerConfig,
    pool: PgPool,
    /// The claim loop's connection; see [`claim_pool`].
    claims: PgPool,
    /// The connection for jobs handed over at enqueue; see
    /// [`handover::handover_pool`].
    handovers: PgPool,
    runtime: Arc<Runtime>,
    inflight: InFlight,
    /// Wakes the claim loop: a notification arrived, this process's API
    /// enqueued jobs, outcomes were written, or slots were freed while jobs
    /// wait.
    wake: Arc<Notify>,
    /// Renews leases now rather than at the heartbeat's next tick: the
    /// listener has just (re)connected, and cancel requests sent while it
    /// was down reached no one.
    renew_now: Notify,
    /// Attempts running at once: a slot is taken at claim and freed when
    /// the guest has returned and its outcome is handed to the completer.
    slots: Arc<Semaphore>,
    /// The last claim filled its batch, so more jobs are likely waiting for
    /// slots to free up.
    backlog: AtomicBool,
    /// Per queue, the tenant the next claim's walk starts after.
    cursors: Mutex<HashMap<String, String>>,
}

impl Shared {
    /// Free slots a claim waits for (all of them are free when the worker
    /// is idle): under load, one statement then claims many jobs instead
    /// of one for every attempt that ends.
    fn low_water(&self) -> usize {
        (self.config.concurrency / 4).clamp(1, MAX_CLAIM_BATCH)
    }

    /// Frees an attempt's slot, and wakes the claim loop when jobs are
    /// waiting and enough slots are free for a claim.
    fn free_slot(&self, slot: OwnedSemaphorePermit) {
        drop(slot);
        if self.backlog.load(Ordering::Relaxed)
            && self.slots.available_permits() >= self.low_water()
        {
            self.wake.notify_one();
        }
    }

    /// The component with `digest`, loaded and compiled on first use.
    async fn prepare(&self, digest: &str) -> Result<Arc<Prepared>, String> {
        let load = async {
            match queue::module_bytes(&self.pool, digest).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err("no module with this digest is stored".to_string()),
                Err(e) => Err(error_chain(&e)),
            }
        };
        self.runtime.prepare(digest, load).await
    }

    fn cursor(&self, queue: &str) -> String {
        let cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        cursors.get(queue).cloned().unwrap_or_default()
    }

    fn set_cursor(&self, queue: &str, tenant: String) {
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        cursors.insert(queue.to_string(), tenant);
    }
}

/// Runs a worker until `shutdown` is cancelled, then drains it. `wake`
/// lets others in the process say that jobs may be waiting; `desk` takes
/// the jobs they hand over (see [`handover_channel`]).
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    runtime: Arc<Runtime>,
    wake: Arc<Notify>,
    desk: Desk,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let shared = Arc::new(Shared {
        config,
        claims: claim_pool(&pool),
        handovers: handover::handover_pool(&pool),
        pool,
        runtime,
        inflight: InFlight::default(),
        wake,
        renew_now: Notify::new(),
        slots,
        backlog: AtomicBool::new(false),
        cursors: Mutex::default(),
    });
    tracing::info!(
        worker_id = %shared.config.worker_id,
        queues = ?shared.config.queues,
        concurrency = shared.config.concurrency,
        lease = ?shared.config.lease,
        "worker started"
    );

    let background = CancellationToken::new();
    let (completions, completer) = completer::spawn(shared.clone());
    let heartbeat = tokio::spawn(inflight::heartbeat(shared.clone(), background.clone()));
    let listener = tokio::spawn(listener::run(shared.clone(), background.clone()));

    tokio::select! {
        () = warm_up(&shared) => {}
        () = shutdown.cancelled() => {}
    }
    let attempts = TaskTracker::new();
    claim_loop(&shared, desk, &attempts, &completions, &shutdown).await;

    attempts.close();
    if tokio::time::timeout(shared.config.drain_timeout, attempts.wait())
        .await
        .is_err()
    {
        let running = shared.inflight.stop_all(inflight::StopReason::Shutdown);
        tracing::warn!(
            worker_id = %shared.config.worker_id,
            running,
            "drain timeout passed; handing running jobs back"
        );
        attempts.wait().await;
    }

    drop(completions);
    if let Err(e) = completer.await {
        tracing::error!(error = %e, "completer task failed");
    }
    background.cancel();
    let _ = tokio::join!(heartbeat, listener);
    shared.claims.close().await;
    shared.handovers.close().await;
    tracing::info!(worker_id = %shared.config.worker_id, "worker stopped");
}

/// A connection of its own for the claim statement, set up for it.
///
/// - `plan_cache_mode`: PostgreSQL judges the claim's generic plan no
///   cheaper than a custom one and would plan every execution anew, about
///   0.7 ms: more than it then takes to claim a job. The generic plan runs
///   as fast, as the claim's SQL leads every plan through the claim index.
/// - `synchronous_commit`: a claim does not wait for its commit to reach
///   disk, which saves a flush on every claim. If the database crashes
///   before the claim is flushed, the claim is undone and the job runs
///   again, as after a lost lease. The first attempt's writes are refused
///   even if this worker claimed the job again for the same attempt
///   number, as each claim has a number of its own
///   ([`queue::new_claim`]). Outcomes are written with a synchronous
///   commit, which flushes every earlier claim too.
fn claim_pool(pool: &PgPool) -> PgPool {
    let options = pool.connect_options().as_ref().clone().options([
        ("plan_cache_mode", "force_generic_plan"),
        ("synchronous_commit", "off"),
    ]);
    database::pool_options(1).connect_lazy_with(options)
}

/// Compiles the components that the first claims will likely run, so that
/// their jobs do not wait on the compiler: those of the kinds among
/// [`WARM_UP_SAMPLE`] available jobs, [`WARM_UP_MODULES`] at most. A module
/// that fails to load or compile is left for its jobs' attempts to report.
async fn warm_up(shared: &Shared) {
    let started = Instant::now();
    let digests = match queue::module_digests_ready(
        &shared.pool,
        &shared.config.queues,
        WARM_UP_SAMPLE,
        WARM_UP_MODULES,
    )
    .await
    {
        Ok(digests) => digests,
        Err(e) => {
            tracing::warn!(
                worker_id = %shared.config.worker_id,
                error = %error_chain(&e),
                "could not look up the modules of waiting jobs; they compile on first use"
            );
            return;
        }
    };
    if digests.is_empty() {
        return;
    }
    let prepared = join_all(digests.iter().map(|digest| shared.prepare(digest))).await;
    tracing::info!(
        worker_id = %shared.config.worker_id,
        compiled = prepared.iter().filter(|p| p.is_ok()).count(),
        failed = prepared.iter().filter(|p| p.is_err()).count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compiled the modules of waiting jobs before claiming"
    );
}

async fn claim_loop(
    shared: &Arc<Shared>,
    mut desk: Desk,
    attempts: &TaskTracker,
    completions: &completer::Sender,
    shutdown: &CancellationToken,
) {
    let low_water = shared.low_water();
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        // Offers sent as the loop stopped waiting are declined here, on
        // every round, so that none waits on a worker that stays busy.
        desk.close();
        let mut filled = false;
        for queue in &shared.config.queues {
            let free = shared.slots.available_permits().min(MAX_CLAIM_BATCH);
            if free < low_water {
                filled = true;
                break;
            }
            match claim(shared, queue, free).await {
                Ok((jobs, lease_until)) => {
                    failures = 0;
                    filled |= jobs.len() == free;
                    for job in jobs {
                        let slot = shared
                            .slots
                            .clone()
                            .try_acquire_owned()
                            .expect("a slot was free when claiming");
                        start_attempt(shared, job, lease_until, slot, attempts, completions);
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(
                        worker_id = %shared.config.worker_id,
                        queue,
                        error = %error_chain(&e),
                        "claim failed; retrying"
                    );
                }
            }
        }

        // After a full batch, claim again at once, or once enough slots are
        // free; after a short one, wait for a notification, for written
        // outcomes (which free room under tenants' limits) or the poll
        // interval, and take the jobs the API hands over meanwhile.
        shared.backlog.store(filled, Ordering::Relaxed);
        let wait = if failures > 0 {
            RetryPolicy {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(5),
            }
            .delay(failures)
        } else if filled && shared.slots.available_permits() >= low_water {
            continue;
        } else {
            shared.config.poll_interval
        };
        let until = tokio::time::Instant::now() + wait;
        desk.open();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = shared.wake.notified() => break,
                () = tokio::time::sleep_until(until) => break,
                offer = desk.next() => {
                    if !handover::take(shared, offer, attempts, completions).await {
                        break;
                    }
                }
            }
        }
    }
}

/// Claims up to `limit` jobs of `queue`; returns them and when their
/// leases end by this process's clock.
async fn claim(
    shared: &Shared,
    queue: &str,
    limit: usize,
) -> Result<(Vec<queue::Claimed>, Instant), queue::Error> {
    let cursor = shared.cursor(queue);
    // The claim's lease starts no sooner than the statement is sent.
    let sent = Instant::now();
    let lease_until = sent + shared.config.lease;
    let jobs = queue::job_claim(
        &shared.claims,
        queue,
        limit as i64,
        &shared.config.worker_id,
        queue::new_claim(),
        shared.config.lease,
        &cursor,
    )
    .await?;
    if let Some(next) = queue::claim_cursor(&cursor, &jobs) {
        shared.set_cursor(queue, next);
    }
    if !jobs.is_empty() {
        tracing::debug!(
            worker_id = %shared.config.worker_id,
            queue,
            claimed = jobs.len(),
            elapsed_us = sent.elapsed().as_micros() as u64,
            "claimed jobs"
        );
    }
    Ok((jobs, lease_until))
}

/// Starts the attempt that a claim began, in `slot`. It is registered
/// first, so that lease renewals and cancel requests reach it from the
/// start; its lease ends at `lease_until` by this process's clock.
fn start_attempt(
    shared: &Arc<Shared>,
    job: queue::Claimed,
    lease_until: Instant,
    slot: OwnedSemaphorePermit,
    attempts: &TaskTracker,
    completions: &completer::Sender,
) {
    shared.inflight.insert(job.seq, job.claim, lease_until);
    attempts.spawn(attempt::run(shared.clone(), job, completions.clone(), slot));
}
