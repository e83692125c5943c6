//! The statements that move jobs through their life: claim, lease renewal,
//! finishing attempts, releasing, rescue and promotion of due jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::{Error, JobState, Result};

/// A job claimed for one attempt, with the module to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    /// The claim's number, which every write of this attempt names.
    pub claim: i64,
    pub tenant: String,
    pub id: String,
    pub kind: String,
    pub queue: String,
    /// The params as JSON text, handed to the guest as they are.
    pub params: String,
    /// This attempt's number, starting at 1.
    pub attempt: i32,
    pub max_attempts: i32,
    /// The newest module deployed for the kind; `None` if there is none.
    pub digest: Option<String>,
    pub timeout_ms: Option<i32>,
    pub memory_limit_bytes: Option<i64>,
    pub allowed_hosts: Option<Vec<String>>,
}

/// Tenants that may run work that one claim hands its batch to. With more
/// than this many, claims walk on from where the previous one stopped
/// (`cursor`).
pub const CLAIM_TENANT_SCAN: i64 = 256;
/// Tenants with ready jobs one claim walks past at most, counting those it
/// skips (disabled, or at their limit).
pub const CLAIM_TENANT_WALK: i32 = 4096;

/// Claims up to `limit` available jobs of `queue` for `worker_id` and
/// leases them for `lease`, sharing the batch fairly between tenants.
/// `claim` is a number the worker has not used before (see
/// [`new_claim`]); the attempts' writes must name it.
///
/// The claim walks the tenants with ready jobs in the queue (a skip scan
/// over `jobs_claim_idx`, starting after `cursor` and wrapping around),
/// passes over disabled tenants and those at their `max_running` (they
/// do not count against [`CLAIM_TENANT_SCAN`]), and gives each
/// candidate job a share: its tenant's running jobs plus its rank among
/// the tenant's ready jobs (priority, run_at, seq). Lowest shares win, so
/// a tenant with one job is served as soon as a tenant with a hundred
/// thousand. Within a tenant, jobs run in priority order.
///
/// A tenant's limit holds against the jobs running when the claim starts;
/// claims of several workers at the same instant can overshoot it by what
/// each takes at once.
pub async fn job_claim(
    db: impl PgExecutor<'_>,
    queue: &str,
    limit: i64,
    worker_id: &str,
    claim: i64,
    lease: Duration,
    cursor: &str,
) -> Result<Vec<Claimed>> {
    let claimed = sqlx::query_as!(
        Claimed,
        r#"
        with recursive after_cursor(tenant, n) as (
            (select tenant, 1 from spool.jobs
             where state = 'available' and queue = $1 and tenant > $5
             order by tenant limit 1)
            union all
            select (select j.tenant from spool.jobs j
                    where j.state = 'available' and j.queue = $1 and j.tenant > a.tenant
                    order by j.tenant limit 1),
                   a.n + 1
            from after_cursor a
            where a.tenant is not null and a.n < $7
        ),
        up_to_cursor(tenant, n) as (
            (select tenant, 1 from spool.jobs
             where state = 'available' and queue = $1 and tenant <= $5
             order by tenant limit 1)
            union all
            select (select j.tenant from spool.jobs j
                    where j.state = 'available' and j.queue = $1 and j.tenant > b.tenant
                      and j.tenant <= $5
                    order by j.tenant limit 1),
                   b.n + 1
            from up_to_cursor b
            where b.tenant is not null and b.n < $7
        ),
        ready as (
            select tenant, ring from (
                select tenant, n as ring from after_cursor where tenant is not null
                union all
                select tenant, $7 + n from up_to_cursor where tenant is not null
            ) r
            order by ring
            limit $7
        ),
        budget as (
            select * from (
                select r.tenant, r.ring, t.max_running,
                       (select count(*) from spool.jobs x
                        where x.tenant = r.tenant and x.state = 'running') as running
                from ready r
                join spool.tenants t on t.name = r.tenant and t.disabled_at is null
            ) b
            where b.max_running is null or b.running < b.max_running
            order by b.ring
            limit $6
        ),
        candidates as (
            select c.seq, b.running + c.rank as share, b.ring, c.priority, c.run_at
            from budget b
            cross join lateral (
                select j.seq, j.priority, j.run_at,
                       row_number() over (order by j.priority, j.run_at, j.seq) as rank
                from (
                    select seq, priority, run_at from spool.jobs
                    where state = 'available' and queue = $1 and tenant = b.tenant
                    order by priority, run_at, seq
                    limit least($2, greatest(0, coalesce(b.max_running - b.running, $2)))
                ) j
            ) c
        ),
        picked as (
            select seq from spool.jobs
            where seq = any(array(
                select seq from candidates
                order by share, ring, priority, run_at, seq
                limit $2
            ))
              and state = 'available'
            for update skip locked
        ),
        claimed as (
            update spool.jobs
            set state = 'running',
                attempt = attempt + 1,
                attempted_at = now(),
                leased_until = now() + make_interval(secs => $4),
                worker_id = $3,
                claim = $8
            where seq = any(array(select seq from picked))
            returning seq, claim, tenant, id, kind, queue, params::text as params, attempt,
                      max_attempts
        )
        select c.seq as "seq!", c.claim as "claim!", c.tenant as "tenant!", c.id as "id!",
               c.kind as "kind!", c.queue as "queue!", c.params as "params!",
               c.attempt as "attempt!",
               c.max_attempts as "max_attempts!", m.digest as "digest?",
               m.timeout_ms as "timeout_ms?", m.memory_limit_bytes as "memory_limit_bytes?",
               m.allowed_hosts as "allowed_hosts?"
        from claimed c
        left join lateral (
            select digest, timeout_ms, memory_limit_bytes, allowed_hosts
            from spool.modules
            where tenant = c.tenant and kind = c.kind
            order by version desc
            limit 1
        ) m on true
        "#,
        queue,
        limit,
        worker_id,
        lease.as_secs_f64(),
        cursor,
        CLAIM_TENANT_SCAN,
        CLAIM_TENANT_WALK,
        claim,
    )
    .fetch_all(db)
    .await?;
    Ok(claimed)
}

/// A number for a new claim. Random rather than counted, so that no
/// claim of this worker, nor of an earlier process that had its id, can
/// have used it: not even one that a crash undid and whose attempt still
/// runs.
pub fn new_claim() -> i64 {
    uuid::Uuid::new_v4().as_u64_pair().0 as i64
}

/// Where the next claim's walk over tenants starts: after the claimed
/// tenant furthest along the ring from `cursor`.
pub fn claim_cursor(cursor: &str, claimed: &[Claimed]) -> Option<String> {
    let tenants = claimed.iter().map(|job| job.tenant.as_str());
    let beyond = tenants.clone().filter(|t| *t > cursor).max();
    beyond.or_else(|| tenants.max()).map(str::to_string)
}

/// A running attempt whose lease a worker renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub seq: i64,
    pub claim: i64,
    pub cancel_requested: bool,
}

/// Extends the leases of `worker_id`'s attempts, given as (job seq, claim)
/// pairs, to `lease` from now. Returns the attempts that still hold
/// their lease, and whether each was asked to stop; an attempt missing
/// from the answer lost its job (rescued, finished elsewhere, claimed
/// again, or its lease ran out and awaits the rescuer) and must stop
/// without writing.
pub async fn job_heartbeat(
    db: impl PgExecutor<'_>,
    worker_id: &str,
    attempts: &[(i64, i64)],
    lease: Duration,
) -> Result<Vec<Heartbeat>> {
    // A job may appear with two claims: one a crash undid, and the one
    // that replaced it. Each job maps to all of its claims.
    let mut claims_of: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(seq, claim) in attempts {
        claims_of.entry(seq).or_default().push(claim);
    }
    let held = sqlx::query_as!(
        Heartbeat,
        r#"
        update spool.jobs j
        set leased_until = now() + make_interval(secs => $3)
        where j.seq = any($1) and ($2::jsonb -> j.seq::text) @> to_jsonb(j.claim)
          and j.leased_until > now() and j.worker_id = $4
        returning j.seq, j.claim, j.cancel_requested_at is not null as "cancel_requested!"
        "#,
        &claims_of.keys().copied().collect::<Vec<i64>>(),
        Json(&claims_of) as _,
        lease.as_secs_f64(),
        worker_id,
    )
    .fetch_all(db)
    .await?;
    Ok(held)
}

/// Records the progress of `worker_id`'s running attempt of job `seq`,
/// begun by `claim`, and renews its lease. Returns whether the attempt
/// still holds its job.
pub async fn job_progress(
    db: impl PgExecutor<'_>,
    worker_id: &str,
    seq: i64,
    claim: i64,
    percent: i16,
    message: &str,
    lease: Duration,
) -> Result<bool> {
    let updated = sqlx::query!(
        r#"
        update spool.jobs
        set progress = jsonb_build_object(
                'percent', $3::smallint, 'message', $4::text,
                -- RFC 3339 in UTC, written as every other time the API shows.
                'at', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            ),
            leased_until = greatest(leased_until, now() + make_interval(secs => $5))
        where seq = $1 and claim = $2 and state = 'running' and worker_id = $6
        "#,
        seq,
        claim,
        percent,
        message,
        lease.as_secs_f64(),
        worker_id,
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// How to record the end of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub seq: i64,
    /// The claim of the attempt that ended; the write applies only if the
    /// job is still running the attempt this claim began.
    pub claim: i64,
    /// The attempt's number.
    pub attempt: i32,
    /// `completed`, `retryable`, `discarded` or `cancelled`. A `retryable`
    /// job whose cancellation was requested becomes `cancelled` instead.
    pub state: JobState,
    /// The result as JSON text, for `completed`. It must be valid JSON
    /// without `\u0000`, which jsonb refuses.
    pub result: Option<String>,
    /// An entry for the error history, as JSON text.
    pub error: Option<String>,
    /// For `retryable`: seconds until the next attempt may start.
    pub retry_in_secs: f64,
}

/// Records the end of many attempts in one statement. Returns the seq and
/// final state of each job it changed; an attempt that no longer owns its
/// job (rescued, cancelled, finished, claimed again) is left out and
/// changed nothing.
///
/// `worker_id` is the worker whose attempts these are; `None` for
/// maintenance, which records the ends of attempts whose rows it locked.
///
/// A retry is due its delay after the statement runs (`clock_timestamp`,
/// not the transaction's start), so never before the failure's recorded
/// time plus the delay.
pub async fn job_finish_many(
    db: impl PgExecutor<'_>,
    worker_id: Option<&str>,
    finishes: &[Finish],
) -> Result<Vec<(i64, JobState)>> {
    let outcomes = outcomes_by_job_and_claim(finishes)?;

    let rows = sqlx::query!(
        r#"
        update spool.jobs j
        set state = case
                when $1::jsonb -> j.seq::text -> j.claim::text ->> 'state' = 'retryable'
                     and j.cancel_requested_at is not null then 'cancelled'
                else $1::jsonb -> j.seq::text -> j.claim::text ->> 'state'
            end,
            finalized_at = case
                when $1::jsonb -> j.seq::text -> j.claim::text ->> 'state' = 'retryable'
                     and j.cancel_requested_at is null then null
                else now()
            end,
            result = $1::jsonb -> j.seq::text -> j.claim::text -> 'result',
            errors = case
                when $1::jsonb -> j.seq::text -> j.claim::text -> 'error' is null then j.errors
                else j.errors
                     || jsonb_build_array($1::jsonb -> j.seq::text -> j.claim::text -> 'error')
            end,
            run_at = case
                when $1::jsonb -> j.seq::text -> j.claim::text ->> 'state' = 'retryable'
                then clock_timestamp() + make_interval(
                    secs => ($1::jsonb -> j.seq::text -> j.claim::text ->> 'delay')::float8)
                else j.run_at
            end,
            leased_until = null
        where j.seq = any($2) and ($1::jsonb -> j.seq::text) ? j.claim::text
          and j.leased_until is not null and ($3::text is null or j.worker_id = $3)
        returning j.seq, j.state
        "#,
        Json(&outcomes) as _,
        &outcomes.keys().copied().collect::<Vec<i64>>(),
        worker_id,
    )
    .fetch_all(db)
    .await?;

    // The state column only holds known names (jobs_state_valid).
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.seq, r.state.parse().ok()?)))
        .collect())
}

/// The finishing statement's jsonb parameter: outcomes by job, then by
/// claim. A batch can hold two attempts of one job when a crash undid the
/// first one's claim and both then ended (a cancel stops both at once);
/// the row's own claim picks the one that still owns it.
fn outcomes_by_job_and_claim(
    finishes: &[Finish],
) -> Result<BTreeMap<i64, BTreeMap<i64, Outcome<'_>>>> {
    let mut outcomes: BTreeMap<i64, BTreeMap<i64, Outcome>> = BTreeMap::new();
    for finish in finishes {
        outcomes
            .entry(finish.seq)
            .or_default()
            .insert(finish.claim, Outcome::of(finish)?);
    }
    Ok(outcomes)
}

/// One attempt's end as the finishing statement reads it.
///
/// The statements above look each row's input up by key rather than
/// joining an `unnest()` of arrays: with a generic plan, PostgreSQL runs
/// that join as a nested loop that rescans the whole input for every row,
/// which took a quarter of the database's time in bench C. They test
/// `leased_until is not null` for "running" (`jobs_running_has_lease`
/// makes the two the same) so that no plan can prefer scanning every
/// running job through `jobs_lease_idx` over the primary key.
#[derive(Serialize)]
struct Outcome<'a> {
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RawValue>,
    delay: f64,
}

impl<'a> Outcome<'a> {
    fn of(finish: &'a Finish) -> Result<Self> {
        let raw = |text: &'a Option<String>| {
            text.as_deref()
                .map(serde_json::from_str::<&RawValue>)
                .transpose()
                .map_err(|source| Error::InvalidOutcome {
                    seq: finish.seq,
                    source,
                })
        };
        Ok(Self {
            state: finish.state.as_str(),
            result: raw(&finish.result)?,
            error: raw(&finish.error)?,
            delay: finish.retry_in_secs,
        })
    }
}

/// Hands `worker_id`'s attempt of job `seq`, begun by `claim`, back
/// without charging it: the attempt count is restored and the job may run
/// again after `delay` (at once when zero).
/// For host faults (the module could not be loaded, the worker is shutting
/// down), which are not the job's doing.
pub async fn job_release(
    db: impl PgExecutor<'_>,
    worker_id: &str,
    seq: i64,
    claim: i64,
    delay: Duration,
) -> Result<bool> {
    let released = sqlx::query!(
        r#"
        update spool.jobs
        set state = case when $3::float8 > 0 then 'retryable' else 'available' end,
            run_at = now() + make_interval(secs => $3),
            attempt = attempt - 1,
            leased_until = null
        where seq = $1 and claim = $2 and state = 'running' and worker_id = $4
        "#,
        seq,
        claim,
        delay.as_secs_f64(),
        worker_id,
    )
    .execute(db)
    .await?;
    Ok(released.rows_affected() == 1)
}

/// A running job whose lease ran out.
#[derive(Debug, Clone)]
pub struct Expired {
    pub seq: i64,
    pub claim: i64,
    pub tenant: String,
    pub id: String,
    pub kind: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker_id: Option<String>,
    pub cancel_requested: bool,
}

/// Locks up to `limit` running jobs whose lease has passed, for the
/// caller to finish in the same transaction.
pub async fn job_rescue_expired(conn: &mut PgConnection, limit: i64) -> Result<Vec<Expired>> {
    let expired = sqlx::query_as!(
        Expired,
        r#"
        select seq, claim, tenant, id, kind, attempt, max_attempts, worker_id,
               cancel_requested_at is not null as "cancel_requested!"
        from spool.jobs
        where state = 'running' and leased_until < now()
        order by leased_until
        limit $1
        for update skip locked
        "#,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(expired)
}

/// Makes up to `limit` scheduled and retryable jobs whose run_at has come
/// available, and wakes workers if there were any. Returns how many.
pub async fn job_promote_due(conn: &mut PgConnection, limit: i64) -> Result<u64> {
    let promoted = sqlx::query!(
        r#"
        update spool.jobs
        set state = 'available'
        where seq = any(array(
            select seq from spool.jobs
            where state in ('scheduled', 'retryable') and run_at <= now()
            order by run_at
            limit $1
            for update skip locked
        ))
        "#,
        limit
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();

    if promoted > 0 {
        sqlx::query!("select pg_notify($1, '')", super::JOBS_CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(promoted)
}

/// How long until the next scheduled or retryable job is due, by the
/// database clock; `None` when none is waiting.
pub async fn job_next_due_in(db: impl PgExecutor<'_>) -> Result<Option<Duration>> {
    let seconds = sqlx::query_scalar!(
        r#"
        select extract(epoch from min(run_at) - now())::float8
        from spool.jobs
        where state in ('scheduled', 'retryable')
        "#
    )
    .fetch_one(db)
    .await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn outcomes_carry_results_and_errors_as_json_not_strings() {
        let completed = Finish {
            seq: 7,
            claim: 41,
            attempt: 1,
            state: JobState::Completed,
            result: Some(r#"{"sent": [1, 2]}"#.into()),
            error: None,
            retry_in_secs: 0.0,
        };
        let retry = Finish {
            seq: 8,
            claim: 42,
            attempt: 2,
            state: JobState::Retryable,
            result: None,
            error: Some(r#"{"attempt": 2, "error": "timeout"}"#.into()),
            retry_in_secs: 1.5,
        };
        // A stale attempt of job 7, whose claim a crash undid.
        let stale = Finish {
            claim: 40,
            state: JobState::Cancelled,
            result: None,
            ..completed.clone()
        };
        let finishes = [completed, retry, stale];
        let outcomes = outcomes_by_job_and_claim(&finishes).unwrap();
        let document: Value = serde_json::to_value(&outcomes).unwrap();
        assert_eq!(
            document,
            json!({
                "7": {
                    "40": {"state": "cancelled", "delay": 0.0},
                    "41": {"state": "completed", "result": {"sent": [1, 2]}, "delay": 0.0},
                },
                "8": {"42": {"state": "retryable",
                             "error": {"attempt": 2, "error": "timeout"}, "delay": 1.5}},
            })
        );
    }

    #[test]
    fn an_outcome_that_is_not_json_is_refused_before_the_database() {
        let finish = Finish {
            seq: 1,
            claim: 1,
            attempt: 1,
            state: JobState::Completed,
            result: Some("{not json".into()),
            error: None,
            retry_in_secs: 0.0,
        };
        assert!(matches!(
            Outcome::of(&finish),
            Err(Error::InvalidOutcome { seq: 1, .. })
        ));
    }
}
