//! The API's errors and the one JSON shape they all take:
//! `{"code": "...", "message": "...", "field": "..."}`.
//!
//! Caller mistakes get a 4xx naming the field and the problem. Faults of
//! the host get a generic 500 (503 when the database is unreachable); the
//! cause is logged here, once, and never sent to the caller.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::queue;
use crate::telemetry::error_chain;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `invalid_request`, `unauthorized`,
    /// `forbidden`, `unknown_kind`, `invalid_component`, `not_found`,
    /// `method_not_allowed`, `invalid_state`, `already_exists`,
    /// `payload_too_large`, `request_timeout`, `unavailable`, `internal`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, when one is to blame (`run_at`, `params.user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An API error.
#[derive(Debug)]
pub enum Error {
    /// A malformed or out-of-range input.
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// No token, or one that is not valid.
    Unauthorized(String),
    /// A valid token that may not do this (a disabled tenant, the admin
    /// API switched off).
    Forbidden(String),
    /// The object to create exists already.
    Exists(String),
    /// The kind has no deployed module.
    UnknownKind {
        kind: String,
        /// The field that named it.
        field: String,
    },
    /// The upload is not a usable job component.
    InvalidComponent(String),
    NotFound(String),
    MethodNotAllowed,
    /// The object is not in a state the operation applies to.
    Conflict(String),
    PayloadTooLarge {
        limit: usize,
    },
    /// The client stopped sending the body it announced.
    BodyStalled {
        idle: std::time::Duration,
    },
    /// The database is unreachable.
    Unavailable(String),
    /// A fault of the host; the message is logged, not sent.
    Internal(String),
}

/// `Result` with the API's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bad value of `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

impl Error {
    /// `kind`, named by `field`, has no deployed module.
    pub fn invalid_kind(field: &str, kind: &str) -> Self {
        Self::UnknownKind {
            kind: kind.to_string(),
            field: field.to_string(),
        }
    }

    /// The same error about a field inside `path` (`jobs[3]`): `run_at`
    /// becomes `jobs[3].run_at`, in the field and in the message.
    pub fn within(self, path: &str) -> Self {
        match self {
            Self::Invalid { field, message } => Self::Invalid {
                field: Some(match field {
                    Some(field) => format!("{path}.{field}"),
                    None => path.to_string(),
                }),
                message: format!("{path}.{message}"),
            },
            other => other,
        }
    }
}

impl From<queue::rules::Invalid> for Error {
    fn from(invalid: queue::rules::Invalid) -> Self {
        Self::Invalid {
            field: Some(invalid.field),
            message: invalid.message,
        }
    }
}

impl From<queue::Error> for Error {
    fn from(error: queue::Error) -> Self {
        match error {
            queue::Error::UnknownKind { kind } => Self::invalid_kind("kind", &kind),
            error @ queue::Error::JobNotFound { .. } => Self::NotFound(error.to_string()),
            queue::Error::TenantNotFound => Self::NotFound("no tenant of this name".to_string()),
            e @ queue::Error::TenantExists { .. } => Self::Exists(e.to_string()),
            e @ queue::Error::InvalidState { .. } => Self::Conflict(e.to_string()),
            queue::Error::Database(e) if is_unreachable(&e) => Self::Unavailable(error_chain(&e)),
            queue::Error::Database(e) => Self::Internal(error_chain(&e)),
            e @ queue::Error::InvalidOutcome { .. } => Self::Internal(error_chain(&e)),
        }
    }
}

fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        // The server is shutting down, restarting or refusing connections
        // (class 57P), or the connection failed (class 08): a restart or
        // failover, which a retry outlives.
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message, field) = match self {
            Self::Invalid { field, message } => {
                (StatusCode::BAD_REQUEST, "invalid_request", message, field)
            }
            Self::Unauthorized(message) => {
                let body = ErrorBody {
                    code: "unauthorized".to_string(),
                    message,
                    field: None,
                };
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    Json(body),
                )
                    .into_response();
            }
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message, None),
            Self::Exists(message) => (StatusCode::CONFLICT, "already_exists", message, None),
            Self::UnknownKind { kind, field } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_kind",
                format!("{field}: kind {kind:?} has no deployed module; deploy one first"),
                Some(field),
            ),
            Self::InvalidComponent(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_component",
                format!("body: {message}"),
                Some("body".to_string()),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message, None),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method".to_string(),
                None,
            ),
            Self::Conflict(message) => (StatusCode::CONFLICT, "invalid_state", message, None),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than the limit of {limit} bytes"),
                Some("body".to_string()),
            ),
            Self::BodyStalled { idle } => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "body: nothing arrived for {} s; send the whole body without pausing",
                    idle.as_secs()
                ),
                Some("body".to_string()),
            ),
            Self::Unavailable(cause) => {
                tracing::warn!(error = %cause, "request failed: database unreachable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unreachable; try again".to_string(),
                    None,
                )
            }
            Self::Internal(cause) => {
                tracing::error!(error = %cause, blame = "host", "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_string(),
                    None,
                )
            }
        };
        (
            status,
            Json(ErrorBody {
                code: code.to_string(),
                message,
                field,
            }),
        )
            .into_response()
    }
}
