//! `/v1/modules`: deploy and list job components.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Caller;
use super::error::{Error, ErrorBody, Result};
use super::input::{self, MAX_COMPONENT_BYTES, PathParam};
use super::types::{ComponentUpload, ModuleList, ModuleView};
use crate::queue::{self, DEFAULT_MAX_ATTEMPTS, ModuleOptions, rules};
use crate::runtime::{self, Runtime};

/// Most hosts a module may be granted.
const MAX_ALLOWED_HOSTS: usize = 64;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeployQuery {
    /// Attempts per job unless the job says otherwise.
    #[param(minimum = 1, maximum = 1000)]
    max_attempts: Option<i64>,
    /// How long one attempt may run, in milliseconds.
    #[param(minimum = 1, maximum = 86_400_000)]
    timeout_ms: Option<i64>,
    /// Most memory one attempt may use, in MiB.
    #[param(minimum = 1)]
    memory_limit_mib: Option<i64>,
    /// Comma-separated `host` or `host:port` entries.
    allowed_hosts: Option<String>,
}

/// `PUT /v1/modules/{kind}` with the component's bytes: 201 with a new
/// version, or 200 when the newest version already has these bytes and
/// options.
#[utoipa::path(
    put,
    path = "/v1/modules/{kind}",
    tag = "modules",
    params(
        ("kind" = String, Path, description = "the job kind the component handles"),
        DeployQuery,
    ),
    request_body(
        content = ComponentUpload,
        content_type = "application/wasm",
        description = "the component's bytes, at most 64 MiB"
    ),
    responses(
        (status = 201, description = "a new version", body = ModuleView),
        (status = 200, description = "the newest version has these bytes and options",
            body = ModuleView),
        (status = 400, description = "the kind or an option is malformed, or the body is empty",
            body = ErrorBody),
        (status = 413, description = "the body is over 64 MiB", body = ErrorBody),
        (status = 422, description = "the body is not a usable job component", body = ErrorBody),
    )
)]
pub async fn module_deploy(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(kind): PathParam,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response> {
    rules::check_kind("kind", &kind)?;
    let options = deploy_options(input::parse_query(query.as_deref())?)?;
    let bytes = input::read_body(body, MAX_COMPONENT_BYTES).await?;
    if bytes.is_empty() {
        return Err(Error::invalid(
            "body",
            "body: empty; send the component's bytes",
        ));
    }
    validate(state.runtime.clone(), bytes.clone()).await?;

    let digest = hex::encode(Sha256::digest(&bytes));
    let (module, created) = queue::module_insert(
        &state.pool,
        &caller.tenant,
        &kind,
        &digest,
        &bytes,
        &options,
    )
    .await?;
    if created {
        tracing::info!(
            tenant = %caller.tenant,
            kind,
            version = module.version,
            digest,
            "module deployed",
        );
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ModuleView::from(module))).into_response())
}

fn deploy_options(query: DeployQuery) -> Result<ModuleOptions> {
    let range = |field: &str, value: Option<i64>, default: i64, max: i64| match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(Error::invalid(
            field,
            format!("{field}: {v} is not between 1 and {max}"),
        )),
    };
    let max_attempts = range(
        "max_attempts",
        query.max_attempts,
        DEFAULT_MAX_ATTEMPTS.into(),
        1000,
    )?;
    let timeout_ms = range(
        "timeout_ms",
        query.timeout_ms,
        runtime::DEFAULT_TIMEOUT.as_millis() as i64,
        runtime::MAX_TIMEOUT.as_millis() as i64,
    )?;
    let memory_limit_mib = range(
        "memory_limit_mib",
        query.memory_limit_mib,
        (runtime::DEFAULT_MEMORY_LIMIT_BYTES >> 20) as i64,
        (runtime::MAX_MEMORY_LIMIT_BYTES >> 20) as i64,
    )?;

    let allowed_hosts: Vec<String> = query
        .allowed_hosts
        .iter()
        .flat_map(|hosts| hosts.split(','))
        .map(|host| host.trim().to_ascii_lowercase())
        .filter(|host| !host.is_empty())
        .collect();
    if allowed_hosts.len() > MAX_ALLOWED_HOSTS {
        return Err(Error::invalid(
            "allowed_hosts",
            format!("allowed_hosts: at most {MAX_ALLOWED_HOSTS} hosts"),
        ));
    }
    for host in &allowed_hosts {
        check_host_grant(host)?;
    }

    Ok(ModuleOptions {
        max_attempts: max_attempts as i32,
        timeout_ms: timeout_ms as i32,
        memory_limit_bytes: memory_limit_mib << 20,
        allowed_hosts,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, where a host is a DNS name
/// or an IP address.
fn check_host_grant(grant: &str) -> Result<()> {
    let (host, port) = match grant.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, "")) => (v6, None),
            Some((v6, port)) => (v6, Some(port.strip_prefix(':').unwrap_or("?"))),
            None => ("", None),
        },
        None => match grant.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (grant, None),
        },
    };
    let host_ok = if grant.starts_with('[') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "allowed_hosts",
            format!("allowed_hosts: {grant:?} is not host, host:port, [ipv6] or [ipv6]:port"),
        ))
    }
}

/// Compiles the upload off the async threads and checks it against the
/// job world.
async fn validate(runtime: Arc<Runtime>, bytes: axum::body::Bytes) -> Result<()> {
    tokio::task::spawn_blocking(move || runtime.validate(&bytes))
        .await
        .map_err(|e| Error::Internal(format!("validation task failed: {e}")))?
        .map_err(|e| Error::InvalidComponent(e.to_string()))
}

/// `GET /v1/modules`: the newest version of each kind.
#[utoipa::path(
    get,
    path = "/v1/modules",
    tag = "modules",
    responses((status = 200, description = "the newest version of each kind", body = ModuleList))
)]
pub async fn module_list(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<ModuleList>> {
    let modules = queue::module_list(&state.pool, &caller.tenant).await?;
    Ok(Json(ModuleList {
        modules: modules.into_iter().map(ModuleView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_grants_are_checked() {
        for good in [
            "mail.example.com",
            "127.0.0.1:8025",
            "[::1]",
            "[::1]:8080",
            "localhost",
        ] {
            assert!(check_host_grant(good).is_ok(), "{good}");
        }
        for bad in [
            "http://x",
            "a..b",
            "host:0",
            "host:99999",
            "[::1",
            "[zz]:80",
            "a b",
            "",
        ] {
            assert!(check_host_grant(bad).is_err(), "{bad}");
        }
    }
}
