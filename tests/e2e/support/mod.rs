//! What the end-to-end tests share: a database per test, the guest
//! components built once per run, a running Spool (API, worker,
//! maintenance) on a loopback port, and an HTTP recorder that guests can
//! call.

pub mod recorder;
pub mod worker_process;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use spool::api::AdminToken;
use spool::api::types::{EnqueueRequest, JobView, ModuleView, TenantCreateRequest};
use spool::client::{Client, DeployOptions};
use spool::database::{self, Target};
use spool::maintenance::MaintenanceConfig;
use spool::queue::{JobState, RetryPolicy};
use spool::runtime::RuntimeConfig;
use spool::server::{Server, ServerConfig};
use spool::worker::WorkerConfig;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection};

/// Guest packages the tests deploy.
const GUESTS: &[&str] = &[
    "probe",
    "not-a-job",
    "unknown-import",
    "raw",
    "send-email",
    "user-stats",
    "cart-reminder",
];

/// How long any wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The bytes of a guest component, built (once per test run) from source.
pub fn guest(package: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        spool::guests::build(&spool::guests::workspace_root(), GUESTS, false)
            .unwrap_or_else(|e| panic!("build guests: {e}"))
    });
    let path = spool::guests::component_path(dir, package);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The server tests create their databases on: `SPOOL_TEST_DATABASE_URL`,
/// or the local server as the current user.
fn server_options() -> PgConnectOptions {
    match std::env::var("SPOOL_TEST_DATABASE_URL") {
        Ok(url) => url
            .parse()
            .expect("SPOOL_TEST_DATABASE_URL is a PostgreSQL URL"),
        Err(_) => PgConnectOptions::new(),
    }
}

/// A migrated database of its own, dropped when the value is.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    options: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> Self {
        Self::named("spool_test").await
    }

    /// A database whose name starts with `prefix`.
    pub async fn named(prefix: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let server = server_options();
        let mut admin = database::connect_admin(&server)
            .await
            .expect("connect to the test server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();

        let options = server.database(&name);
        let pool = Target::from_options(options.clone())
            .open(8)
            .await
            .expect("migrate test database");
        Self {
            pool,
            name,
            options,
        }
    }

    /// A URL for processes started by the test.
    pub fn url(&self) -> String {
        // A Unix socket folder, given as the socket or as a host starting
        // with `/`, is no URL host (sqlx's own URL writer panics on it);
        // the `host` parameter carries it instead.
        let options = &self.options;
        let socket = match options.get_socket() {
            Some(socket) => socket.to_string_lossy().into_owned(),
            None if options.get_host().starts_with('/') => options.get_host().to_string(),
            None => return options.to_url_lossy().to_string(),
        };
        let mut url = reqwest::Url::parse("postgres://localhost").expect("a URL");
        url.set_username(options.get_username())
            .expect("a URL with a host takes a user name");
        url.set_port(Some(options.get_port()))
            .expect("a URL with a host takes a port");
        url.set_path(&self.name);
        url.query_pairs_mut().append_pair("host", &socket);
        url.to_string()
    }

    /// Rows in `spool.jobs`.
    pub async fn job_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("select count(*) from spool.jobs")
            .fetch_one(&self.pool)
            .await
            .expect("count jobs")
    }

    /// Waits until `count` jobs are in `state`, failing the test after
    /// [`WAIT`].
    pub async fn wait_for_jobs(&self, state: JobState, count: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now =
                sqlx::query_scalar::<_, i64>("select count(*) from spool.jobs where state = $1")
                    .bind(state.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .expect("count jobs by state");
            if now == count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{now} jobs are {state}, never {count}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Rows in `spool.modules`.
    pub async fn module_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("select count(*) from spool.modules")
            .fetch_one(&self.pool)
            .await
            .expect("count modules")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = server_options();
        // Drop runs outside async code; a thread with its own runtime can
        // wait for the drop without blocking the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = database::connect_admin(&server)
                    .await
                    .map_err(std::io::Error::other)?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "drop database if exists {name} with (force)"
                )))
                .execute(&mut admin)
                .await
                .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Server settings fit for tests: small pool, quick retries and polls.
pub fn test_config() -> ServerConfig {
    let retry = RetryPolicy {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };
    ServerConfig {
        listen: Some("127.0.0.1:0".parse().expect("an address")),
        worker: Some(WorkerConfig {
            concurrency: 8,
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(5),
            retry,
            ..WorkerConfig::new()
        }),
        maintenance: MaintenanceConfig {
            scheduler_interval: Duration::from_millis(100),
            rescuer_interval: Duration::from_millis(200),
            retry,
            ..MaintenanceConfig::default()
        },
        runtime: RuntimeConfig {
            max_instances: 16,
            ..RuntimeConfig::default()
        },
        admin_token: Some(AdminToken::new(ADMIN_TOKEN).expect("a long enough admin token")),
    }
}

/// The operator's token in tests.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The tenant the harness's client acts for.
pub const TENANT: &str = "default";

/// A running Spool on its own database, with a tenant ([`TENANT`]) whose
/// token the client carries.
pub struct Harness {
    pub client: Client,
    /// The client's token.
    pub token: String,
    server: Option<Server>,
    pub db: TestDb,
}

impl Harness {
    /// API, worker and maintenance with [`test_config`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// [`test_config`] changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let db = TestDb::new().await;
        let mut config = test_config();
        configure(&mut config);
        let server = Server::start(db.pool.clone(), config)
            .await
            .expect("start server");
        let mut conn = db.pool.acquire().await.expect("a connection");
        let (_, token) = spool::queue::tenant_create(&mut conn, TENANT, None)
            .await
            .expect("create the test tenant");
        drop(conn);
        let client =
            Client::new(&server.url().expect("the harness runs the API")).with_token(&token.token);
        Self {
            client,
            token: token.token,
            server: Some(server),
            db,
        }
    }

    /// A client acting with the admin token.
    pub fn admin(&self) -> Client {
        Client::new(self.client.base()).with_token(ADMIN_TOKEN)
    }

    /// Creates tenant `name`; returns a client acting for it.
    pub async fn tenant(&self, name: &str) -> Client {
        let request = TenantCreateRequest {
            name: name.to_string(),
            max_running: None,
        };
        let created = self
            .admin()
            .tenant_create(&request)
            .await
            .expect("create tenant");
        Client::new(self.client.base()).with_token(created.token.token)
    }

    /// An HTTP client that sends the harness tenant's token with every
    /// request, for calls the typed client cannot make.
    pub fn http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {}", self.token)
            .parse()
            .expect("a token is a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("an HTTP client")
    }

    /// Stops the server, draining its worker.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Deploys the probe guest as kind `probe`, allowed to reach loopback
    /// hosts given in `hosts`.
    pub async fn deploy_probe(&self, hosts: &[String]) -> ModuleView {
        let options = DeployOptions {
            allowed_hosts: hosts.to_vec(),
            ..DeployOptions::default()
        };
        self.deploy("probe", "probe", options).await
    }

    pub async fn deploy(&self, kind: &str, package: &str, options: DeployOptions) -> ModuleView {
        self.client
            .module_deploy(kind, guest(package), &options)
            .await
            .expect("deploy")
            .0
    }

    /// Enqueues a probe job doing `action` (`{"do": ...}`).
    pub async fn probe(&self, job_id: &str, action: Value) -> JobView {
        self.enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: action,
            job_id: Some(job_id.into()),
            ..EnqueueRequest::default()
        })
        .await
    }

    pub async fn enqueue(&self, request: EnqueueRequest) -> JobView {
        self.client.job_enqueue(&request).await.expect("enqueue").0
    }

    /// Polls job `id` until `done` holds, failing the test after [`WAIT`].
    pub async fn wait_until(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&JobView) -> bool,
    ) -> JobView {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let job = self.client.job_get(id).await.expect("get job");
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} never became {what}; it is {}: {job:#?}",
                job.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_state(&self, id: &str, state: JobState) -> JobView {
        self.wait_until(id, state.as_str(), |job| job.state == state)
            .await
    }
}

/// A probe action that POSTs to the recorder's `/ledger/<id>`, so that
/// the recorder counts how often job `id` ran.
pub fn ledger(recorder: &recorder::Recorder, id: &str) -> Value {
    json!({
        "do": "http",
        "method": "POST",
        "url": recorder.url(&format!("/ledger/{id}")),
        "body": "",
    })
}

/// An echo action for the probe.
pub fn echo(value: Value) -> Value {
    json!({ "do": "echo", "value": value })
}

/// A file under the temp dir, removed when dropped.
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "spool-test-{}-{}-{name}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}
