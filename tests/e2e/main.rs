//! End-to-end tests: a real PostgreSQL (a database per test), the real
//! guest components built from this repository, the real HTTP API on a
//! loopback port and, where a test says so, real `spool` processes.
//!
//! One binary for all of them, to link the host once.

mod support;

mod database;
mod lifecycle;
mod outbound;
mod cancel_retry;
mod demo;
mod maintenance;
mod sql_enqueue;
mod concurrency;
mod processes;
mod examples;
mod bad_input;
mod modules;
mod api;
mod cli;
