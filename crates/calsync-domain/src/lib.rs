//! Pure types and rules of calsync: ids, tenancy, accounts and appointments. No I/O lives here, so
//! every rule can be tested without a database or a network.

pub mod account;
pub mod appointment;
pub mod clock;
pub mod connection;
pub mod error;
pub mod ids;
pub mod secret;
pub mod tenant;

pub use error::ValidationError;
pub use secret::Secret;
