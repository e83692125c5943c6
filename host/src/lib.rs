//! Spool: a PostgreSQL job queue whose job handlers are WebAssembly
//! components, run sandboxed inside this host.
//!
//! An application enqueues a job (a kind and JSON params); a worker claims
//! it, runs the component deployed for that kind with those params, and
//! stores what it returned. Jobs can be scheduled, de-duplicated by id,
//! cancelled, retried and pruned.
//!
//! # Layout
//!
//! - [`database`]: connecting, creating the database, migrations.
//! - [`queue`]: every SQL statement; the job state machine.
//! - [`runtime`]: the wasmtime engine, component cache, limits and the host
//!   side of the job world.
//! - [`worker`]: the claim loop, leases, cancellation, batched completion.
//! - [`maintenance`]: the scheduler, the rescuer and the cleaner.
//! - [`api`]: the HTTP API.
//! - [`client`]: a typed client of the HTTP API, used by the CLI.
//! - [`guests`]: building the examples and test guests from source.
//! - [`server`]: `spool serve` and `spool worker` put together.
//! - [`cli`]: the `spool` command line.
//!
//! Data flows one way: the API calls the queue; the worker calls the queue
//! and the runtime.

#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod database;
pub mod guests;
pub mod maintenance;
pub mod queue;
pub mod runtime;
pub mod server;
pub mod telemetry;
pub mod worker;
