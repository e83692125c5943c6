//! A Spool process: the HTTP API, workers and maintenance, each optional,
//! sharing one pool and one runtime. `spool serve` runs all three;
//! `spool worker` runs workers and maintenance.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AdminToken, AppState};
use crate::maintenance::{self, MaintenanceConfig};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::worker::{self, WorkerConfig};

/// The API's address unless configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8640";

/// What one process runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the API listens; `None` runs no API.
    pub listen: Option<SocketAddr>,
    /// The worker's settings; `None` runs no worker.
    pub worker: Option<WorkerConfig>,
    pub maintenance: MaintenanceConfig,
    pub runtime: RuntimeConfig,
    /// Opens the admin API. Required to listen beyond loopback.
    pub admin_token: Option<AdminToken>,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr} without an admin token: set SPOOL_ADMIN_TOKEN, \
         or listen on a loopback address"
    )]
    NoAdminToken { addr: SocketAddr },
    #[error("start the wasm runtime: {0}")]
    Runtime(String),
}

/// A running server.
pub struct Server {
    /// The API's bound address, when it runs one (useful with port 0).
    pub addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts what `config` asks for.
    pub async fn start(pool: PgPool, config: ServerConfig) -> Result<Self, Error> {
        if let Some(addr) = config.listen
            && !addr.ip().is_loopback()
            && config.admin_token.is_none()
        {
            return Err(Error::NoAdminToken { addr });
        }
        let runtime = Runtime::new(config.runtime.clone(), pool.clone())
            .map_err(|e| Error::Runtime(format!("{e:#}")))?;
        let runtime = Arc::new(runtime);
        let shutdown = CancellationToken::new();
        let work_added = Arc::new(Notify::new());
        let (handover, desk) = config
            .worker
            .as_ref()
            .map(|worker| worker::handover_channel(&worker.queues))
            .unzip();
        let mut tasks = Vec::new();

        let mut addr = None;
        if let Some(listen) = config.listen {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|source| Error::Listen {
                    addr: listen,
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| Error::Listen {
                addr: listen,
                source,
            })?;
            addr = Some(bound);
            let state = AppState {
                pool: pool.clone(),
                runtime: runtime.clone(),
                admin_token: config.admin_token.clone(),
                tokens: Arc::default(),
                work_added: work_added.clone(),
                handover,
            };
            let stop = shutdown.clone();
            // Each response goes out at once, without waiting on Nagle's
            // algorithm for the acknowledgement of the last one.
            let listener = listener.tap_io(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
                }
            });
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(listener, api::router(state))
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "API server failed");
                }
            }));
            tracing::info!(addr = %bound, "API listening");
        }

        if let (Some(worker_config), Some(desk)) = (config.worker, desk) {
            let (pool, runtime, stop) = (pool.clone(), runtime.clone(), shutdown.clone());
            tasks.push(tokio::spawn(worker::run(
                worker_config,
                pool,
                runtime,
                work_added,
                desk,
                stop,
            )));
        }
        let (pool, stop) = (pool.clone(), shutdown.clone());
        tasks.push(tokio::spawn(maintenance::run(
            config.maintenance,
            pool,
            stop,
        )));

        Ok(Self {
            addr,
            shutdown,
            tasks,
        })
    }

    /// The API's base URL, when it runs one.
    pub fn url(&self) -> Option<String> {
        self.addr.map(|addr| format!("http://{addr}"))
    }

    /// Stops accepting work, drains running attempts and waits for every
    /// task to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "server task failed");
            }
        }
    }
}
