//! Who is calling: a tenant's API token on `/v1`, the operator's admin
//! token on `/admin/v1`. Both arrive as `Authorization: Bearer <token>`.
//!
//! Tenant tokens found in the database are remembered for
//! [`TOKEN_CACHE_TTL`], so that a client's stream of requests costs one
//! lookup a second, not one each. Revoking a token or changing a tenant
//! through this process forgets them at once; another API process sees
//! the change within the TTL.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{Error, Result};
use crate::queue::{self, Access, StoredToken};

/// Shortest admin token accepted: guessing 32 characters is hopeless.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;
/// How long a token found in the database is trusted without a lookup.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Tokens remembered at most; past it, the expired ones are dropped, and
/// if that is not enough, all of them.
const TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Live tokens recently found in the database, by token id. Unknown ids
/// are not remembered: a flood of made-up tokens cannot fill the cache.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    tokens: HashMap<String, (Instant, StoredToken)>,
    /// Counts forgets. A lookup that started before a forget may have read
    /// the row as it was before the change, so what it found is not kept.
    forgets: u64,
}

impl TokenCache {
    /// What `token` grants, from the cache or the database.
    async fn check(&self, pool: &sqlx::PgPool, token: &str) -> Result<Access> {
        let Some((id, secret)) = queue::split_token(token) else {
            return Ok(Access::Denied);
        };
        let (cached, forgets) = {
            let entries = self.lock();
            let cached = entries.tokens.get(id).and_then(|(checked, stored)| {
                (checked.elapsed() < TOKEN_CACHE_TTL).then(|| stored.clone())
            });
            (cached, entries.forgets)
        };
        let stored = match cached {
            Some(stored) => stored,
            None => match queue::token_lookup(pool, id).await? {
                Some(stored) => {
                    self.remember(id, stored.clone(), forgets);
                    stored
                }
                None => {
                    self.lock().tokens.remove(id);
                    return Ok(Access::Denied);
                }
            },
        };
        Ok(stored.access(secret))
    }

    /// Keeps what a lookup found, unless something was forgotten since the
    /// lookup began (`forgets` is the count read before it).
    fn remember(&self, id: &str, stored: StoredToken, forgets: u64) {
        let mut entries = self.lock();
        if entries.forgets != forgets {
            return;
        }
        let tokens = &mut entries.tokens;
        if tokens.len() >= TOKEN_CACHE_CAPACITY {
            tokens.retain(|_, (checked, _)| checked.elapsed() < TOKEN_CACHE_TTL);
            if tokens.len() >= TOKEN_CACHE_CAPACITY {
                tokens.clear();
            }
        }
        tokens.insert(id.to_string(), (Instant::now(), stored));
    }

    /// Forgets a token, after it was revoked.
    pub fn forget_token(&self, id: &str) {
        let mut entries = self.lock();
        entries.forgets += 1;
        entries.tokens.remove(id);
    }

    /// Forgets every token of `tenant`, after it was disabled or changed.
    pub fn forget_tenant(&self, tenant: &str) {
        let mut entries = self.lock();
        entries.forgets += 1;
        entries
            .tokens
            .retain(|_, (_, stored)| stored.tenant != tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The operator's token, kept as its digest so that comparing it takes the
/// same time whatever is presented.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    /// Checks the configured token's strength.
    pub fn new(token: &str) -> std::result::Result<Self, String> {
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(
                "the admin token must be printable ASCII without spaces, as a header carries it"
                    .to_string(),
            );
        }
        if token.chars().count() < MIN_ADMIN_TOKEN_LEN {
            return Err(format!(
                "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters \
                 (try: openssl rand -hex 32)"
            ));
        }
        Ok(Self(Sha256::digest(token.as_bytes()).into()))
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The tenant a `/v1` request acts for, decided by its token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts, "spool --token or SPOOL_TOKEN")?;
        match state.tokens.check(&state.pool, token).await? {
            Access::Tenant(tenant) => Ok(Self { tenant }),
            Access::Disabled(tenant) => Err(Error::Forbidden(format!(
                "tenant {tenant:?} is disabled; ask the operator to enable it"
            ))),
            Access::Denied => Err(Error::Unauthorized(
                "the token is not valid: unknown, revoked or mistyped".to_string(),
            )),
        }
    }
}

/// An operator request, carrying the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Some(admin) = &state.admin_token else {
            return Err(Error::Forbidden(
                "the admin API is off: start the server with SPOOL_ADMIN_TOKEN set".to_string(),
            ));
        };
        if admin.matches(bearer(parts, "spool --admin-token or SPOOL_ADMIN_TOKEN")?) {
            Ok(Self)
        } else {
            Err(Error::Unauthorized(
                "the admin token is not valid".to_string(),
            ))
        }
    }
}

/// The token of an `Authorization: Bearer` header; `source` says where
/// the CLI takes the token this route needs from.
fn bearer<'a>(parts: &'a Parts, source: &str) -> Result<&'a str> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        Error::Unauthorized(format!(
            "no token: send Authorization: Bearer <token> ({source})"
        ))
    })?;
    let value = value.to_str().map_err(|_| {
        Error::Unauthorized("the Authorization header is not readable text".to_string())
    })?;
    if value.trim().eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthorized(format!(
            "the Bearer token is empty ({source})"
        )));
    }
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Error::Unauthorized(
            "the Authorization header must read `Bearer <token>`: the scheme is missing"
                .to_string(),
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthorized(format!(
            "the Authorization scheme is {scheme:?}; use Bearer"
        )));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_overlaps_a_forget_is_not_kept() {
        let cache = TokenCache::default();
        let stored = StoredToken::new("acme", "secret", false);
        let before_lookup = cache.lock().forgets;
        cache.forget_tenant("acme");
        cache.remember("t1", stored.clone(), before_lookup);
        assert!(cache.lock().tokens.is_empty(), "a stale lookup was kept");

        let after_forget = cache.lock().forgets;
        cache.remember("t1", stored, after_forget);
        let entries = cache.lock();
        let (_, kept) = &entries.tokens["t1"];
        assert!(matches!(kept.access("secret"), Access::Tenant(tenant) if tenant == "acme"));
    }

    #[test]
    fn short_admin_tokens_are_refused() {
        assert!(AdminToken::new("short").is_err());
        assert!(AdminToken::new(&" ".repeat(40)).is_err());
        assert!(AdminToken::new(&"é".repeat(40)).is_err());
        let token = "x".repeat(MIN_ADMIN_TOKEN_LEN);
        let admin = AdminToken::new(&token).unwrap();
        assert!(admin.matches(&token));
        assert!(!admin.matches("x"));
    }
}
