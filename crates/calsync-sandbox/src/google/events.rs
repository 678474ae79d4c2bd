//! Single-event operations: get/insert/import/update/patch/delete, on events, series
//! masters and their instances (exceptions).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Calendar;
use super::calendar::*;
use super::error::{ApiError, ApiResult};
use super::guests;
use super::model::{self, Event};
use super::oauth::GoogleAuth;
use super::series;
use super::write::{
    Times, carry_into_exceptions, check_times, commit, sanitize, series_times, settle_orphans, store_edit,
};
use crate::ids;
use crate::state::Shared;

/// An event by id: a stored exception or event, else a series occurrence synthesized from
/// its master. Returns the event, its extent, whether it is deleted.
pub(super) fn lookup(cal: &Calendar, id: &str) -> Option<(Event, Times, bool)> {
    let stored = cal.events.get(id);
    if let Some(i) = stored
        && (i.ev.recurring_event_id.is_some() || !i.deleted || series::split_id(id).is_none())
    {
        return Some(((*i.ev).clone(), Times { start: i.start, end: i.end }, i.deleted));
    }
    if let Some((ev, start, end)) = series::virtual_instance(cal, id) {
        return Some((ev, Times { start, end }, false));
    }
    stored.map(|i| ((*i.ev).clone(), Times { start: i.start, end: i.end }, i.deleted))
}

pub(super) fn write_params() -> &'static [&'static str] {
    &[
        "sendUpdates",
        "sendNotifications",
        "conferenceDataVersion",
        "supportsAttachments",
        "maxAttendees",
        "alwaysIncludeEmail",
        "timeZone",
    ]
}

pub(super) async fn insert_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(create(&shared, auth, &cal_id, raw, &body, false))
}

pub(super) async fn import_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(create(&shared, auth, &cal_id, raw, &body, true))
}

pub(super) fn create(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    raw: Option<String>,
    body: &[u8],
    import: bool,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_WRITE)?;
    let q = Query::parse(raw, write_params())?;
    let mut ev = event_from(json_body(body)?)?;
    model::validate(&ev)?;
    let send = guests::send_updates(&q)?;
    if import && ev.ical_uid.is_none() {
        return Err(ApiError::required("Missing iCalUID."));
    }
    sanitize(&mut ev, &q);
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let (cal_key, cal_tz, req_tz) = {
        let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
        (cal.id.clone(), cal.tz, q.tz()?)
    };
    let times = check_times(&mut ev, cal_tz)?;
    let (times, _) = series_times(&ev, times, cal_tz)?;
    let existing_by_uid = if import {
        let cal = &world.google.calendars[&cal_key];
        ev.ical_uid.as_ref().and_then(|u| cal.by_ical.get(u)).cloned()
    } else {
        None
    };
    let id = match (&ev.id, existing_by_uid) {
        // Import of a known iCalUID updates that event in place.
        (_, Some(existing)) => existing,
        (Some(id), None) => {
            if !model::valid_event_id(id) {
                return Err(ApiError::invalid("Invalid resource id value."));
            }
            if world.google.calendars[&cal_key].events.get(id).is_some() {
                return Err(ApiError::new(409, "global", "duplicate", "The requested identifier already exists."));
            }
            id.clone()
        }
        (None, None) => ids::base32hex_id(&mut world.rng),
    };
    let prior = world.google.calendars[&cal_key].events.get(&id).map(|i| i.ev.clone());
    ev.id = Some(id.clone());
    ev.kind = Some("calendar#event".into());
    if ev.ical_uid.is_none() {
        ev.ical_uid = Some(format!("{id}@google.com"));
    }
    ev.created = Some(prior.as_ref().and_then(|p| p.created.clone()).unwrap_or_else(|| model::format_stamp(now)));
    ev.sequence = Some(ev.sequence.unwrap_or(0).max(prior.as_ref().and_then(|p| p.sequence).unwrap_or(0)));
    let owner = model::Person { email: Some(auth.email.clone()), is_self: Some(true), ..Default::default() };
    ev.creator = Some(owner.clone());
    if ev.organizer.is_none() || !import {
        ev.organizer = Some(owner);
    }
    ev.html_link = Some(html_link(&id, &cal_key));
    let stored = commit(&mut world, &cal_key, &id, ev, &times, false, now);
    if let Some(prior) = prior.as_ref().filter(|p| series::is_master(p))
        && series::is_master(&stored)
    {
        carry_into_exceptions(&mut world, &cal_key, &id, prior, &stored, now);
    }
    if guests::organised_by(&stored, &auth.email, &cal_key) {
        guests::record_mail(&mut world, &auth.email, send, prior.as_deref(), &stored, &id, now);
    }
    Ok(Json(render(&stored, req_tz.unwrap_or(cal_tz))).into_response())
}

pub(super) fn html_link(id: &str, cal: &str) -> String {
    let eid = data_encoding::BASE64URL_NOPAD.encode(format!("{id} {cal}").as_bytes());
    format!("https://www.google.com/calendar/event?eid={eid}")
}

pub(super) fn if_match(headers: &HeaderMap, etag: Option<&String>) -> ApiResult<()> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some("*") => Ok(()),
        Some(v) if Some(v) == etag.map(String::as_str) => Ok(()),
        Some(_) => Err(ApiError::precondition_failed()),
    }
}

pub(super) async fn get_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_READ)?;
        let q = Query::parse(raw, &["maxAttendees", "timeZone", "alwaysIncludeEmail"])?;
        let tz = q.tz()?;
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        let (ev, _, _) = lookup(cal, &event_id).ok_or_else(ApiError::not_found)?;
        if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
            && ev.etag.as_deref() == Some(inm)
        {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        Ok(Json(render(&ev, tz.unwrap_or(cal.tz))).into_response())
    })())
}

pub(super) async fn update_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(modify(&shared, auth, &cal_id, &event_id, raw, &headers, &body, false))
}

pub(super) async fn patch_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(modify(&shared, auth, &cal_id, &event_id, raw, &headers, &body, true))
}

/// JSON merge patch, except that arrays and `start`/`end` objects replace wholesale and
/// `null` deletes (which is how extended properties are removed).
pub(super) fn merge(target: &mut Value, patch: Value, top: bool) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else if top && matches!(k.as_str(), "start" | "end") {
                    t.insert(k, v);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v, false);
                }
            }
        }
        (t, p) => *t = p,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn modify(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    event_id: &str,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
    patch: bool,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_WRITE)?;
    let q = Query::parse(raw, write_params())?;
    let req_tz = q.tz()?;
    let send = guests::send_updates(&q)?;
    let patch_body = json_body(body)?;
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
    let (cal_key, cal_tz) = (cal.id.clone(), cal.tz);
    let (current, _, current_deleted) = lookup(cal, event_id).ok_or_else(ApiError::not_found)?;
    if_match(headers, current.etag.as_ref())?;
    let body_sequence = patch_body.get("sequence").and_then(Value::as_i64);
    let mut ev = if patch {
        let mut base = to_value(&current);
        merge(&mut base, patch_body, true);
        event_from(base)?
    } else {
        event_from(patch_body)?
    };
    model::validate(&ev)?;
    let cur_seq = current.sequence.unwrap_or(0);
    if body_sequence.is_some_and(|s| s < cur_seq) {
        return Err(ApiError::invalid(
            "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.",
        ));
    }
    if ev.event_type.is_some() && ev.event_type != current.event_type {
        return Err(ApiError::bad_request("The event type cannot be changed."));
    }
    if let Some(id) = &ev.id
        && id != event_id
    {
        return Err(ApiError::invalid("The event id in the body does not match the request."));
    }
    if ev.ical_uid.is_some() && ev.ical_uid != current.ical_uid {
        return Err(ApiError::invalid("The iCalUID of an event cannot be changed."));
    }
    let is_instance = current.recurring_event_id.is_some();
    if is_instance && ev.recurrence.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::invalid(
            "Invalid recurrence rule. An instance of a recurring event cannot have a recurrence.",
        ));
    }
    sanitize(&mut ev, &q);
    if is_instance {
        // Editing an instance stores an exception; its identity never changes.
        ev.recurrence = None;
        ev.recurring_event_id = current.recurring_event_id.clone();
        ev.original_start_time = current.original_start_time.clone();
    }
    let organiser = guests::organised_by(&current, &auth.email, &cal_key);
    if !organiser {
        // Without the opt-in parameters a write ignores conference data and attachments;
        // the attendee's copy keeps the organizer's.
        if q.get("conferenceDataVersion") != Some("1") {
            ev.conference_data = current.conference_data.clone();
        }
        if q.get("supportsAttachments") != Some("true") {
            ev.attachments = current.attachments.clone();
        }
        check_times(&mut ev, cal_tz)?;
        guests::check_attendee_write(&current, &mut ev, &auth.email)?;
    }
    let stored = store_edit(&mut world, &cal_key, cal_tz, event_id, &current, current_deleted, ev, body_sequence, now)?;
    if organiser {
        let old = (!current_deleted).then_some(&current);
        guests::record_mail(&mut world, &auth.email, send, old, &stored, event_id, now);
    }
    Ok(Json(render(&stored, req_tz.unwrap_or(cal_tz))).into_response())
}

pub(super) async fn delete_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_WRITE)?;
        let q = Query::parse(raw, &["sendUpdates", "sendNotifications"])?;
        let send = guests::send_updates(&q)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        let cal_key = cal.id.clone();
        let (mut ev, times, deleted) = lookup(cal, &event_id).ok_or_else(ApiError::not_found)?;
        if deleted {
            return Err(ApiError::new(410, "global", "deleted", "Resource has been deleted"));
        }
        if_match(&headers, ev.etag.as_ref())?;
        // Deleting an instance stores a cancelled exception (it keeps recurringEventId);
        // deleting a master also drops its exceptions.
        // An attendee deleting someone else's event only removes its own copy: no mail.
        let old_info = series::master_info(&ev)?;
        ev.status = Some("cancelled".into());
        let stored = commit(&mut world, &cal_key, &event_id, ev, &times, true, now);
        settle_orphans(&mut world, &cal_key, &event_id, old_info.as_ref(), None, now);
        if guests::organised_by(&stored, &auth.email, &cal_key) {
            guests::record_mail(&mut world, &auth.email, send, None, &stored, &event_id, now);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// `events.move`: the event (with its exceptions) leaves `cal_id` as a deletion and
/// appears in `destination` under the same id, organized by the destination calendar.
pub(super) async fn move_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_WRITE)?;
        let q = Query::parse(raw, &["destination", "sendUpdates", "sendNotifications"])?;
        let dest = q.get("destination").ok_or_else(|| ApiError::required("Required parameter: destination"))?;
        let req_tz = q.tz()?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let src = calendar_mut(&mut world.google, &auth, &cal_id)?;
        let src_key = src.id.clone();
        let item = src.events.get(&event_id).filter(|i| !i.deleted).ok_or_else(ApiError::not_found)?;
        if item.ev.recurring_event_id.is_some() {
            return Err(ApiError::bad_request("Cannot change the organizer of an instance."));
        }
        let prefix = format!("{event_id}_");
        let mut moving: Vec<(String, Event, Times)> = src
            .events
            .ids()
            .filter(|i| i.starts_with(&prefix))
            .filter_map(|i| src.events.get(i).map(|x| (i, x)))
            .filter(|(_, x)| x.ev.recurring_event_id.as_deref() == Some(event_id.as_str()))
            .map(|(i, x)| (i.clone(), (*x.ev).clone(), Times { start: x.start, end: x.end }))
            .collect();
        moving.insert(0, (event_id.clone(), (*item.ev).clone(), Times { start: item.start, end: item.end }));
        let dst = calendar_mut(&mut world.google, &auth, dest)?;
        let (dst_key, dst_tz, dst_summary) = (dst.id.clone(), dst.tz, dst.summary.clone());
        if dst_key == src_key {
            return Err(ApiError::bad_request("The destination calendar is the event's calendar."));
        }
        if dst.events.get(&event_id).is_some_and(|i| !i.deleted) {
            return Err(ApiError::new(409, "global", "duplicate", "The requested identifier already exists."));
        }
        let mut moved = None;
        for (id, ev, times) in moving {
            let mut tomb = ev.clone();
            tomb.status = Some("cancelled".into());
            tomb.recurring_event_id = None;
            commit(&mut world, &src_key, &id, tomb, &times, true, now);
            let mut ev = ev;
            ev.organizer = Some(model::Person {
                email: Some(dst_key.clone()),
                display_name: Some(dst_summary.clone()),
                is_self: Some(true),
                ..Default::default()
            });
            ev.html_link = Some(html_link(&id, &dst_key));
            let deleted = ev.status.as_deref() == Some("cancelled");
            let stored = commit(&mut world, &dst_key, &id, ev, &times, deleted, now);
            moved.get_or_insert(stored);
        }
        let moved = moved.expect("the event itself moved");
        Ok(Json(render(&moved, req_tz.unwrap_or(dst_tz))).into_response())
    })())
}

/// `events.quickAdd`. Google parses the text for a time; the sandbox does not: the text
/// becomes the summary of a one-hour event starting at the next full hour.
pub(super) async fn quick_add(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_WRITE)?;
        let q = Query::parse(raw, &["text", "sendUpdates", "sendNotifications"])?;
        let text =
            q.get("text").filter(|t| !t.is_empty()).ok_or_else(|| ApiError::required("Required parameter: text"))?;
        let now = shared.clock.now_ms();
        let start = (now / 3_600_000 + 1) * 3_600_000;
        let stamp = |ms: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let body = serde_json::json!({
            "summary": text,
            "start": {"dateTime": stamp(start)},
            "end": {"dateTime": stamp(start + 3_600_000)},
        });
        create(&shared, Ok(auth), &cal_id, None, body.to_string().as_bytes(), false)
    })())
}
