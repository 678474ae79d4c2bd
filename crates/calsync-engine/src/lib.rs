//! The sync engine: everything between the store and the providers that the server (and,
//! later, the worker) calls to act on a connection. It never knows HTTP routes; handlers never
//! call providers or SQL themselves.
//!
//! It holds the provider registry ([`registry`]), working access tokens ([`tokens`]: refreshed
//! before expiry, one refresh per connection at a time across tasks and processes) and the
//! two-way sync of a connection ([`sync`]: pull, plan, push and record, through the one
//! `CalendarProvider` trait).

#![forbid(unsafe_code)]

pub mod budget;
pub mod registry;
pub mod sync;
pub mod tokens;

pub use registry::{Providers, Setup};
pub use sync::{SyncConfig, SyncEngine, SyncError};
pub use tokens::{TokenError, TokenSource};
