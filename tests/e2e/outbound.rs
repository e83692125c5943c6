//! Outbound HTTP from guests: only to the module's allowed hosts.

use serde_json::json;
use spool::queue::JobState;

use crate::support::Harness;
use crate::support::recorder::Recorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_reach_allowed_hosts_only() {
    let allowed = Recorder::start().await;
    let other = Recorder::start().await;
    let spool = Harness::start().await;
    spool.deploy_probe(&[allowed.host()]).await;
    let post = |url: String| json!({"do": "http", "method": "POST", "url": url, "body": "hello"});

    spool.probe("allowed", post(allowed.url("/inbox"))).await;
    spool.probe("denied", post(other.url("/inbox"))).await;
    let ok = spool.wait_for_state("allowed", JobState::Completed).await;
    let denied = spool
        .wait_until("denied", "failed", |job| !job.errors.is_empty())
        .await;

    assert_eq!(ok.result.unwrap()["status"], 202);
    let received = allowed.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("POST", "/inbox")
    );
    assert_eq!(&received[0].body[..], b"hello");

    assert!(
        other.requests().is_empty(),
        "a denied request must not reach the host"
    );
    let error = &denied.errors[0];
    assert!(error.error.contains("HttpRequestDenied"), "{}", error.error);
    let denial = format!("outbound request to {} denied", other.host());
    assert!(
        error.log.iter().any(|line| line.contains(&denial)),
        "{:?}",
        error.log
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueueing_an_existing_job_id_returns_that_job() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let request = |value: i32| spool::api::types::EnqueueRequest {
        kind: "probe".into(),
        params: crate::support::echo(json!(value)),
        job_id: Some("send-email:ada@example.com".into()),
        ..Default::default()
    };
    let (first, created_first) = spool.client.job_enqueue(&request(1)).await.unwrap();
    let (second, created_second) = spool.client.job_enqueue(&request(2)).await.unwrap();

    assert!(created_first);
    assert!(!created_second, "the second enqueue creates nothing");
    assert_eq!(second.id, first.id);
    assert_eq!(
        second.params, first.params,
        "the existing job is returned unchanged"
    );
    assert_eq!(spool.db.job_count().await, 1);
    spool.stop().await;
}
