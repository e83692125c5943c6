//! Reading what callers send: bodies with a size limit, JSON and query
//! strings decoded with the path of a bad field, timestamps and durations.
//! The rules for a job's own fields are in [`crate::queue::rules`].

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{Error, Result};
use crate::queue::rules::MAX_DELAY;

/// Largest JSON body.
pub const MAX_JSON_BODY: usize = 2 << 20;
/// Largest component upload.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let caused_by = |is: fn(&(dyn std::error::Error + 'static)) -> bool| {
            std::iter::successors(std::error::Error::source(&e), |s| s.source()).any(is)
        };
        if caused_by(|s| s.is::<http_body_util::LengthLimitError>()) {
            Error::PayloadTooLarge { limit }
        } else if caused_by(|s| s.is::<tower_http::timeout::TimeoutError>()) {
            Error::BodyStalled {
                idle: super::BODY_IDLE_TIMEOUT,
            }
        } else {
            Error::invalid("body", format!("could not read the request body: {e}"))
        }
    })
}

/// Decodes a JSON object body, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(Error::invalid(
                "body",
                "body: empty; expected a JSON object",
            ));
        }
        Some(b'{') => {}
        // serde would read an array as a struct's fields in order.
        Some(_) => {
            return Err(Error::invalid(
                "body",
                "body: not a JSON object; send {\"name\": value, ...}",
            ));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            Error::invalid("body", format!("body: not valid JSON: {}", e.inner()))
        } else {
            path_error(e)
        }
    })?;
    deserializer.end().map_err(|e| {
        Error::invalid(
            "body",
            format!("body: trailing data after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}

/// A route's one path parameter, such as a job's id, percent-decoded. One
/// that is not UTF-8 once decoded, or holds a NUL (which PostgreSQL cannot
/// take in text), is refused in the API's error shape, naming it.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Path(params)) => match params.into_iter().next() {
                Some((key, value)) if value.contains('\0') => Err(Error::invalid(
                    &key,
                    format!("{key}: contains \\u0000, which no name or id holds"),
                )),
                Some((_, value)) => Ok(Self(value)),
                None => Err(Error::Internal(
                    "PathParam on a route without path parameters".to_string(),
                )),
            },
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => Err(Error::invalid(
                    key,
                    format!("{key}: not valid UTF-8 once percent-decoded"),
                )),
                _ => Err(Error::Internal(format!(
                    "path parameters: {}",
                    e.body_text()
                ))),
            },
            Err(e) => Err(Error::Internal(format!(
                "path parameters: {}",
                e.body_text()
            ))),
        }
    }
}

/// Decodes a query string, naming the parameter at fault.
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(
        query.unwrap_or_default().as_bytes(),
    ));
    serde_path_to_error::deserialize(deserializer).map_err(path_error)
}

fn path_error<E: std::fmt::Display>(error: serde_path_to_error::Error<E>) -> Error {
    let path = error.path().to_string();
    let message = error.into_inner().to_string();
    // serde reports a missing or repeated field at the object's path,
    // naming the field only in its message.
    for (prefix, problem) in [
        ("missing field `", "required, but missing"),
        ("duplicate field `", "given more than once"),
    ] {
        if let Some((name, _)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
        {
            let field = match path.as_str() {
                "." => name.to_string(),
                parent => format!("{parent}.{name}"),
            };
            return Error::Invalid {
                message: format!("{field}: {problem}"),
                field: Some(field),
            };
        }
    }
    if path == "." {
        Error::Invalid {
            field: None,
            message,
        }
    } else {
        Error::Invalid {
            message: format!("{path}: {message}"),
            field: Some(path),
        }
    }
}

/// An RFC 3339 timestamp with a UTC offset. A time without an offset is
/// refused: it would mean a different instant on every machine.
pub fn parse_timestamp(field: &str, text: &str) -> Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        let time = time.with_timezone(&Utc);
        // Outside these years the instant has no RFC 3339 form in UTC, and
        // PostgreSQL's text input refuses it.
        if !(1..=9999).contains(&time.year()) {
            return Err(Error::invalid(
                field,
                format!("{field}: {text:?} is {time:?} in UTC, outside the years 0001 to 9999"),
            ));
        }
        return Ok(time);
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok());
    let message = if naive {
        format!("{field}: {text:?} has no UTC offset; add one, as in {text}Z or {text}+01:00")
    } else {
        format!("{field}: {text:?} is not an RFC 3339 timestamp such as 2026-12-05T09:00:00Z")
    };
    Err(Error::invalid(field, message))
}

/// A duration: a number of seconds, or text such as `90s`, `10m`, `1h 30m`
/// or `7days`; at most ten years.
pub fn parse_duration(field: &str, value: &Value) -> Result<Duration> {
    match value {
        Value::Number(n) => seconds(field, &n.to_string(), n.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => parse_duration_text(field, text),
        _ => Err(Error::invalid(
            field,
            format!(
                "{field}: not a number or a string; give seconds or a duration such as \"10m\""
            ),
        )),
    }
}

/// A duration in text (`10m`, `1h 30m`) or plain seconds (`600`).
pub fn parse_duration_text(field: &str, text: &str) -> Result<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(field, text, secs);
    }
    match humantime::parse_duration(text) {
        Ok(duration) if duration <= MAX_DELAY => Ok(duration),
        Ok(_) => Err(Error::invalid(
            field,
            format!("{field}: {text:?} is longer than ten years"),
        )),
        Err(e) => Err(Error::invalid(
            field,
            format!(
                "{field}: {text:?} is not a duration ({e}); use e.g. \"90s\", \"10m\", \"1h 30m\""
            ),
        )),
    }
}

fn seconds(field: &str, text: &str, secs: f64) -> Result<Duration> {
    if secs.is_finite() && (0.0..=MAX_DELAY.as_secs_f64()).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(Error::invalid(
            field,
            format!("{field}: {text} seconds is negative or longer than ten years"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::Invalid { message, .. }) => message,
            other => panic!("expected an invalid-request error, got {other:?}"),
        }
    }

    fn invalid(result: Result<impl std::fmt::Debug>) -> (Option<String>, String) {
        match result {
            Err(Error::Invalid { field, message }) => (field, message),
            other => panic!("expected an invalid-request error, got {other:?}"),
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only decoding is tested")]
    struct Body {
        kind: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only decoding is tested")]
    struct Inner {
        name: String,
    }

    #[test]
    fn json_bodies_name_the_field_at_fault() {
        let parse = |text: &str| invalid(parse_json::<Body>(text.as_bytes()));

        assert_eq!(
            parse(" "),
            (
                Some("body".into()),
                "body: empty; expected a JSON object".into()
            )
        );
        assert_eq!(parse(r#"["k"]"#).0.as_deref(), Some("body"));
        assert!(parse(r#"["k"]"#).1.starts_with("body: not a JSON object"));
        assert_eq!(parse(r#"{"kind": "#).0.as_deref(), Some("body"));
        assert!(
            parse(r#"{"kind": k}"#)
                .1
                .starts_with("body: not valid JSON: ")
        );
        assert!(
            parse(r#"{"kind": "k"} x"#)
                .1
                .starts_with("body: trailing data")
        );
        assert_eq!(
            parse(r#"{"inner": null}"#),
            (Some("kind".into()), "kind: required, but missing".into())
        );
        assert_eq!(
            parse(r#"{"kind": "k", "inner": {}}"#).0.as_deref(),
            Some("inner.name")
        );
        assert_eq!(
            parse(r#"{"kind": "a", "kind": "b"}"#),
            (Some("kind".into()), "kind: given more than once".into())
        );
        assert_eq!(parse(r#"{"kind": 5}"#).0.as_deref(), Some("kind"));
    }

    #[test]
    fn timestamps_need_an_offset() {
        let time = parse_timestamp("run_at", "2026-12-05T09:00:00+01:00").unwrap();
        assert_eq!(time.to_rfc3339(), "2026-12-05T08:00:00+00:00");
        assert!(
            message(parse_timestamp("run_at", "2026-12-05T09:00:00")).contains("has no UTC offset")
        );
        assert!(
            message(parse_timestamp("run_at", "tomorrow")).contains("is not an RFC 3339 timestamp")
        );
    }

    #[test]
    fn durations_are_seconds_or_text() {
        assert_eq!(
            parse_duration("delay", &json!(1.5)).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("delay", &json!("10m")).unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(
            parse_duration("delay", &json!("1h 30m")).unwrap(),
            Duration::from_secs(5400)
        );
        assert!(message(parse_duration("delay", &json!(-1))).contains("is negative"));
        assert!(
            message(parse_duration("delay", &json!("soon")))
                .starts_with("delay: \"soon\" is not a duration")
        );
        assert!(
            message(parse_duration("delay", &json!("20years"))).contains("longer than ten years")
        );
        assert!(message(parse_duration("delay", &json!(true))).starts_with("delay: not a number"));
    }
}
