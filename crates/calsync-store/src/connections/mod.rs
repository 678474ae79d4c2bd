//! Calendar connections, their OAuth authorization records and calendars. Tokens and PKCE
//! verifiers pass through this module in the clear only in memory: they are sealed with the
//! [`Keyring`] before any SQL sees them.

use crate::crypto::{Binding, CryptoError, Keyring};
use crate::{Backend, Db, StoreError, on_pool};
use calsync_domain::connection::{
    ConflictStrategy, ConnectionSettings, ConnectionStatus, DeletePolicy, Provider, StatusReason, SyncWindowDays,
};
use calsync_domain::ids::{AuthorizationId, ConnectionId, FirmId, SyncedCalendarId, UserId};
use calsync_domain::{Secret, ValidationError};
use chrono::{DateTime, Duration, Utc};
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub firm_id: FirmId,
    pub user_id: UserId,
    pub provider: Provider,
    pub account_email: String,
    pub status: ConnectionStatus,
    /// What the user should know or do, in words (empty when all is well).
    pub status_message: String,
    /// Why the connection is not active, typed (`None` while active).
    pub status_reason: Option<StatusReason>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub granted_scopes: Vec<String>,
    pub settings: ConnectionSettings,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub has_refresh_token: bool,
    /// Remote id of the calendar new appointments are created in; `None` for the primary.
    pub push_calendar: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Syncs that failed in a row (reset by one that does not): the backoff's exponent.
    pub failure_count: i32,
    /// When the background worker syncs it next (`None`: not scheduled).
    pub next_sync_at: Option<DateTime<Utc>>,
}

/// Tokens in the clear, in memory only. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &self.access_token.as_ref().map(|_| "[redacted]"))
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A completed authorization, to store as a new connection or onto the existing one for the account.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub firm_id: FirmId,
    pub user_id: UserId,
    pub provider: Provider,
    /// The provider's immutable account id: what a reconnect is matched on.
    pub account_id: String,
    /// For display; updated when the account's address changed.
    pub account_email: String,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// When the access token expires; `None` for a CalDAV password, which does not.
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedCalendar {
    pub id: SyncedCalendarId,
    pub connection_id: ConnectionId,
    pub remote_id: String,
    pub name: String,
    pub is_primary: bool,
    pub can_write: bool,
    pub time_zone: Option<String>,
    /// `#RRGGBB`, as the provider gives it.
    pub color: Option<String>,
    pub selected: bool,
    /// Where the next incremental listing starts, as of when the calendar was read (see
    /// [`Db::calendar_cursor`]).
    pub cursor: Option<crate::CalendarCursor>,
}

/// A calendar as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarInfo {
    pub remote_id: String,
    pub name: String,
    pub is_primary: bool,
    pub can_write: bool,
    pub time_zone: Option<String>,
    /// `#RRGGBB`, as the provider gives it.
    pub color: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAuthorization {
    pub firm_id: FirmId,
    pub user_id: UserId,
    pub provider: Provider,
    pub state_hash: String,
    pub pkce_verifier: Secret,
    pub redirect_uri: String,
    pub expires_at: DateTime<Utc>,
}

/// A consumed authorization record.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub id: AuthorizationId,
    pub provider: Provider,
    pub pkce_verifier: Secret,
    pub redirect_uri: String,
}

/// Why a `state` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRejection {
    /// Never issued (forged or mistyped).
    Unknown,
    /// Issued to someone else.
    OtherUser,
    /// Already used once.
    Used,
    Expired,
}

/// What a refresh returned: a new refresh token only where the provider rotates them.
#[derive(Clone, Copy)]
pub struct RefreshedTokens<'a> {
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

/// The settings part of a PATCH, already validated; `None` leaves a value alone.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub sync_enabled: Option<bool>,
    pub sync_window_days: Option<SyncWindowDays>,
    pub conflict_strategy: Option<ConflictStrategy>,
    pub delete_policy: Option<DeletePolicy>,
    /// Remote ids of the calendars to sync; all others are deselected.
    pub selected_calendars: Option<Vec<String>>,
}

const COLUMNS: &str = "id, firm_id, user_id, provider, account_email, status, status_message, status_reason, token_expires_at, \
    granted_scopes, sync_enabled, sync_window_days, conflict_strategy, delete_policy, last_sync_at, last_error, \
    refresh_token IS NOT NULL AS has_refresh_token, push_calendar, created_at, updated_at, failure_count, next_sync_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    firm_id: Uuid,
    user_id: Uuid,
    provider: String,
    account_email: String,
    status: String,
    status_message: String,
    status_reason: Option<String>,
    token_expires_at: Option<DateTime<Utc>>,
    granted_scopes: String,
    sync_enabled: bool,
    sync_window_days: i32,
    conflict_strategy: String,
    delete_policy: String,
    last_sync_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    has_refresh_token: bool,
    push_calendar: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    failure_count: i32,
    next_sync_at: Option<DateTime<Utc>>,
}

fn corrupt(what: &str) -> impl Fn(ValidationError) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("oauth_connections.{what}: {e}"))
}

impl TryFrom<Row> for Connection {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Connection {
            id: r.id.into(),
            firm_id: r.firm_id.into(),
            user_id: r.user_id.into(),
            provider: r.provider.parse().map_err(corrupt("provider"))?,
            account_email: r.account_email,
            status: r.status.parse().map_err(corrupt("status"))?,
            status_message: r.status_message,
            status_reason: r.status_reason.map(|s| s.parse()).transpose().map_err(corrupt("status_reason"))?,
            token_expires_at: r.token_expires_at,
            granted_scopes: r.granted_scopes.split_whitespace().map(str::to_owned).collect(),
            settings: ConnectionSettings {
                sync_enabled: r.sync_enabled,
                sync_window_days: SyncWindowDays::parse(i64::from(r.sync_window_days))
                    .map_err(corrupt("sync_window_days"))?,
                conflict_strategy: r.conflict_strategy.parse().map_err(corrupt("conflict_strategy"))?,
                delete_policy: r.delete_policy.parse().map_err(corrupt("delete_policy"))?,
            },
            last_sync_at: r.last_sync_at,
            last_error: r.last_error,
            has_refresh_token: r.has_refresh_token,
            push_calendar: r.push_calendar,
            created_at: r.created_at,
            updated_at: r.updated_at,
            failure_count: r.failure_count,
            next_sync_at: r.next_sync_at,
        })
    }
}

/// The columns of [`CalendarRow`], for queries of calendars outside this module.
pub(crate) const CALENDAR_COLUMNS: &str = "c.id, c.connection_id, c.remote_id, c.name, c.is_primary, c.can_write, c.time_zone, c.color, c.selected, \
     c.sync_cursor, c.cursor_window_start, c.cursor_window_end";

#[derive(sqlx::FromRow)]
pub(crate) struct CalendarRow {
    id: Uuid,
    connection_id: Uuid,
    remote_id: String,
    name: String,
    is_primary: bool,
    can_write: bool,
    time_zone: Option<String>,
    color: Option<String>,
    selected: bool,
    sync_cursor: Option<String>,
    cursor_window_start: Option<DateTime<Utc>>,
    cursor_window_end: Option<DateTime<Utc>>,
}

impl From<CalendarRow> for SyncedCalendar {
    fn from(r: CalendarRow) -> Self {
        SyncedCalendar {
            id: r.id.into(),
            connection_id: r.connection_id.into(),
            remote_id: r.remote_id,
            name: r.name,
            is_primary: r.is_primary,
            can_write: r.can_write,
            time_zone: r.time_zone,
            color: r.color,
            selected: r.selected,
            cursor: match (r.sync_cursor, r.cursor_window_start, r.cursor_window_end) {
                (Some(cursor), Some(window_start), Some(window_end)) => {
                    Some(crate::CalendarCursor { cursor, window_start, window_end })
                }
                _ => None,
            },
        }
    }
}

fn access_binding(firm: FirmId, id: ConnectionId) -> Binding<'static> {
    Binding { firm: firm.as_uuid(), record: id.as_uuid(), column: "access_token" }
}

fn refresh_binding(firm: FirmId, id: ConnectionId) -> Binding<'static> {
    Binding { firm: firm.as_uuid(), record: id.as_uuid(), column: "refresh_token" }
}

fn verifier_binding(firm: FirmId, id: AuthorizationId) -> Binding<'static> {
    Binding { firm: firm.as_uuid(), record: id.as_uuid(), column: "pkce_verifier" }
}

fn open(keyring: &Keyring, sealed: &str, binding: &Binding<'_>) -> Result<String, StoreError> {
    keyring
        .open(sealed, binding)
        .map_err(|e: CryptoError| StoreError::Corrupt(format!("sealed {}: {e}", binding.column)))
}

/// Makes a connection's stored calendars match the provider's list, inside a transaction: the
/// same code for both backends and for both callers (connect and re-listing).
macro_rules! replace_calendars_in {
    ($tx:expr, $firm:expr, $id:expr, $list:expr, $now:expr) => {{
            let existing: Vec<(String, bool)> =
            sqlx::query_as("SELECT remote_id, selected FROM synced_calendars WHERE connection_id = $1 AND firm_id = $2")
                .bind($id.as_uuid())
                .bind($firm.as_uuid())
                .fetch_all(&mut **$tx)
                .await?;
        let keeps_selection = existing.iter().any(|(r, sel)| *sel && $list.iter().any(|c| &c.remote_id == r));
        for (remote, _) in existing.iter().filter(|(r, _)| !$list.iter().any(|c| &c.remote_id == r)) {
            sqlx::query("DELETE FROM synced_calendars WHERE connection_id = $1 AND remote_id = $2")
                .bind($id.as_uuid())
                .bind(remote)
                .execute(&mut **$tx)
                .await?;
        }
        for c in $list {
            if existing.iter().any(|(r, _)| r == &c.remote_id) {
                sqlx::query(
                    "UPDATE synced_calendars SET name = $1, is_primary = $2, can_write = $3, time_zone = $4, \
                     selected = CASE WHEN $5 THEN selected ELSE $2 END, updated_at = $6, color = $9 \
                     WHERE connection_id = $7 AND remote_id = $8",
                )
                .bind(&c.name)
                .bind(c.is_primary)
                .bind(c.can_write)
                .bind(&c.time_zone)
                .bind(keeps_selection)
                .bind($now)
                .bind($id.as_uuid())
                .bind(&c.remote_id)
                .bind(&c.color)
                .execute(&mut **$tx)
                .await?;
            } else {
                sqlx::query(
                    "INSERT INTO synced_calendars (id, firm_id, connection_id, remote_id, name, is_primary, can_write, \
                     time_zone, selected, created_at, updated_at, color) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
                )
                .bind(SyncedCalendarId::new().as_uuid())
                .bind($firm.as_uuid())
                .bind($id.as_uuid())
                .bind(&c.remote_id)
                .bind(&c.name)
                .bind(c.is_primary)
                .bind(c.can_write)
                .bind(&c.time_zone)
                .bind(c.is_primary && !keeps_selection)
                .bind($now)
                .bind(&c.color)
                .execute(&mut **$tx)
                .await?;
            }
        }
    }};
}

// After the macro: textual scope.
mod authorizations;
mod calendars;
mod keys;
mod tokens;

impl Db {
    /// `BEGIN` for a transaction that will write after reading: SQLite must take the write lock
    /// up front, or a concurrent writer makes the upgrade fail instead of wait.
    pub(crate) fn begin_write_sql(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Stores a fresh grant and the account's calendars, in one transaction: onto the user's
    /// existing connection for this account (reconnect), or as a new one. The refresh token is kept
    /// when the provider sent none this time; a reconnect after a disconnect turns sync back on.
    pub async fn save_grant(
        &self,
        keyring: &Keyring,
        g: &NewGrant,
        calendars: &[CalendarInfo],
    ) -> Result<Connection, StoreError> {
        let scopes = g.scopes.join(" ");
        for attempt in 0..2 {
            let now = self.now();
            let result: Result<ConnectionId, StoreError> = on_pool!(self, pool => {
                async {
                    let mut tx = pool.begin_with(self.begin_write_sql()).await?;
                    // By the immutable id; a connection made before ids were kept is found by
                    // its address once, and gets the id now.
                    let existing: Option<(Uuid,)> = sqlx::query_as(
                        "SELECT id FROM oauth_connections WHERE firm_id = $1 AND user_id = $2 AND provider = $3 \
                         AND (account_id = $4 OR (account_id IS NULL AND account_email = $5)) \
                         ORDER BY account_id IS NULL LIMIT 1",
                    )
                    .bind(g.firm_id.as_uuid())
                    .bind(g.user_id.as_uuid())
                    .bind(g.provider.as_str())
                    .bind(&g.account_id)
                    .bind(&g.account_email)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let id = existing.map(|(id,)| ConnectionId::from(id)).unwrap_or_default();
                    let access = keyring.seal(g.access_token.expose(), &access_binding(g.firm_id, id));
                    let refresh = g.refresh_token.as_ref().map(|r| keyring.seal(r.expose(), &refresh_binding(g.firm_id, id)));
                    if existing.is_some() {
                        sqlx::query(
                            "UPDATE oauth_connections SET access_token = $1, refresh_token = COALESCE($2, refresh_token), \
                             token_expires_at = $3, granted_scopes = $4, \
                             sync_enabled = CASE WHEN status = 'revoked' THEN TRUE ELSE sync_enabled END, \
                             next_sync_at = $5, \
                             status = 'active', status_message = '', status_reason = NULL, \
                             last_error = NULL, failure_count = 0, refresh_owner = NULL, refresh_until = NULL, \
                             account_id = $7, account_email = $8, updated_at = $5 WHERE id = $6",
                        )
                        .bind(&access)
                        .bind(&refresh)
                        .bind(g.expires_at.map(crate::micros))
                        .bind(&scopes)
                        .bind(now)
                        .bind(id.as_uuid())
                        .bind(&g.account_id)
                        .bind(&g.account_email)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique(e, "account"))?;
                    } else {
                        let d = ConnectionSettings::default();
                        sqlx::query(
                            "INSERT INTO oauth_connections (id, firm_id, user_id, provider, account_email, status, \
                             status_message, access_token, refresh_token, token_expires_at, granted_scopes, sync_enabled, \
                             sync_window_days, conflict_strategy, delete_policy, next_sync_at, created_at, updated_at, \
                             account_id) \
                             VALUES ($1, $2, $3, $4, $5, 'active', '', $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14, $15)",
                        )
                        .bind(id.as_uuid())
                        .bind(g.firm_id.as_uuid())
                        .bind(g.user_id.as_uuid())
                        .bind(g.provider.as_str())
                        .bind(&g.account_email)
                        .bind(&access)
                        .bind(&refresh)
                        .bind(g.expires_at.map(crate::micros))
                        .bind(&scopes)
                        .bind(d.sync_enabled)
                        .bind(d.sync_window_days.days() as i32)
                        .bind(d.conflict_strategy.as_str())
                        .bind(d.delete_policy.as_str())
                        .bind(now)
                        .bind(&g.account_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique(e, "account"))?;
                    }
                    let firm = g.firm_id;
                    replace_calendars_in!(&mut tx, firm, id, calendars, now);
                    tx.commit().await?;
                    Ok(id)
                }
                .await
            });
            match result {
                Ok(id) => return self.connection(g.firm_id, Some(g.user_id), id).await,
                // Two callbacks for a new account raced; the loser updates the winner's row.
                Err(StoreError::Duplicate(_)) if attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::VersionMismatch)
    }

    /// Connections of `firm`, optionally only `user`'s, oldest first.
    pub async fn connections(&self, firm: FirmId, user: Option<UserId>) -> Result<Vec<Connection>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM oauth_connections WHERE firm_id = $1 AND ($2 IS NULL OR user_id = $2) ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).bind(user.map(|u| u.as_uuid())).fetch_all(pool).await?
        });
        rows.into_iter().map(Connection::try_from).collect()
    }

    pub async fn connection(
        &self,
        firm: FirmId,
        user: Option<UserId>,
        id: ConnectionId,
    ) -> Result<Connection, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM oauth_connections WHERE id = $1 AND firm_id = $2 AND ($3 IS NULL OR user_id = $3)"
        );
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .bind(user.map(|u| u.as_uuid()))
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Sets the status and message; `wipe_tokens` forgets the grant (it is useless or withdrawn).
    /// With `owner`, only while that refresher still holds the lock (so the outcome of a refresh
    /// never overwrites a disconnect or a newer grant), releasing it. Returns whether it applied.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_connection_status(
        &self,
        firm: FirmId,
        id: ConnectionId,
        owner: Option<&str>,
        status: ConnectionStatus,
        reason: StatusReason,
        message: &str,
        wipe_tokens: bool,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET status = $1, status_message = $2, status_reason = $8, \
                 last_error = CASE WHEN $1 = 'active' THEN NULL ELSE $2 END, \
                 access_token = CASE WHEN $3 THEN NULL ELSE access_token END, \
                 refresh_token = CASE WHEN $3 THEN NULL ELSE refresh_token END, \
                 token_expires_at = CASE WHEN $3 THEN NULL ELSE token_expires_at END, \
                 refresh_owner = NULL, refresh_until = NULL, updated_at = $4 \
                 WHERE id = $5 AND firm_id = $6 AND ($7 IS NULL OR refresh_owner = $7)",
            )
            .bind(status.as_str())
            .bind(message)
            .bind(wipe_tokens)
            .bind(self.now())
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .bind(owner)
            .bind(reason.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Disconnects: tokens wiped, status `revoked`, sync off. Appointments already pulled stay.
    pub async fn disconnect(
        &self,
        firm: FirmId,
        user: UserId,
        id: ConnectionId,
        message: &str,
    ) -> Result<Connection, StoreError> {
        let n = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let n = sqlx::query(
                "UPDATE oauth_connections SET status = 'revoked', status_message = $1, status_reason = 'disconnected', \
                 access_token = NULL, \
                 refresh_token = NULL, token_expires_at = NULL, sync_enabled = FALSE, next_sync_at = NULL, \
                 refresh_owner = NULL, refresh_until = NULL, updated_at = $2 \
                 WHERE id = $3 AND firm_id = $4 AND user_id = $5",
            )
            .bind(message)
            .bind(self.now())
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Its push channels are forgotten with it (the caller stops them at the provider
            // first); a late delivery then finds no channel.
            sqlx::query("DELETE FROM webhook_channels WHERE connection_id = $1 AND firm_id = $2")
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        if n != 1 {
            return Err(StoreError::NotFound);
        }
        self.connection(firm, Some(user), id).await
    }

    /// Applies a settings change atomically; an unknown calendar id fails it as a whole.
    pub async fn update_connection_settings(
        &self,
        firm: FirmId,
        user: UserId,
        id: ConnectionId,
        change: &SettingsChange,
    ) -> Result<Result<Connection, ValidationError>, StoreError> {
        let current = self.connection(firm, Some(user), id).await?;
        if change.sync_enabled == Some(true) && current.status == ConnectionStatus::Revoked {
            return Ok(Err(ValidationError::new(
                "sync_enabled",
                "this connection is disconnected; reconnect it to sync again",
            )));
        }
        let outcome: Result<(), ValidationError> = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let known: Vec<(String,)> = sqlx::query_as("SELECT remote_id FROM synced_calendars WHERE connection_id = $1 AND firm_id = $2")
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
            let unknown = change
                .selected_calendars
                .iter()
                .flatten()
                .enumerate()
                .find(|(_, r)| !known.iter().any(|(k,)| k == *r));
            if let Some((i, r)) = unknown {
                Err(ValidationError::new(format!("selected_calendars[{i}]"), format!("{r:?} is not a calendar of this connection")))
            } else {
                // Only the given settings are written, so concurrent changes to others survive.
                sqlx::query(
                    // Auto-sync switched on: due at once.
                    "UPDATE oauth_connections SET sync_enabled = COALESCE($1, sync_enabled), \
                     next_sync_at = CASE WHEN $1 AND NOT sync_enabled THEN $5 ELSE next_sync_at END, \
                     sync_window_days = COALESCE($2, sync_window_days), conflict_strategy = COALESCE($3, conflict_strategy), \
                     delete_policy = COALESCE($4, delete_policy), updated_at = $5 WHERE id = $6 AND firm_id = $7 AND user_id = $8",
                )
                .bind(change.sync_enabled)
                .bind(change.sync_window_days.map(|d| d.days() as i32))
                .bind(change.conflict_strategy.map(|c| c.as_str()))
                .bind(change.delete_policy.map(|d| d.as_str()))
                .bind(self.now())
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .bind(user.as_uuid())
                .execute(&mut *tx)
                .await?;
                if let Some(selected) = &change.selected_calendars {
                    for (remote,) in &known {
                        sqlx::query("UPDATE synced_calendars SET selected = $1 WHERE connection_id = $2 AND remote_id = $3")
                            .bind(selected.contains(remote))
                            .bind(id.as_uuid())
                            .bind(remote)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
        });
        match outcome {
            Ok(()) => Ok(Ok(self.connection(firm, Some(user), id).await?)),
            Err(v) => Ok(Err(v)),
        }
    }
}
