//! Calendar connections: a staff member's grant to one external calendar account, and how calsync
//! may use it.

use crate::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_enum!(
    /// The calendar service behind a connection.
    Provider, "provider", { Google => "google", Microsoft => "microsoft", CalDav => "caldav" }
);

impl Provider {
    pub fn label(self) -> &'static str {
        match self {
            Provider::Google => "Google Calendar",
            Provider::Microsoft => "Microsoft Outlook",
            Provider::CalDav => "CalDAV calendar",
        }
    }
}

string_enum!(
    /// Why a connection is not active, typed, next to the words shown to the user
    /// (`status_message`), so a client or the UI can act without parsing prose.
    /// `grant_expired`: the provider no longer accepts the grant (expired, password changed,
    /// revoked elsewhere); `grant_revoked`: access was revoked at the provider;
    /// `sign_in_required`: the provider wants a fresh sign-in (consent, MFA);
    /// `no_refresh_token`: calsync holds no long-term token (all four: reconnect);
    /// `provider_unavailable`: the provider could not be reached or failed, calsync retries;
    /// `provider_refused`: the provider refused to renew access for another reason;
    /// `disconnected`: the user disconnected it.
    StatusReason, "status_reason", {
        GrantExpired => "grant_expired",
        GrantRevoked => "grant_revoked",
        SignInRequired => "sign_in_required",
        NoRefreshToken => "no_refresh_token",
        ProviderUnavailable => "provider_unavailable",
        ProviderRefused => "provider_refused",
        Disconnected => "disconnected",
    }
);

string_enum!(
    /// Whether calsync can use the grant.
    ConnectionStatus, "status", {
        Active => "active",
        Expired => "expired",
        Error => "error",
        Revoked => "revoked",
    }
);

string_enum!(
    /// Who wins when an appointment changed on both sides since the last sync.
    ConflictStrategy, "conflict_strategy", {
        NewestWins => "newest_wins",
        PreferInternal => "prefer_internal",
        PreferExternal => "prefer_external",
        Manual => "manual",
    }
);

string_enum!(
    /// What a deletion on one side does to the other.
    DeletePolicy, "delete_policy", { Propagate => "propagate", Keep => "keep" }
);

/// How many days ahead calsync keeps in sync: 7–365.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct SyncWindowDays(u16);

impl SyncWindowDays {
    pub const MIN: i64 = 7;
    pub const MAX: i64 = 365;
    pub const DEFAULT: SyncWindowDays = SyncWindowDays(30);

    pub fn parse(days: i64) -> Result<Self, ValidationError> {
        if (Self::MIN..=Self::MAX).contains(&days) {
            Ok(Self(days as u16))
        } else {
            Err(ValidationError::new(
                "sync_window_days",
                format!("must be a whole number of days from {} to {}, got {days}", Self::MIN, Self::MAX),
            ))
        }
    }

    pub fn days(self) -> i64 {
        i64::from(self.0)
    }
}

impl TryFrom<i64> for SyncWindowDays {
    type Error = ValidationError;
    fn try_from(v: i64) -> Result<Self, ValidationError> {
        Self::parse(v)
    }
}

impl From<SyncWindowDays> for i64 {
    fn from(v: SyncWindowDays) -> i64 {
        v.days()
    }
}

/// A connection's user-editable settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub sync_enabled: bool,
    pub sync_window_days: SyncWindowDays,
    pub conflict_strategy: ConflictStrategy,
    pub delete_policy: DeletePolicy,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            sync_enabled: true,
            sync_window_days: SyncWindowDays::DEFAULT,
            conflict_strategy: ConflictStrategy::NewestWins,
            delete_policy: DeletePolicy::Propagate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds() {
        assert!(SyncWindowDays::parse(6).is_err());
        assert_eq!(SyncWindowDays::parse(7).unwrap().days(), 7);
        assert_eq!(SyncWindowDays::parse(365).unwrap().days(), 365);
        let e = SyncWindowDays::parse(366).unwrap_err();
        assert_eq!(e.field, "sync_window_days");
    }

    #[test]
    fn enums_parse_exactly_and_name_their_field() {
        assert_eq!("prefer_external".parse::<ConflictStrategy>().unwrap(), ConflictStrategy::PreferExternal);
        let e = "newest".parse::<ConflictStrategy>().unwrap_err();
        assert_eq!(e.field, "conflict_strategy");
        assert!(e.message.contains("newest_wins"));
        assert_eq!("keep".parse::<DeletePolicy>().unwrap(), DeletePolicy::Keep);
        assert_eq!(ConnectionStatus::ALL.len(), 4);
        assert_eq!(Provider::Microsoft.as_str(), "microsoft");
    }
}
