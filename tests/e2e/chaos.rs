//! The fault harness, short: real `spool worker` processes on a private
//! PostgreSQL, killed, paused, drained and cut off from a restarted
//! database while jobs run; every invariant of `spool chaos` must hold.

use std::time::Duration;

use spool::cli::chaos::{ChaosOptions, run_chaos};

#[tokio::test(flavor = "multi_thread")]
async fn no_job_is_lost_or_run_twice_at_once_under_faults() {
    let options = ChaosOptions::new(
        env!("CARGO_BIN_EXE_spool").into(),
        Duration::from_secs(40),
        800,
        3,
    );
    let report = run_chaos(&options).await.expect("the harness runs");
    assert!(
        report.verdict.passed(),
        "invariants broken:\n{}",
        report.markdown()
    );
}
