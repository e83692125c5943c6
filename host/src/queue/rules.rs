//! What a job's fields may hold. The API and jobs enqueued from inside a
//! job check their input with the same rules; the table's constraints are
//! the last line of defence.

use std::time::Duration;

use serde_json::Value;

/// Largest params, in bytes of JSON.
pub const MAX_PARAMS_BYTES: usize = 1 << 20;

/// A field that breaks a rule: which field, and what is wrong with it. The
/// message starts with the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            field: field.to_string(),
            message: format!("{field}: {problem}"),
        }
    }
}

/// A kind: 1 to 128 of `A-Z a-z 0-9 _ . : -`, starting with a letter or
/// digit (`user:send-email`).
pub fn check_kind(field: &str, kind: &str) -> Result<(), Invalid> {
    check_name(field, kind, 128, &['_', '.', ':', '-'])
}

/// A queue: 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit.
pub fn check_queue(field: &str, queue: &str) -> Result<(), Invalid> {
    check_name(field, queue, 64, &['_', '.', '-'])
}

fn check_name(field: &str, value: &str, max: usize, punctuation: &[char]) -> Result<(), Invalid> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || punctuation.contains(&c);
    let starts_well = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if value.is_empty() || value.len() > max || !starts_well || !value.chars().all(allowed) {
        let punctuation: String = punctuation.iter().collect();
        return Err(Invalid::new(
            field,
            format!(
                "{value:?} is not valid; use 1 to {max} letters, digits or any of \
                 {punctuation:?}, starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A tenant name: 1 to 63 of `a-z 0-9 _ -`, starting with a letter or
/// digit. Lowercase only, so that `Acme` and `acme` cannot both exist.
pub fn check_tenant(field: &str, name: &str) -> Result<(), Invalid> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > 63 || !starts_well || !name.chars().all(allowed) {
        return Err(Invalid::new(
            field,
            format!(
                "{name:?} is not valid; use 1 to 63 lowercase letters, digits, '_' or '-', \
                 starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A limit on a tenant's running jobs: 1 to 100,000.
pub fn check_max_running(field: &str, max_running: i64) -> Result<i32, Invalid> {
    match max_running {
        1..=100_000 => Ok(max_running as i32),
        n => Err(Invalid::new(
            field,
            format!("{n} is not between 1 and 100000"),
        )),
    }
}

/// A job id: 1 to 255 characters, no control characters, no leading or
/// trailing whitespace, not `.` or `..` (URL paths drop those segments).
pub fn check_job_id(field: &str, id: &str) -> Result<(), Invalid> {
    let problem = if id.is_empty() {
        "must not be empty"
    } else if id == "." || id == ".." {
        "must not be . or .., which a URL path cannot carry"
    } else if id.chars().count() > 255 {
        "must be at most 255 characters"
    } else if id.chars().any(char::is_control) {
        "must not contain control characters"
    } else if id.trim() != id {
        "must not start or end with whitespace"
    } else {
        return Ok(());
    };
    Err(Invalid::new(field, problem))
}

/// A token id: the 16 lowercase hex digits after `sp_` in a token.
pub fn check_token_id(field: &str, id: &str) -> Result<(), Invalid> {
    if super::tenants::is_token_id(id) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{id:?} is not a token id; ids are 16 hex digits, as `spool token list` shows"),
        ))
    }
}

/// Longest delay or age accepted: ten years.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// A delay in whole seconds, at most [`MAX_DELAY`].
pub fn check_delay_secs(field: &str, secs: u64) -> Result<f64, Invalid> {
    if secs <= MAX_DELAY.as_secs() {
        Ok(secs as f64)
    } else {
        Err(Invalid::new(
            field,
            format!("{secs} seconds is longer than ten years"),
        ))
    }
}

/// A priority: 0 (first) to 9 (last).
pub fn check_priority(field: &str, priority: i64) -> Result<i16, Invalid> {
    match priority {
        0..=9 => Ok(priority as i16),
        p => Err(Invalid::new(field, format!("{p} is not between 0 and 9"))),
    }
}

/// An attempt limit: 1 to 1000.
pub fn check_max_attempts(field: &str, max_attempts: i64) -> Result<i32, Invalid> {
    match max_attempts {
        1..=1000 => Ok(max_attempts as i32),
        n => Err(Invalid::new(
            field,
            format!("{n} is not between 1 and 1000"),
        )),
    }
}

/// Params: any JSON value, at most [`MAX_PARAMS_BYTES`], without `\u0000`
/// (PostgreSQL's jsonb cannot store it). `field` names the params in
/// messages; a NUL's own path is appended to it.
pub fn check_params(field: &str, params: &Value) -> Result<(), Invalid> {
    if let Some(path) = nul_path(params, field) {
        return Err(Invalid::new(
            &path,
            "contains \\u0000, which cannot be stored; remove it or encode the data",
        ));
    }
    let size = serde_json::to_vec(params)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PARAMS_BYTES {
        return Err(Invalid::new(
            field,
            format!("{size} bytes of JSON, the limit is {MAX_PARAMS_BYTES}"),
        ));
    }
    Ok(())
}

/// The path of the first string (key or value) holding a NUL.
fn nul_path(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(path.to_string())
            } else {
                nul_path(item, &format!("{path}.{key}"))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kinds_are_checked() {
        assert!(check_kind("kind", "user:send-email").is_ok());
        assert!(check_kind("kind", "a.b_c-1").is_ok());
        for bad in ["", ":x", "has space", "ü", &"k".repeat(129)] {
            assert!(
                check_kind("kind", bad)
                    .unwrap_err()
                    .message
                    .starts_with("kind: "),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!(check_tenant("name", "acme-2_eu").is_ok());
        for bad in ["", "Acme", "-acme", "a b", "ü", &"t".repeat(64)] {
            let error = check_tenant("name", bad).unwrap_err();
            assert!(error.message.starts_with("name: "), "{bad:?}");
        }
    }

    #[test]
    fn job_ids_are_checked() {
        assert!(check_job_id("job_id", "send-email:ada@example.com").is_ok());
        let message = |id: &str| check_job_id("job_id", id).unwrap_err().message;
        assert_eq!(message(""), "job_id: must not be empty");
        assert_eq!(
            message("a\nb"),
            "job_id: must not contain control characters"
        );
        assert_eq!(
            message(" a"),
            "job_id: must not start or end with whitespace"
        );
        assert_eq!(
            message("a\u{3000}"),
            "job_id: must not start or end with whitespace"
        );
        assert_eq!(
            message(".."),
            "job_id: must not be . or .., which a URL path cannot carry"
        );
        assert!(check_job_id("job_id", "...").is_ok());
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(check_priority("priority", 9), Ok(9));
        assert_eq!(
            check_priority("priority", 10).unwrap_err().message,
            "priority: 10 is not between 0 and 9"
        );
        assert_eq!(check_max_attempts("max_attempts", 1), Ok(1));
        assert!(check_max_attempts("max_attempts", 0).is_err());
    }

    #[test]
    fn nul_in_params_is_refused_with_its_path() {
        assert!(check_params("params", &json!({"a": [1, "ok"]})).is_ok());

        let error =
            check_params("params", &json!({"user": {"names": ["ok", "a\u{0}b"]}})).unwrap_err();

        assert_eq!(error.field, "params.user.names[1]");
        assert!(error.message.contains("\\u0000"), "{}", error.message);
    }
}
