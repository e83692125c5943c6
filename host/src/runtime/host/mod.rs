//! The host side of the job world's imports, one file per interface.

pub mod config;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod log;

use super::bindings;
use super::state::State;

/// A failure of the host while serving an import (the database is down,
/// say). It traps the guest, and the attempt is handed back uncharged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HostFault(pub String);

impl bindings::spool::job::types::Host for State {}
