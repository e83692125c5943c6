//! Commands that talk to the HTTP API.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::output;
use super::{parse_duration, read_file};
use crate::api::types::EnqueueRequest;
use crate::client::{Client, DeployOptions, ListOptions};
use crate::queue::JobState;
use crate::runtime;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The kind jobs will be enqueued under, e.g. user:send-email.
    pub kind: String,
    /// The component (.wasm) to run for it.
    pub file: PathBuf,
    /// Attempts a job gets unless enqueued with its own number.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Wall-clock limit of one attempt, e.g. 30s; at most 24h.
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Memory limit of one attempt, in MiB.
    #[arg(long)]
    pub memory_limit_mib: Option<u32>,
    /// A host (or host:port) the component may send HTTP requests to.
    /// Repeat for more. Every deploy sets all of these settings anew: one
    /// left out takes its default, not the previous version's value.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout.as_millis() == 0 || timeout > runtime::MAX_TIMEOUT {
        return Err("a timeout is at least 1ms and at most 24h".into());
    }
    Ok(timeout)
}

pub async fn deploy(client: &Client, json: bool, args: DeployArgs) -> anyhow::Result<()> {
    let bytes = read_file(&args.file)?;
    let options = DeployOptions {
        max_attempts: args.max_attempts,
        timeout: args.timeout,
        memory_limit_mib: args.memory_limit_mib,
        allowed_hosts: args.allow_hosts,
    };
    let (module, created) = client.module_deploy(&args.kind, bytes, &options).await?;
    if json {
        return output::json(&module);
    }
    let digest = &module.digest[..12];
    if created {
        println!(
            "deployed {} version {} (sha256 {digest}…, {} bytes)",
            module.kind, module.version, module.size_bytes
        );
    } else {
        println!(
            "{} is already at version {} with these bytes and options",
            module.kind, module.version
        );
    }
    // Each version has its own settings: a flag left out takes its
    // default, not the previous version's value, so show what they are.
    let hosts = match module.allowed_hosts.as_slice() {
        [] => "none".to_string(),
        hosts => hosts.join(", "),
    };
    println!(
        "  max attempts {}, timeout {} ms, memory {} MiB, hosts allowed: {hosts}",
        module.max_attempts,
        module.timeout_ms,
        module.memory_limit_bytes >> 20,
    );
    Ok(())
}

pub async fn modules(client: &Client, json: bool) -> anyhow::Result<()> {
    let list = client.module_list().await?;
    if json {
        return output::json(&list);
    }
    output::modules(&list.modules);
    Ok(())
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job's kind.
    pub kind: String,
    /// Params as JSON text, `@file.json`, or `-` for standard input.
    #[arg(default_value = "{}")]
    pub params: String,
    /// Your id for the job; enqueueing an id that exists returns that job.
    #[arg(long)]
    pub job_id: Option<String>,
    /// When to run: RFC 3339 with an offset, e.g. 2026-12-05T09:00:00Z.
    #[arg(long, conflicts_with = "delay")]
    pub run_at: Option<String>,
    /// When to run, from now: e.g. 10m or 1h 30m.
    #[arg(long)]
    pub delay: Option<String>,
    /// Attempts before the job is discarded (1 to 1000); the module's
    /// default otherwise.
    #[arg(long)]
    pub max_attempts: Option<i64>,
    /// 0 (first) to 9 (last).
    #[arg(long)]
    pub priority: Option<i64>,
    /// The queue to wait in (`default` otherwise); only workers started
    /// with `--queues` naming it run its jobs.
    #[arg(long)]
    pub queue: Option<String>,
}

pub async fn enqueue(client: &Client, json: bool, args: EnqueueArgs) -> anyhow::Result<()> {
    let text = match args.params.as_str() {
        "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read params from stdin")?;
            text
        }
        arg => match arg.strip_prefix('@') {
            Some(path) => String::from_utf8(read_file(&PathBuf::from(path))?)
                .with_context(|| format!("{path} is not UTF-8"))?,
            None => arg.to_string(),
        },
    };
    let params: Value = serde_json::from_str(&text).context("params are not valid JSON")?;
    let request = EnqueueRequest {
        kind: args.kind,
        params,
        job_id: args.job_id,
        run_at: args.run_at,
        delay: args.delay.map(Value::String),
        max_attempts: args.max_attempts,
        priority: args.priority,
        queue: args.queue,
    };

    let (job, created) = client.job_enqueue(&request).await?;
    let existing = format!(
        "{} already exists ({}); nothing enqueued",
        job.id, job.state
    );
    if json {
        // stdout stays the job as `status --json` prints it, for scripts.
        if !created {
            eprintln!("{existing}");
        }
        return output::json(&job);
    }
    if created && job.state == JobState::Scheduled {
        println!(
            "enqueued {} (scheduled, runs at {})",
            job.id,
            output::time(&job.run_at)
        );
    } else if created {
        println!("enqueued {} ({})", job.id, job.state);
    } else {
        println!("{existing}");
    }
    Ok(())
}

pub async fn status(client: &Client, json: bool, id: &str) -> anyhow::Result<()> {
    let job = client.job_get(id).await?;
    if json {
        return output::json(&job);
    }
    output::job(&job);
    Ok(())
}

/// Prints the result of a completed job; fails for a job that ended
/// otherwise, or has not ended (unless waiting).
pub async fn result(
    client: &Client,
    json: bool,
    id: &str,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let job = match wait {
        Some(timeout) => client.job_wait(id, timeout).await?,
        None => client.job_get(id).await?,
    };
    match (job.state, &job.result) {
        (JobState::Completed, Some(result)) => {
            if json {
                output::json(result)
            } else {
                println!("{}", serde_json::to_string_pretty(result)?);
                Ok(())
            }
        }
        (state, _) => {
            let last_error = job
                .errors
                .last()
                .map(|e| format!(": {}", e.error))
                .unwrap_or_default();
            bail!("job {id} is {state}, it has no result{last_error}")
        }
    }
}

pub async fn cancel(client: &Client, json: bool, id: &str) -> anyhow::Result<()> {
    let job = client.job_cancel(id).await?;
    if json {
        return output::json(&job);
    }
    match job.state {
        JobState::Running => println!("{id} is running; its worker was asked to stop it"),
        state => println!("{id} is {state}"),
    }
    Ok(())
}

pub async fn retry(client: &Client, json: bool, id: &str) -> anyhow::Result<()> {
    let job = client.job_retry(id).await?;
    if json {
        return output::json(&job);
    }
    println!(
        "{id} is {} again (attempt {} of {} next)",
        job.state,
        job.attempt + 1,
        job.max_attempts
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this state.
    #[arg(long, value_enum)]
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Jobs per page (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The `next` cursor printed with the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

pub async fn jobs(client: &Client, json: bool, args: JobsArgs) -> anyhow::Result<()> {
    let options = ListOptions {
        state: args.state,
        kind: args.kind,
        limit: Some(args.limit),
        cursor: args.cursor,
    };
    let page = client.job_list(&options).await?;
    if json {
        return output::json(&page);
    }
    output::jobs(&page.jobs);
    if let Some(cursor) = page.next_cursor {
        // The next page's command keeps this one's filters and size.
        let mut next = String::from("spool jobs");
        if let Some(state) = options.state {
            next.push_str(&format!(" --state {state}"));
        }
        // Kinds are made of characters the shell takes as they are.
        if let Some(kind) = &options.kind {
            next.push_str(&format!(" --kind {kind}"));
        }
        println!("more: {next} --limit {} --cursor {cursor}", args.limit);
    }
    Ok(())
}

pub async fn prune(
    client: &Client,
    json: bool,
    state: JobState,
    older_than: &str,
) -> anyhow::Result<()> {
    let report = client.job_prune(state, older_than).await?;
    if json {
        return output::json(&report);
    }
    println!(
        "deleted {} {state} jobs older than {older_than}",
        report.deleted
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set an entry.
    Set {
        /// The entry's name, as jobs ask for it.
        name: String,
        /// Its value, stored as given.
        value: String,
        /// Keep the value secret: readable by jobs, never shown again.
        #[arg(long)]
        secret: bool,
    },
    /// List entries (secrets without their values).
    List,
    /// Delete an entry.
    Delete {
        /// The entry's name.
        name: String,
    },
}

pub async fn config(client: &Client, json: bool, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Set {
            name,
            value,
            secret,
        } => {
            let entry = client.config_set(&name, &value, secret).await?;
            if json {
                return output::json(&entry);
            }
            println!(
                "set {}{}",
                entry.name,
                if entry.secret { " (secret)" } else { "" }
            );
        }
        ConfigCommand::List => {
            let list = client.config_list().await?;
            if json {
                return output::json(&list);
            }
            output::config(&list.entries);
        }
        ConfigCommand::Delete { name } => {
            client.config_delete(&name).await?;
            if !json {
                println!("deleted {name}");
            }
        }
    }
    Ok(())
}
