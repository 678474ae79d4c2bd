//! Storing Google event writes: times checked and normalised, server-set fields, the log
//! position and etag of each write, and what a master write leaves behind (exceptions
//! carried along or dropped, tombstones of lost instances).

use std::sync::Arc;

use chrono_tz::Tz;

use super::calendar::*;
use super::error::{ApiError, ApiResult};
use super::model::{self, Event, When};
use super::series::{self, MasterInfo};
use crate::state::World;
use crate::store::Item;

/// Resolved, validated times of an event write.
pub(super) struct Times {
    pub(super) start: i64,
    pub(super) end: i64,
}

/// A master's index extent is its whole series, so window queries find it.
pub(super) fn series_times(ev: &Event, times: Times, cal_tz: Tz) -> ApiResult<(Times, Option<MasterInfo>)> {
    Ok(match series::master_info(ev)? {
        Some(info) => {
            let (start, end) = info.extent(cal_tz);
            (Times { start, end }, Some(info))
        }
        None => (times, None),
    })
}

/// Stores the exceptions a master edit changed (see [`series::carried_into_exceptions`]):
/// each gets a new etag and log position, so incremental sync resends it.
pub(super) fn carry_into_exceptions(
    world: &mut World,
    cal_key: &str,
    master_id: &str,
    old: &Event,
    new: &Event,
    now: i64,
) {
    let changed = series::carried_into_exceptions(&world.google.calendars[cal_key], master_id, old, new);
    for (id, ev, start, end) in changed {
        store(world, cal_key, &id, ev, &Times { start, end }, false, now);
    }
}

/// Stores what a master write orphaned (see [`series::orphans`]).
pub(super) fn settle_orphans(
    world: &mut World,
    cal_key: &str,
    master_id: &str,
    old: Option<&MasterInfo>,
    new: Option<&MasterInfo>,
    now: i64,
) {
    if old.is_none() {
        // A former single event has no instances or exceptions to settle.
        return;
    }
    let orphans = series::orphans(&world.google.calendars[cal_key], master_id, old, new);
    for (id, ev, start, end) in orphans {
        store(world, cal_key, &id, ev, &Times { start, end }, true, now);
    }
}

pub(super) fn check_times(ev: &mut Event, cal_tz: Tz) -> ApiResult<Times> {
    let start = ev.start.as_ref().ok_or_else(|| ApiError::required("Missing start time."))?;
    let end = ev.end.as_ref().ok_or_else(|| ApiError::required("Missing end time."))?;
    let s = model::resolve(start, "start")?;
    let e = model::resolve(end, "end")?;
    let ok_order = match (s, e) {
        (When::Date(a), When::Date(b)) => a < b,
        (When::Instant(a), When::Instant(b)) => a <= b,
        _ => {
            return Err(ApiError::bad_request("Start and end times must either both be date or both be dateTime."));
        }
    };
    if !ok_order {
        return Err(ApiError::new(400, "calendar", "timeRangeEmpty", "The specified time range is empty."));
    }
    if ev.recurrence.as_ref().is_some_and(|r| !r.is_empty())
        && matches!(s, When::Instant(_))
        && (start.time_zone.is_none() || end.time_zone.is_none())
    {
        let which = if start.time_zone.is_none() { "start" } else { "end" };
        return Err(ApiError::bad_request(&format!("Missing time zone definition for {which} time.")));
    }
    // Store instants in UTC; rendering converts per request.
    for (edt, w) in [(ev.start.as_mut(), s), (ev.end.as_mut(), e)] {
        if let (Some(edt), When::Instant(t)) = (edt, w) {
            edt.date_time = Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
    Ok(Times { start: s.key(cal_tz), end: e.key(cal_tz) })
}

/// Clears what clients cannot set and applies server defaults.
pub(super) fn sanitize(ev: &mut Event, q: &Query) {
    ev.kind = None;
    ev.etag = None;
    ev.html_link = None;
    ev.created = None;
    ev.updated = None;
    ev.creator = None;
    ev.hangout_link = None;
    ev.locked = None;
    ev.recurring_event_id = None;
    ev.original_start_time = None;
    if q.get("conferenceDataVersion") != Some("1") {
        ev.conference_data = None;
    }
    if q.get("supportsAttachments") != Some("true") {
        ev.attachments = None;
    }
    if ev.status.is_none() {
        ev.status = Some("confirmed".into());
    }
    if ev.reminders.is_none() {
        ev.reminders = Some(model::Reminders { use_default: Some(true), overrides: None });
    }
    if ev.event_type.is_none() {
        ev.event_type = Some("default".into());
    }
}

/// Stores a write (new log position, `updated`, `etag`) and pushes to the calendar's
/// channels.
pub(super) fn commit(
    world: &mut World,
    cal_id: &str,
    id: &str,
    ev: Event,
    times: &Times,
    deleted: bool,
    now: i64,
) -> Event {
    let stored = store(world, cal_id, id, ev, times, deleted, now);
    let notify_cal = world.google.calendars[cal_id].id.clone();
    super::push::notify(world, &notify_cal, now);
    stored
}

/// Stores a write without a push: the consequences of a master write (exceptions carried
/// along, tombstones of lost instances) ride on the master's own push, as one change.
pub(super) fn store(
    world: &mut World,
    cal_id: &str,
    id: &str,
    mut ev: Event,
    times: &Times,
    deleted: bool,
    now: i64,
) -> Event {
    let seq = world.next_seq();
    ev.updated = Some(model::format_stamp(now));
    ev.etag = Some(etag_for(now, seq));
    let cal = world.google.calendars.get_mut(cal_id).expect("calendar exists");
    // Instances share the master's iCalUID; the index keeps pointing at the master.
    if let Some(uid) = &ev.ical_uid
        && ev.recurring_event_id.is_none()
        && !(deleted && cal.by_ical.get(uid).is_some_and(|owner| owner != id))
    {
        cal.by_ical.insert(uid.clone(), id.to_owned());
    }
    cal.updated_ms = now;
    cal.events
        .put(id, Item { ev: Arc::new(ev.clone()), seq, start: times.start, end: times.end, updated_ms: now, deleted });
    ev
}

/// Stores an edit of `current` (stored form, `current_deleted` if it is a deletion) into
/// `ev`: times checked, `sequence` bumped when the timing changes, read-only fields kept,
/// `cancelled` stored as a deletion; a master's exceptions and lost instances are settled
/// and its other changes carried into exceptions. Shared by the Calendar API and the
/// control API's organizer edits.
#[allow(clippy::too_many_arguments)]
pub(super) fn store_edit(
    world: &mut World,
    cal_key: &str,
    cal_tz: Tz,
    event_id: &str,
    current: &Event,
    current_deleted: bool,
    mut ev: Event,
    body_sequence: Option<i64>,
    now: i64,
) -> ApiResult<Event> {
    let old_info = if current_deleted { None } else { series::master_info(current)? };
    let is_instance = current.recurring_event_id.is_some();
    let cur_seq = current.sequence.unwrap_or(0);
    let times = check_times(&mut ev, cal_tz)?;
    let (times, new_info) = series_times(&ev, times, cal_tz)?;
    let time_changed = ev.start != current.start || ev.end != current.end || ev.recurrence != current.recurrence;
    ev.sequence = Some(body_sequence.unwrap_or(cur_seq).max(cur_seq) + i64::from(time_changed));
    // Read-only fields survive a full replacement.
    ev.kind = current.kind.clone();
    ev.id = current.id.clone();
    ev.ical_uid = current.ical_uid.clone();
    ev.created = current.created.clone();
    ev.creator = current.creator.clone();
    ev.organizer = current.organizer.clone();
    ev.html_link = current.html_link.clone();
    ev.event_type = current.event_type.clone();
    let deleted = ev.status.as_deref() == Some("cancelled");
    let series_changed = time_changed || deleted;
    let stored = commit(world, cal_key, event_id, ev, &times, deleted, now);
    if series_changed && !is_instance {
        let new = if deleted { None } else { new_info.as_ref() };
        settle_orphans(world, cal_key, event_id, old_info.as_ref(), new, now);
    }
    if !is_instance && !deleted && old_info.is_some() && new_info.is_some() {
        carry_into_exceptions(world, cal_key, event_id, current, &stored, now);
    }
    Ok(stored)
}
