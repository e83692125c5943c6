//! Tenants: tokens, the admin API, disabled tenants, fair sharing of the
//! workers and per-tenant limits.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use spool::api::types::{EnqueueRequest, TenantCreateRequest, TenantUpdateRequest};
use spool::client::{Client, Error};
use spool::queue::JobState;
use spool::server::{Server, ServerConfig};

use crate::support::{ADMIN_TOKEN, Harness, TestDb, echo, guest, test_config};

/// Every `/v1` route with a method it takes.
const V1: &[(&str, &str)] = &[
    ("PUT", "/v1/modules/probe"),
    ("GET", "/v1/modules"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("DELETE", "/v1/jobs?state=completed&older_than=1d"),
    ("GET", "/v1/jobs/some-job"),
    ("POST", "/v1/jobs/some-job/cancel"),
    ("POST", "/v1/jobs/some-job/retry"),
    ("GET", "/v1/config"),
    ("PUT", "/v1/config/name"),
    ("DELETE", "/v1/config/name"),
    ("GET", "/v1/tokens"),
    ("POST", "/v1/tokens"),
    ("DELETE", "/v1/tokens/0123456789abcdef"),
];

/// Sends `method path` with an optional `Authorization` header value.
async fn call(spool: &Harness, method: &str, path: &str, auth: Option<&str>) -> (u16, Value) {
    let method: Method = method.parse().expect("a method");
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", spool.client.base()))
        .header("content-type", "application/json")
        .body("{}");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn api_error<T: std::fmt::Debug>(result: Result<T, Error>) -> (u16, String) {
    match result {
        Err(Error::Api { status, body }) => (status, body.code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_endpoint_needs_a_valid_token() {
    let spool = Harness::start().await;
    let forged = format!("Bearer sp_{}_{}", "0".repeat(16), "0".repeat(64));
    let with_wrong_secret = format!(
        "Bearer {}{}",
        &spool.token[..spool.token.len() - 1],
        if spool.token.ends_with('0') { "1" } else { "0" }
    );

    let admin = format!("Bearer {ADMIN_TOKEN}");

    for (method, path) in V1 {
        for auth in [
            None,
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer "),
            Some(forged.as_str()),
            Some(with_wrong_secret.as_str()),
            Some(admin.as_str()),
        ] {
            let (status, body) = call(&spool, method, path, auth).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
            assert_eq!(body["code"], "unauthorized", "{method} {path}: {body}");
        }
    }
    // A refusal says which token is missing, a token without its scheme,
    // and an empty one.
    let (_, body) = call(&spool, "GET", "/v1/jobs", None).await;
    assert!(
        body["message"].as_str().unwrap().contains("SPOOL_TOKEN"),
        "{body}"
    );
    let (_, body) = call(&spool, "GET", "/admin/v1/tenants", None).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("SPOOL_ADMIN_TOKEN"),
        "{body}"
    );
    let (_, body) = call(&spool, "GET", "/v1/jobs", Some(spool.token.as_str())).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("scheme is missing"),
        "{body}"
    );
    let (_, body) = call(&spool, "GET", "/v1/jobs", Some("Bearer ")).await;
    assert!(
        body["message"].as_str().unwrap().contains("token is empty"),
        "{body}"
    );
    let (status, _) = call(&spool, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "health checks need no token");
    assert_eq!(spool.db.job_count().await, 0);
    assert_eq!(spool.db.module_count().await, 0);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_working_at_once() {
    let spool = Harness::start().await;
    let made = spool.client.token_create("ci").await.expect("make a token");
    let second = Client::new(spool.client.base()).with_token(&made.token);

    let before = second.config_list().await;
    let listed = spool.client.token_list().await.expect("list tokens");
    second.token_revoke(&made.id).await.expect("revoke itself");
    let after = second.config_list().await;
    let listed_after = spool.client.token_list().await.expect("list tokens");
    let again = spool.client.token_revoke(&made.id).await;

    assert!(before.is_ok(), "{before:?}");
    assert!(made.token.starts_with("sp_"), "{}", made.token);
    assert_eq!(made.label, "ci");
    assert!(listed.tokens.iter().any(|t| t.id == made.id));
    let shown = serde_json::to_string(&listed).expect("JSON");
    assert!(
        !shown.contains(&made.token[20..]),
        "secrets are never listed"
    );
    assert_eq!(api_error(after), (401, "unauthorized".to_string()));
    assert!(!listed_after.tokens.iter().any(|t| t.id == made.id));
    assert_eq!(api_error(again), (404, "not_found".to_string()));
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select secret_sha256 from spool.tokens")
        .fetch_all(&spool.db.pool)
        .await
        .expect("read tokens");
    for digest in stored {
        assert!(!made.token.contains(&hex::encode(&digest)));
        assert_eq!(digest.len(), 32, "only a digest is stored");
    }
    spool.stop().await;
}

/// A second API process remembers tokens for a second: it never lets a
/// wrong secret through on a remembered id, and once the second has passed
/// it refuses a token revoked, or a tenant disabled, through the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_api_processes_see_revocations_once_the_token_cache_expires() {
    let spool = Harness::start().await;
    let mut config = test_config();
    config.worker = None;
    let other = Server::start(spool.db.pool.clone(), config)
        .await
        .expect("start a second API");
    let other_url = other.url().expect("the second server runs the API");
    let made = spool
        .client
        .token_create("cached")
        .await
        .expect("make a token");
    let on_other = Client::new(&other_url).with_token(&made.token);
    let forged = format!("{}{}", &made.token[..made.token.len() - 4], "0000");
    let forged = Client::new(&other_url).with_token(&forged);
    let lone = TenantCreateRequest {
        name: "lone".into(),
        max_running: None,
    };
    let lone = spool
        .admin()
        .tenant_create(&lone)
        .await
        .expect("create lone");
    let lone_on_other = Client::new(&other_url).with_token(lone.token.token);

    let remembered = on_other.config_list().await;
    let lone_remembered = lone_on_other.config_list().await;
    let forged_answer = forged.config_list().await;
    spool.client.token_revoke(&made.id).await.expect("revoke");
    let disable = TenantUpdateRequest {
        disabled: Some(true),
        max_running: None,
    };
    spool
        .admin()
        .tenant_update("lone", &disable)
        .await
        .expect("disable lone");
    let on_first = Client::new(spool.client.base())
        .with_token(&made.token)
        .config_list()
        .await;
    tokio::time::sleep(spool::api::TOKEN_CACHE_TTL + Duration::from_millis(200)).await;
    let revoked = on_other.config_list().await;
    let disabled = lone_on_other.config_list().await;

    assert!(remembered.is_ok(), "{remembered:?}");
    assert!(lone_remembered.is_ok(), "{lone_remembered:?}");
    assert_eq!(api_error(forged_answer), (401, "unauthorized".to_string()));
    assert_eq!(api_error(on_first), (401, "unauthorized".to_string()));
    assert_eq!(api_error(revoked), (401, "unauthorized".to_string()));
    assert_eq!(api_error(disabled), (403, "forbidden".to_string()));
    other.stop().await;
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_creates_lists_limits_and_mints_tokens() {
    let spool = Harness::start().await;
    let admin = spool.admin();
    let stranger =
        Client::new(spool.client.base()).with_token("not-the-admin-token-0123456789abcdef");
    let request = |name: &str| TenantCreateRequest {
        name: name.to_string(),
        max_running: Some(3),
    };

    let unauthorised = stranger.tenant_list().await;
    let as_tenant = spool.client.tenant_list().await;
    let created = admin.tenant_create(&request("acme")).await.expect("create");
    let duplicate = admin.tenant_create(&request("acme")).await;
    let bad_name = call(
        &spool,
        "POST",
        "/admin/v1/tenants",
        Some(&format!("Bearer {ADMIN_TOKEN}")),
    )
    .await;
    let bad_limit = admin
        .tenant_create(&TenantCreateRequest {
            name: "zero".into(),
            max_running: Some(0),
        })
        .await;
    let lifted = admin
        .tenant_update(
            "acme",
            &TenantUpdateRequest {
                disabled: None,
                max_running: Some(None),
            },
        )
        .await
        .expect("lift the limit");
    let missing = admin
        .tenant_update("nobody", &TenantUpdateRequest::default())
        .await;
    let minted = admin
        .tenant_token_create("acme", "recovery")
        .await
        .expect("mint a token");
    let acme = Client::new(spool.client.base()).with_token(&minted.token);
    let list = admin.tenant_list().await.expect("list");

    assert_eq!(api_error(unauthorised), (401, "unauthorized".to_string()));
    assert_eq!(api_error(as_tenant), (401, "unauthorized".to_string()));
    assert_eq!(created.tenant.name, "acme");
    assert_eq!(created.tenant.max_running, Some(3));
    assert!(created.token.token.starts_with("sp_"));
    assert_eq!(api_error(duplicate), (409, "already_exists".to_string()));
    assert_eq!(bad_name.0, 400, "{:?}", bad_name.1);
    assert_eq!(bad_name.1["field"], "name", "{:?}", bad_name.1);
    assert_eq!(api_error(bad_limit), (400, "invalid_request".to_string()));
    assert_eq!(lifted.max_running, None);
    assert_eq!(api_error(missing), (404, "not_found".to_string()));
    assert!(acme.config_list().await.is_ok());
    let names: Vec<&str> = list.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["acme", "default"]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_admin_api_is_off() {
    let spool = Harness::start_with(|config| config.admin_token = None).await;

    let (status, body) = call(
        &spool,
        "GET",
        "/admin/v1/tenants",
        Some(&format!("Bearer {ADMIN_TOKEN}")),
    )
    .await;

    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("SPOOL_ADMIN_TOKEN")),
        "{body}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_listen_beyond_loopback_without_an_admin_token() {
    let db = TestDb::new().await;
    let config = ServerConfig {
        listen: Some("0.0.0.0:0".parse().expect("an address")),
        admin_token: None,
        worker: None,
        ..test_config()
    };

    let started = Server::start(db.pool.clone(), config).await;

    let error = started.err().expect("the server must refuse to start");
    assert!(error.to_string().contains("admin token"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_tenant_is_refused_and_its_jobs_wait_until_enabled() {
    let spool = Harness::start().await;
    let acme = spool.tenant("acme").await;
    spool.deploy_probe(&[]).await;
    acme.module_deploy("probe", guest("probe"), &Default::default())
        .await
        .expect("deploy");
    let job = |id: &str| EnqueueRequest {
        kind: "probe".into(),
        params: echo(json!(id)),
        job_id: Some(id.into()),
        delay: Some(json!("1h")),
        ..EnqueueRequest::default()
    };
    acme.job_enqueue(&job("acme-job")).await.expect("enqueue");
    let disable = |disabled| TenantUpdateRequest {
        disabled: Some(disabled),
        max_running: None,
    };
    spool
        .admin()
        .tenant_update("acme", &disable(true))
        .await
        .expect("disable");

    let refused = acme.job_get("acme-job").await;
    sqlx::query("update spool.jobs set state = 'available', run_at = now()")
        .execute(&spool.db.pool)
        .await
        .expect("make both jobs due");
    // A job of another tenant, enqueued after, runs: the worker is claiming.
    spool.enqueue(job("default-job")).await;
    sqlx::query(
        "update spool.jobs set state = 'available', run_at = now() where id = 'default-job'",
    )
    .execute(&spool.db.pool)
    .await
    .expect("make it due");
    spool
        .wait_for_state("default-job", JobState::Completed)
        .await;
    let waiting: String = sqlx::query_scalar("select state from spool.jobs where tenant = 'acme'")
        .fetch_one(&spool.db.pool)
        .await
        .expect("acme's job");
    let sql_enqueue = sqlx::query("select spool.enqueue('acme', 'probe', '{}')")
        .execute(&spool.db.pool)
        .await;
    spool
        .admin()
        .tenant_update("acme", &disable(false))
        .await
        .expect("enable");
    let done = acme.job_wait("acme-job", Duration::from_secs(60)).await;

    assert_eq!(api_error(refused), (403, "forbidden".to_string()));
    assert_eq!(waiting, "available");
    let message = sql_enqueue
        .expect_err("disabled tenants take no jobs")
        .to_string();
    assert!(message.contains("tenant acme: disabled"), "{message}");
    assert_eq!(done.expect("acme's job runs").state, JobState::Completed);
    spool.stop().await;
}

/// Inserts `count` available probe jobs for `tenant` that each sleep `ms`.
async fn flood(spool: &Harness, tenant: &str, count: i32, ms: u32) {
    sqlx::query(
        "insert into spool.jobs (tenant, id, kind, queue, state, priority, params, \
                                 max_attempts, run_at) \
         select $1, $1 || '-' || i, 'probe', 'default', 'available', 0, \
                jsonb_build_object('do', 'sleep', 'ms', $3::int), 3, now() \
         from generate_series(1, $2) i",
    )
    .bind(tenant)
    .bind(count)
    .bind(ms as i32)
    .execute(&spool.db.pool)
    .await
    .expect("insert the flood");
}

async fn count(spool: &Harness, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&spool.db.pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_job_is_not_starved_by_another_tenants_flood() {
    const CONCURRENCY: usize = 4;
    let spool = Harness::start_with(|config| {
        if let Some(worker) = &mut config.worker {
            worker.concurrency = CONCURRENCY;
        }
    })
    .await;
    let flooder = spool.tenant("flood").await;
    flooder
        .module_deploy("probe", guest("probe"), &Default::default())
        .await
        .expect("deploy");
    spool.deploy_probe(&[]).await;
    flood(&spool, "flood", 5_000, 5).await;
    // Wait until the flood is being worked.
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    while count(
        &spool,
        "select count(*) from spool.jobs where tenant = 'flood' and state = 'completed'",
    )
    .await
        < 20
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    spool.probe("lone", echo(json!("served"))).await;
    let lone = spool.wait_for_state("lone", JobState::Completed).await;

    let started = lone.attempted_at.expect("the lone job started");
    let (overtaken, left): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where attempted_at > $1 and attempted_at < $2), \
                count(*) filter (where attempted_at is null or attempted_at > $2) \
         from spool.jobs where tenant = 'flood'",
    )
    .bind(lone.created_at)
    .bind(started)
    .fetch_one(&spool.db.pool)
    .await
    .expect("count the flood");
    assert!(
        overtaken <= 2 * CONCURRENCY as i64,
        "{overtaken} flood jobs started between the lone job's enqueue and its start"
    );
    assert!(
        left >= 1_000,
        "the flood was nearly done ({left} left): the test proves nothing"
    );
    println!("the lone job waited for {overtaken} flood jobs; {left} were still waiting");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_limit_caps_its_running_jobs_across_the_worker() {
    let spool = Harness::start().await;
    let capped = spool
        .admin()
        .tenant_create(&TenantCreateRequest {
            name: "capped".into(),
            max_running: Some(2),
        })
        .await
        .expect("create");
    let capped = Client::new(spool.client.base()).with_token(capped.token.token);
    capped
        .module_deploy("probe", guest("probe"), &Default::default())
        .await
        .expect("deploy");
    spool.deploy_probe(&[]).await;
    flood(&spool, "capped", 12, 100).await;
    flood(&spool, "default", 12, 100).await;

    // Sample each tenant's running jobs until all are done. Each sample is
    // one snapshot, as a claim sees it (timestamps would not do: a claim's
    // now() is taken before its snapshot).
    let mut most = (0, 0);
    loop {
        let (capped, uncapped, done): (i64, i64, i64) = sqlx::query_as(
            "select count(*) filter (where tenant = 'capped' and state = 'running'), \
                    count(*) filter (where tenant = 'default' and state = 'running'), \
                    count(*) filter (where state = 'completed') \
             from spool.jobs",
        )
        .fetch_one(&spool.db.pool)
        .await
        .expect("sample");
        most = (most.0.max(capped), most.1.max(uncapped));
        if done == 24 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    assert_eq!(most.0, 2, "the capped tenant ran {} at once", most.0);
    assert!(most.1 > 2, "the uncapped tenant used more of the worker");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_disabled_tenants_with_ready_jobs_starve_no_one() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    // 300 disabled tenants that sort before `default`, each with a module
    // and a ready job: more than one claim hands work to.
    sqlx::raw_sql(
        "insert into spool.tenants (name, disabled_at) \
           select 'd' || lpad(i::text, 3, '0'), now() from generate_series(0, 299) i; \
         insert into spool.modules (tenant, kind, version, digest, size_bytes, max_attempts, \
                                    timeout_ms, memory_limit_bytes, allowed_hosts) \
           select t.name, m.kind, 1, m.digest, m.size_bytes, m.max_attempts, m.timeout_ms, \
                  m.memory_limit_bytes, m.allowed_hosts \
           from spool.tenants t, spool.modules m \
           where t.name like 'd___' and m.tenant = 'default'; \
         insert into spool.jobs (tenant, id, kind, queue, state, priority, params, \
                                 max_attempts, run_at) \
           select name, 'waiting', 'probe', 'default', 'available', 0, '{}', 1, now() \
           from spool.tenants where name like 'd___'",
    )
    .execute(&spool.db.pool)
    .await
    .expect("insert the disabled tenants");

    spool.probe("served", echo(json!("yes"))).await;
    let served = spool.wait_for_state("served", JobState::Completed).await;

    assert_eq!(served.result.expect("a result")["value"], "yes");
    let waiting = count(
        &spool,
        "select count(*) from spool.jobs where tenant like 'd___' and state = 'available'",
    )
    .await;
    assert_eq!(waiting, 300, "disabled tenants' jobs must wait");
    spool.stop().await;
}
