//! End-to-end tests: a real PostgreSQL (a database per test), the real
//! guest components built from this repository, the real HTTP API on a
//! loopback port and, where a test says so, real `spool` processes.
//!
//! One binary for all of them, to link the host once.

mod support;

mod api;
mod bad_input;
mod batch;
mod bench;
mod cancel_retry;
mod capabilities;
mod chaos;
mod cli;
mod concurrency;
mod database;
mod defaults;
mod demo;
mod examples;
mod isolation;
mod lifecycle;
mod maintenance;
mod modules;
mod openapi;
mod outbound;
mod processes;
mod sandbox;
mod sql_enqueue;
mod tenants;
