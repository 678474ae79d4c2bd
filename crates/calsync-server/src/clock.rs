//! The service's clock is the domain's, shared with the store (see [`calsync_domain::clock`]).

pub use calsync_domain::clock::Clock;
