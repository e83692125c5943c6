//! Connecting to PostgreSQL, creating the database, applying migrations.
//!
//! Spool keeps everything in the `spool` schema, including its migration
//! history (`spool._sqlx_migrations`), so it can share a database with the
//! application that enqueues into it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The database used when `DATABASE_URL` is not set: `spool` on the local
/// server (Unix socket when there is one, as the current user).
pub const DEFAULT_DATABASE: &str = "spool";

/// Connections per process unless configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long to wait for a free connection before an operation fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle for longer than this is checked with a round
/// trip before it is handed out.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How Spool's pools hand out connections.
///
/// sqlx checks a connection with a round trip when it goes back into the
/// pool, and by default again when it comes out: on a one-statement API
/// request or claim, that second check is a third of the time before the
/// statement starts. Here only a connection idle for over
/// [`CHECK_AFTER_IDLE`] is checked on the way out, in case the server
/// closed it meanwhile (a restart, an idle timeout).
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Why the database could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error(
        "database {database:?} does not exist: create it ({createdb}){}",
        fallback_advice(*.fallback)
    )]
    Missing {
        database: String,
        /// The command that creates it on the server the URL names.
        createdb: String,
        /// The database the command uses without a URL.
        fallback: Option<&'static str>,
    },
    #[error("connect to database {database:?}")]
    Connect {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("create database {database:?}")]
    Create {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("apply migrations")]
    Migrate(#[from] MigrateError),
}

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    options: PgConnectOptions,
    /// Whether to create the database when it does not exist: only for the
    /// default database, so that a mistyped `DATABASE_URL` is an error
    /// rather than a new empty database.
    create_if_missing: bool,
    /// The local database used without a URL, to suggest when the URL's
    /// database is missing.
    fallback: Option<&'static str>,
}

/// What to suggest besides creating a missing database.
fn fallback_advice(fallback: Option<&str>) -> String {
    fallback.map_or_else(String::new, |name| {
        format!(", or give no database URL to use the local `{name}` database, which Spool creates")
    })
}

impl Target {
    /// `url` if given, otherwise `fallback` on the local server.
    pub fn new(url: Option<&str>, fallback: &'static str) -> Result<Self, Error> {
        match url {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(Error::InvalidUrl(
                        "it must start with postgres:// or postgresql://".to_string(),
                    ));
                }
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| Error::InvalidUrl(e.to_string()))?;
                Ok(Self {
                    options,
                    create_if_missing: false,
                    fallback: Some(fallback),
                })
            }
            None => Ok(Self::local(fallback)),
        }
    }

    /// Database `name` on the local server (Unix socket when there is one,
    /// as the current user; `PG*` variables apply), created when missing.
    pub fn local(name: &str) -> Self {
        Self {
            options: PgConnectOptions::new().database(name),
            create_if_missing: true,
            fallback: None,
        }
    }

    /// A target for an existing database, given by its options.
    pub fn from_options(options: PgConnectOptions) -> Self {
        Self {
            options,
            create_if_missing: false,
            fallback: None,
        }
    }

    /// The database name.
    pub fn database(&self) -> String {
        self.options
            .get_database()
            .unwrap_or(DEFAULT_DATABASE)
            .to_string()
    }

    /// The `createdb` command that makes this database, on this server as
    /// this user.
    fn createdb(&self) -> String {
        let options = &self.options;
        format!(
            "createdb -h {} -p {} -U {} {}",
            options.get_host(),
            options.get_port(),
            options.get_username(),
            self.database()
        )
    }

    /// The connection options.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// Connects a pool, creating the database first when allowed, and
    /// applies pending migrations.
    pub async fn open(&self, max_connections: u32) -> Result<PgPool, Error> {
        if self.create_if_missing {
            self.create_if_missing().await?;
        }
        let pool = pool_options(max_connections)
            .connect_with(self.options.clone())
            .await
            .map_err(|source| match is_missing_database(&source) {
                true => Error::Missing {
                    database: self.database(),
                    createdb: self.createdb(),
                    fallback: self.fallback,
                },
                false => Error::Connect {
                    database: self.database(),
                    source,
                },
            })?;
        migrator().run(&pool).await?;
        Ok(pool)
    }

    async fn create_if_missing(&self) -> Result<(), Error> {
        let database = self.database();
        match self.options.connect().await {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Err(e) if is_missing_database(&e) => {}
            Err(source) => return Err(Error::Connect { database, source }),
        }

        let mut admin = connect_admin(&self.options).await?;
        let statement = format!("create database {}", quote_identifier(&database));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
        {
            Ok(_) => {
                tracing::info!(database, "created database");
                Ok(())
            }
            // Another process created it first.
            Err(e) if is_duplicate_database(&e) => Ok(()),
            Err(source) => Err(Error::Create { database, source }),
        }
    }
}

/// The migrations in `migrations/`, recorded in `spool._sqlx_migrations`.
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.create_schema("spool");
    migrator.dangerous_set_table_name("spool._sqlx_migrations");
    migrator
}

/// Connects to the server's `postgres` database with the same credentials,
/// to create or drop other databases.
pub async fn connect_admin(options: &PgConnectOptions) -> Result<PgConnection, Error> {
    options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(|source| Error::Connect {
            database: "postgres".to_string(),
            source,
        })
}

/// Quotes `name` as an SQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_missing_database(error: &sqlx::Error) -> bool {
    // 3D000: invalid_catalog_name
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000")
}

fn is_duplicate_database(error: &sqlx::Error) -> bool {
    // 42P04: duplicate_database; 23505 when two creates race on the catalog.
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P04" || code == "23505")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("spool"), "\"spool\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn default_target_is_the_spool_database() {
        let target = Target::new(None, DEFAULT_DATABASE).unwrap();
        assert_eq!(target.database(), "spool");

        let target = Target::new(Some("postgres://u@h/other"), DEFAULT_DATABASE).unwrap();
        assert_eq!(target.database(), "other");
        assert!(Target::new(Some("mysql://nope"), DEFAULT_DATABASE).is_err());
    }
}
