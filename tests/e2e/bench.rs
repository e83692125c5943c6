//! `spool bench`, at a tiny size: its driver interface (`prepare`, `run`,
//! one `RESULT {json}` line) and its table.

use serde_json::Value;

use crate::support::TestDb;

/// Runs `spool bench <args>` on `db` with small workloads.
async fn bench(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    bench_at(&db.url(), args).await
}

/// Runs `spool bench <args>` on the database at `url`.
async fn bench_at(url: &str, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("bench")
        .args(args)
        .env("DATABASE_URL", url)
        .envs([
            ("N_BULK", "300"),
            ("N_SINGLE", "40"),
            ("N_WORK", "300"),
            ("N_LAT", "10"),
            ("LAT_GAP_MS", "5"),
        ])
        .output()
        .await
        .expect("spool bench runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn result(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in {stdout:?}"));
    serde_json::from_str(line).expect("RESULT carries JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_steps_print_one_result_per_workload() {
    let db = TestDb::named("spool_bench_test").await;

    let mut results = Vec::new();
    for workload in ["A", "B", "C", "D"] {
        let (ok, _, stderr) = bench(&db, &["prepare", workload]).await;
        assert!(ok, "prepare {workload}: {stderr}");
        let (ok, stdout, stderr) = bench(&db, &["run", workload]).await;
        assert!(ok, "run {workload}: {stderr}");
        results.push(result(&stdout));
    }

    for (result, test) in results.iter().zip(["A", "B", "C", "D"]) {
        assert_eq!(result["test"], test);
        assert_eq!(result["peer"], "spool");
    }
    assert_eq!(results[0]["jobs"], 300);
    assert!(results[0]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(results[1]["jobs"], 40);
    for through in [
        "seconds",
        "clients_16_seconds",
        "sql_seconds",
        "sql_clients_16_seconds",
    ] {
        let seconds = results[1][through].as_f64();
        assert!(seconds.is_some_and(|s| s > 0.0), "B {through}: {seconds:?}");
    }
    assert_eq!(results[2]["jobs"], 300);
    let latencies = results[3]["latencies_ms"].as_array().expect("latencies");
    assert_eq!(latencies.len(), 10);
    assert!(
        latencies
            .iter()
            .all(|l| l.as_f64().is_some_and(|ms| ms >= 0.0)),
        "{latencies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_reports_medians_and_refuses_other_databases() {
    let db = TestDb::named("spool_bench_test").await;
    let other = TestDb::new().await;

    let (ok, stdout, stderr) = bench(&db, &["--runs", "1", "--workloads", "C,F"]).await;
    let (refused, _, why) = bench(&other, &["--workloads", "A"]).await;
    let (no_runs, _, zero) = bench(&db, &["--runs", "0"]).await;
    let missing_name = format!("{}_never_created", db.name);
    let missing_url = db.url().replacen(&db.name, &missing_name, 1);
    let (missing, _, advice) = bench_at(&missing_url, &["--workloads", "A"]).await;

    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("spool bench on database spool_bench_test"),
        "the settings are named first: {stderr}"
    );
    let rate = stdout
        .lines()
        .find(|line| line.contains("C work, jobs/s"))
        .unwrap_or_else(|| panic!("no C row in {stdout}"));
    let median = rate
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .expect("the row has a median");
    assert!(
        median.chars().all(|c| c.is_ascii_digit()),
        "rates are whole jobs per second: {rate}"
    );
    assert!(!missing);
    assert!(
        advice.contains("give no database URL to use the local `spool_bench` database"),
        "{advice}"
    );
    assert!(!no_runs);
    assert!(zero.contains("--runs"), "{zero}");
    assert!(stdout.contains("F lone job wait p50, ms"), "{stdout}");
    assert!(!refused);
    assert!(why.contains("must contain \"bench\""), "{why}");
    let jobs: i64 = sqlx::query_scalar("select count(*) from spool.jobs")
        .fetch_one(&other.pool)
        .await
        .expect("the other database is untouched");
    assert_eq!(jobs, 0);
}
