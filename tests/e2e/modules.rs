//! Deploying job components: versions by content and options, defaults,
//! and which version jobs run.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spool::api::types::{EnqueueRequest, ModuleView};
use spool::client::DeployOptions;
use spool::queue::JobState;

use crate::support::{Harness, echo, guest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_answers_201_with_the_digest_size_and_defaults() {
    let spool = Harness::start().await;
    let bytes = guest("probe");
    let url = format!("{}/v1/modules/user:probe", spool.client.base());

    let response = spool
        .http()
        .put(url)
        .body(bytes.clone())
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let module: ModuleView = response.json().await.expect("a module");

    assert_eq!(status, 201);
    assert_eq!(module.kind, "user:probe");
    assert_eq!(module.version, 1);
    assert_eq!(module.digest, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(module.size_bytes as usize, bytes.len());
    assert_eq!(module.max_attempts, 20);
    assert_eq!(module.timeout_ms, 60_000);
    assert_eq!(module.memory_limit_bytes, 128 << 20);
    assert!(module.allowed_hosts.is_empty());
    assert_eq!(spool.db.module_count().await, 1);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploying_the_same_bytes_and_options_keeps_the_version() {
    let spool = Harness::start().await;
    let options = DeployOptions {
        max_attempts: Some(4),
        allowed_hosts: vec!["mail.example.com".into()],
        ..DeployOptions::default()
    };
    let (first, first_created) = spool
        .client
        .module_deploy("probe", guest("probe"), &options)
        .await
        .expect("deploy");

    let (again, again_created) = spool
        .client
        .module_deploy("probe", guest("probe"), &options)
        .await
        .expect("redeploy");

    assert!(first_created);
    assert!(!again_created, "the same deploy again answers 200");
    assert_eq!(again, first);
    assert_eq!(spool.db.module_count().await, 1);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_options_or_bytes_make_a_new_version() {
    let spool = Harness::start().await;
    let defaults = DeployOptions::default();
    let fewer_attempts = DeployOptions {
        max_attempts: Some(3),
        ..DeployOptions::default()
    };
    let v1 = spool.deploy("stats", "probe", defaults.clone()).await;

    let v2 = spool.deploy("stats", "probe", fewer_attempts.clone()).await;
    let v3 = spool.deploy("stats", "user-stats", fewer_attempts).await;
    let v4 = spool.deploy("stats", "probe", defaults).await;

    let versions = [v1.version, v2.version, v3.version, v4.version];
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!((v1.max_attempts, v2.max_attempts), (20, 3));
    assert_eq!(v2.digest, v1.digest);
    assert_ne!(v3.digest, v2.digest);
    assert_eq!(v4.digest, v1.digest);
    assert_eq!(spool.db.module_count().await, 4);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_list_shows_only_the_newest_version_of_each_kind() {
    let spool = Harness::start().await;
    spool
        .deploy("probe", "probe", DeployOptions::default())
        .await;
    let newest_probe = spool
        .deploy(
            "probe",
            "probe",
            DeployOptions {
                memory_limit_mib: Some(64),
                ..DeployOptions::default()
            },
        )
        .await;
    let stats = spool
        .deploy("user:stats", "user-stats", DeployOptions::default())
        .await;

    let list = spool.client.module_list().await.expect("list modules");

    assert_eq!(list.modules, [newest_probe, stats]);
    assert_eq!(list.modules[0].version, 2);
    assert_eq!(list.modules[0].memory_limit_bytes, 64 << 20);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_max_attempts_takes_the_newest_module_s() {
    let spool = Harness::start().await;
    let attempts = |n| DeployOptions {
        max_attempts: Some(n),
        ..DeployOptions::default()
    };
    let request = |id: &str, max_attempts| EnqueueRequest {
        kind: "probe".into(),
        params: echo(json!(id)),
        job_id: Some(id.into()),
        delay: Some(json!("1h")),
        max_attempts,
        ..EnqueueRequest::default()
    };
    spool.deploy("probe", "probe", attempts(3)).await;

    let from_v1 = spool.enqueue(request("from-v1", None)).await;
    let own = spool.enqueue(request("own", Some(7))).await;
    spool.deploy("probe", "probe", attempts(9)).await;
    let from_v2 = spool.enqueue(request("from-v2", None)).await;

    assert_eq!(from_v1.max_attempts, 3);
    assert_eq!(own.max_attempts, 7);
    assert_eq!(from_v2.max_attempts, 9);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_the_newest_version_of_their_kind() {
    let spool = Harness::start().await;
    let request = |id: &str, params: Value| EnqueueRequest {
        kind: "stats".into(),
        params,
        job_id: Some(id.into()),
        ..EnqueueRequest::default()
    };
    let stats_params = json!({
        "user_id": 42,
        "events": [{"type": "like", "post_id": 7, "at": "2026-12-01T10:00:00Z"}]
    });
    spool
        .deploy("stats", "probe", DeployOptions::default())
        .await;

    spool.enqueue(request("on-v1", echo(json!("v1")))).await;
    let on_v1 = spool.wait_for_state("on-v1", JobState::Completed).await;
    spool
        .deploy("stats", "user-stats", DeployOptions::default())
        .await;
    spool.enqueue(request("on-v2", stats_params)).await;
    let on_v2 = spool.wait_for_state("on-v2", JobState::Completed).await;

    assert_eq!(on_v1.result, Some(json!({"value": "v1", "attempt": 1})));
    let stats = on_v2.result.expect("a result");
    assert_eq!(
        (&stats["user_id"], &stats["likes"], &stats["top_post"]),
        (&json!(42), &json!(1), &json!(7)),
        "{stats}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_to_one_kind_each_get_a_version() {
    let spool = Harness::start().await;
    let deploys: Vec<_> = (1..=6)
        .map(|n| {
            let package = if n % 2 == 0 { "probe" } else { "user-stats" };
            let options = DeployOptions {
                max_attempts: Some(n),
                ..DeployOptions::default()
            };
            (guest(package), options)
        })
        .collect();

    let results = futures::future::join_all(
        deploys
            .iter()
            .map(|(bytes, options)| spool.client.module_deploy("shared", bytes.clone(), options)),
    )
    .await;

    let mut versions = Vec::new();
    for result in results {
        let (module, created) = result.expect("every deploy succeeds");
        assert!(created, "version {} was not new", module.version);
        versions.push(module.version);
    }
    versions.sort();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(spool.db.module_count().await, 6);
    spool.stop().await;
}
