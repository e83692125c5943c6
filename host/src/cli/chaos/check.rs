//! The invariants, checked on what a run collected: the jobs as the API
//! shows them, the ledger's entries and the faults' records.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::Table;

use super::ledger::Entry;
use crate::api::types::JobView;
use crate::queue::{JobState, RetryPolicy};

/// What a job was built to do, when nothing interferes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Completes, perhaps after failing some attempts on purpose.
    Complete,
    /// Fails for good on any attempt.
    Discard,
}

/// A database restart and how the workers came back.
#[derive(Debug, Clone)]
pub struct Restart {
    pub at: DateTime<Utc>,
    /// Workers alive across the restart, and whether each recorded an
    /// outcome after it (before it was retired, if it was).
    pub workers: Vec<(usize, bool)>,
}

/// A worker asked to stop with SIGTERM.
#[derive(Debug, Clone)]
pub struct Drain {
    pub worker: usize,
    pub took: Duration,
    pub clean_exit: bool,
}

/// Everything a run collected.
#[derive(Debug, Clone)]
pub struct Collected {
    pub jobs: Vec<JobView>,
    pub expected: BTreeMap<String, Expect>,
    pub ledger: Vec<Entry>,
    /// Jobs a cancel or retry request was sent for.
    pub raced: HashSet<String>,
    /// Jobs a retry request was sent for.
    pub retried: HashSet<String>,
    /// Latency probes: id and when the API accepted them.
    pub probes: Vec<(String, DateTime<Utc>)>,
    /// When the first fault was injected.
    pub first_fault: Option<DateTime<Utc>>,
    pub restarts: Vec<Restart>,
    pub drains: Vec<Drain>,
    /// Backends ended by `pg_terminate_backend`, per round, and whether a
    /// LISTEN connection was among them.
    pub terminations: Vec<(usize, bool)>,
    pub lease: Duration,
    pub drain_timeout: Duration,
    pub retry: RetryPolicy,
    /// Whether the run reached quiescence before its deadline.
    pub quiescent: bool,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The checks of a run, with its figures.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub figures: Vec<(String, String)>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }

    /// The checks as a Markdown table.
    pub fn table(&self) -> Table {
        let mut table = Table::new();
        table
            .load_style(comfy_table::presets::ASCII_MARKDOWN)
            .set_header(["invariant", "holds", "detail"]);
        for check in &self.checks {
            let holds = if check.ok { "yes" } else { "NO" };
            table.add_row(vec![check.name, holds, check.detail.as_str()]);
        }
        table
    }

    pub fn figures_table(&self) -> Table {
        let mut table = Table::new();
        table
            .load_style(comfy_table::presets::ASCII_MARKDOWN)
            .set_header(["figure", "value"]);
        for (name, value) in &self.figures {
            table.add_row(vec![name.as_str(), value.as_str()]);
        }
        table
    }
}

/// One run of the guest, as the ledger saw it.
#[derive(Debug, Clone)]
struct Run {
    attempt: u32,
    start: DateTime<Utc>,
    end: Option<(DateTime<Utc>, String)>,
}

impl Run {
    /// The last moment the run is known to have been alive.
    fn last_seen(&self) -> DateTime<Utc> {
        self.end.as_ref().map_or(self.start, |(at, _)| *at)
    }
}

/// The runs of each job, in order of start.
fn runs(ledger: &[Entry]) -> BTreeMap<&str, Vec<Run>> {
    let mut runs: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for entry in ledger {
        let job = runs.entry(entry.job.as_str()).or_default();
        match &entry.outcome {
            None => job.push(Run {
                attempt: entry.attempt,
                start: entry.at,
                end: None,
            }),
            Some(outcome) => {
                if let Some(run) = job
                    .iter_mut()
                    .rev()
                    .find(|r| r.attempt == entry.attempt && r.end.is_none())
                {
                    run.end = Some((entry.at, outcome.clone()));
                }
            }
        }
    }
    for job in runs.values_mut() {
        job.sort_by_key(|r| r.start);
    }
    runs
}

/// Lists at most a few examples after a count.
fn examples(bad: &[String]) -> String {
    let shown: Vec<&str> = bad.iter().take(5).map(String::as_str).collect();
    let more = if bad.len() > shown.len() { ", ..." } else { "" };
    format!("{} bad: {}{more}", bad.len(), shown.join(", "))
}

fn check(name: &'static str, bad: Vec<String>, good: String) -> Check {
    Check {
        name,
        ok: bad.is_empty(),
        detail: if bad.is_empty() { good } else { examples(&bad) },
    }
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Checks every invariant.
pub fn verdict(c: &Collected) -> Verdict {
    let runs = runs(&c.ledger);
    let jobs: BTreeMap<&str, &JobView> = c.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let no_runs = Vec::new();
    let mut checks = Vec::new();

    // Every job ended, in one terminal state, and nothing ran after.
    let mut bad = Vec::new();
    for id in c.expected.keys() {
        match jobs.get(id.as_str()) {
            None => bad.push(format!("{id} lost")),
            Some(job) if !job.state.is_finished() => bad.push(format!("{id} {}", job.state)),
            Some(_) => {}
        }
    }
    bad.extend(
        c.jobs
            .iter()
            .filter(|j| !c.expected.contains_key(&j.id))
            .map(|j| format!("{} was never enqueued", j.id)),
    );
    checks.push(check(
        "every job reached a terminal state; none lost",
        bad,
        format!(
            "{} enqueued, {} terminal{}",
            c.expected.len(),
            c.jobs.iter().filter(|j| j.state.is_finished()).count(),
            if c.quiescent {
                ", quiescent before the deadline"
            } else {
                ""
            }
        ),
    ));

    let mut bad = Vec::new();
    for job in &c.jobs {
        let Some(finalized) = job.finalized_at else {
            continue;
        };
        if let Some(late) = runs
            .get(job.id.as_str())
            .unwrap_or(&no_runs)
            .iter()
            .find(|r| r.start > finalized)
        {
            bad.push(format!(
                "{} attempt {} started {:.3}s after the job ended {}",
                job.id,
                late.attempt,
                seconds(late.start - finalized),
                job.state
            ));
        }
    }
    checks.push(check(
        "no attempt started after its job ended",
        bad,
        "the terminal state is the last".into(),
    ));

    // Overlap of the runs of one job.
    let lease = chrono::TimeDelta::from_std(c.lease).unwrap_or_default();
    let mut worst = chrono::TimeDelta::zero();
    let mut overlapping = 0;
    let mut bad = Vec::new();
    for (id, job_runs) in &runs {
        for (i, earlier) in job_runs.iter().enumerate() {
            for later in &job_runs[i + 1..] {
                let overlap = earlier.last_seen() - later.start;
                if overlap > chrono::TimeDelta::zero() {
                    overlapping += 1;
                    worst = worst.max(overlap);
                    if overlap > lease {
                        bad.push(format!(
                            "{id}: attempt {} ran {:.3}s into attempt {}",
                            earlier.attempt,
                            seconds(overlap),
                            later.attempt
                        ));
                    }
                }
            }
        }
    }
    checks.push(check(
        "no two attempts overlapped beyond one lease",
        bad,
        format!(
            "{overlapping} overlapping pairs, longest {:.3}s (lease {:.1}s)",
            seconds(worst),
            c.lease.as_secs_f64()
        ),
    ));

    // The stored result is the job's latest attempt's.
    let completed: Vec<&JobView> = c
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Completed)
        .collect();
    let bad = completed
        .iter()
        .filter(|j| {
            let stored = j.result.as_ref().and_then(|r| r["attempt"].as_i64());
            stored != Some(i64::from(j.attempt))
        })
        .map(|j| {
            format!(
                "{} result of attempt {:?}, job at {}",
                j.id, j.result, j.attempt
            )
        })
        .collect();
    checks.push(check(
        "late writes changed nothing (result's attempt = job's)",
        bad,
        format!("{} completed jobs", completed.len()),
    ));

    let bad = completed
        .iter()
        .filter(|j| {
            !runs.get(j.id.as_str()).unwrap_or(&no_runs).iter().any(|r| {
                i64::from(r.attempt) == i64::from(j.attempt)
                    && r.end.as_ref().is_some_and(|(_, o)| o == "completed")
            })
        })
        .map(|j| format!("{} attempt {}", j.id, j.attempt))
        .collect();
    checks.push(check(
        "completed jobs ran to completion at least once",
        bad,
        "each completed attempt reported its end".into(),
    ));

    // Attempt numbers: the ledger never runs ahead of the database, and
    // a completed job's history holds each earlier attempt once.
    let mut bad = Vec::new();
    let mut repeated_runs = 0;
    for job in &c.jobs {
        let job_runs = runs.get(job.id.as_str()).unwrap_or(&no_runs);
        let highest = job_runs.iter().map(|r| i64::from(r.attempt)).max();
        if highest.is_some_and(|h| h > i64::from(job.attempt)) {
            bad.push(format!(
                "{}: ledger saw attempt {highest:?}, job at {}",
                job.id, job.attempt
            ));
        }
        let recorded: Vec<i32> = job.errors.iter().map(|e| e.attempt).collect();
        let distinct: HashSet<i32> = recorded.iter().copied().collect();
        if distinct.len() != recorded.len() {
            bad.push(format!(
                "{}: an attempt recorded twice {recorded:?}",
                job.id
            ));
        }
        if job.state == JobState::Completed {
            if highest != Some(i64::from(job.attempt)) {
                bad.push(format!(
                    "{}: completed attempt {} but the ledger's last is {highest:?}",
                    job.id, job.attempt
                ));
            }
            if distinct != (1..job.attempt).collect() {
                bad.push(format!(
                    "{}: completed attempt {} with failures {recorded:?}",
                    job.id, job.attempt
                ));
            }
        }
        repeated_runs += job_runs.len().saturating_sub(1);
    }
    checks.push(check(
        "attempt counts match the ledger",
        bad,
        format!(
            "{} runs reported, {repeated_runs} beyond the first of their job",
            c.ledger.iter().filter(|e| e.outcome.is_none()).count()
        ),
    ));

    // Backoff: attempt k+1 starts no sooner than k's failure plus the
    // jitter-free delay less the jitter.
    let mut bad = Vec::new();
    let mut pairs = 0;
    let mut lowest = f64::INFINITY;
    for job in c.jobs.iter().filter(|j| !c.retried.contains(&j.id)) {
        let job_runs = runs.get(job.id.as_str()).unwrap_or(&no_runs);
        for error in &job.errors {
            let Some(next) = job_runs
                .iter()
                .filter(|r| i64::from(r.attempt) == i64::from(error.attempt) + 1)
                .map(|r| r.start)
                .min()
            else {
                continue;
            };
            let nominal = c.retry.nominal_delay(error.attempt.max(1).unsigned_abs());
            let waited = seconds(next - error.at);
            let ratio = waited / nominal.as_secs_f64();
            pairs += 1;
            lowest = lowest.min(ratio);
            if ratio < 0.8 - 0.01 {
                bad.push(format!(
                    "{} attempt {} started {waited:.3}s after attempt {} failed (backoff {:.1}s)",
                    job.id,
                    error.attempt + 1,
                    error.attempt,
                    nominal.as_secs_f64()
                ));
            }
        }
    }
    checks.push(check(
        "retries followed the backoff",
        bad,
        if pairs == 0 {
            "no retries to check".into()
        } else {
            format!(
                "{pairs} retries, earliest at {lowest:.2}x the nominal delay (jitter allows 0.8x)"
            )
        },
    ));

    // Jobs nobody interfered with ended as they were built to.
    let bad = c
        .expected
        .iter()
        .filter(|(id, _)| !c.raced.contains(*id))
        .filter_map(|(id, expect)| {
            let state = jobs.get(id.as_str())?.state;
            let wanted = match expect {
                Expect::Complete => JobState::Completed,
                Expect::Discard => JobState::Discarded,
            };
            (state != wanted).then(|| format!("{id} {state}, built to end {wanted}"))
        })
        .collect();
    checks.push(check(
        "jobs ended as built unless cancelled or retried",
        bad,
        format!("{} jobs raced by cancel or retry requests", c.raced.len()),
    ));

    // Recovery from database restarts.
    let latencies: Vec<(DateTime<Utc>, f64)> = c
        .probes
        .iter()
        .filter_map(|(id, enqueued)| {
            let start = runs.get(id.as_str())?.first()?.start;
            Some((*enqueued, seconds(start - *enqueued)))
        })
        .collect();
    let mut before: Vec<f64> = latencies
        .iter()
        .filter(|(at, _)| c.first_fault.is_none_or(|f| *at < f))
        .map(|(_, l)| *l)
        .collect();
    before.sort_by(f64::total_cmp);
    let baseline = before.get(before.len() / 2).copied().unwrap_or(0.0);
    let normal = (3.0 * baseline).max(1.0);
    let mut bad = Vec::new();
    let mut recoveries = Vec::new();
    for (n, restart) in c.restarts.iter().enumerate() {
        let recovered = latencies
            .iter()
            .filter(|(at, l)| *at > restart.at && *l <= normal)
            .map(|(at, _)| seconds(*at - restart.at))
            .reduce(f64::min);
        match recovered {
            Some(s) if s <= 10.0 => recoveries.push(format!("{s:.1}s")),
            Some(s) => bad.push(format!("restart {}: normal latency after {s:.1}s", n + 1)),
            None => bad.push(format!("restart {}: latency never normal again", n + 1)),
        }
        for (worker, ok) in &restart.workers {
            if !ok {
                bad.push(format!(
                    "restart {}: worker {worker} recorded nothing after it",
                    n + 1
                ));
            }
        }
    }
    checks.push(check(
        "workers recovered from each database restart",
        bad,
        format!(
            "{} restarts; latency back under {normal:.2}s (p50 before faults {baseline:.3}s) \
             after {}",
            c.restarts.len(),
            if recoveries.is_empty() {
                "-".into()
            } else {
                recoveries.join(", ")
            }
        ),
    ));

    let bad = c
        .drains
        .iter()
        .filter(|d| !d.clean_exit || d.took > c.drain_timeout + Duration::from_secs(5))
        .map(|d| {
            format!(
                "worker {} took {:.1}s, clean exit {}",
                d.worker,
                d.took.as_secs_f64(),
                d.clean_exit
            )
        })
        .collect();
    checks.push(check(
        "SIGTERM drained within the drain timeout",
        bad,
        c.drains
            .iter()
            .map(|d| format!("worker {} in {:.1}s", d.worker, d.took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
    ));

    let bad = c
        .terminations
        .iter()
        .enumerate()
        .filter(|(_, (_, listen))| !listen)
        .map(|(n, (count, _))| format!("round {}: {count} ended, no LISTEN among them", n + 1))
        .collect();
    checks.push(check(
        "killed connections included the LISTEN one",
        bad,
        c.terminations
            .iter()
            .map(|(count, _)| format!("{count} backends"))
            .collect::<Vec<_>>()
            .join(", "),
    ));

    let figures = [
        ("jobs", c.expected.len().to_string()),
        ("completed", completed.len().to_string()),
        (
            "runs per job",
            format!(
                "{:.3}",
                c.ledger.iter().filter(|e| e.outcome.is_none()).count() as f64
                    / c.expected.len().max(1) as f64
            ),
        ),
        ("latency p50 before faults", format!("{baseline:.3}s")),
    ]
    .map(|(name, value)| (name.to_string(), value))
    .to_vec();
    Verdict { checks, figures }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: &str, attempt: u32, outcome: Option<&str>, ms: i64) -> Entry {
        Entry {
            job: job.into(),
            attempt,
            outcome: outcome.map(str::to_string),
            at: DateTime::from_timestamp_millis(ms).unwrap(),
        }
    }

    #[test]
    fn runs_pair_each_end_with_its_start() {
        let ledger = [
            entry("a", 1, None, 0),
            entry("a", 2, None, 5_000),
            entry("a", 1, Some("completed"), 9_000),
            entry("a", 2, Some("completed"), 6_000),
        ];
        let runs = runs(&ledger);
        let a = &runs["a"];
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0].last_seen(),
            DateTime::from_timestamp_millis(9_000).unwrap()
        );
        assert_eq!(
            a[1].last_seen(),
            DateTime::from_timestamp_millis(6_000).unwrap()
        );
    }
}
