//! Who is asking. An authenticated request becomes an [`Actor`]; every tenant-data access takes one
//! (or the firm id it carries), so a query without a firm cannot be written by accident.

use crate::ids::{FirmId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A member of the firm's staff: owns appointments and calendar connections.
    Staff,
    /// Staff with firm-wide read access and the admin pages.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            other => Err(crate::ValidationError::new(
                "role",
                format!("unknown role {other:?}: expected \"staff\" or \"admin\""),
            )),
        }
    }
}

/// The authenticated caller, bound to exactly one firm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub firm_id: FirmId,
    pub user_id: UserId,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The owner filter for reading appointments: staff see their own, admins the whole firm.
    pub fn readable_owner(&self) -> Option<UserId> {
        match self.role {
            Role::Staff => Some(self.user_id),
            Role::Admin => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_exactly() {
        assert_eq!("staff".parse::<Role>().unwrap(), Role::Staff);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("Admin".parse::<Role>().is_err());
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn staff_read_only_their_own() {
        let a = Actor { firm_id: FirmId::new(), user_id: UserId::new(), role: Role::Staff };
        assert_eq!(a.readable_owner(), Some(a.user_id));
        let admin = Actor { role: Role::Admin, ..a };
        assert_eq!(admin.readable_owner(), None);
    }
}
