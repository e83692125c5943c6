//! What well-behaved guests get from the host: checked outbound HTTP, the
//! tenant's key-value store, follow-up jobs, progress, secrets kept out of
//! logs.

use serde_json::json;
use spool::api::types::JobView;
use spool::queue::JobState;

use crate::support::Harness;
use crate::support::recorder::Recorder;

fn get(url: String) -> serde_json::Value {
    json!({"do": "http", "method": "GET", "url": url})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_that_resolves_to_loopback_is_refused() {
    let recorder = Recorder::start().await;
    let port = recorder.addr.port();
    let spool = Harness::start().await;
    let grants = [format!("localhost:{port}"), format!("2130706433:{port}")];
    spool.deploy_probe(&grants).await;

    spool
        .probe("by-name", get(format!("http://localhost:{port}/x")))
        .await;
    spool
        .probe("by-number", get(format!("http://2130706433:{port}/x")))
        .await;
    let by_name = spool
        .wait_until("by-name", "failed", |job| !job.errors.is_empty())
        .await;
    let by_number = spool
        .wait_until("by-number", "failed", |job| !job.errors.is_empty())
        .await;

    assert!(
        recorder.requests().is_empty(),
        "no request may reach loopback"
    );
    for job in [&by_name, &by_number] {
        let error = &job.errors[0];
        assert!(
            error.error.contains("DestinationIpProhibited"),
            "{}",
            error.error
        );
        assert!(
            error
                .log
                .iter()
                .any(|l| l.contains("resolves to 127.0.0.1, which is not a public address")),
            "{:?}",
            error.log
        );
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_server_that_never_answers_fails_at_its_wait() {
    // Accepts connections and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let spool = Harness::start().await;
    spool.deploy_probe(&[addr.to_string()]).await;

    let request =
        json!({"do": "http", "method": "GET", "url": format!("http://{addr}/"), "wait_ms": 300});
    spool.probe("silent", request).await;
    let job = spool
        .wait_until("silent", "failed", |job| !job.errors.is_empty())
        .await;

    assert!(
        job.errors[0].error.contains("ConnectionReadTimeout"),
        "{}",
        job.errors[0].error
    );
    held.abort();
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_sends_at_most_a_hundred_requests() {
    let recorder = Recorder::start().await;
    let spool = Harness::start().await;
    spool.deploy_probe(&[recorder.host()]).await;

    spool
        .probe(
            "many",
            json!({"do": "http_many", "url": recorder.url("/n"), "count": 105}),
        )
        .await;
    let job = spool.wait_for_state("many", JobState::Completed).await;

    assert_eq!(job.result.unwrap()["sent"], 100);
    assert_eq!(recorder.requests().len(), 100);
    spool.stop().await;
}

/// Runs a probe action to its first outcome: finished, or failed once.
async fn settle(spool: &Harness, id: &str, action: serde_json::Value) -> JobView {
    spool.probe(id, action).await;
    spool
        .wait_until(id, "settled", |job| {
            job.state.is_finished() || !job.errors.is_empty()
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_value_store_keeps_values_and_counts_every_increment() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let set = settle(
        &spool,
        "set",
        json!({"do": "kv", "key": "greeting", "value": "hello", "counter": "hits", "delta": 5}),
    )
    .await;
    let read = settle(
        &spool,
        "read",
        json!({"do": "kv", "key": "greeting", "counter": "hits"}),
    )
    .await;
    for i in 0..30 {
        let increment = json!({"do": "kv", "key": "x", "counter": "counter", "delta": 1});
        spool.probe(&format!("inc-{i}"), increment).await;
    }
    for i in 0..30 {
        spool
            .wait_for_state(&format!("inc-{i}"), JobState::Completed)
            .await;
    }
    let total = settle(
        &spool,
        "total",
        json!({"do": "kv", "key": "x", "counter": "counter"}),
    )
    .await;

    assert_eq!(set.result.unwrap(), json!({"value": "hello", "sum": 5}));
    assert_eq!(read.result.unwrap(), json!({"value": "hello", "sum": 5}));
    assert_eq!(total.result.unwrap()["sum"], 30, "every increment counts");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_mistakes_are_errors_the_guest_sees() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let text = settle(
        &spool,
        "text",
        json!({"do": "kv", "key": "word", "value": "abc", "counter": "word", "delta": 1}),
    )
    .await;
    let long_key = settle(
        &spool,
        "long-key",
        json!({"do": "kv", "key": "k".repeat(300), "value": "v"}),
    )
    .await;

    assert_eq!(text.state, JobState::Retryable);
    assert!(
        text.errors[0].error.contains("kv: not an integer"),
        "{}",
        text.errors[0].error
    );
    assert!(
        long_key.errors[0]
            .error
            .contains("key: must be 1 to 256 bytes"),
        "{}",
        long_key.errors[0].error
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueues_follow_ups_for_its_own_tenant() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let follow_up = json!({
        "do": "enqueue",
        "kind": "probe",
        "params": {"do": "echo", "value": "from a job"},
        "job_id": "follow-up"
    });

    spool.probe("parent", follow_up.clone()).await;
    let parent = spool.wait_for_state("parent", JobState::Completed).await;
    let child = spool.wait_for_state("follow-up", JobState::Completed).await;
    spool.probe("again", follow_up).await;
    let again = spool.wait_for_state("again", JobState::Completed).await;

    assert_eq!(
        parent.result.unwrap(),
        json!({"id": "follow-up", "created": true})
    );
    assert_eq!(child.result.unwrap()["value"], "from a job");
    assert_eq!(
        again.result.unwrap(),
        json!({"id": "follow-up", "created": false})
    );
    let tenant: String = sqlx::query_scalar("select tenant from spool.jobs where id = 'follow-up'")
        .fetch_one(&spool.db.pool)
        .await
        .unwrap();
    assert_eq!(tenant, "default");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_are_checked_and_limited() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let unknown = settle(
        &spool,
        "unknown",
        json!({"do": "enqueue", "kind": "nope", "params": {}}),
    )
    .await;
    let bad_kind = settle(
        &spool,
        "bad-kind",
        json!({"do": "enqueue", "kind": "no spaces", "params": {}}),
    )
    .await;
    let far = settle(
        &spool,
        "far",
        json!({"do": "enqueue", "kind": "probe", "params": {}, "delay_secs": 4_294_967_295u64}),
    )
    .await;
    let many = settle(
        &spool,
        "many",
        json!({"do": "enqueue_many", "kind": "probe", "count": 105}),
    )
    .await;

    assert!(
        unknown.errors[0]
            .error
            .contains("kind: \"nope\" has no deployed module"),
        "{:?}",
        unknown.errors
    );
    assert!(
        bad_kind.errors[0]
            .error
            .contains("kind: \"no spaces\" is not valid"),
        "{:?}",
        bad_kind.errors
    );
    assert!(
        far.errors[0]
            .error
            .contains("delay_seconds: 4294967295 seconds is longer than ten years"),
        "{:?}",
        far.errors
    );
    let many = many.result.unwrap();
    assert_eq!(many["enqueued"], 100);
    assert!(
        many["error"].as_str().unwrap().contains("at most 100 jobs"),
        "{many}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_shown_while_the_job_runs_and_renews_its_lease() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    spool
        .probe(
            "slow",
            json!({"do": "progress", "percent": 40, "message": "halfway there", "ms": 3000}),
        )
        .await;
    let running = spool
        .wait_until("slow", "reporting progress", |job| job.progress.is_some())
        .await;
    let leased: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select leased_until from spool.jobs where id = 'slow'")
            .fetch_one(&spool.db.pool)
            .await
            .unwrap();
    let done = spool.wait_for_state("slow", JobState::Completed).await;

    assert_eq!(running.state, JobState::Running);
    let progress = running.progress.unwrap();
    assert_eq!(
        (progress["percent"].as_i64(), progress["message"].as_str()),
        (Some(40), Some("halfway there"))
    );
    let at = progress["at"].as_str().unwrap();
    assert!(at.ends_with('Z'), "{at}");
    let renewed_at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    assert!(
        leased >= renewed_at + chrono::Duration::seconds(29),
        "lease {leased} after report {renewed_at}"
    );
    assert_eq!(
        done.progress.unwrap()["percent"],
        40,
        "the last report stays with the job"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_never_reaches_the_job_log_or_errors() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let secret = "sk-live-4f8a1c2e9b";
    spool
        .client
        .config_set("api_key", secret, true)
        .await
        .unwrap();

    spool
        .probe("leak", json!({"do": "leak_secret", "name": "api_key"}))
        .await;
    let job = spool.wait_for_state("leak", JobState::Discarded).await;

    let error = &job.errors[0];
    assert_eq!(error.error, "leaking [redacted]");
    assert!(
        error
            .log
            .iter()
            .any(|l| l.contains("the secret is [redacted]")),
        "{:?}",
        error.log
    );
    let stored: String =
        sqlx::query_scalar("select errors::text from spool.jobs where id = 'leak'")
            .fetch_one(&spool.db.pool)
            .await
            .unwrap();
    assert!(!stored.contains(secret), "the secret was stored: {stored}");
    spool.stop().await;
}
