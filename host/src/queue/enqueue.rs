//! Enqueueing jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

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
#[derive(Debug, Clone, PartialEq)]
pub struct Inserted {
    pub job: Job,
    /// `false` when a job with the same id already existed and was returned
    /// instead; nothing was written then.
    pub created: bool,
}

/// An id for a job enqueued without one: a UUID that begins with the time
/// (version 7). Jobs enqueued together then sit together in the index of
/// ids, which every change of a job's row writes to, instead of at random
/// places in it: a fifth off the cost of each such write.
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Inserts a job, or returns the existing job with the same id.
///
/// A job scheduled for now or the past is `available` at once; a later one
/// is `scheduled`. Fails with [`Error::UnknownKind`] when no module is
/// deployed for the kind. Workers are woken by the table's insert trigger.
pub async fn job_insert(conn: &mut PgConnection, new: &NewJob) -> Result<Inserted> {
    // The insert and the look-up of an existing job are two statements: a
    // conflicting insert from another transaction is only visible to a
    // statement that starts after it committed. The loop covers a job that
    // is pruned between the two.
    for _ in 0..3 {
        let inserted = sqlx::query_as!(
            Job,
            r#"
            insert into spool.jobs as j
                (tenant, id, kind, queue, state, priority, params, max_attempts, run_at)
            select $1, $2, $3, $4,
                   case when t.run_at <= now() then 'available' else 'scheduled' end,
                   $5, $6, coalesce($7, m.max_attempts), t.run_at
            from (
                select max_attempts from spool.modules
                where tenant = $1 and kind = $3
                order by version desc
                limit 1
            ) m,
            (select coalesce($8::timestamptz, now() + make_interval(secs => $9)) as run_at) t
            on conflict on constraint jobs_tenant_id_key do nothing
            returning j.*
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
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(job) = inserted {
            return Ok(Inserted { job, created: true });
        }

        if let Some(id) = &new.job_id
            && let Some(job) = job_find(conn, &new.tenant, id).await?
        {
            return Ok(Inserted {
                job,
                created: false,
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

/// Inserts a job that may run now and claims it in the same statement for
/// `worker_id`, as [`super::job_claim`] would: running, attempt 1, leased
/// for `lease` under the claim number `claim`. This saves an idle worker
/// the claim's trip to the database after the insert.
///
/// The job is claimed only if no other job is available in its queue (so
/// it jumps none) and its tenant is enabled and below its `max_running`;
/// otherwise it is inserted `available`. Returns the job as written and,
/// when claimed, the attempt to start; `None` when nothing was written:
/// a job with the same id exists, or no module is deployed for the kind
/// ([`job_insert`] tells which, given the same `new`).
pub async fn job_insert_claimed(
    db: impl PgExecutor<'_>,
    new: &NewJob,
    worker_id: &str,
    claim: i64,
    lease: Duration,
) -> Result<Option<(Job, Option<Claimed>)>> {
    let row = sqlx::query_as!(
        ClaimedAtInsert,
        r#"
        with module as (
            select max_attempts, digest, timeout_ms, memory_limit_bytes, allowed_hosts
            from spool.modules
            where tenant = $1 and kind = $3
            order by version desc
            limit 1
        ),
        -- Materialised, so that it runs once rather than in every case
        -- below. The first check is a scalar subquery in the claim index's
        -- order, not `not exists`, which would drop the order: then a plan
        -- could scan the whole table for the available job that is not there.
        take as materialized (
            select (
                       select a.seq from spool.jobs a
                       where a.state = 'available' and a.queue = $4
                       order by a.queue, a.tenant, a.priority, a.run_at, a.seq
                       limit 1
                   ) is null
                   and exists (
                       select 1 from spool.tenants t
                       where t.name = $1 and t.disabled_at is null
                         and (t.max_running is null
                              or t.max_running > (select count(*) from spool.jobs r
                                                  where r.tenant = $1 and r.state = 'running'))
                   ) as yes
        ),
        inserted as (
            insert into spool.jobs as j
                (tenant, id, kind, queue, state, priority, params, max_attempts, run_at,
                 attempt, attempted_at, leased_until, worker_id, claim)
            select $1, $2, $3, $4,
                   case when take.yes then 'running' else 'available' end,
                   $5, $6, coalesce($7, module.max_attempts), now(),
                   case when take.yes then 1 else 0 end,
                   case when take.yes then now() end,
                   case when take.yes then now() + make_interval(secs => $10) end,
                   case when take.yes then $8 end,
                   case when take.yes then $9::bigint else 0 end
            from module, take
            on conflict on constraint jobs_tenant_id_key do nothing
            returning j.*, j.params::text as params_text
        )
        select i.seq as "seq!", i.tenant as "tenant!", i.id as "id!", i.kind as "kind!",
               i.queue as "queue!", i.state as "state!", i.priority as "priority!",
               i.params as "params!", i.result, i.errors as "errors!",
               i.attempt as "attempt!", i.max_attempts as "max_attempts!",
               i.run_at as "run_at!", i.created_at as "created_at!", i.attempted_at,
               i.finalized_at, i.worker_id, i.leased_until, i.cancel_requested_at,
               i.progress, i.claim as "claim!", i.params_text as "params_text!",
               m.digest as "digest!", m.timeout_ms as "timeout_ms!",
               m.memory_limit_bytes as "memory_limit_bytes!",
               m.allowed_hosts as "allowed_hosts!"
        from inserted i, module m
        "#,
        new.tenant,
        new.job_id.clone().unwrap_or_else(new_job_id),
        new.kind,
        new.queue,
        new.priority,
        new.params,
        new.max_attempts,
        worker_id,
        claim,
        lease.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(ClaimedAtInsert::split))
}

/// A row [`job_insert_claimed`] wrote, with the settings of the module
/// that runs it.
struct ClaimedAtInsert {
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
    digest: String,
    timeout_ms: i32,
    memory_limit_bytes: i64,
    allowed_hosts: Vec<String>,
}

impl ClaimedAtInsert {
    fn split(self) -> (Job, Option<Claimed>) {
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
        let claimed = job.leased_until.is_some().then(|| Claimed {
            seq: job.seq,
            claim: job.claim,
            tenant: job.tenant.clone(),
            id: job.id.clone(),
            kind: job.kind.clone(),
            queue: job.queue.clone(),
            params: self.params_text,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            digest: Some(self.digest),
            timeout_ms: Some(self.timeout_ms),
            memory_limit_bytes: Some(self.memory_limit_bytes),
            allowed_hosts: Some(self.allowed_hosts),
        });
        (job, claimed)
    }
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
