//! The `spool` command line, run as a real process against a running
//! Spool.

use std::process::Stdio;

use clap::CommandFactory;
use serde_json::{Value, json};
use spool::api::types::{ConfigList, EnqueueRequest, JobView, ModuleList};
use spool::queue::JobState;
use tokio::io::AsyncWriteExt;

use crate::support::{Harness, TempFile, echo, guest};

/// What a `spool` process printed and how it ended.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `spool --url <the harness> <args>`, feeding it `stdin`.
async fn spool_cli(spool: &Harness, args: &[&str], stdin: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("--url")
        .arg(spool.client.base())
        .env("SPOOL_TOKEN", &spool.token)
        .env_remove("SPOOL_ADMIN_TOKEN")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start spool");
    let mut input = child.stdin.take().expect("a stdin pipe");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("spool exits");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Runs `spool` and expects success.
async fn spool_ok(spool: &Harness, args: &[&str]) -> String {
    let run = spool_cli(spool, args, "").await;
    assert!(run.success, "spool {args:?} failed: {}", run.stderr);
    run.stdout
}

#[test]
fn help_lists_every_command() {
    let commands: Vec<String> = spool::cli::Cli::command()
        .get_subcommands()
        .map(|command| command.get_name().to_string())
        .collect();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("--help")
        .output()
        .expect("run spool --help");

    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    for expected in [
        "migrate", "serve", "worker", "deploy", "modules", "enqueue", "status", "result", "cancel",
        "retry", "jobs", "prune", "config",
    ] {
        assert!(
            commands.iter().any(|c| c == expected),
            "no {expected} command"
        );
    }
    for command in &commands {
        let listed = help
            .lines()
            .any(|line| line.trim_start().starts_with(&format!("{command} ")));
        assert!(listed, "--help does not list {command}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_modules_show_the_deployed_component() {
    let spool = Harness::start().await;
    let file = TempFile::new("probe.wasm", &guest("probe"));
    let deploy = ["deploy", "probe", file.path(), "--max-attempts", "3"];

    let first = spool_ok(&spool, &deploy).await;
    let again = spool_ok(&spool, &deploy).await;
    let table = spool_ok(&spool, &["modules"]).await;
    let json = spool_ok(&spool, &["--json", "modules"]).await;
    let too_long = spool_cli(
        &spool,
        &["deploy", "probe", file.path(), "--timeout", "2d"],
        "",
    )
    .await;

    let list: ModuleList = serde_json::from_str(&json).expect("JSON modules");
    let module = &list.modules[0];
    assert_eq!(list.modules.len(), 1);
    assert_eq!((module.kind.as_str(), module.version), ("probe", 1));
    assert_eq!(module.max_attempts, 3);
    let digest = &module.digest[..12];
    assert!(
        first.starts_with(&format!("deployed probe version 1 (sha256 {digest}")),
        "{first}"
    );
    assert!(
        first.contains(&format!("{} bytes", module.size_bytes)),
        "{first}"
    );
    assert!(
        first.contains("max attempts 3, timeout 60000 ms, memory 128 MiB, hosts allowed: none"),
        "{first}"
    );
    assert!(again.contains("already at version 1"), "{again}");
    assert!(!too_long.success);
    assert!(
        too_long.stderr.contains("'2d' for '--timeout <TIMEOUT>'")
            && too_long.stderr.contains("at most 24h"),
        "{}",
        too_long.stderr
    );
    assert!(table.contains("probe") && table.contains(digest), "{table}");
    assert_eq!(spool.db.module_count().await, 1);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_reads_params_inline_from_a_file_and_from_stdin() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let file = TempFile::new("params.json", br#"{"do": "echo", "value": "from a file"}"#);
    let at_file = format!("@{}", file.path());
    let inline = r#"{"do": "echo", "value": "inline"}"#;

    let from_inline = spool_ok(&spool, &["enqueue", "probe", inline, "--job-id", "inline"]).await;
    let from_file = spool_ok(&spool, &["enqueue", "probe", &at_file, "--job-id", "file"]).await;
    let from_stdin = spool_cli(
        &spool,
        &[
            "enqueue", "probe", "-", "--job-id", "stdin", "--delay", "1h",
        ],
        r#"{"do": "echo", "value": "from stdin"}"#,
    )
    .await;
    let duplicate = spool_ok(&spool, &["enqueue", "probe", inline, "--job-id", "inline"]).await;
    let duplicate_json = spool_cli(
        &spool,
        &["enqueue", "probe", inline, "--job-id", "inline", "--json"],
        "",
    )
    .await;

    assert!(
        from_inline.starts_with("enqueued inline (") && !from_inline.contains("runs at"),
        "only a scheduled job's line says when it runs: {from_inline}"
    );
    assert!(from_file.starts_with("enqueued file ("), "{from_file}");
    assert!(from_stdin.success, "{}", from_stdin.stderr);
    assert!(
        from_stdin
            .stdout
            .starts_with("enqueued stdin (scheduled, runs at "),
        "{}",
        from_stdin.stdout
    );
    assert!(duplicate.contains("inline already exists"), "{duplicate}");
    assert!(duplicate_json.success, "{}", duplicate_json.stderr);
    let shown: Value = serde_json::from_str(&duplicate_json.stdout).expect("the job as JSON");
    assert_eq!(shown["id"], "inline");
    assert!(
        duplicate_json.stderr.contains("inline already exists"),
        "{}",
        duplicate_json.stderr
    );
    let inline = spool.client.job_get("inline").await.expect("get job");
    let file = spool.client.job_get("file").await.expect("get job");
    assert_eq!(inline.params["value"], "inline");
    assert_eq!(file.params["value"], "from a file");
    let delayed = spool.client.job_get("stdin").await.expect("get job");
    assert_eq!(delayed.params["value"], "from stdin");
    assert_eq!(delayed.state, JobState::Scheduled);
    assert_eq!(
        delayed.run_at - delayed.created_at,
        chrono::Duration::hours(1)
    );
    assert_eq!(spool.db.job_count().await, 3);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_job_as_text_and_as_json() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("shown", echo(json!({"n": 7}))).await;
    let job = spool.wait_for_state("shown", JobState::Completed).await;
    let action = json!({"do": "progress", "percent": 40, "message": "halfway there", "ms": 1});
    spool.probe("reported", action).await;
    spool.wait_for_state("reported", JobState::Completed).await;

    let text = spool_ok(&spool, &["status", "shown"]).await;
    let json = spool_ok(&spool, &["status", "shown", "--json"]).await;
    let reported = spool_ok(&spool, &["status", "reported"]).await;

    assert!(text.contains("id:           shown"), "{text}");
    assert!(text.contains("state:        completed"), "{text}");
    assert!(text.contains("attempt:      1 of 20"), "{text}");
    assert!(
        text.contains(r#"result:       {"attempt":1,"value":{"n":7}}"#),
        "{text}"
    );
    assert!(!text.contains("progress:"), "{text}");
    let shown: JobView = serde_json::from_str(&json).expect("a JSON job");
    assert_eq!(shown, job);
    assert!(
        reported.contains("progress:     40% halfway there (reported 20"),
        "{reported}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_wait_prints_the_result_once_the_job_completes() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("slow", json!({"do": "sleep", "ms": 300})).await;

    let run = spool_cli(
        &spool,
        &["result", "slow", "--wait", "--timeout", "60s"],
        "",
    )
    .await;

    assert!(run.success, "{}", run.stderr);
    let result: Value = serde_json::from_str(&run.stdout).expect("the result as JSON");
    assert_eq!(result, json!({"slept_ms": 300}));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_wait_names_the_queue_no_worker_serves() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let enqueued = spool_ok(
        &spool,
        &[
            "enqueue",
            "probe",
            r#"{"do": "echo"}"#,
            "--job-id",
            "stranded",
            "--queue",
            "other",
        ],
    )
    .await;

    let run = spool_cli(
        &spool,
        &["result", "stranded", "--wait", "--timeout", "300ms"],
        "",
    )
    .await;

    assert_eq!(enqueued.trim_end(), "enqueued stranded (available)");
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "within 300ms; it is available and not yet claimed: are the workers of queue \
             \"other\" busy, or does none serve it?"
        ),
        "{}",
        run.stderr
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_wait_fails_for_a_discarded_job_with_its_last_error() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .probe(
            "declined",
            json!({"do": "error", "outcome": "fail", "message": "card declined"}),
        )
        .await;

    let run = spool_cli(&spool, &["result", "declined", "--wait"], "").await;

    assert!(
        !run.success,
        "a discarded job has no result: {}",
        run.stdout
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("job declined is discarded, it has no result: card declined"),
        "{}",
        run.stderr
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_lists_the_jobs_in_a_state() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    for id in ["done-1", "done-2"] {
        spool.probe(id, echo(json!(id))).await;
        spool.wait_for_state(id, JobState::Completed).await;
    }
    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            job_id: Some("waiting".into()),
            delay: Some(json!("1h")),
            ..EnqueueRequest::default()
        })
        .await;

    let table = spool_ok(&spool, &["jobs", "--state", "completed"]).await;
    let json = spool_ok(&spool, &["--json", "jobs", "--state", "completed"]).await;
    // A page's hint for the next keeps its filters.
    let first = spool_ok(&spool, &["jobs", "--state", "completed", "--limit", "1"]).await;
    let hint = first
        .lines()
        .find_map(|line| line.strip_prefix("more: spool "))
        .unwrap_or_else(|| panic!("a hint for the next page: {first}"));
    let second = spool_ok(&spool, &hint.split(' ').collect::<Vec<_>>()).await;

    assert!(
        table.contains("done-1") && table.contains("done-2"),
        "{table}"
    );
    assert!(!table.contains("waiting"), "{table}");
    let page: Value = serde_json::from_str(&json).expect("a JSON page");
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, ["done-2", "done-1"]);
    assert!(
        first.contains("done-2") && !first.contains("done-1"),
        "{first}"
    );
    assert!(
        hint.starts_with("jobs --state completed --limit 1 --cursor "),
        "{hint}"
    );
    assert!(second.contains("done-1"), "{second}");
    assert!(
        !second.contains("done-2") && !second.contains("waiting"),
        "{second}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_waiting_job_and_retry_runs_it() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "probe".into(),
            params: echo(json!("second chance")),
            job_id: Some("reminder".into()),
            delay: Some(json!("1h")),
            ..EnqueueRequest::default()
        })
        .await;

    let cancelled = spool_ok(&spool, &["cancel", "reminder"]).await;
    let state_after_cancel = spool.client.job_get("reminder").await.expect("get").state;
    let retried = spool_ok(&spool, &["retry", "reminder"]).await;
    let done = spool.wait_for_state("reminder", JobState::Completed).await;

    assert_eq!(cancelled.trim(), "reminder is cancelled");
    assert_eq!(state_after_cancel, JobState::Cancelled);
    assert_eq!(
        retried.trim(),
        "reminder is available again (attempt 1 of 20 next)"
    );
    assert_eq!(done.result.expect("a result")["value"], "second chance");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_finished_jobs_of_the_state_given() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("done", echo(json!(1))).await;
    spool.wait_for_state("done", JobState::Completed).await;
    spool
        .probe(
            "failed",
            json!({"do": "error", "outcome": "fail", "message": "no"}),
        )
        .await;
    spool.wait_for_state("failed", JobState::Discarded).await;

    let unfinished = spool_cli(
        &spool,
        &["prune", "--state", "running", "--older-than", "0s"],
        "",
    )
    .await;
    let pruned = spool_ok(
        &spool,
        &["prune", "--state", "completed", "--older-than", "0s"],
    )
    .await;

    assert!(!unfinished.success);
    assert!(
        unfinished
            .stderr
            .contains("'running' for '--state <STATE>'")
            && unfinished
                .stderr
                .contains("completed, cancelled or discarded"),
        "{}",
        unfinished.stderr
    );
    assert_eq!(pruned.trim(), "deleted 1 completed jobs older than 0s");
    assert_eq!(spool.db.job_count().await, 1);
    let left = spool.client.job_get("failed").await.expect("get");
    assert_eq!(left.state, JobState::Discarded);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_variable_is_reported_as_no_token() {
    let spool = Harness::start().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["--url", spool.client.base(), "jobs"])
        .env("SPOOL_TOKEN", "")
        .output()
        .await
        .expect("run spool jobs");

    let stderr = String::from_utf8(output.stderr).expect("UTF-8 stderr");
    assert!(!output.status.success());
    assert!(
        stderr.contains("no token") && stderr.contains("SPOOL_TOKEN"),
        "{stderr}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_commands_never_print_a_secret() {
    let spool = Harness::start().await;
    let secret = "sk_live_4f9a1c2e8b7d";

    let set_entry = spool_ok(&spool, &["config", "set", "smtp_host", "mail.example.com"]).await;
    let set_secret = spool_ok(&spool, &["config", "set", "api_key", secret, "--secret"]).await;
    let set_json = spool_ok(
        &spool,
        &["--json", "config", "set", "api_key", secret, "--secret"],
    )
    .await;
    let table = spool_ok(&spool, &["config", "list"]).await;
    let json = spool_ok(&spool, &["--json", "config", "list"]).await;
    let deleted = spool_ok(&spool, &["config", "delete", "smtp_host"]).await;
    let after = spool.client.config_list().await.expect("list config");

    assert_eq!(set_entry.trim(), "set smtp_host");
    assert_eq!(set_secret.trim(), "set api_key (secret)");
    for printed in [&set_json, &table, &json] {
        assert!(
            !printed.contains(secret),
            "a secret was printed:\n{printed}"
        );
    }
    assert!(
        table.contains("mail.example.com") && table.contains("(secret)"),
        "{table}"
    );
    let list: ConfigList = serde_json::from_str(&json).expect("a JSON list");
    let names: Vec<&str> = list.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["api_key", "smtp_host"]);
    assert_eq!(list.entries[0].value, None);
    assert_eq!(deleted.trim(), "deleted smtp_host");
    let names: Vec<&str> = after.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["api_key"]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_exit_nonzero_with_the_api_message() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;

    let unknown_kind = spool_cli(&spool, &["enqueue", "user:never-deployed", "{}"], "").await;
    let naive = spool_cli(
        &spool,
        &["enqueue", "probe", "{}", "--run-at", "2026-12-05T09:00:00"],
        "",
    )
    .await;
    let not_json = spool_cli(&spool, &["enqueue", "probe", "{user_id: 42}"], "").await;
    let missing = spool_cli(&spool, &["status", "no-such-job"], "").await;

    for run in [&unknown_kind, &naive, &not_json, &missing] {
        assert!(!run.success, "{}", run.stdout);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert!(
        unknown_kind.stderr.contains(
            "kind \"user:never-deployed\" has no deployed module; \
             deploy one first (422), field kind"
        ),
        "{}",
        unknown_kind.stderr
    );
    assert!(
        naive.stderr.contains("has no UTC offset"),
        "{}",
        naive.stderr
    );
    assert!(naive.stderr.contains("field run_at"), "{}", naive.stderr);
    assert!(
        not_json.stderr.contains("params are not valid JSON"),
        "{}",
        not_json.stderr
    );
    assert!(
        missing
            .stderr
            .contains("no job with id \"no-such-job\" (404)"),
        "{}",
        missing.stderr
    );
    assert_eq!(spool.db.job_count().await, 0);
    spool.stop().await;
}
