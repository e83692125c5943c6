//! `/v1/jobs`: enqueue, look up, list, cancel, retry, prune.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::error::{Error, ErrorBody, Result};
use super::input::{self, MAX_JSON_BODY, PathParam};
use super::types::{BatchReport, BatchRequest, EnqueueRequest, JobPage, JobView, PruneReport};
use crate::queue::{self, CancelOutcome, Job, JobFilter, JobState, NewJob, rules};

/// Jobs per page unless asked otherwise, and at most.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;
/// Jobs deleted per statement when pruning.
const PRUNE_BATCH: i64 = 1000;

fn view(job: Job) -> Result<JobView> {
    JobView::try_from(job).map_err(|e| Error::Internal(format!("decode job errors: {e}")))
}

/// `POST /v1/jobs`: 201 with the new job, or 200 with the existing job
/// that has the same `job_id`. A job that may run now is first offered to
/// the worker of this process, which inserts it already claimed if it is
/// waiting for work ([`crate::worker::Handover`]).
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "enqueued", body = JobView,
            headers(("Location" = String, description = "the job's URL"))),
        (status = 200, description = "a job with this `job_id` exists; it is returned",
            body = JobView, headers(("Location" = String, description = "the job's URL"))),
        (status = 400, description = "a field is malformed or out of range", body = ErrorBody),
        (status = 413, description = "the body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "the kind has no deployed module", body = ErrorBody),
    )
)]
pub async fn job_create(
    caller: Caller,
    State(state): State<AppState>,
    body: Body,
) -> Result<Response> {
    let bytes = input::read_body(body, MAX_JSON_BODY).await?;
    let request: EnqueueRequest = input::parse_json(&bytes)?;
    let mut new = new_job(&caller.tenant, request)?;
    new.job_id.get_or_insert_with(queue::new_job_id);

    let handed = match &state.handover {
        Some(handover) => handover.offer(&new).await,
        None => None,
    };
    let inserted = match handed {
        Some(job) => queue::Inserted { job, created: true },
        None => {
            let mut conn = state.pool.acquire().await.map_err(queue::Error::from)?;
            queue::job_insert(&mut conn, &new).await?
        }
    };
    if inserted.created && inserted.job.state == JobState::Available.as_str() {
        state.work_added.notify_one();
    }
    let status = if inserted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/jobs/{}", percent_encode(&inserted.job.id));
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(view(inserted.job)?),
    )
        .into_response())
}

/// Most jobs in one batch.
pub const MAX_BATCH_JOBS: usize = 50_000;
/// Largest batch body: room for the most jobs with a few hundred bytes of
/// params each. Decoding takes some fifteen times the body in memory.
pub const MAX_BATCH_BODY: usize = 16 << 20;

#[utoipa::path(
    post,
    path = "/v1/job-batches",
    tag = "jobs",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "enqueued; some jobs may have existed", body = BatchReport),
        (status = 200, description = "every job's `job_id` existed already", body = BatchReport),
        (
            status = 400,
            description = "a job's field is malformed or out of range",
            body = ErrorBody
        ),
        (status = 413, description = "the body is over 16 MiB", body = ErrorBody),
        (status = 422, description = "a job's kind has no deployed module", body = ErrorBody),
    )
)]
/// `POST /v1/job-batches`: 201 when any job was created, 200 when every
/// `job_id` existed already. All jobs are checked before any is written; one
/// bad job refuses the batch, naming it (`jobs[3].run_at`).
pub async fn job_batch(
    caller: Caller,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<BatchReport>)> {
    let bytes = input::read_body(body, MAX_BATCH_BODY).await?;
    let request: BatchRequest = input::parse_json(&bytes)?;
    if request.jobs.is_empty() || request.jobs.len() > MAX_BATCH_JOBS {
        return Err(Error::invalid(
            "jobs",
            format!(
                "jobs: {} jobs; a batch holds 1 to {MAX_BATCH_JOBS}",
                request.jobs.len()
            ),
        ));
    }
    let kinds: Vec<String> = request.jobs.iter().map(|job| job.kind.clone()).collect();
    let jobs = request
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| new_job(&caller.tenant, job).map_err(|e| e.within(&format!("jobs[{i}]"))))
        .collect::<Result<Vec<_>>>()?;

    let mut conn = state.pool.acquire().await.map_err(queue::Error::from)?;
    let inserted = match queue::job_insert_batch(&mut conn, &caller.tenant, &jobs).await {
        Err(queue::Error::UnknownKind { kind }) => {
            let i = kinds.iter().position(|k| *k == kind).unwrap_or_default();
            return Err(Error::invalid_kind(&format!("jobs[{i}].kind"), &kind));
        }
        other => other?,
    };
    drop(conn);
    if inserted.created > 0 {
        state.work_added.notify_one();
    }
    let total = inserted.ids.len() as u64;
    tracing::info!(
        tenant = %caller.tenant,
        jobs = total,
        created = inserted.created,
        "batch enqueued",
    );
    let status = if inserted.created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(BatchReport {
            created: inserted.created,
            existing: total - inserted.created,
            ids: inserted.ids,
        }),
    ))
}

/// Checks an enqueue request field by field.
fn new_job(tenant: &str, request: EnqueueRequest) -> Result<NewJob> {
    rules::check_kind("kind", &request.kind)?;
    rules::check_params("params", &request.params)?;
    if let Some(id) = &request.job_id {
        rules::check_job_id("job_id", id)?;
    }
    let queue = request.queue.unwrap_or_else(|| "default".to_string());
    rules::check_queue("queue", &queue)?;
    let priority = request
        .priority
        .map(|p| rules::check_priority("priority", p))
        .transpose()?;
    let max_attempts = request
        .max_attempts
        .map(|n| rules::check_max_attempts("max_attempts", n))
        .transpose()?;
    let (run_at, delay_secs) = match (&request.run_at, &request.delay) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "run_at",
                "run_at and delay: give one or the other, not both",
            ));
        }
        (Some(run_at), None) => (Some(input::parse_timestamp("run_at", run_at)?), 0.0),
        (None, Some(delay)) => (None, input::parse_duration("delay", delay)?.as_secs_f64()),
        (None, None) => (None, 0.0),
    };

    Ok(NewJob {
        tenant: tenant.to_string(),
        kind: request.kind,
        params: request.params,
        job_id: request.job_id,
        run_at,
        delay_secs,
        queue,
        priority: priority.unwrap_or(0),
        max_attempts,
    })
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "the job's `job_id` or generated UUID")),
    responses(
        (status = 200, description = "the job", body = JobView),
        (status = 400, description = "the id is malformed", body = ErrorBody),
        (status = 404, description = "no job with this id for the tenant", body = ErrorBody),
    )
)]
pub async fn job_get(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<JobView>> {
    let job = queue::job_get(&state.pool, &caller.tenant, &id).await?;
    Ok(Json(view(job)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state.
    state: Option<JobState>,
    /// Only jobs of this kind.
    kind: Option<String>,
    /// Jobs per page, 50 unless given.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// `GET /v1/jobs?state=&kind=&limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of jobs, newest first", body = JobPage),
        (status = 400, description = "a parameter is malformed or out of range", body = ErrorBody),
    )
)]
pub async fn job_list(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobPage>> {
    let query: ListQuery = input::parse_query(query.as_deref())?;
    if let Some(kind) = &query.kind {
        rules::check_kind("kind", kind)?;
    }
    let limit = match query.limit {
        None => DEFAULT_PAGE,
        Some(n @ 1..=MAX_PAGE) => n,
        Some(n) => {
            return Err(Error::invalid(
                "limit",
                format!("limit: {n} is not between 1 and {MAX_PAGE}"),
            ));
        }
    };
    // A cursor is the hex of the last listed job's id: the tenant's own
    // name for it, which says nothing of other tenants' jobs.
    let before_seq = match &query.cursor {
        None => None,
        Some(cursor) => {
            let not_a_cursor = || {
                Error::invalid(
                    "cursor",
                    "cursor: not a cursor from a previous page's next_cursor",
                )
            };
            let id = hex::decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|id| !id.contains('\0'))
                .ok_or_else(not_a_cursor)?;
            match queue::job_get(&state.pool, &caller.tenant, &id).await {
                Ok(job) => Some(job.seq),
                Err(queue::Error::JobNotFound { .. }) => {
                    return Err(Error::invalid(
                        "cursor",
                        "cursor: the job it continues from is gone (pruned); \
                         list again from the start",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };

    let filter = JobFilter {
        state: query.state,
        kind: query.kind,
        before_seq,
        limit,
    };
    let jobs = queue::job_list(&state.pool, &caller.tenant, &filter).await?;
    let next_cursor = match jobs.last() {
        Some(last) if jobs.len() as i64 == limit => Some(hex::encode(&last.id)),
        _ => None,
    };
    let jobs = jobs.into_iter().map(view).collect::<Result<_>>()?;
    Ok(Json(JobPage { jobs, next_cursor }))
}

/// `POST /v1/jobs/{id}/cancel`: 200 when the job is cancelled, 202 when it
/// is running and its worker was asked to stop it.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, description = "the job's `job_id` or generated UUID")),
    responses(
        (status = 200, description = "the job is cancelled", body = JobView),
        (status = 202, description = "the job is running; its worker was asked to stop it",
            body = JobView),
        (status = 400, description = "the id is malformed", body = ErrorBody),
        (status = 404, description = "no job with this id for the tenant", body = ErrorBody),
        (status = 409, description = "the job has finished", body = ErrorBody),
    )
)]
pub async fn job_cancel(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Response> {
    let mut conn = state.pool.acquire().await.map_err(queue::Error::from)?;
    let (status, job) = match queue::job_cancel(&mut conn, &caller.tenant, &id).await? {
        CancelOutcome::Cancelled(job) | CancelOutcome::AlreadyCancelled(job) => {
            (StatusCode::OK, job)
        }
        CancelOutcome::Requested(job) => (StatusCode::ACCEPTED, job),
    };
    Ok((status, Json(view(job)?)).into_response())
}

/// `POST /v1/jobs/{id}/retry`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = String, Path, description = "the job's `job_id` or generated UUID")),
    responses(
        (status = 200, description = "the job will run again", body = JobView),
        (status = 400, description = "the id is malformed", body = ErrorBody),
        (status = 404, description = "no job with this id for the tenant", body = ErrorBody),
        (status = 409, description = "the job is not retryable, discarded or cancelled",
            body = ErrorBody),
    )
)]
pub async fn job_retry(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<JobView>> {
    let mut conn = state.pool.acquire().await.map_err(queue::Error::from)?;
    let job = queue::job_retry(&mut conn, &caller.tenant, &id).await?;
    Ok(Json(view(job)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PruneQuery {
    /// `completed`, `cancelled` or `discarded`.
    #[param(required = true)]
    state: Option<JobState>,
    /// An age such as `7d` or `24h`, or seconds.
    #[param(required = true)]
    older_than: Option<String>,
}

/// `DELETE /v1/jobs?state=completed&older_than=7d`: deletes finished jobs.
#[utoipa::path(
    delete,
    path = "/v1/jobs",
    tag = "jobs",
    params(PruneQuery),
    responses(
        (status = 200, description = "how many jobs were deleted", body = PruneReport),
        (status = 400, description = "a parameter is missing, malformed or out of range",
            body = ErrorBody),
    )
)]
pub async fn job_prune(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<PruneReport>> {
    let query: PruneQuery = input::parse_query(query.as_deref())?;
    let Some(job_state) = query.state else {
        return Err(Error::invalid(
            "state",
            "state: required (completed, cancelled or discarded)",
        ));
    };
    if !job_state.is_finished() {
        return Err(Error::invalid(
            "state",
            format!(
                "state: {job_state} jobs cannot be pruned; give completed, cancelled or discarded"
            ),
        ));
    }
    let Some(older_than) = query.older_than else {
        return Err(Error::invalid(
            "older_than",
            "older_than: required, e.g. 7d or 24h",
        ));
    };
    let older_than = input::parse_duration_text("older_than", &older_than)?;

    let mut conn = state.pool.acquire().await.map_err(queue::Error::from)?;
    let deleted = queue::job_prune(
        &mut conn,
        Some(&caller.tenant),
        job_state,
        older_than,
        PRUNE_BATCH,
    )
    .await?;
    tracing::info!(tenant = %caller.tenant, state = %job_state, deleted, "pruned jobs");
    Ok(Json(PruneReport { deleted }))
}

/// Percent-encodes a path segment.
pub fn percent_encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
