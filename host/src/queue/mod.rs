//! Every SQL statement Spool runs, and the job state machine they enforce.
//!
//! Nothing outside this module writes SQL. Functions are named noun first
//! (`job_insert`, `job_claim`, `module_insert`) and take the narrowest
//! executor they need, so that enqueueing can join a caller's transaction.
//!
//! Every time decision uses the database clock (`now()`), so workers on
//! machines with skewed clocks agree on what is due and what has expired.
//! Writes that record an attempt's outcome are fenced by the attempt
//! number: a late write from an attempt that was rescued or cancelled in
//! the meantime changes nothing.

mod batch;
mod config;
mod enqueue;
mod job;
mod kv;
mod lifecycle;
mod manage;
mod module;
mod retry;
pub mod rules;
mod tenants;

pub use batch::{BatchInserted, job_insert_batch};
pub use config::{ConfigEntry, config_delete, config_get, config_list, config_set};
pub use enqueue::{Inserted, NewJob, job_insert, job_insert_claimed, new_job_id};
pub use job::{AttemptError, Job, JobState};
pub use kv::{kv_delete, kv_get, kv_increment, kv_set};
pub use lifecycle::{
    CLAIM_TENANT_SCAN, Claimed, Expired, Finish, Heartbeat, claim_cursor, job_claim,
    job_finish_many, job_heartbeat, job_next_due_in, job_progress, job_promote_due, job_release,
    job_rescue_expired, new_claim,
};
pub use manage::{
    CancelOutcome, JobCount, JobFilter, job_cancel, job_counts, job_get, job_list, job_prune,
    job_retry,
};
pub use module::{
    Module, ModuleOptions, module_bytes, module_digests_ready, module_head, module_insert,
    module_list,
};
pub use retry::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP, FailAction, RetryPolicy,
};
pub use tenants::{
    Access, NewToken, StoredToken, TOKEN_PREFIX, Tenant, TenantChange, TokenInfo, split_token,
    tenant_create, tenant_get, tenant_list, tenant_update, token_create, token_list, token_lookup,
    token_revoke,
};

/// The channel that wakes workers when jobs become available.
pub const JOBS_CHANNEL: &str = "spool_jobs";
/// The channel that asks workers to stop a running job; the payload is the
/// job's `seq`.
pub const CANCEL_CHANNEL: &str = "spool_cancel";

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No module is deployed for the kind.
    #[error("kind {kind:?} has no deployed module")]
    UnknownKind { kind: String },
    /// No job with that id exists for the tenant.
    #[error("no job with id {id:?}")]
    JobNotFound { id: String },
    /// No tenant has that name.
    #[error("tenant not found")]
    TenantNotFound,
    /// A tenant of that name exists already.
    #[error("tenant {name:?} exists already")]
    TenantExists { name: String },
    /// The job is not in a state the operation applies to.
    #[error("job is {state}; only a job that is {allowed} can be {action}")]
    InvalidState {
        state: JobState,
        action: &'static str,
        allowed: &'static str,
    },
    /// The result or error to record for an attempt is not valid JSON.
    #[error("the outcome of job seq {seq} is not valid JSON")]
    InvalidOutcome {
        seq: i64,
        #[source]
        source: serde_json::Error,
    },
    /// The database failed or refused the statement.
    #[error("database")]
    Database(#[from] sqlx::Error),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
