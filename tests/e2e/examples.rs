//! The example components, run by the real worker against a recorder
//! standing in for the mail endpoint.

use std::time::Duration;

use serde_json::{Value, json};
use spool::api::types::{EnqueueRequest, JobView};
use spool::client::DeployOptions;
use spool::queue::{JobState, RetryPolicy};

use crate::support::Harness;
use crate::support::recorder::Recorder;

/// Deploys the example `package` as `kind`, allowed to reach `sink`.
async fn deploy_example(spool: &Harness, sink: &Recorder, kind: &str, package: &str) {
    let options = DeployOptions {
        allowed_hosts: vec![sink.host()],
        ..DeployOptions::default()
    };
    spool.deploy(kind, package, options).await;
}

/// Points the tenant's `mail_url` at the sink's `/mail`.
async fn set_mail_url(spool: &Harness, sink: &Recorder) {
    spool
        .client
        .config_set("mail_url", &sink.url("/mail"), false)
        .await
        .expect("set mail_url");
}

async fn enqueue(spool: &Harness, kind: &str, id: &str, params: Value) -> JobView {
    spool
        .enqueue(EnqueueRequest {
            kind: kind.into(),
            params,
            job_id: Some(id.into()),
            ..EnqueueRequest::default()
        })
        .await
}

/// The only error of a job discarded on its first attempt.
async fn discarded_once(spool: &Harness, id: &str) -> String {
    let job = spool.wait_for_state(id, JobState::Discarded).await;
    assert_eq!(job.attempt, 1, "{id}");
    assert!(job.max_attempts > 1, "{id}: attempts were left");
    assert_eq!(job.errors.len(), 1, "{id}");
    job.errors[0].error.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_email_posts_one_message_with_the_job_id_as_idempotency_key() {
    let sink = Recorder::start().await;
    let spool = Harness::start().await;
    deploy_example(&spool, &sink, "user:send-email", "send-email").await;
    set_mail_url(&spool, &sink).await;

    let params = json!({"to": "ada@example.com", "name": "Ada"});
    enqueue(&spool, "user:send-email", "welcome:ada", params).await;
    let job = spool
        .wait_for_state("welcome:ada", JobState::Completed)
        .await;

    assert_eq!(
        job.result,
        Some(json!({"to": "ada@example.com", "subject": "Welcome aboard", "status": 202}))
    );
    let received = sink.requests();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(
        (mail.method.as_str(), mail.path.as_str()),
        ("POST", "/mail")
    );
    assert_eq!(mail.headers["idempotency-key"], "welcome:ada");
    assert_eq!(
        mail.json(),
        json!({
            "to": "ada@example.com",
            "subject": "Welcome aboard",
            "text": "Hi Ada,\n\nthanks for signing up. Your account is ready.\n",
        })
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_email_sends_the_api_key_secret_as_a_bearer_token() {
    let sink = Recorder::start().await;
    let spool = Harness::start().await;
    deploy_example(&spool, &sink, "user:send-email", "send-email").await;
    set_mail_url(&spool, &sink).await;
    spool
        .client
        .config_set("mail_api_key", "key-9f2b7c41", true)
        .await
        .unwrap();

    let params = json!({"to": "grace@example.com", "name": "Grace"});
    enqueue(&spool, "user:send-email", "welcome:grace", params).await;
    spool
        .wait_for_state("welcome:grace", JobState::Completed)
        .await;

    let received = sink.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].headers["authorization"], "Bearer key-9f2b7c41");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_email_discards_invalid_params_after_one_attempt() {
    let sink = Recorder::start().await;
    let spool = Harness::start().await;
    deploy_example(&spool, &sink, "user:send-email", "send-email").await;
    set_mail_url(&spool, &sink).await;

    let cases = [
        (
            "bad-address",
            json!({"to": "not-an-email", "name": "x"}),
            "to: not an email address: \"not-an-email\"",
        ),
        (
            "no-name",
            json!({"to": "ada@example.com"}),
            "missing field `name`",
        ),
        (
            "extra-field",
            json!({"to": "ada@example.com", "name": "Ada", "cc": "bob@example.com"}),
            "unknown field `cc`",
        ),
        (
            "blank-name",
            json!({"to": "ada@example.com", "name": "  "}),
            "name: must be 1 to 100 characters",
        ),
    ];
    for (id, params, _) in &cases {
        enqueue(&spool, "user:send-email", id, params.clone()).await;
    }

    for (id, _, expected) in cases {
        let error = discarded_once(&spool, id).await;
        assert!(error.contains(expected), "{id}: {error}");
    }
    assert!(sink.requests().is_empty(), "nothing was sent");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_email_retries_when_the_mail_endpoint_fails() {
    let sink = Recorder::start().await;
    sink.respond_with(500);
    let spool = Harness::start_with(|config| {
        config.worker.as_mut().unwrap().retry = RetryPolicy {
            base: Duration::from_secs(3600),
            cap: Duration::from_secs(3600),
        };
    })
    .await;
    deploy_example(&spool, &sink, "user:send-email", "send-email").await;
    set_mail_url(&spool, &sink).await;

    let params = json!({"to": "ada@example.com", "name": "Ada", "template": "password_reset"});
    enqueue(&spool, "user:send-email", "reset:ada", params).await;
    let failed = spool.wait_for_state("reset:ada", JobState::Retryable).await;

    assert_eq!(failed.attempt, 1);
    let errors: Vec<_> = failed.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors, ["mail endpoint answered 500"]);

    // Once the endpoint recovers, a retry sends the same message with the
    // same key, so the endpoint can drop the duplicate.
    sink.respond_with(202);
    spool.client.job_retry("reset:ada").await.unwrap();
    let sent = spool.wait_for_state("reset:ada", JobState::Completed).await;
    assert_eq!(sent.attempt, 2);
    assert_eq!(sent.result.unwrap()["subject"], "Reset your password");
    let received = sink.requests();
    assert_eq!(received.len(), 2);
    for mail in &received {
        assert_eq!(mail.headers["idempotency-key"], "reset:ada");
    }
    assert_eq!(received[0].body, received[1].body);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_email_without_mail_url_is_discarded() {
    let sink = Recorder::start().await;
    let spool = Harness::start().await;
    deploy_example(&spool, &sink, "user:send-email", "send-email").await;

    let params = json!({"to": "ada@example.com", "name": "Ada"});
    enqueue(&spool, "user:send-email", "nowhere", params).await;

    let error = discarded_once(&spool, "nowhere").await;
    assert!(error.contains("mail_url"), "{error}");
    assert!(sink.requests().is_empty());
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_stats_aggregates_events_exactly() {
    let spool = Harness::start().await;
    spool
        .deploy("user:stats", "user-stats", DeployOptions::default())
        .await;
    let event =
        |kind: &str, post_id: u64, at: &str| json!({"type": kind, "post_id": post_id, "at": at});
    let events = json!([
        event("like", 7, "2026-12-01T10:00:00Z"),
        event("comment", 7, "2026-12-01T09:30:00Z"),
        event("share", 9, "2026-12-02T08:00:00.250Z"),
        event("like", 9, "2026-11-30T23:59:59Z"),
        event("like", 3, "2026-12-01T12:00:00Z"),
    ]);

    enqueue(
        &spool,
        "user:stats",
        "stats:42",
        json!({"user_id": 42, "events": events}),
    )
    .await;
    enqueue(
        &spool,
        "user:stats",
        "stats:43",
        json!({"user_id": 43, "events": []}),
    )
    .await;
    let busy = spool.wait_for_state("stats:42", JobState::Completed).await;
    let idle = spool.wait_for_state("stats:43", JobState::Completed).await;

    assert_eq!(
        busy.result,
        Some(json!({
            "user_id": 42,
            "events": 5,
            "likes": 3,
            "comments": 1,
            "shares": 1,
            "distinct_posts": 3,
            // Posts 7 and 9 tie with two events each; the lower id wins.
            "top_post": 7,
            "first_at": "2026-11-30T23:59:59Z",
            "last_at": "2026-12-02T08:00:00.250Z",
            "updates": 1,
        }))
    );
    assert_eq!(
        idle.result,
        Some(json!({
            "user_id": 43,
            "events": 0,
            "likes": 0,
            "comments": 0,
            "shares": 0,
            "distinct_posts": 0,
            "top_post": null,
            "first_at": null,
            "last_at": null,
            "updates": 1,
        }))
    );
    let kept: Vec<(String, String)> = sqlx::query_as(
        "select key, value from spool.kv where key like 'user-stats:42%' order by key",
    )
    .fetch_all(&spool.db.pool)
    .await
    .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        kept[1],
        ("user-stats:42:updates".to_string(), "1".to_string())
    );
    let aggregate: Value = serde_json::from_str(&kept[0].1).unwrap();
    assert_eq!(
        Some(aggregate),
        busy.result,
        "the aggregate is kept in the store"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_stats_names_the_event_with_a_bad_timestamp() {
    let spool = Harness::start().await;
    spool
        .deploy("user:stats", "user-stats", DeployOptions::default())
        .await;
    let params = json!({"user_id": 42, "events": [
        {"type": "like", "post_id": 1, "at": "2026-12-01T10:00:00Z"},
        {"type": "like", "post_id": 2, "at": "2026-12-01 10:00:00"},
    ]});

    enqueue(&spool, "user:stats", "stats:bad", params).await;

    let error = discarded_once(&spool, "stats:bad").await;
    assert!(
        error.starts_with("events[1].at: not an RFC 3339 UTC timestamp"),
        "{error}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_cart_reminder_never_sends_and_another_does() {
    let sink = Recorder::start().await;
    let spool = Harness::start().await;
    deploy_example(&spool, &sink, "cart:reminder", "cart-reminder").await;
    set_mail_url(&spool, &sink).await;
    let reminder = |id: &str| EnqueueRequest {
        kind: "cart:reminder".into(),
        params: json!({
            "cart_id": id,
            "email": "ada@example.com",
            "name": "Ada",
            "items": [
                {"sku": "mug-01", "title": "Mug", "quantity": 2, "price_cents": 1299},
                {"sku": "tee-02", "title": "T-shirt", "quantity": 1, "price_cents": 2500},
            ],
        }),
        job_id: Some(format!("remind:{id}")),
        delay: Some(json!("1s")),
        ..EnqueueRequest::default()
    };

    // The order completed: its reminder is cancelled while it waits.
    let ordered = spool.enqueue(reminder("c-17")).await;
    assert_eq!(ordered.state, JobState::Scheduled);
    let cancelled = spool.client.job_cancel("remind:c-17").await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    // The cart that stays abandoned is due no earlier than the cancelled
    // one was.
    spool.enqueue(reminder("c-18")).await;
    let reminded = spool
        .wait_for_state("remind:c-18", JobState::Completed)
        .await;

    assert_eq!(
        reminded.result,
        Some(
            json!({"cart_id": "c-18", "sent_to": "ada@example.com", "items": 3, "total_cents": 5098})
        )
    );
    let received = sink.requests();
    assert_eq!(received.len(), 1, "only the abandoned cart is reminded");
    assert_eq!(received[0].headers["idempotency-key"], "remind:c-18");
    assert_eq!(
        received[0].json(),
        json!({
            "to": "ada@example.com",
            "subject": "You left something in your cart",
            "text": "Hi Ada,\n\nyour cart is waiting:\n  2 x Mug ($12.99)\n  1 x T-shirt ($25.00)\n\nTotal: $50.98\n",
        })
    );
    let never = spool.client.job_get("remind:c-17").await.unwrap();
    assert_eq!((never.state, never.attempt), (JobState::Cancelled, 0));
    assert!(never.attempted_at.is_none());
    spool.stop().await;
}
