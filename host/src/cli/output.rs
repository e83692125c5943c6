//! Text output of the client commands.

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::api::types::{ConfigView, JobView, ModuleView, TenantView, TokenView};

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Says on standard error, in a debug build, that the `figures` it
/// measures fall far below a release build's, which the published ones
/// come from.
pub fn warn_if_debug_build(figures: &str) {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; its {figures} are several times below those of \
             a release build (cargo build --release)"
        );
    }
}

/// A time as RFC 3339 to the second.
pub fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn optional_time(at: Option<&DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_else(|| "-".to_string())
}

/// A new table with the house look.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(header);
    table
}

pub fn job(job: &JobView) {
    println!("id:           {}", job.id);
    println!("kind:         {}", job.kind);
    println!("queue:        {} (priority {})", job.queue, job.priority);
    println!("state:        {}", job.state);
    println!("attempt:      {} of {}", job.attempt, job.max_attempts);
    println!("run at:       {}", time(&job.run_at));
    println!("created:      {}", time(&job.created_at));
    println!("attempted:    {}", optional_time(job.attempted_at.as_ref()));
    println!("finalized:    {}", optional_time(job.finalized_at.as_ref()));
    if let Some(at) = &job.cancel_requested_at {
        println!("cancel asked: {}", time(at));
    }
    println!("params:       {}", job.params);
    if let Some(progress) = &job.progress {
        let field = |name: &str| match &progress[name] {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        println!(
            "progress:     {}% {} (reported {})",
            field("percent"),
            field("message"),
            field("at")
        );
    }
    if let Some(result) = &job.result {
        println!("result:       {result}");
    }
    if !job.errors.is_empty() {
        println!("errors:");
        for error in &job.errors {
            println!(
                "  attempt {} at {}: {}",
                error.attempt,
                time(&error.at),
                error.error
            );
            for line in &error.log {
                println!("    | {line}");
            }
        }
    }
}

pub fn jobs(jobs: &[JobView]) {
    let mut table = table(&["id", "kind", "state", "attempt", "run at", "created"]);
    for job in jobs {
        table.add_row(vec![
            job.id.clone(),
            job.kind.clone(),
            job.state.to_string(),
            format!("{}/{}", job.attempt, job.max_attempts),
            time(&job.run_at),
            time(&job.created_at),
        ]);
    }
    println!("{table}");
}

pub fn modules(modules: &[ModuleView]) {
    let mut table = table(&[
        "kind",
        "version",
        "digest",
        "bytes",
        "attempts",
        "timeout",
        "memory",
        "allowed hosts",
    ]);
    for m in modules {
        table.add_row(vec![
            m.kind.clone(),
            m.version.to_string(),
            m.digest[..12].to_string(),
            m.size_bytes.to_string(),
            m.max_attempts.to_string(),
            format!("{}ms", m.timeout_ms),
            format!("{}MiB", m.memory_limit_bytes >> 20),
            m.allowed_hosts.join(", "),
        ]);
    }
    println!("{table}");
}

pub fn config(entries: &[ConfigView]) {
    let mut table = table(&["name", "value", "updated"]);
    for entry in entries {
        let value = match &entry.value {
            Some(value) => value.clone(),
            None => "(secret)".to_string(),
        };
        table.add_row(vec![entry.name.clone(), value, time(&entry.updated_at)]);
    }
    println!("{table}");
}

pub fn tenants(tenants: &[TenantView]) {
    let mut table = table(&["name", "max running", "state", "created"]);
    for tenant in tenants {
        let limit = tenant
            .max_running
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let state = match &tenant.disabled_at {
            Some(at) => format!("disabled {}", time(at)),
            None => "enabled".to_string(),
        };
        table.add_row(vec![
            tenant.name.clone(),
            limit,
            state,
            time(&tenant.created_at),
        ]);
    }
    println!("{table}");
}

pub fn tokens(tokens: &[TokenView]) {
    let mut table = table(&["id", "label", "created"]);
    for token in tokens {
        table.add_row(vec![
            token.id.clone(),
            token.label.clone(),
            time(&token.created_at),
        ]);
    }
    println!("{table}");
}
