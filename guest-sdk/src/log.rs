//! Structured logging to the host.
//!
//! Events carry the job's id, kind, tenant and attempt in the host's log
//! without the job adding them. The last lines of a failed attempt are kept
//! in the job's error history, so log what an operator needs to see then.

pub use crate::wit::spool::job::log::Level;

use crate::wit::spool::job::log as host;

/// Emits an event at `level` with key/value `fields`.
pub fn event(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    host::log(level, message, &fields);
}

/// Emits a debug event.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    event(Level::Debug, message, fields);
}

/// Emits an info event.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    event(Level::Info, message, fields);
}

/// Emits a warning.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    event(Level::Warn, message, fields);
}

/// Emits an error event.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    event(Level::Error, message, fields);
}
