//! Real `spool worker` processes for tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;

use super::{TestDb, WAIT};

/// A `spool worker` process, killed when dropped so that a failing test
/// leaves nothing running.
pub struct WorkerProcess {
    child: Child,
    /// What the worker writes into `jobs.worker_id`.
    pub worker_id: String,
    /// Its log, one JSON event per line.
    log: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    /// Starts a worker on `db` and waits until its claim loop runs.
    pub async fn start(db: &TestDb, extra_args: &[&str]) -> Self {
        Self::spawn(db, extra_args, None).await
    }

    /// Like [`start`](Self::start), with the process's address space
    /// limited to `kib` KiB (`ulimit -v`).
    pub async fn start_with_address_space(db: &TestDb, extra_args: &[&str], kib: u64) -> Self {
        Self::spawn(db, extra_args, Some(kib)).await
    }

    async fn spawn(db: &TestDb, extra_args: &[&str], address_space_kib: Option<u64>) -> Self {
        let spool = env!("CARGO_BIN_EXE_spool");
        let mut command = match address_space_kib {
            None => Command::new(spool),
            Some(kib) => {
                let mut shell = Command::new("sh");
                shell.args([
                    "-c",
                    &format!("ulimit -v {kib} && exec \"$0\" \"$@\""),
                    spool,
                ]);
                shell
            }
        };
        let mut child = command
            .arg("worker")
            .args(["--database-url", &db.url()])
            .args(["--concurrency", "4", "--poll-interval", "100ms"])
            .args(["--max-connections", "8", "--log-format", "json"])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spool worker");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));

        // Read the log until the worker says it started, and keep reading
        // so that the process never blocks on a full pipe.
        let (started, ready) = oneshot::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut started = Some(started);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let event: Value = serde_json::from_str(&line).unwrap_or_default();
                if event["message"] == "worker started"
                    && let Some(id) = event["worker_id"].as_str()
                    && let Some(started) = started.take()
                {
                    let _ = started.send(Ok(id.to_string()));
                }
                kept.lock().unwrap().push(line);
            }
            if let Some(started) = started {
                let _ = started.send(Err(kept.lock().unwrap().clone()));
            }
        });
        let worker_id = match tokio::time::timeout(WAIT, ready).await {
            Ok(Ok(Ok(worker_id))) => worker_id,
            Ok(Ok(Err(log))) => panic!("spool worker exited before starting:\n{}", log.join("\n")),
            other => panic!("spool worker did not start: {other:?}"),
        };
        Self {
            child,
            worker_id,
            log,
        }
    }

    /// The log lines written so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Kills the process with SIGKILL: no drain, no hand-back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
