//! The sync engine's memory: event links (each appointment ↔ remote event pair per calendar,
//! with the base the planner compares against), the outbox of provider writes (recorded before
//! each call, so a lost answer is resolved by lookup, never by a second create) and the log of
//! sync attempts. Every query is scoped to the firm.

use calsync_domain::ValidationError;
use calsync_domain::appointment::AppointmentData;
use calsync_domain::connection::Provider;
use calsync_domain::ids::{
    AppointmentId, ConnectionId, EventLinkId, FirmId, OutboxId, SyncAttemptId, SyncedCalendarId, UserId,
};
use calsync_domain::sync::{AttemptStatus, Base, LinkState, SyncTrigger, WriteOperation};
use chrono::{DateTime, Utc};
use std::sync::LazyLock;
use uuid::Uuid;

use crate::{Db, IN_CHUNK, StoreError, on_pool, placeholders};

/// A linked pair and its base.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLink {
    pub id: EventLinkId,
    pub connection_id: ConnectionId,
    pub calendar_id: SyncedCalendarId,
    pub appointment_id: AppointmentId,
    pub remote_id: String,
    pub base: Base,
    pub remote_updated_at: Option<DateTime<Utc>>,
    /// Occurrences and exceptions of a series: the master's remote id and the original start.
    pub series_remote_id: Option<String>,
    pub original_start: Option<DateTime<Utc>>,
    pub state: LinkState,
    pub last_error: Option<String>,
    pub synced_at: DateTime<Utc>,
    /// The content both sides agreed on at the last sync, for a field-level merge; `None` for
    /// links stored before it was kept.
    pub base_data: Option<AppointmentData>,
}

/// What a sync learned about a pair, to store as its new base.
#[derive(Debug, Clone)]
pub struct LinkWrite<'a> {
    pub connection_id: ConnectionId,
    pub calendar_id: SyncedCalendarId,
    pub appointment_id: AppointmentId,
    pub remote_id: &'a str,
    pub base: &'a Base,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub series_remote_id: Option<&'a str>,
    pub original_start: Option<DateTime<Utc>>,
    pub state: LinkState,
    pub last_error: Option<&'a str>,
    /// The content both sides now agree on (see [`EventLink::base_data`]).
    pub base_data: Option<&'a AppointmentData>,
}

/// Counts and outcome of a finished attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    pub pulled_created: i64,
    pub pulled_updated: i64,
    pub pulled_deleted: i64,
    pub pushed_created: i64,
    pub pushed_updated: i64,
    pub pushed_deleted: i64,
    pub conflicts: i64,
    /// Pairs edited on both sides whose edits were combined field by field.
    pub merged: i64,
    pub requests: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAttempt {
    pub id: SyncAttemptId,
    pub connection_id: ConnectionId,
    pub trigger: SyncTrigger,
    pub status: AttemptStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: AttemptCounts,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub replay_of: Option<SyncAttemptId>,
    /// What the sync noticed without failing (a zone it could not map, …).
    pub notes: Vec<String>,
    /// The worker (process instance) that ran it.
    pub worker: Option<String>,
}

/// A filtered page of the attempt log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AttemptQuery {
    pub connection: Option<ConnectionId>,
    /// Only attempts of this user's connections.
    pub user: Option<UserId>,
    pub status: Option<AttemptStatus>,
    /// Only attempts started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Keyset: `(started_at, id)` of the last item of the previous page.
    pub before: Option<(DateTime<Utc>, SyncAttemptId)>,
    /// Clamped to 1..=200.
    pub limit: u32,
}

/// The attempts of one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAttempts {
    pub day: chrono::NaiveDate,
    pub attempts: i64,
    pub failed: i64,
}

/// A provider write recorded before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    pub id: OutboxId,
    pub connection_id: ConnectionId,
    pub calendar_id: SyncedCalendarId,
    pub appointment_id: AppointmentId,
    pub operation: WriteOperation,
    pub idempotency_key: String,
    pub remote_id: Option<String>,
    pub expected_etag: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const OUTBOX_COLUMNS: &str = "id, connection_id, calendar_id, appointment_id, operation, idempotency_key, remote_id, \
    expected_etag, attempts, last_error, created_at";

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: Uuid,
    connection_id: Uuid,
    calendar_id: Uuid,
    appointment_id: Uuid,
    operation: String,
    idempotency_key: String,
    remote_id: Option<String>,
    expected_etag: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<OutboxRow> for PendingWrite {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        Ok(PendingWrite {
            id: r.id.into(),
            connection_id: r.connection_id.into(),
            calendar_id: r.calendar_id.into(),
            appointment_id: r.appointment_id.into(),
            operation: r.operation.parse().map_err(corrupt("outbox", "operation"))?,
            idempotency_key: r.idempotency_key,
            remote_id: r.remote_id,
            expected_etag: r.expected_etag,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: r.created_at,
        })
    }
}

/// A write that must have touched one row of the caller's firm; none means not found there.
pub(crate) fn exactly_one(rows: u64) -> Result<(), StoreError> {
    if rows == 1 { Ok(()) } else { Err(StoreError::NotFound) }
}

pub(crate) const LINK_COLUMNS: &str = "id, connection_id, calendar_id, appointment_id, remote_id, remote_etag, remote_hash, \
    remote_updated_at, local_version, local_hash, series_remote_id, original_start, state, last_error, synced_at, base_data";

#[derive(sqlx::FromRow)]
pub(crate) struct LinkRow {
    id: Uuid,
    connection_id: Uuid,
    calendar_id: Uuid,
    appointment_id: Uuid,
    remote_id: String,
    remote_etag: String,
    remote_hash: String,
    remote_updated_at: Option<DateTime<Utc>>,
    local_version: i64,
    local_hash: String,
    series_remote_id: Option<String>,
    original_start: Option<DateTime<Utc>>,
    state: String,
    last_error: Option<String>,
    synced_at: DateTime<Utc>,
    base_data: Option<String>,
}

/// The stored form of [`EventLink::base_data`].
pub(crate) fn base_json(data: Option<&AppointmentData>) -> Option<String> {
    data.and_then(|d| serde_json::to_string(d).ok())
}

pub(crate) fn corrupt(table: &'static str, what: &'static str) -> impl Fn(ValidationError) -> StoreError {
    move |e| StoreError::Corrupt(format!("{table}.{what}: {e}"))
}

impl TryFrom<LinkRow> for EventLink {
    type Error = StoreError;
    fn try_from(r: LinkRow) -> Result<Self, StoreError> {
        Ok(EventLink {
            id: r.id.into(),
            connection_id: r.connection_id.into(),
            calendar_id: r.calendar_id.into(),
            appointment_id: r.appointment_id.into(),
            remote_id: r.remote_id,
            base: Base {
                local_version: r.local_version,
                local_hash: r.local_hash,
                remote_etag: r.remote_etag,
                remote_hash: r.remote_hash,
            },
            remote_updated_at: r.remote_updated_at,
            series_remote_id: r.series_remote_id,
            original_start: r.original_start,
            state: r.state.parse().map_err(corrupt("event_links", "state"))?,
            last_error: r.last_error,
            synced_at: r.synced_at,
            base_data: r
                .base_data
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("event_links.base_data: {e}")))?,
        })
    }
}

/// What a finished sync leaves on its connection.
#[derive(Debug, Clone)]
pub struct SyncOutcome<'a> {
    pub connection: ConnectionId,
    pub succeeded: bool,
    pub last_error: Option<&'a str>,
    pub next_sync_at: DateTime<Utc>,
    /// The lease holder that gives the lease back with this outcome (if it still holds it).
    pub release: Option<&'a str>,
    /// New cursors of the connection's calendars (a calendar removed meanwhile is skipped).
    pub cursors: &'a [CursorMove],
}

/// A calendar's cursor moving on after a sync: stored only if the calendar still has the
/// cursor the sync started from, so a resync that cleared it meanwhile is not undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorMove {
    pub calendar: SyncedCalendarId,
    /// The stored cursor the sync listed from (`None`: none, or one it could not use).
    pub from: Option<String>,
    pub to: crate::CalendarCursor,
}

const ATTEMPT_COLUMNS: &str = "id, connection_id, triggered_by, status, started_at, finished_at, pulled_created, \
    pulled_updated, pulled_deleted, pushed_created, pushed_updated, pushed_deleted, conflicts, requests, error_kind, \
    error_message, replay_of, merged, notes, worker";

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: Uuid,
    connection_id: Uuid,
    triggered_by: String,
    status: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    pulled_created: i64,
    pulled_updated: i64,
    pulled_deleted: i64,
    pushed_created: i64,
    pushed_updated: i64,
    pushed_deleted: i64,
    conflicts: i64,
    requests: i64,
    merged: i64,
    error_kind: Option<String>,
    error_message: Option<String>,
    replay_of: Option<Uuid>,
    notes: String,
    worker: Option<String>,
}

impl TryFrom<AttemptRow> for SyncAttempt {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> Result<Self, StoreError> {
        Ok(SyncAttempt {
            id: r.id.into(),
            connection_id: r.connection_id.into(),
            trigger: r.triggered_by.parse().map_err(corrupt("sync_attempts", "triggered_by"))?,
            status: r.status.parse().map_err(corrupt("sync_attempts", "status"))?,
            started_at: r.started_at,
            finished_at: r.finished_at,
            counts: AttemptCounts {
                pulled_created: r.pulled_created,
                pulled_updated: r.pulled_updated,
                pulled_deleted: r.pulled_deleted,
                pushed_created: r.pushed_created,
                pushed_updated: r.pushed_updated,
                pushed_deleted: r.pushed_deleted,
                conflicts: r.conflicts,
                merged: r.merged,
                requests: r.requests,
            },
            error_kind: r.error_kind,
            error_message: r.error_message,
            replay_of: r.replay_of.map(Into::into),
            notes: serde_json::from_str(&r.notes).map_err(|_| StoreError::Corrupt("sync_attempts: notes".into()))?,
            worker: r.worker,
        })
    }
}

/// The insert of a link, `RETURNING` it; nothing is inserted unless the calendar belongs to the
/// firm and the connection and the appointment to the firm. With `upsert`, a link of the same
/// remote event in that calendar is replaced (a new base for a known pair); without, it is a
/// unique violation (an import must never silently re-point a link at another appointment).
fn link_insert_sql(upsert: bool) -> String {
    let on_conflict = if upsert {
        "ON CONFLICT (calendar_id, remote_id) DO UPDATE SET appointment_id = excluded.appointment_id, \
         remote_etag = excluded.remote_etag, remote_hash = excluded.remote_hash, \
         remote_updated_at = excluded.remote_updated_at, local_version = excluded.local_version, \
         local_hash = excluded.local_hash, series_remote_id = excluded.series_remote_id, \
         original_start = excluded.original_start, state = excluded.state, last_error = excluded.last_error, \
         synced_at = excluded.synced_at, updated_at = excluded.updated_at, base_data = excluded.base_data"
    } else {
        ""
    };
    format!(
        "INSERT INTO event_links (id, firm_id, connection_id, calendar_id, appointment_id, remote_id, remote_etag, \
         remote_hash, remote_updated_at, local_version, local_hash, series_remote_id, original_start, state, \
         last_error, synced_at, created_at, updated_at, base_data) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $16, $17 \
         WHERE EXISTS (SELECT 1 FROM synced_calendars c WHERE c.id = $4 AND c.firm_id = $2 AND c.connection_id = $3) \
         AND EXISTS (SELECT 1 FROM appointments a WHERE a.id = $5 AND a.firm_id = $2) \
         {on_conflict} RETURNING {LINK_COLUMNS}"
    )
}

/// [`link_insert_sql`] with `upsert`, built once (a `'static` string is handed to sqlx uncopied).
pub(crate) static LINK_UPSERT_SQL: LazyLock<String> = LazyLock::new(|| link_insert_sql(true));
/// [`link_insert_sql`] without `upsert`.
pub(crate) static LINK_INSERT_SQL: LazyLock<String> = LazyLock::new(|| link_insert_sql(false));

/// One of the link inserts with the values of a [`LinkWrite`] bound; the appointment and its version
/// are passed separately because the atomic applies decide them, not the caller.
macro_rules! link_insert_query {
    ($sql:expr, $firm:expr, $w:expr, $appointment:expr, $local_version:expr, $now:expr) => {{
        let w: &$crate::sync::LinkWrite<'_> = $w;
        let sql: &'static str = $sql;
        sqlx::query_as::<_, $crate::sync::LinkRow>(sql)
            .bind(calsync_domain::ids::EventLinkId::new().as_uuid())
            .bind($firm.as_uuid())
            .bind(w.connection_id.as_uuid())
            .bind(w.calendar_id.as_uuid())
            .bind($appointment.as_uuid())
            .bind(w.remote_id)
            .bind(w.base.remote_etag.as_str())
            .bind(w.base.remote_hash.as_str())
            .bind(w.remote_updated_at.map($crate::micros))
            .bind($local_version)
            .bind(w.base.local_hash.as_str())
            .bind(w.series_remote_id)
            .bind(w.original_start.map($crate::micros))
            .bind(w.state.as_str())
            .bind(w.last_error)
            .bind($now)
            .bind($crate::sync::base_json(w.base_data))
    }};
}
pub(crate) use link_insert_query;

impl Db {
    /// Stores the pair's new base: inserted, or replacing the link of the same remote event in
    /// that calendar. The connection, calendar and appointment must belong to `firm`.
    pub async fn save_link(&self, firm: FirmId, w: &LinkWrite<'_>) -> Result<EventLink, StoreError> {
        let now = self.now();
        let row: Option<LinkRow> = on_pool!(self, pool => {
            link_insert_query!(LINK_UPSERT_SQL.as_str(), firm, w, w.appointment_id, w.base.local_version, now)
                .fetch_optional(pool)
                .await
                .map_err(|e| StoreError::unique(e, "appointment link"))?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The link of a remote event in a calendar, if any.
    pub async fn link_by_remote(
        &self,
        firm: FirmId,
        calendar: SyncedCalendarId,
        remote_id: &str,
    ) -> Result<Option<EventLink>, StoreError> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM event_links WHERE firm_id = $1 AND calendar_id = $2 AND remote_id = $3"
        );
        let row: Option<LinkRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(calendar.as_uuid())
                .bind(remote_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(TryInto::try_into).transpose()
    }

    /// Every link of a calendar (what a full listing is diffed against), by remote id.
    pub async fn links(&self, firm: FirmId, calendar: SyncedCalendarId) -> Result<Vec<EventLink>, StoreError> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM event_links WHERE firm_id = $1 AND calendar_id = $2 ORDER BY remote_id"
        );
        let rows: Vec<LinkRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).bind(calendar.as_uuid()).fetch_all(pool).await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Drops a link (both sides gone, or unlinked by the delete policy).
    pub async fn delete_link(&self, firm: FirmId, id: EventLinkId) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("DELETE FROM event_links WHERE firm_id = $1 AND id = $2")
                .bind(firm.as_uuid())
                .bind(id.as_uuid())
                .execute(pool)
                .await?
                .rows_affected()
        });
        exactly_one(n)
    }

    /// Opens an attempt in state `running`.
    pub async fn start_attempt(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
    ) -> Result<SyncAttempt, StoreError> {
        self.start_attempt_by(firm, connection, trigger, replay_of, None).await
    }

    /// [`Db::start_attempt`], naming the worker that runs it.
    pub async fn start_attempt_by(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
        worker: Option<&str>,
    ) -> Result<SyncAttempt, StoreError> {
        let row = self.insert_attempt(firm, connection, trigger, replay_of, worker, false).await?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Opens an attempt in state `running` for `owner`, provided `owner` holds the connection's
    /// sync lease and it has not run out: one statement where a claim and an insert would be
    /// two. `None` when the lease is not (or no longer) `owner`'s.
    pub async fn start_leased_attempt(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
        owner: &str,
    ) -> Result<Option<SyncAttempt>, StoreError> {
        let row = self.insert_attempt(firm, connection, trigger, replay_of, Some(owner), true).await?;
        row.map(SyncAttempt::try_from).transpose()
    }

    /// The insert of a running attempt, when the connection is the firm's (and, `leased`, while
    /// `worker` holds its live lease) and `replay_of` is one of the firm's attempts.
    async fn insert_attempt(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
        worker: Option<&str>,
        leased: bool,
    ) -> Result<Option<AttemptRow>, StoreError> {
        let lease = if leased { " AND c.lease_owner = $7 AND c.lease_until > $5" } else { "" };
        let sql = format!(
            "INSERT INTO sync_attempts (id, firm_id, connection_id, triggered_by, status, started_at, replay_of, worker) \
             SELECT $1, $2, $3, $4, 'running', $5, $6, $7 \
             WHERE EXISTS (SELECT 1 FROM oauth_connections c WHERE c.id = $3 AND c.firm_id = $2{lease}) \
             AND ($6 IS NULL OR EXISTS (SELECT 1 FROM sync_attempts p WHERE p.id = $6 AND p.firm_id = $2)) \
             RETURNING {ATTEMPT_COLUMNS}"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(SyncAttemptId::new().as_uuid())
                .bind(firm.as_uuid())
                .bind(connection.as_uuid())
                .bind(trigger.as_str())
                .bind(self.now())
                .bind(replay_of.map(|r| r.as_uuid()))
                .bind(worker)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Closes a running attempt with its outcome (once: a finished attempt is not rewritten).
    pub async fn finish_attempt(
        &self,
        firm: FirmId,
        id: SyncAttemptId,
        status: AttemptStatus,
        counts: &AttemptCounts,
        error: Option<(&str, &str)>,
        notes: &[String],
    ) -> Result<SyncAttempt, StoreError> {
        self.finish_with(firm, id, status, counts, error, notes, None).await
    }

    /// Finishes the attempt and records its outcome on the connection (when it is due next,
    /// the failure count, the error, and the lease given back when `outcome.release` names its
    /// holder) in one transaction: a process killed in between cannot leave a connection
    /// scheduled far ahead with its attempt still running.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_sync(
        &self,
        firm: FirmId,
        id: SyncAttemptId,
        status: AttemptStatus,
        counts: &AttemptCounts,
        error: Option<(&str, &str)>,
        notes: &[String],
        outcome: &SyncOutcome<'_>,
    ) -> Result<SyncAttempt, StoreError> {
        self.finish_with(firm, id, status, counts, error, notes, Some(outcome)).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_with(
        &self,
        firm: FirmId,
        id: SyncAttemptId,
        status: AttemptStatus,
        counts: &AttemptCounts,
        error: Option<(&str, &str)>,
        notes: &[String],
        outcome: Option<&SyncOutcome<'_>>,
    ) -> Result<SyncAttempt, StoreError> {
        if status == AttemptStatus::Running {
            return Err(StoreError::Corrupt("an attempt cannot finish as running".into()));
        }
        // The duration in milliseconds, kept for the statistics' percentiles.
        let duration = match self.backend() {
            crate::Backend::Postgres => "CAST(EXTRACT(EPOCH FROM ($2 - started_at)) * 1000 AS BIGINT)",
            crate::Backend::Sqlite => "CAST(ROUND((julianday($2) - julianday(started_at)) * 86400000.0) AS INTEGER)",
        };
        let sql = format!(
            "UPDATE sync_attempts SET status = $1, finished_at = $2, pulled_created = $3, pulled_updated = $4, \
             pulled_deleted = $5, pushed_created = $6, pushed_updated = $7, pushed_deleted = $8, conflicts = $9, \
             requests = $10, error_kind = $11, error_message = $12, merged = $15, notes = $16, duration_ms = {duration} \
             WHERE firm_id = $13 AND id = $14 AND status = 'running' RETURNING {ATTEMPT_COLUMNS}"
        );
        let now = self.now();
        let row: Option<AttemptRow> = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let row: Option<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(status.as_str())
                .bind(now)
                .bind(counts.pulled_created)
                .bind(counts.pulled_updated)
                .bind(counts.pulled_deleted)
                .bind(counts.pushed_created)
                .bind(counts.pushed_updated)
                .bind(counts.pushed_deleted)
                .bind(counts.conflicts)
                .bind(counts.requests)
                .bind(error.map(|(kind, _)| kind))
                .bind(error.map(|(_, message)| message))
                .bind(firm.as_uuid())
                .bind(id.as_uuid())
                .bind(counts.merged)
                .bind(serde_json::to_string(notes).unwrap_or_else(|_| "[]".into()))
                .fetch_optional(&mut *tx)
                .await?;
            if let (Some(o), Some(_)) = (outcome, row.as_ref()) {
                let n = sqlx::query(crate::sync_state::RECORD_OUTCOME)
                    .bind(o.succeeded)
                    .bind(now)
                    .bind(o.last_error)
                    .bind(crate::micros(o.next_sync_at))
                    .bind(o.connection.as_uuid())
                    .bind(firm.as_uuid())
                    .bind(o.release)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n != 1 {
                    return Err(StoreError::NotFound);
                }
                for m in o.cursors {
                    sqlx::query(crate::sync_state::SAVE_CURSOR)
                        .bind(m.to.cursor.as_str())
                        .bind(crate::micros(m.to.window_start))
                        .bind(crate::micros(m.to.window_end))
                        .bind(m.calendar.as_uuid())
                        .bind(firm.as_uuid())
                        .bind(o.connection.as_uuid())
                        .bind(m.from.as_deref())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            row
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The firm's attempts, newest first, optionally of one connection.
    pub async fn attempts(
        &self,
        firm: FirmId,
        connection: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<SyncAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM sync_attempts WHERE firm_id = $1 AND ($2 IS NULL OR connection_id = $2) \
             ORDER BY started_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<AttemptRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(connection.map(|c| c.as_uuid()))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Records a provider write before it is made. The calendar must belong to the connection
    /// and the firm.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_write(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        calendar: SyncedCalendarId,
        appointment: AppointmentId,
        operation: WriteOperation,
        idempotency_key: &str,
        remote_id: Option<&str>,
        expected_etag: Option<&str>,
    ) -> Result<PendingWrite, StoreError> {
        let sql = format!(
            "INSERT INTO outbox (id, firm_id, connection_id, calendar_id, appointment_id, operation, idempotency_key, \
             remote_id, expected_etag, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE EXISTS (SELECT 1 FROM synced_calendars c WHERE c.id = $4 AND c.firm_id = $2 AND c.connection_id = $3) \
             RETURNING {OUTBOX_COLUMNS}"
        );
        let row: Option<OutboxRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(OutboxId::new().as_uuid())
                .bind(firm.as_uuid())
                .bind(connection.as_uuid())
                .bind(calendar.as_uuid())
                .bind(appointment.as_uuid())
                .bind(operation.as_str())
                .bind(idempotency_key)
                .bind(remote_id)
                .bind(expected_etag)
                .bind(self.now())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Writes of a connection not yet known to be done, oldest first: what a sync resolves
    /// (by lookup) before planning anything new.
    pub async fn pending_writes(
        &self,
        firm: FirmId,
        connection: ConnectionId,
    ) -> Result<Vec<PendingWrite>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE firm_id = $1 AND connection_id = $2 AND done_at IS NULL \
             ORDER BY created_at, id"
        );
        let rows: Vec<OutboxRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).bind(connection.as_uuid()).fetch_all(pool).await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The write is done (its result is stored with the link).
    pub async fn complete_write(&self, firm: FirmId, id: OutboxId) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("UPDATE outbox SET done_at = $1 WHERE firm_id = $2 AND id = $3 AND done_at IS NULL")
                .bind(self.now())
                .bind(firm.as_uuid())
                .bind(id.as_uuid())
                .execute(pool)
                .await?
                .rows_affected()
        });
        exactly_one(n)
    }

    /// The write failed this time; it stays pending with the reason and one more attempt counted.
    pub async fn fail_write(&self, firm: FirmId, id: OutboxId, error: &str) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE firm_id = $2 AND id = $3 AND done_at IS NULL",
            )
            .bind(error)
            .bind(firm.as_uuid())
            .bind(id.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        exactly_one(n)
    }

    /// A link by id.
    pub async fn link(&self, firm: FirmId, id: EventLinkId) -> Result<EventLink, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM event_links WHERE firm_id = $1 AND id = $2");
        let row: Option<LinkRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).bind(id.as_uuid()).fetch_optional(pool).await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The links of these appointments on any calendar, each with its connection's provider: what
    /// an appointment shows of where it is synced. Ids of other firms simply match nothing.
    pub async fn links_of(
        &self,
        firm: FirmId,
        appointments: &[AppointmentId],
    ) -> Result<Vec<(EventLink, Provider)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            link: LinkRow,
            provider: String,
        }
        let columns: String = LINK_COLUMNS.split(", ").map(|c| format!("l.{c}")).collect::<Vec<_>>().join(", ");
        let mut out = Vec::new();
        for chunk in appointments.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {columns}, o.provider FROM event_links l \
                 JOIN oauth_connections o ON o.id = l.connection_id AND o.firm_id = l.firm_id \
                 WHERE l.firm_id = $1 AND l.appointment_id IN ({}) ORDER BY l.appointment_id, l.created_at, l.id",
                placeholders(2, chunk.len())
            );
            let rows: Vec<Row> = on_pool!(self, pool => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid());
                for id in chunk {
                    q = q.bind(id.as_uuid());
                }
                q.fetch_all(pool).await?
            });
            for r in rows {
                let provider = r.provider.parse().map_err(corrupt("oauth_connections", "provider"))?;
                out.push((r.link.try_into()?, provider));
            }
        }
        Ok(out)
    }

    /// Sets a link's state and error (an error to show, a conflict waiting) without touching its
    /// base: the pair has not been brought together, so the next sync must still see the change.
    pub async fn set_link_state(
        &self,
        firm: FirmId,
        link: EventLinkId,
        state: LinkState,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("UPDATE event_links SET state = $1, last_error = $2, updated_at = $3 WHERE firm_id = $4 AND id = $5")
                .bind(state.as_str())
                .bind(last_error)
                .bind(self.now())
                .bind(firm.as_uuid())
                .bind(link.as_uuid())
                .execute(pool)
                .await?
                .rows_affected()
        });
        exactly_one(n)
    }

    /// One attempt of the firm.
    pub async fn attempt(&self, firm: FirmId, id: SyncAttemptId) -> Result<SyncAttempt, StoreError> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM sync_attempts WHERE firm_id = $1 AND id = $2");
        let row: Option<AttemptRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).bind(id.as_uuid()).fetch_optional(pool).await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// A filtered page of the firm's attempts, newest first (by start, then id), and whether more
    /// follow. Paging is by keyset, so attempts started meanwhile never shift a page.
    pub async fn query_attempts(&self, firm: FirmId, q: &AttemptQuery) -> Result<(Vec<SyncAttempt>, bool), StoreError> {
        let limit = q.limit.clamp(1, 200);
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM sync_attempts WHERE firm_id = $1 AND ($2 IS NULL OR connection_id = $2) \
             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR started_at >= $4) \
             AND ($5 IS NULL OR (started_at, id) < ($5, $6)) \
             AND ($8 IS NULL OR connection_id IN (SELECT c.id FROM oauth_connections c WHERE c.firm_id = $1 AND c.user_id = $8)) \
             ORDER BY started_at DESC, id DESC LIMIT $7"
        );
        let rows: Vec<AttemptRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(q.connection.map(|c| c.as_uuid()))
                .bind(q.status.map(|s| s.as_str()))
                .bind(q.since.map(crate::micros))
                .bind(q.before.map(|(t, _)| crate::micros(t)))
                .bind(q.before.map(|(_, id)| id.as_uuid()))
                .bind(i64::from(limit) + 1)
                .bind(q.user.map(|u| u.as_uuid()))
                .fetch_all(pool)
                .await?
        });
        let mut items = rows.into_iter().map(SyncAttempt::try_from).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok((items, more))
    }

    /// How many attempts started on each UTC day since `q.since` (status, paging and limit of
    /// `q` are ignored), and how many of them failed; days without attempts are left out.
    pub async fn attempts_per_day(&self, firm: FirmId, q: &AttemptQuery) -> Result<Vec<DailyAttempts>, StoreError> {
        let day = match self.backend() {
            crate::Backend::Postgres => "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            // sqlx stores SQLite times as UTC text that starts with the date.
            crate::Backend::Sqlite => "substr(started_at, 1, 10)",
        };
        let sql = format!(
            "SELECT {day} AS day, COUNT(*), CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM sync_attempts WHERE firm_id = $1 AND ($2 IS NULL OR connection_id = $2) \
             AND ($3 IS NULL OR started_at >= $3) \
             AND ($4 IS NULL OR connection_id IN (SELECT c.id FROM oauth_connections c WHERE c.firm_id = $1 AND c.user_id = $4)) \
             GROUP BY day ORDER BY day"
        );
        let rows: Vec<(String, i64, Option<i64>)> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(q.connection.map(|c| c.as_uuid()))
                .bind(q.since.map(crate::micros))
                .bind(q.user.map(|u| u.as_uuid()))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(day, attempts, failed)| {
                let day = day.parse().map_err(|_| StoreError::Corrupt(format!("sync_attempts.started_at {day:?}")))?;
                Ok(DailyAttempts { day, attempts, failed: failed.unwrap_or(0) })
            })
            .collect()
    }

    /// The latest attempt of a connection, whatever its status.
    pub async fn last_attempt(
        &self,
        firm: FirmId,
        connection: ConnectionId,
    ) -> Result<Option<SyncAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM sync_attempts WHERE firm_id = $1 AND connection_id = $2 \
             ORDER BY started_at DESC, id DESC LIMIT 1"
        );
        let row: Option<AttemptRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(connection.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        row.map(TryInto::try_into).transpose()
    }

    /// The last attempt of each of the firm's connections that has one.
    pub async fn last_attempts(
        &self,
        firm: FirmId,
    ) -> Result<std::collections::HashMap<ConnectionId, SyncAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM sync_attempts WHERE id IN (SELECT (SELECT a.id FROM sync_attempts a \
             WHERE a.firm_id = c.firm_id AND a.connection_id = c.id ORDER BY a.started_at DESC, a.id DESC LIMIT 1) \
             FROM oauth_connections c WHERE c.firm_id = $1)"
        );
        let rows: Vec<AttemptRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid()).fetch_all(pool).await?
        });
        rows.into_iter().map(|r| SyncAttempt::try_from(r).map(|a| (a.connection_id, a))).collect()
    }

    /// Closes as failed (`interrupted`) the attempts of a connection still marked running. Only
    /// the holder of the sync lease may call it, right after taking the lease: nobody else can be
    /// running one then, so any left is from a process that died mid-sync. Returns how many.
    pub async fn close_interrupted_attempts(&self, firm: FirmId, connection: ConnectionId) -> Result<u64, StoreError> {
        self.close_running(firm, connection, None).await
    }

    /// [`Db::close_interrupted_attempts`] provided `owner` holds the connection's sync lease
    /// and it has not run out (checked in the same statement): a caller whose lease may have
    /// been taken meanwhile never closes the new holder's attempt.
    pub async fn close_interrupted_attempts_as(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        owner: &str,
    ) -> Result<u64, StoreError> {
        self.close_running(firm, connection, Some(owner)).await
    }

    async fn close_running(
        &self,
        firm: FirmId,
        connection: ConnectionId,
        owner: Option<&str>,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sync_attempts SET status = 'failed', finished_at = $1, error_kind = 'interrupted', \
                 error_message = 'the sync stopped before it finished (the process ended)' \
                 WHERE firm_id = $2 AND connection_id = $3 AND status = 'running' AND ($4 IS NULL OR EXISTS \
                 (SELECT 1 FROM oauth_connections c WHERE c.id = $3 AND c.firm_id = $2 AND c.lease_owner = $4 \
                 AND c.lease_until > $1))",
            )
            .bind(self.now())
            .bind(firm.as_uuid())
            .bind(connection.as_uuid())
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Marks done every pending write of this appointment on this calendar: a fresh plan supersedes
    /// them (after they were resolved by lookup), so they must not be retried. Returns how many.
    pub async fn complete_writes_for(
        &self,
        firm: FirmId,
        calendar: SyncedCalendarId,
        appointment: AppointmentId,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET done_at = $1 WHERE firm_id = $2 AND calendar_id = $3 AND appointment_id = $4 \
                 AND done_at IS NULL",
            )
            .bind(self.now())
            .bind(firm.as_uuid())
            .bind(calendar.as_uuid())
            .bind(appointment.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n)
    }
}
