//! `noop`: the smallest useful job, for benchmarks. It reads `{"n": 7}`
//! and returns `{"n": 7, "started_ms": ...}`: when it started, in Unix
//! milliseconds by the wall clock, so that a benchmark can measure the time
//! from enqueue to start.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use spool_sdk::{Error, Job};

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    n: u64,
}

#[derive(Serialize)]
struct Done {
    n: u64,
    started_ms: f64,
}

#[spool_sdk::job]
fn noop(_job: &Job, params: Params) -> Result<Done, Error> {
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0);
    Ok(Done {
        n: params.n,
        started_ms,
    })
}
