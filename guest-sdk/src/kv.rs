//! The tenant's key-value store: small state shared by all its jobs, such
//! as counters. Keys are at most 256 bytes, values at most 64 KiB.
//!
//! ```no_run
//! let likes = spool_sdk::kv::increment("likes:user:42", 1)?;
//! spool_sdk::kv::set("last-like:user:42", "2026-12-04T10:00:00Z")?;
//! # Ok::<(), spool_sdk::kv::Error>(())
//! ```

use std::fmt;

use crate::wit::spool::job::kv::{self as host, KvError};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key or value is larger than allowed.
    TooLarge(String),
    /// `increment` found a value that is not an integer, or overflowed.
    NotAnInteger(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(m) => write!(f, "kv: too large: {m}"),
            Self::NotAnInteger(m) => write!(f, "kv: not an integer: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<KvError> for Error {
    fn from(error: KvError) -> Self {
        match error {
            KvError::TooLarge(m) => Self::TooLarge(m),
            KvError::NotAnInteger(m) => Self::NotAnInteger(m),
        }
    }
}

/// The value under `key`, if any.
pub fn get(key: &str) -> Option<String> {
    host::get(key)
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<(), Error> {
    Ok(host::set(key, value)?)
}

/// Removes `key`; whether it was there.
pub fn delete(key: &str) -> bool {
    host::delete(key)
}

/// Adds `delta` to the integer under `key` (0 when missing) and returns
/// the sum. Concurrent increments from many jobs all count.
pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
    Ok(host::increment(key, delta)?)
}
