//! Bad input beyond enqueueing: uploads, deploy options, list and prune
//! queries, config entries, unknown routes and unreadable paths.

use reqwest::Method;
use serde_json::json;
use spool::api::types::EnqueueRequest;
use spool::queue::JobState;

use super::{assert_refused, rows, send};
use crate::support::{Harness, echo, guest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_components_are_refused() {
    let spool = Harness::start().await;
    let truncated = guest("probe")[..1000].to_vec();
    let cases = [
        (
            b"\0asm\x01\0\0\0".to_vec(),
            "a core WebAssembly module, not a component",
        ),
        (
            b"#!/bin/sh\necho hello\n".to_vec(),
            "not a WebAssembly binary",
        ),
        (truncated, "invalid component"),
    ];

    let mut answers = Vec::new();
    for (bytes, _) in &cases {
        answers.push(send(&spool, Method::PUT, "/v1/modules/probe", bytes.clone()).await);
    }
    let empty = send(&spool, Method::PUT, "/v1/modules/probe", Vec::new()).await;

    for ((_, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 422, "invalid_component", Some("body"), problem);
    }
    assert_refused(&empty, 400, "invalid_request", Some("body"), "empty");
    assert_eq!(rows(&spool).await, (0, 0));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_exports_no_job_handler_is_refused() {
    let spool = Harness::start().await;

    let answer = send(&spool, Method::PUT, "/v1/modules/probe", guest("not-a-job")).await;

    assert_refused(
        &answer,
        422,
        "invalid_component",
        Some("body"),
        "not a job component: it does not export spool:job/handler",
    );
    assert_eq!(rows(&spool).await, (0, 0));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_an_import_the_host_lacks_is_refused_naming_it() {
    let spool = Harness::start().await;

    let answer = send(
        &spool,
        Method::PUT,
        "/v1/modules/probe",
        guest("unknown-import"),
    )
    .await;

    assert_refused(
        &answer,
        422,
        "invalid_component",
        Some("body"),
        "acme:extra/telemetry",
    );
    assert_eq!(rows(&spool).await, (0, 0));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deploy_options_are_refused() {
    let spool = Harness::start().await;
    let cases = [
        (
            "probe?max_attempts=0",
            "max_attempts",
            "0 is not between 1 and 1000",
        ),
        ("probe?max_attempts=many", "max_attempts", "invalid digit"),
        (
            "probe?memory_limit_mib=5000",
            "memory_limit_mib",
            "5000 is not between 1 and 4096",
        ),
        ("probe?timeout_ms=0", "timeout_ms", "0 is not between 1 and"),
        (
            "probe?allowed_hosts=http://x",
            "allowed_hosts",
            "\"http://x\" is not host",
        ),
        ("probe?colour=red", "colour", "unknown field"),
        ("user%20stats", "kind", "is not valid"),
    ];

    let mut answers = Vec::new();
    for (path, _, _) in &cases {
        let path = format!("/v1/modules/{path}");
        answers.push(send(&spool, Method::PUT, &path, guest("probe")).await);
    }

    for ((_, field, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some(field), problem);
    }
    assert_eq!(rows(&spool).await, (0, 0));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_list_queries_are_refused() {
    let spool = Harness::start().await;
    let cases = [
        ("limit=0", "limit", "0 is not between 1 and 500"),
        ("limit=501", "limit", "501 is not between 1 and 500"),
        ("limit=ten", "limit", "invalid digit"),
        ("state=bogus", "state", "unknown variant `bogus`"),
        ("cursor=abc", "cursor", "not a cursor"),
        ("kind=user%20stats", "kind", "is not valid"),
        ("colour=red", "colour", "unknown field"),
        ("state=completed&state=running", "state", "more than once"),
    ];

    let mut answers = Vec::new();
    for (query, _, _) in &cases {
        let path = format!("/v1/jobs?{query}");
        answers.push(send(&spool, Method::GET, &path, Vec::new()).await);
    }

    for ((_, field, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some(field), problem);
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prune_requests_are_refused_and_delete_nothing() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("done", echo(json!(1))).await;
    spool.wait_for_state("done", JobState::Completed).await;
    let cases = [
        (
            "state=running&older_than=0s",
            "state",
            "running jobs cannot be pruned",
        ),
        ("state=finished&older_than=0s", "state", "unknown variant"),
        ("older_than=0s", "state", "required"),
        ("state=completed", "older_than", "required"),
        (
            "state=completed&older_than=xyz",
            "older_than",
            "is not a duration",
        ),
        ("state=completed&older_than=-1", "older_than", "is negative"),
    ];

    let mut answers = Vec::new();
    for (query, _, _) in &cases {
        let path = format!("/v1/jobs?{query}");
        answers.push(send(&spool, Method::DELETE, &path, Vec::new()).await);
    }

    for ((_, field, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some(field), problem);
    }
    assert_eq!(spool.db.job_count().await, 1);
    spool.stop().await;
}

/// A token id that cannot be one is refused as malformed (400), naming
/// the id; a well-formed id of no live token is 404. Nothing is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_ids_are_refused_before_any_lookup() {
    let spool = Harness::start().await;
    let before = spool.client.token_list().await.expect("list tokens");
    let mut answers = Vec::new();
    for id in ["xyz", "0123456789ABCDEF", "0123456789abcdef0", "%20"] {
        answers.push(send(&spool, Method::DELETE, &format!("/v1/tokens/{id}"), "").await);
    }
    let missing = send(&spool, Method::DELETE, "/v1/tokens/0123456789abcdef", "").await;
    let after = spool.client.token_list().await.expect("list tokens");

    for answer in &answers {
        assert_refused(answer, 400, "invalid_request", Some("id"), "16 hex digits");
    }
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["code"], "not_found");
    assert_eq!(after.tokens.len(), before.tokens.len());
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_entries_are_refused() {
    let spool = Harness::start().await;
    let cases = [
        ("1st-key", json!({"value": "x"}), "name", "is not valid"),
        ("smtp%20host", json!({"value": "x"}), "name", "is not valid"),
        (
            "smtp_host",
            json!({"value": "mail\u{0}.example.com"}),
            "value",
            "\\u0000",
        ),
        ("smtp_host", json!({"value": 25}), "value", "invalid type"),
        ("smtp_host", json!({"secret": true}), "value", "required"),
        (
            "smtp_host",
            json!({"value": "x".repeat(65 << 10)}),
            "value",
            "longer than",
        ),
    ];

    let mut answers = Vec::new();
    for (name, body, _, _) in &cases {
        let path = format!("/v1/config/{name}");
        answers.push(send(&spool, Method::PUT, &path, body.to_string()).await);
    }
    let stored = spool.client.config_list().await.expect("list config");

    for ((_, _, field, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some(field), problem);
    }
    assert_eq!(stored.entries, []);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_and_methods_answer_in_json() {
    let spool = Harness::start().await;

    let no_endpoint = send(&spool, Method::GET, "/v1/queues", Vec::new()).await;
    let no_version = send(&spool, Method::POST, "/jobs", "{}").await;
    let wrong_method = send(&spool, Method::DELETE, "/v1/modules", Vec::new()).await;
    let patch = send(&spool, Method::PATCH, "/v1/jobs/x", "{}").await;
    let no_job = send(&spool, Method::GET, "/v1/jobs/no-such-job", Vec::new()).await;

    assert_refused(&no_endpoint, 404, "not_found", None, "no such endpoint");
    assert_refused(&no_version, 404, "not_found", None, "no such endpoint");
    assert_refused(&wrong_method, 405, "method_not_allowed", None, "method");
    assert_refused(&patch, 405, "method_not_allowed", None, "method");
    assert_refused(
        &no_job,
        404,
        "not_found",
        None,
        "no job with id \"no-such-job\"",
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_segments_that_are_not_utf8_are_refused_in_json() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;

    let job = send(&spool, Method::GET, "/v1/jobs/%FF", Vec::new()).await;
    let cancel = send(&spool, Method::POST, "/v1/jobs/a%C3/cancel", Vec::new()).await;
    let module = send(&spool, Method::PUT, "/v1/modules/%FF", guest("probe")).await;
    let config = send(&spool, Method::PUT, "/v1/config/%FF", r#"{"value": "x"}"#).await;

    assert_refused(&job, 400, "invalid_request", Some("id"), "not valid UTF-8");
    assert_refused(
        &cancel,
        400,
        "invalid_request",
        Some("id"),
        "not valid UTF-8",
    );
    assert_refused(
        &module,
        400,
        "invalid_request",
        Some("kind"),
        "not valid UTF-8",
    );
    assert_refused(
        &config,
        400,
        "invalid_request",
        Some("name"),
        "not valid UTF-8",
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_segments_holding_nul_are_refused_in_json() {
    let spool = Harness::start().await;
    for (method, path, field) in [
        (Method::GET, "/v1/jobs/a%00", "id"),
        (Method::POST, "/v1/jobs/%00/cancel", "id"),
        (Method::POST, "/v1/jobs/%00/retry", "id"),
        (Method::DELETE, "/v1/tokens/%00", "id"),
    ] {
        let answer = send(&spool, method, path, Vec::new()).await;
        assert_refused(
            &answer,
            400,
            "invalid_request",
            Some(field),
            "contains \\u0000",
        );
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_reports_the_api_message_and_field() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let request = EnqueueRequest {
        kind: "probe".into(),
        run_at: Some("2026-12-05T09:00:00".into()),
        ..EnqueueRequest::default()
    };

    let error = spool.client.job_enqueue(&request).await.unwrap_err();

    let shown = error.to_string();
    assert!(shown.contains("has no UTC offset"), "{shown}");
    assert!(shown.contains("(400), field run_at"), "{shown}");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_a_408_and_writes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let addr = spool
        .client
        .base()
        .trim_start_matches("http://")
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        spool.token
    );

    stream.write_all(head.as_bytes()).await.unwrap();
    // The rest of the body never comes; the server gives up on it.
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(&answer[answer.find("\r\n\r\n").expect("a body") + 4..])
            .expect("a JSON error body");
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert_eq!(body["field"], "body", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing arrived for 10 s"),
        "{body}"
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}
