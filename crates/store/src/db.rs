//! Connecting, migrating, and the handle repositories run their SQL through.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Executor, SqlSafeStr};

use crate::error::{Result, StoreError};
use crate::secrets::KeyRing;

/// The database engine behind a [`Store`]. SQL that differs between the two is a constant
/// chosen by this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A SQLite file (single writer; WAL).
    Sqlite,
    /// A PostgreSQL server (several keybridge instances may share it).
    Postgres,
}

/// One migration, embedded for both engines.
struct EmbeddedMigration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "user search index",
        sqlite: include_str!("../migrations/sqlite/0002_user_search_index.sql"),
        postgres: include_str!("../migrations/postgres/0002_user_search_index.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "device requests and install tokens",
        sqlite: include_str!("../migrations/sqlite/0003_device_requests_install_tokens.sql"),
        postgres: include_str!("../migrations/postgres/0003_device_requests_install_tokens.sql"),
    },
    EmbeddedMigration {
        version: 4,
        description: "request nonces",
        sqlite: include_str!("../migrations/sqlite/0004_request_nonces.sql"),
        postgres: include_str!("../migrations/postgres/0004_request_nonces.sql"),
    },
    EmbeddedMigration {
        version: 5,
        description: "console login",
        sqlite: include_str!("../migrations/sqlite/0005_console_login.sql"),
        postgres: include_str!("../migrations/postgres/0005_console_login.sql"),
    },
    EmbeddedMigration {
        version: 6,
        description: "workstation phones",
        sqlite: include_str!("../migrations/sqlite/0006_workstation_phones.sql"),
        postgres: include_str!("../migrations/postgres/0006_workstation_phones.sql"),
    },
    EmbeddedMigration {
        version: 7,
        description: "phone unpairing",
        sqlite: include_str!("../migrations/sqlite/0007_phone_unpairing.sql"),
        postgres: include_str!("../migrations/postgres/0007_phone_unpairing.sql"),
    },
    EmbeddedMigration {
        version: 8,
        description: "bulk invites",
        sqlite: include_str!("../migrations/sqlite/0008_bulk_invites.sql"),
        postgres: include_str!("../migrations/postgres/0008_bulk_invites.sql"),
    },
    EmbeddedMigration {
        version: 9,
        description: "invite email",
        sqlite: include_str!("../migrations/sqlite/0009_invite_email.sql"),
        postgres: include_str!("../migrations/postgres/0009_invite_email.sql"),
    },
    EmbeddedMigration {
        version: 10,
        description: "job rerun",
        sqlite: include_str!("../migrations/sqlite/0010_job_rerun.sql"),
        postgres: include_str!("../migrations/postgres/0010_job_rerun.sql"),
    },
    EmbeddedMigration {
        version: 11,
        description: "user counts",
        sqlite: include_str!("../migrations/sqlite/0011_user_counts.sql"),
        postgres: include_str!("../migrations/postgres/0011_user_counts.sql"),
    },
    EmbeddedMigration {
        version: 12,
        description: "user search trigram",
        sqlite: include_str!("../migrations/sqlite/0012_user_search_trigram.sql"),
        postgres: include_str!("../migrations/postgres/0012_user_search_trigram.sql"),
    },
];

/// The highest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = 12;

/// How to connect.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Keys for secrets at rest.
    pub keyring: KeyRing,
    /// Pool size (default 10; SQLite still has one writer at a time).
    pub max_connections: u32,
    /// How long to wait for a free pooled connection (default 30 s).
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    /// Defaults with the given key ring.
    pub fn new(keyring: KeyRing) -> StoreOptions {
        StoreOptions {
            keyring,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, n: u32) -> StoreOptions {
        self.max_connections = n.max(1);
        self
    }
}

/// The store: a connection pool plus the key ring. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    dialect: Dialect,
    keyring: KeyRing,
    target: String,
    /// The URL as given (it may hold a password: never displayed), for listener connections.
    url: String,
    /// In-process notifications (SQLite).
    local: tokio::sync::broadcast::Sender<crate::notify::Notification>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.inner.dialect)
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

/// `host:port/database` or the SQLite path, and the password to scrub from messages.
fn describe_url(url: &url::Url) -> (String, Option<String>) {
    if url.scheme() == "sqlite" {
        let path = format!("{}{}", url.host_str().unwrap_or(""), url.path());
        return (path, None);
    }
    let host = url.host_str().unwrap_or("localhost");
    let port = url.port().unwrap_or(5432);
    let user = if url.username().is_empty() {
        String::new()
    } else {
        format!("{}@", url.username())
    };
    (
        format!("{user}{host}:{port}{}", url.path()),
        url.password().map(str::to_string),
    )
}

fn scrub(text: String, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text,
    }
}

async fn sqlite_pragmas(conn: &mut AnyConnection) -> std::result::Result<(), sqlx::Error> {
    // Every connection: writers wait for each other (5 s) instead of failing at once, and
    // foreign keys are enforced. WAL lets readers run beside the writer.
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA journal_mode = WAL").await?;
    // With WAL, NORMAL keeps every commit across a process crash; a power loss may lose the
    // last commits but never corrupts the file.
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(())
}

impl Store {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://USER@HOST:PORT/DB`), applies
    /// the embedded migrations (idempotent) and returns the store.
    ///
    /// Refuses a database migrated by a newer keybridge ([`StoreError::SchemaTooNew`]); an
    /// unreachable database is [`StoreError::Unreachable`] naming the host or path.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let parsed = url::Url::parse(url).map_err(|_| StoreError::UnsupportedUrl {
            url: "(unparsable URL)".to_string(),
        })?;
        let (target, password) = describe_url(&parsed);
        let dialect = match parsed.scheme() {
            "sqlite" => Dialect::Sqlite,
            "postgres" | "postgresql" => Dialect::Postgres,
            _ => {
                return Err(StoreError::UnsupportedUrl {
                    url: scrub(url.to_string(), password.as_deref()),
                });
            }
        };
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            target: target.clone(),
            reason: scrub(e.to_string(), password.as_deref()),
        };
        let connect_options = AnyConnectOptions::from_url(&parsed)
            .map_err(unreachable)?
            .disable_statement_logging();

        // One direct connection first: a single attempt gives the real cause at once, where
        // the pool would retry until its timeout.
        let mut first = tokio::time::timeout(options.acquire_timeout, connect_options.connect())
            .await
            .map_err(|_| StoreError::Unreachable {
                target: target.clone(),
                reason: format!(
                    "no answer within {} s (check the host, port and firewall)",
                    options.acquire_timeout.as_secs()
                ),
            })?
            .map_err(unreachable)?;
        if dialect == Dialect::Sqlite {
            sqlite_pragmas(&mut first).await.map_err(unreachable)?;
        }
        migrate(&mut first, dialect).await?;
        first.close().await.map_err(StoreError::from)?;

        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if dialect == Dialect::Sqlite {
            pool_options = pool_options
                .after_connect(|conn, _meta| Box::pin(async move { sqlite_pragmas(conn).await }));
        }
        let pool = pool_options
            .connect_with(connect_options)
            .await
            .map_err(unreachable)?;
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                dialect,
                keyring: options.keyring,
                target,
                url: url.to_string(),
                local: tokio::sync::broadcast::channel(1024).0,
            }),
        })
    }

    /// Which engine this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The key ring secrets are sealed with.
    pub fn keyring(&self) -> &KeyRing {
        &self.inner.keyring
    }

    /// Where the store points (`host:port/db` or the SQLite path; no password).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The highest applied schema version.
    pub async fn schema_version(&self) -> Result<i64> {
        let mut conn = self.inner.pool.acquire().await?;
        applied_version(&mut conn, self.inner.dialect).await
    }

    /// Starts a transaction; repositories reached through it share it. Dropping it without
    /// [`StoreTx::commit`] rolls back.
    pub async fn begin(&self) -> Result<StoreTx> {
        let tx = match self.inner.dialect {
            // IMMEDIATE takes the write lock at once, so a transaction that reads before it
            // writes waits for the lock instead of failing with SQLITE_BUSY at its first write.
            Dialect::Sqlite => self.inner.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.inner.pool.begin().await?,
        };
        Ok(StoreTx {
            store: self.clone(),
            tx,
            pending: Vec::new(),
        })
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// The raw pool. Only for this crate's tests and benchmarks (which need to tamper with
    /// rows to prove that tampering is caught); not part of the API.
    #[doc(hidden)]
    pub fn raw_pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub(crate) fn db(&self) -> Db<'_> {
        Db {
            store: self,
            conn: None,
            pending: None,
        }
    }

    pub(crate) fn connect_url(&self) -> &str {
        &self.inner.url
    }

    pub(crate) fn local_notifications(
        &self,
    ) -> &tokio::sync::broadcast::Sender<crate::notify::Notification> {
        &self.inner.local
    }
}

/// A transaction spanning several repository calls.
pub struct StoreTx {
    store: Store,
    tx: sqlx::Transaction<'static, Any>,
    /// SQLite notifications sent in this transaction, delivered once it commits.
    pending: Vec<crate::notify::Notification>,
}

impl std::fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx").finish_non_exhaustive()
    }
}

impl StoreTx {
    /// Sends a notification, delivered when this transaction commits (never if it rolls back).
    pub async fn notify(&mut self, channel: crate::notify::Channel, payload: &str) -> Result<()> {
        crate::notify::notify_on(&mut self.db(), channel, payload).await
    }

    /// Commits everything done through this transaction, then delivers its notifications.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        // After the commit, not before: a listener woken earlier would wait for the write lock
        // (SQLite's busy handler sleeps in steps of milliseconds) or miss the row.
        for notification in self.pending {
            // No receiver is not an error: nobody is listening.
            let _ = self.store.local_notifications().send(notification);
        }
        Ok(())
    }

    /// Rolls back (dropping the transaction does the same).
    pub async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }

    pub(crate) fn db(&mut self) -> Db<'_> {
        Db {
            store: &self.store,
            conn: Some(&mut *self.tx),
            pending: Some(&mut self.pending),
        }
    }
}

/// Where a repository runs its statements: the pool, or an open transaction.
pub(crate) struct Db<'a> {
    pub(crate) store: &'a Store,
    conn: Option<&'a mut AnyConnection>,
    /// The transaction's undelivered SQLite notifications; `None` outside a transaction.
    pending: Option<&'a mut Vec<crate::notify::Notification>>,
}

/// A connection for one call: pooled or borrowed from a transaction.
pub(crate) enum Conn<'a> {
    Pooled(PoolConnection<Any>),
    Borrowed(&'a mut AnyConnection),
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Borrowed(c) => c,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pooled(c) => &mut *c,
            Conn::Borrowed(c) => c,
        }
    }
}

impl<'a> Db<'a> {
    pub(crate) fn dialect(&self) -> Dialect {
        self.store.inner.dialect
    }

    pub(crate) fn keyring(&self) -> &KeyRing {
        &self.store.inner.keyring
    }

    /// Whether statements run inside a caller's transaction.
    pub(crate) fn in_transaction(&self) -> bool {
        self.conn.is_some()
    }

    /// Where a SQLite notification waits for its transaction's commit, if it runs in one.
    pub(crate) fn pending_notifications(
        &mut self,
    ) -> Option<&mut Vec<crate::notify::Notification>> {
        self.pending.as_deref_mut()
    }

    /// A connection for single statements.
    pub(crate) async fn conn(&mut self) -> Result<Conn<'_>> {
        match &mut self.conn {
            Some(c) => Ok(Conn::Borrowed(c)),
            None => Ok(Conn::Pooled(self.store.inner.pool.acquire().await?)),
        }
    }

    /// A transaction for several statements: a new one on the pool, or a savepoint inside
    /// the caller's transaction.
    pub(crate) async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>> {
        match &mut self.conn {
            Some(c) => Ok(c.begin().await?),
            None => Ok(match self.store.inner.dialect {
                Dialect::Sqlite => self.store.inner.pool.begin_with("BEGIN IMMEDIATE").await?,
                Dialect::Postgres => self.store.inner.pool.begin().await?,
            }),
        }
    }
}

async fn migrations_table_exists(conn: &mut AnyConnection, dialect: Dialect) -> Result<bool> {
    let sql = match dialect {
        Dialect::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let count: i64 = sqlx::query_scalar(sql).fetch_one(&mut *conn).await?;
    Ok(count > 0)
}

async fn applied_version(conn: &mut AnyConnection, dialect: Dialect) -> Result<i64> {
    if !migrations_table_exists(conn, dialect).await? {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await?,
    )
}

async fn migrate(conn: &mut AnyConnection, dialect: Dialect) -> Result<()> {
    let found = applied_version(conn, dialect).await?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let migrations = MIGRATIONS
        .iter()
        .map(|m| {
            let sql = match dialect {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            Migration::new(
                m.version,
                m.description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
        .run(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_urls_carry_no_password() {
        let url = url::Url::parse("postgres://kb:s3cret@db.example:6543/keybridge").unwrap();
        let (target, password) = describe_url(&url);
        assert_eq!(target, "kb@db.example:6543/keybridge");
        assert_eq!(password.as_deref(), Some("s3cret"));
        assert_eq!(
            scrub("auth failed for s3cret".into(), password.as_deref()),
            "auth failed for ***"
        );
        let url = url::Url::parse("sqlite:///var/lib/kb/kb.db?mode=rwc").unwrap();
        assert_eq!(describe_url(&url).0, "/var/lib/kb/kb.db");
    }

    #[test]
    fn embedded_migrations_are_in_order_and_end_at_schema_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort();
        assert_eq!(versions, sorted);
        assert_eq!(versions.last().copied(), Some(SCHEMA_VERSION));
    }
}
