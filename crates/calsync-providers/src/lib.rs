//! Clients for the calendar providers: OAuth 2.0 for Google and the Microsoft identity platform,
//! the account and its calendars, and events behind one [`calendar::CalendarProvider`] trait.
//! Every failure is translated here into a [`ProviderError`] classified by how the caller reacts,
//! so nothing above this crate looks at HTTP statuses or provider error strings.

pub mod caldav;
pub mod caldav_events;
pub mod calendar;
mod error;
pub mod google;
pub mod google_events;
pub mod graph_events;
pub mod graph_recurrence;
pub mod html_text;
pub mod ics;
pub mod microsoft;
pub mod oauth;
pub mod pkce;

pub use error::{ProviderError, ReauthKind};

use std::time::Duration;

pub use calsync_domain::connection::Provider;

/// Who the connected account is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountIdentity {
    /// The provider's immutable id of the account (Google `sub`, Graph user `id`): what a
    /// connection is matched on. Addresses can be renamed; this cannot.
    pub id: String,
    /// The address to show, lowercase.
    pub email: String,
}

/// A calendar of the connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCalendar {
    pub remote_id: String,
    pub name: String,
    pub primary: bool,
    pub can_write: bool,
    pub time_zone: Option<String>,
    /// `#RRGGBB`, when the provider gives one.
    pub color: Option<String>,
}

/// A colour as `#rrggbb` (lowercase; an alpha channel dropped), or `None` when it is none.
pub fn hex_color(c: &str) -> Option<String> {
    let hex = c.trim().strip_prefix('#')?;
    let rgb =
        hex.get(..6).filter(|_| (hex.len() == 6 || hex.len() == 8) && hex.chars().all(|c| c.is_ascii_hexdigit()))?;
    Some(format!("#{}", rgb.to_ascii_lowercase()))
}

/// The HTTP client every provider call goes through: bounded time, no redirects (a token endpoint
/// that redirects is misconfigured or hostile), one connection pool.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    // reqwest is built without a TLS provider of its own (to keep aws-lc out of the build);
    // installing ring here, once, means no caller can forget it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("calsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client configuration is static")
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours_are_rrggbb() {
        assert_eq!(super::hex_color("#0F5AA3FF").as_deref(), Some("#0f5aa3"), "Apple's alpha is dropped");
        assert_eq!(super::hex_color("#9fe1e7").as_deref(), Some("#9fe1e7"));
        for none in ["", "auto", "#12345", "#gggggg", "0f5aa3"] {
            assert_eq!(super::hex_color(none), None, "{none}");
        }
    }
}
