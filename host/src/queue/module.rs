//! Deployed job components.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

use super::Result;

/// One version of a kind's component, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    pub tenant: String,
    pub kind: String,
    pub version: i32,
    pub digest: String,
    pub size_bytes: i32,
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub memory_limit_bytes: i64,
    pub allowed_hosts: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The settings deployed with a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleOptions {
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub memory_limit_bytes: i64,
    pub allowed_hosts: Vec<String>,
}

/// Deploys `bytes` (whose SHA-256 is `digest`) for a tenant's kind.
///
/// Makes a new version unless the newest one already has the same digest
/// and options; returns the module and whether it is new. Deploys of one
/// kind are serialised, so versions never collide.
pub async fn module_insert(
    pool: &PgPool,
    tenant: &str,
    kind: &str,
    digest: &str,
    bytes: &[u8],
    options: &ModuleOptions,
) -> Result<(Module, bool)> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
        tenant,
        kind
    )
    .execute(&mut *tx)
    .await?;

    if let Some(head) = module_head(&mut *tx, tenant, kind).await?
        && head.digest == digest
        && head.max_attempts == options.max_attempts
        && head.timeout_ms == options.timeout_ms
        && head.memory_limit_bytes == options.memory_limit_bytes
        && head.allowed_hosts == options.allowed_hosts
    {
        return Ok((head, false));
    }

    sqlx::query!(
        r#"
        insert into spool.module_blobs (digest, bytes) values ($1, $2)
        on conflict on constraint module_blobs_pkey do nothing
        "#,
        digest,
        bytes
    )
    .execute(&mut *tx)
    .await?;
    let size_bytes = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    let module = sqlx::query_as!(
        Module,
        r#"
        insert into spool.modules
            (tenant, kind, version, digest, size_bytes, max_attempts, timeout_ms,
             memory_limit_bytes, allowed_hosts)
        select $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7, $8
        from spool.modules where tenant = $1 and kind = $2
        returning tenant, kind, version, digest, size_bytes, max_attempts, timeout_ms,
                  memory_limit_bytes, allowed_hosts, created_at
        "#,
        tenant,
        kind,
        digest,
        size_bytes,
        options.max_attempts,
        options.timeout_ms,
        options.memory_limit_bytes,
        &options.allowed_hosts,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;

    Ok((module, true))
}

/// The newest version deployed for a tenant's kind.
pub async fn module_head(
    db: impl PgExecutor<'_>,
    tenant: &str,
    kind: &str,
) -> Result<Option<Module>> {
    let module = sqlx::query_as!(
        Module,
        r#"
        select tenant, kind, version, digest, size_bytes, max_attempts, timeout_ms,
               memory_limit_bytes, allowed_hosts, created_at
        from spool.modules
        where tenant = $1 and kind = $2
        order by version desc
        limit 1
        "#,
        tenant,
        kind
    )
    .fetch_optional(db)
    .await?;
    Ok(module)
}

/// The newest version of each of a tenant's kinds, by kind.
pub async fn module_list(db: impl PgExecutor<'_>, tenant: &str) -> Result<Vec<Module>> {
    let modules = sqlx::query_as!(
        Module,
        r#"
        select distinct on (kind)
               tenant, kind, version, digest, size_bytes, max_attempts, timeout_ms,
               memory_limit_bytes, allowed_hosts, created_at
        from spool.modules
        where tenant = $1
        order by kind, version desc
        "#,
        tenant
    )
    .fetch_all(db)
    .await?;
    Ok(modules)
}

/// Digests of the newest modules of the kinds among `sample` available
/// jobs of `queues` whose tenants are enabled, `limit` at most: the
/// components a starting worker's first claims will likely run. The sample
/// is whichever jobs the scan meets first, not a claim's choice.
pub async fn module_digests_ready(
    db: impl PgExecutor<'_>,
    queues: &[String],
    sample: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let digests = sqlx::query_scalar!(
        r#"
        select distinct on (m.tenant, m.kind) m.digest
        from (
            select distinct tenant, kind from (
                select tenant, kind from spool.jobs
                where state = 'available' and queue = any($1)
                limit $2
            ) next
        ) k
        join spool.tenants t on t.name = k.tenant and t.disabled_at is null
        join spool.modules m on m.tenant = k.tenant and m.kind = k.kind
        order by m.tenant, m.kind, m.version desc
        limit $3
        "#,
        queues,
        sample,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(digests)
}

/// The component bytes with this digest.
pub async fn module_bytes(db: impl PgExecutor<'_>, digest: &str) -> Result<Option<Vec<u8>>> {
    let bytes = sqlx::query_scalar!(
        "select bytes from spool.module_blobs where digest = $1",
        digest
    )
    .fetch_optional(db)
    .await?;
    Ok(bytes)
}
