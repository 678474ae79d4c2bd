//! Appointments as the sync engine sees them (live or tombstoned, with their origin), what
//! calsync changed since a calendar's last sync, and the applies of remote changes: each one
//! transaction that writes the appointment and its link together, so a crash can never leave an
//! imported appointment without its link (a duplicate at the next sync) or a link whose base
//! claims a version the appointment never got.

use calsync_domain::appointment::{Appointment, AppointmentData, Origin};
use calsync_domain::ids::{AppointmentId, ConnectionId, EventLinkId, FirmId, SyncedCalendarId, UserId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::appointments::{
    A_COLUMNS, COLUMNS, Row, TOMBSTONE_EXCEPTIONS, dates, insert_appointment_query, owner_not_in_firm, series_end,
};
use crate::sync::{LINK_INSERT_SQL, LINK_UPSERT_SQL, LinkRow, link_insert_query};
use crate::{Db, EventLink, IN_CHUNK, LinkWrite, StoreError, on_pool, placeholders};

/// An appointment as the sync engine sees it: live, or deleted (a tombstone whose deletion
/// still has to reach the calendars).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncAppointment {
    pub appointment: Appointment,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for SyncAppointment {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let deleted_at = r.deleted_at;
        Ok(SyncAppointment { appointment: r.try_into()?, deleted_at })
    }
}

impl Db {
    /// An appointment of the firm, live or deleted; `None` when the firm has no such row.
    pub async fn sync_appointment(
        &self,
        firm: FirmId,
        id: AppointmentId,
    ) -> Result<Option<SyncAppointment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM appointments WHERE id = $1 AND firm_id = $2");
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).bind(firm.as_uuid()).fetch_optional(pool).await?
        });
        row.map(TryInto::try_into).transpose()
    }

    /// Many appointments of the firm at once (a page of links), live or deleted, in no particular
    /// order; ids the firm has no row for are simply absent. Queried in `IN` lists of at most
    /// [`IN_CHUNK`] ids.
    pub async fn sync_appointments(
        &self,
        firm: FirmId,
        ids: &[AppointmentId],
    ) -> Result<Vec<SyncAppointment>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {COLUMNS} FROM appointments WHERE firm_id = $1 AND id IN ({})",
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
                out.push(r.try_into()?);
            }
        }
        Ok(out)
    }

    /// What calsync changed for `calendar` since its last sync, by start then id:
    /// - every appointment linked on the calendar, live or deleted, whose version differs from
    ///   the version its link's base recorded (edited or deleted here since);
    /// - with `push_target` (the calendar new appointments go to), every live appointment of
    ///   `owner` made in calsync (no origin: an imported one belongs to its own calendar and is
    ///   never copied to another) overlapping `[window_start, window_end)` that has no link on
    ///   this calendar yet.
    ///
    /// A calendar of another firm matches nothing.
    pub async fn local_changes(
        &self,
        firm: FirmId,
        owner: UserId,
        calendar: SyncedCalendarId,
        push_target: bool,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
    ) -> Result<Vec<SyncAppointment>, StoreError> {
        // The parts are disjoint (linked here; calsync's own not linked here; made in calsync for
        // this calendar, not linked yet: exceptions of a series pulled from it, the rest of such a
        // series split off), so UNION ALL needs no dedup.
        let sql = format!(
            "SELECT {A_COLUMNS} FROM event_links l JOIN appointments a ON a.id = l.appointment_id AND a.firm_id = l.firm_id \
             WHERE l.firm_id = $1 AND l.calendar_id = $2 AND a.version <> l.local_version \
             UNION ALL \
             SELECT {A_COLUMNS} FROM appointments a \
             WHERE $3 AND a.firm_id = $1 AND a.owner_id = $4 AND a.deleted_at IS NULL AND a.origin_connection_id IS NULL \
             AND COALESCE(a.series_end_utc, a.end_utc) > $5 AND a.start_utc < $6 \
             AND EXISTS (SELECT 1 FROM synced_calendars c WHERE c.id = $2 AND c.firm_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM event_links l WHERE l.calendar_id = $2 AND l.appointment_id = a.id) \
             UNION ALL \
             SELECT {A_COLUMNS} FROM appointments a \
             WHERE a.firm_id = $1 AND (a.series_id IS NOT NULL OR a.push_origin = TRUE) \
             AND a.deleted_at IS NULL AND a.origin_connection_id IS NOT NULL \
             AND COALESCE(a.series_end_utc, a.end_utc) > $5 AND a.start_utc < $6 \
             AND NOT EXISTS (SELECT 1 FROM event_links l WHERE l.calendar_id = $2 AND l.appointment_id = a.id) \
             AND (EXISTS (SELECT 1 FROM event_links ml WHERE ml.appointment_id = a.series_id AND ml.calendar_id = $2 \
                  AND ml.firm_id = $1) \
                  OR (a.push_origin = TRUE AND a.origin_calendar_id = $2)) \
             ORDER BY start_utc, id"
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(firm.as_uuid())
                .bind(calendar.as_uuid())
                .bind(push_target)
                .bind(owner.as_uuid())
                .bind(crate::micros(window_start))
                .bind(crate::micros(window_end))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Imports a remote event: a new appointment of `owner` (version 1) whose origin is the
    /// link's connection and calendar, and its link, in one transaction. `link.appointment_id`
    /// is ignored (the new appointment's id is used) and so is `link.base.local_version` (the
    /// base records version 1, the version just made). A remote event already linked on that
    /// calendar is [`StoreError::Duplicate`] and nothing is written; a calendar, connection or
    /// owner outside the firm is [`StoreError::NotFound`].
    pub async fn import_event(
        &self,
        firm: FirmId,
        owner: UserId,
        data: AppointmentData,
        link: &LinkWrite<'_>,
    ) -> Result<(Appointment, EventLink), StoreError> {
        let now = self.now();
        let a = Appointment {
            id: AppointmentId::new(),
            firm_id: firm,
            owner_id: owner,
            data,
            origin: Origin::Calendar { connection: link.connection_id, calendar: link.calendar_id },
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let row: Result<LinkRow, StoreError> = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin_with(self.begin_write_sql()).await?;
                insert_appointment_query!(&a).execute(&mut *tx).await.map_err(owner_not_in_firm)?;
                let row = link_insert_query!(LINK_INSERT_SQL.as_str(), firm, link, a.id, a.version, now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| StoreError::unique(e, "appointment link"))?
                    .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                Ok(row)
            }
            .await
        });
        Ok((a, row?.try_into()?))
    }

    /// Applies a remote edit: replaces the content of the live appointment if its version is
    /// still `expected_version` (bumping it), and stores the link with its base recording that
    /// new version and `link.base.local_hash`, in one transaction. `link.appointment_id` is
    /// ignored (`id` is used). [`StoreError::VersionMismatch`] when the appointment changed
    /// meanwhile, [`StoreError::NotFound`] when it is gone or deleted; either way nothing is
    /// written.
    pub async fn apply_remote_update(
        &self,
        firm: FirmId,
        id: AppointmentId,
        expected_version: i64,
        data: AppointmentData,
        link: &LinkWrite<'_>,
    ) -> Result<(Appointment, EventLink), StoreError> {
        let (start_utc, end_utc) = data.utc_range();
        let (start_date, end_date) = dates(&data);
        let now = self.now();
        let update = format!(
            "UPDATE appointments SET title = $1, description = $2, location = $3, all_day = $4, start_utc = $5, \
             end_utc = $6, start_date = $7, end_date = $8, time_zone = $9, attendees = $10, status = $11, \
             version = version + 1, updated_at = $12, visibility = $16, show_as = $17, organizer = $18, \
             recurrence = $19, series_end_utc = $20, send_invitations = (send_invitations OR $21) \
             WHERE id = $13 AND firm_id = $14 AND version = $15 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let result: Result<Option<(Row, LinkRow)>, StoreError> = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin_with(self.begin_write_sql()).await?;
                let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(update))
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
                    .bind(now)
                    .bind(id.as_uuid())
                    .bind(firm.as_uuid())
                    .bind(expected_version)
                    .bind(data.visibility.as_str())
                    .bind(data.show_as.as_str())
                    .bind(data.organizer.as_deref())
                    .bind(Json(&data.recurrence))
                    .bind(series_end(&data))
                    .bind(data.send_invitations)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let link_row = link_insert_query!(LINK_UPSERT_SQL.as_str(), firm, link, id, row.version, now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| StoreError::unique(e, "appointment link"))?
                    .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                Ok(Some((row, link_row)))
            }
            .await
        });
        match result? {
            Some((row, link_row)) => Ok((row.try_into()?, link_row.try_into()?)),
            None => Err(self.missing_or_changed(firm, id).await),
        }
    }

    /// Applies a remote deletion: tombstones the appointment if its version is still
    /// `expected_version` and deletes the link, in one transaction. An appointment already
    /// deleted only loses the link. [`StoreError::VersionMismatch`] when the live appointment
    /// changed meanwhile (the edit must win over a deletion it never saw);
    /// [`StoreError::NotFound`] when the firm has no such appointment, or no such link of it.
    /// Nothing is written on error.
    pub async fn apply_remote_delete(
        &self,
        firm: FirmId,
        id: AppointmentId,
        expected_version: i64,
        link: EventLinkId,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let tombstoned = sqlx::query(
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
            if tombstoned == 1 {
                sqlx::query(TOMBSTONE_EXCEPTIONS)
                .bind(now)
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .execute(&mut *tx)
                .await?;
            }
            if tombstoned == 0 {
                let state: Option<(Option<DateTime<Utc>>,)> =
                    sqlx::query_as("SELECT deleted_at FROM appointments WHERE id = $1 AND firm_id = $2")
                        .bind(id.as_uuid())
                        .bind(firm.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                match state {
                    None => return Err(StoreError::NotFound),
                    Some((None,)) => return Err(StoreError::VersionMismatch),
                    Some((Some(_),)) => {}
                }
            }
            let unlinked = sqlx::query("DELETE FROM event_links WHERE firm_id = $1 AND id = $2 AND appointment_id = $3")
                .bind(firm.as_uuid())
                .bind(link.as_uuid())
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if unlinked != 1 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Brings a deleted appointment back (a deletion undone, or a held delete refused): live
    /// again with its version bumped, so every calendar sees it as changed.
    /// [`StoreError::NotFound`] unless it is a deleted appointment of the firm.
    pub async fn restore_appointment(&self, firm: FirmId, id: AppointmentId) -> Result<Appointment, StoreError> {
        let sql = format!(
            "UPDATE appointments SET deleted_at = NULL, version = version + 1, updated_at = $1 \
             WHERE id = $2 AND firm_id = $3 AND deleted_at IS NOT NULL RETURNING {COLUMNS}"
        );
        let now = self.now();
        let row: Option<Row> = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            let deleted: Option<(Option<DateTime<Utc>>,)> =
                sqlx::query_as("SELECT deleted_at FROM appointments WHERE id = $1 AND firm_id = $2")
                    .bind(id.as_uuid())
                    .bind(firm.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            if let (Some(_), Some((Some(at),))) = (&row, deleted) {
                // A series comes back with the exceptions its deletion took (same instant).
                sqlx::query(
                    "UPDATE appointments SET deleted_at = NULL, version = version + 1, updated_at = $1 \
                     WHERE series_id = $2 AND firm_id = $3 AND deleted_at = $4",
                )
                .bind(now)
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            row
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Makes an appointment calsync's own copy of an event a calendar deleted while the delete
    /// policy keeps it here: its origin becomes that calendar, so it is not sent back to the
    /// push target as if it were new.
    pub async fn detach_appointment(
        &self,
        firm: FirmId,
        id: AppointmentId,
        connection: ConnectionId,
        calendar: SyncedCalendarId,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE appointments SET origin_connection_id = $1, origin_calendar_id = $2 WHERE id = $3 AND firm_id = $4",
            )
            .bind(connection.as_uuid())
            .bind(calendar.as_uuid())
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        crate::sync::exactly_one(n)
    }

    /// [`Db::import_event`] for many events of one calendar at once: one transaction, rows
    /// inserted a few hundred per statement (an initial import of a large calendar is mostly
    /// this). All or nothing: any refused row (a remote event already linked there) leaves
    /// nothing written, and the caller falls back to importing one by one. Every `LinkWrite` must
    /// name the same connection and calendar. Returns the links in input order.
    pub async fn import_events(
        &self,
        firm: FirmId,
        owner: UserId,
        items: Vec<(AppointmentData, LinkWrite<'_>)>,
    ) -> Result<Vec<EventLink>, StoreError> {
        const ROWS: usize = 400;
        let Some((_, first)) = items.first() else { return Ok(Vec::new()) };
        let (connection, calendar) = (first.connection_id, first.calendar_id);
        if items.iter().any(|(_, w)| w.connection_id != connection || w.calendar_id != calendar) {
            return Err(StoreError::Corrupt("import_events: one calendar per call".into()));
        }
        let now = self.now();
        let appointments: Vec<Appointment> = items
            .iter()
            .map(|(data, _)| Appointment {
                id: AppointmentId::new(),
                firm_id: firm,
                owner_id: owner,
                data: data.clone(),
                origin: Origin::Calendar { connection, calendar },
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let link_ids: Vec<EventLinkId> = items.iter().map(|_| EventLinkId::new()).collect();
        let result: Result<(), StoreError> = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin_with(self.begin_write_sql()).await?;
                let ok: Option<(i64,)> = sqlx::query_as(
                    "SELECT 1 FROM synced_calendars WHERE id = $1 AND firm_id = $2 AND connection_id = $3",
                )
                .bind(calendar.as_uuid())
                .bind(firm.as_uuid())
                .bind(connection.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
                if ok.is_none() {
                    return Err(StoreError::NotFound);
                }
                for chunk in appointments.chunks(ROWS) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO appointments (id, firm_id, owner_id, title, description, location, all_day, \
                         start_utc, end_utc, start_date, end_date, time_zone, attendees, status, version, created_at, \
                         updated_at, origin_connection_id, origin_calendar_id, visibility, show_as, send_invitations, organizer, \
                         recurrence, series_id, original_start, series_end_utc) ",
                    );
                    q.push_values(chunk, |mut b, a| {
                        let (start_utc, end_utc) = a.data.utc_range();
                        let (start_date, end_date) = dates(&a.data);
                        b.push_bind(a.id.as_uuid())
                            .push_bind(firm.as_uuid())
                            .push_bind(owner.as_uuid())
                            .push_bind(a.data.title.clone())
                            .push_bind(a.data.description.clone())
                            .push_bind(a.data.location.clone())
                            .push_bind(a.data.is_all_day())
                            .push_bind(start_utc)
                            .push_bind(end_utc)
                            .push_bind(start_date)
                            .push_bind(end_date)
                            .push_bind(a.data.time_zone.name())
                            .push_bind(Json(a.data.attendees.clone()))
                            .push_bind(a.data.status.as_str())
                            .push_bind(1i64)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(connection.as_uuid())
                            .push_bind(calendar.as_uuid())
                            .push_bind(a.data.visibility.as_str())
                            .push_bind(a.data.show_as.as_str())
                            .push_bind(a.data.send_invitations)
                            .push_bind(a.data.organizer.clone())
                            .push_bind(Json(a.data.recurrence.clone()))
                            .push_bind(a.data.series.map(|s| s.master.as_uuid()))
                            .push_bind(a.data.series.map(|s| s.original_start.to_string()))
                            .push_bind(series_end(&a.data));
                    });
                    q.build().execute(&mut *tx).await.map_err(owner_not_in_firm)?;
                }
                let rows: Vec<(usize, &LinkWrite<'_>)> = items.iter().map(|(_, w)| w).enumerate().collect();
                for chunk in rows.chunks(ROWS) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO event_links (id, firm_id, connection_id, calendar_id, appointment_id, remote_id, \
                         remote_etag, remote_hash, remote_updated_at, local_version, local_hash, series_remote_id, \
                         original_start, state, last_error, synced_at, created_at, updated_at, base_data) ",
                    );
                    q.push_values(chunk, |mut b, (i, w)| {
                        b.push_bind(link_ids[*i].as_uuid())
                            .push_bind(firm.as_uuid())
                            .push_bind(connection.as_uuid())
                            .push_bind(calendar.as_uuid())
                            .push_bind(appointments[*i].id.as_uuid())
                            .push_bind(w.remote_id.to_owned())
                            .push_bind(w.base.remote_etag.clone())
                            .push_bind(w.base.remote_hash.clone())
                            .push_bind(w.remote_updated_at.map(crate::micros))
                            .push_bind(1i64)
                            .push_bind(w.base.local_hash.clone())
                            .push_bind(w.series_remote_id.map(str::to_owned))
                            .push_bind(w.original_start.map(crate::micros))
                            .push_bind(w.state.as_str())
                            .push_bind(w.last_error.map(str::to_owned))
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(crate::sync::base_json(w.base_data));
                    });
                    q.build().execute(&mut *tx).await.map_err(|e| StoreError::unique(e, "appointment link"))?;
                }
                tx.commit().await?;
                Ok(())
            }
            .await
        });
        result?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, (_, w))| EventLink {
                id: link_ids[i],
                connection_id: connection,
                calendar_id: calendar,
                appointment_id: appointments[i].id,
                remote_id: w.remote_id.to_owned(),
                base: calsync_domain::sync::Base { local_version: 1, ..w.base.clone() },
                remote_updated_at: w.remote_updated_at.map(crate::micros),
                series_remote_id: w.series_remote_id.map(str::to_owned),
                original_start: w.original_start.map(crate::micros),
                state: w.state,
                last_error: w.last_error.map(str::to_owned),
                synced_at: now,
                base_data: w.base_data.cloned(),
            })
            .collect())
    }
}
