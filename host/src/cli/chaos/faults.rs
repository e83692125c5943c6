//! The faults `spool chaos` injects, on a schedule repeated every cycle.

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use nix::sys::signal::Signal;
use serde_json::json;

use super::check::{Drain, Expect};
use super::{CYCLE, Chaos};

/// The faults of one cycle, at fractions of it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fault {
    Kill,
    Stop,
    SlowBurst,
    TerminateConnections,
    RestartDatabase,
    Drain,
}

const SCHEDULE: [(f64, Fault); 8] = [
    (0.08, Fault::Kill),
    (0.18, Fault::Stop),
    (0.30, Fault::SlowBurst),
    (0.40, Fault::TerminateConnections),
    (0.52, Fault::RestartDatabase),
    (0.64, Fault::Drain),
    (0.76, Fault::Kill),
    (0.88, Fault::RestartDatabase),
];

impl Chaos<'_> {
    /// Runs the fault schedule, cycle after cycle, until the run's time
    /// is up.
    pub(super) async fn inject_faults(&self) -> anyhow::Result<()> {
        let cycle = self.options.duration.min(CYCLE);
        let cycles = (self.options.duration.as_secs_f64() / cycle.as_secs_f64()).floor() as u32;
        let started = Instant::now();
        for n in 0..cycles.max(1) {
            for (at, fault) in SCHEDULE {
                let due = cycle * n + cycle.mul_f64(at);
                tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
                self.inject(fault).await?;
            }
        }
        Ok(())
    }

    async fn inject(&self, fault: Fault) -> anyhow::Result<()> {
        let o = self.options;
        match fault {
            Fault::Kill => {
                let Some(mut worker) = self.take_worker().await else {
                    return Ok(());
                };
                worker.kill().await?;
                let new = self.start_worker().await?;
                self.fault(format!(
                    "SIGKILL worker {}; started worker {new}",
                    worker.number
                ));
                self.retire(worker);
            }
            Fault::Stop => {
                let workers = self.workers.lock().await;
                let Some(worker) = workers.first() else {
                    return Ok(());
                };
                let hold = o.lease * 3 + o.rescue_interval;
                worker.signal(Signal::SIGSTOP)?;
                self.fault(format!(
                    "SIGSTOP worker {} for {:.1}s",
                    worker.number,
                    hold.as_secs_f64()
                ));
                tokio::time::sleep(hold).await;
                worker.signal(Signal::SIGCONT)?;
            }
            Fault::SlowBurst => {
                let slots = o.workers * o.concurrency;
                let sleep_ms = o.lease.as_millis() as u64 * 2;
                let base = self.record().expected.len();
                for n in 0..slots {
                    let params = json!({"ledger": self.ledger.url(), "sleep_ms": sleep_ms});
                    let id = format!("slow-{:06}", base + n);
                    self.enqueue(&id, params, 0, Expect::Complete).await?;
                }
                self.fault(format!(
                    "{slots} jobs of {:.1}s take every slot",
                    sleep_ms as f64 / 1000.0
                ));
            }
            Fault::TerminateConnections => {
                let (count, listen) = self.terminate_connections().await?;
                self.record().terminations.push((count, listen));
                self.fault(format!(
                    "pg_terminate_backend on {count} connections{}",
                    if listen { ", LISTEN among them" } else { "" }
                ));
            }
            Fault::RestartDatabase => {
                let alive: Vec<usize> =
                    self.workers.lock().await.iter().map(|w| w.number).collect();
                self.postgres.restart_immediate().await?;
                let at = Utc::now();
                self.record().restarts.push((at, alive));
                self.fault("pg_ctl restart -m immediate".into());
            }
            Fault::Drain => {
                let Some(mut worker) = self.take_worker().await else {
                    return Ok(());
                };
                let started = Instant::now();
                worker.signal(Signal::SIGTERM)?;
                let clean_exit = worker.wait().await?;
                let took = started.elapsed();
                let new = self.start_worker().await?;
                self.fault(format!(
                    "SIGTERM worker {}: drained in {:.1}s; started worker {new}",
                    worker.number,
                    took.as_secs_f64()
                ));
                self.record().drains.push(Drain {
                    worker: worker.number,
                    took,
                    clean_exit,
                });
                self.retire(worker);
            }
        }
        Ok(())
    }

    /// Ends every other connection to the database; returns how many, and
    /// whether a LISTEN connection was among them.
    async fn terminate_connections(&self) -> anyhow::Result<(usize, bool)> {
        let ended = sqlx::query!(
            r#"
            select pg_terminate_backend(pid) as "ended!",
                   query ilike 'listen%' as "listen!"
            from pg_stat_activity
            where pid <> pg_backend_pid() and datname = current_database()
            "#
        )
        .fetch_all(&self.pool)
        .await
        .context("terminate connections")?;
        let count = ended.iter().filter(|r| r.ended).count();
        let listen = ended.iter().any(|r| r.ended && r.listen);
        Ok((count, listen))
    }
}
