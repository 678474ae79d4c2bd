//! The sync engine: everything between the store and the providers that the server (and,
//! later, the worker) calls to act on a connection. It never knows HTTP routes; handlers never
//! call providers or SQL themselves.
//!
//! Today it holds the provider registry ([`registry`]) and working access tokens
//! ([`tokens`]: refreshed before expiry, one refresh per connection at a time across tasks
//! and processes). Pull, plan and push of events come next, through one `CalendarProvider`
//! trait.

#![forbid(unsafe_code)]

pub mod registry;
pub mod tokens;

pub use registry::{Providers, Setup};
pub use tokens::{TokenError, TokenSource};
