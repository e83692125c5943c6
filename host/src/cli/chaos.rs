//! `spool chaos`: the fault harness. It starts a PostgreSQL server of its
//! own, several `spool worker` processes and one API server on loopback,
//! feeds them a mix of jobs of the `chaos` guest (which reports every
//! start and end of every attempt to a ledger in this process), injects
//! faults on a schedule, waits until nothing is left to run and checks
//! Spool's promises against the ledger. [`run_chaos`] is what the tests
//! call.
//!
//! Faults, repeated every cycle of at most a minute: SIGKILL of a worker
//! (twice), SIGSTOP of a worker for longer than the lease then SIGCONT, a
//! burst of slow jobs that takes every attempt slot, `pg_terminate_backend`
//! of every connection (LISTEN included), `pg_ctl restart -m immediate`
//! (twice), SIGTERM of a worker while it runs jobs; and, all along, cancel
//! and retry requests racing the jobs.

mod check;
mod faults;
mod feed;
mod ledger;
mod postgres;
mod scale;
mod workers;

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use nix::sys::signal::Signal;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use check::{Check, Verdict};

use self::check::{Collected, Drain, Expect, Restart};
use self::ledger::Ledger;
use self::postgres::PrivatePostgres;
use self::workers::WorkerProcess;
use super::demo::Progress;
use super::parse_duration;
use crate::api::types::JobView;
use crate::client::{Client, DeployOptions, ListOptions};
use crate::database::Target;
use crate::guests;
use crate::maintenance::MaintenanceConfig;
use crate::queue::{self, RetryPolicy};
use crate::runtime::RuntimeConfig;
use crate::server::{Server, ServerConfig};

/// The kind the guest is deployed as.
const KIND: &str = "chaos";
const TENANT: &str = "chaos";
/// Attempts a job may have: room for its planned failures and rescues.
const MAX_ATTEMPTS: u32 = 10;
/// Longest fault cycle; longer runs repeat it.
const CYCLE: Duration = Duration::from_secs(60);
/// How often a latency probe is enqueued.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// How long jobs are fed and faults injected.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Jobs to enqueue over the run.
    #[arg(long, default_value_t = 3000)]
    pub jobs: usize,
    /// `spool worker` processes.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Attempts each worker runs at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The workers' lease (short, so that rescues happen within the run).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Instead of injecting faults, measure throughput with each of these
    /// numbers of workers (`1,2,4`), `--jobs` jobs per step.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=64))]
    pub scale_out: Vec<u16>,
    /// Run the workers from this `spool` binary instead of this one: to
    /// check another build against the harness.
    #[arg(long, value_name = "PATH")]
    pub worker_binary: Option<PathBuf>,
    /// Write the table of results, as Markdown, to this file too.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// How [`run_chaos`] runs.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The `spool` binary the workers run.
    pub spool: PathBuf,
    pub duration: Duration,
    pub jobs: usize,
    pub workers: usize,
    pub concurrency: usize,
    /// Database connections per worker: few, so that slow jobs and
    /// reconnections press on the pool.
    pub max_connections: u32,
    pub lease: Duration,
    pub rescue_interval: Duration,
    pub drain_timeout: Duration,
    pub retry: RetryPolicy,
    /// When not empty, measure throughput with each of these numbers of
    /// workers instead of injecting faults.
    pub scale_out: Vec<usize>,
    /// Print each fault and draw progress bars.
    pub show_progress: bool,
}

impl ChaosOptions {
    /// A run of `duration` feeding `jobs` jobs to `workers` workers, with
    /// a 3 s lease, run by the `spool` binary at `spool`.
    pub fn new(spool: PathBuf, duration: Duration, jobs: usize, workers: usize) -> Self {
        Self {
            spool,
            duration,
            jobs,
            workers,
            concurrency: 8,
            max_connections: 6,
            lease: Duration::from_secs(3),
            rescue_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(4),
            retry: RetryPolicy {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(4),
            },
            scale_out: Vec::new(),
            show_progress: false,
        }
    }
}

/// The outcome of a run: the checks and figures.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub options_line: String,
    pub verdict: Verdict,
    pub faults: Vec<String>,
}

impl ChaosReport {
    /// The report as Markdown: the run's settings, the faults, the tables.
    pub fn markdown(&self) -> String {
        let faults = match self.faults.is_empty() {
            true => String::new(),
            false => format!("Faults injected: {}.\n\n", self.faults.join("; ")),
        };
        format!(
            "{}\n\n{faults}{}\n\n{}\n",
            self.options_line,
            self.verdict.table(),
            self.verdict.figures_table()
        )
    }
}

/// `spool chaos`.
pub async fn chaos(args: ChaosArgs) -> anyhow::Result<()> {
    let spool = match args.worker_binary {
        Some(path) => path,
        None => {
            if !args.scale_out.is_empty() {
                super::output::warn_if_debug_build("scale-out figures");
            }
            std::env::current_exe().context("find the spool binary")?
        }
    };
    let mut options = ChaosOptions::new(spool, args.duration, args.jobs, args.workers);
    options.concurrency = args.concurrency;
    options.lease = args.lease;
    options.scale_out = args.scale_out.into_iter().map(usize::from).collect();
    options.show_progress = true;
    let report = run_chaos(&options).await?;
    let markdown = report.markdown();
    println!("\n{markdown}");
    if let Some(path) = &args.report {
        std::fs::write(path, &markdown).with_context(|| format!("write {}", path.display()))?;
    }
    if !report.verdict.passed() {
        bail!(
            "invariants broken:\n  {}",
            report.verdict.failures().join("\n  ")
        );
    }
    Ok(())
}

/// Runs the harness and checks the invariants. Fails only when the
/// harness itself cannot run; broken invariants are in the report.
pub async fn run_chaos(options: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    let progress = Progress {
        show: options.show_progress,
    };
    progress.step("building the chaos guest");
    let components =
        tokio::task::spawn_blocking(|| guests::build(&guests::workspace_root(), &["chaos"], false))
            .await
            .context("build the chaos guest")??;
    let component = std::fs::read(guests::component_path(&components, "chaos"))
        .context("read the chaos guest")?;

    let postgres = PrivatePostgres::start()
        .await
        .context("start a private PostgreSQL")?;
    progress.step(format!(
        "private PostgreSQL in {}",
        postgres.dir().display()
    ));
    let result = run_with(options, &postgres, component, &progress).await;
    let stopped = postgres.stop().await;
    let report = result?;
    stopped.context("stop the private PostgreSQL")?;
    Ok(report)
}

async fn run_with(
    options: &ChaosOptions,
    postgres: &PrivatePostgres,
    component: Vec<u8>,
    progress: &Progress,
) -> anyhow::Result<ChaosReport> {
    let pool = Target::from_options(postgres.options())
        .open(8)
        .await
        .context("migrate the private database")?;
    let token = {
        let mut conn = pool.acquire().await?;
        queue::tenant_create(&mut conn, TENANT, None).await?.1.token
    };
    let ledger = Ledger::start().await?;
    let server = Server::start(pool.clone(), api_config(options))
        .await
        .context("start the API")?;
    let client = Client::new(&server.url().context("the API runs")?).with_token(token);
    let deploy = DeployOptions {
        max_attempts: Some(MAX_ATTEMPTS),
        allowed_hosts: vec![ledger.host()],
        ..DeployOptions::default()
    };
    client
        .module_deploy(KIND, component, &deploy)
        .await
        .context("deploy the chaos guest")?;

    let chaos = Chaos {
        options,
        postgres,
        pool: pool.clone(),
        client,
        ledger,
        workers: tokio::sync::Mutex::new(Vec::new()),
        retired: Mutex::new(Vec::new()),
        next_worker: Mutex::new(0),
        record: Mutex::new(Record::default()),
        progress,
    };
    let result = match options.scale_out.as_slice() {
        [] => chaos.run().await,
        counts => chaos.scale_out(counts).await,
    };
    chaos.stop_workers().await;
    server.stop().await;
    chaos.ledger.stop().await;
    pool.close().await;
    result
}

/// The in-process API: maintenance like the workers', no worker.
fn api_config(options: &ChaosOptions) -> ServerConfig {
    ServerConfig {
        listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        worker: None,
        maintenance: MaintenanceConfig {
            rescuer_interval: options.rescue_interval,
            retry: options.retry,
            ..MaintenanceConfig::default()
        },
        runtime: RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        },
        admin_token: None,
    }
}

/// What the run records as it goes.
#[derive(Default)]
struct Record {
    expected: BTreeMap<String, Expect>,
    /// Plan jobs enqueued so far, for the racers to pick from.
    enqueued: Vec<String>,
    raced: HashSet<String>,
    retried: HashSet<String>,
    probes: Vec<(String, DateTime<Utc>)>,
    first_fault: Option<DateTime<Utc>>,
    faults: Vec<String>,
    restarts: Vec<(DateTime<Utc>, Vec<usize>)>,
    drains: Vec<Drain>,
    terminations: Vec<(usize, bool)>,
}

struct Chaos<'a> {
    options: &'a ChaosOptions,
    postgres: &'a PrivatePostgres,
    pool: PgPool,
    client: Client,
    ledger: Ledger,
    workers: tokio::sync::Mutex<Vec<WorkerProcess>>,
    /// Workers that were killed or drained, for their logs.
    retired: Mutex<Vec<WorkerProcess>>,
    next_worker: Mutex<usize>,
    record: Mutex<Record>,
    progress: &'a Progress,
}

impl Chaos<'_> {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run(&self) -> anyhow::Result<ChaosReport> {
        for _ in 0..self.options.workers {
            self.start_worker().await?;
        }
        self.progress.step(format!(
            "{} workers, API {}, ledger {}",
            self.options.workers,
            self.client.base(),
            self.ledger.url()
        ));

        let started = Instant::now();
        let feeding = CancellationToken::new();
        let bar = self.progress.bar("seconds")?;
        bar.set_length(self.options.duration.as_secs());
        let ticker = async {
            while !feeding.is_cancelled() {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(self.record().faults.last().cloned().unwrap_or_default());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let (fed, faults, ..) = tokio::join!(
            self.feed(&feeding),
            async {
                let result = self.inject_faults().await;
                tokio::time::sleep(self.options.duration.saturating_sub(started.elapsed())).await;
                feeding.cancel();
                result
            },
            self.probe(&feeding),
            self.race(&feeding),
            ticker,
        );
        bar.finish_and_clear();
        fed?;
        faults?;

        let settle = self.options.lease * 4
            + self.options.retry.cap * MAX_ATTEMPTS
            + Duration::from_secs(30);
        let quiescent = self.settle(settle).await?;
        let elapsed = started.elapsed();
        self.stop_workers().await;
        let collected = self.collect(quiescent).await?;
        let mut verdict = check::verdict(&collected);
        let completed = collected
            .jobs
            .iter()
            .filter(|j| j.state == queue::JobState::Completed)
            .count();
        verdict.figures.push((
            "completed per second of the run".into(),
            format!(
                "{:.0} jobs/s over {:.0}s (at most the feed rate)",
                completed as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            ),
        ));
        let o = self.options;
        Ok(ChaosReport {
            options_line: format!(
                "`spool chaos --duration {}s --jobs {} --workers {} --concurrency {} --lease {}s`: \
                 {} jobs fed over {}s, quiescent {:.0}s after start",
                o.duration.as_secs(),
                o.jobs,
                o.workers,
                o.concurrency,
                o.lease.as_secs(),
                collected.expected.len(),
                o.duration.as_secs(),
                elapsed.as_secs_f64()
            ),
            verdict,
            faults: self.record().faults.clone(),
        })
    }

    async fn start_worker(&self) -> anyhow::Result<usize> {
        let number = {
            let mut next = self
                .next_worker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        let worker = WorkerProcess::start(
            self.options,
            &self.postgres.url(),
            self.postgres.dir(),
            number,
        )
        .await?;
        self.workers.lock().await.push(worker);
        Ok(number)
    }

    /// Takes a running worker out of the pool, for a fault.
    async fn take_worker(&self) -> Option<WorkerProcess> {
        let mut workers = self.workers.lock().await;
        (!workers.is_empty()).then(|| workers.remove(0))
    }

    fn retire(&self, worker: WorkerProcess) {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(worker);
    }

    fn fault(&self, line: String) {
        self.progress.step(&line);
        let mut record = self.record();
        record.first_fault.get_or_insert_with(Utc::now);
        record.faults.push(line);
    }

    /// Waits until no job is left to run, or `timeout`; returns whether
    /// the queue became quiescent.
    async fn settle(&self, timeout: Duration) -> anyhow::Result<bool> {
        let started = Instant::now();
        let total = self.record().expected.len() as u64;
        let bar = self.progress.bar("jobs finished")?;
        bar.set_length(total);
        loop {
            let counts = match queue::job_counts(&self.pool, Some(TENANT)).await {
                Ok(counts) => counts,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let unfinished: i64 = counts
                .iter()
                .filter(|c| !c.state().is_finished())
                .map(|c| c.count)
                .sum();
            bar.set_position(total.saturating_sub(unfinished.unsigned_abs()));
            if unfinished == 0 {
                bar.finish_and_clear();
                self.progress.step(format!(
                    "quiescent {:.1}s after the run",
                    started.elapsed().as_secs_f64()
                ));
                return Ok(true);
            }
            if started.elapsed() > timeout {
                bar.abandon();
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the running workers with SIGTERM and waits for them.
    async fn stop_workers(&self) {
        let workers: Vec<WorkerProcess> = self.workers.lock().await.drain(..).collect();
        for worker in &workers {
            let _ = worker.signal(Signal::SIGTERM);
        }
        for mut worker in workers {
            let _ = worker.wait().await;
            self.retire(worker);
        }
    }

    async fn collect(&self, quiescent: bool) -> anyhow::Result<Collected> {
        let jobs = self.all_jobs().await?;
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        let last_outcome: BTreeMap<usize, Option<DateTime<Utc>>> = retired
            .iter()
            .map(|w| (w.number, w.last_outcome_at()))
            .collect();
        let record = self.record();
        let restarts = record
            .restarts
            .iter()
            .map(|(at, alive)| Restart {
                at: *at,
                workers: alive
                    .iter()
                    .map(|n| (*n, last_outcome.get(n).copied().flatten() > Some(*at)))
                    .collect(),
            })
            .collect();
        Ok(Collected {
            jobs,
            expected: record.expected.clone(),
            ledger: self.ledger.entries(),
            raced: record.raced.clone(),
            retried: record.retried.clone(),
            probes: record.probes.clone(),
            first_fault: record.first_fault,
            restarts,
            drains: record.drains.clone(),
            terminations: record.terminations.clone(),
            lease: self.options.lease,
            drain_timeout: self.options.drain_timeout,
            retry: self.options.retry,
            quiescent,
        })
    }

    /// Every job, read through the API.
    async fn all_jobs(&self) -> anyhow::Result<Vec<JobView>> {
        let mut jobs = Vec::new();
        let mut options = ListOptions {
            limit: Some(500),
            ..ListOptions::default()
        };
        loop {
            let page = self.client.job_list(&options).await.context("list jobs")?;
            jobs.extend(page.jobs);
            match page.next_cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => return Ok(jobs),
            }
        }
    }
}
