//! The ledger: an HTTP server on loopback to which every attempt of the
//! `chaos` guest reports its start and its end. It is the harness's own
//! record of what ran and when, independent of what the database says.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::cli::loopback::Loopback;

/// One report of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub job: String,
    pub attempt: u32,
    /// `None` for a start; for an end, how the attempt ended.
    pub outcome: Option<String>,
    /// When the ledger received it.
    pub at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    job: String,
    attempt: u32,
    #[serde(default)]
    outcome: Option<String>,
}

type Entries = Arc<Mutex<Vec<Entry>>>;

/// A running ledger; [`Ledger::stop`] ends it.
pub struct Ledger {
    server: Loopback,
    entries: Entries,
}

impl Ledger {
    pub async fn start() -> anyhow::Result<Self> {
        let entries = Entries::default();
        let app = Router::new()
            .route("/{event}", post(receive))
            .with_state(entries.clone());
        let server = Loopback::serve(app, "ledger").await?;
        Ok(Self { server, entries })
    }

    /// `127.0.0.1:<port>`: the grant the guest needs.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// What the guest posts to, `/start` and `/end` appended.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Every entry so far, in the order received.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

async fn receive(
    State(entries): State<Entries>,
    Path(event): Path<String>,
    Json(report): Json<Report>,
) -> StatusCode {
    let outcome = match (event.as_str(), report.outcome) {
        ("start", None) => None,
        ("end", Some(outcome)) => Some(outcome),
        _ => return StatusCode::BAD_REQUEST,
    };
    let entry = Entry {
        job: report.job,
        attempt: report.attempt,
        outcome,
        at: Utc::now(),
    };
    entries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(entry);
    StatusCode::NO_CONTENT
}
