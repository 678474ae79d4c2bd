//! Storage for calsync on SQLite and PostgreSQL behind one contract.
//!
//! Why this shape: sqlx's `Any` driver only carries bool/int/float/text/blob (no UUIDs, timestamps
//! or JSON, and no Postgres-only features such as `FOR UPDATE SKIP LOCKED`), and an ORM would cost
//! compile time on a 2-core build while still needing raw SQL for leases. So there are two typed
//! pools in one [`Db`] enum, and every query is written **once**: the [`on_pool!`] macro expands
//! the same generic sqlx code for each backend. `$n` placeholders, `RETURNING`, row values and
//! partial indexes mean the same on both. The per-backend text is the DDL
//! (`migrations/{sqlite,postgres}`), kept table for table in step and exercised by one test suite
//! that runs on both backends, which is what keeps them from drifting; besides it, only the
//! workers' claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and one interval expression differ.

mod accounts;
mod appointments;
mod connections;
pub mod crypto;
mod error;
mod feeds;
mod scheduler;
mod sync;
mod sync_apply;
mod sync_state;
mod webhooks;

pub use accounts::{ApiTokenInfo, AuthenticatedUser, Firm, NewUser, User, WebSession};
pub use appointments::{AppointmentPage, AppointmentQuery, Cursor};
pub use connections::{
    Authorization, CalendarInfo, Connection, NewAuthorization, NewGrant, RefreshedTokens, SettingsChange,
    StateRejection, SyncedCalendar, Tokens,
};
pub use error::StoreError;
pub use scheduler::{AdminConnection, Claimed, SyncStats};
pub use sync::{
    AttemptCounts, AttemptQuery, CursorMove, DailyAttempts, EventLink, LinkWrite, PendingWrite, SyncAttempt,
    SyncOutcome,
};
pub use sync_apply::SyncAppointment;
pub use sync_state::{CalendarCursor, Conflict, HeldDelete};
pub use webhooks::WebhookChannel;

use calsync_domain::clock::Clock;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A connection pool on either backend. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Pool,
    /// The time every write stamps and every expiry is compared with: the service's own clock,
    /// so tests that advance it move the store too.
    clock: Clock,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same generic sqlx code against whichever pool `db` holds.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.inner {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Connects to `sqlite://path` (the file and its directory are created when missing) or
    /// `postgres://…`. Any other scheme is refused with the list of supported ones.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Self::connect_sqlite(url).await,
            Some("postgres" | "postgresql") => Self::connect_postgres(url).await,
            _ => Err(StoreError::UnsupportedUrl(redact_url(url))),
        }
    }

    /// Creates an empty database `name` (letters, digits and `_` only) on the PostgreSQL server
    /// at `server_url` and answers its URL: a scratch database for benchmarks.
    pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, StoreError> {
        use sqlx::Connection as _;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::BadUrl(format!("{name:?} is not a plain database name")));
        }
        let mut url =
            url::Url::parse(server_url).map_err(|e| StoreError::BadUrl(format!("{}: {e}", redact_url(server_url))))?;
        let mut conn = sqlx::PgConnection::connect(server_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut conn).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        let _ = conn.close().await;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    /// Drops a scratch database made by [`Db::create_postgres_database`], connections and all.
    pub async fn drop_postgres_database(server_url: &str, name: &str) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::BadUrl(format!("{name:?} is not a plain database name")));
        }
        let mut conn = sqlx::PgConnection::connect(server_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(())
    }

    async fn connect_sqlite(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("{}: {e}", redact_url(url))))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let file = options.get_filename();
        if file.as_os_str() != ":memory:" {
            create_private(file).map_err(|e| StoreError::BadUrl(format!("cannot create {}: {e}", file.display())))?;
        }
        // No ping before each use: the database is a file in this process, and a ping is a
        // round trip to the connection's thread that doubles the cost of a short statement.
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { inner: Pool::Sqlite(pool), clock: Clock::default() })
    }

    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(format!("{}: {e}", redact_url(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { inner: Pool::Postgres(pool), clock: Clock::default() })
    }

    /// The same database on `clock` (the service's), instead of the real time it starts with.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now by the store's clock, at the precision both backends keep.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        micros(self.clock.now())
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.inner {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// A timestamp at the precision both backends keep (PostgreSQL stores microseconds), so a record
/// returned from a write equals the same record read back.
pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Most ids one `IN (…)` list carries: well under the bind limits of both backends (SQLite's is
/// 32766, PostgreSQL's 65535) and small enough that statements stay cheap to prepare.
pub(crate) const IN_CHUNK: usize = 500;

/// `$first, $first+1, …` for `n` bind parameters, for an `IN (…)` list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The URL without its password, for messages and logs.
/// A new database file is created 0600 in a directory created 0700: it holds password hashes
/// and sealed tokens. (SQLite gives its `-wal` and `-shm` files the database file's mode.)
/// Existing files and directories keep their modes.
fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir)?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    open.mode(0o600);
    match open.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        // Unparseable: nothing of it can be shown safely beyond the scheme.
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        return format!("{scheme}://[redacted]");
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("redacted"));
    }
    // libpq and sqlx also take the password as a parameter (`?password=…`).
    let secret = |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
    if u.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) { "redacted".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/x"), "postgres://app:redacted@db:5432/x");
        assert_eq!(redact_url("sqlite://data/calsync.db"), "sqlite://data/calsync.db");
        assert_eq!(
            redact_url("postgres://app@db/x?sslmode=require&password=hunter2&PassWord=x"),
            "postgres://app@db/x?sslmode=require&password=redacted&PassWord=redacted"
        );
        assert!(!redact_url("postgres://app:hunter2@[db/x").contains("hunter2"), "unparseable URLs show no secret");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn new_sqlite_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("calsync-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let file = root.join("data/calsync.db");
        let db = Db::connect(&format!("sqlite://{}", file.display())).await.unwrap();
        db.migrate().await.unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&file), 0o600);
        let wal = file.with_file_name("calsync.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        let err = Db::connect("mysql://localhost/x").await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
        assert!(err.to_string().contains("sqlite://"), "{err}");
    }
}
