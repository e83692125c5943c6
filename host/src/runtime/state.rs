//! What a store holds for one attempt: WASI and HTTP contexts with nothing
//! granted but the module's outbound hosts, the limiter, and the log.

use sqlx::PgPool;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::Attempt;
use super::host::http::HttpPolicy;
use super::host::log::GuestLog;
use super::limits::Limits;

/// Bytes of stdout and of stderr kept per attempt.
const STDIO_CAPACITY: usize = 64 << 10;

/// The job an attempt belongs to, for host imports and their logs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: String,
    pub kind: String,
    pub tenant: String,
    pub attempt: u32,
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
    stderr: MemoryOutputPipe,
}

impl State {
    pub fn new(attempt: &Attempt<'_>, pool: PgPool) -> Self {
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        // Deny by default: no environment, arguments, preopened
        // directories or sockets. stdout is kept nowhere; stderr is kept to
        // explain a panic.
        let wasi = WasiCtxBuilder::new()
            .stdout(MemoryOutputPipe::new(STDIO_CAPACITY))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let job = JobContext {
            id: attempt.id.to_string(),
            kind: attempt.kind.to_string(),
            tenant: attempt.tenant.to_string(),
            attempt: attempt.attempt,
            pool,
        };

        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            http_policy: HttpPolicy::new(&attempt.limits.allowed_hosts),
            limits: Limits::new(attempt.limits.memory_bytes),
            log: GuestLog::default(),
            job,
            stderr,
        }
    }

    /// What the guest wrote to stderr, lossily decoded.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
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
