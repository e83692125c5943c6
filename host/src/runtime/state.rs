//! What a store holds for one attempt: WASI and HTTP contexts with nothing
//! granted but the module's outbound hosts, the limiter, the log, and what
//! the job's imports need.

use std::time::Duration;

use sqlx::PgPool;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::host::HostFault;
use super::host::http::HttpPolicy;
use super::host::jobs::JobCalls;
use super::host::log::GuestLog;
use super::limits::Limits;
use super::stdio::TailPipe;
use super::{Attempt, LeaseClock};

/// Bytes of stderr kept per attempt, to explain a panic.
const STDERR_KEPT: usize = 16 << 10;
/// Bytes of stdout kept per attempt; nothing reads them.
const STDOUT_KEPT: usize = 0;
/// What replaces a secret's value in logs and errors.
const REDACTED: &str = "[redacted]";
/// Shorter secret values are not redacted: blanking every "1" or "abc" in
/// a log would garble it without protecting anything.
const MIN_REDACTED_LEN: usize = 6;

/// The job an attempt belongs to, for host imports and their logs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub seq: i64,
    pub worker_id: String,
    pub claim: i64,
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub tenant: String,
    pub attempt: u32,
    /// The worker's lease, renewed by progress reports.
    pub lease: Duration,
    pub lease_clock: LeaseClock,
    pub pool: PgPool,
}

/// The `T` of `Store<T>`.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(super) http_policy: HttpPolicy,
    pub(super) limits: Limits,
    pub(super) log: GuestLog,
    pub(super) job: JobContext,
    pub(super) job_calls: JobCalls,
    /// Values of the secrets the guest read, kept out of logs and errors.
    secrets: Vec<String>,
    stderr: TailPipe,
}

impl State {
    pub fn new(attempt: &Attempt<'_>, pool: PgPool) -> Self {
        let stderr = TailPipe::new(STDERR_KEPT);
        // Deny by default: no environment, arguments, preopened
        // directories or sockets.
        let wasi = WasiCtxBuilder::new()
            .stdout(TailPipe::new(STDOUT_KEPT))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let job = JobContext {
            seq: attempt.seq,
            worker_id: attempt.worker_id.to_string(),
            claim: attempt.claim,
            id: attempt.id.to_string(),
            kind: attempt.kind.to_string(),
            queue: attempt.queue.to_string(),
            tenant: attempt.tenant.to_string(),
            attempt: attempt.attempt,
            lease: attempt.lease,
            lease_clock: attempt.lease_clock.clone(),
            pool,
        };

        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            http_policy: HttpPolicy::new(
                &attempt.limits.allowed_hosts,
                attempt.lease_clock.clone(),
            ),
            limits: Limits::new(attempt.limits.memory_bytes),
            log: GuestLog::default(),
            job,
            job_calls: JobCalls::default(),
            secrets: Vec::new(),
            stderr,
        }
    }

    /// Fails (trapping the guest) once the attempt's lease has run out
    /// locally: the job may be another attempt's by now, so nothing the
    /// guest asks to write is written.
    pub fn check_lease(&self, what: &str) -> wasmtime::Result<()> {
        if self.job.lease_clock.expired() {
            return Err(wasmtime::Error::new(HostFault(format!(
                "{what} refused: the attempt's lease ran out"
            ))));
        }
        Ok(())
    }

    /// What the guest wrote to stderr last.
    pub fn stderr(&self) -> String {
        self.stderr.contents()
    }

    /// Remembers a secret's value so that it never reaches a log or error.
    pub fn note_secret(&mut self, value: &str) {
        if value.len() >= MIN_REDACTED_LEN && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_string());
        }
    }

    /// `text` with the values of the secrets the guest read blanked out.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret, REDACTED)
        })
    }

    /// The attempt's kept log lines, with outbound requests that were
    /// denied.
    pub fn into_log(self) -> Vec<String> {
        let mut lines = self.log.into_lines();
        lines.extend(self.http_policy.into_denials());
        lines
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}
