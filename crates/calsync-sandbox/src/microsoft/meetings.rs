//! Meetings: the mail Graph sends for the mailbox's own meetings, attendee copies of
//! meetings organised by someone else (placed, updated and cancelled by the organizer through
//! the control API), and the attendee's RSVP actions.
//!
//! Rules, stricter than Outlook where it is unclear:
//! - Graph mails attendees (there is no switch to suppress it): an invitation to every
//!   attendee on create; when the time, the location or the attendee list changes, an update
//!   to the attendees kept, an invitation to those added and a cancellation to those removed;
//!   a cancellation to all of them on delete or `cancel`. Nothing for attendee copies.
//! - On an attendee copy, PATCH may change only the attendee's own properties
//!   (`categories`, reminders, `showAs`, `sensitivity`, `importance`, extended properties);
//!   anything the organizer owns is refused with 400. Only the organizer can `cancel`.
//! - `accept`/`tentativelyAccept` answer 202 and set `responseStatus`; `decline` answers 202
//!   and removes the meeting from the calendar, as Outlook moves declined meetings to Deleted
//!   Items. The organizer cannot respond to their own meeting (400), nor can anyone respond
//!   to a cancelled one.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};
use super::events::{extent, locate, new_event, normalize, remove, response_body, store, store_edit};
use super::graph::{GEvent, Invite, WRITE, calendar_id, check, look, prefer, respond, utc_stamp};
use super::identity::GraphAuth;
use super::render::{attendee_emails, render};
use super::series;
use crate::ids;
use crate::mail::{MailKind, record};
use crate::state::{Provider, Shared, World};

/// Properties an attendee may change on their copy of someone else's meeting.
const ATTENDEE_OWNED: &[&str] = &[
    "@odata.type",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "showAs",
    "sensitivity",
    "importance",
    "singleValueExtendedProperties",
];

/// Properties whose change makes Graph mail the attendees (with the attendee list).
const MAILED: &[&str] = &["start", "end", "isAllDay", "recurrence", "location", "locations"];

fn others(ev: &GEvent, owner: &str) -> BTreeSet<String> {
    attendee_emails(&ev.props).into_iter().filter(|a| !a.eq_ignore_ascii_case(owner)).collect()
}

fn subject(ev: &GEvent) -> String {
    ev.props.get("subject").and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn send(world: &mut World, owner: &str, kind: MailKind, to: &BTreeSet<String>, ev: &GEvent, now: i64) {
    let subject = match kind {
        MailKind::Cancellation => format!("Canceled: {}", subject(ev)),
        _ => subject(ev),
    };
    record(world, Provider::Microsoft, owner, kind, to.iter().cloned().collect(), &ev.id, &subject, now);
}

/// A new meeting organised by the mailbox: invitations to every attendee.
pub(super) fn mail_created(world: &mut World, owner: &str, ev: &GEvent, now: i64) {
    if ev.invite.is_none() {
        send(world, owner, MailKind::Invitation, &others(ev, owner), ev, now);
    }
}

/// An edit of the mailbox's meeting: mail when the time, the location or the attendees change.
pub(super) fn mail_changed(world: &mut World, owner: &str, before: &GEvent, after: &GEvent, now: i64) {
    if after.invite.is_some() {
        return;
    }
    let (was, is) = (others(before, owner), others(after, owner));
    let moved = MAILED.iter().any(|k| before.props.get(*k) != after.props.get(*k));
    if !moved && was == is {
        return;
    }
    let kept: BTreeSet<String> = was.intersection(&is).cloned().collect();
    send(world, owner, MailKind::Update, &kept, after, now);
    send(world, owner, MailKind::Invitation, &is.difference(&was).cloned().collect(), after, now);
    send(world, owner, MailKind::Cancellation, &was.difference(&is).cloned().collect(), after, now);
}

/// The mailbox deletes or cancels its meeting: cancellations to every attendee.
pub(super) fn mail_cancelled(world: &mut World, owner: &str, ev: &GEvent, now: i64) {
    if ev.invite.is_none() {
        send(world, owner, MailKind::Cancellation, &others(ev, owner), ev, now);
    }
}

/// Refuses a PATCH of an attendee copy that touches what the organizer owns.
pub(super) fn check_attendee_patch(patch: &Map<String, Value>) -> GraphResult<()> {
    match patch.keys().find(|k| !ATTENDEE_OWNED.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            &format!(
                "Your request can't be completed. Only the meeting organizer can change '{k}'; an attendee may change only categories, reminders, showAs, sensitivity, importance and extended properties of their copy."
            ),
        )),
    }
}

/// `accept` / `tentativelyAccept` / `decline` (the action is the last path segment).
pub(super) async fn respond_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(WRITE)?;
        response_body(&body)?;
        let action = uri.0.path().rsplit('/').next().unwrap_or_default().to_owned();
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = locate(&world.microsoft, &auth, &id)?;
        let (mut ev, span, _, _) = series::resolve(&world.microsoft, &cal, &id).ok_or_else(GraphError::not_found)?;
        let Some(invite) = ev.invite.as_mut() else {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. You can't respond to a meeting you organized.",
            ));
        };
        if invite.cancelled {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. The meeting has been canceled.",
            ));
        }
        if action == "decline" {
            drop(world);
            remove(&shared, &auth, &id, &headers, false)?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        let response = if action == "accept" { "accepted" } else { "tentativelyAccepted" };
        invite.response = json!({"response": response, "time": utc_stamp(now)});
        ev.change_key = ids::token(&mut world.rng, "", 18);
        if let Some(l) = ev.link.as_mut() {
            l.exception = true;
        }
        store(&mut world, &cal, ev, span, now, false);
        Ok(StatusCode::ACCEPTED.into_response())
    })())
}

use crate::control::{body, error as control_error};

/// A `GraphAuth` for control calls acting as the mailbox itself.
fn as_mailbox(email: &str) -> GraphAuth {
    GraphAuth::control(&email.to_ascii_lowercase())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Person {
    name: Option<String>,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteReq {
    email: String,
    organizer: Person,
    /// A Graph event (as a client would POST it).
    event: Value,
}

/// `POST /_sandbox/microsoft/invite`: a meeting organised by someone else lands in the
/// account's default calendar, not yet answered. 201 with the event as the mailbox sees it.
pub(crate) async fn invite(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<InviteReq>, JsonRejection>,
) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let auth = as_mailbox(&req.email);
    if !req.organizer.address.contains('@') || req.organizer.address.eq_ignore_ascii_case(&auth.email) {
        return control_error(StatusCode::BAD_REQUEST, "organizer.address must be another e-mail address");
    }
    let Value::Object(mut props) = req.event else {
        return control_error(StatusCode::BAD_REQUEST, "event must be a Graph event object");
    };
    if !attendee_emails(&props).contains(&auth.email) {
        let list = props.entry("attendees").or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({"type": "required", "emailAddress": {"name": auth.email, "address": auth.email}}));
        }
    }
    let placed = (|| {
        let (s, e, all_day) = check(&mut props, true)?;
        normalize(&mut props, None)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = calendar_id(&world.microsoft, &auth, None)?;
        let mut ev = new_event(&mut world, props, all_day, now);
        let address = req.organizer.address.to_ascii_lowercase();
        let name = req.organizer.name.clone().unwrap_or_else(|| address.clone());
        ev.invite = Some(Invite {
            organizer: json!({"name": name, "address": address}),
            response: json!({"response": "notResponded", "time": "0001-01-01T00:00:00Z"}),
            cancelled: false,
        });
        let v = render(&ev, now, &look(&world.microsoft, &auth, &no_prefer(), None));
        let span = extent(&ev, s, e);
        store(&mut world, &cal, ev, span, now, false);
        Ok(v)
    })();
    match placed {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => control_graph_error(e),
    }
}

fn no_prefer() -> super::graph::Prefer {
    prefer(&HeaderMap::new()).expect("no preferences")
}

fn control_graph_error(e: GraphError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    control_error(status, format!("{}: {}", e.code, e.message))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizerUpdateReq {
    email: String,
    event_id: String,
    /// Properties the organizer changed (Graph event JSON, merged like a PATCH).
    event: Option<Map<String, Value>>,
}

/// Applies an organizer's change (`cancel`: the cancellation) to the attendee copy.
fn organizer_change(shared: &Shared, req: OrganizerUpdateReq, cancel: bool) -> GraphResult<Value> {
    let auth = as_mailbox(&req.email);
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal = locate(&world.microsoft, &auth, &req.event_id)?;
    let (current, _, _, _) =
        series::resolve(&world.microsoft, &cal, &req.event_id).ok_or_else(GraphError::not_found)?;
    let Some(invite) = current.invite.clone() else {
        return Err(GraphError::bad_request("The event is organised by the mailbox itself, not by another person."));
    };
    let mut ev = current.clone();
    for (k, v) in req.event.unwrap_or_default() {
        ev.props.insert(k, v);
    }
    let (s, e, all_day) = check(&mut ev.props, ev.link.is_none())?;
    normalize(&mut ev.props, Some(&current.props))?;
    ev.all_day = all_day;
    let mut invite = invite;
    if ["start", "end"].iter().any(|k| current.props.get(*k) != ev.props.get(*k)) {
        // A new time is a new request: the earlier answer no longer stands.
        invite.response = json!({"response": "notResponded", "time": "0001-01-01T00:00:00Z"});
    }
    ev.invite = Some(invite);
    if cancel {
        cancel_copy(&mut ev);
    }
    ev.change_key = ids::token(&mut world.rng, "", 18);
    if let Some(l) = ev.link.as_mut() {
        l.exception = true;
    }
    let v = render(&ev, now, &look(&world.microsoft, &auth, &no_prefer(), None));
    let span = extent(&ev, s, e);
    // The same bookkeeping as the mailbox's own series edits: history for delta, orphaned
    // exceptions removed, the change (a cancellation included) carried into exceptions.
    store_edit(&mut world, &cal, &current, ev, span, now);
    Ok(v)
}

/// The organizer cancelled: the attendee copy stays, `isCancelled`, subject prefixed.
pub(super) fn cancel_copy(ev: &mut GEvent) {
    let Some(invite) = ev.invite.as_mut() else { return };
    invite.cancelled = true;
    let subject = ev.props.get("subject").and_then(Value::as_str).unwrap_or_default();
    if !subject.starts_with("Canceled: ") {
        ev.props.insert("subject".into(), json!(format!("Canceled: {subject}")));
    }
}

/// `POST /_sandbox/microsoft/organizer-update {"email","event_id","event"}`: the organizer
/// changed the meeting; the attendee copy follows (a new change key, visible in delta).
pub(crate) async fn organizer_update(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<OrganizerUpdateReq>, JsonRejection>,
) -> Response {
    match body(payload) {
        Ok(req) => organizer_change(&shared, req, false).map_or_else(control_graph_error, |v| Json(v).into_response()),
        Err(e) => e,
    }
}

/// `POST /_sandbox/microsoft/organizer-cancel {"email","event_id"}`: the organizer cancelled;
/// the attendee copy stays, `isCancelled: true`, subject prefixed "Canceled: ".
pub(crate) async fn organizer_cancel(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<OrganizerUpdateReq>, JsonRejection>,
) -> Response {
    match body(payload) {
        Ok(req) => organizer_change(&shared, req, true).map_or_else(control_graph_error, |v| Json(v).into_response()),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MailboxReq {
    email: String,
    /// E.g. `tzone://Microsoft/Custom` or `Customized Time Zone`; `null` restores standard zones.
    custom_time_zone: Option<String>,
}

/// `POST /_sandbox/microsoft/mailbox-settings`: the mailbox uses a custom time zone, which
/// Outlook reports as the events' `originalStartTimeZone`/`originalEndTimeZone`.
pub(crate) async fn mailbox_settings(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<MailboxReq>, JsonRejection>,
) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.custom_time_zone.as_deref().is_some_and(|z| z.trim().is_empty()) {
        return control_error(StatusCode::BAD_REQUEST, "custom_time_zone must not be empty");
    }
    let mut world = shared.world();
    match world.microsoft.accounts.get_mut(&req.email.to_ascii_lowercase()) {
        Some(acc) => {
            acc.custom_zone = req.custom_time_zone.clone();
            Json(json!({"email": req.email.to_ascii_lowercase(), "custom_time_zone": req.custom_time_zone}))
                .into_response()
        }
        None => control_error(StatusCode::NOT_FOUND, "no such account"),
    }
}
