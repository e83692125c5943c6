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

/// The scale-out measurement runs each step to the end: every job of every
/// step completed, each in exactly one run, and a figure for each step.
#[tokio::test(flavor = "multi_thread")]
async fn scale_out_runs_every_job_once_per_step() {
    let mut options = ChaosOptions::new(
        env!("CARGO_BIN_EXE_spool").into(),
        Duration::from_secs(60),
        150,
        1,
    );
    options.scale_out = vec![1, 2];
    let report = run_chaos(&options).await.expect("the harness runs");
    assert!(report.verdict.passed(), "{}", report.markdown());
    let steps: Vec<&str> = report
        .verdict
        .figures
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "1 worker (8 slots), 50 ms jobs",
            "2 workers (16 slots), 50 ms jobs",
            "1 worker (8 slots), 0 ms jobs",
            "2 workers (16 slots), 0 ms jobs",
        ]
    );
    assert!(report.faults.is_empty(), "no faults: {:?}", report.faults);
}
