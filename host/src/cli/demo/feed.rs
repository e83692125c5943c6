//! Feeding the sample data to Spool the way an application would: one
//! enqueue over HTTP per event, many in flight at once, and a cancel for
//! each cart that was ordered before its reminder ran.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde_json::{Value, json};

use super::data::Data;
use super::{CART_REMINDER, SEND_EMAIL, USER_STATS};
use crate::api::types::EnqueueRequest;
use crate::client::Client;
use crate::queue::JobState;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// Job ids of welcome emails: the prefix, then the address.
pub const SIGNUP_ID_PREFIX: &str = "send-email:";
/// Job ids of cart reminders: the prefix, then the cart id.
pub const REMINDER_ID_PREFIX: &str = "cart-reminder:";

/// How many enqueues created a job; the rest returned an existing one.
pub async fn enqueue_all(
    client: &Client,
    requests: Vec<EnqueueRequest>,
    bar: &ProgressBar,
) -> anyhow::Result<usize> {
    bar.set_length(requests.len() as u64);
    futures::stream::iter(requests)
        .map(|request| async move {
            let (_, created) = client
                .job_enqueue(&request)
                .await
                .with_context(|| format!("enqueue {}", request.job_id.unwrap_or_default()))?;
            bar.inc(1);
            Ok::<_, anyhow::Error>(created)
        })
        .buffer_unordered(CONCURRENCY)
        .try_fold(
            0,
            |created, new| async move { Ok(created + usize::from(new)) },
        )
        .await
}

/// A welcome email per sign-up, with the address in the job id so that
/// signing up twice sends one email.
pub fn signups(data: &Data) -> Vec<EnqueueRequest> {
    data.signups
        .iter()
        .map(|signup| EnqueueRequest {
            kind: SEND_EMAIL.to_string(),
            params: json!({"to": signup.email, "name": signup.name, "template": "welcome"}),
            job_id: Some(format!("{SIGNUP_ID_PREFIX}{}", signup.email)),
            ..EnqueueRequest::default()
        })
        .collect()
}

/// A statistics update per like, comment or share, over everything that
/// user did so far.
pub fn activity(data: &Data) -> Vec<EnqueueRequest> {
    let mut so_far: HashMap<u64, Vec<Value>> = HashMap::new();
    data.activity
        .iter()
        .map(|event| {
            let events = so_far.entry(event.user_id).or_default();
            events.push(json!({"type": event.kind, "post_id": event.post_id, "at": event.at}));
            EnqueueRequest {
                kind: USER_STATS.to_string(),
                params: json!({"user_id": event.user_id, "events": events}),
                job_id: Some(stats_job_id(event.user_id, events.len())),
                ..EnqueueRequest::default()
            }
        })
        .collect()
}

/// The id of the `n`th statistics update of a user (from 1).
pub fn stats_job_id(user_id: u64, n: usize) -> String {
    format!("stats:{user_id}:{n}")
}

/// A reminder per abandoned cart, due after `delay`; when the cart was
/// ordered, its reminder is cancelled right after it was enqueued, as the
/// shop would on checkout. Returns how many reminders were enqueued.
///
/// Fails when a reminder had already started by the time its cart's order
/// came: the delay is too short for this machine, and the numbers would
/// not add up.
pub async fn carts(
    client: &Client,
    data: &Data,
    delay: Duration,
    bar: &ProgressBar,
) -> anyhow::Result<usize> {
    let ordered: HashSet<&str> = data.orders.iter().map(|o| o.cart_id.as_str()).collect();
    bar.set_length(data.carts.len() as u64);
    futures::stream::iter(&data.carts)
        .map(|cart| {
            let ordered = ordered.contains(cart.cart_id.as_str());
            async move {
                let id = format!("{REMINDER_ID_PREFIX}{}", cart.cart_id);
                let request = EnqueueRequest {
                    kind: CART_REMINDER.to_string(),
                    params: serde_json::to_value(cart).context("encode a cart")?,
                    job_id: Some(id.clone()),
                    delay: Some(json!(delay.as_secs_f64())),
                    ..EnqueueRequest::default()
                };
                let (_, created) = client
                    .job_enqueue(&request)
                    .await
                    .with_context(|| format!("enqueue {id}"))?;
                if ordered {
                    cancel_reminder(client, &id).await?;
                }
                bar.inc(1);
                Ok::<_, anyhow::Error>(created)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_fold(
            0,
            |created, new| async move { Ok(created + usize::from(new)) },
        )
        .await
}

async fn cancel_reminder(client: &Client, id: &str) -> anyhow::Result<()> {
    let job = client
        .job_cancel(id)
        .await
        .with_context(|| format!("cancel {id}"))?;
    if job.state != JobState::Cancelled {
        anyhow::bail!(
            "the cart of {id} was ordered, but its reminder is already {}; \
             give it more time with --reminder-delay",
            job.state
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::demo::data::{Activity, Data};

    #[test]
    fn a_statistics_update_covers_the_users_events_so_far() {
        let event = |user_id, post_id| Activity {
            user_id,
            post_id,
            kind: "like".to_string(),
            at: "2026-03-14T07:00:00Z".to_string(),
        };
        let data = Data {
            signups: Vec::new(),
            activity: vec![event(1, 10), event(2, 10), event(1, 11)],
            carts: Vec::new(),
            orders: Vec::new(),
        };

        let requests = activity(&data);

        let ids: Vec<_> = requests.iter().map(|r| r.job_id.clone().unwrap()).collect();
        assert_eq!(ids, ["stats:1:1", "stats:2:1", "stats:1:2"]);
        assert_eq!(requests[2].params["events"].as_array().unwrap().len(), 2);
        assert_eq!(requests[2].params["events"][1]["post_id"], 11);
    }
}
