//! Tenant configuration and secrets.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::Result;

/// A config entry as the API shows it: a secret's value is never read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for secrets.
    pub value: Option<String>,
    pub secret: bool,
    pub updated_at: DateTime<Utc>,
}

/// Sets a tenant's entry, replacing any entry of that name.
pub async fn config_set(
    db: impl PgExecutor<'_>,
    tenant: &str,
    name: &str,
    value: &str,
    secret: bool,
) -> Result<ConfigEntry> {
    let entry = sqlx::query_as!(
        ConfigEntry,
        r#"
        insert into spool.config (tenant, name, value, secret) values ($1, $2, $3, $4)
        on conflict on constraint config_pkey
        do update set value = excluded.value, secret = excluded.secret, updated_at = now()
        returning name, case when secret then null else value end as value, secret, updated_at
        "#,
        tenant,
        name,
        value,
        secret
    )
    .fetch_one(db)
    .await?;
    Ok(entry)
}

/// A tenant's entries by name, secrets without their values.
pub async fn config_list(db: impl PgExecutor<'_>, tenant: &str) -> Result<Vec<ConfigEntry>> {
    let entries = sqlx::query_as!(
        ConfigEntry,
        r#"
        select name, case when secret then null else value end as value, secret, updated_at
        from spool.config
        where tenant = $1
        order by name
        "#,
        tenant
    )
    .fetch_all(db)
    .await?;
    Ok(entries)
}

/// The value of a tenant's entry if it exists and is (`secret`) or is not
/// (`!secret`) a secret. For jobs only: the API never reads a secret.
pub async fn config_get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    name: &str,
    secret: bool,
) -> Result<Option<String>> {
    let value = sqlx::query_scalar!(
        "select value from spool.config where tenant = $1 and name = $2 and secret = $3",
        tenant,
        name,
        secret
    )
    .fetch_optional(db)
    .await?;
    Ok(value)
}

/// Deletes a tenant's entry. Returns whether it existed.
pub async fn config_delete(db: impl PgExecutor<'_>, tenant: &str, name: &str) -> Result<bool> {
    let deleted = sqlx::query!(
        "delete from spool.config where tenant = $1 and name = $2",
        tenant,
        name
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() == 1)
}
