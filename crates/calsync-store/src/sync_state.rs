//! Per-connection and per-calendar state of the sync engine: each calendar's incremental cursor,
//! the sync lease (one sync per connection at a time across processes) and the outcome of the
//! last sync, the calendar new appointments are pushed to, conflicts left for a person to decide,
//! and deletions held back by the mass-delete guard. Every query is scoped to the firm.

use calsync_domain::ValidationError;
use calsync_domain::appointment::AppointmentData;
use calsync_domain::ids::{
    AppointmentId, ConflictId, ConnectionId, EventLinkId, FirmId, HeldDeleteId, SyncedCalendarId, UserId,
};
use calsync_domain::sync::{ConflictSide, HeldSide};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::connections::{CALENDAR_COLUMNS, CalendarRow};
use crate::sync::{corrupt, exactly_one};
use crate::{Db, StoreError, SyncedCalendar, micros, on_pool};

/// The incremental-sync cursor of a calendar (Google sync token, Graph delta link, …) and the
/// window it was made for: a cursor only reports changes inside its own window, so a sync with
/// another window must list in full instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarCursor {
    pub cursor: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
}

/// A conflict kept for a person to decide (the manual strategy): both sides as they were when it
/// was found (or last refreshed), and which side was kept once resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub id: ConflictId,
    pub connection_id: ConnectionId,
    pub calendar_id: SyncedCalendarId,
    pub link_id: EventLinkId,
    pub appointment_id: AppointmentId,
    pub local: AppointmentData,
    pub remote: AppointmentData,
    /// The remote version the conflict is about: resolving for calsync's side writes against it.
    pub remote_etag: String,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<ConflictSide>,
    /// The fields in conflict (`title`, `time`, …); empty when the versions conflict whole (no
    /// base content to compare with).
    pub fields: Vec<String>,
    /// What both sides agreed on before they diverged, when known.
    pub base: Option<AppointmentData>,
    /// Per-field choices of the resolution (field, side), when it picked field by field; then
    /// `resolution` names the side of the fields not picked.
    pub picks: Vec<(String, ConflictSide)>,
}

/// A deletion the mass-delete guard held back until a person releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDelete {
    pub id: HeldDeleteId,
    pub connection_id: ConnectionId,
    pub calendar_id: SyncedCalendarId,
    pub link_id: EventLinkId,
    pub side: HeldSide,
    pub created_at: DateTime<Utc>,
}

const CONFLICT_COLUMNS: &str = "id, connection_id, calendar_id, link_id, appointment_id, local_data, remote_data, \
    remote_etag, remote_updated_at, created_at, resolved_at, resolution, fields, base_data, picks";

#[derive(sqlx::FromRow)]
struct ConflictRow {
    id: Uuid,
    connection_id: Uuid,
    calendar_id: Uuid,
    link_id: Uuid,
    appointment_id: Uuid,
    local_data: String,
    remote_data: String,
    remote_etag: String,
    remote_updated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
    fields: Option<String>,
    base_data: Option<String>,
    picks: Option<String>,
}

impl TryFrom<ConflictRow> for Conflict {
    type Error = StoreError;
    fn try_from(r: ConflictRow) -> Result<Self, StoreError> {
        let data = |json: &str, what: &str| {
            serde_json::from_str::<AppointmentData>(json)
                .map_err(|e| StoreError::Corrupt(format!("sync_conflicts.{what}: {e}")))
        };
        Ok(Conflict {
            id: r.id.into(),
            connection_id: r.connection_id.into(),
            calendar_id: r.calendar_id.into(),
            link_id: r.link_id.into(),
            appointment_id: r.appointment_id.into(),
            local: data(&r.local_data, "local_data")?,
            remote: data(&r.remote_data, "remote_data")?,
            remote_etag: r.remote_etag,
            remote_updated_at: r.remote_updated_at,
            created_at: r.created_at,
            resolved_at: r.resolved_at,
            resolution: r.resolution.map(|s| s.parse()).transpose().map_err(corrupt("sync_conflicts", "resolution"))?,
            fields: r.fields.unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
            base: r.base_data.as_deref().map(|b| data(b, "base_data")).transpose()?,
            picks: r
                .picks
                .unwrap_or_default()
                .split_whitespace()
                .map(|p| {
                    let (field, side) = p.split_once('=').unwrap_or((p, ""));
                    Ok((field.to_owned(), side.parse().map_err(corrupt("sync_conflicts", "picks"))?))
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }
}

const HELD_COLUMNS: &str = "id, connection_id, calendar_id, link_id, side, created_at";

#[derive(sqlx::FromRow)]
struct HeldRow {
    id: Uuid,
    connection_id: Uuid,
    calendar_id: Uuid,
    link_id: Uuid,
    side: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<HeldRow> for HeldDelete {
    type Error = StoreError;
    fn try_from(r: HeldRow) -> Result<Self, StoreError> {
        Ok(HeldDelete {
            id: r.id.into(),
            connection_id: r.connection_id.into(),
            calendar_id: r.calendar_id.into(),
            link_id: r.link_id.into(),
            side: r.side.parse().map_err(corrupt("held_deletes", "side"))?,
            created_at: r.created_at,
        })
    }
}

fn to_json(data: &AppointmentData) -> Result<String, StoreError> {
    serde_json::to_string(data).map_err(|e| StoreError::Corrupt(format!("appointment data as JSON: {e}")))
}

impl Db {
    /// Whether the firm has this connection: tells "not yours" from "nothing to do" after a
    /// conditional write matched no row.
    async fn has_connection(&self, firm: FirmId, connection: ConnectionId) -> Result<bool, StoreError> {
        let row: Option<(i32,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT 1 FROM oauth_connections WHERE id = $1 AND firm_id = $2")
                .bind(connection.as_uuid())
                .bind(firm.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    /// The calendar's cursor with its window; `None` when the next sync must list in full (no
    /// cursor yet, or one whose window is unknown and so cannot be trusted).
    /// [`StoreError::NotFound`] when the calendar is not the firm's.
    pub async fn calendar_cursor(
        &self,
        firm: FirmId,
        calendar: SyncedCalendarId,
    ) -> Result<Option<CalendarCursor>, StoreError> {
        type Cols = (Option<String>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let row: Option<Cols> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT sync_cursor, cursor_window_start, cursor_window_end FROM synced_calendars \
                 WHERE id = $1 AND firm_id = $2",
            )
            .bind(calendar.as_uuid())
            .bind(firm.as_uuid())
            .fetch_optional(pool)
            .await?
        });
        Ok(match row.ok_or(StoreError::NotFound)? {
            (Some(cursor), Some(window_start), Some(window_end)) => {
                Some(CalendarCursor { cursor, window_start, window_end })
            }
            _ => None,
        })
    }

    /// Stores the calendar's cursor after a sync; `None` clears it, so the next sync lists in
    /// full. [`StoreError::NotFound`] when the calendar is not the firm's.
    pub async fn save_calendar_cursor(
        &self,
        firm: FirmId,
        calendar: SyncedCalendarId,
        cursor: Option<&CalendarCursor>,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE synced_calendars SET sync_cursor = $1, cursor_window_start = $2, cursor_window_end = $3 \
                 WHERE id = $4 AND firm_id = $5",
            )
            .bind(cursor.map(|c| c.cursor.as_str()))
            .bind(cursor.map(|c| micros(c.window_start)))
            .bind(cursor.map(|c| micros(c.window_end)))
            .bind(calendar.as_uuid())
            .bind(firm.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        exactly_one(n)
    }

    /// Clears the cursors of all the connection's calendars (a resync: the next sync lists every
    /// calendar in full). [`StoreError::NotFound`] when the connection is not the firm's.
    pub async fn clear_cursors(&self, firm: FirmId, connection: ConnectionId) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE synced_calendars SET sync_cursor = NULL, cursor_window_start = NULL, cursor_window_end = NULL \
                 WHERE connection_id = $1 AND firm_id = $2",
            )
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 && !self.has_connection(firm, connection).await? {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Takes the sync lease of a connection for `owner` until `until`: when nobody holds it, the
    /// holder's lease has expired (a crashed worker), or `owner` already holds it (extending it).
    /// Returns whether `owner` holds it now. [`StoreError::NotFound`] when the connection is not
    /// the firm's.
    pub async fn claim_sync(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One conditional write: two workers racing for the lease cannot both see it free.
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND firm_id = $4 \
                 AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until <= $5 OR lease_owner = $1)",
            )
            .bind(owner)
            .bind(micros(until))
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .bind(self.now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 1 {
            return Ok(true);
        }
        if self.has_connection(firm, connection).await? { Ok(false) } else { Err(StoreError::NotFound) }
    }

    /// Extends the lease `owner` holds (a heartbeat): unlike [`Db::claim_sync`] it never takes a
    /// lease that is free, so a renewal arriving after the lease was given back changes
    /// nothing. Returns whether `owner` still holds it.
    pub async fn renew_sync(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET lease_until = $1 WHERE id = $2 AND firm_id = $3 AND lease_owner = $4",
            )
            .bind(micros(until))
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Gives the lease up if `owner` holds it; a lease taken over by someone else (ours expired)
    /// is left alone. [`StoreError::NotFound`] when the connection is not the firm's.
    pub async fn release_sync(&self, firm: FirmId, connection: ConnectionId, owner: &str) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND firm_id = $2 AND lease_owner = $3",
            )
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 && !self.has_connection(firm, connection).await? {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Whether someone holds an unexpired sync lease on the connection (a sync is running).
    pub async fn sync_in_progress(&self, firm: FirmId, connection: ConnectionId) -> Result<bool, StoreError> {
        let row: Option<(Option<String>, Option<DateTime<Utc>>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT lease_owner, lease_until FROM oauth_connections WHERE id = $1 AND firm_id = $2")
                .bind(connection.as_uuid())
                .bind(firm.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        let now = self.now();
        Ok(matches!(row.ok_or(StoreError::NotFound)?, (Some(_), Some(until)) if until > now))
    }

    /// Records how a sync ended: `last_sync_at` moves only on success; `last_error` is replaced
    /// (`None` clears it); `next_sync_at` is when to sync again; `failure_count` counts
    /// consecutive failures (reset by a success), for backoff.
    pub async fn record_sync_outcome(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        succeeded: bool,
        last_error: Option<&str>,
        next_sync_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(RECORD_OUTCOME)
            .bind(succeeded)
            .bind(self.now())
            .bind(last_error)
            .bind(micros(next_sync_at))
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .bind(None::<&str>)
            .execute(pool)
            .await?
            .rows_affected()
        });
        exactly_one(n)
    }

    /// When the connection is due to sync next (`None`: not scheduled, e.g. disconnected).
    pub async fn next_sync_at(
        &self,
        firm: FirmId,
        connection: ConnectionId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<(Option<DateTime<Utc>>,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT next_sync_at FROM oauth_connections WHERE id = $1 AND firm_id = $2")
                .bind(connection.as_uuid())
                .bind(firm.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.0)
    }

    /// The calendar new appointments are created in: the one named by the connection's
    /// `push_calendar` while the provider still lists it (selected for sync or not) and it is
    /// writable; else the primary calendar if writable; else `None` (nothing is pushed).
    /// [`StoreError::NotFound`] when the connection is not the firm's.
    /// [`Db::push_calendar`] from calendars already read: the chosen writable one, else the
    /// writable primary.
    pub fn push_calendar_of(calendars: &[SyncedCalendar], chosen: Option<&str>) -> Option<SyncedCalendar> {
        let chosen_one = calendars.iter().filter(|c| c.can_write && Some(c.remote_id.as_str()) == chosen);
        let primary = calendars.iter().filter(|c| c.can_write && c.is_primary);
        chosen_one
            .min_by(|a, b| a.remote_id.cmp(&b.remote_id))
            .or_else(|| primary.min_by(|a, b| a.remote_id.cmp(&b.remote_id)))
            .cloned()
    }

    pub async fn push_calendar(
        &self,
        firm: FirmId,
        connection: ConnectionId,
    ) -> Result<Option<SyncedCalendar>, StoreError> {
        let sql = format!(
            "SELECT {CALENDAR_COLUMNS} FROM synced_calendars c \
             JOIN oauth_connections o ON o.id = c.connection_id AND o.firm_id = c.firm_id \
             WHERE o.id = $1 AND o.firm_id = $2 AND c.can_write AND (c.remote_id = o.push_calendar OR c.is_primary) \
             ORDER BY CASE WHEN c.remote_id = o.push_calendar THEN 0 ELSE 1 END, c.remote_id LIMIT 1"
        );
        let row: Option<CalendarRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(connection.as_uuid())
                .bind(firm.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => Ok(Some(r.into())),
            None if self.has_connection(firm, connection).await? => Ok(None),
            None => Err(StoreError::NotFound),
        }
    }

    /// Sets the calendar new appointments are created in, by remote id; `None` means the
    /// primary. [`StoreError::Invalid`] when the connection has no writable calendar of that id;
    /// [`StoreError::NotFound`] when the connection is not the firm's.
    pub async fn set_push_calendar(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        remote_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET push_calendar = $1, updated_at = $2 WHERE id = $3 AND firm_id = $4 \
                 AND ($1 IS NULL OR EXISTS (SELECT 1 FROM synced_calendars c WHERE c.connection_id = $3 \
                 AND c.firm_id = $4 AND c.remote_id = $1 AND c.can_write))",
            )
            .bind(remote_id)
            .bind(self.now())
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        match (n, remote_id) {
            (1, _) => Ok(()),
            (_, Some(r)) if self.has_connection(firm, connection).await? => Err(StoreError::Invalid(
                ValidationError::new("push_calendar", format!("{r:?} is not a writable calendar of this connection")),
            )),
            _ => Err(StoreError::NotFound),
        }
    }

    /// Opens a conflict on a link with both sides' content, or, when the link already has an
    /// open one, refreshes it with the sides seen now (the remote changed again): never two open
    /// conflicts per link, and the person deciding sees the latest of both.
    /// [`StoreError::NotFound`] when the link is not the firm's.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_conflict(
        &self,
        firm: FirmId,
        link: EventLinkId,
        local: &AppointmentData,
        remote: &AppointmentData,
        remote_etag: &str,
        remote_updated_at: Option<DateTime<Utc>>,
        fields: &[&str],
        base: Option<&AppointmentData>,
    ) -> Result<Conflict, StoreError> {
        let sql = format!(
            "INSERT INTO sync_conflicts (id, firm_id, connection_id, calendar_id, link_id, appointment_id, local_data, \
             remote_data, remote_etag, remote_updated_at, created_at, fields, base_data) \
             SELECT $1, l.firm_id, l.connection_id, l.calendar_id, l.id, l.appointment_id, $2, $3, $4, $5, $6, $9, $10 \
             FROM event_links l WHERE l.id = $7 AND l.firm_id = $8 \
             ON CONFLICT (link_id) WHERE resolved_at IS NULL DO UPDATE SET local_data = excluded.local_data, \
             remote_data = excluded.remote_data, remote_etag = excluded.remote_etag, \
             remote_updated_at = excluded.remote_updated_at, fields = excluded.fields, base_data = excluded.base_data \
             RETURNING {CONFLICT_COLUMNS}"
        );
        let (local, remote) = (to_json(local)?, to_json(remote)?);
        let fields = (!fields.is_empty()).then(|| fields.join(" "));
        let base = base.map(to_json).transpose()?;
        let row: Option<ConflictRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(ConflictId::new().as_uuid())
                .bind(&local)
                .bind(&remote)
                .bind(remote_etag)
                .bind(remote_updated_at.map(micros))
                .bind(self.now())
                .bind(link.as_uuid())
                .bind(firm.as_uuid())
                .bind(&fields)
                .bind(&base)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The firm's open conflicts, optionally only those on connections of `user`, newest first.
    pub async fn open_conflicts(&self, firm: FirmId, user: Option<UserId>) -> Result<Vec<Conflict>, StoreError> {
        let sql = format!(
            "SELECT {CONFLICT_COLUMNS} FROM sync_conflicts k WHERE k.firm_id = $1 AND k.resolved_at IS NULL \
             AND ($2 IS NULL OR EXISTS (SELECT 1 FROM oauth_connections o WHERE o.id = k.connection_id \
             AND o.firm_id = $1 AND o.user_id = $2)) \
             ORDER BY k.created_at DESC, k.id DESC"
        );
        let rows: Vec<ConflictRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(user.map(|u| u.as_uuid()))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// A conflict of the firm, open or resolved.
    pub async fn conflict(&self, firm: FirmId, id: ConflictId) -> Result<Conflict, StoreError> {
        let sql = format!("SELECT {CONFLICT_COLUMNS} FROM sync_conflicts WHERE id = $1 AND firm_id = $2");
        let row: Option<ConflictRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).bind(firm.as_uuid()).fetch_optional(pool).await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Records the decision on an open conflict, once: [`StoreError::NotFound`] when the firm has
    /// no such open conflict (never opened, or already resolved), so two people deciding at the
    /// same time cannot both win.
    pub async fn resolve_conflict(
        &self,
        firm: FirmId,
        id: ConflictId,
        side: ConflictSide,
        picks: &[(&str, ConflictSide)],
    ) -> Result<Conflict, StoreError> {
        let sql = format!(
            "UPDATE sync_conflicts SET resolved_at = $1, resolution = $2, picks = $5 \
             WHERE id = $3 AND firm_id = $4 AND resolved_at IS NULL RETURNING {CONFLICT_COLUMNS}"
        );
        let picks = (!picks.is_empty())
            .then(|| picks.iter().map(|(f, s)| format!("{f}={}", s.as_str())).collect::<Vec<_>>().join(" "));
        let row: Option<ConflictRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.now())
                .bind(side.as_str())
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .bind(&picks)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Holds back deletions the mass-delete guard stopped, all or none: a link already held
    /// stays as it was (a later sync meets the same deletions again). [`StoreError::NotFound`]
    /// when a link is not one of the firm's on this connection and calendar.
    pub async fn hold_deletes(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        calendar: SyncedCalendarId,
        items: &[(EventLinkId, HeldSide)],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let now = self.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            for (link, side) in items {
                let n = sqlx::query(
                    "INSERT INTO held_deletes (id, firm_id, connection_id, calendar_id, link_id, side, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM event_links l WHERE l.id = $5 \
                     AND l.firm_id = $2 AND l.connection_id = $3 AND l.calendar_id = $4) \
                     ON CONFLICT (link_id) DO NOTHING",
                )
                .bind(HeldDeleteId::new().as_uuid())
                .bind(firm.as_uuid())
                .bind(connection.as_uuid())
                .bind(calendar.as_uuid())
                .bind(link.as_uuid())
                .bind(side.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    // Either already held (fine) or not a link of this firm, connection and calendar.
                    let held: Option<(i32,)> = sqlx::query_as(
                        "SELECT 1 FROM held_deletes WHERE link_id = $1 AND firm_id = $2 AND connection_id = $3 \
                         AND calendar_id = $4",
                    )
                    .bind(link.as_uuid())
                    .bind(firm.as_uuid())
                    .bind(connection.as_uuid())
                    .bind(calendar.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if held.is_none() {
                        return Err(StoreError::NotFound);
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The held deletions of a connection, oldest first.
    pub async fn held_deletes(&self, firm: FirmId, connection: ConnectionId) -> Result<Vec<HeldDelete>, StoreError> {
        let sql = format!(
            "SELECT {HELD_COLUMNS} FROM held_deletes WHERE firm_id = $1 AND connection_id = $2 ORDER BY created_at, id"
        );
        let rows: Vec<HeldRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).bind(connection.as_uuid()).fetch_all(pool).await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Forgets a held deletion (a person decided on it; the engine acts on the decision).
    pub async fn release_held_delete(&self, firm: FirmId, id: HeldDeleteId) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("DELETE FROM held_deletes WHERE firm_id = $1 AND id = $2")
                .bind(firm.as_uuid())
                .bind(id.as_uuid())
                .execute(pool)
                .await?
                .rows_affected()
        });
        exactly_one(n)
    }
}

/// A calendar's cursor: `$1` the cursor, `$2`/`$3` its window, `$4` the calendar, `$5` its
/// firm, `$6` its connection, `$7` the cursor it replaces (`NULL`: whatever is there).
pub(crate) const SAVE_CURSOR: &str = "UPDATE synced_calendars SET sync_cursor = $1, cursor_window_start = $2, \
     cursor_window_end = $3 WHERE id = $4 AND firm_id = $5 AND connection_id = $6 AND ($7 IS NULL OR sync_cursor = $7)";

/// A sync's outcome on its connection: `$1` succeeded, `$2` now, `$3` the error, `$4` when it
/// is due next, `$5` the connection, `$6` its firm, `$7` the lease holder giving the lease back
/// (`NULL`: none). A delivery that came during a successful sync makes it due again at once.
pub(crate) const RECORD_OUTCOME: &str = "UPDATE oauth_connections SET last_sync_at = CASE WHEN $1 THEN $2 ELSE last_sync_at END, \
     last_error = $3, next_sync_at = CASE WHEN $1 AND due_again THEN $2 ELSE $4 END, due_again = FALSE, \
     failure_count = CASE WHEN $1 THEN 0 ELSE failure_count + 1 END, \
     lease_owner = CASE WHEN lease_owner = $7 THEN NULL ELSE lease_owner END, \
     lease_until = CASE WHEN lease_owner = $7 THEN NULL ELSE lease_until END \
     WHERE id = $5 AND firm_id = $6";
