//! A test guest: its params choose a behaviour, so that tests can drive
//! every outcome and misbehaviour through the real worker.
//!
//! Params: `{"do": "<action>", ...}`; see [`Action`].

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use spool_sdk::http::Request;
use spool_sdk::{Error, Job};

#[derive(Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    /// Returns `value`, with the attempt it succeeded on.
    Echo { value: Value },
    /// Fails with a retryable error until `attempt` is reached, then
    /// succeeds.
    FailUntil { attempt: u32 },
    /// Fails with the given outcome every time.
    Error {
        outcome: Outcome,
        message: String,
        #[serde(default)]
        seconds: u32,
    },
    /// Sleeps for `ms` (yielding to the host), then returns.
    Sleep { ms: u64 },
    /// Spins without calling the host.
    Spin,
    /// Panics with `message`.
    Panic { message: String },
    /// Allocates `mib` MiB and touches every page.
    Alloc { mib: usize },
    /// Sends an HTTP request and returns the status and body.
    Http {
        method: String,
        url: String,
        #[serde(default)]
        body: String,
    },
    /// Reads config entry `name` and secret `secret`.
    Config {
        name: String,
        #[serde(default)]
        secret: Option<String>,
    },
    /// Logs `count` lines at info.
    Log { count: u32 },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Retry,
    Fail,
    RetryAfter,
    Cancel,
}

#[spool_sdk::job]
fn probe(job: &Job, action: Action) -> Result<Value, Error> {
    match action {
        Action::Echo { value } => Ok(json!({ "value": value, "attempt": job.attempt })),
        Action::FailUntil { attempt } if job.attempt < attempt => Err(Error::retry(format!(
            "attempt {} failed on purpose",
            job.attempt
        ))),
        Action::FailUntil { .. } => Ok(json!({ "attempt": job.attempt })),
        Action::Error {
            outcome,
            message,
            seconds,
        } => Err(match outcome {
            Outcome::Retry => Error::retry(message),
            Outcome::Fail => Error::fail(message),
            Outcome::RetryAfter => Error::retry_after(Duration::from_secs(seconds.into()), message),
            Outcome::Cancel => Error::cancel(message),
        }),
        Action::Sleep { ms } => {
            #[expect(
                clippy::disallowed_methods,
                reason = "a guest's sleep waits on a host pollable and blocks no host thread"
            )]
            std::thread::sleep(Duration::from_millis(ms));
            Ok(json!({ "slept_ms": ms }))
        }
        Action::Spin => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Action::Panic { message } => panic!("{message}"),
        Action::Alloc { mib } => {
            let mut block = vec![0u8; mib << 20];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            Ok(
                json!({ "allocated_mib": mib, "sum": block.iter().map(|b| u64::from(*b)).sum::<u64>() }),
            )
        }
        Action::Http { method, url, body } => {
            let response = Request::new(&method, url).body(body).send()?;
            Ok(json!({ "status": response.status, "body": response.text() }))
        }
        Action::Config { name, secret } => Ok(json!({
            "value": spool_sdk::config::get(&name),
            "secret": secret.and_then(|s| spool_sdk::config::secret(&s)),
        })),
        Action::Log { count } => {
            for i in 0..count {
                spool_sdk::log::info("probe line", &[("i", &i.to_string())]);
            }
            Ok(json!({ "logged": count }))
        }
    }
}
