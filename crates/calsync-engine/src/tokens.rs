//! Working access tokens. A token expiring within [`REFRESH_MARGIN_SECONDS`] is refreshed
//! first; however many tasks or processes ask at once, one refresh per connection runs
//! (Microsoft rotates refresh tokens, and two concurrent refreshes would lose the newest): an
//! in-process single flight per connection plus a lock row in the database, with every write
//! conditional on still holding it. `invalid_grant` marks the connection expired or revoked with
//! a "Reconnect" message; outages are retried, then reported, with the grant untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use calsync_domain::clock::Clock;
use calsync_domain::connection::{ConnectionStatus, Provider, StatusReason};
use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_providers::{ProviderError, ReauthKind};
use calsync_store::crypto::Keyring;
use calsync_store::{Connection, Db, StoreError};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::registry::Providers;

/// Tokens expiring within this margin are refreshed before use.
pub const REFRESH_MARGIN_SECONDS: i64 = 5 * 60;
/// After a refresh failed for an outage, how long other callers get that answer without retrying.
pub const FAILURE_BACKOFF_SECONDS: i64 = 30;
/// Attempts at the token endpoint for network errors and 5xx, with doubling backoff.
const REFRESH_ATTEMPTS: u32 = 3;

/// Why no access token could be produced.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The user must reconnect; the connection now says so.
    #[error("{0}")]
    Reauthorize(String),
    /// The provider could not be reached; the stored grant is untouched.
    #[error("{0}")]
    Unavailable(String),
    /// The connection's provider is not configured on this server.
    #[error("{0} is not configured on this server")]
    NotConfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// When and why a connection's last refresh failed for an outage, if it did.
type LastFailure = Option<(DateTime<Utc>, String)>;

/// Access tokens of every connection, for the server's requests and the sync engine alike.
pub struct TokenSource {
    db: Db,
    keyring: Keyring,
    providers: Arc<Providers>,
    clock: Clock,
    /// Names this process in refresh locks.
    instance: String,
    /// In-process single flight: one refresh per connection at a time. The mutex holds the time
    /// and message of the last failed refresh, so waiters share its backoff.
    refreshing: Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<LastFailure>>>>,
}

impl TokenSource {
    pub fn new(db: Db, keyring: Keyring, providers: Arc<Providers>, clock: Clock) -> Self {
        let instance: String = {
            let mut rng = rand::rng();
            (0..12).map(|_| char::from(b'a' + rng.random_range(0..26u8))).collect()
        };
        Self {
            db,
            keyring,
            providers,
            clock,
            instance: format!("calsync-{instance}"),
            refreshing: Mutex::new(HashMap::new()),
        }
    }

    /// A usable access token for the connection, refreshing it first when it expires within
    /// [`REFRESH_MARGIN_SECONDS`]. However many tasks or processes ask at once, one refresh runs:
    /// Microsoft rotates refresh tokens, and two concurrent refreshes would lose the newest one.
    /// The refresh itself runs in its own task, so a caller that gives up (a request timeout)
    /// cannot abandon it halfway with a rotated token unsaved.
    pub async fn access_token(self: &Arc<Self>, firm: FirmId, id: ConnectionId) -> Result<String, TokenError> {
        let connection = self.db.connection(firm, None, id).await?;
        self.access_token_of(&connection).await
    }

    /// [`TokenSource::access_token`] for a connection the caller has just read (its status
    /// is checked here instead of being read again).
    pub async fn access_token_of(self: &Arc<Self>, connection: &Connection) -> Result<String, TokenError> {
        if matches!(connection.status, ConnectionStatus::Expired | ConnectionStatus::Revoked) {
            return Err(TokenError::Reauthorize(connection.status_message.clone()));
        }
        let (firm, id) = (connection.firm_id, connection.id);
        if connection.provider == Provider::CalDav {
            // A CalDAV sign-in does not expire and has nothing to refresh: the stored
            // credentials are the token until the server refuses them.
            return self.db.tokens(&self.keyring, firm, id).await?.access_token.ok_or_else(|| {
                TokenError::Reauthorize("calsync holds no sign-in for this calendar. Reconnect it.".into())
            });
        }
        if let Some(token) = self.stored_token(firm, id).await? {
            return Ok(token);
        }
        self.refresh(firm, id, false).await
    }

    /// Refreshes now even if the token is still fresh (a provider rejected it).
    pub async fn refresh_now(self: &Arc<Self>, firm: FirmId, id: ConnectionId) -> Result<String, TokenError> {
        let connection = self.db.connection(firm, None, id).await?;
        if connection.provider == Provider::CalDav {
            return self.access_token_of(&connection).await;
        }
        self.refresh(firm, id, true).await
    }

    async fn refresh(self: &Arc<Self>, firm: FirmId, id: ConnectionId, force: bool) -> Result<String, TokenError> {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.refresh_single_flight(firm, id, force).await })
            .await
            .map_err(|e| TokenError::Internal(format!("refresh task failed: {e}")))?
    }

    async fn refresh_single_flight(&self, firm: FirmId, id: ConnectionId, force: bool) -> Result<String, TokenError> {
        let flight = {
            let mut map = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(id).or_default().clone()
        };
        let mut last_failure = flight.lock().await;
        // Whoever held the turn before may have refreshed already, or just failed: then wait out
        // the backoff instead of hitting a provider that is down once more per waiting task.
        if !force && let Some(token) = self.fresh_token(firm, id).await? {
            return Ok(token);
        }
        if let Some((at, message)) = last_failure.as_ref()
            && self.clock.now() < *at + Duration::seconds(FAILURE_BACKOFF_SECONDS)
        {
            return Err(TokenError::Unavailable(message.clone()));
        }
        let lock_for = Duration::seconds(self.lock_seconds());
        let mut waited = StdDuration::ZERO;
        while !self.db.try_lock_refresh(firm, id, &self.instance, self.clock.now() + lock_for).await? {
            // Another process is refreshing: wait for its result rather than race it.
            if waited >= lock_for.to_std().unwrap_or_default() {
                return Err(TokenError::Unavailable("another worker is still refreshing this connection".into()));
            }
            tokio::time::sleep(StdDuration::from_millis(200)).await;
            waited += StdDuration::from_millis(200);
            if let Some(token) = self.fresh_token(firm, id).await? {
                return Ok(token);
            }
        }
        // Another process may have finished a refresh between our check and taking the lock.
        if !force && let Some(token) = self.fresh_token(firm, id).await? {
            self.db.release_refresh_lock(firm, id, &self.instance).await?;
            return Ok(token);
        }
        let result = self.refresh_locked(firm, id).await;
        match &result {
            Ok(_) => *last_failure = None,
            Err(TokenError::Unavailable(m)) => *last_failure = Some((self.clock.now(), m.clone())),
            Err(_) => {}
        }
        // Every outcome that stored something released the lock with it; this covers the rest.
        let _ = self.db.release_refresh_lock(firm, id, &self.instance).await;
        result
    }

    /// Long enough for every attempt to time out, with the backoff between them.
    fn lock_seconds(&self) -> i64 {
        let timeout = self.providers.timeout.as_secs() as i64;
        i64::from(REFRESH_ATTEMPTS) * (timeout + 5) + 15
    }

    async fn fresh_token(&self, firm: FirmId, id: ConnectionId) -> Result<Option<String>, TokenError> {
        let connection = self.db.connection(firm, None, id).await?;
        if matches!(connection.status, ConnectionStatus::Expired | ConnectionStatus::Revoked) {
            return Err(TokenError::Reauthorize(connection.status_message));
        }
        self.stored_token(firm, id).await
    }

    /// The stored access token, if it does not expire within the margin.
    async fn stored_token(&self, firm: FirmId, id: ConnectionId) -> Result<Option<String>, TokenError> {
        let tokens = self.db.tokens(&self.keyring, firm, id).await?;
        let margin = self.clock.now() + Duration::seconds(REFRESH_MARGIN_SECONDS);
        Ok(match (tokens.access_token, tokens.expires_at) {
            (Some(t), Some(exp)) if exp > margin => Some(t),
            _ => None,
        })
    }

    /// The refresh itself, with this process holding the connection's refresh lock. Every write
    /// is conditional on still holding it, so a disconnect or reconnect meanwhile is never undone.
    async fn refresh_locked(&self, firm: FirmId, id: ConnectionId) -> Result<String, TokenError> {
        let connection = self.db.connection(firm, None, id).await?;
        let provider = connection.provider;
        let setup =
            self.providers.get(provider).ok_or_else(|| TokenError::NotConfigured(provider.label().to_owned()))?;
        let tokens = self.db.tokens(&self.keyring, firm, id).await?;
        let owner = Some(self.instance.as_str());
        let Some(refresh_token) = tokens.refresh_token else {
            let msg = format!("calsync has no long-term access to this {} account. Reconnect it.", provider.label());
            self.db
                .set_connection_status(
                    firm,
                    id,
                    owner,
                    ConnectionStatus::Expired,
                    StatusReason::NoRefreshToken,
                    &msg,
                    true,
                )
                .await?;
            return Err(TokenError::Reauthorize(msg));
        };
        let mut delay = StdDuration::from_millis(250);
        let mut last = None;
        for attempt in 1..=REFRESH_ATTEMPTS {
            let result = setup.oauth.refresh(&self.providers.http, &refresh_token).await;
            let outcome = match &result {
                Ok(_) => "refreshed",
                Err(ProviderError::Reauthorize { .. }) => "refused",
                Err(_) => "failed",
            };
            metrics::counter!("calsync_token_refreshes_total", "provider" => provider.as_str(), "outcome" => outcome)
                .increment(1);
            match result {
                Ok(set) => {
                    let expires_at = self.clock.now() + Duration::seconds(set.expires_in_secs);
                    let stored = self
                        .db
                        .store_refreshed_tokens(
                            &self.keyring,
                            firm,
                            id,
                            &self.instance,
                            calsync_store::RefreshedTokens {
                                access_token: &set.access_token,
                                refresh_token: set.refresh_token.as_deref(),
                                expires_at,
                            },
                        )
                        .await?;
                    if !stored {
                        // Disconnected or reconnected meanwhile: that decision stands.
                        tracing::info!(connection_id = %id, "refresh result discarded: the connection changed meanwhile");
                        return self.fresh_token(firm, id).await?.ok_or_else(|| {
                            TokenError::Unavailable("the connection changed while it was being refreshed".into())
                        });
                    }
                    tracing::info!(connection_id = %id, rotated = set.refresh_token.is_some(), "access token refreshed");
                    return Ok(set.access_token);
                }
                Err(ProviderError::Reauthorize { kind, reason }) => {
                    let label = provider.label();
                    let (status, status_reason, msg) = match kind {
                        ReauthKind::Revoked => (
                            ConnectionStatus::Revoked,
                            StatusReason::GrantRevoked,
                            format!("Access to this {label} account was revoked. Reconnect it to resume syncing."),
                        ),
                        ReauthKind::Interaction => (
                            ConnectionStatus::Expired,
                            StatusReason::SignInRequired,
                            format!("{label} wants you to sign in again. Reconnect to resume syncing."),
                        ),
                        ReauthKind::Expired | ReauthKind::TokenRejected => (
                            ConnectionStatus::Expired,
                            StatusReason::GrantExpired,
                            format!(
                                "Access to this {label} account expired or was revoked. Reconnect it to resume syncing."
                            ),
                        ),
                    };
                    tracing::warn!(connection_id = %id, %reason, status = status.as_str(), "refresh refused; reconnect needed");
                    if !self.db.set_connection_status(firm, id, owner, status, status_reason, &msg, true).await? {
                        // A reconnect replaced the grant meanwhile; use that one.
                        return self.fresh_token(firm, id).await?.ok_or(TokenError::Reauthorize(msg));
                    }
                    return Err(TokenError::Reauthorize(msg));
                }
                Err(ProviderError::Retryable { after, reason }) => {
                    tracing::warn!(connection_id = %id, attempt, %reason, "token endpoint unavailable");
                    last = Some(reason);
                    if attempt < REFRESH_ATTEMPTS {
                        tokio::time::sleep(after.unwrap_or(delay).min(StdDuration::from_secs(5))).await;
                        delay *= 2;
                    }
                }
                Err(other) => {
                    let msg =
                        format!("{} refused to renew access ({other}). Reconnect if this persists.", provider.label());
                    self.db
                        .set_connection_status(
                            firm,
                            id,
                            owner,
                            ConnectionStatus::Error,
                            StatusReason::ProviderRefused,
                            &msg,
                            false,
                        )
                        .await?;
                    return Err(TokenError::Unavailable(msg));
                }
            }
        }
        let msg = format!(
            "{} could not be reached to renew access ({}). calsync will retry; nothing needs doing yet.",
            provider.label(),
            last.unwrap_or_default()
        );
        // The stored grant is left exactly as it was.
        self.db
            .set_connection_status(
                firm,
                id,
                owner,
                ConnectionStatus::Error,
                StatusReason::ProviderUnavailable,
                &msg,
                false,
            )
            .await?;
        Err(TokenError::Unavailable(msg))
    }
}
