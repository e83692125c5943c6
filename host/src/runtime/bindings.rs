//! Host bindings of the job world (`wit/job.wit`), generated once here.
//!
//! WASI types come from wasmtime-wasi and wasmtime-wasi-http, so the host
//! implementations of those packages serve this world unchanged.

wasmtime::component::bindgen!({
    world: "job",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use exports::spool::job::handler::{JobError, JobInfo};
