//! Enqueueing jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use super::{Claimed, Error, Job, Result};

/// A job to enqueue. Inputs are assumed validated by the caller (the API
/// checks lengths, characters and ranges; the table's constraints are the
/// last line of defence).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant: String,
    pub kind: String,
    pub params: Value,
    /// The caller's id for the job; a UUID is generated when absent.
    pub job_id: Option<String>,
    /// When the job may first run; `None` means now plus `delay_secs`.
    pub run_at: Option<DateTime<Utc>>,
    /// Seconds from now (database clock) when `run_at` is absent.
    pub delay_secs: f64,
    pub queue: String,
    pub priority: i16,
    /// `None` takes the module's default.
    pub max_attempts: Option<i32>,
}

/// What [`job_insert`] did.
#[derive(Debug, Clone)]
pub struct Inserted {
    pub job: Job,
    /// `false` when a job with the same id already existed and was returned
    /// instead; nothing was written then.
    pub created: bool,
    /// The attempt the insert claimed for the worker named in
    /// [`ClaimOnInsert`]; `None` when it claimed nothing.
    pub claimed: Option<Claimed>,
}

/// An idle worker of the enqueueing process that asks for the new job:
/// the row is then written already claimed by it (`running`, attempt 1),
/// which saves the claim's trip to the database. Only a job that may run
/// now is claimed, and only if its tenant is enabled and below its
/// `max_running`, as a claim would require.
#[derive(Debug, Clone, Copy)]
pub struct ClaimOnInsert<'a> {
    pub worker_id: &'a str,
    /// The claim's number, as for [`super::job_claim`].
    pub claim: i64,
    pub lease: Duration,
}

/// An id for a job enqueued without one: a UUID that begins with the time
/// (version 7). Jobs enqueued together then sit together in the index of
/// ids, which every change of a job's row writes to, instead of at random
/// places in it: a fifth off the cost of each such write.
pub(super) fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Inserts a job, or returns the existing job with the same id.
///
/// A job scheduled for now or the past is `available` at once, or
/// `running` if `claim_as` took it; a later one is `scheduled`. Fails with
/// [`Error::UnknownKind`] when no module is deployed for the kind. Workers
/// are woken by the table's insert trigger.
pub async fn job_insert(
    conn: &mut PgConnection,
    new: &NewJob,
    claim_as: Option<ClaimOnInsert<'_>>,
) -> Result<Inserted> {
    // The insert and the look-up of an existing job are two statements: a
    // conflicting insert from another transaction is only visible to a
    // statement that starts after it committed. The loop covers a job that
    // is pruned between the two.
    for _ in 0..3 {
        let inserted = sqlx::query_as!(
            InsertedRow,
            r#"
            insert into spool.jobs as j
                (tenant, id, kind, queue, state, priority, params, max_attempts, run_at,
                 attempt, attempted_at, leased_until, worker_id, claim)
            select $1, $2, $3, $4,
                   case when t.run_at > now() then 'scheduled'
                        when c.take then 'running'
                        else 'available' end,
                   $5, $6, coalesce($7, m.max_attempts), t.run_at,
                   case when c.take then 1 else 0 end,
                   case when c.take then now() end,
                   case when c.take then now() + make_interval(secs => $12) end,
                   case when c.take then $10 end,
                   case when c.take then $11::bigint else 0 end
            from (
                select max_attempts from spool.modules
                where tenant = $1 and kind = $3
                order by version desc
                limit 1
            ) m,
            (select coalesce($8::timestamptz, now() + make_interval(secs => $9)) as run_at) t,
            lateral (
                select $10::text is not null and t.run_at <= now()
                       and spool.tenant_may_start($1) as take
            ) c
            on conflict on constraint jobs_tenant_id_key do nothing
            -- A worker running a claimed row needs its module's settings.
            returning j.*, j.params::text as "params_text!",
                      (select digest from spool.modules
                       where j.leased_until is not null and tenant = j.tenant and kind = j.kind
                       order by version desc limit 1) as digest,
                      (select timeout_ms from spool.modules
                       where j.leased_until is not null and tenant = j.tenant and kind = j.kind
                       order by version desc limit 1) as timeout_ms,
                      (select memory_limit_bytes from spool.modules
                       where j.leased_until is not null and tenant = j.tenant and kind = j.kind
                       order by version desc limit 1) as memory_limit_bytes,
                      (select allowed_hosts from spool.modules
                       where j.leased_until is not null and tenant = j.tenant and kind = j.kind
                       order by version desc limit 1) as allowed_hosts
            "#,
            new.tenant,
            new.job_id.clone().unwrap_or_else(new_job_id),
            new.kind,
            new.queue,
            new.priority,
            new.params,
            new.max_attempts,
            new.run_at,
            new.delay_secs,
            claim_as.map(|c| c.worker_id),
            claim_as.map_or(0, |c| c.claim),
            claim_as.map_or(0.0, |c| c.lease.as_secs_f64()),
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = inserted {
            return Ok(row.into_inserted());
        }

        if let Some(id) = &new.job_id
            && let Some(job) = job_find(conn, &new.tenant, id).await?
        {
            return Ok(Inserted {
                job,
                created: false,
                claimed: None,
            });
        }
        if !kind_exists(conn, &new.tenant, &new.kind).await? {
            return Err(Error::UnknownKind {
                kind: new.kind.clone(),
            });
        }
    }
    Err(Error::Database(sqlx::Error::Protocol(
        "job id kept conflicting with a job that then disappeared".into(),
    )))
}

async fn job_find(conn: &mut PgConnection, tenant: &str, id: &str) -> Result<Option<Job>> {
    let job = sqlx::query_as!(
        Job,
        "select * from spool.jobs where tenant = $1 and id = $2",
        tenant,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(job)
}

async fn kind_exists(conn: &mut PgConnection, tenant: &str, kind: &str) -> Result<bool> {
    let exists = sqlx::query_scalar!(
        r#"
        select exists(select 1 from spool.modules where tenant = $1 and kind = $2) as "exists!"
        "#,
        tenant,
        kind
    )
    .fetch_one(conn)
    .await?;
    Ok(exists)
}

/// A row [`job_insert`] wrote, with what a worker needs to run it.
struct InsertedRow {
    seq: i64,
    tenant: String,
    id: String,
    kind: String,
    queue: String,
    state: String,
    priority: i16,
    params: Value,
    result: Option<Value>,
    errors: Value,
    attempt: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    attempted_at: Option<DateTime<Utc>>,
    finalized_at: Option<DateTime<Utc>>,
    worker_id: Option<String>,
    leased_until: Option<DateTime<Utc>>,
    cancel_requested_at: Option<DateTime<Utc>>,
    progress: Option<Value>,
    claim: i64,
    /// The params as the claim statement hands them to guests.
    params_text: String,
    digest: Option<String>,
    timeout_ms: Option<i32>,
    memory_limit_bytes: Option<i64>,
    allowed_hosts: Option<Vec<String>>,
}

impl InsertedRow {
    fn into_inserted(self) -> Inserted {
        let job = Job {
            seq: self.seq,
            tenant: self.tenant,
            id: self.id,
            kind: self.kind,
            queue: self.queue,
            state: self.state,
            priority: self.priority,
            params: self.params,
            result: self.result,
            errors: self.errors,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            created_at: self.created_at,
            attempted_at: self.attempted_at,
            finalized_at: self.finalized_at,
            worker_id: self.worker_id,
            leased_until: self.leased_until,
            cancel_requested_at: self.cancel_requested_at,
            progress: self.progress,
            claim: self.claim,
        };
        let claimed = (job.leased_until.is_some()).then(|| Claimed {
            seq: job.seq,
            claim: job.claim,
            tenant: job.tenant.clone(),
            id: job.id.clone(),
            kind: job.kind.clone(),
            queue: job.queue.clone(),
            params: self.params_text,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            digest: self.digest,
            timeout_ms: self.timeout_ms,
            memory_limit_bytes: self.memory_limit_bytes,
            allowed_hosts: self.allowed_hosts,
        });
        Inserted {
            job,
            created: true,
            claimed,
        }
    }
}
