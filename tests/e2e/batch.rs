//! The batch paths: `POST /v1/job-batches` and `spool.enqueue_many`.

use reqwest::Method;
use serde_json::{Value, json};
use spool::api::types::{BatchReport, EnqueueRequest};
use spool::client::Error;
use spool::queue::JobState;

use crate::support::{Harness, echo};

fn job(id: Option<&str>, value: Value) -> EnqueueRequest {
    EnqueueRequest {
        kind: "probe".into(),
        params: echo(value),
        job_id: id.map(str::to_string),
        ..EnqueueRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_creates_every_job_in_order_and_skips_existing_ids() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    spool.probe("known", echo(json!("first"))).await;
    let mut jobs: Vec<EnqueueRequest> = (0..500).map(|i| job(None, json!(i))).collect();
    jobs.push(job(Some("known"), json!("second")));
    jobs.push(job(Some("fresh"), json!("tab\there \\ \"quoted\" \u{e9}")));

    let report = spool.client.job_enqueue_batch(&jobs).await.expect("batch");
    spool.db.wait_for_jobs(JobState::Completed, 502).await;
    let again = spool
        .http()
        .post(format!("{}/v1/job-batches", spool.client.base()))
        .json(&json!({"jobs": [{"kind": "probe", "job_id": "known"}]}))
        .send()
        .await
        .expect("the API answers");

    assert_eq!((report.created, report.existing), (501, 1));
    assert_eq!(report.ids.len(), 502);
    assert_eq!(report.ids[500], "known");
    assert_eq!(report.ids[501], "fresh");
    let tenth = spool.client.job_get(&report.ids[10]).await.expect("a job");
    assert_eq!(tenth.result.expect("a result")["value"], 10);
    let known = spool.client.job_get("known").await.expect("known");
    assert_eq!(known.result.expect("a result")["value"], "first");
    let fresh = spool.client.job_get("fresh").await.expect("fresh");
    assert_eq!(
        fresh.result.expect("a result")["value"],
        "tab\there \\ \"quoted\" \u{e9}"
    );
    assert_eq!(again.status().as_u16(), 200);
    let again: BatchReport = again.json().await.expect("a report");
    assert_eq!((again.created, again.existing), (0, 1));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_job_refuses_the_whole_batch_naming_it() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let send = |body: Value| {
        let request = spool
            .http()
            .request(
                Method::POST,
                format!("{}/v1/job-batches", spool.client.base()),
            )
            .json(&body);
        async move {
            let response = request.send().await.expect("the API answers");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("a JSON body"))
        }
    };
    let good = json!({"kind": "probe"});

    let naive =
        send(json!({"jobs": [good, good, {"kind": "probe", "run_at": "2030-01-01T00:00:00"}]}))
            .await;
    let unknown = send(json!({"jobs": [good, {"kind": "never-deployed"}]})).await;
    let empty = send(json!({"jobs": []})).await;
    let priority = send(json!({"jobs": [good, {"kind": "probe", "priority": 12}]})).await;
    let unknown_field = send(json!({"jobs": [{"kind": "probe", "colour": "red"}]})).await;
    let far = send(json!({"jobs": [{"kind": "probe", "run_at": "0000-01-01T00:00:00Z"}]})).await;

    assert_eq!(naive.0, 400, "{}", naive.1);
    assert_eq!(naive.1["field"], "jobs[2].run_at", "{}", naive.1);
    assert!(
        naive.1["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[2].run_at: "),
        "{}",
        naive.1
    );
    assert_eq!(unknown.0, 422, "{}", unknown.1);
    assert_eq!(unknown.1["field"], "jobs[1].kind", "{}", unknown.1);
    assert_eq!(empty.0, 400, "{}", empty.1);
    assert_eq!(empty.1["field"], "jobs", "{}", empty.1);
    assert_eq!(priority.1["field"], "jobs[1].priority", "{}", priority.1);
    assert_eq!(unknown_field.0, 400, "{}", unknown_field.1);
    assert_eq!(far.0, 400, "{}", far.1);
    assert_eq!(far.1["field"], "jobs[0].run_at", "{}", far.1);
    assert_eq!(
        spool.db.job_count().await,
        0,
        "a refused batch writes nothing"
    );
    let unknown_kind = spool.client.job_enqueue_batch(&[job(None, json!(1))]).await;
    assert!(unknown_kind.is_ok());
    let missing = spool
        .client
        .job_enqueue_batch(&[EnqueueRequest {
            kind: "nope".into(),
            ..EnqueueRequest::default()
        }])
        .await;
    assert!(
        matches!(missing, Err(Error::Api { status: 422, .. })),
        "{missing:?}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_many_enqueues_in_the_callers_transaction() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let pool = &spool.db.pool;
    let params: Vec<Value> = (0..50).map(|i| echo(json!(i))).collect();

    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("select spool.enqueue_many('default', 'probe', $1)")
        .bind(&params)
        .execute(&mut *tx)
        .await
        .expect("enqueue in a transaction");
    tx.rollback().await.expect("roll back");
    let after_rollback = spool.db.job_count().await;
    let created: i64 =
        sqlx::query_scalar("select spool.enqueue_many('default', 'probe', $1, job_ids => $2)")
            .bind(&params[..3])
            .bind(["a", "b", "a"])
            .fetch_one(pool)
            .await
            .expect("enqueue with ids");
    let mismatch = sqlx::query("select spool.enqueue_many('default', 'probe', $1, job_ids => $2)")
        .bind(&params[..2])
        .bind(["only-one"])
        .execute(pool)
        .await;
    let foreign = sqlx::query("select spool.enqueue_many('nobody', 'probe', $1)")
        .bind(&params[..1])
        .execute(pool)
        .await;

    assert_eq!(after_rollback, 0, "a rolled-back transaction leaves no job");
    assert_eq!(created, 2, "a repeated id in one call is created once");
    let message = mismatch.expect_err("lengths differ").to_string();
    assert!(message.contains("job_ids: 1 ids for 2 params"), "{message}");
    let message = foreign.expect_err("no such tenant").to_string();
    assert!(
        message.contains("tenant nobody: no such tenant"),
        "{message}"
    );
    spool.db.wait_for_jobs(JobState::Completed, 2).await;
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_functions_check_ids_queues_and_array_shapes_like_the_api() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let pool = &spool.db.pool;
    let refused = |sql: &'static str| async move {
        sqlx::query(sql)
            .execute(pool)
            .await
            .expect_err(sql)
            .to_string()
    };

    let bad_id =
        refused(r"select spool.enqueue('default', 'probe', '{}', job_id => E'two\nlines')").await;
    let bad_queue =
        refused("select spool.enqueue('default', 'probe', '{}', queue => 'bad queue!')").await;
    let bad_ids = refused(
        "select spool.enqueue_many('default', 'probe', array['{}', '{}']::jsonb[], \
         job_ids => array['ok', ' padded'])",
    )
    .await;
    let dot_dot = refused("select spool.enqueue('default', 'probe', '{}', job_id => '..')").await;
    let wide_space = refused(
        r"select spool.enqueue_many('default', 'probe', array['{}']::jsonb[],
                                    job_ids => array[E'ideo\u3000'])",
    )
    .await;
    let far_future = refused(
        "select spool.enqueue('default', 'probe', '{}', run_at => '262143-06-01 00:00:00+00')",
    )
    .await;
    let two_d =
        refused("select spool.enqueue_many('default', 'probe', array[['{}'], ['{}']]::jsonb[])")
            .await;
    let zero_based: i64 = sqlx::query_scalar(
        "select spool.enqueue_many('default', 'probe', array['{}', '{}']::jsonb[], \
         job_ids => '[0:1]={z0,z1}'::text[])",
    )
    .fetch_one(pool)
    .await
    .expect("ids with any lower bound");
    let ids: Vec<String> = sqlx::query_scalar("select id from spool.jobs order by id")
        .fetch_all(pool)
        .await
        .expect("ids");

    assert!(bad_id.contains("job_id: "), "{bad_id}");
    assert!(bad_queue.contains("queue: "), "{bad_queue}");
    assert!(bad_ids.contains("job_ids: "), "{bad_ids}");
    assert!(bad_ids.contains("padded"), "{bad_ids}");
    assert!(
        dot_dot.contains("job_id: '..' is not a valid job id"),
        "{dot_dot}"
    );
    assert!(wide_space.contains("job_ids: 'ideo"), "{wide_space}");
    assert!(
        far_future.contains("run_at: ") && far_future.contains("outside the years 1 to 9999"),
        "{far_future}"
    );
    assert!(
        two_d.contains("params: must be a one-dimensional array"),
        "{two_d}"
    );
    assert_eq!(zero_based, 2);
    assert_eq!(ids, ["z0", "z1"]);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_sharing_ids_in_opposite_orders_both_succeed() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let ids: Vec<String> = (0..2_000).map(|i| format!("shared-{i}")).collect();
    let batch = |ids: Vec<String>| {
        let jobs: Vec<EnqueueRequest> = ids.iter().map(|id| job(Some(id), json!(1))).collect();
        let client = spool.client.clone();
        async move { client.job_enqueue_batch(&jobs).await }
    };
    let reversed: Vec<String> = ids.iter().rev().cloned().collect();
    let sql = |ids: Vec<String>| {
        let pool = spool.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select spool.enqueue_many('default', 'probe', \
                 array_fill('{}'::jsonb, array[cardinality($1::text[])]), job_ids => $1)",
            )
            .bind(ids)
            .fetch_one(&pool)
            .await
        }
    };
    let sql_ids: Vec<String> = (0..2_000).map(|i| format!("sql-{i}")).collect();
    let sql_reversed: Vec<String> = sql_ids.iter().rev().cloned().collect();

    let (forward, backward) = tokio::join!(batch(ids.clone()), batch(reversed));
    let (sql_forward, sql_backward) = tokio::join!(sql(sql_ids), sql(sql_reversed));

    let (forward, backward) = (forward.expect("forward"), backward.expect("backward"));
    assert_eq!(forward.created + backward.created, 2_000);
    assert_eq!(forward.ids, ids);
    let created = sql_forward.expect("forward") + sql_backward.expect("backward");
    assert_eq!(created, 2_000);
    assert_eq!(spool.db.job_count().await, 4_000);
    spool.stop().await;
}
