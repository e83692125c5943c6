//! Tenant isolation: tenant B's token cannot read, list, count, cancel,
//! retry, prune, overwrite or detect tenant A's objects, through the API,
//! the CLI, the SQL function and guests.

use std::process::Stdio;

use reqwest::Method;
use serde_json::{Value, json};
use spool::api::types::EnqueueRequest;
use spool::client::Client;
use spool::queue::JobState;

use crate::support::{Harness, TENANT, TempFile, echo, guest};

/// What tenant A (the harness's tenant) owns when a matrix starts.
struct World {
    spool: Harness,
    /// Tenant B.
    other: Client,
    other_token: String,
}

/// A holds a deployed probe, a waiting job, a completed job, a cancelled
/// job, a config entry, a secret and a key-value entry; B holds nothing.
async fn world() -> World {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!("waiting")),
            job_id: Some("a-waiting".into()),
            delay: Some(json!("1h")),
            ..EnqueueRequest::default()
        })
        .await;
    spool.probe("a-done", echo(json!("done"))).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!("cancelled")),
            job_id: Some("a-cancelled".into()),
            delay: Some(json!("1h")),
            ..EnqueueRequest::default()
        })
        .await;
    spool
        .client
        .job_cancel("a-cancelled")
        .await
        .expect("cancel");
    spool
        .client
        .config_set("region", "eu-a", false)
        .await
        .expect("config");
    spool
        .client
        .config_set("api_key", "secret-of-a", true)
        .await
        .expect("secret");
    spool
        .probe(
            "a-kv",
            json!({"do": "kv", "key": "shared", "value": "a-value"}),
        )
        .await;
    spool.wait_for_state("a-done", JobState::Completed).await;
    spool.wait_for_state("a-kv", JobState::Completed).await;

    let made = spool
        .admin()
        .tenant_create(&spool::api::types::TenantCreateRequest {
            name: "tenant-b".into(),
            max_running: None,
        })
        .await
        .expect("create B");
    let other = Client::new(spool.client.base()).with_token(&made.token.token);
    World {
        spool,
        other,
        other_token: made.token.token,
    }
}

/// Status and body of one raw call as tenant B.
async fn as_b(world: &World, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", world.spool.client.base()))
        .bearer_auth(&world.other_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// A's objects, in a form that shows any change.
async fn snapshot(world: &World) -> Value {
    let rows: Vec<(String, String, String, i32, Option<Value>)> = sqlx::query_as(
        "select tenant, id, state, attempt, result from spool.jobs order by tenant, id",
    )
    .fetch_all(&world.spool.db.pool)
    .await
    .expect("jobs");
    let config: Vec<(String, String, String)> =
        sqlx::query_as("select tenant, name, value from spool.config order by tenant, name")
            .fetch_all(&world.spool.db.pool)
            .await
            .expect("config");
    let modules: Vec<(String, String, i32)> =
        sqlx::query_as("select tenant, kind, version from spool.modules order by tenant, kind")
            .fetch_all(&world.spool.db.pool)
            .await
            .expect("modules");
    let kv: Vec<(String, String, String)> =
        sqlx::query_as("select tenant, key, value from spool.kv order by tenant, key")
            .fetch_all(&world.spool.db.pool)
            .await
            .expect("kv");
    let mine = |tenant: &String| tenant == TENANT;
    let jobs: Vec<Value> = rows
        .iter()
        .filter(|r| mine(&r.0))
        .map(|r| json!([r.1, r.2, r.3, r.4]))
        .collect();
    let config: Vec<Value> = config
        .iter()
        .filter(|r| mine(&r.0))
        .map(|r| json!([r.1, r.2]))
        .collect();
    let modules: Vec<Value> = modules
        .iter()
        .filter(|r| mine(&r.0))
        .map(|r| json!([r.1, r.2]))
        .collect();
    let kv: Vec<Value> = kv
        .iter()
        .filter(|r| mine(&r.0))
        .map(|r| json!([r.1, r.2]))
        .collect();
    json!({"jobs": jobs, "config": config, "modules": modules, "kv": kv})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_answers_exactly_like_a_missing_one_on_every_endpoint() {
    let world = world().await;
    let before = snapshot(&world).await;

    // Each pair: the call on A's object, the same call on one nobody has.
    let pairs: &[(Method, &str, &str, Option<Value>)] = &[
        (
            Method::GET,
            "/v1/jobs/a-waiting",
            "/v1/jobs/nobody-has-this",
            None,
        ),
        (
            Method::GET,
            "/v1/jobs/a-done",
            "/v1/jobs/nobody-has-this",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs/a-waiting/cancel",
            "/v1/jobs/nobody-has-this/cancel",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs/a-cancelled/retry",
            "/v1/jobs/nobody-has-this/retry",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs/a-done/retry",
            "/v1/jobs/nobody-has-this/retry",
            None,
        ),
        (
            Method::DELETE,
            "/v1/config/region",
            "/v1/config/nobody_has_this",
            None,
        ),
        (
            Method::DELETE,
            "/v1/config/api_key",
            "/v1/config/nobody_has_this",
            None,
        ),
        (
            Method::POST,
            "/v1/jobs",
            "/v1/jobs",
            Some(json!({"kind": "probe", "params": {}, "job_id": "a-waiting"})),
        ),
    ];
    // Messages may echo the name asked for; nothing else may differ.
    let alike = |body: String| {
        [
            "a-waiting",
            "a-done",
            "a-cancelled",
            "region",
            "api_key",
            "nobody-has-this",
            "nobody_has_this",
        ]
        .iter()
        .fold(body, |body, name| body.replace(name, "<name>"))
    };
    for (method, foreign, missing, body) in pairs {
        let (foreign_status, foreign_body) =
            as_b(&world, method.clone(), foreign, body.clone()).await;
        let (missing_status, missing_body) =
            as_b(&world, method.clone(), missing, body.clone()).await;
        let (foreign_body, missing_body) = (alike(foreign_body), alike(missing_body));
        assert_eq!(
            (foreign_status, &foreign_body),
            (missing_status, &missing_body),
            "{method} {foreign} tells a foreign object from a missing one"
        );
        assert!(
            foreign_status >= 400,
            "{method} {foreign}: {foreign_status} {foreign_body}"
        );
    }

    // A's token ids are just as invisible.
    let a_tokens = world.spool.client.token_list().await.expect("A's tokens");
    let a_token = &a_tokens.tokens[0].id;
    let foreign = as_b(
        &world,
        Method::DELETE,
        &format!("/v1/tokens/{a_token}"),
        None,
    )
    .await;
    let missing = as_b(&world, Method::DELETE, "/v1/tokens/0123456789abcdef", None).await;
    assert_eq!(foreign, missing);

    // Lists and counts show B nothing of A.
    for path in [
        "/v1/jobs",
        "/v1/jobs?state=completed",
        "/v1/jobs?state=scheduled",
        "/v1/jobs?state=cancelled",
        "/v1/jobs?kind=probe",
    ] {
        let (status, body) = as_b(&world, Method::GET, path, None).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"jobs":[],"next_cursor":null}"#),
            "{path}"
        );
    }
    let modules = world.other.module_list().await.expect("B's modules");
    assert!(modules.modules.is_empty(), "{modules:?}");
    let config = world.other.config_list().await.expect("B's config");
    assert!(config.entries.is_empty(), "{config:?}");
    let tokens = world.other.token_list().await.expect("B's tokens");
    assert!(!tokens.tokens.iter().any(|t| t.id == *a_token));

    // Pruning as B deletes none of A's finished jobs.
    for state in ["completed", "cancelled", "discarded"] {
        let path = format!("/v1/jobs?state={state}&older_than=0s");
        let (status, body) = as_b(&world, Method::DELETE, &path, None).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"deleted":0}"#),
            "{state}"
        );
    }

    assert_eq!(snapshot(&world).await, before, "B changed A's objects");
    world.spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_share_kind_names_job_ids_and_config_names_without_meeting() {
    let world = world().await;
    let before = snapshot(&world).await;
    let b = &world.other;

    let deployed = b
        .module_deploy("probe", guest("probe"), &Default::default())
        .await
        .expect("B deploys its own probe")
        .0;
    let (job, created) = b
        .job_enqueue(&EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!("b's own")),
            job_id: Some("a-done".into()),
            ..EnqueueRequest::default()
        })
        .await
        .expect("B enqueues under A's job id");
    b.config_set("region", "us-b", false)
        .await
        .expect("B's config");
    b.config_set("api_key", "secret-of-b", true)
        .await
        .expect("B's secret");
    let b_done = b
        .job_wait("a-done", crate::support::WAIT)
        .await
        .expect("B's job finishes");

    assert_eq!(deployed.version, 1, "B's first version is its own");
    assert!(created, "the same job_id in another tenant is a new job");
    assert_eq!(job.params, echo(json!("b's own")));
    assert_eq!(b_done.result.expect("a result")["value"], "b's own");
    let a_done = world.spool.client.job_get("a-done").await.expect("A's job");
    assert_eq!(a_done.result.expect("a result")["value"], "done");
    assert_eq!(snapshot(&world).await, before, "B's writes reached A");
    world.spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reaches_only_its_own_tenants_kv_config_secrets_and_queue() {
    let world = world().await;
    let b = &world.other;
    b.module_deploy("probe", guest("probe"), &Default::default())
        .await
        .expect("deploy");
    let run = |id: &'static str, params: Value| {
        let request = EnqueueRequest {
            kind: "probe".into(),
            params,
            job_id: Some(id.into()),
            ..EnqueueRequest::default()
        };
        async move {
            b.job_enqueue(&request).await.expect("enqueue");
            b.job_wait(id, crate::support::WAIT)
                .await
                .expect("finishes")
        }
    };

    let kv = run("b-kv", json!({"do": "kv", "key": "shared"})).await;
    let config = run(
        "b-config",
        json!({"do": "config", "name": "region", "secret": "api_key"}),
    )
    .await;
    let follow_up = run(
        "b-enqueue",
        json!({
            "do": "enqueue",
            "kind": "probe",
            "params": echo(json!("child")),
            "job_id": "b-child"
        }),
    )
    .await;
    let child = b
        .job_wait("b-child", crate::support::WAIT)
        .await
        .expect("child");
    let a_sees_child = world.spool.client.job_get("b-child").await;

    assert_eq!(kv.state, JobState::Completed, "{kv:?}");
    assert_eq!(
        kv.result.as_ref().expect("a result")["value"],
        Value::Null,
        "{kv:?}"
    );
    assert_eq!(config.state, JobState::Completed, "{config:?}");
    assert_eq!(config.result, Some(json!({"value": null, "secret": null})));
    assert_eq!(follow_up.state, JobState::Completed, "{follow_up:?}");
    assert_eq!(child.result.expect("a result")["value"], "child");
    assert!(a_sees_child.is_err(), "the follow-up joined B, not A");
    world.spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_function_enqueues_only_into_the_tenant_it_names() {
    let world = world().await;
    let pool = &world.spool.db.pool;
    let before = snapshot(&world).await;

    // B has no module of kind `probe`: A's module does not count.
    let no_module = sqlx::query_scalar::<_, String>(
        "select spool.enqueue('tenant-b', 'probe', '{}', job_id => 'x')",
    )
    .fetch_one(pool)
    .await;
    let no_tenant =
        sqlx::query_scalar::<_, String>("select spool.enqueue('nobody', 'probe', '{}')")
            .fetch_one(pool)
            .await;
    world
        .other
        .module_deploy("probe", guest("probe"), &Default::default())
        .await
        .expect("deploy");
    // B enqueues under the id of A's job; A's job is untouched.
    let id = sqlx::query_scalar::<_, String>(
        r#"
        select spool.enqueue('tenant-b', 'probe', '{"do": "echo", "value": 7}',
                             job_id => 'a-waiting')
        "#,
    )
    .fetch_one(pool)
    .await
    .expect("enqueue as B");
    let b_job = world
        .other
        .job_wait("a-waiting", crate::support::WAIT)
        .await
        .expect("B's job");

    let message = no_module.expect_err("no module for B").to_string();
    assert!(
        message.contains("tenant tenant-b has no module"),
        "{message}"
    );
    let message = no_tenant.expect_err("no such tenant").to_string();
    assert!(
        message.contains("tenant nobody: no such tenant"),
        "{message}"
    );
    assert_eq!(id, "a-waiting");
    assert_eq!(b_job.result.expect("a result")["value"], 7);
    let after = snapshot(&world).await;
    assert_eq!(after, before, "the SQL function wrote into A");
    world.spool.stop().await;
}

/// Runs `spool <args>` as tenant B; stdout and stderr with ids of A's
/// objects and of missing ones made alike.
async fn cli_as_b(world: &World, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("--url")
        .arg(world.spool.client.base())
        .env("SPOOL_TOKEN", &world.other_token)
        .env_remove("SPOOL_ADMIN_TOKEN")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("spool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let normal = [
        "a-waiting",
        "a-done",
        "a-cancelled",
        "region",
        "nobody-has-this",
    ]
    .iter()
    .fold(text, |text, id| text.replace(id, "<id>"));
    (output.status.success(), normal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_as_another_tenant_cannot_tell_foreign_objects_from_missing_ones() {
    let world = world().await;
    let before = snapshot(&world).await;

    let pairs: &[(&[&str], &[&str])] = &[
        (&["status", "a-waiting"], &["status", "nobody-has-this"]),
        (&["result", "a-done"], &["result", "nobody-has-this"]),
        (&["cancel", "a-waiting"], &["cancel", "nobody-has-this"]),
        (&["retry", "a-cancelled"], &["retry", "nobody-has-this"]),
        (
            &["config", "delete", "region"],
            &["config", "delete", "nobody-has-this"],
        ),
        (
            &["--json", "status", "a-done"],
            &["--json", "status", "nobody-has-this"],
        ),
    ];
    for (foreign, missing) in pairs {
        let foreign_run = cli_as_b(&world, foreign).await;
        let missing_run = cli_as_b(&world, missing).await;
        assert!(
            !foreign_run.0,
            "spool {foreign:?} succeeded for B: {}",
            foreign_run.1
        );
        assert_eq!(foreign_run, missing_run, "spool {foreign:?}");
    }
    for args in [
        &["--json", "jobs"][..],
        &["--json", "jobs", "--state", "completed"],
        &["--json", "modules"],
        &["--json", "config", "list"],
        &[
            "--json",
            "prune",
            "--state",
            "completed",
            "--older-than",
            "0s",
        ],
    ] {
        let (ok, out) = cli_as_b(&world, args).await;
        assert!(ok, "spool {args:?}: {out}");
        let value: Value = serde_json::from_str(&out).expect("JSON");
        let empty = value
            .get("jobs")
            .or(value.get("modules"))
            .or(value.get("entries"));
        match empty {
            Some(list) => assert_eq!(list, &json!([]), "spool {args:?}"),
            None => assert_eq!(value, json!({"deleted": 0}), "spool {args:?}"),
        }
    }

    // A's token id is as invisible to `spool token revoke` as a made-up one.
    let a_token = world
        .spool
        .client
        .token_list()
        .await
        .expect("A's tokens")
        .tokens[0]
        .id
        .clone();
    let foreign_revoke = cli_as_b(&world, &["token", "revoke", &a_token]).await;
    let missing_revoke = cli_as_b(&world, &["token", "revoke", "0123456789abcdef"]).await;
    assert!(!foreign_revoke.0, "{}", foreign_revoke.1);
    assert_eq!(
        foreign_revoke.1.replace(&a_token, "<token>"),
        missing_revoke.1.replace("0123456789abcdef", "<token>")
    );

    // Writes under A's names land in B: a config entry, a module and a job.
    let component = TempFile::new("probe.wasm", &guest("probe"));
    for args in [
        &["config", "set", "region", "b-only"][..],
        &["deploy", "probe", component.path()],
        &[
            "enqueue",
            "probe",
            r#"{"do": "echo", "value": "b"}"#,
            "--job-id",
            "a-done",
        ],
    ] {
        let (ok, out) = cli_as_b(&world, args).await;
        assert!(ok, "spool {args:?}: {out}");
    }

    assert_eq!(
        snapshot(&world).await,
        before,
        "B's CLI changed A's objects"
    );
    world.spool.stop().await;
}
