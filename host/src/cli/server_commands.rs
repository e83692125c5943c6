//! `spool migrate`, `spool serve` and `spool worker`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::{DatabaseArgs, parse_duration};
use crate::api::AdminToken;
use crate::database::{self, DEFAULT_DATABASE, Target};
use crate::maintenance::MaintenanceConfig;
use crate::maintenance::cleaner::Retention;
use crate::queue::RetryPolicy;
use crate::runtime::{self, RuntimeConfig};
use crate::server::{self, Server, ServerConfig};
use crate::worker::{self, WorkerConfig};

/// Settings shared by `serve` and `worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Database connections of this process's shared pool. A worker holds
    /// up to three more of its own: LISTEN, claims, and jobs handed over
    /// by its API.
    #[arg(long, env = "SPOOL_MAX_CONNECTIONS", default_value_t = database::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: u32,
    /// Queues to work, comma-separated.
    #[arg(
        long,
        env = "SPOOL_QUEUES",
        value_delimiter = ',',
        default_value = "default"
    )]
    pub queues: Vec<String>,
    /// Attempts running at once in this process.
    #[arg(long, env = "SPOOL_CONCURRENCY", default_value_t = worker::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// How long a claim holds without renewal before the job is rescued.
    #[arg(long, env = "SPOOL_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,
    /// How often an idle worker polls when no notification arrives.
    #[arg(long, env = "SPOOL_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long shutdown waits for running attempts before handing them back.
    #[arg(long, env = "SPOOL_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Delay before the first retry; it doubles with each attempt.
    #[arg(long, env = "SPOOL_RETRY_BASE", default_value = "1s", value_parser = parse_duration)]
    pub retry_base: Duration,
    /// Longest delay between retries.
    #[arg(long, env = "SPOOL_RETRY_CAP", default_value = "1h", value_parser = parse_duration)]
    pub retry_cap: Duration,
    /// How long completed jobs are kept.
    #[arg(long, env = "SPOOL_KEEP_COMPLETED", default_value = "24h", value_parser = parse_duration)]
    pub keep_completed: Duration,
    /// How long cancelled and discarded jobs are kept.
    #[arg(long, env = "SPOOL_KEEP_FAILED", default_value = "7d", value_parser = parse_duration)]
    pub keep_failed: Duration,
    /// How often the rescuer looks for expired leases.
    #[arg(long, env = "SPOOL_RESCUE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub rescue_interval: Duration,
    /// Allocate wasm instances on demand instead of from a reserved pool.
    #[arg(long, env = "SPOOL_NO_POOLING")]
    pub no_pooling: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the API listens.
    #[arg(long, env = "SPOOL_LISTEN", default_value = server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Run the API only, without workers.
    #[arg(long)]
    pub no_worker: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

impl WorkerArgs {
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            base: self.retry_base,
            cap: self.retry_cap,
        }
    }

    fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            queues: self.queues.clone(),
            concurrency: self.concurrency.max(1),
            lease: self.lease,
            poll_interval: self.poll_interval,
            drain_timeout: self.drain_timeout,
            retry: self.retry(),
            ..WorkerConfig::new()
        }
    }

    fn server_config(&self, listen: Option<SocketAddr>, with_worker: bool) -> ServerConfig {
        let concurrency = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        ServerConfig {
            listen,
            worker: with_worker.then(|| self.worker_config()),
            maintenance: MaintenanceConfig {
                rescuer_interval: self.rescue_interval,
                retention: Retention {
                    completed: self.keep_completed,
                    cancelled: self.keep_failed,
                    discarded: self.keep_failed,
                },
                retry: self.retry(),
                ..MaintenanceConfig::default()
            },
            runtime: RuntimeConfig {
                // Leave room for the attempts of a worker that is handing
                // over while a new one starts, and for validation.
                max_instances: concurrency
                    .saturating_mul(2)
                    .max(runtime::DEFAULT_MAX_INSTANCES),
                pooling: !self.no_pooling,
                ..RuntimeConfig::default()
            },
            admin_token: None,
        }
    }
}

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<()> {
    let target = Target::new(args.database_url.as_deref(), DEFAULT_DATABASE)?;
    let pool = target.open(1).await?;
    pool.close().await;
    println!("database {} is migrated", target.database());
    Ok(())
}

pub async fn serve(args: ServeArgs, admin_token: Option<&str>) -> anyhow::Result<()> {
    let mut config = args
        .worker
        .server_config(Some(args.listen), !args.no_worker);
    config.admin_token = admin_token
        .map(AdminToken::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("admin token: {e}"))?;
    run_server(&args.worker, config).await
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let config = args.server_config(None, true);
    run_server(&args, config).await
}

async fn run_server(args: &WorkerArgs, config: ServerConfig) -> anyhow::Result<()> {
    let target = Target::new(args.database.database_url.as_deref(), DEFAULT_DATABASE)?;
    let pool = target.open(args.max_connections).await?;
    tracing::info!(
        database = %target.database(),
        max_connections = args.max_connections,
        "starting"
    );
    let server = Server::start(pool.clone(), config).await?;

    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.stop().await;
    pool.close().await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
