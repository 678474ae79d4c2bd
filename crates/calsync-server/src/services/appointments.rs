//! Appointments as the caller may see them: staff read and change their own; admins read the
//! whole firm's but change only their own. Anything the caller may not read is "not found".

use super::ServiceError;
use calsync_domain::appointment::{Appointment, AppointmentData, AppointmentInput, Origin};
use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_domain::ids::{AppointmentId, ConnectionId, FirmId, UserId};
use calsync_domain::sync::LinkState;
use calsync_domain::tenant::Actor;
use calsync_store::{AppointmentPage, AppointmentQuery, Db, StoreError};
use std::collections::HashMap;

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
        match db.update_appointment(actor.firm_id, id, current.version, data).await {
            Ok(a) => return Ok(a),
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
                        out.entry(a.id).or_default().push(SyncEntry {
                            connection: c.id,
                            provider: c.provider,
                            state: LinkState::Pending,
                            last_error: None,
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
