//! A job's way from enqueue to a terminal state, through the worker.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde_json::json;
use spool::api::types::{EnqueueRequest, TenantUpdateRequest};
use spool::queue::{JobState, NewJob, job_insert};

use crate::support::{Harness, TENANT, echo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_job_runs_and_stores_its_result() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let enqueued = spool.probe("echo-1", echo(json!({"n": 7}))).await;
    let job = spool.wait_for_state("echo-1", JobState::Completed).await;

    assert_eq!(enqueued.id, "echo-1");
    assert_eq!(job.result, Some(json!({"value": {"n": 7}, "attempt": 1})));
    assert_eq!(job.attempt, 1);
    assert!(job.errors.is_empty());
    let attempted = job.attempted_at.expect("attempted_at is set");
    let finalized = job.finalized_at.expect("finalized_at is set");
    assert!(job.created_at <= attempted && attempted <= finalized);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_ids_are_returned_and_accepted() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let request = EnqueueRequest {
        kind: "probe".into(),
        params: echo(json!(1)),
        ..Default::default()
    };
    let first = spool.enqueue(request.clone()).await;
    let second = spool.enqueue(request).await;

    assert_ne!(
        first.id, second.id,
        "each enqueue without job_id makes a new job"
    );
    let generated = uuid::Uuid::parse_str(&first.id).expect("a generated id is a UUID");
    assert_eq!(
        generated.get_version(),
        Some(uuid::Version::SortRand),
        "generated ids begin with the time: {}",
        first.id
    );
    spool.wait_for_state(&first.id, JobState::Completed).await;
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_run_at_is_scheduled_and_runs_after_not_before() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let run_at = Utc::now() + chrono::Duration::milliseconds(1500);

    let enqueued = spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!("later")),
            job_id: Some("later".into()),
            run_at: Some(run_at.to_rfc3339()),
            ..Default::default()
        })
        .await;
    let job = spool.wait_for_state("later", JobState::Completed).await;

    assert_eq!(enqueued.state, JobState::Scheduled);
    assert_eq!(enqueued.run_at, run_at.trunc_subsecs(6));
    assert!(
        job.attempted_at.unwrap() >= run_at,
        "ran at {:?}, before {run_at}",
        job.attempted_at
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_schedules_from_the_database_clock() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let enqueued = spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!("delayed")),
            job_id: Some("delayed".into()),
            delay: Some(json!("1s")),
            ..Default::default()
        })
        .await;
    let job = spool.wait_for_state("delayed", JobState::Completed).await;

    assert_eq!(enqueued.state, JobState::Scheduled);
    assert_eq!(
        enqueued.run_at - enqueued.created_at,
        chrono::Duration::seconds(1)
    );
    assert!(job.attempted_at.unwrap() >= enqueued.run_at);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_until_attempts_run_out() {
    let spool = Harness::start_with(|config| {
        let retry = spool::queue::RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        config.worker.as_mut().unwrap().retry = retry;
    })
    .await;
    spool.deploy_probe(&[]).await;

    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: json!({"do": "error", "outcome": "retry", "message": "try again"}),
            job_id: Some("flaky".into()),
            max_attempts: Some(2),
            ..Default::default()
        })
        .await;
    let waiting = spool.wait_for_state("flaky", JobState::Retryable).await;
    let discarded = spool.wait_for_state("flaky", JobState::Discarded).await;

    // After attempt 1 the backoff is the base, 1s, moved by at most 20%.
    let failed_at = waiting.errors[0].at;
    let backoff = (waiting.run_at - failed_at).to_std().unwrap();
    assert!(
        backoff >= Duration::from_millis(750) && backoff <= Duration::from_millis(1250),
        "backoff {backoff:?}"
    );
    assert_eq!(waiting.attempt, 1);
    assert!(discarded.attempted_at.unwrap() >= waiting.run_at);
    assert_eq!(discarded.attempt, 2);
    let errors: Vec<_> = discarded
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(errors, [(1, "try again"), (2, "try again")]);
    assert!(discarded.finalized_at.is_some());
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_failure_can_succeed_later() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    spool
        .probe("third-time", json!({"do": "fail_until", "attempt": 3}))
        .await;
    let job = spool
        .wait_for_state("third-time", JobState::Completed)
        .await;

    assert_eq!(job.attempt, 3);
    assert_eq!(job.result, Some(json!({"attempt": 3})));
    let attempts: Vec<i32> = job.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_errors_choose_the_outcome() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let error = |outcome: &str, seconds: u32| {
        json!({
            "do": "error",
            "outcome": outcome,
            "message": format!("{outcome} please"),
            "seconds": seconds,
        })
    };

    spool.probe("fail", error("fail", 0)).await;
    spool.probe("cancel", error("cancel", 0)).await;
    spool.probe("retry-after", error("retry_after", 3600)).await;

    let failed = spool.wait_for_state("fail", JobState::Discarded).await;
    let cancelled = spool.wait_for_state("cancel", JobState::Cancelled).await;
    let snoozed = spool
        .wait_for_state("retry-after", JobState::Retryable)
        .await;

    assert_eq!(
        (failed.attempt, failed.errors[0].error.as_str()),
        (1, "fail please")
    );
    assert_eq!(
        (cancelled.attempt, cancelled.errors[0].error.as_str()),
        (1, "cancel please")
    );
    assert!(cancelled.finalized_at.is_some());
    let wait = snoozed.run_at - snoozed.errors[0].at;
    assert!((wait.num_seconds() - 3600).abs() <= 1, "retry after {wait}");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_and_timeouts_are_failed_attempts_with_a_reason() {
    let spool = Harness::start().await;
    spool
        .deploy(
            "probe",
            "probe",
            spool::client::DeployOptions {
                max_attempts: Some(1),
                timeout: Some(Duration::from_millis(500)),
                memory_limit_mib: Some(32),
                ..Default::default()
            },
        )
        .await;

    spool
        .probe("panic", json!({"do": "panic", "message": "boom"}))
        .await;
    spool.probe("spin", json!({"do": "spin"})).await;
    spool
        .probe("alloc", json!({"do": "alloc", "mib": 64}))
        .await;
    spool.probe("fine", echo(json!("still here"))).await;

    let reason = |job: spool::api::types::JobView| job.errors[0].error.clone();
    let panic = reason(spool.wait_for_state("panic", JobState::Discarded).await);
    let spin = reason(spool.wait_for_state("spin", JobState::Discarded).await);
    let alloc = reason(spool.wait_for_state("alloc", JobState::Discarded).await);
    let fine = spool.wait_for_state("fine", JobState::Completed).await;

    assert!(panic.starts_with("guest panicked: boom"), "{panic}");
    assert!(spin.starts_with("timed out"), "{spin}");
    assert!(alloc.starts_with("memory limit exceeded"), "{alloc}");
    assert!(alloc.contains("allows 32 MiB"), "{alloc}");
    assert_eq!(fine.result.unwrap()["value"], "still here");
    spool.stop().await;
}

/// A probe job of the harness's tenant, to insert without the API.
fn probe_job(job_id: Option<&str>, params: serde_json::Value) -> NewJob {
    NewJob {
        tenant: TENANT.into(),
        kind: "probe".into(),
        params,
        job_id: job_id.map(String::from),
        run_at: None,
        delay_secs: 0.0,
        queue: "default".into(),
        priority: 0,
        max_attempts: None,
    }
}

/// PostgreSQL plans a prepared statement's first five executions for their
/// values, then keeps one plan for all values if that is no costlier. The
/// enqueue's statement must reach that plan: planning it afresh for every
/// job would cost more than running it (a version that did spent 0.35 ms
/// planning each enqueue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enqueue_statement_is_planned_once_not_for_every_job() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;

    let mut conn = spool.db.pool.acquire().await.unwrap();
    for n in 0..20 {
        let new = probe_job(None, json!({ "n": n }));
        job_insert(&mut conn, &new).await.unwrap();
    }
    // The pattern is split so that this query's own text does not match.
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "select generic_plans, custom_plans from pg_prepared_statements \
         where statement like '%insert ' || 'into spool.jobs as j%'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();

    assert_eq!((generic, custom), (15, 5));
    spool.stop().await;
}

/// A harness whose worker looks for jobs only when woken (or hourly), so
/// that what starts a job is visible.
async fn harness_polling_hourly() -> Harness {
    Harness::start_with(|config| {
        let worker = config.worker.as_mut().expect("the harness runs a worker");
        worker.poll_interval = Duration::from_secs(3600);
    })
    .await
}

/// [`harness_polling_hourly`] with the probe deployed and the insert
/// trigger off: no `NOTIFY` tells the worker of new jobs.
async fn harness_without_notifications() -> Harness {
    let spool = harness_polling_hourly().await;
    spool.deploy_probe(&[]).await;
    sqlx::query("alter table spool.jobs disable trigger jobs_notify_insert")
        .execute(&spool.db.pool)
        .await
        .expect("disable the notify trigger");
    spool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_worker_takes_a_job_enqueued_through_its_own_api_as_it_is_inserted() {
    let spool = harness_polling_hourly().await;
    spool.deploy_probe(&[]).await;

    let handed = spool.probe("handed", echo(json!("handed"))).await;
    let handed_done = spool.wait_for_state("handed", JobState::Completed).await;
    // An attempt started at enqueue renews its lease and hears cancels
    // like a claimed one.
    let long = spool
        .probe("long", json!({"do": "sleep", "ms": 60_000}))
        .await;
    spool.client.job_cancel("long").await.expect("cancel");
    let long_done = spool.wait_for_state("long", JobState::Cancelled).await;

    assert_eq!((handed.state, handed.attempt), (JobState::Running, 1));
    assert_eq!(handed.attempted_at, Some(handed.created_at));
    assert_eq!(handed_done.result.unwrap()["value"], "handed");
    assert_eq!((long.state, long.attempt), (JobState::Running, 1));
    assert_eq!(long_done.errors.len(), 1);
    assert_eq!(long_done.errors[0].error, "cancelled while running");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_while_others_wait_in_its_queue_is_not_taken_ahead_of_them() {
    let spool = harness_without_notifications().await;
    // A job the worker has not heard of, inserted after its last claim.
    let hidden = probe_job(Some("first"), echo(json!("first")));
    let mut conn = spool.db.pool.acquire().await.expect("a connection");
    job_insert(&mut conn, &hidden).await.expect("insert");
    drop(conn);

    let second = spool.probe("second", echo(json!("second"))).await;
    let first_done = spool.wait_for_state("first", JobState::Completed).await;
    let second_done = spool.wait_for_state("second", JobState::Completed).await;

    assert_eq!((second.state, second.attempt), (JobState::Available, 0));
    assert!(first_done.attempted_at <= second_done.attempted_at);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_beyond_its_tenants_max_running_is_not_taken_as_it_is_inserted() {
    let spool = harness_polling_hourly().await;
    spool.deploy_probe(&[]).await;
    let limit = TenantUpdateRequest {
        disabled: None,
        max_running: Some(Some(1)),
    };
    spool
        .admin()
        .tenant_update(TENANT, &limit)
        .await
        .expect("limit the tenant");

    let running = spool
        .probe("running", json!({"do": "sleep", "ms": 60_000}))
        .await;
    // The worker has free slots and waits for work, but the tenant is at
    // its limit.
    let limited = spool.probe("limited", echo(json!("limited"))).await;
    let running_now: i64 = sqlx::query_scalar(
        "select count(*) from spool.jobs where tenant = $1 and state = 'running'",
    )
    .bind(TENANT)
    .fetch_one(&spool.db.pool)
    .await
    .expect("count running jobs");
    spool.client.job_cancel("running").await.expect("cancel");
    let done = spool.wait_for_state("limited", JobState::Completed).await;

    assert_eq!(running.state, JobState::Running);
    assert_eq!((limited.state, limited.attempt), (JobState::Available, 0));
    assert_eq!(running_now, 1);
    assert_eq!(done.result.unwrap()["value"], "limited");
    spool.stop().await;
}

/// A job the API does not hand over, such as one of a batch, wakes the
/// worker of its process directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_wakes_the_worker_of_its_own_process_without_a_notification() {
    // Without a NOTIFY, the worker would next look for jobs in an hour.
    let spool = harness_without_notifications().await;

    let single = spool.probe("woken-1", echo(json!(1))).await;
    assert_eq!(
        single.state,
        JobState::Running,
        "handed over as it was inserted"
    );
    spool.wait_for_state("woken-1", JobState::Completed).await;

    let batch = [EnqueueRequest {
        kind: "probe".into(),
        job_id: Some("woken-2".into()),
        params: echo(json!(2)),
        ..Default::default()
    }];
    spool
        .client
        .job_enqueue_batch(&batch)
        .await
        .expect("enqueue a batch");
    spool.wait_for_state("woken-2", JobState::Completed).await;
    spool.stop().await;
}
