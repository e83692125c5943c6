//! Operators cancelling and retrying jobs through the API.

use std::time::Duration;

use serde_json::{Value, json};
use spool::api::types::{EnqueueRequest, JobView};
use spool::client::Error;
use spool::queue::JobState;
use spool::server::{Server, ServerConfig};

use crate::support::{Harness, echo, test_config};

/// POSTs to `/v1/jobs/{id}/{action}`: the status (which the typed client
/// does not return) and the body.
async fn post(spool: &Harness, id: &str, action: &str) -> (u16, Value) {
    let url = format!("{}/v1/jobs/{id}/{action}", spool.client.base());
    let response = spool
        .http()
        .post(url)
        .send()
        .await
        .expect("POST reaches the API");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// The API's error status and code for a failed call.
fn api_error<T: std::fmt::Debug>(result: Result<T, Error>) -> (u16, String) {
    match result {
        Err(Error::Api { status, body }) => (status, body.code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A probe job that runs after `delay`.
fn delayed(id: &str, delay: &str) -> EnqueueRequest {
    EnqueueRequest {
        kind: "probe".into(),
        params: echo(json!(id)),
        job_id: Some(id.into()),
        delay: Some(json!(delay)),
        ..EnqueueRequest::default()
    }
}

/// Whether the job never started an attempt.
fn never_attempted(job: &JobView) -> bool {
    job.attempt == 0 && job.attempted_at.is_none() && job.errors.is_empty() && job.result.is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_available_job_cancelled_before_a_worker_starts_never_runs() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    spool.probe("doomed", echo(json!("doomed"))).await;
    spool.probe("after", echo(json!("after"))).await;

    let (status, body) = post(&spool, "doomed", "cancel").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled");

    // A worker that starts now claims in enqueue order: once it has run
    // the later job, it has passed the cancelled one.
    let worker = Server::start(
        spool.db.pool.clone(),
        ServerConfig {
            listen: None,
            ..test_config()
        },
    )
    .await
    .expect("start a worker");
    spool.wait_for_state("after", JobState::Completed).await;
    worker.stop().await;

    let doomed = spool.client.job_get("doomed").await.unwrap();
    assert_eq!(doomed.state, JobState::Cancelled);
    assert!(never_attempted(&doomed), "{doomed:#?}");
    assert!(doomed.finalized_at.is_some());
    assert!(doomed.cancel_requested_at.is_none());
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_and_retryable_jobs_are_cancelled_at_once() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.enqueue(delayed("tomorrow", "1d")).await;
    spool
        .probe(
            "snoozing",
            json!({"do": "error", "outcome": "retry_after", "seconds": 3600, "message": "later"}),
        )
        .await;
    spool.wait_for_state("snoozing", JobState::Retryable).await;

    let (scheduled_status, scheduled) = post(&spool, "tomorrow", "cancel").await;
    let (retryable_status, retryable) = post(&spool, "snoozing", "cancel").await;

    assert_eq!(
        (scheduled_status, scheduled["state"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(
        (retryable_status, retryable["state"].as_str()),
        (200, Some("cancelled"))
    );
    let tomorrow = spool.client.job_get("tomorrow").await.unwrap();
    assert!(never_attempted(&tomorrow), "{tomorrow:#?}");
    assert!(tomorrow.finalized_at.is_some());
    let snoozing = spool.client.job_get("snoozing").await.unwrap();
    assert_eq!(snoozing.state, JobState::Cancelled);
    assert_eq!(snoozing.attempt, 1);
    let errors: Vec<_> = snoozing
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [(1, "later")],
        "cancelling adds nothing to the history"
    );
    assert!(snoozing.finalized_at.is_some());
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_interrupted_and_not_retried() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .probe("long", json!({"do": "sleep", "ms": 60_000}))
        .await;
    spool.wait_for_state("long", JobState::Running).await;

    let (status, requested) = post(&spool, "long", "cancel").await;
    assert_eq!(status, 202, "{requested}");
    assert_eq!(requested["state"], "running");
    assert!(requested["cancel_requested_at"].is_string(), "{requested}");

    let cancelled = spool.wait_for_state("long", JobState::Cancelled).await;
    assert_eq!(cancelled.attempt, 1);
    let errors: Vec<_> = cancelled
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(errors, [(1, "cancelled while running")]);
    assert!(cancelled.result.is_none());
    assert!(cancelled.finalized_at.is_some());

    // Attempts remain, yet the job stays cancelled: once a later job has
    // run, the worker has had every chance to pick it up again.
    spool.probe("later", echo(json!("later"))).await;
    spool.wait_for_state("later", JobState::Completed).await;
    let still = spool.client.job_get("long").await.unwrap();
    assert!(still.max_attempts > 1);
    assert_eq!((still.state, still.attempt), (JobState::Cancelled, 1));
    spool.stop().await;
}

/// A cancel request whose notification nobody heard (here: none was sent,
/// as after a database restart that the listener had not yet recovered
/// from) reaches the running attempt when the listener reconnects, not a
/// third of the lease later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_missed_while_the_listener_was_down_is_seen_when_it_reconnects() {
    let spool = Harness::start_with(|config| {
        let worker = config
            .worker
            .as_mut()
            .expect("the test config runs a worker");
        worker.lease = Duration::from_secs(3600);
    })
    .await;
    spool.deploy_probe(&[]).await;
    spool
        .probe("long", json!({"do": "sleep", "ms": 60_000}))
        .await;
    spool.wait_for_state("long", JobState::Running).await;

    // Request the cancel behind the listener's back, then cut its
    // connection; the worker's regular renewal is twenty minutes away.
    sqlx::query("update spool.jobs set cancel_requested_at = now() where id = 'long'")
        .execute(&spool.db.pool)
        .await
        .unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and query like 'LISTEN%'",
    )
    .fetch_all(&spool.db.pool)
    .await
    .unwrap();
    assert_eq!(cut, [true], "the worker listens on one connection");

    let cancelled = spool.wait_for_state("long", JobState::Cancelled).await;
    assert_eq!(cancelled.errors.len(), 1);
    assert_eq!(cancelled.errors[0].error, "cancelled while running");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_twice_changes_nothing_the_second_time() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.enqueue(delayed("twice", "1d")).await;

    let (first_status, first) = post(&spool, "twice", "cancel").await;
    let (second_status, second) = post(&spool, "twice", "cancel").await;

    assert_eq!((first_status, second_status), (200, 200));
    assert_eq!(second["state"], "cancelled");
    assert_eq!(
        second, first,
        "the second cancel returns the job as the first left it"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_job_cannot_be_cancelled() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("done", echo(json!("done"))).await;
    let done = spool.wait_for_state("done", JobState::Completed).await;

    let (status, body) = post(&spool, "done", "cancel").await;

    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "invalid_state");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("job is completed"), "{message}");
    assert_eq!(spool.client.job_get("done").await.unwrap(), done);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_job_retried_by_hand_runs_again_and_keeps_its_history() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: json!({"do": "fail_until", "attempt": 2}),
            job_id: Some("second-chance".into()),
            max_attempts: Some(1),
            ..EnqueueRequest::default()
        })
        .await;
    let discarded = spool
        .wait_for_state("second-chance", JobState::Discarded)
        .await;
    assert_eq!((discarded.attempt, discarded.max_attempts), (1, 1));

    let retried = spool.client.job_retry("second-chance").await.unwrap();
    assert_eq!(retried.state, JobState::Available);
    assert_eq!(
        retried.max_attempts, 2,
        "a job out of attempts gets one more"
    );
    assert!(retried.finalized_at.is_none());

    let job = spool
        .wait_for_state("second-chance", JobState::Completed)
        .await;
    assert_eq!(job.attempt, 2);
    assert_eq!(job.max_attempts, 2);
    assert_eq!(job.result, Some(json!({"attempt": 2})));
    assert_eq!(job.errors.len(), 1);
    assert_eq!(job.errors[0].attempt, 1);
    assert_eq!(job.errors[0].error, "attempt 1 failed on purpose");
    assert_eq!(job.errors[0], discarded.errors[0]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_retried_by_hand_runs() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.enqueue(delayed("revived", "1d")).await;
    spool.client.job_cancel("revived").await.unwrap();

    let retried = spool.client.job_retry("revived").await.unwrap();
    let job = spool.wait_for_state("revived", JobState::Completed).await;

    assert_eq!(retried.state, JobState::Available);
    assert!(
        retried.run_at < retried.created_at + chrono::Duration::hours(1),
        "a retried job runs now, not at its old run_at: {retried:#?}"
    );
    assert_eq!(job.attempt, 1);
    assert_eq!(job.result, Some(json!({"value": "revived", "attempt": 1})));
    assert!(job.errors.is_empty());
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_running_and_retried_runs_to_the_end() {
    // A short lease makes the heartbeat look for cancel requests every
    // third of a second: a request left over from the first attempt
    // would stop the second.
    let spool = Harness::start_with(|config| {
        config.worker.as_mut().unwrap().lease = Duration::from_secs(1);
    })
    .await;
    spool.deploy_probe(&[]).await;
    spool
        .probe("again", json!({"do": "sleep", "ms": 3000}))
        .await;
    spool.wait_for_state("again", JobState::Running).await;
    spool.client.job_cancel("again").await.unwrap();
    spool.wait_for_state("again", JobState::Cancelled).await;

    let retried = spool.client.job_retry("again").await.unwrap();
    let job = spool.wait_for_state("again", JobState::Completed).await;

    assert!(retried.cancel_requested_at.is_none());
    assert_eq!(job.attempt, 2);
    assert_eq!(job.result, Some(json!({"slept_ms": 3000})));
    let errors: Vec<_> = job
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(errors, [(1, "cancelled while running")]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_failed_discarded_or_cancelled_jobs_can_be_retried() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("done", echo(json!("done"))).await;
    spool
        .probe("busy", json!({"do": "sleep", "ms": 60_000}))
        .await;
    spool.wait_for_state("done", JobState::Completed).await;
    spool.wait_for_state("busy", JobState::Running).await;

    for (id, state) in [("done", "completed"), ("busy", "running")] {
        let (status, body) = post(&spool, id, "retry").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("invalid_state"))
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&format!("job is {state}")), "{message}");
    }
    let busy = spool.client.job_get("busy").await.unwrap();
    assert_eq!((busy.state, busy.attempt), (JobState::Running, 1));
    assert_eq!(
        api_error(spool.client.job_retry("no-such-job").await),
        (404, "not_found".to_string())
    );

    spool.client.job_cancel("busy").await.unwrap();
    spool.wait_for_state("busy", JobState::Cancelled).await;
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_available_job_cannot_be_retried() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    let waiting = spool.probe("waiting", echo(json!(1))).await;

    let error = api_error(spool.client.job_retry("waiting").await);

    assert_eq!(error, (409, "invalid_state".to_string()));
    assert_eq!(spool.client.job_get("waiting").await.unwrap(), waiting);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_job_cannot_be_cancelled() {
    let spool = Harness::start_with(|config| config.worker = None).await;

    let (status, body) = post(&spool, "nobody", "cancel").await;

    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(spool.db.job_count().await, 0);
    spool.stop().await;
}
