//! `spool demo`: builds the example jobs, runs Spool in this process on a
//! database of its own, feeds it a day of sample data through the HTTP API
//! as an application would, waits for every job to finish and shows what
//! happened. The numbers must follow exactly from the bundled input, so a
//! run is also an end-to-end check; [`run_demo`] is what the tests call.
//!
//! The examples send their email to a mail sink in this process; nothing
//! leaves the machine.

mod data;
mod feed;
mod report;
mod sink;

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{Connection, PgPool};

pub use report::{DemoReport, Discarded};
pub use sink::{Inbox, Message};

use self::data::Data;
use self::sink::MailSink;
use super::parse_duration;
use crate::api::types::JobView;
use crate::client::{Client, DeployOptions, ListOptions};
use crate::database::{self, Target};
use crate::guests;
use crate::maintenance::MaintenanceConfig;
use crate::queue::{self, JobCount, JobState, RetryPolicy};
use crate::runtime::RuntimeConfig;
use crate::server::{Server, ServerConfig};
use crate::worker::WorkerConfig;

/// The database the demo drops and creates on the local server.
pub const DEMO_DATABASE: &str = "spool_demo";
/// The tenant the demo's jobs belong to.
pub const DEMO_TENANT: &str = "demo";
/// The kinds the examples are deployed as.
pub const SEND_EMAIL: &str = "user:send-email";
pub const USER_STATS: &str = "user:stats";
pub const CART_REMINDER: &str = "cart:reminder";

/// Each kind, the package that builds it, and whether it sends email.
const EXAMPLES: [(&str, &str, bool); 3] = [
    (SEND_EMAIL, "send-email", true),
    (USER_STATS, "user-stats", false),
    (CART_REMINDER, "cart-reminder", true),
];
/// Attempts running at once.
const CONCURRENCY: usize = 16;
/// Database connections of the demo's Spool.
const MAX_CONNECTIONS: u32 = 16;
/// How long jobs may take to finish once the reminders are due.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the job counts are read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run in this database instead of a fresh `spool_demo` on the local
    /// server. It is migrated, then the demo stops unless it holds no jobs.
    /// `DATABASE_URL` is not read, so that the demo never runs in a
    /// database by accident.
    #[arg(long)]
    pub database_url: Option<String>,
    /// How long after a cart is abandoned its reminder is due.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub reminder_delay: Duration,
    /// Show cargo's output while the examples build.
    #[arg(long)]
    pub verbose: bool,
}

/// How [`run_demo`] runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long after a cart is abandoned its reminder is due. The demo
    /// cancels the reminder of an ordered cart right after enqueueing it,
    /// which must take less than this.
    pub reminder_delay: Duration,
    /// Show cargo's output while the examples build.
    pub verbose: bool,
    /// Print each step to stdout and draw progress bars on stderr (when it
    /// is a terminal).
    pub show_progress: bool,
}

/// `spool demo`.
pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let (pool, database) = open_database(args.database_url.as_deref()).await?;
    let kept = match args.database_url {
        None => {
            println!("created database {database}");
            " until the next `spool demo`"
        }
        Some(_) => {
            println!("database {database} holds no jobs; using it");
            ""
        }
    };
    let options = DemoOptions {
        reminder_delay: args.reminder_delay,
        verbose: args.verbose,
        show_progress: true,
    };
    let report = run_demo(pool.clone(), &options).await;
    pool.close().await;
    let report = report?;

    println!();
    report.print();
    let problems = report.problems();
    if !problems.is_empty() {
        bail!("the numbers do not add up:\n  {}", problems.join("\n  "));
    }
    println!("the jobs stay in database {database}{kept}");
    Ok(())
}

/// Opens the demo's database: `spool_demo`, dropped and created afresh so
/// that every count is exact, or the database at `url` when it holds no
/// jobs. Returns the pool and the database's name.
async fn open_database(url: Option<&str>) -> anyhow::Result<(PgPool, String)> {
    let Some(url) = url else {
        let target = Target::local(DEMO_DATABASE);
        let mut admin = database::connect_admin(target.options()).await?;
        let statement = format!(
            "drop database if exists {} with (force)",
            database::quote_identifier(DEMO_DATABASE)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .with_context(|| format!("drop database {DEMO_DATABASE}"))?;
        admin.close().await.ok();
        let pool = target.open(MAX_CONNECTIONS).await?;
        return Ok((pool, DEMO_DATABASE.to_string()));
    };

    let target = Target::new(Some(url), DEMO_DATABASE)?;
    let pool = target.open(MAX_CONNECTIONS).await?;
    let jobs: i64 = queue::job_counts(&pool, None)
        .await
        .context("count jobs")?
        .iter()
        .map(|c| c.count)
        .sum();
    if jobs > 0 {
        pool.close().await;
        bail!(
            "database {} holds {jobs} jobs; the demo runs only in a database \
             without jobs, so that its numbers are exact (without \
             --database-url it uses a database of its own, {DEMO_DATABASE})",
            target.database()
        );
    }
    Ok((pool, target.database()))
}

/// Builds and deploys the examples, feeds them the bundled data, waits for
/// every job to finish and returns the numbers. `pool` must reach a
/// migrated database without jobs.
pub async fn run_demo(pool: PgPool, options: &DemoOptions) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let data = Data::bundled()?;
    let progress = Progress {
        show: options.show_progress,
    };
    let components = build(&progress, options.verbose).await?;

    let sink = MailSink::start().await?;
    let token = demo_token(&pool).await?;
    let server = Server::start(pool.clone(), server_config())
        .await
        .context("start spool")?;
    let demo = Demo {
        client: Client::new(&server.url().context("the demo's server runs no API")?)
            .with_token(token),
        pool,
        sink,
        data,
        progress,
    };
    demo.progress.step(format!(
        "spool is running in this process: API {}, mail sink {}",
        demo.client.base(),
        demo.sink.url()
    ));

    let report = demo.run(&components, options.reminder_delay, started).await;
    server.stop().await;
    demo.sink.stop().await;
    report
}

/// An API token of the demo's tenant, created if need be.
async fn demo_token(pool: &PgPool) -> anyhow::Result<String> {
    let mut conn = pool.acquire().await?;
    let token = match queue::tenant_create(&mut conn, DEMO_TENANT, None).await {
        Ok((_, token)) => token,
        Err(queue::Error::TenantExists { .. }) => {
            queue::token_create(&mut *conn, DEMO_TENANT, "demo").await?
        }
        Err(e) => return Err(e).context("create the demo's tenant"),
    };
    Ok(token.token)
}

/// Spool settings for a short run: quick polls and retries.
fn server_config() -> ServerConfig {
    let retry = RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
    };
    ServerConfig {
        listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        worker: Some(WorkerConfig {
            concurrency: CONCURRENCY,
            poll_interval: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(5),
            retry,
            ..WorkerConfig::new()
        }),
        maintenance: MaintenanceConfig {
            scheduler_interval: Duration::from_millis(100),
            rescuer_interval: Duration::from_secs(1),
            retry,
            ..MaintenanceConfig::default()
        },
        runtime: RuntimeConfig {
            max_instances: 2 * CONCURRENCY as u32,
            ..RuntimeConfig::default()
        },
        admin_token: None,
    }
}

/// Builds the example components; returns the folder holding them.
async fn build(progress: &Progress, verbose: bool) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let spinner = if verbose {
        ProgressBar::hidden()
    } else {
        progress.spinner("building the examples (cargo build --target wasm32-wasip2)")?
    };
    let packages: Vec<&'static str> = EXAMPLES.iter().map(|(_, package, _)| *package).collect();
    let names = packages.join(", ");
    let dir = tokio::task::spawn_blocking(move || {
        guests::build(&guests::workspace_root(), &packages, verbose)
    })
    .await
    .context("build the examples")?
    .context("build the examples")?;
    spinner.finish_and_clear();
    progress.step(format!(
        "built {names} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(dir)
}

/// A run in progress: Spool's API, its database and the mail sink.
struct Demo {
    client: Client,
    pool: PgPool,
    sink: MailSink,
    data: Data,
    progress: Progress,
}

impl Demo {
    async fn run(
        &self,
        components: &Path,
        reminder_delay: Duration,
        started: Instant,
    ) -> anyhow::Result<DemoReport> {
        self.deploy(components).await?;
        let signups_created = self.feed(reminder_delay).await?;
        let counts = self.settle(reminder_delay + SETTLE_TIMEOUT).await?;

        Ok(DemoReport {
            counts,
            signups: self.data.signups.len(),
            signup_addresses: self.data.distinct_signup_addresses(),
            signups_collapsed: self.data.signups.len() - signups_created,
            activity: self.data.activity.len(),
            carts: self.data.carts.len(),
            orders: self.data.orders.len(),
            inbox: self.sink.inbox(),
            discarded: self.discarded().await?,
            sample: self.sample().await?,
            elapsed: started.elapsed(),
        })
    }

    /// Points the tenant's `mail_url` at the sink and deploys the
    /// examples; those that send email may reach the sink and nothing else.
    async fn deploy(&self, components: &Path) -> anyhow::Result<()> {
        self.client
            .config_set("mail_url", &self.sink.url(), false)
            .await
            .context("set mail_url")?;
        for (kind, package, sends_email) in EXAMPLES {
            let path = guests::component_path(components, package);
            let bytes = tokio::fs::read(&path)
                .await
                .with_context(|| format!("read {}", path.display()))?;
            let options = DeployOptions {
                allowed_hosts: if sends_email {
                    vec![self.sink.host()]
                } else {
                    Vec::new()
                },
                ..DeployOptions::default()
            };
            self.client
                .module_deploy(kind, bytes, &options)
                .await
                .with_context(|| format!("deploy {kind}"))?;
        }
        let kinds: Vec<&str> = EXAMPLES.iter().map(|(kind, _, _)| *kind).collect();
        self.progress.step(format!(
            "deployed {}; mail_url is the sink",
            kinds.join(", ")
        ));
        Ok(())
    }

    /// Enqueues everything, cancelling the reminders of ordered carts.
    /// Returns how many sign-ups created a job.
    async fn feed(&self, reminder_delay: Duration) -> anyhow::Result<usize> {
        let data = &self.data;
        let bar = self.progress.bar("sign-ups")?;
        let signups = feed::enqueue_all(&self.client, feed::signups(data), &bar).await?;
        bar.finish_and_clear();
        self.progress.step(format!(
            "fed {} sign-ups: {signups} welcome emails enqueued, {} returned the job of an \
             earlier sign-up with the same address",
            data.signups.len(),
            data.signups.len() - signups
        ));

        let bar = self.progress.bar("activity")?;
        let updates = feed::enqueue_all(&self.client, feed::activity(data), &bar).await?;
        bar.finish_and_clear();
        self.progress.step(format!(
            "fed {} likes, comments and shares: {updates} statistics updates enqueued",
            data.activity.len()
        ));

        let bar = self.progress.bar("carts")?;
        let reminders = feed::carts(&self.client, data, reminder_delay, &bar).await?;
        bar.finish_and_clear();
        self.progress.step(format!(
            "fed {} abandoned carts: {reminders} reminders due in {}; {} of the carts were \
             then ordered, and their reminders cancelled",
            data.carts.len(),
            humantime::format_duration(reminder_delay),
            data.orders.len()
        ));
        Ok(signups)
    }

    /// Waits until every job has finished; returns the final counts.
    async fn settle(&self, timeout: Duration) -> anyhow::Result<Vec<JobCount>> {
        let started = Instant::now();
        let bar = self.progress.bar("jobs finished")?;
        loop {
            let counts = queue::job_counts(&self.pool, Some(DEMO_TENANT))
                .await
                .context("count jobs")?;
            let total: i64 = counts.iter().map(|c| c.count).sum();
            let unfinished = unfinished(&counts);
            let finished = total - unfinished.iter().map(|(_, n)| n).sum::<i64>();
            let waiting = unfinished
                .iter()
                .map(|(state, n)| format!("{n} {state}"))
                .collect::<Vec<_>>()
                .join(", ");
            bar.set_length(u64::try_from(total).unwrap_or(0));
            bar.set_position(u64::try_from(finished).unwrap_or(0));
            bar.set_message(waiting.clone());

            if unfinished.is_empty() {
                bar.finish_and_clear();
                self.progress.step(format!(
                    "all {total} jobs finished {:.1}s after the last enqueue",
                    started.elapsed().as_secs_f64()
                ));
                return Ok(counts);
            }
            if started.elapsed() > timeout {
                bar.abandon();
                bail!(
                    "jobs did not finish within {}: {waiting}",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Every discarded job with the error of its last attempt, read
    /// through the API as an operator would.
    async fn discarded(&self) -> anyhow::Result<Vec<Discarded>> {
        let mut discarded = Vec::new();
        let mut options = ListOptions {
            state: Some(JobState::Discarded),
            limit: Some(500),
            ..ListOptions::default()
        };
        loop {
            let page = self
                .client
                .job_list(&options)
                .await
                .context("list discarded jobs")?;
            discarded.extend(page.jobs.into_iter().map(|job| {
                Discarded {
                    reason: job
                        .errors
                        .last()
                        .map(|e| e.error.clone())
                        .unwrap_or_else(|| "no error recorded".to_string()),
                    id: job.id,
                }
            }));
            match page.next_cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => break,
            }
        }
        discarded.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(discarded)
    }

    /// The newest statistics update of the most active user.
    async fn sample(&self) -> anyhow::Result<Option<JobView>> {
        let Some((user_id, events)) = self.data.most_active_user() else {
            return Ok(None);
        };
        let id = feed::stats_job_id(user_id, events);
        let job = self
            .client
            .job_get(&id)
            .await
            .with_context(|| format!("get job {id}"))?;
        Ok(Some(job))
    }
}

/// The unfinished states that have jobs, with how many.
fn unfinished(counts: &[JobCount]) -> Vec<(JobState, i64)> {
    JobState::ALL
        .into_iter()
        .filter(|state| !state.is_finished())
        .map(|state| {
            let n = counts
                .iter()
                .filter(|c| c.state() == state)
                .map(|c| c.count)
                .sum();
            (state, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Step lines on stdout and progress bars on stderr, or nothing.
pub(super) struct Progress {
    pub show: bool,
}

impl Progress {
    pub fn step(&self, line: impl Display) {
        if self.show {
            println!("{line}");
        }
    }

    /// A bar counting up to a length set later; drawn only when stderr is
    /// a terminal.
    pub fn bar(&self, label: &str) -> anyhow::Result<ProgressBar> {
        if !self.show {
            return Ok(ProgressBar::hidden());
        }
        let style = ProgressStyle::with_template("{prefix:>14} [{bar:40}] {pos:>4}/{len:4} {msg}")
            .context("progress bar template")?
            .progress_chars("=> ");
        Ok(ProgressBar::new(0)
            .with_style(style)
            .with_prefix(label.to_string()))
    }

    fn spinner(&self, message: &str) -> anyhow::Result<ProgressBar> {
        if !self.show {
            return Ok(ProgressBar::hidden());
        }
        let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .context("spinner template")?;
        let spinner = ProgressBar::new_spinner()
            .with_style(style)
            .with_message(message.to_string());
        spinner.enable_steady_tick(Duration::from_millis(100));
        Ok(spinner)
    }
}
