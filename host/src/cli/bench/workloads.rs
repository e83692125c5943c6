//! The workloads of `spool bench`, one method each.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    Bench, CLIENTS, KIND, LONE_TENANT, Measured, POLL, TENANT, build_noop, count, drained,
    enqueue_direct, noop_request, now_ms, percentile, start, tenant_client,
};
use crate::api::types::EnqueueRequest;
use crate::queue::JobState;
use crate::runtime::{Attempt, LeaseClock, Limits, Outcome, Runtime, RuntimeConfig};

impl Bench {
    pub(super) async fn bulk(&self, pool: &PgPool) -> anyhow::Result<Measured> {
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

    pub(super) async fn single(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.single;
        let server = start(pool, false, 1).await?;
        let client = tenant_client(pool, &server, TENANT).await?;
        let (http_one, http_many) = one_then_many(n, move |i| {
            let client = client.clone();
            async move {
                client.job_enqueue(&noop_request(json!({ "n": i }))).await?;
                Ok(())
            }
        })
        .await?;
        server.stop().await;

        // The same through `spool.enqueue()`, as an application that talks
        // to PostgreSQL would enqueue, one statement per job.
        let sql_pool = pool.clone();
        let (sql_one, sql_many) = one_then_many(n, move |i| {
            let pool = sql_pool.clone();
            async move {
                sqlx::query("select spool.enqueue($1, $2, $3)")
                    .bind(TENANT)
                    .bind(KIND)
                    .bind(json!({ "n": 2 * n + i }))
                    .execute(&pool)
                    .await?;
                Ok(())
            }
        })
        .await?;

        ensure!(count(pool, None).await? == 4 * n as i64, "B lost jobs");
        let rate = |seconds: f64| n as f64 / seconds;
        Ok(Measured {
            record: json!({
                "jobs": n,
                "seconds": http_one,
                "method": "POST /v1/jobs, one client",
                "clients_16_seconds": http_many,
                "sql_seconds": sql_one,
                "sql_clients_16_seconds": sql_many,
            }),
            figures: vec![
                ("B single enqueue, 1 client, jobs/s".into(), rate(http_one)),
                (
                    format!("B single enqueue, {CLIENTS} clients, jobs/s"),
                    rate(http_many),
                ),
                ("B through SQL, 1 client, jobs/s".into(), rate(sql_one)),
                (
                    format!("B through SQL, {CLIENTS} clients, jobs/s"),
                    rate(sql_many),
                ),
            ],
        })
    }

    pub(super) async fn work(&self, pool: &PgPool) -> anyhow::Result<Measured> {
        let n = self.sizes.work as i64;
        let server = start(pool, true, self.sizes.concurrency).await?;
        while !drained(pool).await? {
            tokio::time::sleep(POLL).await;
        }
        server.stop().await;
        let completed = count(pool, Some(JobState::Completed)).await?;
        ensure!(completed == n, "C: {completed} of {n} jobs completed");
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

    pub(super) async fn latency(&self, pool: &PgPool) -> anyhow::Result<Measured> {
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

    pub(super) async fn fairness(&self, pool: &PgPool) -> anyhow::Result<Measured> {
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
        while !drained(pool).await? {
            tokio::time::sleep(POLL).await;
        }
        server.stop().await;
        let (total, completed) = (
            (self.sizes.work + LONE_JOBS) as i64,
            count(pool, Some(JobState::Completed)).await?,
        );
        ensure!(
            completed == total,
            "F: {completed} of {total} jobs completed"
        );

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

    pub(super) async fn instantiate(&self, pool: &PgPool) -> anyhow::Result<Measured> {
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
                worker_id: "bench",
                claim: 0,
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

/// Times `n` calls of `enqueue` made one after another, then `n` more
/// (numbered from `n`) shared among [`CLIENTS`] concurrent callers; returns
/// both in seconds.
async fn one_then_many<F, Fut>(n: usize, enqueue: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    for i in 0..n {
        enqueue(i).await?;
    }
    let one = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let enqueue = enqueue.clone();
        tasks.spawn(async move {
            for i in (c..n).step_by(CLIENTS) {
                enqueue(n + i).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((one, started.elapsed().as_secs_f64()))
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
