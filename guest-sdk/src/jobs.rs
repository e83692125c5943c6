//! Acting on the queue from inside a job: enqueue follow-up jobs, report
//! progress.
//!
//! ```no_run
//! use spool_sdk::jobs::{self, Options};
//!
//! let follow_up = jobs::enqueue(
//!     "user:send-email",
//!     &serde_json::json!({"to": "ada@example.com", "name": "Ada"}),
//!     Options { job_id: Some("welcome:ada@example.com".into()), ..Options::default() },
//! )?;
//! jobs::progress(50, "half way");
//! # Ok::<(), spool_sdk::jobs::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::wit::spool::job::jobs::{self as host, EnqueueError, EnqueueOptions};

/// Settings of a follow-up job; `None` takes the same default as the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The follow-up's id: enqueueing an id that exists returns that job.
    pub job_id: Option<String>,
    /// How long from now before it may run (whole seconds).
    pub delay: Option<Duration>,
    /// 0 (first) to 9 (last).
    pub priority: Option<u8>,
    /// The queue; the running job's queue by default.
    pub queue: Option<String>,
    /// How many attempts it may have; the module's default otherwise.
    pub max_attempts: Option<u32>,
}

/// A follow-up job the host accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// Its id.
    pub id: String,
    /// `false` when a job with the requested id already existed.
    pub created: bool,
}

/// Why a follow-up job was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A malformed kind, id, params or option; the message names it.
    Invalid(String),
    /// No module is deployed for the kind.
    UnknownKind(String),
    /// The attempt already enqueued as many jobs as allowed.
    LimitReached(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(m) | Self::UnknownKind(m) | Self::LimitReached(m) => {
                write!(f, "enqueue refused: {m}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Enqueues a job of `kind` for this job's tenant.
pub fn enqueue<P: Serialize>(kind: &str, params: &P, options: Options) -> Result<Enqueued, Error> {
    let params = serde_json::to_string(params)
        .map_err(|e| Error::Invalid(format!("params: cannot be encoded: {e}")))?;
    let delay_seconds = options.delay.map(|d| {
        let rounded_up = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        u32::try_from(rounded_up).unwrap_or(u32::MAX)
    });
    let options = EnqueueOptions {
        job_id: options.job_id,
        delay_seconds,
        priority: options.priority,
        queue: options.queue,
        max_attempts: options.max_attempts,
    };
    match host::enqueue(kind, &params, &options) {
        Ok(enqueued) => Ok(Enqueued {
            id: enqueued.id,
            created: enqueued.created,
        }),
        Err(EnqueueError::Invalid(m)) => Err(Error::Invalid(m)),
        Err(EnqueueError::UnknownKind(m)) => Err(Error::UnknownKind(m)),
        Err(EnqueueError::LimitReached(m)) => Err(Error::LimitReached(m)),
    }
}

/// Reports progress (0 to 100, and a short message), shown in the job's
/// status. The host records at most one report a second.
pub fn progress(percent: u8, message: &str) {
    host::progress(percent.min(100), message);
}
