//! Events with guests: who may change what (an attendee's copy of someone else's event only
//! takes the attendee's own reply and personal settings) and the mail Google sends guests
//! on the organizer's writes when `sendUpdates` asks for it.

use serde_json::Value;

use super::calendar::{Query, to_value};
use super::error::{ApiError, ApiResult};
use super::model::{Attendee, Event};
use crate::mail::{self, MailKind};
use crate::state::{Provider, World};

/// `sendUpdates` (`all`, `externalOnly`, `none`), else the deprecated `sendNotifications`
/// (`true` means `all`, `false` means `none`); `None` when neither is given (no mail).
pub(super) fn send_updates(q: &Query) -> ApiResult<Option<&'static str>> {
    let notifications = q.bool("sendNotifications")?;
    match q.get("sendUpdates") {
        Some("all") => Ok(Some("all")),
        Some("externalOnly") => Ok(Some("externalOnly")),
        Some("none") => Ok(Some("none")),
        Some(_) => Err(ApiError::invalid_param("sendUpdates", "Invalid sendUpdates value.")),
        None => Ok(notifications.map(|n| if n { "all" } else { "none" })),
    }
}

/// Whether `me` (the calendar's account, or the calendar itself) organises `ev`. Events
/// without an organizer are the calendar's own.
pub(super) fn organised_by(ev: &Event, me: &str, cal_id: &str) -> bool {
    match &ev.organizer {
        None => true,
        Some(o) if o.is_self == Some(true) => true,
        Some(o) => o.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(me) || e.eq_ignore_ascii_case(cal_id)),
    }
}

/// Records the mail Google would send for this write by the organizer `account` that
/// turned `old` (`None` for a new event, or one that was deleted) into `new`: one message
/// per kind, however many instances of a series the write touches. Guests are compared by
/// e-mail: those only in `new` get an invitation, those only in `old` a cancellation (they
/// were removed), those in both an update; a cancelled `new` is a cancellation for every
/// guest of either list. Kept guests get an update on every such write, whatever changed:
/// Google is reported to mail guests even on writes they cannot see (extended
/// properties), so the sandbox does not try to tell which changes are worth a message.
/// All of it is subject to `send` ([`send_updates`]).
pub(super) fn record_mail(
    world: &mut World,
    account: &str,
    send: Option<&str>,
    old: Option<&Event>,
    new: &Event,
    event_id: &str,
    now: i64,
) {
    let emails = |ev: Option<&Event>| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in ev.into_iter().flat_map(|e| e.attendees.iter().flatten()).filter_map(|a| a.email.clone()) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&e)) {
                out.push(e);
            }
        }
        out
    };
    let in_list = |list: &[String], e: &str| list.iter().any(|x| x.eq_ignore_ascii_case(e));
    let (before, after) = (emails(old.filter(|o| o.status.as_deref() != Some("cancelled"))), emails(Some(new)));
    let subject = new.summary.as_deref().unwrap_or_default();
    let mut send_to = |kind: MailKind, guests: Vec<String>| {
        let recipients = mail::google_recipients(send, account, &guests);
        mail::record(world, Provider::Google, account, kind, recipients, event_id, subject, now);
    };
    if new.status.as_deref() == Some("cancelled") {
        let mut all = before.clone();
        all.extend(after.into_iter().filter(|e| !in_list(&before, e)));
        send_to(MailKind::Cancellation, all);
        return;
    }
    let added = after.iter().filter(|e| !in_list(&before, e)).cloned().collect();
    let kept = after.iter().filter(|e| in_list(&before, e)).cloned().collect();
    let removed = before.iter().filter(|e| !in_list(&after, e)).cloned().collect();
    send_to(MailKind::Invitation, added);
    send_to(MailKind::Update, kept);
    send_to(MailKind::Cancellation, removed);
}

/// What an attendee may change on its copy of an event organised by someone else.
const PERSONAL: &[&str] = &["reminders", "colorId", "transparency"];

/// Read-only or server-set fields: whatever a client sends for them is ignored anyway.
const SERVER_SET: &[&str] = &[
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "iCalUID",
    "sequence",
    "recurringEventId",
    "originalStartTime",
    "eventType",
    "attendeesOmitted",
    "hangoutLink",
    "locked",
];

const GUEST_PERMISSIONS: &[&str] = &["guestsCanInviteOthers", "guestsCanModify", "guestsCanSeeOtherGuests"];

fn forbidden() -> ApiError {
    ApiError::new(
        403,
        "calendar",
        "forbiddenForNonOrganizer",
        "Shared properties can only be changed by the organizer of the event.",
    )
}

/// An attendee list compared by what the organizer owns: everything but `me`'s reply
/// (and the read-only `self`/`organizer`/`id` flags and display names Google fills in).
fn shared_attendees(list: Option<&Vec<Attendee>>, me: &str) -> Vec<String> {
    let mut out: Vec<String> = list
        .into_iter()
        .flatten()
        .map(|a| {
            let email = a.email.as_deref().unwrap_or_default().to_ascii_lowercase();
            let mine = email.eq_ignore_ascii_case(me);
            let reply = if mine { None } else { a.response_status.as_deref() };
            let comment = if mine { None } else { a.comment.as_deref() };
            format!(
                "{email}|{}|{}|{reply:?}|{comment:?}|{}",
                a.optional.unwrap_or(false),
                a.resource.unwrap_or(false),
                a.additional_guests.unwrap_or(0)
            )
        })
        .collect();
    out.sort();
    out
}

/// Checks an attendee's write (`new`, times already normalised) of its copy of an event
/// organised by someone else against the stored `current`: only its own
/// `responseStatus`, `reminders`, `colorId`, `transparency` and private extended
/// properties may differ (everything when the organizer lets guests modify, except the
/// guest permissions themselves); anything else is 403 `forbiddenForNonOrganizer`, as a
/// PUT that omits a shared field counts as changing it. On success `new` keeps the
/// organizer's attendee list with `me`'s reply from the request.
pub(super) fn check_attendee_write(current: &Event, new: &mut Event, me: &str) -> ApiResult<()> {
    let (cur, req) = (to_value(current), to_value(new));
    let (Some(cur), Some(req)) = (cur.as_object(), req.as_object()) else {
        return Err(forbidden());
    };
    let guests_modify = current.guests_can_modify == Some(true);
    let differs = |k: &str| cur.get(k) != req.get(k);
    let keys: Vec<&String> = cur.keys().chain(req.keys()).collect();
    for k in keys {
        let k = k.as_str();
        let owned = if guests_modify {
            GUEST_PERMISSIONS.contains(&k)
        } else {
            !PERSONAL.contains(&k) && !SERVER_SET.contains(&k) && !matches!(k, "attendees" | "extendedProperties")
        };
        if owned && differs(k) {
            return Err(forbidden());
        }
    }
    if guests_modify {
        let organizer = current.organizer.as_ref().and_then(|o| o.email.clone()).unwrap_or_default();
        mark_attendees(new, me, &organizer);
    } else {
        let shared_props = |v: Option<&Value>| v.and_then(|p| p.get("shared")).cloned();
        if shared_props(cur.get("extendedProperties")) != shared_props(req.get("extendedProperties")) {
            return Err(forbidden());
        }
        if shared_attendees(current.attendees.as_ref(), me) != shared_attendees(new.attendees.as_ref(), me) {
            return Err(forbidden());
        }
        let reply = new
            .attendees
            .iter()
            .flatten()
            .find(|a| a.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(me)))
            .and_then(|a| a.response_status.clone());
        let mut attendees = current.attendees.clone();
        for a in attendees.iter_mut().flatten() {
            if a.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(me)) && reply.is_some() {
                a.response_status = reply.clone();
            }
        }
        new.attendees = attendees;
    }
    Ok(())
}

/// Marks `me` (`self: true`) and the organizer (`organizer: true`) in an attendee list, as
/// Google renders an attendee's copy; the flags are read-only, so clients' values go.
pub(super) fn mark_attendees(ev: &mut Event, me: &str, organizer: &str) {
    for a in ev.attendees.iter_mut().flatten() {
        let email = a.email.as_deref().unwrap_or_default();
        a.is_self = email.eq_ignore_ascii_case(me).then_some(true);
        a.organizer = email.eq_ignore_ascii_case(organizer).then_some(true);
    }
}
