//! `spool.enqueue()`: enqueueing from SQL inside the application's own
//! transaction.

use chrono::{SubsecRound, Utc};
use serde_json::json;
use spool::queue::JobState;
use sqlx::PgPool;

use crate::support::Harness;

/// The application's own table, beside Spool's schema.
async fn create_app_table(pool: &PgPool) {
    sqlx::query("create table app_users (id integer primary key, email text not null)")
        .execute(pool)
        .await
        .expect("create app_users");
}

async fn user_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from app_users")
        .fetch_one(pool)
        .await
        .expect("count users")
}

/// Signs a user up the way an application would: its row and the job in
/// one transaction. Returns the open transaction and what enqueue returned.
async fn sign_up(pool: &PgPool) -> (sqlx::Transaction<'static, sqlx::Postgres>, String) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("insert into app_users (id, email) values (1, 'ada@example.com')")
        .execute(&mut *tx)
        .await
        .expect("insert user");
    let id: String = sqlx::query_scalar(
        r#"select spool.enqueue('default', 'probe', '{"do": "echo", "value": 1}'::jsonb,
                                job_id => 'tx-job')"#,
    )
    .fetch_one(&mut *tx)
    .await
    .expect("enqueue");
    (tx, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transaction_leaves_no_job() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let pool = &spool.db.pool;
    create_app_table(pool).await;

    let (tx, id) = sign_up(pool).await;
    assert_eq!(id, "tx-job");
    tx.rollback().await.unwrap();

    assert_eq!(user_count(pool).await, 0);
    assert_eq!(spool.db.job_count().await, 0);
    let error = spool.client.job_get("tx-job").await.unwrap_err();
    assert!(
        matches!(error, spool::client::Error::Api { status: 404, .. }),
        "{error}"
    );
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_has_its_job_run() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let pool = &spool.db.pool;
    create_app_table(pool).await;

    let (tx, id) = sign_up(pool).await;
    // Until the commit, neither the API nor a worker can see the job.
    let error = spool.client.job_get("tx-job").await.unwrap_err();
    assert!(
        matches!(error, spool::client::Error::Api { status: 404, .. }),
        "{error}"
    );
    tx.commit().await.unwrap();

    assert_eq!(id, "tx-job");
    assert_eq!(user_count(pool).await, 1);
    let job = spool.wait_for_state("tx-job", JobState::Completed).await;
    assert_eq!(job.kind, "probe");
    assert_eq!(job.queue, "default");
    assert_eq!(job.attempt, 1);
    assert_eq!(
        job.max_attempts,
        spool::queue::DEFAULT_MAX_ATTEMPTS,
        "the module's default"
    );
    assert_eq!(job.result, Some(json!({"value": 1, "attempt": 1})));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_job_id_returns_that_job_and_creates_nothing() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    let pool = &spool.db.pool;
    let enqueue = |value: i32| {
        sqlx::query_scalar::<_, String>(
            "select spool.enqueue('default', 'probe', jsonb_build_object('do', 'echo', 'value', $1),
                                  job_id => 'once')",
        )
        .bind(value)
        .fetch_one(pool)
    };

    let first = enqueue(1).await.unwrap();
    let before = spool.client.job_get("once").await.unwrap();
    let second = enqueue(2).await.unwrap();

    assert_eq!((first.as_str(), second.as_str()), ("once", "once"));
    assert_eq!(spool.db.job_count().await, 1);
    assert_eq!(
        spool.client.job_get("once").await.unwrap(),
        before,
        "the existing job is left as it was"
    );
    assert_eq!(before.params, json!({"do": "echo", "value": 1}));
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kind_is_an_error_that_creates_nothing() {
    let spool = Harness::start_with(|config| config.worker = None).await;
    spool.deploy_probe(&[]).await;
    let pool = &spool.db.pool;
    create_app_table(pool).await;

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("insert into app_users (id, email) values (1, 'ada@example.com')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let error = sqlx::query_scalar::<_, String>(
        "select spool.enqueue('default', 'user:no-such-kind', '{}'::jsonb)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap_err();
    // The failed statement aborts the application's transaction too.
    tx.rollback().await.unwrap();

    let sqlx::Error::Database(error) = error else {
        panic!("expected a database error, got {error:?}");
    };
    assert!(
        error.message().contains("user:no-such-kind"),
        "{}",
        error.message()
    );
    assert_eq!(
        error.code().as_deref(),
        Some("23503"),
        "foreign_key_violation"
    );
    assert_eq!(spool.db.job_count().await, 0);
    assert_eq!(user_count(pool).await, 0);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_run_at_schedules_the_job() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let run_at = (Utc::now() + chrono::Duration::hours(1)).trunc_subsecs(6);

    let id: String = sqlx::query_scalar(
        r#"select spool.enqueue('default', 'probe', '{"do": "echo", "value": 1}'::jsonb,
                                run_at => $1, priority => 3, max_attempts => 2)"#,
    )
    .bind(run_at)
    .fetch_one(&spool.db.pool)
    .await
    .unwrap();

    let job = spool.client.job_get(&id).await.unwrap();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a generated id: {id}");
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.run_at, run_at);
    assert_eq!((job.priority, job.max_attempts), (3, 2));
    assert_eq!(job.attempt, 0);
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_ids_begin_with_the_time_as_the_apis_do() {
    let spool = Harness::start().await;
    spool.deploy_probe(&[]).await;
    let before = Utc::now().timestamp_millis();

    let one: String = sqlx::query_scalar("select spool.enqueue('default', 'probe')")
        .fetch_one(&spool.db.pool)
        .await
        .unwrap();
    sqlx::query("select spool.enqueue_many('default', 'probe', array['{}', '{}']::jsonb[])")
        .execute(&spool.db.pool)
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("select id from spool.jobs")
        .fetch_all(&spool.db.pool)
        .await
        .unwrap();
    let after = Utc::now().timestamp_millis();

    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&one), "{ids:?}");
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).expect("a generated id is a UUID");
        assert_eq!(uuid.get_version_num(), 7, "{id}");
        let millis = (uuid.as_u128() >> 80) as i64;
        assert!(
            (before - 1_000..=after + 1_000).contains(&millis),
            "{id} carries {millis}, not a time between {before} and {after}"
        );
    }
    spool.stop().await;
}
