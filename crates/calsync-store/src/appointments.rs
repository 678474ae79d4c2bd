//! Appointments, always read and written within one firm. Updates and deletes carry the version
//! the caller read, so two concurrent edits cannot silently overwrite each other.

use crate::{Db, StoreError, on_pool};
use calsync_domain::appointment::{Appointment, AppointmentData, AppointmentStatus, Attendee, Origin, When};
use calsync_domain::ids::{AppointmentId, FirmId, UserId};
use calsync_domain::recurrence::{OriginalStart, Series, SeriesRef};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use uuid::Uuid;

/// Position after the last item of a page: appointments are ordered by (start, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub start_utc: DateTime<Utc>,
    pub id: AppointmentId,
}

#[derive(Debug, Clone, Default)]
pub struct AppointmentQuery {
    /// Only this owner's appointments; `None` for the whole firm.
    pub owner: Option<UserId>,
    /// Appointments overlapping `[start, end)`; either bound may be open.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub limit: u32,
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct AppointmentPage {
    pub items: Vec<Appointment>,
    /// Set when more items may follow.
    pub next: Option<Cursor>,
}

pub(crate) const COLUMNS: &str = "id, firm_id, owner_id, title, description, location, all_day, start_utc, \
    end_utc, start_date, end_date, time_zone, attendees, status, version, created_at, updated_at, \
    origin_connection_id, origin_calendar_id, deleted_at, visibility, show_as, send_invitations, organizer, \
    recurrence, series_id, original_start";

/// [`COLUMNS`] of the table aliased `a`, for joins.
pub(crate) const A_COLUMNS: &str = "a.id, a.firm_id, a.owner_id, a.title, a.description, a.location, a.all_day, \
    a.start_utc, a.end_utc, a.start_date, a.end_date, a.time_zone, a.attendees, a.status, a.version, a.created_at, \
    a.updated_at, a.origin_connection_id, a.origin_calendar_id, a.deleted_at, a.visibility, a.show_as, \
    a.send_invitations, a.organizer, a.recurrence, a.series_id, a.original_start";

/// One insert for every way an appointment is made (in calsync, or imported with its origin).
pub(crate) const INSERT: &str = "INSERT INTO appointments (id, firm_id, owner_id, title, description, location, \
    all_day, start_utc, end_utc, start_date, end_date, time_zone, attendees, status, version, created_at, updated_at, \
    origin_connection_id, origin_calendar_id, visibility, show_as, send_invitations, organizer, recurrence, series_id, \
    original_start, series_end_utc) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $18, $19, $20, $21, $22, \
    $23, $24, $25, $26)";

/// [`INSERT`] with the values of `a` bound, ready to execute on a pool or a transaction.
macro_rules! insert_appointment_query {
    ($a:expr) => {{
        let a: &calsync_domain::appointment::Appointment = $a;
        let (start_utc, end_utc) = a.data.utc_range();
        let (start_date, end_date) = $crate::appointments::dates(&a.data);
        let (origin_connection, origin_calendar) = match a.origin {
            calsync_domain::appointment::Origin::Calsync => (None, None),
            calsync_domain::appointment::Origin::Calendar { connection, calendar } => {
                (Some(connection.as_uuid()), Some(calendar.as_uuid()))
            }
        };
        sqlx::query($crate::appointments::INSERT)
            .bind(a.id.as_uuid())
            .bind(a.firm_id.as_uuid())
            .bind(a.owner_id.as_uuid())
            .bind(a.data.title.as_str())
            .bind(a.data.description.as_str())
            .bind(a.data.location.as_str())
            .bind(a.data.is_all_day())
            .bind(start_utc)
            .bind(end_utc)
            .bind(start_date)
            .bind(end_date)
            .bind(a.data.time_zone.name())
            .bind(sqlx::types::Json(&a.data.attendees))
            .bind(a.data.status.as_str())
            .bind(a.version)
            .bind(a.created_at)
            .bind(origin_connection)
            .bind(origin_calendar)
            .bind(a.data.visibility.as_str())
            .bind(a.data.show_as.as_str())
            .bind(a.data.send_invitations)
            .bind(a.data.organizer.as_deref())
            .bind(sqlx::types::Json(&a.data.recurrence))
            .bind(a.data.series.map(|s| s.master.as_uuid()))
            .bind(a.data.series.map(|s| s.original_start.to_string()))
            .bind($crate::appointments::series_end(&a.data))
    }};
}
pub(crate) use insert_appointment_query;

/// A foreign-key refusal of an appointment insert: the owner is not a user of this firm.
pub(crate) fn owner_not_in_firm(e: sqlx::Error) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(e),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: Uuid,
    firm_id: Uuid,
    owner_id: Uuid,
    title: String,
    description: String,
    location: String,
    all_day: bool,
    start_utc: DateTime<Utc>,
    end_utc: DateTime<Utc>,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    time_zone: String,
    attendees: Json<Vec<Attendee>>,
    status: String,
    pub(crate) version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    origin_connection_id: Option<Uuid>,
    origin_calendar_id: Option<Uuid>,
    pub(crate) deleted_at: Option<DateTime<Utc>>,
    visibility: String,
    show_as: String,
    send_invitations: bool,
    organizer: Option<String>,
    recurrence: Json<Vec<String>>,
    series_id: Option<Uuid>,
    original_start: Option<String>,
}

impl TryFrom<Row> for Appointment {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("appointment {}: {what}", r.id));
        let when = match (r.all_day, r.start_date, r.end_date) {
            (true, Some(start), Some(end)) => When::AllDay { start, end },
            (false, _, _) => When::Timed { start: r.start_utc, end: r.end_utc },
            _ => return Err(corrupt("all-day without dates")),
        };
        let origin = match (r.origin_connection_id, r.origin_calendar_id) {
            (None, None) => Origin::Calsync,
            (Some(connection), Some(calendar)) => {
                Origin::Calendar { connection: connection.into(), calendar: calendar.into() }
            }
            _ => return Err(corrupt("origin connection without calendar or the reverse")),
        };
        Ok(Appointment {
            id: r.id.into(),
            firm_id: r.firm_id.into(),
            owner_id: r.owner_id.into(),
            data: AppointmentData {
                title: r.title,
                description: r.description,
                location: r.location,
                when,
                time_zone: r.time_zone.parse().map_err(|_| corrupt("time zone"))?,
                attendees: r.attendees.0,
                status: r.status.parse::<AppointmentStatus>().map_err(|_| corrupt("status"))?,
                visibility: r.visibility.parse().map_err(|_| corrupt("visibility"))?,
                show_as: r.show_as.parse().map_err(|_| corrupt("show_as"))?,
                send_invitations: r.send_invitations,
                organizer: r.organizer,
                recurrence: r.recurrence.0,
                series: match (r.series_id, r.original_start) {
                    (Some(master), Some(o)) => Some(SeriesRef {
                        master: master.into(),
                        original_start: o.parse().map_err(|_| corrupt("original start"))?,
                    }),
                    (None, None) => None,
                    _ => return Err(corrupt("half an exception")),
                },
            },
            origin,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Tombstones the live exceptions of master `$2` in firm `$3` at `$1`: a series is deleted with
/// them, whichever side deleted it.
pub(crate) const TOMBSTONE_EXCEPTIONS: &str = "UPDATE appointments SET deleted_at = $1, updated_at = $1, \
    version = version + 1 WHERE series_id = $2 AND firm_id = $3 AND deleted_at IS NULL";

/// A series master's extent for range queries: when its last occurrence ends (far in the future
/// for an endless series); `None` for anything else.
pub(crate) fn series_end(data: &AppointmentData) -> Option<DateTime<Utc>> {
    (!data.recurrence.is_empty()).then(|| calsync_domain::recurrence::span(data).1)
}

pub(crate) fn dates(data: &AppointmentData) -> (Option<NaiveDate>, Option<NaiveDate>) {
    match data.when {
        When::AllDay { start, end } => (Some(start), Some(end)),
        When::Timed { .. } => (None, None),
    }
}

impl Db {
    pub async fn insert_appointment(
        &self,
        firm: FirmId,
        owner: UserId,
        data: AppointmentData,
    ) -> Result<Appointment, StoreError> {
        self.insert_appointment_from(firm, owner, data, Origin::Calsync).await
    }

    /// [`Db::insert_appointment`] with an origin: an exception made in calsync of a series
    /// pulled from a calendar belongs to that calendar, as its master does.
    pub async fn insert_appointment_from(
        &self,
        firm: FirmId,
        owner: UserId,
        data: AppointmentData,
        origin: Origin,
    ) -> Result<Appointment, StoreError> {
        let now = self.now();
        let a = Appointment {
            id: AppointmentId::new(),
            firm_id: firm,
            owner_id: owner,
            data,
            origin,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        on_pool!(self, pool => {
            insert_appointment_query!(&a).execute(pool).await.map_err(owner_not_in_firm)?;
        });
        Ok(a)
    }

    /// One live appointment of `firm`, optionally only if `owner` owns it.
    pub async fn appointment(
        &self,
        firm: FirmId,
        owner: Option<UserId>,
        id: AppointmentId,
    ) -> Result<Appointment, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM appointments WHERE id = $1 AND firm_id = $2 AND ($3 IS NULL OR owner_id = $3) \
             AND deleted_at IS NULL"
        );
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .bind(owner.map(|o| o.as_uuid()))
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// A page of live appointments of `firm` overlapping the query window, by start then id.
    pub async fn list_appointments(&self, firm: FirmId, q: &AppointmentQuery) -> Result<AppointmentPage, StoreError> {
        let limit = q.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT {COLUMNS} FROM appointments WHERE firm_id = $1 AND deleted_at IS NULL \
             AND ($2 IS NULL OR owner_id = $2) AND ($3 IS NULL OR COALESCE(series_end_utc, end_utc) > $3) \
             AND ($4 IS NULL OR start_utc < $4) \
             AND ($5 IS NULL OR (start_utc, id) > ($5, $6)) ORDER BY start_utc, id LIMIT $7"
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(q.owner.map(|o| o.as_uuid()))
                .bind(q.start)
                .bind(q.end)
                .bind(q.after.map(|c| c.start_utc))
                .bind(q.after.map(|c| c.id.as_uuid()))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let mut items = rows.into_iter().map(Appointment::try_from).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|a| Cursor { start_utc: a.data.utc_range().0, id: a.id })
        } else {
            None
        };
        Ok(AppointmentPage { items, next })
    }

    /// Replaces the content of an appointment whose stored version is `expected_version`, bumping
    /// the version. [`StoreError::VersionMismatch`] when it changed meanwhile.
    pub async fn update_appointment(
        &self,
        firm: FirmId,
        id: AppointmentId,
        expected_version: i64,
        data: AppointmentData,
    ) -> Result<Appointment, StoreError> {
        let (start_utc, end_utc) = data.utc_range();
        let (start_date, end_date) = dates(&data);
        let sql = format!(
            "UPDATE appointments SET title = $1, description = $2, location = $3, all_day = $4, start_utc = $5, \
             end_utc = $6, start_date = $7, end_date = $8, time_zone = $9, attendees = $10, status = $11, \
             version = version + 1, updated_at = $12, visibility = $16, show_as = $17, send_invitations = $18, \
             recurrence = $19, series_end_utc = $20 \
             WHERE id = $13 AND firm_id = $14 AND version = $15 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&data.title)
                .bind(&data.description)
                .bind(&data.location)
                .bind(data.is_all_day())
                .bind(start_utc)
                .bind(end_utc)
                .bind(start_date)
                .bind(end_date)
                .bind(data.time_zone.name())
                .bind(Json(&data.attendees))
                .bind(data.status.as_str())
                .bind(self.now())
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .bind(expected_version)
                .bind(data.visibility.as_str())
                .bind(data.show_as.as_str())
                .bind(data.send_invitations)
                .bind(Json(&data.recurrence))
                .bind(series_end(&data))
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => r.try_into(),
            None => Err(self.missing_or_changed(firm, id).await),
        }
    }

    /// Deletes (tombstones) an appointment whose stored version is `expected_version`; a series
    /// master takes its exceptions with it.
    pub async fn delete_appointment(
        &self,
        firm: FirmId,
        id: AppointmentId,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let done = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let done = sqlx::query(
                "UPDATE appointments SET deleted_at = $1, updated_at = $1, version = version + 1 \
                 WHERE id = $2 AND firm_id = $3 AND version = $4 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .bind(expected_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 1 {
                sqlx::query(TOMBSTONE_EXCEPTIONS)
                .bind(now)
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            done
        });
        if done == 1 { Ok(()) } else { Err(self.missing_or_changed(firm, id).await) }
    }

    /// The live exceptions of these series masters, by master and original start.
    pub async fn exceptions_of(&self, firm: FirmId, masters: &[AppointmentId]) -> Result<Vec<Appointment>, StoreError> {
        let mut out = Vec::new();
        for chunk in masters.chunks(crate::IN_CHUNK) {
            let sql = format!(
                "SELECT {COLUMNS} FROM appointments WHERE firm_id = $1 AND deleted_at IS NULL AND series_id IN ({}) \
                 ORDER BY series_id, original_start",
                crate::placeholders(2, chunk.len())
            );
            let rows: Vec<Row> = on_pool!(self, pool => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(firm.as_uuid());
                for id in chunk {
                    q = q.bind(id.as_uuid());
                }
                q.fetch_all(pool).await?
            });
            for r in rows {
                out.push(Appointment::try_from(r)?);
            }
        }
        Ok(out)
    }

    /// Tombstones the exceptions of `master` that its rule no longer makes (its times or rule
    /// changed, or it is no longer a series): they stood for occurrences that do not exist any
    /// more, as the providers drop them too. Returns how many.
    pub async fn prune_exceptions(&self, firm: FirmId, master: &Appointment) -> Result<usize, StoreError> {
        let exceptions = self.exceptions_of(firm, &[master.id]).await?;
        if exceptions.is_empty() {
            return Ok(0);
        }
        let d = &master.data;
        let series =
            if d.recurrence.is_empty() { None } else { Series::parse(&d.recurrence, &d.when, d.time_zone).ok() };
        let mut pruned = 0;
        for e in exceptions {
            let Some(s) = e.data.series else { continue };
            let made = series.as_ref().is_some_and(|series| {
                let kind_ok = matches!(
                    (s.original_start, d.when),
                    (OriginalStart::At(_), When::Timed { .. }) | (OriginalStart::Date(_), When::AllDay { .. })
                );
                kind_ok && series.generates(s.original_start, d.time_zone)
            });
            if !made {
                match self.delete_appointment(firm, e.id, e.version).await {
                    Ok(()) => pruned += 1,
                    // Changed meanwhile: the next change of the master looks again.
                    Err(StoreError::VersionMismatch | StoreError::NotFound) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(pruned)
    }

    /// Splits a series ("this and following"): the master, at `expected_version`, takes `ended`
    /// (its rule now ends before `from`); `started` is inserted as the new master; the
    /// exceptions from `from` on move to it. All or nothing.
    pub async fn split_series(
        &self,
        firm: FirmId,
        master: &Appointment,
        ended: AppointmentData,
        started: AppointmentData,
        from: OriginalStart,
    ) -> Result<(Appointment, Appointment), StoreError> {
        let now = self.now();
        let new = Appointment {
            id: AppointmentId::new(),
            firm_id: firm,
            owner_id: master.owner_id,
            data: started,
            origin: master.origin,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let sql = format!(
            "UPDATE appointments SET recurrence = $1, series_end_utc = $2, version = version + 1, updated_at = $3 \
             WHERE id = $4 AND firm_id = $5 AND version = $6 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Json(&ended.recurrence))
                .bind(series_end(&ended))
                .bind(now)
                .bind(master.id.as_uuid())
                .bind(firm.as_uuid())
                .bind(master.version)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                insert_appointment_query!(&new).execute(&mut *tx).await?;
                if matches!(new.origin, Origin::Calendar { .. }) {
                    // The rest of a series pulled from a calendar: made there by the next sync.
                    sqlx::query("UPDATE appointments SET push_origin = TRUE WHERE id = $1")
                        .bind(new.id.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                }
                // Original starts are fixed-width (`…T…Z` or a date), so text order is time order.
                // The moved exceptions leave their events behind (occurrences of the old series,
                // which its new end removes there): they are written anew under the new series,
                // and made for the origin calendar when the series came from one.
                sqlx::query(
                    "DELETE FROM event_links WHERE firm_id = $1 AND appointment_id IN \
                     (SELECT id FROM appointments WHERE series_id = $2 AND firm_id = $1 AND deleted_at IS NULL \
                      AND original_start >= $3)",
                )
                .bind(firm.as_uuid())
                .bind(master.id.as_uuid())
                .bind(from.to_string())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE appointments SET series_id = $1, version = version + 1, updated_at = $2, \
                     push_origin = (origin_calendar_id IS NOT NULL) \
                     WHERE series_id = $3 AND firm_id = $4 AND deleted_at IS NULL AND original_start >= $5",
                )
                .bind(new.id.as_uuid())
                .bind(now)
                .bind(master.id.as_uuid())
                .bind(firm.as_uuid())
                .bind(from.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            row
        });
        match row {
            Some(r) => Ok((r.try_into()?, new)),
            None => Err(self.missing_or_changed(firm, master.id).await),
        }
    }

    /// Tells a vanished row from one whose version moved on, after a conditional write matched none.
    pub(crate) async fn missing_or_changed(&self, firm: FirmId, id: AppointmentId) -> StoreError {
        match self.appointment(firm, None, id).await {
            Ok(_) => StoreError::VersionMismatch,
            Err(e) => e,
        }
    }
}
