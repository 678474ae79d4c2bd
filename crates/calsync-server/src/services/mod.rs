//! Application services: what handlers and CLI commands call. They take the caller (an
//! [`calsync_domain::tenant::Actor`]) or explicit firm, parse input into domain types, and talk to
//! the store. No HTTP here.

pub mod accounts;
pub mod appointments;
pub mod connections;
pub mod feeds;
mod passwords;
pub mod sync;

use calsync_domain::ValidationError;
use calsync_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    /// A uniqueness rule refused the write.
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// The caller's `If-Match` no longer matches.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Bounded work (password checks) is at capacity: try again shortly (503).
    #[error("busy; try again in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Duplicate(field) => {
                ServiceError::Conflict { field: field.to_owned(), message: format!("this {field} is already taken") }
            }
            StoreError::Invalid(v) => ServiceError::Validation(v),
            StoreError::VersionMismatch => {
                ServiceError::PreconditionFailed("the record was changed by someone else; reload it and retry".into())
            }
            other => ServiceError::Internal(other.into()),
        }
    }
}
