//! Tenants (`/admin/v1/tenants`, the operator's) and API tokens
//! (`/v1/tokens`, each tenant's own).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::auth::{Admin, Caller};
use super::error::{Error, Result};
use super::input::{self, MAX_JSON_BODY, PathParam};
use super::types::{
    TenantCreateRequest, TenantCreated, TenantList, TenantUpdateRequest, TenantView, TokenCreated,
    TokenList, TokenRequest, TokenView,
};
use crate::queue::{self, TenantChange, rules};

/// Longest token label.
const MAX_LABEL_CHARS: usize = 128;

/// `POST /admin/v1/tenants`: 201 with the tenant and its first token.
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
pub async fn tenant_list(_: Admin, State(state): State<AppState>) -> Result<Json<TenantList>> {
    let tenants = queue::tenant_list(&state.pool).await?;
    Ok(Json(TenantList {
        tenants: tenants.into_iter().map(TenantView::from).collect(),
    }))
}

/// `PATCH /admin/v1/tenants/{name}`: disable, enable, set or remove the
/// limit on running jobs.
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
pub async fn token_list(caller: Caller, State(state): State<AppState>) -> Result<Json<TokenList>> {
    let tokens = queue::token_list(&state.pool, &caller.tenant).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// `DELETE /v1/tokens/{id}`: 204; the token stops working at once. A
/// tenant may revoke the token it calls with.
pub async fn token_revoke(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<StatusCode> {
    if queue::token_revoke(&state.pool, &caller.tenant, &id).await? {
        tracing::info!(tenant = %caller.tenant, token_id = %id, "token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("no live token with this id".to_string()))
    }
}

/// The optional `{"label": "..."}` body of a token request.
async fn token_label(body: Body) -> Result<String> {
    let bytes = input::read_body(body, MAX_JSON_BODY).await?;
    let request: TokenRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        input::parse_json(&bytes)?
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
