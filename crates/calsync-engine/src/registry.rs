//! The configured providers, ready to use: OAuth client, API client and the shared HTTP
//! client with its timeout. Built by the server from its configuration.

use std::sync::Arc;
use std::time::Duration;

use calsync_domain::connection::Provider;
use calsync_providers::calendar::CalendarProvider;
use calsync_providers::oauth::OAuthClient;

/// One provider, ready to use.
#[derive(Debug, Clone)]
pub struct Setup {
    pub oauth: OAuthClient,
    pub redirect_uri: String,
    /// Calendars and events, through the one trait the engine is written against.
    pub calendar: Arc<dyn CalendarProvider>,
    /// Served by the provider sandbox rather than the real service.
    pub sandboxed: bool,
}

#[derive(Debug, Clone)]
pub struct Providers {
    pub http: reqwest::Client,
    /// Per-request timeout of `http`.
    pub timeout: Duration,
    pub google: Option<Setup>,
    pub microsoft: Option<Setup>,
    /// CalDAV servers need no configuration: each connection names its own server.
    pub caldav: Arc<dyn CalendarProvider>,
    /// Whether a CalDAV server may be on this machine or a private network, over plain http
    /// (development and tests). In production only public https servers are taken, so a
    /// connection cannot be pointed at calsync's own network.
    pub caldav_local: bool,
}

impl Providers {
    /// An OAuth provider's setup (`None` for CalDAV, which signs in with a password, and for
    /// one not configured).
    pub fn get(&self, provider: Provider) -> Option<&Setup> {
        match provider {
            Provider::Google => self.google.as_ref(),
            Provider::Microsoft => self.microsoft.as_ref(),
            Provider::CalDav => None,
        }
    }

    /// The calendar API of a provider, when this server can reach it.
    pub fn calendar(&self, provider: Provider) -> Option<Arc<dyn CalendarProvider>> {
        match provider {
            Provider::CalDav => Some(Arc::clone(&self.caldav)),
            other => self.get(other).map(|s| Arc::clone(&s.calendar)),
        }
    }

    /// The providers served by the sandbox rather than the real services.
    pub fn sandboxed(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.google.as_ref().is_some_and(|s| s.sandboxed) {
            v.push("google");
        }
        if self.microsoft.as_ref().is_some_and(|s| s.sandboxed) {
            v.push("microsoft");
        }
        v
    }
}
