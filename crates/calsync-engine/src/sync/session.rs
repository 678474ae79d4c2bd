//! One run of a sync: the working token, the counts, and every provider call made through
//! [`call!`], which refreshes a rejected token once, retries what is worth retrying with
//! exponential backoff and jitter (honouring `Retry-After`), and counts each HTTP request.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use calsync_domain::connection::{ConnectionStatus, StatusReason};
use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_providers::{ProviderError, ReauthKind};
use calsync_store::{AttemptCounts, Connection, CursorMove, Db};
use rand::Rng;

use super::SyncConfig;
use crate::tokens::{TokenError, TokenSource};

/// Why a whole calendar (or the whole sync) stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Stop {
    /// The grant is unusable; the connection's status says so and the user must reconnect.
    #[error("{0}")]
    Reauthorize(String),
    /// The provider stayed unavailable or throttled through every retry.
    #[error("{0}")]
    Unavailable(String),
    /// The provider refused in a way retrying will not fix.
    #[error("{0}")]
    Permanent(String),
    #[error("{0}")]
    Internal(String),
}

impl Stop {
    /// The error kind of the attempt log.
    pub fn kind(&self) -> &'static str {
        match self {
            Stop::Reauthorize(_) => "reauthorize",
            Stop::Unavailable(_) => "retry_after",
            Stop::Permanent(_) => "permanent",
            Stop::Internal(_) => "internal",
        }
    }

    pub fn from_provider(e: &ProviderError) -> Self {
        match e {
            ProviderError::Reauthorize { reason, .. } => Stop::Reauthorize(reason.clone()),
            ProviderError::Retryable { reason, .. } => Stop::Unavailable(reason.clone()),
            other => Stop::Permanent(other.to_string()),
        }
    }
}

impl From<calsync_store::StoreError> for Stop {
    fn from(e: calsync_store::StoreError) -> Self {
        Stop::Internal(format!("storage: {e}"))
    }
}

impl From<TokenError> for Stop {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Reauthorize(m) => Stop::Reauthorize(m),
            TokenError::Unavailable(m) => Stop::Unavailable(m),
            TokenError::NotConfigured(p) => Stop::Permanent(format!("{p} is not configured on this server")),
            other => Stop::Internal(other.to_string()),
        }
    }
}

/// What a sync that stopped early still records: its counts, and the cursors of the calendars
/// it finished.
#[derive(Debug, Default)]
pub struct Progress {
    pub counts: AttemptCounts,
    pub cursors: Vec<CursorMove>,
}

/// What to do after a failed call.
pub enum Next {
    Again,
    Fail(ProviderError),
}

pub struct Session {
    pub db: Db,
    pub tokens: Arc<TokenSource>,
    pub config: SyncConfig,
    pub firm: FirmId,
    pub connection: ConnectionId,
    pub label: &'static str,
    /// `google`, `microsoft` or `caldav`, for metrics.
    pub provider: &'static str,
    pub token: String,
    pub counts: AttemptCounts,
    /// Items that failed on their own (recorded against the item; the rest went on).
    pub item_errors: Vec<String>,
    /// Links whose destructive change waits for confirmation.
    pub held: usize,
    /// What the sync noticed without failing, each once.
    pub notes: Vec<String>,
    /// Set once the grant turned out unusable: nothing more is attempted.
    pub reauthorize: Option<String>,
    /// Set once a call stayed throttled or unavailable through every retry: no more writes
    /// are attempted in this sync.
    pub throttled: bool,
    /// The connection's push channels after this sync kept them.
    pub channels: super::ChannelHealth,
    /// The provider account's request budget (shared with its other connections).
    pub budget: Option<Arc<crate::budget::AccountBudget>>,
    /// The new cursors of the calendars done, stored with the attempt's outcome.
    pub cursors: Vec<CursorMove>,
    /// Where the counts so far are published for `sync_status` (a sync run by the engine).
    pub live: Option<LiveCounts>,
}

/// A running sync's counts so far, shared with whoever asks for its progress.
#[derive(Debug, Clone, Default)]
pub struct LiveCounts(Arc<std::sync::Mutex<AttemptCounts>>);

impl LiveCounts {
    pub fn get(&self) -> AttemptCounts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, counts: &AttemptCounts) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = counts.clone();
    }
}

/// A provider call with the session's token, retried as [`Session::after_error`] decides.
/// `|token| expr` must produce a provider future borrowing `token` (and anything longer-lived).
macro_rules! call {
    ($s:expr, |$t:ident| $body:expr) => {{
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            // Once the grant is known to be dead, nothing more is asked of the provider.
            if let Some(m) = &$s.reauthorize {
                break Err(calsync_providers::ProviderError::Reauthorize {
                    kind: calsync_providers::ReauthKind::Expired,
                    reason: m.clone(),
                });
            }
            $s.counts.requests += 1;
            $s.publish();
            metrics::counter!("calsync_provider_requests_total", "provider" => $s.provider).increment(1);
            let result = {
                // The account's budget: a slot (held while the request is out) and a token.
                let budget = $s.budget.clone();
                let _slot = match &budget {
                    Some(b) => Some(b.acquire().await),
                    None => None,
                };
                let $t: &str = &$s.token;
                $body.await
            };
            match result {
                Ok(v) => break Ok(v),
                Err(e) => match $s.after_error(e, &mut attempt, &mut refreshed).await {
                    $crate::sync::session::Next::Again => continue,
                    $crate::sync::session::Next::Fail(e) => break Err(e),
                },
            }
        }
    }};
}
pub(crate) use call;

impl Session {
    pub async fn start(
        db: Db,
        tokens: Arc<TokenSource>,
        config: SyncConfig,
        connection: &Connection,
        budget: Option<Arc<crate::budget::AccountBudget>>,
    ) -> Result<Self, Stop> {
        let token = tokens.access_token_of(connection).await?;
        Ok(Session {
            db,
            tokens,
            config,
            firm: connection.firm_id,
            connection: connection.id,
            label: connection.provider.label(),
            provider: connection.provider.as_str(),
            token,
            counts: AttemptCounts::default(),
            item_errors: Vec::new(),
            held: 0,
            notes: Vec::new(),
            reauthorize: None,
            throttled: false,
            channels: super::ChannelHealth::default(),
            budget,
            cursors: Vec::new(),
            live: None,
        })
    }

    /// Publishes the counts so far (see [`LiveCounts`]).
    pub fn publish(&self) {
        if let Some(live) = &self.live {
            live.set(&self.counts);
        }
    }

    pub async fn after_error(&mut self, e: ProviderError, attempt: &mut u32, refreshed: &mut bool) -> Next {
        match e {
            ProviderError::Reauthorize { kind: ReauthKind::TokenRejected, .. } if !*refreshed => {
                *refreshed = true;
                match self.tokens.refresh_now(self.firm, self.connection).await {
                    Ok(t) => {
                        self.token = t;
                        Next::Again
                    }
                    Err(TokenError::Reauthorize(m)) => {
                        self.reauthorize = Some(m.clone());
                        Next::Fail(ProviderError::Reauthorize { kind: ReauthKind::Expired, reason: m })
                    }
                    Err(other) => Next::Fail(ProviderError::retryable(other.to_string())),
                }
            }
            ProviderError::Reauthorize { kind, reason } => {
                // Refused even with a fresh token, or refused outright: the user must reconnect.
                let (status, why, msg) = match kind {
                    ReauthKind::Revoked => (
                        ConnectionStatus::Revoked,
                        StatusReason::GrantRevoked,
                        format!("Access to this {} account was revoked. Reconnect it to resume syncing.", self.label),
                    ),
                    ReauthKind::Interaction => (
                        ConnectionStatus::Expired,
                        StatusReason::SignInRequired,
                        format!("{} wants you to sign in again. Reconnect to resume syncing.", self.label),
                    ),
                    ReauthKind::Expired | ReauthKind::TokenRejected => (
                        ConnectionStatus::Expired,
                        StatusReason::GrantExpired,
                        format!("{} refused calsync's access. Reconnect the account to resume syncing.", self.label),
                    ),
                };
                tracing::warn!(connection_id = %self.connection, %reason, "calendar access refused; reconnect needed");
                if let Err(e) =
                    self.db.set_connection_status(self.firm, self.connection, None, status, why, &msg, false).await
                {
                    tracing::error!(connection_id = %self.connection, error = %e, "could not record the status");
                }
                self.reauthorize = Some(msg.clone());
                Next::Fail(ProviderError::Reauthorize { kind, reason: msg })
            }
            ProviderError::Retryable { after, reason } if *attempt < self.config.retries => {
                *attempt += 1;
                if let Some(after) = after {
                    metrics::counter!("calsync_provider_throttles_total", "provider" => self.provider).increment(1);
                    // The whole account waits, not just this request.
                    if let Some(b) = &self.budget {
                        b.hold_off(after.min(self.config.retry_after_cap));
                    }
                }
                let wait = match after {
                    Some(after) => after.min(self.config.retry_after_cap),
                    None => self.backoff(*attempt),
                };
                tracing::info!(connection_id = %self.connection, attempt = *attempt, %reason, wait_ms = wait.as_millis() as u64, "provider busy; retrying");
                tokio::time::sleep(wait).await;
                Next::Again
            }
            other => {
                self.throttled |= other.is_retryable();
                Next::Fail(other)
            }
        }
    }

    /// Exponential with full jitter, capped.
    fn backoff(&self, attempt: u32) -> StdDuration {
        let exp = self.config.backoff_base.saturating_mul(1u32 << attempt.min(16));
        let top = exp.min(self.config.backoff_cap);
        let millis = top.as_millis().max(1) as u64;
        StdDuration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// What is recorded when the sync stops here.
    pub fn progress(&mut self) -> Progress {
        Progress { counts: std::mem::take(&mut self.counts), cursors: std::mem::take(&mut self.cursors) }
    }

    /// A failure of one item: recorded, and the sync goes on.
    pub fn item_failed(&mut self, what: String) {
        tracing::warn!(connection_id = %self.connection, error = %what, "sync item failed");
        self.item_errors.push(what);
    }
}
