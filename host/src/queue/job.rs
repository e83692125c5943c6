//! The job row and its states.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job is in its life. See `migrations/0001_create_jobs.sql` for
/// the transitions.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker; an attempt is under way.
    Running,
    /// An attempt failed; waiting for its backoff before the next.
    Retryable,
    /// Finished with a result.
    Completed,
    /// Finished without a result: attempts exhausted or a permanent error.
    Discarded,
    /// Stopped on request, or by the job itself.
    Cancelled,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 7] = [
        Self::Scheduled,
        Self::Available,
        Self::Running,
        Self::Retryable,
        Self::Completed,
        Self::Discarded,
        Self::Cancelled,
    ];

    /// The name stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Available => "available",
            Self::Running => "running",
            Self::Retryable => "retryable",
            Self::Completed => "completed",
            Self::Discarded => "discarded",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the job has finished: no attempt will start unless it is
    /// retried by hand.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Discarded | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// A job as stored, one field per column of `spool.jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub seq: i64,
    pub tenant: String,
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub state: String,
    pub priority: i16,
    pub params: Value,
    pub result: Option<Value>,
    pub errors: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub leased_until: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub progress: Option<Value>,
    /// The claim that began the latest attempt (0 before any).
    pub claim: i64,
}

impl Job {
    /// The job's state. The column's check constraint admits only known
    /// names; an unknown one means the schema is newer than this binary.
    pub fn state(&self) -> JobState {
        self.state
            .parse()
            .unwrap_or_else(|e| panic!("job {}: {e}", self.seq))
    }
}

/// One entry of a job's error history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: i32,
    /// When it failed (host clock of the worker that recorded it).
    pub at: DateTime<Utc>,
    /// What happened.
    pub error: String,
    /// The attempt's last log lines, when it logged anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        let error = "done".parse::<JobState>().unwrap_err();
        assert!(error.contains("unknown state \"done\""), "{error}");
    }
}
