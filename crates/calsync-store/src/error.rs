//! Storage errors, translated at the boundary: callers see "not found", "duplicate" and
//! "precondition failed", never a driver error code.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://path/to/file.db or postgres://user@host/db")]
    UnsupportedUrl(String),
    #[error("invalid DATABASE_URL: {0}")]
    BadUrl(String),
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; names the field that must be unique.
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    /// The request names something that exists but cannot be used for it (e.g. a calendar that
    /// is not writable as the push target); says which field and why, like any validation error.
    #[error("invalid {0}")]
    Invalid(calsync_domain::ValidationError),
    /// An optimistic-concurrency check failed: the row changed since it was read.
    #[error("the record was changed concurrently")]
    VersionMismatch,
    /// A stored value no longer parses (a bug or manual edit); never shown to clients.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Maps a unique violation to [`StoreError::Duplicate`] naming `field`, anything else unchanged.
    pub(crate) fn unique(err: sqlx::Error, field: &'static str) -> Self {
        match err.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Duplicate(field),
            _ => StoreError::Database(err),
        }
    }
}
