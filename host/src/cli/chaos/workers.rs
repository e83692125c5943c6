//! `spool worker` processes under the harness's control: started with
//! short leases, signalled, and replaced.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

use super::ChaosOptions;

/// How long a worker may take to log that it started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One `spool worker` process; killed when dropped.
pub struct WorkerProcess {
    /// A number for the harness's messages: worker 3.
    pub number: usize,
    /// What the worker writes into `jobs.worker_id`.
    pub worker_id: String,
    child: Child,
    pid: Pid,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts worker `number` on `database_url`, its log (JSON lines) in
    /// `dir`, and waits until it runs.
    pub async fn start(
        options: &ChaosOptions,
        database_url: &str,
        dir: &Path,
        number: usize,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("worker-{number}.log"));
        let file = std::fs::File::create(&log).context("create a worker log")?;
        let secs = |d: Duration| format!("{}ms", d.as_millis());
        let child = Command::new(&options.spool)
            .arg("worker")
            .args(["--database-url", database_url])
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--max-connections", &options.max_connections.to_string()])
            .args(["--lease", &secs(options.lease)])
            .args(["--rescue-interval", &secs(options.rescue_interval)])
            .args(["--poll-interval", "200ms"])
            .args(["--drain-timeout", &secs(options.drain_timeout)])
            .args(["--retry-base", &secs(options.retry.base)])
            .args(["--retry-cap", &secs(options.retry.cap)])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", options.spool.display()))?;
        let pid = Pid::from_raw(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .context("a started worker has a pid")?,
        );
        let mut worker = Self {
            number,
            worker_id: String::new(),
            child,
            pid,
            log,
        };
        worker.worker_id = worker.wait_until_started().await?;
        Ok(worker)
    }

    async fn wait_until_started(&mut self) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(id) = self.events().iter().find_map(|event| {
                (event["message"] == "worker started")
                    .then(|| event["worker_id"].as_str().map(str::to_string))
                    .flatten()
            }) {
                return Ok(id);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "worker {} exited before starting ({status}); its log is {}",
                    self.number,
                    self.log.display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "worker {} did not start within {START_TIMEOUT:?}",
                    self.number
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The worker's log events so far.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// When the worker last recorded an attempt's outcome.
    pub fn last_outcome_at(&self) -> Option<DateTime<Utc>> {
        self.events()
            .iter()
            .filter(|event| event["outcome"].is_string())
            .filter_map(|event| event["timestamp"].as_str()?.parse().ok())
            .max()
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        kill(self.pid, signal).with_context(|| format!("send {signal} to worker {}", self.number))
    }

    /// Waits for the process to exit; returns whether it exited cleanly.
    pub async fn wait(&mut self) -> anyhow::Result<bool> {
        Ok(self.child.wait().await?.success())
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill a worker")
    }
}
