//! Provider failures, classified by what the caller should do about them.

use std::time::Duration;

/// Why the user has to connect again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReauthKind {
    /// The grant ran out (idle too long, testing-mode limit, "expired or revoked" without detail).
    Expired,
    /// The user or an administrator withdrew it.
    Revoked,
    /// The provider wants the user at the consent screen (MFA, conditional access, new consent).
    Interaction,
    /// The access token was refused; refresh and try once more before concluding anything.
    TokenRejected,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Try again later: network trouble, 5xx, throttling. `after` is the provider's `Retry-After`.
    #[error("the provider is temporarily unavailable: {reason}")]
    Retryable { after: Option<Duration>, reason: String },
    /// The grant is unusable until the user reconnects.
    #[error("the provider refused the authorization: {reason}")]
    Reauthorize { kind: ReauthKind, reason: String },
    /// A sync cursor (sync token, delta link) is dead: start a full sync.
    #[error("the sync cursor expired")]
    CursorExpired,
    #[error("not found at the provider")]
    NotFound,
    /// A conditional write lost against a newer version.
    #[error("the item changed at the provider")]
    PreconditionFailed,
    /// Retrying will not help (bad request, misconfigured client, missing permission).
    #[error("{reason}")]
    Permanent { status: Option<u16>, reason: String },
}

impl ProviderError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        ProviderError::Retryable { after: None, reason: reason.into() }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Retryable { .. })
    }

    /// A transport error as the caller sees it. Messages never include URLs, which may carry codes.
    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let what = if err.is_timeout() {
            "the request timed out"
        } else if err.is_connect() {
            "could not connect"
        } else if err.is_decode() {
            return ProviderError::Permanent {
                status: None,
                reason: "the provider sent an unreadable response".into(),
            };
        } else {
            "the connection failed"
        };
        ProviderError::retryable(what)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare with these providers and treated as absent).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
