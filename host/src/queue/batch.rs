//! Enqueueing many jobs in one transaction: the fast path.
//!
//! Jobs without a `job_id` go in through one `COPY` (the cheapest way into
//! PostgreSQL); jobs with one go through one `INSERT .. ON CONFLICT DO
//! NOTHING` so that an existing id creates nothing. Either way the insert
//! trigger wakes workers once for the whole batch.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{Acquire, PgConnection};

use super::enqueue::new_job_id;
use super::{Error, NewJob, Result};

/// What [`job_insert_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInserted {
    /// Each job's id, in the order given: the caller's `job_id` or the
    /// generated one.
    pub ids: Vec<String>,
    /// How many were new; the rest had a `job_id` that already existed.
    pub created: u64,
}

/// Inserts `jobs` (validated by the caller, all of `tenant`) atomically.
/// Fails with [`Error::UnknownKind`], writing nothing, when a kind has no
/// deployed module.
pub async fn job_insert_batch(
    conn: &mut PgConnection,
    tenant: &str,
    jobs: &[NewJob],
) -> Result<BatchInserted> {
    let mut tx = conn.begin().await?;
    let mut kinds: Vec<String> = jobs.iter().map(|job| job.kind.clone()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let defaults: HashMap<String, i32> = sqlx::query!(
        r#"
        select distinct on (kind) kind, max_attempts from spool.modules
        where tenant = $1 and kind = any($2)
        order by kind, version desc
        "#,
        tenant,
        &kinds
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|row| (row.kind, row.max_attempts))
    .collect();
    if let Some(kind) = kinds.iter().find(|kind| !defaults.contains_key(*kind)) {
        return Err(Error::UnknownKind { kind: kind.clone() });
    }
    let now: DateTime<Utc> = sqlx::query_scalar!(r#"select now() as "now!""#)
        .fetch_one(&mut *tx)
        .await?;

    let mut ids = Vec::with_capacity(jobs.len());
    let mut copy = String::new();
    let mut keyed = Vec::new();
    for job in jobs {
        let run_at = job.run_at.unwrap_or_else(|| {
            now + chrono::Duration::microseconds((job.delay_secs * 1e6).round() as i64)
        });
        let state = if run_at <= now {
            "available"
        } else {
            "scheduled"
        };
        let max_attempts = job.max_attempts.unwrap_or(defaults[&job.kind]);
        match &job.job_id {
            Some(id) => {
                ids.push(id.clone());
                keyed.push((job, state, max_attempts, run_at));
            }
            None => {
                let id = new_job_id();
                copy_row(&mut copy, tenant, &id, job, state, max_attempts, run_at);
                ids.push(id);
            }
        }
    }

    let mut created = 0;
    if !copy.is_empty() {
        let mut copy_in = tx
            .copy_in_raw(
                "copy spool.jobs (tenant, id, kind, queue, state, priority, params, \
                 max_attempts, run_at) from stdin",
            )
            .await?;
        copy_in.send(copy.into_bytes()).await?;
        created += copy_in.finish().await?;
    }
    if !keyed.is_empty() {
        // In id order, so that two batches sharing ids wait for each other
        // instead of each holding an id the other needs (a deadlock).
        keyed.sort_by(|a, b| a.0.job_id.cmp(&b.0.job_id));
        let mut columns = Keyed::default();
        for (job, state, max_attempts, run_at) in keyed {
            columns.push(job, state, max_attempts, run_at);
        }
        created += sqlx::query!(
            r#"
            insert into spool.jobs (tenant, id, kind, queue, state, priority, params,
                                    max_attempts, run_at)
            select $1, k.id, k.kind, k.queue, k.state, k.priority, k.params, k.max_attempts,
                   k.run_at
            from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[],
                        $7::jsonb[], $8::int[], $9::timestamptz[])
                 as k(id, kind, queue, state, priority, params, max_attempts, run_at)
            on conflict on constraint jobs_tenant_id_key do nothing
            "#,
            tenant,
            &columns.ids,
            &columns.kinds,
            &columns.queues,
            &columns.states,
            &columns.priorities,
            &columns.params,
            &columns.max_attempts,
            &columns.run_ats,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(BatchInserted { ids, created })
}

/// The jobs that carry their own id, as columns for `unnest`.
#[derive(Default)]
struct Keyed {
    ids: Vec<String>,
    kinds: Vec<String>,
    queues: Vec<String>,
    states: Vec<String>,
    priorities: Vec<i16>,
    params: Vec<serde_json::Value>,
    max_attempts: Vec<i32>,
    run_ats: Vec<DateTime<Utc>>,
}

impl Keyed {
    fn push(&mut self, job: &NewJob, state: &str, max_attempts: i32, run_at: DateTime<Utc>) {
        self.ids.extend(job.job_id.clone());
        self.kinds.push(job.kind.clone());
        self.queues.push(job.queue.clone());
        self.states.push(state.to_string());
        self.priorities.push(job.priority);
        self.params.push(job.params.clone());
        self.max_attempts.push(max_attempts);
        self.run_ats.push(run_at);
    }
}

/// Appends one row in `COPY`'s text format.
fn copy_row(
    out: &mut String,
    tenant: &str,
    id: &str,
    job: &NewJob,
    state: &str,
    max_attempts: i32,
    run_at: DateTime<Utc>,
) {
    let params = serde_json::to_string(&job.params).expect("a JSON value serializes");
    let fields = [
        tenant,
        id,
        &job.kind,
        &job.queue,
        state,
        &job.priority.to_string(),
        &params,
        &max_attempts.to_string(),
        &run_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        copy_escape(out, field);
    }
    out.push('\n');
}

/// Escapes a value for `COPY`'s text format: backslash and the delimiters.
fn copy_escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_backslashes_and_delimiters() {
        let mut out = String::new();
        copy_escape(&mut out, "a\\b\tc\nd\re\u{1}f");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re\\x01f");
    }
}
