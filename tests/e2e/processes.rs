//! Real `spool worker` processes sharing one database.

use serde_json::json;
use spool::api::types::EnqueueRequest;
use spool::queue::JobState;

use crate::support::recorder::Recorder;
use crate::support::worker_process::WorkerProcess;
use crate::support::{Harness, TestDb, echo, ledger};

/// The distinct `worker_id`s that jobs were last run by.
async fn worker_ids(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar("select distinct worker_id from spool.jobs order by 1")
        .fetch_all(&db.pool)
        .await
        .expect("worker ids")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_worker_processes_never_run_a_job_twice() {
    let ledger_host = Recorder::start().await;
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[ledger_host.host()]).await;
    let (a, b) = tokio::join!(
        WorkerProcess::start(&spool.db, &[]),
        WorkerProcess::start(&spool.db, &[]),
    );
    let ids: Vec<String> = (0..200).map(|i| format!("job-{i:03}")).collect();

    let requests: Vec<EnqueueRequest> = ids
        .iter()
        .map(|id| EnqueueRequest {
            kind: "probe".into(),
            params: ledger(&ledger_host, id),
            job_id: Some(id.clone()),
            ..EnqueueRequest::default()
        })
        .collect();
    let enqueues = requests.iter().map(|r| spool.client.job_enqueue(r));
    futures::future::try_join_all(enqueues)
        .await
        .expect("enqueue");
    spool.db.wait_for_jobs(JobState::Completed, 200).await;

    let hits = ledger_host.hits();
    let expected = ids.iter().map(|id| (format!("/ledger/{id}"), 1)).collect();
    assert_eq!(hits, expected, "every job posted exactly once");
    let retried: i64 = sqlx::query_scalar("select count(*) from spool.jobs where attempt <> 1")
        .fetch_one(&spool.db.pool)
        .await
        .unwrap();
    assert_eq!(retried, 0);
    let mut both = vec![a.worker_id.clone(), b.worker_id.clone()];
    both.sort();
    assert_eq!(
        worker_ids(&spool.db).await,
        both,
        "both processes did some of the work"
    );
    drop((a, b));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_workers_job_is_rescued_and_finished_by_the_other() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    let args = [
        "--lease",
        "1s",
        "--rescue-interval",
        "200ms",
        "--retry-base",
        "100ms",
    ];
    let (a, b) = tokio::join!(
        WorkerProcess::start(&spool.db, &args),
        WorkerProcess::start(&spool.db, &args),
    );
    let mut workers = [a, b];

    // Long enough to outlive its lease several times; the survivor runs
    // it again in full.
    spool
        .probe("long", json!({"do": "sleep", "ms": 5000}))
        .await;
    spool.wait_for_state("long", JobState::Running).await;
    let holder = spool::queue::job_get(&spool.db.pool, "default", "long")
        .await
        .unwrap()
        .worker_id
        .expect("a running job has a worker");
    let dead = workers
        .iter()
        .position(|w| w.worker_id == holder)
        .expect("one of the processes holds the job");
    workers[dead].kill();
    let survivor = workers[1 - dead].worker_id.clone();

    let job = spool.wait_for_state("long", JobState::Completed).await;

    assert_eq!(job.attempt, 2);
    assert_eq!(job.result, Some(json!({"slept_ms": 5000})));
    assert_eq!(job.errors.len(), 1);
    assert_eq!(job.errors[0].attempt, 1);
    let error = &job.errors[0].error;
    assert!(error.contains("lease expired"), "{error}");
    assert!(error.contains(&holder), "{error}");
    assert_eq!(worker_ids(&spool.db).await, [survivor]);
    drop(workers);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_worker_compiles_the_modules_of_waiting_jobs_before_it_claims() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    spool
        .deploy("stats", "user-stats", Default::default())
        .await;
    spool.probe("echo", echo(json!("warm"))).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "stats".into(),
            params: json!({"user_id": 1}),
            job_id: Some("stats".into()),
            ..EnqueueRequest::default()
        })
        .await;

    let worker = WorkerProcess::start(&spool.db, &[]).await;
    spool.wait_for_state("echo", JobState::Completed).await;
    spool
        .wait_until("stats", "finished", |job| job.finalized_at.is_some())
        .await;

    let log = worker.log();
    let position = |needle: &str| log.iter().position(|line| line.contains(needle));
    let warmed = position("compiled the modules of waiting jobs before claiming")
        .unwrap_or_else(|| panic!("no warm-up in the worker's log:\n{}", log.join("\n")));
    assert!(
        log[warmed].contains(r#""compiled":2"#),
        "both components compiled: {}",
        log[warmed]
    );
    let first_attempt = position(r#""attempt"#).expect("the attempts are logged");
    assert!(
        warmed < first_attempt,
        "an attempt ran before the warm-up ended:\n{}",
        log.join("\n")
    );
    let compiles = log.iter().filter(|l| l.contains("compiled module")).count();
    assert_eq!(
        compiles,
        2,
        "each component compiled once:\n{}",
        log.join("\n")
    );
    spool.stop().await;
}
