//! How an attempt ended, classified from what the guest returned or how
//! it stopped.

use std::time::Duration;

use serde_json::Value;
use wasmtime::Trap;

use super::bindings::JobError;
use super::host::HostFault;
use super::state::State;
use crate::queue::FailAction;

/// Longest error message kept, in characters; longer ones are cut.
const MAX_MESSAGE_CHARS: usize = 4096;

/// Who is at fault for a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The component misbehaved or failed: the attempt counts.
    Guest,
    /// The host could not run the attempt (database unreachable, component
    /// missing): the attempt is handed back without counting.
    Host,
}

impl Blame {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Host => "host",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The guest returned a result: valid JSON within the size limit.
    Completed {
        result: String,
        log: Vec<String>,
        elapsed: Duration,
    },
    /// The attempt failed.
    Failed {
        action: FailAction,
        message: String,
        blame: Blame,
        log: Vec<String>,
        elapsed: Duration,
    },
}

impl Outcome {
    fn failed(action: FailAction, blame: Blame, message: impl Into<String>) -> Self {
        Self::Failed {
            action,
            message: clean_message(&message.into()),
            blame,
            log: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// A host fault before or around the guest: hand the attempt back.
    pub fn host_fault(message: impl Into<String>) -> Self {
        Self::failed(FailAction::Retry, Blame::Host, message)
    }

    pub(super) fn cancelled_while_running() -> Self {
        Self::failed(FailAction::Cancel, Blame::Guest, "cancelled while running")
    }

    pub(super) fn timed_out(timeout: Duration) -> Self {
        Self::failed(
            FailAction::Retry,
            Blame::Guest,
            format!("timed out: the attempt ran longer than the module's {timeout:?} limit"),
        )
    }

    pub(super) fn from_job_error(error: JobError) -> Self {
        match error {
            JobError::Retry(m) => Self::failed(FailAction::Retry, Blame::Guest, m),
            JobError::Fail(m) => Self::failed(FailAction::Discard, Blame::Guest, m),
            JobError::Cancel(m) => Self::failed(FailAction::Cancel, Blame::Guest, m),
            JobError::RetryAfter(r) => Self::failed(
                FailAction::RetryAfter(Duration::from_secs(r.seconds.into())),
                Blame::Guest,
                r.message,
            ),
        }
    }

    pub(super) fn from_result(result: String, limit_bytes: usize) -> Self {
        if result.len() > limit_bytes {
            return Self::failed(
                FailAction::Discard,
                Blame::Guest,
                format!(
                    "result too large: {} bytes, the limit is {limit_bytes} bytes",
                    result.len()
                ),
            );
        }
        match serde_json::from_str::<Value>(&result) {
            Err(e) => Self::failed(
                FailAction::Discard,
                Blame::Guest,
                format!("result is not JSON: {e}"),
            ),
            Ok(value) if contains_nul(&value) => Self::failed(
                FailAction::Discard,
                Blame::Guest,
                "result contains \\u0000, which cannot be stored",
            ),
            Ok(_) => Self::Completed {
                result,
                log: Vec::new(),
                elapsed: Duration::ZERO,
            },
        }
    }

    pub(super) fn from_trap(error: &wasmtime::Error, state: &State) -> Self {
        if let Some(fault) = error.downcast_ref::<HostFault>() {
            return Self::host_fault(fault.to_string());
        }
        if let Some(exceeded) = state.limits.exceeded() {
            let message = exceeded.message(state.limits.memory_bytes());
            return Self::failed(FailAction::Retry, Blame::Guest, message);
        }

        let message = match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => "stack overflow (unbounded recursion?)".to_string(),
            // Rust and C guests keep their stack in linear memory, below its
            // start: overflowing it reads or writes out of bounds.
            Some(Trap::MemoryOutOfBounds) => {
                "out-of-bounds memory access (a stack overflow from unbounded recursion, or a \
                 memory bug in the guest)"
                    .to_string()
            }
            Some(Trap::UnreachableCodeReached) => match panic_message(&state.stderr()) {
                Some(panic) => format!("guest panicked: {panic}"),
                None => "guest aborted (unreachable instruction reached)".to_string(),
            },
            Some(trap) => format!("guest trapped: {trap}"),
            None => format!("guest failed: {}", root_message(error)),
        };
        Self::failed(FailAction::Retry, Blame::Guest, message)
    }

    /// Passes the failure message through `redact`.
    pub(super) fn redacted(self, redact: impl Fn(&str) -> String) -> Self {
        match self {
            Self::Failed {
                action,
                message,
                blame,
                log,
                elapsed,
            } => Self::Failed {
                action,
                message: redact(&message),
                blame,
                log,
                elapsed,
            },
            completed => completed,
        }
    }

    /// Attaches the attempt's log lines and duration.
    pub(super) fn with_log(mut self, lines: Vec<String>, took: Duration) -> Self {
        match &mut self {
            Self::Completed { log, elapsed, .. } | Self::Failed { log, elapsed, .. } => {
                *log = lines;
                *elapsed = took;
            }
        }
        self
    }
}

/// The message of the innermost error, which for a trap is the trap itself
/// rather than the backtrace wasmtime wraps around it.
fn root_message(error: &wasmtime::Error) -> String {
    error
        .chain()
        .last()
        .map(ToString::to_string)
        .unwrap_or_else(|| error.to_string())
}

/// The first line of Rust's panic message in `stderr`, from "panicked at".
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    // "panicked at src/lib.rs:10:5:\nmessage\n"
    let mut lines = rest.lines();
    let location = lines.next()?.trim_end_matches(':');
    let message = lines.next().unwrap_or_default();
    Some(format!("{message} (at {location})"))
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// An error message fit to store: no NUL (jsonb refuses it) and at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn clean_message(message: &str) -> String {
    let mut cleaned: String = message
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect();
    if message.chars().nth(MAX_MESSAGE_CHARS).is_some() {
        cleaned.push_str(" [truncated]");
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_must_be_json_without_nul_and_within_the_limit() {
        assert!(matches!(
            Outcome::from_result(r#"{"a":1}"#.into(), 100),
            Outcome::Completed { .. }
        ));

        for (result, expected) in [
            ("not json", "result is not JSON"),
            (r#"{"a":"\u0000"}"#, "result contains \\u0000"),
            (r#"{"\u0000":1}"#, "result contains \\u0000"),
            (&"1".repeat(101), "result too large: 101 bytes"),
        ] {
            match Outcome::from_result(result.to_string(), 100) {
                Outcome::Failed {
                    action, message, ..
                } => {
                    assert_eq!(action, FailAction::Discard);
                    assert!(message.starts_with(expected), "{message}");
                }
                other => panic!("{result}: {other:?}"),
            }
        }
    }

    #[test]
    fn messages_are_cleaned_and_bounded() {
        assert_eq!(clean_message("a\0b"), "a\u{fffd}b");
        let long = "x".repeat(MAX_MESSAGE_CHARS + 10);
        let cleaned = clean_message(&long);
        assert_eq!(
            cleaned.chars().count(),
            MAX_MESSAGE_CHARS + " [truncated]".len()
        );
    }

    #[test]
    fn panic_message_is_found_in_stderr() {
        let stderr =
            "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom\nnote: run with ...\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom (at src/lib.rs:12:9)")
        );
        assert_eq!(panic_message("nothing here"), None);
    }
}
