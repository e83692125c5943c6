//! `/v1/config`: the tenant's config entries and secrets.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::auth::Caller;
use super::error::{Error, ErrorBody, Result};
use super::input::{self, MAX_JSON_BODY, PathParam};
use super::types::{ConfigList, ConfigRequest, ConfigView};
use crate::queue;

/// Longest config value.
const MAX_VALUE_BYTES: usize = 64 << 10;

/// `PUT /v1/config/{name}` with `{"value": "...", "secret": false}`. A
/// secret's value is never returned.
#[utoipa::path(
    put,
    path = "/v1/config/{name}",
    tag = "config",
    params(("name" = String, Path, description = "the entry's name")),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "the entry as set", body = ConfigView),
        (status = 400, description = "the name or value is malformed", body = ErrorBody),
        (status = 413, description = "the body is over 2 MiB", body = ErrorBody),
    )
)]
pub async fn config_set(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(name): PathParam,
    body: Body,
) -> Result<Json<ConfigView>> {
    check_name(&name)?;
    let bytes = input::read_body(body, MAX_JSON_BODY).await?;
    let request: ConfigRequest = input::parse_json(&bytes)?;
    if request.value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("value: longer than {MAX_VALUE_BYTES} bytes"),
        ));
    }
    if request.value.contains('\0') {
        return Err(Error::invalid(
            "value",
            "value: contains \\u0000, which cannot be stored",
        ));
    }

    let entry = queue::config_set(
        &state.pool,
        &caller.tenant,
        &name,
        &request.value,
        request.secret,
    )
    .await?;
    tracing::info!(tenant = %caller.tenant, name, secret = request.secret, "config entry set");
    Ok(Json(entry.into()))
}

/// `GET /v1/config`.
#[utoipa::path(
    get,
    path = "/v1/config",
    tag = "config",
    responses((
        status = 200,
        description = "every entry; secrets without values",
        body = ConfigList
    ))
)]
pub async fn config_list(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<ConfigList>> {
    let entries = queue::config_list(&state.pool, &caller.tenant).await?;
    Ok(Json(ConfigList {
        entries: entries.into_iter().map(ConfigView::from).collect(),
    }))
}

/// `DELETE /v1/config/{name}`: 204, or 404 if there was no such entry.
#[utoipa::path(
    delete,
    path = "/v1/config/{name}",
    tag = "config",
    params(("name" = String, Path, description = "the entry's name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "the name is malformed", body = ErrorBody),
        (status = 404, description = "no entry of this name", body = ErrorBody),
    )
)]
pub async fn config_delete(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(name): PathParam,
) -> Result<StatusCode> {
    check_name(&name)?;
    if queue::config_delete(&state.pool, &caller.tenant, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!("no config entry named {name:?}")))
    }
}

/// 1 to 128 of `A-Z a-z 0-9 _ . -`, starting with a letter or `_`
/// (as the `config_name_format` constraint).
fn check_name(name: &str) -> Result<()> {
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let valid = starts_well
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "name: {name:?} is not valid; use 1 to 128 letters, digits, '_', '.' or '-', \
                 starting with a letter or '_'"
            ),
        ))
    }
}
