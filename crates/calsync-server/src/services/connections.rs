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
                    expires_at: self.clock.now() + Duration::seconds(tokens.expires_in_secs),
                    scopes: tokens.scopes,
                },
                &calendar_infos(calendars),
            )
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(connection_id = %connection.id, provider = provider.as_str(), "calendar connected");
        Ok(connection)
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
        let setup = self.setup(provider).map_err(|e| e.to_string())?;
        let mut token = self.access_token(firm, id).await.map_err(|e| e.to_string())?;
        for attempt in 0..2 {
            match setup.calendar.list_calendars(&token).await {
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

/// The provider's calendars as the store keeps them.
pub(crate) fn calendar_infos(list: Vec<RemoteCalendar>) -> Vec<CalendarInfo> {
    list.into_iter()
        .map(|c| CalendarInfo {
            remote_id: c.remote_id,
            name: c.name,
            is_primary: c.primary,
            can_write: c.can_write,
            time_zone: c.time_zone,
        })
        .collect()
}
