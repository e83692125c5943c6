//! Write Spool jobs in Rust.
//!
//! A Spool job is a WebAssembly component that exports one function: it
//! receives the job's parameters and returns its result. This crate hides
//! the component plumbing: you write a plain Rust function over serde types
//! and the [`job`] attribute exports it.
//!
//! # From `cargo new` to a deployed job
//!
//! 1. Create a library crate that builds a dynamic library:
//!
//!    ```text
//!    cargo new --lib greet && cd greet
//!    ```
//!
//!    and give its `Cargo.toml` a `[lib]` section, and these lines under
//!    the `[dependencies]` that `cargo new` wrote:
//!
//!    ```toml
//!    [lib]
//!    crate-type = ["cdylib"]
//!
//!    [dependencies]
//!    spool-sdk = { path = "../spool/guest-sdk" }
//!    serde = { version = "1", features = ["derive"] }
//!    serde_json = "1"
//!    ```
//!
//! 2. Write the job:
//!
//!    ```no_run
//!    use serde::{Deserialize, Serialize};
//!    use spool_sdk::{Error, Job};
//!
//!    #[derive(Deserialize)]
//!    struct Params {
//!        name: String,
//!    }
//!
//!    #[derive(Serialize)]
//!    struct Greeting {
//!        text: String,
//!    }
//!
//!    #[spool_sdk::job]
//!    fn greet(job: &Job, params: Params) -> Result<Greeting, Error> {
//!        if params.name.is_empty() {
//!            return Err(Error::fail("name: must not be empty"));
//!        }
//!        spool_sdk::log::info("greeting", &[("attempt", &job.attempt.to_string())]);
//!        Ok(Greeting { text: format!("hello, {}", params.name) })
//!    }
//!    ```
//!
//! 3. Build a component. Either command produces one; the first needs only
//!    the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`):
//!
//!    ```text
//!    cargo build --release --target wasm32-wasip2   # target/wasm32-wasip2/release/greet.wasm
//!    cargo component build --release                # target/wasm32-wasip1/release/greet.wasm
//!    ```
//!
//! 4. Deploy it under a kind and enqueue a job, with your tenant's token
//!    in `SPOOL_TOKEN` (an operator makes one with `spool tenant create`):
//!
//!    ```text
//!    spool deploy greet target/wasm32-wasip2/release/greet.wasm
//!    spool enqueue greet '{"name": "Ada"}' --job-id greet:ada
//!    spool result --wait greet:ada
//!    ```
//!
//! # Params, results and errors
//!
//! Params arrive as JSON and are decoded into the function's parameter
//! type. Params that do not decode fail the job permanently with a message
//! that names the offending field, since a retry would fail the same way.
//! The returned value is encoded as JSON and stored as the job's result.
//!
//! An [`Error`] says what the host should do next: retry with backoff,
//! discard the job, retry after a delay, or cancel it. Any standard error
//! converts into [`Error::Retry`] with `?`; use [`ResultExt`] to choose
//! another outcome.
//!
//! # What a job can reach
//!
//! A job runs in a sandbox: no files, environment, sockets or arguments.
//! What it gets is explicit:
//!
//! - [`log`]: structured events in the host's log, carrying the job's id,
//!   kind, tenant and attempt;
//! - [`config`]: the tenant's config entries and secrets;
//! - [`kv`]: the tenant's key-value store, for counters and small state;
//! - [`jobs`]: follow-up jobs for the same tenant, and progress reports;
//! - [`http`]: outbound requests to the hosts the module was deployed with.
//!
//! # Running more than once
//!
//! Spool runs each job at least once: a worker that dies mid-job leaves the
//! job to be rescued and run again. Make a job's effects safe to repeat, for
//! example by passing the job id as an idempotency key to the APIs it calls.

#![deny(missing_docs)]

extern crate self as spool_sdk;

pub mod config;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod log;

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Marks a function as the job this component runs.
///
/// The function takes the params, or the [`Job`] and the params, and
/// returns `Result<R, E>` where the params implement
/// [`serde::Deserialize`], `R` implements [`serde::Serialize`] and `E`
/// converts into [`Error`]. One component exports exactly one job.
///
/// ```no_run
/// #[spool_sdk::job]
/// fn add(params: (i64, i64)) -> Result<i64, spool_sdk::Error> {
///     Ok(params.0 + params.1)
/// }
/// ```
pub use spool_sdk_macro::job;

/// Bindings generated from the job world. Not part of the stable API.
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        world: "job",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "::spool_sdk::wit",
        runtime_path: "::spool_sdk::__private::wit_bindgen::rt",
        generate_all,
    });
}

/// The attempt being run, as the host describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's id: the caller's `job_id`, or one the host generated.
    pub id: String,
    /// The kind the job was enqueued under.
    pub kind: String,
    /// The queue the job was claimed from.
    pub queue: String,
    /// The tenant that owns the job.
    pub tenant: String,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// How many attempts the job may have in all.
    pub max_attempts: u32,
}

impl Job {
    /// Whether this is the job's last allowed attempt.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Why an attempt failed, and what the host should do about it.
///
/// It deliberately does not implement [`std::error::Error`], so that any
/// standard error converts into it with `?` (as [`Error::Retry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Retry with exponential backoff while attempts remain.
    Retry(String),
    /// Discard the job now: another attempt would fail the same way.
    Fail(String),
    /// Retry after `delay` while attempts remain.
    RetryAfter {
        /// How long to wait, rounded up to whole seconds.
        delay: Duration,
        /// Why the attempt failed.
        message: String,
    },
    /// Cancel the job: no further attempts.
    Cancel(String),
}

impl Error {
    /// An error retried with backoff.
    pub fn retry(message: impl fmt::Display) -> Self {
        Self::Retry(message.to_string())
    }

    /// An error that discards the job.
    pub fn fail(message: impl fmt::Display) -> Self {
        Self::Fail(message.to_string())
    }

    /// An error retried after `delay`.
    pub fn retry_after(delay: Duration, message: impl fmt::Display) -> Self {
        Self::RetryAfter {
            delay,
            message: message.to_string(),
        }
    }

    /// Cancels the job.
    pub fn cancel(message: impl fmt::Display) -> Self {
        Self::Cancel(message.to_string())
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        match self {
            Self::Retry(m) | Self::Fail(m) | Self::Cancel(m) => m,
            Self::RetryAfter { message, .. } => message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Retry(message)
    }
}

/// Chooses the outcome of a failed operation.
pub trait ResultExt<T> {
    /// On error, discard the job with `context: error`.
    fn or_fail(self, context: &str) -> Result<T, Error>;

    /// On error, retry with backoff with `context: error`.
    fn or_retry(self, context: &str) -> Result<T, Error>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn or_fail(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| Error::fail(format!("{context}: {e}")))
    }

    fn or_retry(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| Error::retry(format!("{context}: {e}")))
    }
}

/// Support for the code that [`job`] generates. Not part of the stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::wit::exports::spool::job::handler::Guest;
    pub use crate::wit::spool::job::types::{JobError, JobInfo, RetryAfter};

    use super::*;

    /// Decodes the params, calls the job and encodes its outcome.
    pub fn run<P, R, E, F>(info: JobInfo, params: &str, job: F) -> Result<String, JobError>
    where
        P: DeserializeOwned,
        R: Serialize,
        E: Into<Error>,
        F: FnOnce(&Job, P) -> Result<R, E>,
    {
        let info = Job {
            id: info.id,
            kind: info.kind,
            queue: info.queue,
            tenant: info.tenant,
            attempt: info.attempt,
            max_attempts: info.max_attempts,
        };
        let params = decode_params(params).map_err(JobError::Fail)?;

        match job(&info, params) {
            Ok(value) => serde_json::to_string(&value)
                .map_err(|e| JobError::Fail(format!("encode result: {e}"))),
            Err(error) => Err(match error.into() {
                Error::Retry(m) => JobError::Retry(m),
                Error::Fail(m) => JobError::Fail(m),
                Error::Cancel(m) => JobError::Cancel(m),
                Error::RetryAfter { delay, message } => JobError::RetryAfter(RetryAfter {
                    seconds: whole_seconds(delay),
                    message,
                }),
            }),
        }
    }

    fn decode_params<P: DeserializeOwned>(params: &str) -> Result<P, String> {
        let mut deserializer = serde_json::Deserializer::from_str(params);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                format!("invalid params: {inner}")
            } else {
                format!("invalid params: {path}: {inner}")
            }
        })
    }

    fn whole_seconds(delay: Duration) -> u32 {
        let rounded_up = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        u32::try_from(rounded_up).unwrap_or(u32::MAX)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[derive(serde::Deserialize, Debug)]
        struct Params {
            #[expect(dead_code, reason = "only decoding is under test")]
            user_id: u64,
        }

        #[test]
        fn invalid_params_name_the_field() {
            let error = decode_params::<Params>(r#"{"user_id": "x"}"#).unwrap_err();
            assert!(
                error.starts_with("invalid params: user_id: invalid type"),
                "{error}"
            );

            let error = decode_params::<Params>("{}").unwrap_err();
            assert_eq!(
                error,
                "invalid params: missing field `user_id` at line 1 column 2"
            );
        }

        #[test]
        fn retry_after_rounds_up_to_whole_seconds() {
            assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
            assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
            assert_eq!(whole_seconds(Duration::from_secs(u64::MAX)), u32::MAX);
        }
    }
}
