//! The documented resource defaults hold, and the runtime falls back from
//! the pooling allocator when the machine cannot reserve its pool.

use serde_json::json;
use spool::client::DeployOptions;
use spool::queue::JobState;

use crate::support::worker_process::WorkerProcess;
use crate::support::{Harness, echo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_deployed_without_options_gets_the_documented_limits() {
    let spool = Harness::start().await;

    let module = spool
        .deploy("probe", "probe", DeployOptions::default())
        .await;
    spool
        .probe("fits", json!({"do": "alloc", "mib": 100}))
        .await;
    spool
        .probe("too-big", json!({"do": "alloc", "mib": 140}))
        .await;
    let fits = spool.wait_for_state("fits", JobState::Completed).await;
    let too_big = spool
        .wait_until("too-big", "failed", |job| !job.errors.is_empty())
        .await;

    assert_eq!(
        (
            module.max_attempts,
            module.timeout_ms,
            module.memory_limit_bytes
        ),
        (20, 60_000, 128 << 20)
    );
    assert!(
        module.allowed_hosts.is_empty(),
        "no outbound host by default"
    );
    assert_eq!(fits.result.unwrap()["allocated_mib"], 100);
    let reason = &too_big.errors[0].error;
    assert!(reason.ends_with("the module allows 128 MiB"), "{reason}");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_at_most_its_concurrency_at_once() {
    let spool = Harness::start_with(|config| config.worker.as_mut().unwrap().concurrency = 2).await;
    spool.deploy_probe(&[]).await;

    for i in 0..6 {
        spool
            .probe(
                &format!("slow-{i}"),
                json!({"do": "timed_sleep", "ms": 300}),
            )
            .await;
    }
    // Each guest's own clock says when it ran; count how many ran at once
    // at each start.
    let mut windows = Vec::new();
    for i in 0..6 {
        let job = spool
            .wait_for_state(&format!("slow-{i}"), JobState::Completed)
            .await;
        let result = job.result.expect("a timed sleep returns its window");
        windows.push((
            result["began_ms"].as_f64().unwrap(),
            result["ended_ms"].as_f64().unwrap(),
        ));
    }
    let most_at_once = windows
        .iter()
        .map(|&(start, _)| {
            windows
                .iter()
                .filter(|&&(began, ended)| began <= start && start < ended)
                .count()
        })
        .max()
        .unwrap();

    assert_eq!(most_at_once, 2, "two slots, and both were used");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_room_for_the_pool_a_worker_allocates_on_demand() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    // 24 GiB of address space: far less than the pool reserves (two 4 GiB
    // memories per instance slot), enough for a few on-demand instances.
    let worker = WorkerProcess::start_with_address_space(&spool.db, &[], 24 << 20).await;

    spool.probe("on-demand", echo(json!("no pool"))).await;
    let job = spool.wait_for_state("on-demand", JobState::Completed).await;

    assert_eq!(job.result.unwrap()["value"], "no pool");
    let log = worker.log();
    assert!(
        log.iter()
            .any(|line| line.contains("pooling allocator unavailable")),
        "no fallback in the worker's log:\n{}",
        log.join("\n")
    );
    spool.stop().await;
}
