//! Tenants (`/admin/v1/tenants`, the operator's) and API tokens
//! (`/v1/tokens`, each tenant's own).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::auth::{Admin, Caller};
use super::error::{Error, ErrorBody, Result};
use super::input::{self, MAX_JSON_BODY, PathParam};
use super::types::{
    TenantCreateRequest, TenantCreated, TenantList, TenantUpdateRequest, TenantView, TokenCreated,
    TokenList, TokenRequest, TokenView,
};
use crate::queue::{self, TenantChange, rules};

/// Longest token label.
const MAX_LABEL_CHARS: usize = 128;

/// `POST /admin/v1/tenants`: 201 with the tenant and its first token.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants",
    tag = "tenants",
    request_body = TenantCreateRequest,
    responses(
        (status = 201, description = "the tenant and its first token", body = TenantCreated),
        (status = 400, description = "a field is malformed or out of range", body = ErrorBody),
        (status = 409, description = "a tenant of this name exists", body = ErrorBody),
        (status = 413, description = "the body is over 2 MiB", body = ErrorBody),
    )
)]
pub async fn tenant_create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<TenantCreated>)> {
    let bytes = input::read_body(body, MAX_JSON_BODY).await?;
    let request: TenantCreateRequest = input::parse_json(&bytes)?;
    rules::check_tenant("name", &request.name)?;
    let max_running = request
        .max_running
        .map(|n| rules::check_max_running("max_running", n))
        .transpose()?;
    let mut conn = state.pool.acquire().await.map_err(queue::Error::from)?;
    let (tenant, token) = queue::tenant_create(&mut conn, &request.name, max_running).await?;
    tracing::info!(tenant = %tenant.name, max_running, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: tenant.into(),
            token: token.into(),
        }),
    ))
}

/// `GET /admin/v1/tenants`.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "tenants",
    responses((status = 200, description = "every tenant", body = TenantList))
)]
pub async fn tenant_list(_: Admin, State(state): State<AppState>) -> Result<Json<TenantList>> {
    let tenants = queue::tenant_list(&state.pool).await?;
    Ok(Json(TenantList {
        tenants: tenants.into_iter().map(TenantView::from).collect(),
    }))
}

/// `PATCH /admin/v1/tenants/{name}`: disable, enable, set or remove the
/// limit on running jobs.
#[utoipa::path(
    patch,
    path = "/admin/v1/tenants/{name}",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant's name")),
    request_body = TenantUpdateRequest,
    responses(
        (status = 200, description = "the tenant as changed", body = TenantView),
        (status = 400, description = "the name or a field is malformed or out of range",
            body = ErrorBody),
        (status = 404, description = "no tenant of this name", body = ErrorBody),
        (status = 413, description = "the body is over 2 MiB", body = ErrorBody),
    )
)]
pub async fn tenant_update(
    _: Admin,
    State(state): State<AppState>,
    PathParam(name): PathParam,
    body: Body,
) -> Result<Json<TenantView>> {
    rules::check_tenant("name", &name)?;
    let bytes = input::read_body(body, MAX_JSON_BODY).await?;
    let request: TenantUpdateRequest = input::parse_json(&bytes)?;
    let max_running = match request.max_running {
        Some(Some(n)) => Some(Some(rules::check_max_running("max_running", n)?)),
        Some(None) => Some(None),
        None => None,
    };
    let change = TenantChange {
        disabled: request.disabled,
        max_running,
    };
    let tenant = queue::tenant_update(&state.pool, &name, &change).await?;
    state.tokens.forget_tenant(&tenant.name);
    tracing::info!(
        tenant = %tenant.name,
        disabled = tenant.disabled_at.is_some(),
        max_running = tenant.max_running,
        "tenant changed"
    );
    Ok(Json(tenant.into()))
}

/// `POST /admin/v1/tenants/{name}/tokens`: a token for a tenant that lost
/// its own.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{name}/tokens",
    tag = "tenants",
    params(("name" = String, Path, description = "the tenant's name")),
    request_body = Option<TokenRequest>,
    responses(
        (status = 201, description = "the token, shown this once", body = TokenCreated),
        (status = 400, description = "the name or label is malformed", body = ErrorBody),
        (status = 404, description = "no tenant of this name", body = ErrorBody),
        (status = 413, description = "the body is over 2 MiB", body = ErrorBody),
    )
)]
pub async fn tenant_token_create(
    _: Admin,
    State(state): State<AppState>,
    PathParam(name): PathParam,
    body: Body,
) -> Result<(StatusCode, Json<TokenCreated>)> {
    rules::check_tenant("name", &name)?;
    let label = token_label(body).await?;
    queue::tenant_get(&state.pool, &name).await?;
    let token = queue::token_create(&state.pool, &name, &label).await?;
    tracing::info!(tenant = %name, token_id = %token.info.id, "token created by the operator");
    Ok((StatusCode::CREATED, Json(token.into())))
}

/// `POST /v1/tokens`: 201 with a new token of the caller's tenant.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    request_body = Option<TokenRequest>,
    responses(
        (status = 201, description = "the token, shown this once", body = TokenCreated),
        (status = 400, description = "the label is malformed", body = ErrorBody),
        (status = 413, description = "the body is over 2 MiB", body = ErrorBody),
    )
)]
pub async fn token_create(
    caller: Caller,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<TokenCreated>)> {
    let label = token_label(body).await?;
    let token = queue::token_create(&state.pool, &caller.tenant, &label).await?;
    tracing::info!(tenant = %caller.tenant, token_id = %token.info.id, "token created");
    Ok((StatusCode::CREATED, Json(token.into())))
}

/// `GET /v1/tokens`: the caller's tenant's live tokens, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    responses((status = 200, description = "the live tokens, without secrets", body = TokenList))
)]
pub async fn token_list(caller: Caller, State(state): State<AppState>) -> Result<Json<TokenList>> {
    let tokens = queue::token_list(&state.pool, &caller.tenant).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// `DELETE /v1/tokens/{id}`: 204; the token stops working at once. A
/// tenant may revoke the token it calls with.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "the token's id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 400, description = "the id is malformed", body = ErrorBody),
        (status = 404, description = "no live token with this id", body = ErrorBody),
    )
)]
pub async fn token_revoke(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<StatusCode> {
    rules::check_token_id("id", &id)?;
    if queue::token_revoke(&state.pool, &caller.tenant, &id).await? {
        state.tokens.forget_token(&id);
        tracing::info!(tenant = %caller.tenant, token_id = %id, "token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("no live token with this id".to_string()))
    }
}

/// The optional `{"label": "..."}` body of a token request; no body, or
/// `null`, gives no label.
async fn token_label(body: Body) -> Result<String> {
    let bytes = input::read_body(body, MAX_JSON_BODY).await?;
    let request: TokenRequest = match bytes.trim_ascii() {
        b"" | b"null" => TokenRequest::default(),
        _ => input::parse_json(&bytes)?,
    };
    if request.label.chars().count() > MAX_LABEL_CHARS {
        return Err(Error::invalid(
            "label",
            format!("label: longer than {MAX_LABEL_CHARS} characters"),
        ));
    }
    if request.label.chars().any(char::is_control) {
        return Err(Error::invalid(
            "label",
            "label: must not contain control characters",
        ));
    }
    Ok(request.label)
}
