//! The HTTP API beyond a job's life: listing and paging, health, config
//! and secrets, and job ids that need percent-encoding.

use serde_json::{Value, json};
use spool::api::types::{EnqueueRequest, JobView};
use spool::client::{DeployOptions, ListOptions};
use spool::queue::JobState;

use crate::support::{Harness, echo};

/// A probe job that waits an hour: it stays `scheduled` while the test looks.
fn later(id: &str) -> EnqueueRequest {
    EnqueueRequest {
        kind: "probe".into(),
        params: echo(json!(id)),
        job_id: Some(id.into()),
        delay: Some(json!("1h")),
        ..EnqueueRequest::default()
    }
}

fn ids(jobs: &[JobView]) -> Vec<&str> {
    jobs.iter().map(|job| job.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_by_state_and_kind_newest_first() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .deploy("probe:other", "probe", DeployOptions::default())
        .await;
    for id in ["done-1", "done-2"] {
        spool.probe(id, echo(json!(id))).await;
        spool.wait_for_state(id, JobState::Completed).await;
    }
    spool.enqueue(later("waiting")).await;
    spool
        .enqueue(EnqueueRequest {
            kind: "probe:other".into(),
            ..later("other-waiting")
        })
        .await;
    let client = &spool.client;
    let list = |state: Option<JobState>, kind: Option<&str>| {
        let options = ListOptions {
            state,
            kind: kind.map(str::to_string),
            ..ListOptions::default()
        };
        async move { client.job_list(&options).await.expect("list jobs") }
    };

    let all = list(None, None).await;
    let scheduled = list(Some(JobState::Scheduled), None).await;
    let probes = list(None, Some("probe")).await;
    let completed_probes = list(Some(JobState::Completed), Some("probe")).await;
    let none = list(Some(JobState::Discarded), None).await;

    assert_eq!(
        ids(&all.jobs),
        ["other-waiting", "waiting", "done-2", "done-1"]
    );
    assert_eq!(ids(&scheduled.jobs), ["other-waiting", "waiting"]);
    assert_eq!(ids(&probes.jobs), ["waiting", "done-2", "done-1"]);
    assert_eq!(ids(&completed_probes.jobs), ["done-2", "done-1"]);
    assert_eq!(none.jobs, []);
    assert_eq!(all.next_cursor, None);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_next_cursor_until_every_job_is_seen_once() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let created: Vec<String> = (1..=7).map(|n| format!("job-{n}")).collect();
    for id in &created {
        spool.enqueue(later(id)).await;
    }

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let options = ListOptions {
            limit: Some(3),
            cursor,
            ..ListOptions::default()
        };
        let page = spool.client.job_list(&options).await.expect("list jobs");
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() || pages.len() > created.len() {
            break;
        }
    }

    let sizes: Vec<usize> = pages.iter().map(|page| page.jobs.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let seen: Vec<&str> = pages.iter().flat_map(|page| ids(&page.jobs)).collect();
    let newest_first: Vec<&str> = created.iter().rev().map(String::as_str).collect();
    assert_eq!(seen, newest_first);
    // A cursor names the tenant's own last job, nothing shared with other
    // tenants (such as a global row number, which would count their jobs).
    assert_eq!(pages[0].next_cursor, Some(hex::encode("job-5")));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_whose_job_was_pruned_is_refused_clearly() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    for id in ["a", "b", "c"] {
        spool.enqueue(later(id)).await;
    }
    let options = ListOptions {
        limit: Some(1),
        ..ListOptions::default()
    };
    let page = spool.client.job_list(&options).await.expect("list jobs");
    sqlx::query("delete from spool.jobs where id = 'c'")
        .execute(&spool.db.pool)
        .await
        .expect("delete the cursor's job");

    let next = spool
        .client
        .job_list(&ListOptions {
            cursor: page.next_cursor,
            ..options
        })
        .await;

    match next {
        Err(spool::client::Error::Api { status: 400, body }) => {
            assert_eq!(body.field.as_deref(), Some("cursor"));
            assert!(body.message.contains("gone"), "{}", body.message);
        }
        other => panic!("expected a 400 naming the cursor, got {other:?}"),
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok_while_the_database_answers() {
    let spool = Harness::start().await;

    let response = reqwest::get(format!("{}/healthz", spool.client.base()))
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");

    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok"}));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_entries_are_set_listed_overwritten_and_deleted() {
    let spool = Harness::start().await;
    let http = spool.http();
    let url = |name: &str| format!("{}/v1/config/{name}", spool.client.base());
    let secret = "sk_live_4f9a1c2e8b7d";

    let set_secret = http
        .put(url("api_key"))
        .json(&json!({"value": secret, "secret": true}))
        .send()
        .await
        .expect("set a secret")
        .text()
        .await
        .expect("a body");
    spool
        .client
        .config_set("smtp_host", "mail.example.com", false)
        .await
        .expect("set an entry");
    let first = spool.client.config_list().await.expect("list config");
    let overwritten = spool
        .client
        .config_set("smtp_host", "smtp.example.net", false)
        .await
        .expect("overwrite an entry");
    let listed = http
        .get(format!("{}/v1/config", spool.client.base()))
        .send()
        .await
        .expect("list config")
        .text()
        .await
        .expect("a body");
    let deleted = http.delete(url("smtp_host")).send().await.expect("delete");
    let deleted_again = http.delete(url("smtp_host")).send().await.expect("delete");
    let last = spool.client.config_list().await.expect("list config");

    assert!(!set_secret.contains(secret), "{set_secret}");
    let set_secret: Value = serde_json::from_str(&set_secret).expect("JSON");
    assert_eq!(set_secret["secret"], true);
    assert!(set_secret.get("value").is_none(), "{set_secret}");

    let names: Vec<_> = first.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["api_key", "smtp_host"]);
    assert_eq!(first.entries[1].value.as_deref(), Some("mail.example.com"));
    assert_eq!(overwritten.value.as_deref(), Some("smtp.example.net"));

    assert!(!listed.contains(secret), "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let entries = listed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["name"], "api_key");
    assert_eq!(entries[0]["secret"], true);
    assert!(entries[0].get("value").is_none(), "{listed}");
    assert_eq!(entries[1]["value"], "smtp.example.net");

    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(deleted_again.status().as_u16(), 404);
    let body: Value = deleted_again.json().await.expect("an error body");
    assert_eq!(body["code"], "not_found");
    let names: Vec<_> = last.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["api_key"]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_read_config_entries_and_secrets_each_by_their_own_call() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool
        .client
        .config_set("smtp_host", "mail.example.com", false)
        .await
        .expect("set an entry");
    spool
        .client
        .config_set("api_key", "sk_live_4f9a1c2e8b7d", true)
        .await
        .expect("set a secret");

    spool
        .probe(
            "right",
            json!({"do": "config", "name": "smtp_host", "secret": "api_key"}),
        )
        .await;
    spool
        .probe(
            "crossed",
            json!({"do": "config", "name": "api_key", "secret": "smtp_host"}),
        )
        .await;
    spool
        .probe("absent", json!({"do": "config", "name": "no_such_entry"}))
        .await;
    let right = spool.wait_for_state("right", JobState::Completed).await;
    let crossed = spool.wait_for_state("crossed", JobState::Completed).await;
    let absent = spool.wait_for_state("absent", JobState::Completed).await;

    assert_eq!(
        right.result,
        Some(json!({"value": "mail.example.com", "secret": "sk_live_4f9a1c2e8b7d"}))
    );
    assert_eq!(
        crossed.result,
        Some(json!({"value": null, "secret": null})),
        "a secret is not a config entry, nor the other way round"
    );
    assert_eq!(absent.result, Some(json!({"value": null, "secret": null})));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_of_an_enqueued_job_points_to_it() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let http = spool.http();
    let base = spool.client.base();
    let body = json!({"kind": "probe", "job_id": "send-email:ada@example.com", "delay": "1h"});

    let created = http
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .expect("enqueue");
    let existing = http
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .expect("enqueue again");
    let location = created.headers()["location"]
        .to_str()
        .expect("an ASCII location")
        .to_string();
    let fetched = http
        .get(format!("{base}{location}"))
        .send()
        .await
        .expect("get the job");

    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(existing.status().as_u16(), 200);
    assert_eq!(existing.headers()["location"], location.as_str());
    assert_eq!(location, "/v1/jobs/send-email%3Aada%40example.com");
    assert_eq!(fetched.status().as_u16(), 200);
    let job: JobView = fetched.json().await.expect("a job");
    assert_eq!(job.id, "send-email:ada@example.com");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_with_reserved_characters_work_through_percent_encoding() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let id = "reminder: cart/42 for ada@example.com?x=1#top 100%+";
    spool.enqueue(later(id)).await;
    let http = spool.http();
    let by_hand = format!(
        "{}/v1/jobs/reminder%3A%20cart%2F42%20for%20ada%40example.com%3Fx%3D1%23top%20100%25%2B",
        spool.client.base()
    );

    let got = spool.client.job_get(id).await.expect("get");
    let fetched: JobView = http
        .get(by_hand)
        .send()
        .await
        .expect("get by hand")
        .json()
        .await
        .expect("a job");
    let cancelled = spool.client.job_cancel(id).await.expect("cancel");
    let retried = spool.client.job_retry(id).await.expect("retry");
    let done = spool.wait_for_state(id, JobState::Completed).await;

    assert_eq!(got.id, id);
    assert_eq!(fetched.id, id);
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(retried.id, id);
    assert_eq!(done.result, Some(json!({"value": id, "attempt": 1})));
    spool.stop().await;
}

/// A transaction holding the job table so that every statement on it
/// waits, as a restarting server's sessions do; roll it back to release.
async fn lock_jobs(spool: &Harness) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = spool.db.pool.begin().await.expect("a transaction");
    sqlx::query("lock table spool.jobs in access exclusive mode")
        .execute(&mut *lock)
        .await
        .expect("lock the job table");
    lock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_outlasts_a_503_and_sees_the_job_finish() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    spool.probe("waited", echo(json!(1))).await;
    let lock = lock_jobs(&spool).await;
    let client = spool.client.clone();
    let wait = tokio::spawn(async move {
        client
            .job_wait("waited", std::time::Duration::from_secs(60))
            .await
    });

    // End the sessions of the wait's looks until one has answered 503.
    let mut ended = 0;
    while ended == 0 {
        ended = sqlx::query_scalar::<_, i64>(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where datname = current_database() and wait_event_type = 'Lock' \
               and query ~ 'select \\* from spool\\.jobs where tenant = \\$1 and id'",
        )
        .fetch_one(&spool.db.pool)
        .await
        .expect("end the waiting session");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    lock.rollback().await.expect("unlock");
    sqlx::query(
        "update spool.jobs set state = 'completed', finalized_at = now(), result = '1' \
         where id = 'waited'",
    )
    .execute(&spool.db.pool)
    .await
    .expect("finish the job");

    let job = wait
        .await
        .expect("the wait")
        .expect("the wait kept going after the 503");
    assert_eq!(job.state, JobState::Completed);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_session_the_server_ends_answers_503() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    // Hold the request's listing on a lock, then end its session as a
    // restarting server does (maintenance waits on the lock too).
    let lock = lock_jobs(&spool).await;
    let request = tokio::spawn(
        spool
            .http()
            .get(format!("{}/v1/jobs", spool.client.base()))
            .send(),
    );
    while !request.is_finished() {
        sqlx::query(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where datname = current_database() and wait_event_type = 'Lock' \
               and query ~ 'select \\* from spool\\.jobs\\s+where tenant'",
        )
        // Outside the lock's transaction, whose view of the sessions
        // would stay as it first read it.
        .execute(&spool.db.pool)
        .await
        .expect("end the waiting session");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let response = request.await.expect("the request").expect("an answer");
    lock.rollback().await.expect("unlock");

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("a JSON error");
    assert_eq!(body["code"], "unavailable", "{body}");
    spool.stop().await;
}
