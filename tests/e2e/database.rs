//! Creating and migrating the database.

use spool::database::{self, DEFAULT_DATABASE, Target};
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;

#[tokio::test]
async fn a_missing_local_database_is_created_and_migrated() {
    let name = format!(
        "spool_test_create_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let target = Target::local(&name);

    let pool = target.open(2).await.expect("create and migrate");
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'spool' \
         order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let reopened = target.open(2).await.expect("open an existing database");
    reopened.close().await;
    pool.close().await;

    let mut admin = database::connect_admin(target.options()).await.unwrap();
    let drop = format!(
        "drop database {} with (force)",
        database::quote_identifier(&name)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "config",
            "jobs",
            "kv",
            "module_blobs",
            "modules",
            "tenants",
            "tokens"
        ]
    );
}

#[tokio::test]
async fn a_missing_database_named_by_url_is_an_error() {
    let user = PgConnectOptions::new().get_username().to_string();
    let url = format!("postgres://{user}@127.0.0.1:5432/spool_test_no_such_database");

    let error = Target::new(Some(&url), DEFAULT_DATABASE)
        .unwrap()
        .open(1)
        .await
        .unwrap_err();

    let message = format!("{error}");
    assert_eq!(
        message,
        format!(
            "database \"spool_test_no_such_database\" does not exist: create it \
             (createdb -h 127.0.0.1 -p 5432 -U {user} spool_test_no_such_database), or \
             give no database URL to use the local `spool` database, which Spool creates"
        )
    );
}
