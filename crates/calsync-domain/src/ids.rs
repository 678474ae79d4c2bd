//! Typed ids. Each entity has its own newtype over a UUIDv7 so a firm id can never be passed where
//! a user id is expected; v7 sorts by creation time, which keeps indexes append-mostly.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(
    /// A tenant: every row of tenant data carries one.
    FirmId
);
typed_id!(UserId);
typed_id!(ApiTokenId);
typed_id!(SessionId);
typed_id!(AppointmentId);
typed_id!(ConnectionId);
typed_id!(AuthorizationId);
typed_id!(SyncedCalendarId);
typed_id!(EventLinkId);
typed_id!(SyncAttemptId);
typed_id!(OutboxId);
typed_id!(ConflictId);
typed_id!(HeldDeleteId);
