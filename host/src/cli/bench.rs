//! `spool bench`: the workloads of `BENCHMARKS.md`, against a database of
//! their own on the local PostgreSQL.
//!
//! - A: bulk enqueue through `POST /v1/job-batches` (one request);
//! - B: single enqueues through `POST /v1/jobs`, one client, then 16;
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

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::output;
use crate::api::types::EnqueueRequest;
use crate::client::{Client, DeployOptions};
use crate::database::{self, Target};
use crate::guests;
use crate::maintenance::MaintenanceConfig;
use crate::queue::{self, JobState, NewJob};
use crate::runtime::{Attempt, LeaseClock, Limits, Outcome, Runtime, RuntimeConfig};
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
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
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

/// `spool bench`.
pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let target = match &args.database_url {
        Some(url) => Target::new(Some(url))?,
        None => Target::local(BENCH_DATABASE),
    };
    ensure!(
        target.database().contains("bench"),
        "database {}: spool bench drops the spool schema of its database, so the \
         name must contain \"bench\"",
        target.database()
    );
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
        None => bench.all(&args.workloads, args.runs.max(1)).await,
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
    async fn all(&self, workloads: &[Workload], runs: usize) -> anyhow::Result<()> {
        let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
        for &workload in workloads {
            for run in 1..=runs {
                self.prepare(workload).await?;
                let measured = self.run(workload).await?;
                let shown: Vec<String> = measured
                    .figures
                    .iter()
                    .map(|(name, value)| format!("{name} {value:.1}"))
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
            let runs: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
            table.add_row(vec![
                name,
                format!("{:.1}", median(&values)),
                runs.join(" / "),
            ]);
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

    async fn bulk(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.bulk;
        let server = start(pool, false, 1).await?;
        let client = tenant_client(pool, &server, TENANT).await?;
        let jobs: Vec<EnqueueRequest> = (0..n).map(|i| noop_request(json!({ "n": i }))).collect();

        let started = Instant::now();
        let report = client.job_enqueue_batch(&jobs).await?;
        let seconds = started.elapsed().as_secs_f64();
        server.stop().await;

        ensure!(
            report.created == n as u64,
            "A created {} of {n} jobs",
            report.created
        );
        ensure!(
            count(pool, None).await? == n as i64,
            "A: the table does not hold {n} jobs"
        );
        Ok(Measured {
            record: json!({ "jobs": n, "seconds": seconds, "method": "POST /v1/job-batches" }),
            figures: vec![("A bulk enqueue, jobs/s".into(), n as f64 / seconds)],
        })
    }

    async fn single(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.single;
        let server = start(pool, false, 1).await?;
        let client = tenant_client(pool, &server, TENANT).await?;

        let started = Instant::now();
        for i in 0..n {
            client.job_enqueue(&noop_request(json!({ "n": i }))).await?;
        }
        let one = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..CLIENTS {
            let client = client.clone();
            let share = (c..n).step_by(CLIENTS).collect::<Vec<_>>();
            tasks.spawn(async move {
                for i in share {
                    client
                        .job_enqueue(&noop_request(json!({ "n": n + i })))
                        .await?;
                }
                Ok::<_, crate::client::Error>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let many = started.elapsed().as_secs_f64();
        server.stop().await;

        ensure!(count(pool, None).await? == 2 * n as i64, "B lost jobs");
        Ok(Measured {
            record: json!({
                "jobs": n,
                "seconds": one,
                "method": "POST /v1/jobs, one client",
                "clients_16_seconds": many,
            }),
            figures: vec![
                ("B single enqueue, 1 client, jobs/s".into(), n as f64 / one),
                (
                    format!("B single enqueue, {CLIENTS} clients, jobs/s"),
                    n as f64 / many,
                ),
            ],
        })
    }

    async fn work(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.work as i64;
        let server = start(pool, true, self.sizes.concurrency).await?;
        while count(pool, Some(JobState::Completed)).await? < n {
            tokio::time::sleep(POLL).await;
        }
        server.stop().await;
        let seconds: f64 = sqlx::query_scalar(
            "select extract(epoch from max(finalized_at) - min(attempted_at))::float8 \
             from spool.jobs where tenant = $1",
        )
        .bind(TENANT)
        .fetch_one(pool)
        .await?;
        let settings = format!(
            "one process, concurrency {}, results kept",
            self.sizes.concurrency
        );
        Ok(Measured {
            record: json!({ "jobs": n, "seconds": seconds, "settings": settings }),
            figures: vec![("C work, jobs/s".into(), n as f64 / seconds)],
        })
    }

    async fn latency(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.latency;
        let server = start(pool, true, self.sizes.concurrency).await?;
        let client = tenant_client(pool, &server, TENANT).await?;
        // One job first, untimed: the worker compiles the component on its
        // first job, and an idle worker in steady state has it compiled.
        let warm_up = client.job_enqueue(&noop_request(json!({}))).await?.0;
        client
            .job_wait(&warm_up.id, Duration::from_secs(60))
            .await
            .context("D: the warm-up job did not finish")?;

        let base = Instant::now();
        for i in 0..n {
            let due = base + Duration::from_secs_f64(i as f64 * self.sizes.gap_ms / 1000.0);
            tokio::time::sleep_until(due.into()).await;
            let request = noop_request(json!({ "n": i, "t": now_ms() }));
            client.job_enqueue(&request).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(pool, Some(JobState::Completed)).await? < n as i64 + 1 {
            ensure!(
                Instant::now() < deadline,
                "D: jobs did not finish within a minute"
            );
            tokio::time::sleep(POLL).await;
        }
        server.stop().await;

        let mut latencies: Vec<f64> = sqlx::query_scalar(
            "select (result->>'started_ms')::float8 - (params->>'t')::float8 \
             from spool.jobs where tenant = $1 and params ? 't' order by (params->>'n')::int",
        )
        .bind(TENANT)
        .fetch_all(pool)
        .await?;
        let record = json!({ "jobs": n, "latencies_ms": latencies, "method": "POST /v1/jobs" });
        latencies.sort_by(f64::total_cmp);
        Ok(Measured {
            record,
            figures: vec![
                ("D latency p50, ms".into(), percentile(&latencies, 50.0)),
                ("D latency p95, ms".into(), percentile(&latencies, 95.0)),
                ("D latency p99, ms".into(), percentile(&latencies, 99.0)),
            ],
        })
    }

    async fn fairness(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        const LONE_JOBS: usize = 40;
        enqueue_direct(pool, TENANT, self.sizes.work).await?;
        let server = start(pool, true, self.sizes.concurrency).await?;
        let lone = tenant_client(pool, &server, LONE_TENANT).await?;
        // Let the flood get going, then add a lone job every 25 ms.
        while count(pool, Some(JobState::Completed)).await? < 100 {
            tokio::time::sleep(POLL).await;
        }
        for i in 0..LONE_JOBS {
            lone.job_enqueue(&noop_request(json!({ "n": i }))).await?;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let total = (self.sizes.work + LONE_JOBS) as i64;
        while count(pool, Some(JobState::Completed)).await? < total {
            tokio::time::sleep(POLL).await;
        }
        server.stop().await;

        let wait = |tenant: &'static str| {
            sqlx::query_scalar::<_, f64>(
                "select extract(epoch from attempted_at - created_at)::float8 * 1000 \
                 from spool.jobs where tenant = $1 order by 1",
            )
            .bind(tenant)
            .fetch_all(pool)
        };
        let lone_waits = wait(LONE_TENANT).await?;
        let flood_waits = wait(TENANT).await?;
        Ok(Measured {
            record: json!({
                "flood_jobs": self.sizes.work,
                "lone_jobs": LONE_JOBS,
                "lone_wait_ms": lone_waits,
            }),
            figures: vec![
                (
                    "F lone job wait p50, ms".into(),
                    percentile(&lone_waits, 50.0),
                ),
                (
                    "F lone job wait p99, ms".into(),
                    percentile(&lone_waits, 99.0),
                ),
                (
                    "F flood job wait p50, ms".into(),
                    percentile(&flood_waits, 50.0),
                ),
            ],
        })
    }
}

impl Bench {
    async fn instantiate(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.work;
        let component = build_noop().await?;
        let mut record = serde_json::Map::new();
        let mut figures = Vec::new();
        for pooling in [true, false] {
            let config = RuntimeConfig {
                pooling,
                ..RuntimeConfig::default()
            };
            let runtime = Runtime::new(config, pool.clone())
                .map_err(|e| anyhow::anyhow!("start the runtime: {e:#}"))?;
            let bytes = component.clone();
            let prepared = runtime
                .prepare("bench", async move { Ok(bytes) })
                .await
                .map_err(|e| anyhow::anyhow!("compile the no-op component: {e}"))?;
            let cancel = CancellationToken::new();
            let params = json!({ "n": 1 }).to_string();
            let attempt = Attempt {
                seq: 0,
                id: "bench",
                kind: KIND,
                queue: "default",
                tenant: TENANT,
                attempt: 1,
                max_attempts: 1,
                params: &params,
                limits: Limits {
                    timeout: Duration::from_secs(10),
                    memory_bytes: 128 << 20,
                    allowed_hosts: Vec::new(),
                },
                lease: Duration::from_secs(30),
                lease_clock: LeaseClock::new(Instant::now() + Duration::from_secs(3600)),
            };
            let cpu = cpu_time()?;
            let started = Instant::now();
            for _ in 0..n {
                let outcome = runtime.run(&prepared, attempt.clone(), &cancel).await;
                ensure!(
                    matches!(outcome, Outcome::Completed { .. }),
                    "the no-op component failed: {outcome:?}"
                );
            }
            let wall = started.elapsed().as_secs_f64();
            let cpu_us = (cpu_time()? - cpu).as_secs_f64() * 1e6 / n as f64;
            let name = if pooling { "pooling" } else { "on_demand" };
            record.insert(format!("{name}_cpu_us_per_job"), json!(cpu_us));
            record.insert(format!("{name}_calls_per_s"), json!(n as f64 / wall));
            let label = if pooling { "pooling" } else { "on demand" };
            figures.push((
                format!("I instantiate+call, {label}, host CPU µs/job"),
                cpu_us,
            ));
        }
        record.insert("jobs".into(), json!(n));
        Ok(Measured {
            record: Value::Object(record),
            figures,
        })
    }
}

/// CPU time this process has used, from `/proc/self/stat` (user + system,
/// in clock ticks of 10 ms).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let after = stat.rsplit_once(')').context("parse /proc/self/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("parse /proc/self/stat")?.parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 10))
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
