//! Maintenance: pruning, the cleaner, rescue of expired leases and its
//! fencing, lease renewal, and promotion of due jobs.

use std::time::Duration;

use serde_json::json;
use spool::api::types::EnqueueRequest;
use spool::maintenance::cleaner::{self, Retention};
use spool::maintenance::{rescuer, scheduler};
use spool::queue::{self, AttemptError, FailAction, Finish, JobState, RetryPolicy};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::support::{Harness, TestDb, WAIT, echo};

/// Long enough that a periodic service configured with it does not run
/// during a test.
const NEVER: Duration = Duration::from_secs(100 * 24 * 60 * 60);

/// A backoff that keeps a rescued job retryable for the whole test.
const SLOW_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_secs(3600),
    cap: Duration::from_secs(3600),
};

/// API and maintenance without a worker, and without the periodic
/// rescuer, so that the test decides when rescues happen.
async fn without_worker_or_rescuer() -> Harness {
    let spool = Harness::start_with(|config| {
        config.worker = None;
        config.maintenance.rescuer_interval = NEVER;
    })
    .await;
    spool.deploy_probe(&[]).await;
    spool
}

/// Claims every available job as a worker that will never renew its lease.
/// The worker that claims and then stops renewing, and one that claims
/// after it.
const DEAD: &str = "dead-worker";
const LIVE: &str = "live-worker";

async fn claim_as_dead_worker(pool: &PgPool) -> Vec<queue::Claimed> {
    let lease = Duration::from_millis(100);
    queue::job_claim(pool, "default", 100, DEAD, queue::new_claim(), lease, "")
        .await
        .expect("claim")
}

/// Runs the rescuer until it has rescued `count` jobs; returns the sum of
/// its reports.
async fn rescue(pool: &PgPool, count: u64) -> rescuer::Report {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut total = rescuer::Report::default();
    while total.retried + total.discarded + total.cancelled < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rescued {total:?}, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let report = rescuer::run_once(pool, &SLOW_RETRY, 100)
            .await
            .expect("rescue");
        total.retried += report.retried;
        total.discarded += report.discarded;
        total.cancelled += report.cancelled;
    }
    total
}

/// The job's row, with the columns the API does not show.
async fn row(pool: &PgPool, id: &str) -> queue::Job {
    queue::job_get(pool, crate::support::TENANT, id)
        .await
        .expect("job")
}

/// A probe job due tomorrow.
fn delayed(id: &str) -> EnqueueRequest {
    EnqueueRequest {
        kind: "probe".into(),
        params: echo(json!(id)),
        job_id: Some(id.into()),
        delay: Some(json!("1d")),
        ..EnqueueRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_completed_jobs_older_than_asked_and_nothing_else() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    for id in ["done-1", "done-2"] {
        spool.probe(id, echo(json!(id))).await;
    }
    spool
        .probe(
            "failed",
            json!({"do": "error", "outcome": "fail", "message": "no"}),
        )
        .await;
    spool.enqueue(delayed("cancelled")).await;
    spool.client.job_cancel("cancelled").await.unwrap();
    spool.enqueue(delayed("scheduled")).await;
    spool.wait_for_state("done-1", JobState::Completed).await;
    spool.wait_for_state("done-2", JobState::Completed).await;
    spool.wait_for_state("failed", JobState::Discarded).await;

    let young = spool
        .client
        .job_prune(JobState::Completed, "1h")
        .await
        .unwrap();
    assert_eq!(young.deleted, 0);
    assert_eq!(spool.db.job_count().await, 5);

    let old = spool
        .client
        .job_prune(JobState::Completed, "0s")
        .await
        .unwrap();
    assert_eq!(old.deleted, 2);
    for id in ["done-1", "done-2"] {
        let error = spool.client.job_get(id).await.unwrap_err();
        assert!(
            matches!(error, spool::client::Error::Api { status: 404, .. }),
            "{error}"
        );
    }
    let states: Vec<(String, JobState)> =
        sqlx::query_as::<_, (String, String)>("select id, state from spool.jobs order by id")
            .fetch_all(&spool.db.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, state)| (id, state.parse().unwrap()))
            .collect();
    assert_eq!(
        states,
        [
            ("cancelled".to_string(), JobState::Cancelled),
            ("failed".to_string(), JobState::Discarded),
            ("scheduled".to_string(), JobState::Scheduled),
        ]
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_deletes_finished_jobs_past_their_retention_only() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("completed", echo(json!(1))).await;
    spool
        .probe(
            "discarded",
            json!({"do": "error", "outcome": "fail", "message": "no"}),
        )
        .await;
    spool
        .probe(
            "cancelled",
            json!({"do": "error", "outcome": "cancel", "message": "stop"}),
        )
        .await;
    spool
        .probe(
            "retryable",
            json!({"do": "error", "outcome": "retry_after", "seconds": 3600, "message": "later"}),
        )
        .await;
    spool
        .probe("running", json!({"do": "sleep", "ms": 60_000}))
        .await;
    spool.enqueue(delayed("scheduled")).await;
    for (id, state) in [
        ("completed", JobState::Completed),
        ("discarded", JobState::Discarded),
        ("cancelled", JobState::Cancelled),
        ("retryable", JobState::Retryable),
        ("running", JobState::Running),
    ] {
        spool.wait_for_state(id, state).await;
    }
    let ids = || async {
        sqlx::query_scalar::<_, String>("select id from spool.jobs order by id")
            .fetch_all(&spool.db.pool)
            .await
            .unwrap()
    };

    // Each state has its own retention; one row per statement exercises
    // the batching.
    let completed_only = Retention {
        completed: Duration::ZERO,
        cancelled: Duration::from_secs(3600),
        discarded: Duration::from_secs(3600),
    };
    let first = cleaner::run_once(&spool.db.pool, &completed_only, 1)
        .await
        .unwrap();
    assert_eq!(first.deleted, 1);
    assert_eq!(
        ids().await,
        [
            "cancelled",
            "discarded",
            "retryable",
            "running",
            "scheduled"
        ]
    );

    let zero = Retention {
        completed: Duration::ZERO,
        cancelled: Duration::ZERO,
        discarded: Duration::ZERO,
    };
    let second = cleaner::run_once(&spool.db.pool, &zero, 1).await.unwrap();
    assert_eq!(second.deleted, 2);
    assert_eq!(ids().await, ["retryable", "running", "scheduled"]);

    spool.client.job_cancel("running").await.unwrap();
    spool.wait_for_state("running", JobState::Cancelled).await;
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_are_rescued_as_each_job_allows() {
    let spool = without_worker_or_rescuer().await;
    spool.probe("orphan", echo(json!(1))).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!(2)),
            job_id: Some("last-chance".into()),
            max_attempts: Some(1),
            ..EnqueueRequest::default()
        })
        .await;
    spool.probe("unwanted", echo(json!(3))).await;
    let claimed = claim_as_dead_worker(&spool.db.pool).await;
    assert_eq!(claimed.len(), 3);

    // The cancel of a job whose worker is gone is only a request, however
    // often it is made.
    let first = spool.client.job_cancel("unwanted").await.unwrap();
    let second = spool.client.job_cancel("unwanted").await.unwrap();
    assert_eq!(first.state, JobState::Running);
    assert!(first.cancel_requested_at.is_some());
    assert_eq!(second.cancel_requested_at, first.cancel_requested_at);

    let report = rescue(&spool.db.pool, 3).await;

    assert_eq!(
        report,
        rescuer::Report {
            retried: 1,
            discarded: 1,
            cancelled: 1
        }
    );
    for (id, state) in [
        ("orphan", JobState::Retryable),
        ("last-chance", JobState::Discarded),
        ("unwanted", JobState::Cancelled),
    ] {
        let job = spool.client.job_get(id).await.unwrap();
        assert_eq!((job.state, job.attempt), (state, 1), "{id}");
        assert_eq!(job.errors.len(), 1, "{id}");
        let error = &job.errors[0].error;
        assert!(error.contains("lease expired"), "{id}: {error}");
        assert!(error.contains("dead-worker"), "{id}: {error}");
        assert_eq!(job.finalized_at.is_some(), state.is_finished(), "{id}");
        let stored = row(&spool.db.pool, id).await;
        assert!(stored.leased_until.is_none(), "{id}");
    }
    spool.stop().await;
}

/// A retry's backoff counts from the moment the failure is written, even
/// when the writing transaction began earlier (the rescuer's begins before
/// it looks for expired leases): the next attempt is never due before the
/// recorded failure time plus the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backoff_counts_from_the_recorded_failure_not_the_transaction_start() {
    let spool = without_worker_or_rescuer().await;
    spool.probe("backoff", echo(json!(1))).await;
    let pool = &spool.db.pool;
    let claimed = claim_as_dead_worker(pool).await.remove(0);

    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("select 1")
        .execute(&mut *tx)
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let error = AttemptError::now(claimed.attempt, "it failed".into(), Vec::new());
    let policy = RetryPolicy {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(2),
    };
    let finish = Finish::failed(
        claimed.seq,
        claimed.claim,
        claimed.max_attempts,
        FailAction::Retry,
        &error,
        &policy,
    );
    queue::job_finish_many(&mut *tx, Some(DEAD), std::slice::from_ref(&finish))
        .await
        .expect("record the failure");
    tx.commit().await.expect("commit");

    let job = row(pool, "backoff").await;
    let earliest = error.at
        + chrono::Duration::from_std(Duration::from_secs_f64(finish.retry_in_secs)).unwrap();
    assert_eq!(job.state, "retryable");
    assert!(
        job.run_at >= earliest,
        "due at {}, before the failure at {} plus {}s",
        job.run_at,
        error.at,
        finish.retry_in_secs
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescued_attempt_can_no_longer_write() {
    let spool = without_worker_or_rescuer().await;
    spool.probe("fenced", echo(json!(1))).await;
    let pool = &spool.db.pool;
    let dead = claim_as_dead_worker(pool).await.remove(0);
    assert_eq!(dead.attempt, 1);
    rescue(pool, 1).await;
    let rescued = row(pool, "fenced").await;
    assert_eq!(rescued.state, "retryable");

    // The dead attempt comes back after the rescue.
    let late = Finish::completed(dead.seq, dead.claim, 1, r#"{"late": true}"#.into());
    let written = queue::job_finish_many(pool, Some(DEAD), std::slice::from_ref(&late))
        .await
        .unwrap();
    assert!(written.is_empty(), "{written:?}");
    let renewed = queue::job_heartbeat(pool, DEAD, &[(dead.seq, dead.claim)], WAIT)
        .await
        .unwrap();
    assert!(renewed.is_empty(), "{renewed:?}");
    assert_eq!(row(pool, "fenced").await, rescued);

    // ... and after the job was claimed again as attempt 2.
    spool.client.job_retry("fenced").await.unwrap();
    let live = queue::job_claim(pool, "default", 10, LIVE, queue::new_claim(), WAIT, "")
        .await
        .unwrap()
        .remove(0);
    assert_eq!((live.seq, live.attempt), (dead.seq, 2));
    let running = row(pool, "fenced").await;
    let written = queue::job_finish_many(pool, Some(DEAD), std::slice::from_ref(&late))
        .await
        .unwrap();
    assert!(written.is_empty(), "{written:?}");
    let released = queue::job_release(pool, DEAD, dead.seq, dead.claim, Duration::ZERO)
        .await
        .unwrap();
    assert!(!released);
    let renewed = queue::job_heartbeat(pool, DEAD, &[(dead.seq, dead.claim)], WAIT)
        .await
        .unwrap();
    assert!(renewed.is_empty(), "{renewed:?}");
    assert_eq!(row(pool, "fenced").await, running);
    assert_eq!(running.worker_id.as_deref(), Some(LIVE));

    // The live attempt still owns the job.
    let finish = Finish::completed(live.seq, live.claim, 2, r#"{"live": true}"#.into());
    let written = queue::job_finish_many(pool, Some(LIVE), &[finish])
        .await
        .unwrap();
    assert_eq!(written, [(live.seq, JobState::Completed)]);
    let done = spool.client.job_get("fenced").await.unwrap();
    assert_eq!(done.result, Some(json!({"live": true})));
    assert_eq!(done.attempt, 2);
    spool.stop().await;
}

/// Claims do not wait for their commit to reach disk, so a crash can undo
/// a claim while its worker runs the attempt. That same worker then
/// usually claims the job again, as the same attempt number. Each claim
/// has a number of its own, and every write names it: the first attempt
/// cannot write over the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_claim_was_undone_cannot_write_over_the_next_claim() {
    let spool = without_worker_or_rescuer().await;
    spool.probe("undone", echo(json!(1))).await;
    let pool = &spool.db.pool;
    let first = claim_as_dead_worker(pool).await.remove(0);
    // What crash recovery leaves when the claim's commit never reached disk.
    sqlx::query(
        "update spool.jobs set state = 'available', attempt = 0, attempted_at = null, \
                worker_id = null, leased_until = null, claim = 0 where seq = $1",
    )
    .bind(first.seq)
    .execute(pool)
    .await
    .expect("undo the claim");
    let second = queue::job_claim(pool, "default", 10, DEAD, queue::new_claim(), WAIT, "")
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (second.seq, second.attempt),
        (first.seq, first.attempt),
        "the same worker claims the same attempt again"
    );
    assert_ne!(second.claim, first.claim);
    let running = row(pool, "undone").await;

    let late = Finish::completed(first.seq, first.claim, 1, r#"{"late": true}"#.into());
    let written = queue::job_finish_many(pool, Some(DEAD), std::slice::from_ref(&late))
        .await
        .unwrap();
    assert!(written.is_empty(), "{written:?}");
    let renewed = queue::job_heartbeat(pool, DEAD, &[(first.seq, first.claim)], WAIT)
        .await
        .unwrap();
    assert!(
        renewed.is_empty(),
        "the first attempt learns it lost the job"
    );
    let progressed = queue::job_progress(pool, DEAD, first.seq, first.claim, 50, "half", WAIT)
        .await
        .unwrap();
    assert!(!progressed);
    let released = queue::job_release(pool, DEAD, first.seq, first.claim, Duration::ZERO)
        .await
        .unwrap();
    assert!(!released);
    assert_eq!(row(pool, "undone").await, running);

    // The worker renews both attempts at once, as it holds both.
    let renewed = queue::job_heartbeat(
        pool,
        DEAD,
        &[(second.seq, second.claim), (first.seq, first.claim)],
        WAIT,
    )
    .await
    .unwrap();
    let held: Vec<(i64, i64)> = renewed.iter().map(|h| (h.seq, h.claim)).collect();
    assert_eq!(held, [(second.seq, second.claim)], "only the second holds");
    // Both attempts end in one batch, the stale one last: the row's claim
    // picks the second's outcome.
    let finish = Finish::completed(second.seq, second.claim, 1, r#"{"second": true}"#.into());
    let written = queue::job_finish_many(pool, Some(DEAD), &[finish, late])
        .await
        .unwrap();
    assert_eq!(written, [(second.seq, JobState::Completed)]);
    let done = spool.client.job_get("undone").await.unwrap();
    assert_eq!(done.result, Some(json!({"second": true})));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_a_long_attempt_leased() {
    let spool = Harness::start_with(|config| {
        config.worker.as_mut().unwrap().lease = Duration::from_secs(1);
    })
    .await;
    spool.deploy_probe(&[]).await;
    spool
        .probe("long", json!({"do": "sleep", "ms": 3000}))
        .await;
    spool.wait_for_state("long", JobState::Running).await;
    let first_lease = row(&spool.db.pool, "long").await.leased_until;

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = row(&spool.db.pool, "long").await;
        if now.leased_until > first_lease {
            assert_eq!((now.state.as_str(), now.attempt), ("running", 1));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease was never renewed: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The attempt outlives its first lease three times over while the
    // rescuer runs every 200ms; only renewals keep it from being rescued.
    let job = spool.wait_for_state("long", JobState::Completed).await;
    assert_eq!(job.attempt, 1);
    assert!(job.errors.is_empty(), "{:?}", job.errors);
    assert_eq!(job.result, Some(json!({"slept_ms": 3000})));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_promotes_due_jobs_and_wakes_workers() {
    // No server: nothing but this test moves the jobs.
    let db = TestDb::new().await;
    for (id, state, run_at) in [
        ("due-scheduled", "scheduled", "-1 second"),
        ("due-retryable", "retryable", "-1 minute"),
        ("later-scheduled", "scheduled", "1 hour"),
        ("later-retryable", "retryable", "1 hour"),
    ] {
        sqlx::query(
            "insert into spool.jobs (tenant, id, kind, queue, state, priority, params, \
             attempt, max_attempts, run_at) \
             values ('default', $1, 'probe', 'default', $2, 0, '{}', $3, 5, \
                     now() + $4::interval)",
        )
        .bind(id)
        .bind(state)
        .bind(i32::from(state == "retryable"))
        .bind(run_at)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen(queue::JOBS_CHANNEL).await.unwrap();

    // A batch of one makes the run loop until nothing is due.
    let report = scheduler::run_once(&db.pool, 1).await.unwrap();

    assert_eq!(report.promoted, 2);
    let notified = tokio::time::timeout(WAIT, listener.recv()).await;
    assert!(matches!(notified, Ok(Ok(_))), "{notified:?}");
    let states: Vec<(String, String)> =
        sqlx::query_as("select id, state from spool.jobs order by id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let expected = [
        ("due-retryable", "available"),
        ("due-scheduled", "available"),
        ("later-retryable", "retryable"),
        ("later-scheduled", "scheduled"),
    ]
    .map(|(id, state)| (id.to_string(), state.to_string()));
    assert_eq!(states, expected);

    let again = scheduler::run_once(&db.pool, 1).await.unwrap();
    assert_eq!(again.promoted, 0);
}
