//! Hostile and broken guests: every misbehaviour ends the attempt with a
//! stored reason, counts as a failed attempt, and leaves the worker
//! serving other jobs.

use std::time::Duration;

use serde_json::json;
use spool::api::types::{EnqueueRequest, JobView};
use spool::client::DeployOptions;
use spool::queue::JobState;

use crate::support::{Harness, echo};

/// Deploys the probe with one attempt per job and a short timeout.
async fn strict_probe(spool: &Harness, timeout: Duration) {
    let options = DeployOptions {
        max_attempts: Some(1),
        timeout: Some(timeout),
        memory_limit_mib: Some(32),
        ..DeployOptions::default()
    };
    spool.deploy("probe", "probe", options).await;
}

/// The stored reason of a job's only failed attempt.
fn reason(job: &JobView) -> &str {
    assert_eq!(job.errors.len(), 1, "{job:#?}");
    &job.errors[0].error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_never_yields_is_stopped_while_other_jobs_finish() {
    let spool = Harness::start().await;
    strict_probe(&spool, Duration::from_secs(3)).await;

    spool.probe("spin", json!({"do": "spin"})).await;
    spool.wait_for_state("spin", JobState::Running).await;
    for i in 0..20 {
        spool.probe(&format!("echo-{i}"), echo(json!(i))).await;
    }
    let mut echoes = Vec::new();
    for i in 0..20 {
        echoes.push(
            spool
                .wait_for_state(&format!("echo-{i}"), JobState::Completed)
                .await,
        );
    }
    let spin = spool.wait_for_state("spin", JobState::Discarded).await;

    assert!(reason(&spin).starts_with("timed out"), "{}", reason(&spin));
    let spin_ended = spin.finalized_at.unwrap();
    for echo in &echoes {
        assert!(
            echo.finalized_at.unwrap() < spin_ended,
            "{} waited for the spinning guest",
            echo.id
        );
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_end_the_attempt_with_what_happened() {
    let spool = Harness::start().await;
    strict_probe(&spool, Duration::from_secs(30)).await;

    for (id, action) in [
        ("alloc", json!({"do": "alloc", "mib": 64})),
        ("recurse", json!({"do": "recurse"})),
        (
            "panic",
            json!({"do": "panic", "message": "the invariant broke"}),
        ),
        ("trap", json!({"do": "trap"})),
    ] {
        spool.probe(id, action).await;
    }
    spool.probe("bystander", echo(json!("fine"))).await;

    let mut reasons = Vec::new();
    for id in ["alloc", "recurse", "panic", "trap"] {
        reasons.push(reason(&spool.wait_for_state(id, JobState::Discarded).await).to_string());
    }
    let bystander = spool.wait_for_state("bystander", JobState::Completed).await;

    assert!(
        reasons[0].starts_with("memory limit exceeded: the guest asked for "),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].ends_with(" MiB, the module allows 32 MiB"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].starts_with("out-of-bounds memory access (a stack overflow")
            || reasons[1].starts_with("stack overflow"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].starts_with("guest panicked: the invariant broke (at "),
        "{}",
        reasons[2]
    );
    assert_eq!(
        reasons[3],
        "guest aborted (unreachable instruction reached)"
    );
    assert_eq!(bystander.result.unwrap()["value"], "fine");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_counts_as_a_failed_attempt_and_is_retried() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: json!({"do": "trap"}),
            job_id: Some("trap-twice".into()),
            max_attempts: Some(2),
            ..Default::default()
        })
        .await;
    let job = spool
        .wait_for_state("trap-twice", JobState::Discarded)
        .await;

    assert_eq!(job.attempt, 2);
    let attempts: Vec<i32> = job.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    spool.stop().await;
}

async fn raw(spool: &Harness, id: &str, mode: &str) -> JobView {
    spool
        .enqueue(EnqueueRequest {
            kind: "raw".into(),
            params: json!(mode),
            job_id: Some(id.into()),
            ..Default::default()
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_results_discard_the_job_with_the_reason() {
    let spool = Harness::start().await;
    spool.deploy("raw", "raw", DeployOptions::default()).await;

    raw(&spool, "not-json", "not-json").await;
    raw(&spool, "nul", "nul").await;
    raw(&spool, "huge", "huge").await;
    let not_json = spool.wait_for_state("not-json", JobState::Discarded).await;
    let nul = spool.wait_for_state("nul", JobState::Discarded).await;
    let huge = spool.wait_for_state("huge", JobState::Discarded).await;

    assert!(
        reason(&not_json).starts_with("result is not JSON: "),
        "{}",
        reason(&not_json)
    );
    assert_eq!(
        reason(&nul),
        "result contains \\u0000, which cannot be stored"
    );
    assert_eq!(
        reason(&huge),
        "result too large: 2097154 bytes, the limit is 1048576 bytes"
    );
    for job in [&not_json, &nul, &huge] {
        assert_eq!(
            (job.attempt, &job.result),
            (1, &None),
            "{} must not be retried",
            job.id
        );
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_are_stored_clean_and_bounded() {
    let spool = Harness::start().await;
    spool
        .deploy(
            "raw",
            "raw",
            DeployOptions {
                max_attempts: Some(1),
                ..Default::default()
            },
        )
        .await;

    raw(&spool, "nul-error", "nul-error").await;
    raw(&spool, "huge-error", "huge-error").await;
    let nul = spool.wait_for_state("nul-error", JobState::Discarded).await;
    let huge = spool
        .wait_for_state("huge-error", JobState::Discarded)
        .await;

    assert_eq!(reason(&nul), "bad\u{fffd}byte");
    let message = reason(&huge);
    assert_eq!(message.len(), 4096 + " [truncated]".len());
    assert!(message.ends_with("e [truncated]"));
    let stored: i32 = sqlx::query_scalar(
        "select octet_length(errors::text) from spool.jobs where id = 'huge-error'",
    )
    .fetch_one(&spool.db.pool)
    .await
    .unwrap();
    assert!(stored < 8192, "the stored error history is {stored} bytes");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_cut_kept_short_and_counted() {
    let spool = Harness::start().await;
    strict_probe(&spool, Duration::from_secs(60)).await;

    spool
        .probe("flood", json!({"do": "log", "count": 5000, "fail": true}))
        .await;
    spool
        .probe("print", json!({"do": "print", "count": 20000}))
        .await;
    let flood = spool.wait_for_state("flood", JobState::Discarded).await;
    let print = spool.wait_for_state("print", JobState::Completed).await;

    let log = &flood.errors[0].log;
    assert_eq!(log.len(), 20, "{log:?}");
    assert!(log[0].starts_with("info: probe line i="), "{log:?}");
    let counted = log.last().unwrap();
    let dropped: u32 = counted
        .strip_prefix("warn: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of dropped events: {counted}"));
    assert!(
        dropped >= 4000,
        "only {dropped} events were dropped of 5000: {counted}"
    );
    assert!(
        counted.contains("log events were not written to the host's log"),
        "{counted}"
    );
    assert_eq!(
        print.result.unwrap()["printed"],
        20000,
        "a flood of stdout must not fail the job"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_grants_no_files_environment_or_sockets() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    spool.probe("sandbox", json!({"do": "sandbox"})).await;
    let result = spool
        .wait_for_state("sandbox", JobState::Completed)
        .await
        .result
        .unwrap();

    let denied = |key: &str| {
        let outcome = result[key].as_str().unwrap_or_default();
        assert!(outcome.starts_with("denied: "), "{key}: {outcome}");
    };
    for key in ["file", "dir", "write", "tcp", "udp", "dns"] {
        denied(key);
    }
    assert_eq!(result["env"], 0, "no environment variables");
    assert_eq!(result["args"], 0, "no arguments");
    // A name only, with nothing behind it: no directory is preopened.
    assert_eq!(result["cwd"], "/");
    assert_eq!(result["wall_clock"], true, "the wall clock is granted");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_guest_that_never_yields_is_cancelled_not_timed_out() {
    let spool = Harness::start().await;
    strict_probe(&spool, Duration::from_secs(600)).await;

    spool.probe("spin", json!({"do": "spin"})).await;
    spool.wait_for_state("spin", JobState::Running).await;
    let requested = spool.client.job_cancel("spin").await.unwrap();
    let cancelled = spool.wait_for_state("spin", JobState::Cancelled).await;

    assert_eq!(requested.state, JobState::Running);
    assert!(requested.cancel_requested_at.is_some());
    assert_eq!(reason(&cancelled), "cancelled while running");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_racing_completions_leave_one_consistent_terminal_state() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = spool.client.clone();
        let id = format!("race-{i}");
        spool
            .probe(&id, json!({"do": "sleep", "ms": (i % 4) * 10}))
            .await;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i % 5) * 7)).await;
            // Cancelling a job that just completed is refused; that is fine.
            let _ = client.job_cancel(&id).await;
        }));
    }
    futures::future::join_all(tasks).await;
    let mut ends = Vec::new();
    for i in 0..40 {
        let id = format!("race-{i}");
        ends.push(
            spool
                .wait_until(&id, "finished", |job| job.state.is_finished())
                .await,
        );
    }

    for job in &ends {
        match job.state {
            JobState::Completed => {
                assert!(job.result.is_some(), "{job:#?}");
                assert!(job.errors.is_empty(), "{job:#?}");
            }
            JobState::Cancelled => assert_eq!(job.result, None, "{job:#?}"),
            other => panic!("{} ended {other}", job.id),
        }
        assert!(job.attempt <= 1, "{} ran more than once", job.id);
    }
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select state, count(*) from spool.jobs group by state order by state")
            .fetch_all(&spool.db.pool)
            .await
            .unwrap();
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 40, "{rows:?}");
    spool.stop().await;
}
