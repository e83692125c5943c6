//! `spool:job/log`: structured events from the guest.
//!
//! Every event goes to the host's log under the `spool::guest` target with
//! the job's fields, up to a rate: a burst of [`BURST`] events, then
//! [`PER_SECOND`] a second, and [`MAX_EVENTS`] in all per attempt. Events
//! over the rate are dropped and counted. The last [`KEPT_LINES`] events,
//! dropped or not, are kept with the attempt so that a failure's error
//! entry shows what led to it.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::Instant;

use super::State;
use super::bindings::spool::job::log::{Host, Level};

/// Lines kept per attempt.
const KEPT_LINES: usize = 20;
/// Longest message kept or logged, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Fields per event kept or logged.
const MAX_FIELDS: usize = 16;
/// Events an attempt may emit at once, and then per second.
const BURST: f64 = 100.0;
const PER_SECOND: f64 = 50.0;
/// Events an attempt may emit in all.
const MAX_EVENTS: u32 = 1000;

/// The log of one attempt.
#[derive(Debug)]
pub struct GuestLog {
    lines: VecDeque<String>,
    tokens: f64,
    refilled: Instant,
    emitted: u32,
    dropped: u32,
}

impl Default for GuestLog {
    fn default() -> Self {
        Self {
            lines: VecDeque::new(),
            tokens: BURST,
            refilled: Instant::now(),
            emitted: 0,
            dropped: 0,
        }
    }
}

impl GuestLog {
    /// The kept lines, with a last line counting dropped events if any.
    pub fn into_lines(mut self) -> Vec<String> {
        if self.dropped > 0 {
            let line = format!(
                "warn: {} log events were not written to the host's log (over {PER_SECOND} a \
                 second or {MAX_EVENTS} an attempt)",
                self.dropped
            );
            self.push(line);
        }
        self.lines.into()
    }

    /// How many events were dropped so far.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    fn push(&mut self, line: String) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Whether an event arriving at `now` may be written to the host's log.
    fn admit(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.refilled).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.refilled = now;
        if self.emitted >= MAX_EVENTS || self.tokens < 1.0 {
            self.dropped += 1;
            return false;
        }
        self.tokens -= 1.0;
        self.emitted += 1;
        true
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
        let line = self.redact(&line);

        if self.log.admit(Instant::now()) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_then_the_rate_and_counted() {
        let mut log = GuestLog::default();
        let start = log.refilled;

        let burst = (0..1000).filter(|_| log.admit(start)).count();
        let a_second_later = (0..1000)
            .filter(|_| log.admit(start + Duration::from_secs(1)))
            .count();

        assert_eq!(burst, 100);
        assert_eq!(a_second_later, 50);
        assert_eq!(log.dropped(), 2000 - 150);
        for i in 0..30 {
            log.push(format!("line {i}"));
        }
        let lines = log.into_lines();
        assert_eq!(lines.len(), KEPT_LINES);
        assert!(
            lines
                .last()
                .unwrap()
                .contains("1850 log events were not written"),
            "{lines:?}"
        );
    }

    #[test]
    fn an_attempt_emits_at_most_max_events() {
        let mut log = GuestLog::default();
        let start = log.refilled;

        let admitted = (0..2000u64)
            .filter(|i| log.admit(start + Duration::from_secs(*i)))
            .count();

        assert_eq!(admitted, MAX_EVENTS as usize);
    }
}
