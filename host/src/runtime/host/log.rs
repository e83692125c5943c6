//! `spool:job/log`: structured events from the guest.
//!
//! Every event goes to the host's log under the `spool::guest` target with
//! the job's fields; the last [`KEPT_LINES`] are kept with the attempt so
//! that a failure's error entry shows what led to it.

use std::collections::VecDeque;
use std::fmt::Write;

use super::State;
use super::bindings::spool::job::log::{Host, Level};

/// Lines kept per attempt.
const KEPT_LINES: usize = 20;
/// Longest message kept or logged, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Fields per event kept or logged.
const MAX_FIELDS: usize = 16;

/// The last lines an attempt logged.
#[derive(Debug, Default)]
pub struct GuestLog {
    lines: VecDeque<String>,
}

impl GuestLog {
    pub fn into_lines(self) -> Vec<String> {
        self.lines.into()
    }

    fn push(&mut self, line: String) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

impl Host for State {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let mut line: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        for (key, value) in fields.iter().take(MAX_FIELDS) {
            let _ = write!(line, " {key}={value:?}");
        }

        let job = &self.job;
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    target: "spool::guest",
                    job_id = %job.id,
                    kind = %job.kind,
                    tenant = %job.tenant,
                    attempt = job.attempt,
                    "{line}"
                )
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }

        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.push(format!("{level}: {line}"));
        Ok(())
    }
}
