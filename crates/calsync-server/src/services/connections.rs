//! Calendar connections: the OAuth flow (state, PKCE, code exchange, scope check), settings,
//! calendars and disconnection. Working access tokens come from the engine's [`TokenSource`].

use super::ServiceError;
use crate::clock::Clock;
use crate::crypto::{random_token, token_hash};
use crate::providers::{Providers, Setup};
use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_domain::tenant::Actor;
use calsync_domain::{Secret, ValidationError};
pub use calsync_engine::TokenError;
use calsync_engine::TokenSource;
use calsync_providers::{ProviderError, ReauthKind, RemoteCalendar, pkce};
use calsync_store::crypto::Keyring;
use calsync_store::{
    CalendarInfo, Connection, Db, NewAuthorization, NewGrant, SettingsChange, StateRejection, SyncedCalendar,
};
use chrono::Duration;
use std::sync::Arc;

/// How long an authorization record (the `state`) lives.
pub const STATE_TTL_MINUTES: i64 = 10;

/// Why a callback could not complete. Each maps to a 400 with its code, except provider outages.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{message}")]
    Rejected { code: &'static str, field: Option<&'static str>, message: String },
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn rejected(code: &'static str, field: Option<&'static str>, message: impl Into<String>) -> ConnectError {
    ConnectError::Rejected { code, field, message: message.into() }
}

/// What the browser or API client brought back from the provider.
#[derive(Debug, Default, Clone)]
pub struct CallbackInput {
    pub state: Option<Secret>,
    pub code: Option<Secret>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

pub struct ConnectionService {
    db: Db,
    keyring: Keyring,
    providers: Arc<Providers>,
    clock: Clock,
    /// Working access tokens (the engine's: single-flight refresh across tasks and processes).
    tokens: Arc<TokenSource>,
}

impl ConnectionService {
    pub fn new(db: Db, keyring: Keyring, providers: Arc<Providers>, clock: Clock) -> Self {
        let tokens = Arc::new(TokenSource::new(db.clone(), keyring.clone(), providers.clone(), clock.clone()));
        Self { db, keyring, providers, clock, tokens }
    }

    /// The token source, shared with the sync engine so refreshes stay single-flight.
    pub fn tokens(&self) -> Arc<TokenSource> {
        Arc::clone(&self.tokens)
    }

    /// A usable access token for the connection (see [`TokenSource::access_token`]).
    pub async fn access_token(&self, firm: FirmId, id: ConnectionId) -> Result<String, TokenError> {
        self.tokens.access_token(firm, id).await
    }

    /// Refreshes now even if the token is still fresh (a provider rejected it).
    pub async fn refresh_now(&self, firm: FirmId, id: ConnectionId) -> Result<String, TokenError> {
        self.tokens.refresh_now(firm, id).await
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// For a provider served by the sandbox: a demo account named after the user
    /// (`ann@acme.test` → `ann@google.sandbox.test`), which its consent page offers
    /// pre-filled. `None` for the real services.
    pub fn sandbox_demo_account(&self, provider: Provider, user_email: &str) -> Option<String> {
        self.providers.get(provider).filter(|s| s.sandboxed)?;
        let local = user_email.split('@').next().filter(|l| !l.is_empty()).unwrap_or("demo");
        let domain = match provider {
            Provider::Google => "google.sandbox.test",
            Provider::Microsoft => "outlook.sandbox.test",
            Provider::CalDav => return None,
        };
        Some(format!("{local}@{domain}"))
    }

    fn setup(&self, provider: Provider) -> Result<&Setup, ServiceError> {
        self.providers.get(provider).ok_or_else(|| {
            ServiceError::Validation(ValidationError::new(
                "provider",
                format!("{} is not configured on this server", provider.label()),
            ))
        })
    }

    /// Starts the flow: a single-use `state` bound to this user and provider, a PKCE verifier kept
    /// encrypted server-side, and the URL to send the browser to.
    pub async fn initiate(
        &self,
        actor: &Actor,
        provider: Provider,
        login_hint: Option<&str>,
    ) -> Result<(String, String), ServiceError> {
        let setup = self.setup(provider)?;
        let state = random_token("");
        let verifier = pkce::new_verifier();
        self.db
            .create_authorization(
                &self.keyring,
                NewAuthorization {
                    firm_id: actor.firm_id,
                    user_id: actor.user_id,
                    provider,
                    state_hash: token_hash(&state),
                    pkce_verifier: verifier.clone().into(),
                    redirect_uri: setup.redirect_uri.clone(),
                    expires_at: self.clock.now() + Duration::minutes(STATE_TTL_MINUTES),
                },
            )
            .await?;
        let url =
            setup.oauth.authorization_url(&state, &pkce::challenge_s256(&verifier), &setup.redirect_uri, login_hint);
        Ok((url.to_string(), state))
    }

    /// Completes the flow for the user who started it: checks the state, exchanges the code,
    /// checks the granted scopes, learns the account and its calendars, then stores it all.
    /// Nothing is created or changed unless every step succeeds.
    pub async fn complete(&self, actor: &Actor, input: CallbackInput) -> Result<Connection, ConnectError> {
        let state = input.state.filter(|s| !s.is_empty()).ok_or_else(|| {
            rejected("invalid_state", Some("state"), "the state parameter is missing; start connecting again")
        })?;
        let auth = match self
            .db
            .consume_authorization(
                &self.keyring,
                &token_hash(state.expose()),
                actor.firm_id,
                actor.user_id,
                self.clock.now(),
            )
            .await
            .map_err(ServiceError::from)?
        {
            Ok(a) => a,
            Err(StateRejection::Unknown | StateRejection::OtherUser) => {
                return Err(rejected(
                    "invalid_state",
                    Some("state"),
                    "this authorization was not started by you (or was forged); start connecting again",
                ));
            }
            Err(StateRejection::Used) => {
                return Err(rejected(
                    "state_used",
                    Some("state"),
                    "this authorization was already used; start connecting again",
                ));
            }
            Err(StateRejection::Expired) => {
                return Err(rejected(
                    "state_expired",
                    Some("state"),
                    format!(
                        "this authorization expired (it lasts {STATE_TTL_MINUTES} minutes); start connecting again"
                    ),
                ));
            }
        };
        let provider = auth.provider;
        let setup = self.setup(provider).map_err(ConnectError::Service)?;
        if let Some(error) = input.error.filter(|e| !e.is_empty()) {
            return Err(if error == "access_denied" {
                rejected(
                    "access_denied",
                    None,
                    format!("access was denied at {}; nothing was connected", provider.label()),
                )
            } else {
                rejected(
                    "provider_error",
                    None,
                    format!("{} answered {error:?}; nothing was connected", provider.label()),
                )
            });
        }
        let code = input
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| rejected("invalid_request", Some("code"), "the code parameter is missing"))?;
        let http = &self.providers.http;
        let tokens = setup.oauth.exchange_code(http, code.expose(), auth.pkce_verifier.expose(), &auth.redirect_uri).await.map_err(|e| match e {
            ProviderError::Retryable { reason, .. } => {
                ConnectError::ProviderUnavailable(format!("{} is unavailable ({reason}); try again shortly", provider.label()))
            }
            ProviderError::Reauthorize { .. } => rejected(
                "invalid_grant",
                Some("code"),
                "the provider refused the authorization code (expired, already used, or not issued for this request); start connecting again",
            ),
            other => rejected("provider_error", None, format!("{} refused the exchange: {other}", provider.label())),
        })?;
        let missing = match provider {
            Provider::Google => calsync_providers::google::missing_scopes(&tokens.scopes),
            Provider::Microsoft => calsync_providers::microsoft::missing_scopes(&tokens.scopes),
            Provider::CalDav => Vec::new(),
        };
        if !missing.is_empty() {
            // The partial grant is dropped, not revoked: at Google, revoking one token withdraws the
            // whole grant for this account and client, which would break an existing connection.
            return Err(rejected(
                "insufficient_scope",
                None,
                format!(
                    "calsync needs permission to {}. Connect again and allow every requested permission.",
                    missing.join(" and ")
                ),
            ));
        }
        if tokens.refresh_token.is_none() {
            return Err(rejected(
                "no_offline_access",
                None,
                format!(
                    "{} granted no offline access, so calsync could not sync in the background; connect again",
                    provider.label()
                ),
            ));
        }
        let unavailable = |e: ProviderError| match e {
            ProviderError::Retryable { reason, .. } => ConnectError::ProviderUnavailable(format!(
                "{} is unavailable ({reason}); try again shortly",
                provider.label()
            )),
            other => rejected("provider_error", None, format!("{}: {other}", provider.label())),
        };
        let account = setup.calendar.account(&tokens.access_token).await.map_err(unavailable)?;
        let calendars = setup.calendar.list_calendars(&tokens.access_token).await.map_err(unavailable)?;
        let connection = self
            .db
            .save_grant(
                &self.keyring,
                &NewGrant {
                    firm_id: actor.firm_id,
                    user_id: actor.user_id,
                    provider,
                    account_id: account.id,
                    account_email: account.email,
                    access_token: tokens.access_token.into(),
                    refresh_token: tokens.refresh_token.map(Into::into),
                    expires_at: Some(self.clock.now() + Duration::seconds(tokens.expires_in_secs)),
                    scopes: tokens.scopes,
                },
                &calendar_infos(calendars),
            )
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(connection_id = %connection.id, provider = provider.as_str(), "calendar connected");
        Ok(connection)
    }

    /// Connects a CalDAV account (iCloud, Fastmail, Nextcloud, any RFC 4791 server) with a user
    /// name and an app-specific password: the calendars are discovered, the sign-in is checked
    /// and stored sealed like OAuth tokens. Connecting the same account again (same principal)
    /// brings the same connection back with the new password.
    pub async fn connect_caldav(&self, actor: &Actor, input: CalDavInput) -> Result<Connection, ConnectError> {
        let server = caldav_server(&input, self.providers.caldav_local)?;
        let username = input.username.as_deref().map(str::trim).unwrap_or_default();
        if username.is_empty() || username.len() > 320 {
            return Err(rejected(
                "invalid_request",
                Some("username"),
                "give the user name (usually your e-mail address), up to 320 characters",
            ));
        }
        let password = input.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
        if password.is_empty() || password.len() > 1024 {
            return Err(rejected(
                "invalid_request",
                Some("password"),
                "give the password (for iCloud and Fastmail, an app-specific password)",
            ));
        }
        if !self.providers.caldav_local {
            public_by_dns(&server).await?;
        }
        let http = &self.providers.http;
        let auth = calsync_providers::caldav::DavAuth { username, password: &password };
        let account = calsync_providers::caldav::discover(http, server.as_str(), &auth).await.map_err(|e| match e {
            ProviderError::Reauthorize { reason, .. } => rejected("invalid_credentials", Some("password"), reason),
            ProviderError::Retryable { reason, .. } => ConnectError::ProviderUnavailable(format!(
                "the CalDAV server could not be reached ({reason}); check the address or try again shortly"
            )),
            ProviderError::NotFound => {
                rejected("caldav_error", Some("server_url"), "no CalDAV service at this address")
            }
            other => rejected("caldav_error", Some("server_url"), other.to_string()),
        })?;
        if !self.providers.caldav_local {
            // Discovery may lead to other hosts (iCloud's partition hosts): each must be public
            // too, and reached over https, as calsync sends the password there from now on.
            let mut found: Vec<&url::Url> = vec![&account.principal, &account.home];
            found.extend(account.calendars.iter().map(|c| &c.href));
            for u in found {
                if u.scheme() != "https" || local_host(u) {
                    return Err(rejected(
                        "caldav_error",
                        Some("server_url"),
                        "the server points to an address that is not public https",
                    ));
                }
                if u.host_str() != server.host_str() {
                    public_by_dns(u).await?;
                }
            }
        }
        let for_events: Vec<_> = account.calendars.iter().filter(|c| c.events).collect();
        if for_events.is_empty() {
            return Err(rejected("no_calendars", Some("server_url"), "this account has no calendar that holds events"));
        }
        let credentials = calsync_providers::caldav::DavCredentials::of(&account, username, &password);
        let token = credentials.token();
        let calendar = self.providers.calendar(Provider::CalDav).expect("CalDAV needs no configuration");
        let calendars = calendar.list_calendars(&token).await.map_err(|e| match e {
            ProviderError::Retryable { reason, .. } => {
                ConnectError::ProviderUnavailable(format!("the CalDAV server is unavailable ({reason})"))
            }
            other => rejected("caldav_error", Some("server_url"), other.to_string()),
        })?;
        let connection = self
            .db
            .save_grant(
                &self.keyring,
                &NewGrant {
                    firm_id: actor.firm_id,
                    user_id: actor.user_id,
                    provider: Provider::CalDav,
                    account_id: credentials.principal.clone(),
                    // A user name that is no address is shown with its server: "ann" on two
                    // servers are two accounts.
                    account_email: if username.contains('@') {
                        username.to_lowercase()
                    } else {
                        format!("{}@{}", username.to_lowercase(), account.principal.host_str().unwrap_or("caldav"))
                    },
                    access_token: token.into(),
                    refresh_token: None,
                    expires_at: None,
                    scopes: Vec::new(),
                },
                &calendar_infos(calendars),
            )
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(connection_id = %connection.id, provider = "caldav", host = server.host_str().unwrap_or(""), "calendar connected");
        Ok(connection)
    }

    /// The server (the principal's origin) and user name of one of the caller's CalDAV
    /// connections, to fill in the form that reconnects it. `None` for other providers.
    pub async fn caldav_sign_in(
        &self,
        actor: &Actor,
        id: ConnectionId,
    ) -> Result<Option<(String, String)>, ServiceError> {
        let c = self.get(actor, id).await?;
        if c.provider != Provider::CalDav {
            return Ok(None);
        }
        let tokens = self.db.tokens(&self.keyring, actor.firm_id, id).await?;
        let creds =
            tokens.access_token.as_deref().and_then(|t| calsync_providers::caldav::DavCredentials::read(t).ok());
        Ok(Some(match creds {
            // The principal itself: discovery starts from it on servers without a well-known
            // address as well.
            Some(c) => (c.principal, c.username),
            None => (String::new(), c.account_email),
        }))
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<Connection>, ServiceError> {
        Ok(self.db.connections(actor.firm_id, Some(actor.user_id)).await?)
    }

    pub async fn get(&self, actor: &Actor, id: ConnectionId) -> Result<Connection, ServiceError> {
        Ok(self.db.connection(actor.firm_id, Some(actor.user_id), id).await?)
    }

    /// The account's calendars as the provider lists them now (calendars added or removed since
    /// connecting show up), with the user's selection. When the provider cannot be asked, the list
    /// stored at the last successful listing is returned.
    pub async fn calendars(
        self: &Arc<Self>,
        actor: &Actor,
        id: ConnectionId,
    ) -> Result<Vec<SyncedCalendar>, ServiceError> {
        let connection = self.get(actor, id).await?;
        if connection.status == ConnectionStatus::Active {
            match self.remote_calendars(actor.firm_id, id, connection.provider).await {
                Ok(list) => self.db.replace_calendars(actor.firm_id, id, &calendar_infos(list)).await?,
                Err(e) => {
                    tracing::warn!(connection_id = %id, error = %e, "calendar list not refreshed; showing the stored one")
                }
            }
        }
        self.stored_calendars(actor, id).await
    }

    /// The calendars as last listed, without asking the provider.
    pub async fn stored_calendars(&self, actor: &Actor, id: ConnectionId) -> Result<Vec<SyncedCalendar>, ServiceError> {
        self.get(actor, id).await?;
        Ok(self.db.calendars(actor.firm_id, id).await?)
    }

    /// Lists the account's calendars with a working token; a token the provider rejects is
    /// refreshed once and the call repeated.
    async fn remote_calendars(
        self: &Arc<Self>,
        firm: FirmId,
        id: ConnectionId,
        provider: Provider,
    ) -> Result<Vec<RemoteCalendar>, String> {
        let calendar = self
            .providers
            .calendar(provider)
            .ok_or_else(|| format!("{} is not configured on this server", provider.label()))?;
        let mut token = self.access_token(firm, id).await.map_err(|e| e.to_string())?;
        for attempt in 0..2 {
            match calendar.list_calendars(&token).await {
                Err(ProviderError::Reauthorize { kind: ReauthKind::TokenRejected, .. }) if attempt == 0 => {
                    token = self.refresh_now(firm, id).await.map_err(|e| e.to_string())?;
                }
                other => return other.map_err(|e| e.to_string()),
            }
        }
        Err("the provider kept rejecting fresh tokens".into())
    }

    pub async fn update_settings(
        &self,
        actor: &Actor,
        id: ConnectionId,
        change: SettingsChange,
        push_calendar: Option<String>,
    ) -> Result<Connection, ServiceError> {
        // The push target is checked before anything is saved, so a bad one changes nothing.
        if let Some(remote) = &push_calendar {
            let calendars = self.stored_calendars(actor, id).await?;
            if !calendars.iter().any(|c| &c.remote_id == remote && c.can_write) {
                return Err(ServiceError::Validation(calsync_domain::ValidationError::new(
                    "push_calendar",
                    format!("{remote:?} is not a calendar of this connection that calsync may write to"),
                )));
            }
        }
        let saved = match self.db.update_connection_settings(actor.firm_id, actor.user_id, id, &change).await? {
            Ok(c) => c,
            Err(v) => return Err(ServiceError::Validation(v)),
        };
        match push_calendar {
            Some(remote) => {
                self.db.set_push_calendar(actor.firm_id, id, Some(&remote)).await?;
                Ok(self.get(actor, id).await?)
            }
            None => Ok(saved),
        }
    }

    /// Revokes the grant at the provider where possible, then forgets it locally. The local side
    /// always completes: a provider that cannot be reached must not keep a user connected.
    pub async fn disconnect(&self, actor: &Actor, id: ConnectionId) -> Result<Connection, ServiceError> {
        let connection = self.get(actor, id).await?;
        let mut message =
            "Disconnected. Appointments already synced stay in calsync; reconnect to sync again.".to_owned();
        if connection.provider == Provider::Microsoft {
            // Microsoft offers no revocation of a single grant to the app itself.
            message.push_str(
                " calsync has forgotten its access; to withdraw the consent at Microsoft too, remove calsync under your account's app permissions.",
            );
        }
        // Push channels stop before the grant is revoked, with the access token as stored (a
        // disconnect never waits for a refresh) and within a few seconds: one that cannot be
        // stopped runs out on its own. A channel a running sync opens meanwhile is closed by that
        // sync once it finds the connection gone.
        let channels = self.db.channels(actor.firm_id, id).await.unwrap_or_default();
        if !channels.is_empty()
            && let Some(setup) = self.providers.get(connection.provider)
            && let Some(token) =
                self.db.tokens(&self.keyring, actor.firm_id, id).await.ok().and_then(|t| t.access_token)
        {
            let limit = std::time::Duration::from_secs(5);
            calsync_engine::sync::stop_all(setup.calendar.as_ref(), &token, &channels, limit).await;
        }
        if let Some(setup) = self.providers.get(connection.provider)
            && setup.oauth.revoke_url.is_some()
        {
            // Tokens that cannot be read (a removed key) must not block disconnecting.
            let tokens = self.db.tokens(&self.keyring, actor.firm_id, id).await.ok();
            if let Some(token) = tokens.and_then(|t| t.refresh_token.or(t.access_token))
                && let Err(e) = setup.oauth.revoke(&self.providers.http, &token).await
            {
                tracing::warn!(connection_id = %id, error = %e, "revocation at the provider failed");
                message = format!(
                    "Disconnected here, but {} could not be told ({e}). You can also remove calsync's access in your account's security settings.",
                    connection.provider.label()
                );
            }
        }
        let c = self.db.disconnect(actor.firm_id, actor.user_id, id, &message).await?;
        tracing::info!(connection_id = %id, "calendar disconnected");
        Ok(c)
    }
}

/// What connecting a CalDAV account takes: a server (or a known provider) and a sign-in.
#[derive(Debug, Default, Clone)]
pub struct CalDavInput {
    pub server_url: Option<String>,
    /// `icloud` or `fastmail`: their server, without typing it.
    pub provider: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// The CalDAV servers of providers users pick by name.
pub const CALDAV_PRESETS: &[(&str, &str, &str)] = &[
    ("icloud", "Apple iCloud", "https://caldav.icloud.com/"),
    ("fastmail", "Fastmail", "https://caldav.fastmail.com/"),
];

/// The server to discover from: a preset's, or the given address, checked. In production the
/// address must be https and must not name this machine or a private network by IP or as
/// `localhost` (calsync would otherwise probe its own network for whoever asks).
fn caldav_server(input: &CalDavInput, local_allowed: bool) -> Result<url::Url, ConnectError> {
    let given = input.server_url.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let preset = input.provider.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let raw = match (given, preset) {
        (Some(url), _) => url.to_owned(),
        (None, Some(p)) => match CALDAV_PRESETS.iter().find(|(k, _, _)| k.eq_ignore_ascii_case(p)) {
            Some((_, _, url)) => (*url).to_owned(),
            None => {
                let known: Vec<_> = CALDAV_PRESETS.iter().map(|(k, _, _)| *k).collect();
                return Err(rejected(
                    "invalid_request",
                    Some("provider"),
                    format!("unknown provider {p:?}: expected {} or a server_url", known.join(", ")),
                ));
            }
        },
        (None, None) => {
            return Err(rejected(
                "invalid_request",
                Some("server_url"),
                "give the CalDAV server's address (or provider: icloud or fastmail)",
            ));
        }
    };
    if raw.len() > 2048 {
        return Err(rejected("invalid_request", Some("server_url"), "the address is longer than 2048 characters"));
    }
    let url = calsync_providers::caldav::server_url(&raw)
        .ok()
        .filter(|u| u.username().is_empty() && u.password().is_none())
        .ok_or_else(|| {
            rejected(
                "invalid_request",
                Some("server_url"),
                format!("{raw:?} is not an http(s) server address (and carries no sign-in)"),
            )
        })?;
    if !local_allowed {
        if url.scheme() != "https" {
            return Err(rejected(
                "invalid_request",
                Some("server_url"),
                "the address must start with https:// (your password travels to it)",
            ));
        }
        if local_host(&url) {
            return Err(rejected(
                "invalid_request",
                Some("server_url"),
                "the address must be a public server, not this machine or a private network",
            ));
        }
    }
    Ok(url)
}

/// Whether a URL names this machine or a private, link-local or unique-local network.
fn local_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => local_ip(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => local_ip(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local") || d.ends_with(".internal")
        }
        None => true,
    }
}

/// Whether an address is this machine's, a private network's (RFC 1918, shared 100.64/10,
/// unique-local), link-local, unspecified or broadcast.
fn local_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| local_ip(std::net::IpAddr::V4(v4)))
        }
    }
}

/// Refuses a server whose name resolves to this machine or a private network (a public name
/// pointed at 127.0.0.1, say). Checked at connect time for the address given and for every
/// host discovery leads to.
async fn public_by_dns(url: &url::Url) -> Result<(), ConnectError> {
    let Some(host) = url.host_str() else { return Ok(()) };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|_| rejected("caldav_error", Some("server_url"), format!("{host} cannot be found (DNS)")))?;
    for a in addrs {
        if local_ip(a.ip()) {
            return Err(rejected(
                "invalid_request",
                Some("server_url"),
                "the address must be a public server, not this machine or a private network",
            ));
        }
    }
    Ok(())
}

/// The provider's calendars as the store keeps them.
pub(crate) fn calendar_infos(list: Vec<RemoteCalendar>) -> Vec<CalendarInfo> {
    list.into_iter()
        .map(|c| CalendarInfo {
            remote_id: c.remote_id,
            name: c.name,
            is_primary: c.primary,
            can_write: c.can_write,
            time_zone: c.time_zone,
            color: c.color,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(
        url: Option<&str>,
        provider: Option<&str>,
        local: bool,
    ) -> Result<String, (Option<&'static str>, String)> {
        let input = CalDavInput {
            server_url: url.map(str::to_owned),
            provider: provider.map(str::to_owned),
            ..Default::default()
        };
        caldav_server(&input, local).map(|u| u.to_string()).map_err(|e| match e {
            ConnectError::Rejected { field, message, .. } => (field, message),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn caldav_servers_are_presets_or_public_https_addresses() {
        assert_eq!(server(None, Some("icloud"), false).unwrap(), "https://caldav.icloud.com/");
        assert_eq!(server(None, Some("Fastmail"), false).unwrap(), "https://caldav.fastmail.com/");
        assert_eq!(
            server(Some("cloud.example.com/remote.php/dav"), None, false).unwrap(),
            "https://cloud.example.com/remote.php/dav"
        );
        // A typed address wins over the preset.
        assert_eq!(
            server(Some("https://dav.example.org/"), Some("icloud"), false).unwrap(),
            "https://dav.example.org/"
        );
        assert_eq!(server(None, Some("yahoo"), false).unwrap_err().0, Some("provider"));
        assert_eq!(server(None, None, false).unwrap_err().0, Some("server_url"));
        for bad in [
            "http://dav.example.org/",
            "https://127.0.0.1:5232/",
            "https://localhost/",
            "https://10.0.0.7/dav",
            "https://192.168.1.2/",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://nas.local/",
            "https://ann:secret@dav.example.org/",
            "ftp://dav.example.org/",
        ] {
            let (field, why) = server(Some(bad), None, false).unwrap_err();
            assert_eq!(field, Some("server_url"), "{bad}: {why}");
        }
        // Development and tests take a server on this machine over http.
        assert_eq!(server(Some("http://127.0.0.1:5232/"), None, true).unwrap(), "http://127.0.0.1:5232/");
    }
}
