//! The tenant's configuration and secrets.
//!
//! Operators set them through the API (`spool config set NAME VALUE`, with
//! `--secret` for values the API must never show again). A job reads them
//! by name; it sees only its own tenant's entries.

use crate::Error;
use crate::wit::spool::job::config as host;

/// The value of config entry `name`, if it is set.
pub fn get(name: &str) -> Option<String> {
    host::get(name)
}

/// The value of config entry `name`, or an error that discards the job
/// naming the missing entry: a retry cannot set it.
pub fn require(name: &str) -> Result<String, Error> {
    get(name).ok_or_else(|| Error::fail(format!("config entry {name:?} is not set")))
}

/// The value of secret `name`, if it is set.
pub fn secret(name: &str) -> Option<String> {
    host::secret(name)
}
