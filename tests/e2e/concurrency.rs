//! Enqueues racing each other through the API.

use serde_json::json;
use spool::api::types::EnqueueRequest;
use spool::queue::JobState;

use crate::support::recorder::Recorder;
use crate::support::{Harness, echo, ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_with_one_job_id_make_one_job() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;

    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let client = spool.client.clone();
            tokio::spawn(async move {
                let request = EnqueueRequest {
                    kind: "probe".into(),
                    params: echo(json!(i)),
                    job_id: Some("one-of-a-kind".into()),
                    ..EnqueueRequest::default()
                };
                client.job_enqueue(&request).await.expect("enqueue")
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("enqueue task"));
    }

    let created = answers.iter().filter(|(_, created)| *created).count();
    assert_eq!(created, 1, "exactly one enqueue creates the job");
    let (winner, _) = answers.iter().find(|(_, created)| *created).unwrap();
    for (job, _) in &answers {
        assert_eq!(job.id, "one-of-a-kind");
        assert_eq!(
            (&job.params, job.created_at),
            (&winner.params, winner.created_at),
            "every answer is the one job"
        );
    }
    assert_eq!(spool.db.job_count().await, 1);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrently_enqueued_jobs_each_run_exactly_once() {
    let ledger_host = Recorder::start().await;
    let spool = Harness::start().await;
    spool.deploy_probe(&[ledger_host.host()]).await;
    let ids: Vec<String> = (0..100).map(|i| format!("job-{i:03}")).collect();

    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let client = spool.client.clone();
            let request = EnqueueRequest {
                kind: "probe".into(),
                params: ledger(&ledger_host, id),
                job_id: Some(id.clone()),
                ..EnqueueRequest::default()
            };
            tokio::spawn(async move { client.job_enqueue(&request).await.expect("enqueue") })
        })
        .collect();
    for task in tasks {
        let (_, created) = task.await.expect("enqueue task");
        assert!(created);
    }
    spool.db.wait_for_jobs(JobState::Completed, 100).await;

    let hits = ledger_host.hits();
    let expected = ids.iter().map(|id| (format!("/ledger/{id}"), 1)).collect();
    assert_eq!(hits, expected, "every job posted once");
    let retried: i64 = sqlx::query_scalar("select count(*) from spool.jobs where attempt <> 1")
        .fetch_one(&spool.db.pool)
        .await
        .unwrap();
    assert_eq!(retried, 0);
    assert_eq!(spool.db.job_count().await, 100);
    spool.stop().await;
}
