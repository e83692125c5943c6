//! Tenants and their API tokens.
//!
//! A token is `sp_<id>_<secret>`: 16 hex digits that find its row, then 64
//! hex digits of secret of which only the SHA-256 is stored. Checking one
//! is a primary-key lookup and a constant-time comparison; a revoked token
//! or a disabled tenant fails the very next request.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use subtle::ConstantTimeEq;

use super::{Error, Result};

/// The prefix of every tenant token.
pub const TOKEN_PREFIX: &str = "sp_";

/// A tenant as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub max_running: Option<i32>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A token as its tenant sees it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
}

/// A token just made; `token` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub info: TokenInfo,
    pub token: String,
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A live token of an enabled tenant.
    Tenant(String),
    /// A live token of a disabled tenant.
    Disabled(String),
    /// Malformed, unknown, revoked or with the wrong secret: callers cannot
    /// tell which.
    Denied,
}

/// Creates a tenant with its first token.
pub async fn tenant_create(
    db: &mut sqlx::PgConnection,
    name: &str,
    max_running: Option<i32>,
) -> Result<(Tenant, NewToken)> {
    let mut tx = sqlx::Connection::begin(db).await?;
    let tenant = sqlx::query_as!(
        Tenant,
        r#"
        insert into spool.tenants (name, max_running) values ($1, $2)
        on conflict do nothing
        returning name, max_running, disabled_at, created_at
        "#,
        name,
        max_running
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::TenantExists {
        name: name.to_string(),
    })?;
    let token = token_create(&mut *tx, name, "first").await?;
    tx.commit().await?;
    Ok((tenant, token))
}

/// Every tenant, by name.
pub async fn tenant_list(db: impl PgExecutor<'_>) -> Result<Vec<Tenant>> {
    let tenants = sqlx::query_as!(
        Tenant,
        "select name, max_running, disabled_at, created_at from spool.tenants order by name"
    )
    .fetch_all(db)
    .await?;
    Ok(tenants)
}

/// One tenant by name.
pub async fn tenant_get(db: impl PgExecutor<'_>, name: &str) -> Result<Tenant> {
    sqlx::query_as!(
        Tenant,
        "select name, max_running, disabled_at, created_at from spool.tenants where name = $1",
        name
    )
    .fetch_optional(db)
    .await?
    .ok_or(Error::TenantNotFound)
}

/// A change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantChange {
    pub disabled: Option<bool>,
    /// `Some(None)` removes the limit.
    pub max_running: Option<Option<i32>>,
}

/// Applies `change` to a tenant. Disabling keeps the first disable time.
pub async fn tenant_update(
    db: impl PgExecutor<'_>,
    name: &str,
    change: &TenantChange,
) -> Result<Tenant> {
    sqlx::query_as!(
        Tenant,
        r#"
        update spool.tenants
        set disabled_at = case
                when $2::boolean is null then disabled_at
                when $2 then coalesce(disabled_at, now())
                else null
            end,
            max_running = case when $3 then $4 else max_running end
        where name = $1
        returning name, max_running, disabled_at, created_at
        "#,
        name,
        change.disabled,
        change.max_running.is_some(),
        change.max_running.flatten(),
    )
    .fetch_optional(db)
    .await?
    .ok_or(Error::TenantNotFound)
}

/// Makes a token for `tenant`.
pub async fn token_create(db: impl PgExecutor<'_>, tenant: &str, label: &str) -> Result<NewToken> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    let digest = Sha256::digest(secret.as_bytes()).to_vec();
    let info = sqlx::query_as!(
        TokenInfo,
        r#"
        insert into spool.tokens (id, tenant, secret_sha256, label) values ($1, $2, $3, $4)
        returning id, label, created_at
        "#,
        id,
        tenant,
        digest,
        label
    )
    .fetch_one(db)
    .await?;
    let token = format!("{TOKEN_PREFIX}{id}_{secret}");
    Ok(NewToken { info, token })
}

/// A tenant's live tokens, oldest first.
pub async fn token_list(db: impl PgExecutor<'_>, tenant: &str) -> Result<Vec<TokenInfo>> {
    let tokens = sqlx::query_as!(
        TokenInfo,
        r#"
        select id, label, created_at from spool.tokens
        where tenant = $1 and revoked_at is null
        order by created_at, id
        "#,
        tenant
    )
    .fetch_all(db)
    .await?;
    Ok(tokens)
}

/// Revokes one of a tenant's tokens. Returns whether a live one was found.
pub async fn token_revoke(db: impl PgExecutor<'_>, tenant: &str, id: &str) -> Result<bool> {
    let revoked = sqlx::query!(
        r#"
        update spool.tokens set revoked_at = now()
        where id = $1 and tenant = $2 and revoked_at is null
        "#,
        id,
        tenant
    )
    .execute(db)
    .await?;
    Ok(revoked.rows_affected() == 1)
}

/// A live token as stored, with its tenant's state.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub tenant: String,
    secret_sha256: [u8; 32],
    pub disabled: bool,
}

impl StoredToken {
    /// A token of `tenant` whose secret is `secret`, as a lookup would
    /// return it.
    #[cfg(test)]
    pub fn new(tenant: &str, secret: &str, disabled: bool) -> Self {
        Self {
            tenant: tenant.to_string(),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            disabled,
        }
    }

    /// What presenting `secret` with this token's id grants. The digests
    /// are compared in constant time.
    pub fn access(&self, secret: &str) -> Access {
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        match (
            bool::from(presented.ct_eq(&self.secret_sha256)),
            self.disabled,
        ) {
            (false, _) => Access::Denied,
            (true, false) => Access::Tenant(self.tenant.clone()),
            (true, true) => Access::Disabled(self.tenant.clone()),
        }
    }
}

/// The live (not revoked) token with this id, if any.
pub async fn token_lookup(db: impl PgExecutor<'_>, id: &str) -> Result<Option<StoredToken>> {
    let row = sqlx::query!(
        r#"
        select k.tenant, k.secret_sha256, t.disabled_at is not null as "disabled!"
        from spool.tokens k join spool.tenants t on t.name = k.tenant
        where k.id = $1 and k.revoked_at is null
        "#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|row| {
        Some(StoredToken {
            tenant: row.tenant,
            secret_sha256: row.secret_sha256.try_into().ok()?,
            disabled: row.disabled,
        })
    }))
}

/// `sp_<16 hex>_<64 hex>` split into id and secret; `None` when the token
/// is not of that shape.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (is_lower_hex(id, 16) && is_lower_hex(secret, 64)).then_some((id, secret))
}

/// Whether `id` has the shape of a token id: 16 lowercase hex digits, as
/// [`token_create`] makes them.
pub fn is_token_id(id: &str) -> bool {
    is_lower_hex(id, 16)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_into_id_and_secret() {
        let token = format!("sp_{}_{}", "a".repeat(16), "b".repeat(64));
        assert_eq!(
            split_token(&token),
            Some(("aaaaaaaaaaaaaaaa", "b".repeat(64).as_str()))
        );
        for bad in [
            "",
            "sp_",
            &format!("xx_{}_{}", "a".repeat(16), "b".repeat(64)),
            &format!("sp_{}_{}", "a".repeat(15), "b".repeat(64)),
            &format!("sp_{}_{}", "a".repeat(16), "g".repeat(64)),
            &format!("sp_{}_{}", "A".repeat(16), "b".repeat(64)),
            &format!("sp_{}_{}x", "a".repeat(16), "b".repeat(64)),
        ] {
            assert_eq!(split_token(bad), None, "{bad:?}");
        }
    }
}
