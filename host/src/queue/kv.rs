//! The tenant-scoped key-value store behind the `kv` import.

use sqlx::PgExecutor;

use super::Result;

/// The value under a tenant's key.
pub async fn kv_get(db: impl PgExecutor<'_>, tenant: &str, key: &str) -> Result<Option<String>> {
    let value = sqlx::query_scalar!(
        "select value from spool.kv where tenant = $1 and key = $2",
        tenant,
        key
    )
    .fetch_optional(db)
    .await?;
    Ok(value)
}

/// Stores a value under a tenant's key.
pub async fn kv_set(db: impl PgExecutor<'_>, tenant: &str, key: &str, value: &str) -> Result<()> {
    sqlx::query!(
        r#"
        insert into spool.kv (tenant, key, value) values ($1, $2, $3)
        on conflict on constraint kv_pkey do update set value = excluded.value, updated_at = now()
        "#,
        tenant,
        key,
        value
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Removes a tenant's key; whether it existed.
pub async fn kv_delete(db: impl PgExecutor<'_>, tenant: &str, key: &str) -> Result<bool> {
    let deleted = sqlx::query!(
        "delete from spool.kv where tenant = $1 and key = $2",
        tenant,
        key
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Adds `delta` to the integer under a tenant's key (0 when missing) in
/// one statement, so that concurrent increments all count. Fails with a
/// data error (SQLSTATE 22P02 or 22003) when the stored value is not an
/// integer or the sum overflows.
pub async fn kv_increment(
    db: impl PgExecutor<'_>,
    tenant: &str,
    key: &str,
    delta: i64,
) -> Result<i64> {
    let sum = sqlx::query_scalar!(
        r#"
        insert into spool.kv as kv (tenant, key, value) values ($1, $2, $3::bigint::text)
        on conflict on constraint kv_pkey
        do update set value = (kv.value::bigint + $3::bigint)::text, updated_at = now()
        returning value::bigint as "sum!"
        "#,
        tenant,
        key,
        delta
    )
    .fetch_one(db)
    .await?;
    Ok(sum)
}
