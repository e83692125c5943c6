//! What operators do to jobs: look them up, list, cancel, retry, prune.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

use super::{CANCEL_CHANNEL, Error, Job, JobState, Result};

/// Finds a tenant's job by its public id.
pub async fn job_get(db: impl PgExecutor<'_>, tenant: &str, id: &str) -> Result<Job> {
    sqlx::query_as!(
        Job,
        "select * from spool.jobs where tenant = $1 and id = $2",
        tenant,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::JobNotFound { id: id.to_string() })
}

/// Which jobs [`job_list`] returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Only jobs older than the one with this `seq` (the previous page's
    /// cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// A tenant's jobs, newest first.
pub async fn job_list(
    db: impl PgExecutor<'_>,
    tenant: &str,
    filter: &JobFilter,
) -> Result<Vec<Job>> {
    let jobs = sqlx::query_as!(
        Job,
        r#"
        select * from spool.jobs
        where tenant = $1
          and ($2::text is null or state = $2)
          and ($3::text is null or kind = $3)
          and ($4::bigint is null or seq < $4)
        order by seq desc
        limit $5
        "#,
        tenant,
        filter.state.map(JobState::as_str),
        filter.kind,
        filter.before_seq,
        filter.limit,
    )
    .fetch_all(db)
    .await?;
    Ok(jobs)
}

/// How many of a tenant's jobs of one kind are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
}

impl JobCount {
    /// The state, as [`Job::state`] reads it.
    pub fn state(&self) -> JobState {
        self.state
            .parse()
            .unwrap_or_else(|e| panic!("jobs of kind {}: {e}", self.kind))
    }
}

/// Jobs per kind and state, of one tenant or, with `None`, of all; ordered
/// by kind then state. Kinds and states without jobs are left out.
pub async fn job_counts(db: impl PgExecutor<'_>, tenant: Option<&str>) -> Result<Vec<JobCount>> {
    let counts = sqlx::query_as!(
        JobCount,
        r#"
        select kind, state, count(*) as "count!"
        from spool.jobs
        where ($1::text is null or tenant = $1)
        group by kind, state
        order by kind, state
        "#,
        tenant,
    )
    .fetch_all(db)
    .await?;
    Ok(counts)
}

/// What [`job_cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job had not started; it is cancelled and will never run.
    Cancelled(Job),
    /// The job is running; its worker was asked to interrupt it and will
    /// record it as cancelled.
    Requested(Job),
    /// The job was already cancelled; nothing changed.
    AlreadyCancelled(Job),
}

/// Cancels a job. A job that has not started is cancelled at once; a
/// running job is asked to stop; a completed or discarded job cannot be
/// cancelled.
pub async fn job_cancel(conn: &mut PgConnection, tenant: &str, id: &str) -> Result<CancelOutcome> {
    let cancelled = sqlx::query_as!(
        Job,
        r#"
        update spool.jobs
        set state = 'cancelled', finalized_at = now()
        where tenant = $1 and id = $2 and state in ('scheduled', 'available', 'retryable')
        returning *
        "#,
        tenant,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = cancelled {
        return Ok(CancelOutcome::Cancelled(job));
    }

    let requested = sqlx::query_as!(
        Job,
        r#"
        update spool.jobs
        set cancel_requested_at = coalesce(cancel_requested_at, now())
        where tenant = $1 and id = $2 and state = 'running'
        returning *
        "#,
        tenant,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = requested {
        let seq = job.seq.to_string();
        sqlx::query!("select pg_notify($1, $2)", CANCEL_CHANNEL, seq)
            .execute(conn)
            .await?;
        return Ok(CancelOutcome::Requested(job));
    }

    let job = job_get(&mut *conn, tenant, id).await?;
    match job.state() {
        JobState::Cancelled => Ok(CancelOutcome::AlreadyCancelled(job)),
        // It moved between the statements (claimed, say): try again.
        JobState::Running | JobState::Scheduled | JobState::Available | JobState::Retryable => {
            Box::pin(job_cancel(conn, tenant, id)).await
        }
        state => Err(Error::InvalidState {
            state,
            action: "cancelled",
            allowed: "scheduled, available, retryable or running",
        }),
    }
}

/// Makes a retryable, discarded or cancelled job available now. Its error
/// history and attempt count stay; if its attempts were used up it gets
/// one more.
pub async fn job_retry(conn: &mut PgConnection, tenant: &str, id: &str) -> Result<Job> {
    let retried = sqlx::query_as!(
        Job,
        r#"
        update spool.jobs
        set state = 'available',
            run_at = now(),
            finalized_at = null,
            cancel_requested_at = null,
            progress = null,
            max_attempts = greatest(max_attempts, attempt + 1)
        where tenant = $1 and id = $2 and state in ('retryable', 'discarded', 'cancelled')
        returning *
        "#,
        tenant,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = retried {
        sqlx::query!("select pg_notify($1, '')", super::JOBS_CHANNEL)
            .execute(conn)
            .await?;
        return Ok(job);
    }

    let job = job_get(conn, tenant, id).await?;
    Err(Error::InvalidState {
        state: job.state(),
        action: "retried",
        allowed: "retryable, discarded or cancelled",
    })
}

/// Deletes a tenant's jobs in a finished `state` that finished more than
/// `older_than` ago, `batch` rows per statement so that no statement holds
/// many locks. Returns how many were deleted.
pub async fn job_prune(
    conn: &mut PgConnection,
    tenant: Option<&str>,
    state: JobState,
    older_than: Duration,
    batch: i64,
) -> Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query!(
            r#"
            delete from spool.jobs
            where seq = any(array(
                select seq from spool.jobs
                where state = $1
                  and finalized_at < now() - make_interval(secs => $2)
                  and ($3::text is null or tenant = $3)
                limit $4
            ))
            "#,
            state.as_str(),
            older_than.as_secs_f64(),
            tenant,
            batch,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < batch as u64 {
            return Ok(total);
        }
    }
}
