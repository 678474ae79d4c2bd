//! Pure types and rules of calsync: ids, tenancy, accounts, appointments, connections, the clock,
//! secrets and sync planning. No I/O lives here, so every rule can be tested without a database
//! or a network.

pub mod account;
pub mod appointment;
pub mod clock;
pub mod connection;
pub mod error;
pub mod ids;
pub mod secret;
pub mod sync;
pub mod tenant;

pub use error::ValidationError;
pub use secret::Secret;
