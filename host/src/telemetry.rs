//! Logging setup, and the field names every module uses.
//!
//! Only `main` installs a subscriber; library code emits `tracing` events.
//! Events about a job carry these fields, always spelled the same way:
//!
//! | field | meaning |
//! | --- | --- |
//! | `job_id` | the job's public id |
//! | `kind` | the job's kind |
//! | `tenant` | the owning tenant |
//! | `queue` | the queue it was claimed from |
//! | `attempt`, `max_attempts` | the attempt number and the limit |
//! | `worker_id` | the worker process |
//! | `outcome` | how an attempt ended |
//! | `error` | the whole error chain (`{:#}`) |
//! | `blame` | `guest` (the component misbehaved) or `host` (our fault) |
//!
//! Levels: `error` for host faults an operator must look at; `warn` for
//! degraded but self-healing conditions (a rescued job, a lost database
//! connection, a guest hitting a limit); `info` for lifecycle events and
//! maintenance that changed rows; `debug` for each claim and idle cycle.
//! A guest's failure is job data, kept in the job's errors; it is logged at
//! `info` or `warn` with `blame = "guest"`, never at `error`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,wasmtime=warn,cranelift=warn";
/// The filter of commands that show their own progress: problems only,
/// without sqlx's slow-statement warnings.
pub const QUIET_FILTER: &str = "warn,sqlx::query=error";
/// For `spool chaos`, whose faults make the API it runs in-process log
/// errors on purpose: the harness reports what matters itself.
pub const SILENT_FILTER: &str = "off";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber, writing to stderr, with `default_filter`
/// unless `RUST_LOG` is set.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::NONE);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

/// An error and its sources, `: `-separated, for the `error` field.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
