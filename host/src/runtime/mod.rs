//! The wasm side of Spool: one wasmtime [`Engine`] per process, compiled
//! components cached by content digest, and a fresh [`Store`] for every
//! attempt with its own memory cap, deadline and grants.
//!
//! A guest is interrupted every [`EPOCH_TICK`] to yield to the async
//! runtime, so that a guest that never calls the host (`loop {}`) still
//! gives way to other jobs, and a timeout or a cancellation can drop it.
//! Dropping a guest's future is safe: its store is thrown away with it.
//!
//! Host imports that need the database (tenant config) reach it through
//! [`crate::queue`]; this module runs no SQL of its own.

pub mod bindings;
mod host;
mod lease;
mod limits;
mod outcome;
mod state;
mod stdio;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

pub use lease::LeaseClock;
pub use outcome::{Blame, Outcome, clean_message};

use bindings::{JobInfo, JobPre};
use state::State;

/// How often every running guest is interrupted to yield.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Wall-clock limit of an attempt unless the module sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest timeout a module may set: a day.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Linear memory limit of an attempt unless the module sets one.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 128 << 20;
/// The largest memory limit a module may set: all of wasm32's 4 GiB.
pub const MAX_MEMORY_LIMIT_BYTES: u64 = 4 << 30;
/// Largest result a job may return, in bytes of JSON.
pub const DEFAULT_RESULT_LIMIT_BYTES: usize = 1 << 20;
/// Instances one process may run at once unless configured.
pub const DEFAULT_MAX_INSTANCES: u32 = 64;
/// Compiled components kept in memory; the least recently used goes first.
const CACHE_CAPACITY: usize = 256;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances that may run at once. With the pooling allocator, memory
    /// for this many is reserved (virtual address space) at start.
    pub max_instances: u32,
    /// Largest result a job may return, in bytes of JSON. A larger result
    /// discards the job with a message saying so.
    pub result_limit_bytes: usize,
    /// Whether to use the pooling allocator. When the machine cannot
    /// reserve the pool (a low `ulimit -v`, say) the runtime falls back to
    /// allocating on demand and logs a warning.
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: DEFAULT_MAX_INSTANCES,
            result_limit_bytes: DEFAULT_RESULT_LIMIT_BYTES,
            pooling: true,
        }
    }
}

/// Why an upload is not a usable job component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("not a WebAssembly binary: expected a component built for wasm32-wasip2")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build with \
         `cargo build --target wasm32-wasip2` or `cargo component build`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the component imports what this host does not provide: {0}")]
    UnsupportedImport(String),
    #[error("not a job component: it does not export spool:job/handler@0.1.0 ({0})")]
    NotAJob(String),
}

/// A component ready to instantiate.
pub struct Prepared {
    pre: JobPre<State>,
    pub digest: String,
}

/// The limits and grants one attempt runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// `host` (default port of the scheme) or `host:port` entries.
    pub allowed_hosts: Vec<String>,
}

/// One attempt to run.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The job's row, for imports that write to it (progress).
    pub seq: i64,
    /// The worker running the attempt and the claim that began it; writes
    /// to the job's row hold only while the row names both.
    pub worker_id: &'a str,
    pub claim: i64,
    pub id: &'a str,
    pub kind: &'a str,
    pub queue: &'a str,
    pub tenant: &'a str,
    pub attempt: u32,
    pub max_attempts: u32,
    pub params: &'a str,
    pub limits: Limits,
    /// The worker's lease, which progress reports renew.
    pub lease: Duration,
    /// When the lease runs out locally; host calls that write are refused
    /// after that.
    pub lease_clock: LeaseClock,
}

/// The engine, its linker and the component cache. One per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    cache: Mutex<HashMap<String, CacheEntry>>,
    config: RuntimeConfig,
    pool: PgPool,
}

struct CacheEntry {
    cell: Arc<OnceCell<Arc<Prepared>>>,
    last_used: Instant,
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker. `pool` is
    /// what host imports use to read tenant data.
    pub fn new(config: RuntimeConfig, pool: PgPool) -> wasmtime::Result<Self> {
        let engine = match config.pooling {
            true => Engine::new(&engine_config(Some(config.max_instances))).or_else(|e| {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    "pooling allocator unavailable; allocating instances on demand"
                );
                Engine::new(&engine_config(None))
            })?,
            false => Engine::new(&engine_config(None))?,
        };
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::spool::job::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::spool::job::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::spool::job::config::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::spool::job::kv::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::spool::job::jobs::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;

        Ok(Self {
            engine,
            linker,
            cache: Mutex::new(HashMap::new()),
            config,
            pool,
        })
    }

    /// Checks that `bytes` is a component of the job world whose imports
    /// this host provides. Compiles it: call it off the async threads.
    pub fn validate(&self, bytes: &[u8]) -> Result<(), ValidationError> {
        compile(&self.engine, &self.linker, bytes).map(drop)
    }

    /// The prepared component for `digest`, compiling the bytes `load`
    /// returns on first use. Concurrent callers share one compilation.
    pub async fn prepare<F>(&self, digest: &str, load: F) -> Result<Arc<Prepared>, String>
    where
        F: Future<Output = Result<Vec<u8>, String>>,
    {
        let cell = self.cache_cell(digest);
        let prepared = cell
            .get_or_try_init(|| async {
                let bytes = load.await?;
                let (engine, linker) = (self.engine.clone(), self.linker.clone());
                let digest = digest.to_string();
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    let pre = compile(&engine, &linker, &bytes).map_err(|e| e.to_string())?;
                    tracing::info!(
                        digest,
                        size_bytes = bytes.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "compiled module"
                    );
                    Ok::<_, String>(Arc::new(Prepared { pre, digest }))
                })
                .await
                .map_err(|e| format!("compile task failed: {e}"))?
            })
            .await?;
        Ok(prepared.clone())
    }

    /// Runs one attempt to its outcome. Never fails: every way an attempt
    /// can end, including host faults, is an [`Outcome`].
    pub async fn run(
        &self,
        prepared: &Prepared,
        attempt: Attempt<'_>,
        cancel: &CancellationToken,
    ) -> Outcome {
        let started = Instant::now();
        let timeout = attempt.limits.timeout;
        let mut store = Store::new(&self.engine, State::new(&attempt, self.pool.clone()));
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);

        let info = JobInfo {
            id: attempt.id.to_string(),
            kind: attempt.kind.to_string(),
            queue: attempt.queue.to_string(),
            tenant: attempt.tenant.to_string(),
            attempt: attempt.attempt,
            max_attempts: attempt.max_attempts,
        };
        let call = async {
            let job = prepared.pre.instantiate_async(&mut store).await?;
            job.spool_job_handler()
                .call_run(&mut store, &info, attempt.params)
                .await
        };

        let returned = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            returned = tokio::time::timeout(timeout, call) => Some(returned),
        };
        let state = store.into_data();
        if state.log.dropped() > 0 {
            tracing::warn!(
                dropped = state.log.dropped(),
                blame = Blame::Guest.as_str(),
                "guest logged over its rate; events were dropped"
            );
        }
        let outcome = match returned {
            None => Outcome::cancelled_while_running(),
            Some(Err(_elapsed)) => Outcome::timed_out(timeout),
            Some(Ok(Err(error))) => Outcome::from_trap(&error, &state),
            Some(Ok(Ok(Err(job_error)))) => Outcome::from_job_error(job_error),
            Some(Ok(Ok(Ok(result)))) => {
                Outcome::from_result(result, self.config.result_limit_bytes)
            }
        };

        let outcome = outcome.redacted(|text| state.redact(text));
        outcome.with_log(state.into_log(), started.elapsed())
    }

    fn cache_cell(&self, digest: &str) -> Arc<OnceCell<Arc<Prepared>>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if let Some(entry) = cache.get_mut(digest) {
            entry.last_used = now;
            return entry.cell.clone();
        }
        if cache.len() >= CACHE_CAPACITY
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(digest, _)| digest.clone())
        {
            cache.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        cache.insert(
            digest.to_string(),
            CacheEntry {
                cell: cell.clone(),
                last_used: now,
            },
        );
        cell
    }
}

/// Compiles `bytes` and checks it against the job world and the linker.
fn compile(
    engine: &Engine,
    linker: &Linker<State>,
    bytes: &[u8],
) -> Result<JobPre<State>, ValidationError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(ValidationError::CoreModule),
        Some([0, b'a', b's', b'm', ..]) => {}
        _ => return Err(ValidationError::NotWasm),
    }
    let component =
        Component::new(engine, bytes).map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| ValidationError::UnsupportedImport(format!("{e:#}")))?;
    JobPre::new(pre).map_err(|e| ValidationError::NotAJob(format!("{e:#}")))
}

fn engine_config(pooled_instances: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);

    if let Some(instances) = pooled_instances {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances);
        // A wasm32-wasip2 component holds a few core instances (the
        // program and its adapter shims); give each room for several.
        pool.total_core_instances(instances * 8);
        pool.total_memories(instances * 2);
        pool.total_tables(instances * 8);
        pool.total_stacks(instances);
        pool.max_memory_size(MAX_MEMORY_LIMIT_BYTES as usize);
        // Resetting a slot by zeroing the pages it used instead of handing
        // them back to the kernel made instantiation 4-5x faster on a
        // 2-core machine, and stopped a second thread from slowing the
        // first through page-table shootdowns.
        pool.linear_memory_keep_resident(4 << 20);
        pool.table_keep_resident(1 << 20);
        // Zero only the pages a guest touched, found with the PAGEMAP_SCAN
        // ioctl (Linux 6.7 and later), rather than the whole resident
        // prefix: a small guest dirties a few pages of its first megabyte.
        pool.pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[expect(
    clippy::disallowed_methods,
    reason = "the ticker must run even when every async thread is busy in a guest"
)]
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("spool-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch ticker thread");
}
