//! Appointments as the caller may see them: staff read and change their own; admins read the
//! whole firm's but change only their own. Anything the caller may not read is "not found".

use super::ServiceError;
use calsync_domain::ValidationError;
use calsync_domain::appointment::{Appointment, AppointmentData, AppointmentInput, AppointmentStatus, Origin, When};
use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_domain::ids::{AppointmentId, ConnectionId, FirmId, UserId};
use calsync_domain::recurrence::{OriginalStart, Series, SeriesRef, continued_from, ended_before, occurrence_data};
use calsync_domain::sync::LinkState;
use calsync_domain::tenant::Actor;
use calsync_store::{AppointmentPage, AppointmentQuery, Cursor, Db, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

pub async fn list(db: &Db, actor: &Actor, mut query: AppointmentQuery) -> Result<AppointmentPage, ServiceError> {
    query.owner = actor.readable_owner();
    let mut page = db.list_appointments(actor.firm_id, &query).await?;
    for a in &mut page.items {
        redact_for(actor, a.owner_id, &mut a.data);
    }
    Ok(page)
}

pub async fn get(db: &Db, actor: &Actor, id: AppointmentId) -> Result<Appointment, ServiceError> {
    let mut a = db.appointment(actor.firm_id, actor.readable_owner(), id).await?;
    redact_for(actor, a.owner_id, &mut a.data);
    Ok(a)
}

/// A private appointment's details are its owner's alone: anyone else (an admin reading the
/// firm's calendar, a conflict shown to an admin) sees that the time is taken, as "Busy".
pub fn redact_for(actor: &Actor, owner: UserId, data: &mut AppointmentData) {
    if data.visibility == calsync_domain::appointment::Visibility::Private && owner != actor.user_id {
        data.title = "Busy".into();
        data.description.clear();
        data.location.clear();
        data.attendees.clear();
        data.organizer = None;
    }
}

pub async fn create(db: &Db, actor: &Actor, input: AppointmentInput) -> Result<Appointment, ServiceError> {
    let data = AppointmentData::create(input)?;
    Ok(db.insert_appointment(actor.firm_id, actor.user_id, data).await?)
}

/// Applies a partial update. With `if_match`, the update happens only on that version; without,
/// the patch is merged into the latest version (retrying if a concurrent write lands in between),
/// so untouched fields are never reverted.
pub async fn update(
    db: &Db,
    actor: &Actor,
    id: AppointmentId,
    if_match: Option<i64>,
    patch: AppointmentInput,
) -> Result<Appointment, ServiceError> {
    for _ in 0..5 {
        let current = writable(db, actor, id).await?;
        check_precondition(if_match, current.version)?;
        let data = current.data.patched(patch.clone())?;
        // An invitation's organizer owns most of it; an edit here would be refused by the
        // provider, or lost at the organizer's next change.
        if let Some(refused) = current.data.organizer_owned_change(&data) {
            return Err(refused.into());
        }
        if data == current.data {
            return Ok(current);
        }
        let timing_changed = data.when != current.data.when
            || data.time_zone != current.data.time_zone
            || data.recurrence != current.data.recurrence;
        match db.update_appointment(actor.firm_id, id, current.version, data).await {
            Ok(a) => {
                // A series moved or re-ruled: exceptions of occurrences it no longer has go.
                if timing_changed && a.data.series.is_none() {
                    db.prune_exceptions(actor.firm_id, &a).await?;
                }
                return Ok(a);
            }
            Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::PreconditionFailed("the appointment keeps changing; retry later".into()))
}

pub async fn delete(db: &Db, actor: &Actor, id: AppointmentId, if_match: Option<i64>) -> Result<(), ServiceError> {
    for _ in 0..5 {
        let current = writable(db, actor, id).await?;
        check_precondition(if_match, current.version)?;
        if current.data.series.is_some() {
            // An exception stands for an occurrence: deleting it cancels that occurrence (as the
            // calendars do), rather than bringing the rule's version of it back.
            let cancel = AppointmentInput { status: Some("cancelled".into()), ..Default::default() };
            return update(db, actor, id, if_match, cancel).await.map(|_| ());
        }
        match db.delete_appointment(actor.firm_id, id, current.version).await {
            Ok(()) => return Ok(()),
            Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::PreconditionFailed("the appointment keeps changing; retry later".into()))
}

async fn writable(db: &Db, actor: &Actor, id: AppointmentId) -> Result<Appointment, ServiceError> {
    let a = get(db, actor, id).await?;
    if a.owner_id != actor.user_id {
        return Err(ServiceError::Forbidden("only the owner can change an appointment; admins can read it".into()));
    }
    Ok(a)
}

fn check_precondition(if_match: Option<i64>, version: i64) -> Result<(), ServiceError> {
    match if_match {
        Some(v) if v != version => Err(ServiceError::PreconditionFailed(format!(
            "If-Match names version {v} but the appointment is at version {version}"
        ))),
        _ => Ok(()),
    }
}

/// Where an appointment stands with one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    pub connection: ConnectionId,
    pub provider: Provider,
    pub state: LinkState,
    pub last_error: Option<String>,
}

/// Where an imported appointment came from: its connection and calendar (remote id and name,
/// when the calendar is still listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginInfo {
    pub connection: ConnectionId,
    pub calendar: Option<(String, String)>,
}

/// Sync state of each appointment: one entry per link, `pending` where calsync changed it since
/// the last sync; an appointment made in calsync and not yet on the push target of one of its
/// owner's enabled connections is `pending` there too.
pub async fn sync_entries(
    db: &Db,
    firm: FirmId,
    items: &[Appointment],
) -> Result<(HashMap<AppointmentId, Vec<SyncEntry>>, HashMap<AppointmentId, OriginInfo>), ServiceError> {
    let ids: Vec<AppointmentId> = items.iter().map(|a| a.id).collect();
    let mut out: HashMap<AppointmentId, Vec<SyncEntry>> = HashMap::new();
    let versions: HashMap<AppointmentId, i64> = items.iter().map(|a| (a.id, a.version)).collect();
    for (link, provider) in db.links_of(firm, &ids).await? {
        let changed_here = versions.get(&link.appointment_id).is_some_and(|v| *v != link.base.local_version);
        let state = if link.state == LinkState::Synced && changed_here { LinkState::Pending } else { link.state };
        out.entry(link.appointment_id).or_default().push(SyncEntry {
            connection: link.connection_id,
            provider,
            state,
            last_error: link.last_error,
        });
    }
    // Refused creates (a rule Outlook cannot hold, …) wait in the outbox with their reason.
    let mut refused: HashMap<ConnectionId, HashMap<AppointmentId, String>> = HashMap::new();
    let mut owners: HashMap<UserId, Vec<calsync_store::Connection>> = HashMap::new();
    let mut calendars: HashMap<ConnectionId, Vec<calsync_store::SyncedCalendar>> = HashMap::new();
    let mut origins = HashMap::new();
    for a in items {
        match a.origin {
            Origin::Calsync => {
                if let std::collections::hash_map::Entry::Vacant(slot) = owners.entry(a.owner_id) {
                    slot.insert(db.connections(firm, Some(a.owner_id)).await?);
                }
                for c in &owners[&a.owner_id] {
                    let linked = out.get(&a.id).is_some_and(|v| v.iter().any(|e| e.connection == c.id));
                    if !linked && c.settings.sync_enabled && c.status == ConnectionStatus::Active {
                        if let std::collections::hash_map::Entry::Vacant(slot) = refused.entry(c.id) {
                            let writes = db.pending_writes(firm, c.id).await?;
                            slot.insert(
                                writes.into_iter().filter_map(|w| Some((w.appointment_id, w.last_error?))).collect(),
                            );
                        }
                        let error = refused[&c.id].get(&a.id).cloned();
                        out.entry(a.id).or_default().push(SyncEntry {
                            connection: c.id,
                            provider: c.provider,
                            state: if error.is_some() { LinkState::Error } else { LinkState::Pending },
                            last_error: error,
                        });
                    }
                }
            }
            Origin::Calendar { connection, calendar } => {
                if let std::collections::hash_map::Entry::Vacant(slot) = calendars.entry(connection) {
                    slot.insert(db.calendars(firm, connection).await?);
                }
                let cal = calendars[&connection].iter().find(|c| c.id == calendar);
                origins.insert(
                    a.id,
                    OriginInfo { connection, calendar: cal.map(|c| (c.remote_id.clone(), c.name.clone())) },
                );
            }
        }
    }
    Ok((out, origins))
}

/// One item of an expanded listing: a single appointment, an exception, or an occurrence of a
/// series (the master's content at that occurrence's time, under the master's id).
#[derive(Debug, Clone)]
pub struct ListedOccurrence {
    pub appointment: Appointment,
    pub series_id: Option<AppointmentId>,
    pub original_start: Option<OriginalStart>,
}

/// More rows than this in one expanded window is a request to narrow the window.
const EXPAND_ROWS_MAX: usize = 10_000;

/// Occurrences overlapping `[start, end)` in start order: singles, exceptions (cancelled ones
/// are left out: they hide their occurrence) and the series' generated occurrences, paged by
/// (start, id) after `after`.
pub async fn list_expanded(
    db: &Db,
    actor: &Actor,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: usize,
    after: Option<Cursor>,
) -> Result<(Vec<ListedOccurrence>, Option<Cursor>), ServiceError> {
    let mut rows = Vec::new();
    let mut q = AppointmentQuery {
        owner: actor.readable_owner(),
        start: Some(start),
        end: Some(end),
        limit: 1000,
        after: None,
    };
    loop {
        let page = db.list_appointments(actor.firm_id, &q).await?;
        rows.extend(page.items);
        if rows.len() > EXPAND_ROWS_MAX {
            return Err(ValidationError::new(
                "end",
                format!("more than {EXPAND_ROWS_MAX} appointments in this window: ask for a shorter one"),
            )
            .into());
        }
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    let masters: Vec<AppointmentId> = rows.iter().filter(|a| !a.data.recurrence.is_empty()).map(|a| a.id).collect();
    let mut taken: HashMap<AppointmentId, HashSet<OriginalStart>> = HashMap::new();
    for e in db.exceptions_of(actor.firm_id, &masters).await? {
        if let Some(s) = e.data.series {
            taken.entry(s.master).or_default().insert(s.original_start);
        }
    }
    let mut out = Vec::new();
    for a in rows {
        if let Some(s) = a.data.series {
            if a.data.status != AppointmentStatus::Cancelled {
                out.push(ListedOccurrence {
                    series_id: Some(s.master),
                    original_start: Some(s.original_start),
                    appointment: a,
                });
            }
            continue;
        }
        if a.data.recurrence.is_empty() {
            out.push(ListedOccurrence { appointment: a, series_id: None, original_start: None });
            continue;
        }
        let Ok(series) = Series::parse(&a.data.recurrence, &a.data.when, a.data.time_zone) else {
            // Stored lines that no longer parse: the master shows as what it holds.
            out.push(ListedOccurrence { appointment: a, series_id: None, original_start: None });
            continue;
        };
        let skip = taken.remove(&a.id).unwrap_or_default();
        for o in series.between(start, end, a.data.time_zone) {
            if skip.contains(&o) {
                continue;
            }
            let mut item = a.clone();
            item.data = occurrence_data(&a.data, &series, o);
            out.push(ListedOccurrence { appointment: item, series_id: Some(a.id), original_start: Some(o) });
            if out.len() > EXPAND_ROWS_MAX * 10 {
                return Err(
                    ValidationError::new("end", "too many occurrences in this window: ask for a shorter one").into()
                );
            }
        }
    }
    let key = |o: &ListedOccurrence| (o.appointment.data.utc_range().0, o.appointment.id);
    out.sort_by_key(key);
    if let Some(c) = after {
        out.retain(|o| key(o) > (c.start_utc, c.id));
    }
    let next = if out.len() > limit {
        out.truncate(limit);
        out.last().map(|o| Cursor { start_utc: key(o).0, id: key(o).1 })
    } else {
        None
    };
    for o in &mut out {
        redact_for(actor, o.appointment.owner_id, &mut o.appointment.data);
    }
    Ok((out, next))
}

/// A master the caller may change, with its parsed rule; anything else is refused naming `id`.
async fn series_of(db: &Db, actor: &Actor, id: AppointmentId) -> Result<(Appointment, Series), ServiceError> {
    let master = writable(db, actor, id).await?;
    if master.data.recurrence.is_empty() {
        return Err(ValidationError::new("id", "not a recurring appointment: it has no occurrences").into());
    }
    let series = Series::parse(&master.data.recurrence, &master.data.when, master.data.time_zone)?;
    Ok((master, series))
}

/// Checks that `o` is an occurrence of the series (and of the master's kind, date or instant).
fn check_occurrence(master: &Appointment, series: &Series, o: OriginalStart) -> Result<(), ServiceError> {
    let kind_ok = matches!(
        (o, master.data.when),
        (OriginalStart::At(_), When::Timed { .. }) | (OriginalStart::Date(_), When::AllDay { .. })
    );
    // Generated by the rule and not excluded (an EXDATE already removed it).
    if !kind_ok || !series.occurrences().take_while(|x| *x <= o).any(|x| x == o) {
        return Err(ValidationError::new(
            "original_start",
            format!("no occurrence of this series starts at {o} (all-day series take a date, others an instant)"),
        )
        .into());
    }
    Ok(())
}

/// Edits one occurrence: the existing exception, or a new one made from the master.
/// `Ok((appointment, created))`.
pub async fn edit_occurrence(
    db: &Db,
    actor: &Actor,
    master_id: AppointmentId,
    original: OriginalStart,
    patch: AppointmentInput,
) -> Result<(Appointment, bool), ServiceError> {
    let (master, series) = series_of(db, actor, master_id).await?;
    let existing = db
        .exceptions_of(actor.firm_id, &[master.id])
        .await?
        .into_iter()
        .find(|e| e.data.series.is_some_and(|s| s.original_start == original));
    if let Some(e) = existing {
        return Ok((update(db, actor, e.id, None, patch).await?, false));
    }
    check_occurrence(&master, &series, original)?;
    let mut base = occurrence_data(&master.data, &series, original);
    base.series = Some(SeriesRef { master: master.id, original_start: original });
    let data = base.patched(patch)?;
    if let Some(refused) = base.organizer_owned_change(&data) {
        return Err(refused.into());
    }
    Ok((db.insert_appointment_from(actor.firm_id, actor.user_id, data, master.origin).await?, true))
}

/// Cancels one occurrence: its exception (made if need be) becomes cancelled, which hides it.
pub async fn cancel_occurrence(
    db: &Db,
    actor: &Actor,
    master_id: AppointmentId,
    original: OriginalStart,
) -> Result<(), ServiceError> {
    let cancel = AppointmentInput { status: Some("cancelled".into()), ..Default::default() };
    let master = writable(db, actor, master_id).await?;
    if master.data.organizer.is_some() {
        return Err(ValidationError::new(
            "status",
            format!(
                "is set by the organizer, {}, and can only be changed by them",
                master.data.organizer.unwrap_or_default()
            ),
        )
        .into());
    }
    edit_occurrence(db, actor, master_id, original, cancel).await.map(|_| ())
}

/// "This and following": the series ends before `from`, and a new series starts there with the
/// rest of the rule and the exceptions from `from` on. `(ended, started)`.
pub async fn split(
    db: &Db,
    actor: &Actor,
    master_id: AppointmentId,
    from: OriginalStart,
) -> Result<(Appointment, Appointment), ServiceError> {
    let (master, series) = series_of(db, actor, master_id).await?;
    if master.data.organizer.is_some() {
        return Err(ValidationError::new("recurrence", "an invitation's series is its organizer's to split").into());
    }
    check_occurrence(&master, &series, from)?;
    let tz = master.data.time_zone;
    if series.occurrences().next() == Some(from) {
        return Err(ValidationError::new(
            "from",
            "is the series' first occurrence: nothing would be left before it; change the whole series instead",
        )
        .into());
    }
    let ended = AppointmentData { recurrence: ended_before(&master.data.recurrence, from, tz), ..master.data.clone() };
    Series::parse(&ended.recurrence, &ended.when, tz)?;
    let mut started = occurrence_data(&master.data, &series, from);
    started.recurrence = continued_from(&series, &master.data.recurrence, from, tz);
    Series::parse(&started.recurrence, &started.when, tz)?;
    Ok(db.split_series(actor.firm_id, &master, ended, started, from).await?)
}
