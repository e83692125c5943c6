//! `chaos`: the job `spool chaos` runs under faults. Every attempt reports
//! its start and its end to the harness's ledger, so that the harness can
//! see what ran, when, and how often, whatever the database says.
//!
//! Params: `{"ledger": "http://127.0.0.1:PORT", "sleep_ms": 200,
//! "fail_attempts": [1], "fail": "retry"}`: the attempt sleeps, then fails
//! (`retry` with backoff, or `discard`) if its number is listed, and
//! succeeds otherwise.
//! Result: `{"attempt": 2, "slept_ms": 200}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool_sdk::http::Request;
use spool_sdk::{Error, Job};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    ledger: String,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail_attempts: Vec<u32>,
    #[serde(default)]
    fail: Failure,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Failure {
    #[default]
    Retry,
    Discard,
}

#[derive(Serialize)]
struct Done {
    attempt: u32,
    slept_ms: u64,
}

/// One ledger entry.
#[derive(Serialize)]
struct Entry<'a> {
    job: &'a str,
    attempt: u32,
    /// For `end`: `completed`, `retry` or `discard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a str>,
}

#[spool_sdk::job]
fn chaos(job: &Job, params: Params) -> Result<Done, Error> {
    report(&params.ledger, "start", job, None)?;

    #[expect(
        clippy::disallowed_methods,
        reason = "a guest's sleep waits on a host pollable and blocks no host thread"
    )]
    std::thread::sleep(Duration::from_millis(params.sleep_ms));

    let failing = params.fail_attempts.contains(&job.attempt);
    let outcome = match (failing, params.fail) {
        (false, _) => "completed",
        (true, Failure::Retry) => "retry",
        (true, Failure::Discard) => "discard",
    };
    report(&params.ledger, "end", job, Some(outcome))?;

    match (failing, params.fail) {
        (false, _) => Ok(Done {
            attempt: job.attempt,
            slept_ms: params.sleep_ms,
        }),
        (true, Failure::Retry) => Err(Error::retry(format!(
            "attempt {} fails on purpose",
            job.attempt
        ))),
        (true, Failure::Discard) => Err(Error::fail(format!(
            "attempt {} fails for good on purpose",
            job.attempt
        ))),
    }
}

/// POSTs an entry to `<ledger>/<event>`; a ledger that cannot be told
/// fails the attempt, to be retried.
fn report(ledger: &str, event: &str, job: &Job, outcome: Option<&str>) -> Result<(), Error> {
    let entry = Entry {
        job: &job.id,
        attempt: job.attempt,
        outcome,
    };
    let response = Request::post(format!("{ledger}/{event}"))
        .json(&entry)
        .map_err(|e| Error::fail(format!("encode the ledger entry: {e}")))?
        .send()?;
    if !response.is_success() {
        return Err(Error::retry(format!(
            "the ledger answered {} to {event}",
            response.status
        )));
    }
    Ok(())
}
