//! The `spool` command line: server commands (`migrate`, `serve`,
//! `worker`, `demo`) and a client of the HTTP API for everything else.
//! Output is for people by default and JSON with `--json`.

pub mod bench;
pub mod chaos;
mod client_commands;
pub mod demo;
mod loopback;
mod output;
mod server_commands;
mod tenant_commands;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::{self, Client};
use crate::queue::JobState;
use crate::telemetry::{self, LogFormat};

/// The help heading of the options every command takes, listed after a
/// command's own.
const GLOBAL: &str = "Global options";

/// A PostgreSQL job queue whose jobs are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "spool", version, about)]
pub struct Cli {
    /// The API to talk to (client commands).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "SPOOL_URL",
        default_value = client::DEFAULT_URL
    )]
    pub url: String,

    /// Your tenant's API token (client commands).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "SPOOL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// The operator's admin token: `serve` opens the admin API with it,
    /// `tenant` commands send it. At least 32 characters.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "SPOOL_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Print JSON instead of text (client commands).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// How log lines are written to stderr.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "SPOOL_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if needed and apply migrations.
    Migrate(DatabaseArgs),
    /// Run the HTTP API, workers and maintenance.
    Serve(server_commands::ServeArgs),
    /// Run workers and maintenance only, to add capacity on more machines.
    Worker(server_commands::WorkerArgs),
    /// Build and deploy the examples, feed them sample data, show the result.
    Demo(demo::DemoArgs),
    /// Measure throughput and latency (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run Spool under faults (its own PostgreSQL, worker processes, kills,
    /// pauses, database restarts) and check that no job is lost.
    Chaos(chaos::ChaosArgs),
    /// Deploy a component for a kind.
    Deploy(client_commands::DeployArgs),
    /// List deployed modules.
    Modules,
    /// Enqueue a job.
    Enqueue(client_commands::EnqueueArgs),
    /// Show a job.
    Status {
        /// The job's id.
        id: String,
    },
    /// Print a job's result.
    Result {
        /// The job's id.
        id: String,
        /// Wait for the job to finish.
        #[arg(long)]
        wait: bool,
        /// How long to wait, e.g. 30s or 5m.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Cancel a job (stop it, if running).
    Cancel {
        /// The job's id.
        id: String,
    },
    /// Run a retryable, discarded or cancelled job again.
    Retry {
        /// The job's id.
        id: String,
    },
    /// List jobs, newest first.
    Jobs(client_commands::JobsArgs),
    /// Delete finished jobs by state and age.
    Prune {
        /// completed, cancelled or discarded.
        #[arg(long, value_parser = finished_state)]
        state: JobState,
        /// Minimum age since the job finished, e.g. 24h or 7d.
        #[arg(long)]
        older_than: String,
    },
    /// Manage the tenant's config entries and secrets.
    #[command(subcommand)]
    Config(client_commands::ConfigCommand),
    /// Manage tenants (operator; needs the admin token).
    #[command(subcommand)]
    Tenant(tenant_commands::TenantCommand),
    /// Manage your tenant's API tokens.
    #[command(subcommand)]
    Token(tenant_commands::TokenCommand),
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Without one, the local server's `spool` database is
    /// used, and created when missing.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl Cli {
    /// The log filter unless `RUST_LOG` says otherwise. The demo shows its
    /// own progress on the terminal, which a log line per attempt would
    /// bury, so it logs warnings and errors only.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Demo(_) | Command::Bench(_) => telemetry::QUIET_FILTER,
            Command::Chaos(_) => telemetry::SILENT_FILTER,
            _ => telemetry::DEFAULT_FILTER,
        }
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    let client = Client::new(&cli.url);
    // An empty variable (`SPOOL_TOKEN=`) sends no token, which the API
    // names as missing.
    let admin = match cli.admin_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => client.clone().with_token(token),
        None => client.clone(),
    };
    let client = match cli.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => client.with_token(token),
        None => client,
    };
    match cli.command {
        Command::Migrate(args) => server_commands::migrate(args).await,
        Command::Serve(args) => server_commands::serve(args, cli.admin_token.as_deref()).await,
        Command::Worker(args) => server_commands::worker(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Chaos(args) => chaos::chaos(args).await,
        Command::Deploy(args) => client_commands::deploy(&client, json, args).await,
        Command::Modules => client_commands::modules(&client, json).await,
        Command::Enqueue(args) => client_commands::enqueue(&client, json, args).await,
        Command::Status { id } => client_commands::status(&client, json, &id).await,
        Command::Result { id, wait, timeout } => {
            client_commands::result(&client, json, &id, wait.then_some(timeout)).await
        }
        Command::Cancel { id } => client_commands::cancel(&client, json, &id).await,
        Command::Retry { id } => client_commands::retry(&client, json, &id).await,
        Command::Jobs(args) => client_commands::jobs(&client, json, args).await,
        Command::Prune { state, older_than } => {
            client_commands::prune(&client, json, state, &older_than).await
        }
        Command::Config(command) => client_commands::config(&client, json, command).await,
        Command::Tenant(command) => tenant_commands::tenant(&admin, json, command).await,
        Command::Token(command) => tenant_commands::token(&client, json, command).await,
    }
}

/// A state `prune` takes: one a job ends in.
fn finished_state(text: &str) -> Result<JobState, String> {
    let finished = [
        JobState::Completed,
        JobState::Cancelled,
        JobState::Discarded,
    ];
    finished
        .into_iter()
        .find(|state| state.as_str() == text)
        .ok_or_else(|| "jobs are pruned once finished: completed, cancelled or discarded".into())
}

/// Parses `30s`, `5m`, `1h 30m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::parse_duration_text("duration", text).map_err(|e| match e {
        crate::api::Error::Invalid { message, .. } => message,
        other => format!("{other:?}"),
    })
}

/// Reads a file named on the command line, saying which.
fn read_file(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))
}
