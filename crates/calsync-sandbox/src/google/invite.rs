//! Control API: events organised by someone else. `POST /_sandbox/google/invite` places an
//! invitation in an account's calendar (the account is an attendee that has not answered
//! yet); `organizer-update` and `organizer-cancel` change or cancel it as its organizer
//! would. The account's writes to such an event go through the Calendar API, where
//! [`super::guests::check_attendee_write`] keeps them to what an attendee may change.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::calendar::{Query, event_from, render, to_value};
use super::events;
use super::guests;
use super::model::{self, Attendee, Person};
use super::write;
use crate::ids;
use crate::state::{Shared, World};

/// A control-API failure: status and message, answered as `{"error": message}`.
type Failure = (StatusCode, String);

fn fail(status: StatusCode, msg: impl Into<String>) -> Failure {
    (status, msg.into())
}

fn answer(result: Result<Value, Failure>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err((status, msg)) => crate::control::error(status, msg),
    }
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, Failure> {
    payload.map(|Json(v)| v).map_err(|e| fail(StatusCode::BAD_REQUEST, e.body_text()))
}

/// A Calendar API validation error, for the control API.
fn invalid(e: super::ApiError) -> Failure {
    fail(StatusCode::BAD_REQUEST, e.message)
}

/// The account's calendar key (`primary` resolves to the primary calendar).
fn calendar_of(world: &World, email: &str, cal_id: Option<&str>) -> Result<String, Failure> {
    let account = world.google.accounts.get(email).ok_or_else(|| fail(StatusCode::NOT_FOUND, "no such account"))?;
    let key = match cal_id.unwrap_or("primary") {
        "primary" => account.calendars[0].clone(),
        id if account.calendars.iter().any(|c| c == id) => id.to_owned(),
        _ => return Err(fail(StatusCode::NOT_FOUND, "no such calendar")),
    };
    match world.google.calendars.get(&key) {
        Some(c) if !c.deleted => Ok(key),
        _ => Err(fail(StatusCode::NOT_FOUND, "no such calendar")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteReq {
    email: String,
    calendar_id: Option<String>,
    /// The organizer's e-mail: anyone but the account.
    organizer: String,
    /// A Google event resource (`summary`, `start`, `end`, `recurrence`, `attendees`…).
    event: Value,
}

/// `POST /_sandbox/google/invite`: 200 with the event as the account sees it.
pub(crate) async fn invite(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<InviteReq>, JsonRejection>,
) -> Response {
    answer(body(payload).and_then(|req| place_invitation(&shared, req)))
}

fn place_invitation(shared: &Shared, req: InviteReq) -> Result<Value, Failure> {
    let me = req.email.to_ascii_lowercase();
    let organizer = req.organizer.to_ascii_lowercase();
    if !organizer.contains('@') || organizer == me {
        return Err(fail(StatusCode::BAD_REQUEST, "organizer must be another e-mail address than email"));
    }
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal_key = calendar_of(&world, &me, req.calendar_id.as_deref())?;
    let cal_tz = world.google.calendars[&cal_key].tz;
    let mut ev = event_from(req.event).map_err(invalid)?;
    model::validate(&ev).map_err(invalid)?;
    // The organizer's copy decides conference data and attachments: keep what was given.
    let keep_all =
        Query(vec![("conferenceDataVersion".into(), "1".into()), ("supportsAttachments".into(), "true".into())]);
    write::sanitize(&mut ev, &keep_all);
    if ev.status.as_deref() == Some("cancelled") {
        return Err(fail(StatusCode::BAD_REQUEST, "an invitation cannot start cancelled"));
    }
    let times = write::check_times(&mut ev, cal_tz).map_err(invalid)?;
    let (times, _) = write::series_times(&ev, times, cal_tz).map_err(invalid)?;
    let id = match ev.id.take() {
        Some(id) if !model::valid_event_id(&id) => return Err(fail(StatusCode::BAD_REQUEST, "invalid event id")),
        Some(id) if world.google.calendars[&cal_key].events.get(&id).is_some() => {
            return Err(fail(StatusCode::CONFLICT, format!("{id} already exists")));
        }
        Some(id) => id,
        None => ids::base32hex_id(&mut world.rng),
    };
    let given = ev.organizer.take().unwrap_or_default();
    let person = Person { email: Some(organizer.clone()), display_name: given.display_name, ..Default::default() };
    // The organizer has accepted; the account has not answered; other guests as given.
    let mut attendees = vec![
        Attendee {
            email: Some(organizer.clone()),
            display_name: person.display_name.clone(),
            response_status: Some("accepted".into()),
            ..Default::default()
        },
        Attendee { email: Some(me.clone()), response_status: Some("needsAction".into()), ..Default::default() },
    ];
    for a in ev.attendees.take().into_iter().flatten() {
        let email = a.email.as_deref().unwrap_or_default().to_ascii_lowercase();
        if email != me && email != organizer {
            let response_status = a.response_status.clone().or(Some("needsAction".into()));
            attendees.push(Attendee { response_status, ..a });
        }
    }
    ev.attendees = Some(attendees);
    guests::mark_attendees(&mut ev, &me, &organizer);
    ev.id = Some(id.clone());
    ev.kind = Some("calendar#event".into());
    ev.ical_uid = ev.ical_uid.or_else(|| Some(format!("{id}@google.com")));
    ev.created = Some(model::format_stamp(now));
    ev.sequence = Some(ev.sequence.unwrap_or(0));
    ev.creator = Some(person.clone());
    ev.organizer = Some(person);
    ev.html_link = Some(events::html_link(&id, &cal_key));
    let stored = write::commit(&mut world, &cal_key, &id, ev, &times, false, now);
    Ok(to_value(&render(&stored, cal_tz)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizerUpdateReq {
    email: String,
    calendar_id: Option<String>,
    event_id: String,
    /// Merged like a Calendar API PATCH (arrays replace, `null` removes).
    patch: Value,
}

/// `POST /_sandbox/google/organizer-update`: 200 with the event as the account now sees it.
pub(crate) async fn organizer_update(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<OrganizerUpdateReq>, JsonRejection>,
) -> Response {
    answer(body(payload).and_then(|req| {
        if !req.patch.is_object() {
            return Err(fail(StatusCode::BAD_REQUEST, "patch must be an object"));
        }
        organizer_edit(&shared, &req.email, req.calendar_id.as_deref(), &req.event_id, req.patch)
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizerCancelReq {
    email: String,
    calendar_id: Option<String>,
    event_id: String,
}

/// `POST /_sandbox/google/organizer-cancel`: the organizer cancels the event (or one
/// instance); the account's copy becomes a cancelled event, as incremental sync shows.
pub(crate) async fn organizer_cancel(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<OrganizerCancelReq>, JsonRejection>,
) -> Response {
    answer(body(payload).and_then(|req| {
        let patch = json!({"status": "cancelled"});
        organizer_edit(&shared, &req.email, req.calendar_id.as_deref(), &req.event_id, patch)
    }))
}

/// Applies `patch` to the account's copy as the event's organizer: everything may change,
/// the organizer and identity stay; timing changes bump `sequence`, series changes settle
/// exceptions and instances exactly as a Calendar API edit of a master would. A guest
/// list without the account cancels its copy.
fn organizer_edit(
    shared: &Shared,
    email: &str,
    cal_id: Option<&str>,
    event_id: &str,
    patch: Value,
) -> Result<Value, Failure> {
    let me = email.to_ascii_lowercase();
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal_key = calendar_of(&world, &me, cal_id)?;
    let cal = &world.google.calendars[&cal_key];
    let cal_tz = cal.tz;
    let (current, _, deleted) =
        events::lookup(cal, event_id).ok_or_else(|| fail(StatusCode::NOT_FOUND, "no such event"))?;
    if deleted {
        return Err(fail(StatusCode::GONE, "the event is cancelled"));
    }
    if guests::organised_by(&current, &me, &cal_key) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "the account organises this event itself: change it through the Calendar API",
        ));
    }
    let organizer = current.organizer.as_ref().and_then(|o| o.email.clone()).unwrap_or_default();
    let mut base = to_value(&current);
    events::merge(&mut base, patch, true);
    let mut ev = event_from(base).map_err(invalid)?;
    model::validate(&ev).map_err(invalid)?;
    if ev.recurring_event_id.is_some() && ev.recurrence.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(fail(StatusCode::BAD_REQUEST, "an instance cannot have a recurrence"));
    }
    // Identity never changes: an instance stays the same instance of the same series.
    ev.recurring_event_id = current.recurring_event_id.clone();
    ev.original_start_time = current.original_start_time.clone();
    guests::mark_attendees(&mut ev, &me, &organizer);
    // Dropped from the guest list, the account loses its copy: Google cancels it there.
    if !ev.attendees.iter().flatten().any(|a| a.is_self == Some(true)) {
        ev.status = Some("cancelled".into());
    }
    let stored =
        write::store_edit(&mut world, &cal_key, cal_tz, event_id, &current, false, ev, None, now).map_err(invalid)?;
    Ok(to_value(&render(&stored, cal_tz)))
}
