//! Bad input: every malformed request is refused at the door with a 4xx
//! whose JSON body names the field and the problem, and nothing is written.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Harness;

mod endpoints;

/// What the API answered, read without the typed client.
struct Answer {
    status: u16,
    body: Value,
}

/// Sends `body` with `method` to `path` (which may carry a query string).
async fn send(
    spool: &Harness,
    method: Method,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> Answer {
    let response = spool
        .http()
        .request(method, format!("{}{path}", spool.client.base()))
        .body(body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error bodies are JSON ({e}); got {status} {text:?}"));
    Answer { status, body }
}

/// Posts `body` to `/v1/jobs` as JSON text.
async fn enqueue(spool: &Harness, body: &Value) -> Answer {
    send(spool, Method::POST, "/v1/jobs", body.to_string()).await
}

/// Asserts a refusal with `status` and `code`, blaming `field` (and naming
/// it in the message), with `problem` in the message.
#[track_caller]
fn assert_refused(answer: &Answer, status: u16, code: &str, field: Option<&str>, problem: &str) {
    let body = &answer.body;
    assert_eq!(answer.status, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body.get("field").and_then(Value::as_str), field, "{body}");
    let message = body["message"].as_str().expect("a message");
    if let Some(field) = field {
        assert!(
            message.contains(field),
            "message does not name {field}: {body}"
        );
    }
    assert!(
        message.contains(problem),
        "message does not say {problem:?}: {body}"
    );
}

/// Jobs and modules stored.
async fn rows(spool: &Harness) -> (i64, i64) {
    (spool.db.job_count().await, spool.db.module_count().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_one_json_object_are_refused() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let cases = [
        (r#"{"kind": "probe", "#, "not valid JSON"),
        (r#"{"kind": probe}"#, "not valid JSON"),
        (
            r#"{"kind": "probe", "params": {"a": "\ud800"}}"#,
            "not valid JSON",
        ),
        ("", "empty"),
        ("  \n", "empty"),
        (r#"{"kind": "probe"} {"kind": "probe"}"#, "trailing data"),
        (r#"{"kind": "probe"}x"#, "trailing data"),
        (r#"["probe"]"#, "not a JSON object"),
        ("null", "not a JSON object"),
    ];

    let mut answers = Vec::new();
    for (body, _) in cases {
        answers.push(send(&spool, Method::POST, "/v1/jobs", body).await);
    }

    for ((_, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some("body"), problem);
    }
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_params_is_refused_naming_its_path() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let params = json!({"user": {"name": ["Ada", "Ada\u{0}Lovelace"]}});

    let answer = enqueue(&spool, &json!({"kind": "probe", "params": params})).await;

    assert_refused(
        &answer,
        400,
        "invalid_request",
        Some("params.user.name[1]"),
        "\\u0000",
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_must_be_a_timestamp_with_an_offset() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let cases = [
        (json!("2026-12-05T09:00:00"), "has no UTC offset"),
        (json!("2026-12-05 09:00:00"), "has no UTC offset"),
        (json!("tomorrow"), "is not an RFC 3339 timestamp"),
        (
            json!("2026-13-05T09:00:00Z"),
            "is not an RFC 3339 timestamp",
        ),
        (json!(1_800_000_000), "invalid type"),
        (
            json!("0000-01-01T00:00:00+23:59"),
            "outside the years 0001 to 9999",
        ),
        (
            json!("9999-12-31T23:59:59-23:59"),
            "outside the years 0001 to 9999",
        ),
    ];

    let mut answers = Vec::new();
    for (run_at, _) in &cases {
        answers.push(enqueue(&spool, &json!({"kind": "probe", "run_at": run_at})).await);
    }

    for ((_, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some("run_at"), problem);
    }
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_and_delay_together_are_refused() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;

    let answer = enqueue(
        &spool,
        &json!({"kind": "probe", "run_at": "2026-12-05T09:00:00Z", "delay": "10m"}),
    )
    .await;

    assert_refused(&answer, 400, "invalid_request", Some("run_at"), "delay");
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_that_are_not_durations_are_refused() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let cases = [
        (json!(-5), "is negative"),
        (json!("-5"), "is negative"),
        (json!("soon"), "is not a duration"),
        (json!("20years"), "longer than ten years"),
        (json!(true), "not a number or a string"),
    ];

    let mut answers = Vec::new();
    for (delay, _) in &cases {
        answers.push(enqueue(&spool, &json!({"kind": "probe", "delay": delay})).await);
    }

    for ((_, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some("delay"), problem);
    }
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_without_a_module_is_refused_with_422() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;

    let answer = enqueue(&spool, &json!({"kind": "user:never-deployed"})).await;

    assert_refused(
        &answer,
        422,
        "unknown_kind",
        Some("kind"),
        "\"user:never-deployed\" has no deployed module",
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_kinds_and_queues_are_refused() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let long_kind = "k".repeat(129);
    let cases = [
        (json!({"kind": "user send-email"}), "kind"),
        (json!({"kind": "user/send-email"}), "kind"),
        (json!({"kind": "süß"}), "kind"),
        (json!({"kind": ":probe"}), "kind"),
        (json!({"kind": ""}), "kind"),
        (json!({"kind": long_kind}), "kind"),
        (json!({"kind": 7}), "kind"),
        (json!({"kind": "probe", "queue": "mail queue"}), "queue"),
        (json!({"kind": "probe", "queue": "q".repeat(65)}), "queue"),
    ];

    let mut answers = Vec::new();
    for (body, _) in &cases {
        answers.push(enqueue(&spool, body).await);
    }

    for ((body, field), answer) in cases.iter().zip(&answers) {
        let problem = if body[*field].is_string() {
            "is not valid; use 1 to"
        } else {
            "invalid type"
        };
        assert_refused(answer, 400, "invalid_request", Some(field), problem);
    }
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_job_ids_are_refused_and_255_characters_are_not() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let cases = [
        (String::new(), "must not be empty"),
        ("send-email:\u{0}ada".to_string(), "control characters"),
        ("send-email\nada".to_string(), "control characters"),
        (" send-email:ada".to_string(), "whitespace"),
        ("j".repeat(256), "at most 255 characters"),
    ];
    // 255 characters of two bytes each: the limit counts characters.
    let longest = "é".repeat(255);

    let mut answers = Vec::new();
    for (job_id, _) in &cases {
        answers.push(enqueue(&spool, &json!({"kind": "probe", "job_id": job_id})).await);
    }
    let refused_rows = rows(&spool).await;
    let accepted = enqueue(&spool, &json!({"kind": "probe", "job_id": longest})).await;

    for ((_, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some("job_id"), problem);
    }
    assert_eq!(refused_rows, before);
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    assert_eq!(accepted.body["id"], longest);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_and_max_attempts_out_of_range_are_refused() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let cases = [
        ("priority", json!(10), "10 is not between 0 and 9"),
        ("priority", json!(-1), "-1 is not between 0 and 9"),
        ("priority", json!("high"), "invalid type: string \"high\""),
        ("priority", json!(1.5), "invalid type"),
        ("max_attempts", json!(0), "0 is not between 1 and 1000"),
        (
            "max_attempts",
            json!(1001),
            "1001 is not between 1 and 1000",
        ),
        ("max_attempts", json!(u64::MAX), "invalid value"),
    ];

    let mut answers = Vec::new();
    for (field, value, _) in &cases {
        answers.push(enqueue(&spool, &json!({"kind": "probe", *field: value})).await);
    }

    for ((field, _, problem), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, 400, "invalid_request", Some(field), problem);
    }
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_missing_and_repeated_fields_are_refused_by_name() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;

    let unknown = enqueue(&spool, &json!({"kind": "probe", "colour": "red"})).await;
    let missing = enqueue(&spool, &json!({"params": {}})).await;
    let twice = send(
        &spool,
        Method::POST,
        "/v1/jobs",
        r#"{"kind": "probe", "kind": "user:send-email"}"#,
    )
    .await;

    assert_refused(
        &unknown,
        400,
        "invalid_request",
        Some("colour"),
        "unknown field",
    );
    assert_refused(&missing, 400, "invalid_request", Some("kind"), "required");
    assert_refused(
        &twice,
        400,
        "invalid_request",
        Some("kind"),
        "more than once",
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_two_mebibytes_is_refused_with_413() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let padding = "a".repeat(2 << 20);
    let body = json!({"kind": "probe", "params": {"padding": padding}}).to_string();

    let answer = send(&spool, Method::POST, "/v1/jobs", body).await;

    assert_refused(
        &answer,
        413,
        "payload_too_large",
        Some("body"),
        "2097152 bytes",
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_over_one_mebibyte_are_refused_naming_params() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = rows(&spool).await;
    let padding = "a".repeat((1 << 20) + 1);
    let body = json!({"kind": "probe", "params": {"padding": padding}}).to_string();

    let answer = send(&spool, Method::POST, "/v1/jobs", body.clone()).await;

    assert!(body.len() < 2 << 20);
    assert_refused(
        &answer,
        400,
        "invalid_request",
        Some("params"),
        "the limit is 1048576",
    );
    assert_eq!(rows(&spool).await, before);
    spool.stop().await;
}
