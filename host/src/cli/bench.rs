//! `spool bench`: the workloads of `BENCHMARKS.md`, against a database of
//! their own on the local PostgreSQL.
//!
//! - A: bulk enqueue through `POST /v1/job-batches` (one request);
//! - B: single enqueues through `POST /v1/jobs`, one client, then 16; the
//!   same through the SQL function `spool.enqueue()`;
//! - C: pre-enqueued no-op jobs drained by this process's worker, from the
//!   first start to the last completion recorded in the database;
//! - D: an idle worker, jobs enqueued one at a time on a fixed schedule;
//!   enqueue-to-guest-start latency;
//! - F: fairness: a tenant floods the queue while another enqueues a job
//!   now and then; how long the lone jobs wait;
//! - I: the host's CPU cost of instantiating and calling the component,
//!   without the queue, with the pooling allocator and without.
//!
//! `spool bench` runs each a few times and prints medians. `spool bench
//! prepare X` and `spool bench run X` are the driver interface of the peer
//! harness (`shared/bench/peers`): they read `DATABASE_URL` and print one
//! `RESULT {json}` line, so Spool can run back to back with the peers.

mod workloads;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::output;
use crate::api::types::EnqueueRequest;
use crate::client::{Client, DeployOptions};
use crate::database::{self, Target};
use crate::guests;
use crate::maintenance::MaintenanceConfig;
use crate::queue::{self, JobState, NewJob};
use crate::runtime::RuntimeConfig;
use crate::server::{Server, ServerConfig};
use crate::worker::WorkerConfig;

/// The database `spool bench` uses unless told otherwise.
const BENCH_DATABASE: &str = "spool_bench";
/// The tenants the workloads run as.
const TENANT: &str = "bench";
const LONE_TENANT: &str = "lone";
/// The kind of the no-op component.
const KIND: &str = "noop";
/// How often completion is checked while a worker drains. Timings come
/// from the jobs' own timestamps, so polling less often loses nothing and
/// leaves PostgreSQL's CPU to the work being measured.
const POLL: Duration = Duration::from_millis(50);
/// Concurrent clients of the second half of B.
const CLIENTS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    #[value(name = "A")]
    A,
    #[value(name = "B")]
    B,
    #[value(name = "C")]
    C,
    #[value(name = "D")]
    D,
    #[value(name = "F")]
    F,
    #[value(name = "I")]
    I,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub step: Option<BenchStep>,
    /// Workloads to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "A,B,C,D,F,I",
        ignore_case = true
    )]
    pub workloads: Vec<Workload>,
    /// Runs of each workload; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// The database to use; its `spool` schema is dropped and made anew for
    /// every run, so its name must contain "bench". Default: a
    /// `spool_bench` database on the local server.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub sizes: Sizes,
}

/// How big each workload is; the peer harness sets the same variables.
#[derive(Debug, Clone, Args)]
pub struct Sizes {
    /// Jobs in A's one batch.
    #[arg(long, env = "N_BULK", default_value_t = 20_000)]
    pub bulk: usize,
    /// Jobs enqueued one by one in B.
    #[arg(long, env = "N_SINGLE", default_value_t = 2_000)]
    pub single: usize,
    /// Jobs drained in C (and flooding in F).
    #[arg(long, env = "N_WORK", default_value_t = 20_000)]
    pub work: usize,
    /// Jobs timed in D.
    #[arg(long, env = "N_LAT", default_value_t = 200)]
    pub latency: usize,
    /// Milliseconds between D's enqueues.
    #[arg(long, env = "LAT_GAP_MS", default_value_t = 20.0)]
    pub gap_ms: f64,
    /// Attempts the worker runs at once in C, D and F.
    #[arg(long, env = "SPOOL_BENCH_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// Finished jobs kept in the table while C and D run, to show that a
    /// large history does not slow the queue.
    #[arg(long, default_value_t = 0)]
    pub keep_finished: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchStep {
    /// Reset the schema and set up one workload (the peer harness's step).
    Prepare {
        #[arg(ignore_case = true)]
        workload: Workload,
    },
    /// Time one prepared workload and print `RESULT {json}`.
    Run {
        #[arg(ignore_case = true)]
        workload: Workload,
    },
}

/// A figure as the table shows it: rates in whole jobs per second, times
/// to a tenth.
fn shown(name: &str, value: f64) -> String {
    if name.ends_with("jobs/s") {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// `spool bench`.
pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let target = match &args.database_url {
        Some(url) => Target::new(Some(url), BENCH_DATABASE)?,
        None => Target::local(BENCH_DATABASE),
    };
    ensure!(
        target.database().contains("bench"),
        "database {}: spool bench drops the spool schema of its database, so the \
         name must contain \"bench\"",
        target.database()
    );
    output::warn_if_debug_build("benchmark figures");
    let bench = Bench {
        target,
        sizes: args.sizes,
    };
    match args.step {
        Some(BenchStep::Prepare { workload }) => bench.prepare(workload).await,
        Some(BenchStep::Run { workload }) => {
            let result = bench.run(workload).await?;
            println!("RESULT {}", result.record);
            Ok(())
        }
        None => bench.all(&args.workloads, args.runs).await,
    }
}

struct Bench {
    target: Target,
    sizes: Sizes,
}

/// One timed run: the harness's record and the figures for the table.
struct Measured {
    record: Value,
    figures: Vec<(String, f64)>,
}

impl Bench {
    /// Every workload `runs` times; prints the medians.
    async fn all(&self, workloads: &[Workload], runs: u32) -> anyhow::Result<()> {
        let sizes = &self.sizes;
        eprintln!(
            "spool bench on database {}, {runs} runs of each workload: A {} jobs in one batch; \
             B {} jobs one by one; C {} jobs, worker concurrency {}; D {} jobs {} ms apart",
            self.target.database(),
            sizes.bulk,
            sizes.single,
            sizes.work,
            sizes.concurrency,
            sizes.latency,
            sizes.gap_ms,
        );
        let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
        for &workload in workloads {
            for run in 1..=runs {
                self.prepare(workload).await?;
                let measured = self.run(workload).await?;
                let shown: Vec<String> = measured
                    .figures
                    .iter()
                    .map(|(name, value)| format!("{name} {}", shown(name, *value)))
                    .collect();
                eprintln!("{workload} run {run}/{runs}: {}", shown.join(", "));
                for (name, value) in measured.figures {
                    match rows.iter_mut().find(|(row, _)| *row == name) {
                        Some((_, values)) => values.push(value),
                        None => rows.push((name, vec![value])),
                    }
                }
            }
        }
        let mut table = output::table(&["figure", "median", "runs"]);
        for (name, values) in rows {
            let runs: Vec<String> = values.iter().map(|v| shown(&name, *v)).collect();
            let middle = shown(&name, median(&values));
            table.add_row(vec![name, middle, runs.join(" / ")]);
        }
        println!("{table}");
        Ok(())
    }

    /// Drops and recreates the schema, creates the tenant, deploys the
    /// no-op component and, for C, enqueues its jobs.
    async fn prepare(&self, workload: Workload) -> anyhow::Result<()> {
        let pool = self.target.open(4).await?;
        sqlx::raw_sql("drop schema spool cascade")
            .execute(&pool)
            .await
            .context("drop the spool schema")?;
        pool.close().await;
        let pool = self.target.open(4).await?;

        let component = build_noop().await?;
        let mut tenants = vec![TENANT];
        if workload == Workload::F {
            tenants.push(LONE_TENANT);
        }
        let server = start(&pool, false, 1).await?;
        for tenant in tenants {
            let mut conn = pool.acquire().await?;
            let (_, token) = queue::tenant_create(&mut conn, tenant, None).await?;
            client(&server, &token.token)?
                .module_deploy(KIND, component.clone(), &DeployOptions::default())
                .await
                .context("deploy the no-op component")?;
        }
        server.stop().await;

        if self.sizes.keep_finished > 0 && matches!(workload, Workload::C | Workload::D) {
            keep_finished(&pool, self.sizes.keep_finished).await?;
        }
        if workload == Workload::C {
            enqueue_direct(&pool, TENANT, self.sizes.work).await?;
        }
        sqlx::raw_sql("vacuum analyze spool.jobs")
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }

    async fn run(&self, workload: Workload) -> anyhow::Result<Measured> {
        let pool = self.target.open(database::DEFAULT_MAX_CONNECTIONS).await?;
        let measured = match workload {
            Workload::A => self.bulk(&pool).await,
            Workload::B => self.single(&pool).await,
            Workload::C => self.work(&pool).await,
            Workload::D => self.latency(&pool).await,
            Workload::F => self.fairness(&pool).await,
            Workload::I => self.instantiate(&pool).await,
        };
        pool.close().await;
        let mut measured = measured?;
        if let Value::Object(record) = &mut measured.record {
            record.insert("peer".into(), json!("spool"));
            record.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
            record.insert("test".into(), json!(workload.to_string()));
        }
        Ok(measured)
    }
}

/// Builds the no-op component from this source tree.
async fn build_noop() -> anyhow::Result<Vec<u8>> {
    let dir =
        tokio::task::spawn_blocking(|| guests::build(&guests::workspace_root(), &[KIND], false))
            .await??;
    let path = guests::component_path(&dir, KIND);
    std::fs::read(&path).with_context(|| format!("read {}", path.display()))
}

/// Starts Spool in this process: the API on a loopback port, and a worker
/// of `concurrency` when `worker`.
async fn start(pool: &PgPool, worker: bool, concurrency: usize) -> anyhow::Result<Server> {
    let config = ServerConfig {
        listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        worker: worker.then(|| WorkerConfig {
            concurrency,
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::new()
        }),
        maintenance: MaintenanceConfig::default(),
        runtime: RuntimeConfig {
            max_instances: (2 * concurrency as u32).max(crate::runtime::DEFAULT_MAX_INSTANCES),
            ..RuntimeConfig::default()
        },
        admin_token: None,
    };
    Ok(Server::start(pool.clone(), config).await?)
}

fn client(server: &Server, token: &str) -> anyhow::Result<Client> {
    let url = server.url().context("the bench server runs an API")?;
    Ok(Client::new(&url).with_token(token))
}

/// A client acting for `tenant`, with a token made for this run.
async fn tenant_client(pool: &PgPool, server: &Server, tenant: &str) -> anyhow::Result<Client> {
    let token = queue::token_create(pool, tenant, "bench").await?;
    client(server, &token.token)
}

fn noop_request(params: Value) -> EnqueueRequest {
    EnqueueRequest {
        kind: KIND.into(),
        params,
        ..EnqueueRequest::default()
    }
}

/// Enqueues `n` no-op jobs through the batch path without the API.
async fn enqueue_direct(pool: &PgPool, tenant: &str, n: usize) -> anyhow::Result<()> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob {
            tenant: tenant.to_string(),
            kind: KIND.to_string(),
            params: json!({ "n": i }),
            job_id: None,
            run_at: None,
            delay_secs: 0.0,
            queue: "default".to_string(),
            priority: 0,
            max_attempts: None,
        })
        .collect();
    let mut conn = pool.acquire().await?;
    let inserted = queue::job_insert_batch(&mut conn, tenant, &jobs).await?;
    if inserted.created != n as u64 {
        bail!("enqueued {} of {n} jobs", inserted.created);
    }
    Ok(())
}

/// Adds `n` completed jobs of another tenant, as a long history would.
async fn keep_finished(pool: &PgPool, n: u64) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    queue::tenant_create(&mut conn, "history", None).await?;
    sqlx::query(
        "insert into spool.jobs (tenant, id, kind, queue, state, priority, params, result, \
                                 attempt, max_attempts, run_at, attempted_at, finalized_at) \
         select 'history', 'h-' || i, $2, 'default', 'completed', 0, \
                jsonb_build_object('n', i), jsonb_build_object('n', i), 1, 1, \
                now(), now(), now() \
         from generate_series(1, $1) i",
    )
    .bind(n as i64)
    .bind(KIND)
    .execute(&mut *conn)
    .await
    .context("insert the finished jobs")?;
    Ok(())
}

/// Jobs of the bench tenants, in `state` if given. Two statements, so that
/// each is planned for what it counts.
async fn count(pool: &PgPool, state: Option<JobState>) -> anyhow::Result<i64> {
    let tenants = [TENANT, LONE_TENANT];
    let n = match state {
        Some(state) => {
            sqlx::query_scalar(
                "select count(*) from spool.jobs where tenant = any($1) and state = $2",
            )
            .bind(&tenants[..])
            .bind(state.as_str())
            .fetch_one(pool)
            .await?
        }
        None => {
            sqlx::query_scalar("select count(*) from spool.jobs where tenant = any($1)")
                .bind(&tenants[..])
                .fetch_one(pool)
                .await?
        }
    };
    Ok(n)
}

/// Whether every job has reached a final state. Each test walks one of
/// the partial indexes of waiting and running jobs, which hold little
/// once the queue is drained, so polling costs the database next to
/// nothing while the worker is being measured; counting finished jobs
/// would read every one of them on every poll.
async fn drained(pool: &PgPool) -> anyhow::Result<bool> {
    let busy: bool = sqlx::query_scalar(
        "select exists(select 1 from spool.jobs where state = 'available') \
             or exists(select 1 from spool.jobs where state = 'running') \
             or exists(select 1 from spool.jobs where state in ('scheduled', 'retryable'))",
    )
    .fetch_one(pool)
    .await?;
    Ok(!busy)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// The `p`th percentile of sorted `values` (nearest rank).
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }
}
