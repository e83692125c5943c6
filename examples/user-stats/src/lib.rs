//! `user-stats`: aggregates a user's activity, enqueued when the user
//! likes, comments on or shares a post. The aggregate is also kept in the
//! tenant's key-value store under `user-stats:<user_id>`, and the number of
//! updates under `user-stats:<user_id>:updates` (a counter: a job that runs
//! twice counts twice, which is fine for a statistic).
//!
//! Params: `{"user_id": 42, "events": [{"type": "like", "post_id": 7,
//! "at": "2026-12-01T10:00:00Z"}]}`.
//! Result: `{"user_id": 42, "events": 1, "likes": 1, "comments": 0,
//! "shares": 0, "distinct_posts": 1, "top_post": 7, "first_at": "...",
//! "last_at": "..."}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spool_sdk::{Error, kv};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    user_id: u64,
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    #[serde(rename = "type")]
    kind: EventKind,
    post_id: u64,
    /// RFC 3339 in UTC (`...Z`), so that text order is time order.
    at: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    Like,
    Comment,
    Share,
}

#[derive(Serialize, Default)]
struct Stats {
    user_id: u64,
    events: usize,
    likes: usize,
    comments: usize,
    shares: usize,
    distinct_posts: usize,
    top_post: Option<u64>,
    first_at: Option<String>,
    last_at: Option<String>,
    /// How many updates of this user's statistics ran, this one included.
    updates: i64,
}

#[spool_sdk::job]
fn user_stats(params: Params) -> Result<Stats, Error> {
    if params.user_id == 0 {
        return Err(Error::fail("user_id: must be positive"));
    }
    for (i, event) in params.events.iter().enumerate() {
        if !is_utc_timestamp(&event.at) {
            return Err(Error::fail(format!(
                "events[{i}].at: not an RFC 3339 UTC timestamp: {:?}",
                event.at
            )));
        }
    }

    let mut stats = Stats {
        user_id: params.user_id,
        events: params.events.len(),
        ..Stats::default()
    };
    let mut per_post: BTreeMap<u64, usize> = BTreeMap::new();
    for event in &params.events {
        match event.kind {
            EventKind::Like => stats.likes += 1,
            EventKind::Comment => stats.comments += 1,
            EventKind::Share => stats.shares += 1,
        }
        *per_post.entry(event.post_id).or_default() += 1;
    }
    stats.distinct_posts = per_post.len();
    // The most active post; on a tie, the lowest id.
    stats.top_post = per_post
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        .map(|(id, _)| *id);
    stats.first_at = params.events.iter().map(|e| e.at.clone()).min();
    stats.last_at = params.events.iter().map(|e| e.at.clone()).max();

    let key = format!("user-stats:{}", params.user_id);
    stats.updates = kv::increment(&format!("{key}:updates"), 1)?;
    kv::set(&key, &serde_json::to_string(&stats)?)?;
    Ok(stats)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`, checked by shape.
fn is_utc_timestamp(at: &str) -> bool {
    let bytes = at.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    bytes.len() >= 20
        && at.ends_with('Z')
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && (bytes.len() == 20 || (bytes[19] == b'.' && digits(20..bytes.len() - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_must_be_utc_rfc3339() {
        assert!(is_utc_timestamp("2026-12-01T10:00:00Z"));
        assert!(is_utc_timestamp("2026-12-01T10:00:00.123Z"));
        assert!(!is_utc_timestamp("2026-12-01T10:00:00+01:00"));
        assert!(!is_utc_timestamp("2026-12-01 10:00:00Z"));
        assert!(!is_utc_timestamp("yesterday"));
    }
}
