//! Appointments as the caller may see them: staff read and change their own; admins read the
//! whole firm's but change only their own. Anything the caller may not read is "not found".

use super::ServiceError;
use calsync_domain::appointment::{Appointment, AppointmentData, AppointmentInput};
use calsync_domain::ids::AppointmentId;
use calsync_domain::tenant::Actor;
use calsync_store::{AppointmentPage, AppointmentQuery, Db, StoreError};

pub async fn list(db: &Db, actor: &Actor, mut query: AppointmentQuery) -> Result<AppointmentPage, ServiceError> {
    query.owner = actor.readable_owner();
    Ok(db.list_appointments(actor.firm_id, &query).await?)
}

pub async fn get(db: &Db, actor: &Actor, id: AppointmentId) -> Result<Appointment, ServiceError> {
    Ok(db.appointment(actor.firm_id, actor.readable_owner(), id).await?)
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
