//! The HTTP API: JSON in and out under `/v1`, plus `/healthz` and
//! `/openapi.json`.
//!
//! | method and path | does |
//! | --- | --- |
//! | `PUT /v1/modules/{kind}` | deploy a component (the body) for a kind |
//! | `GET /v1/modules` | the newest version of each kind |
//! | `POST /v1/jobs` | enqueue |
//! | `POST /v1/job-batches` | enqueue up to 50,000 jobs at once, all or none |
//! | `GET /v1/jobs` | list, by state and kind, newest first, paginated |
//! | `DELETE /v1/jobs` | prune finished jobs by state and age |
//! | `GET /v1/jobs/{id}` | one job: state, params, result, errors |
//! | `POST /v1/jobs/{id}/cancel` | cancel a waiting job, stop a running one |
//! | `POST /v1/jobs/{id}/retry` | run a retryable, discarded or cancelled job again |
//! | `PUT /v1/config/{name}` | set a config entry or secret |
//! | `GET /v1/config` | list config entries (secrets without values) |
//! | `DELETE /v1/config/{name}` | delete a config entry |
//! | `POST /v1/tokens` | a new token for the caller's tenant |
//! | `GET /v1/tokens` | the tenant's live tokens (never their secrets) |
//! | `DELETE /v1/tokens/{id}` | revoke a token |
//! | `POST /admin/v1/tenants` | create a tenant and its first token |
//! | `GET /admin/v1/tenants` | every tenant |
//! | `PATCH /admin/v1/tenants/{name}` | disable, enable, limit running jobs |
//! | `POST /admin/v1/tenants/{name}/tokens` | a token for a tenant |
//! | `GET /healthz` | 200 when the database answers, 503 otherwise |
//! | `GET /openapi.json` | this API as an OpenAPI 3.1 document |
//!
//! `/v1` takes a tenant's token, which decides the tenant every object
//! belongs to; `/admin/v1` takes the operator's admin token ([`auth`]);
//! `/healthz` and `/openapi.json` take none.
//! Handlers check their input and call [`crate::queue`]; errors take one
//! JSON shape ([`ErrorBody`]).

pub mod auth;
mod config;
mod error;
mod input;
mod jobs;
mod modules;
mod openapi;
mod tenants;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use sqlx::PgPool;
use tokio::sync::Notify;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{AdminToken, TOKEN_CACHE_TTL, TokenCache};
pub use error::{Error, ErrorBody};
pub use input::parse_duration_text;
pub use jobs::percent_encode;

use self::types::Health;
use crate::runtime::Runtime;
use crate::telemetry::error_chain;
use crate::worker::Handover;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Validates uploaded components.
    pub runtime: Arc<Runtime>,
    /// Opens the admin API; without it `/admin/v1` answers 403.
    pub admin_token: Option<AdminToken>,
    /// Tenant tokens recently checked.
    pub tokens: Arc<TokenCache>,
    /// Wakes the worker of this process, if it runs one, when jobs may have
    /// become available: sooner than the `NOTIFY` that wakes every worker.
    pub work_added: Arc<Notify>,
    /// Hands jobs that may run now to the worker of this process, if it
    /// runs one and it waits for work.
    pub handover: Option<Handover>,
}

/// Longest pause allowed while a request's body arrives. A client that
/// stalls mid-body gets a 408 instead of holding its request, and the
/// server's shutdown, open forever.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/modules", get(modules::module_list))
        .route("/v1/modules/{kind}", put(modules::module_deploy))
        .route(
            "/v1/jobs",
            post(jobs::job_create)
                .get(jobs::job_list)
                .delete(jobs::job_prune),
        )
        .route("/v1/job-batches", post(jobs::job_batch))
        .route("/v1/jobs/{id}", get(jobs::job_get))
        .route("/v1/jobs/{id}/cancel", post(jobs::job_cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::job_retry))
        .route("/v1/config", get(config::config_list))
        .route(
            "/v1/config/{name}",
            put(config::config_set).delete(config::config_delete),
        )
        .route(
            "/v1/tokens",
            post(tenants::token_create).get(tenants::token_list),
        )
        .route("/v1/tokens/{id}", delete(tenants::token_revoke))
        .route(
            "/admin/v1/tenants",
            post(tenants::tenant_create).get(tenants::tenant_list),
        )
        .route("/admin/v1/tenants/{name}", patch(tenants::tenant_update))
        .route(
            "/admin/v1/tenants/{name}/tokens",
            post(tenants::tenant_token_create),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /healthz`: whether the database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses(
        (status = 200, description = "the database answers", body = Health),
        (status = 503, description = "the database is unreachable", body = Health),
    )
)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let check = async {
        let mut conn = state.pool.acquire().await?;
        sqlx::Connection::ping(&mut *conn).await
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".to_string(),
                database: None,
            }),
        ),
        Ok(Err(e)) => unhealthy(&error_chain(&e)),
        Err(_) => unhealthy(&"no answer within 2s"),
    }
}

fn unhealthy(cause: &dyn std::fmt::Display) -> (StatusCode, Json<Health>) {
    tracing::warn!(error = %cause, "health check failed: database unreachable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Health {
            status: "unavailable".to_string(),
            database: Some("unreachable".to_string()),
        }),
    )
}

async fn not_found() -> Error {
    Error::NotFound("no such endpoint".to_string())
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
