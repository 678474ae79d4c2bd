//! The event resource as Graph returns it, shaped by the request: `Prefer` zone and body
//! type, `$expand` of one extended property, the mailbox's time zone setting, and the
//! reduced form of occurrences in calendarView delta.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::graph::{DateTimeTimeZone, GEvent, graph_time, parse_dtz, utc_stamp};
use super::{body, extprops};

/// How one request wants events rendered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Look {
    /// The mailbox owner (organizer of the events they created).
    pub owner: String,
    /// `Prefer: outlook.timezone`.
    pub zone: Option<(String, Tz)>,
    /// `Prefer: outlook.body-content-type="text"`.
    pub text_body: bool,
    /// `$expand=singleValueExtendedProperties($filter=id eq '…')`: the canonical id.
    pub expand: Option<String>,
    /// The mailbox's custom time zone (control API), reported as the original zones.
    pub custom_zone: Option<String>,
}

/// Attendees as Graph returns them: every one has a `type` and a `status` (`none` until they
/// answer), and an `emailAddress` with both `name` and `address`, whatever the request omitted.
fn attendees(given: Option<&Value>) -> Value {
    let list = given.and_then(Value::as_array).cloned().unwrap_or_default();
    Value::Array(
        list.into_iter()
            .map(|a| {
                let address = a["emailAddress"]["address"].as_str().unwrap_or_default().to_owned();
                let name = a["emailAddress"]["name"].as_str().map(str::to_owned).unwrap_or_else(|| address.clone());
                json!({
                    "type": a.get("type").cloned().unwrap_or(json!("required")),
                    "status": a.get("status").cloned().unwrap_or(json!({"response": "none", "time": "0001-01-01T00:00:00Z"})),
                    "emailAddress": {"name": name, "address": address},
                })
            })
            .collect(),
    )
}

/// The attendee e-mails (lowercase) of stored properties.
pub(crate) fn attendee_emails(props: &serde_json::Map<String, Value>) -> Vec<String> {
    props
        .get("attendees")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|a| a["emailAddress"]["address"].as_str()).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default()
}

/// A `dateTimeTimeZone` of the event in the requested zone (all-day events keep their own).
fn time(ev: &GEvent, key: &str, zone: Option<&(String, Tz)>) -> Value {
    let Some(d) = ev.props.get(key).and_then(|v| serde_json::from_value::<DateTimeTimeZone>(v.clone()).ok()) else {
        return Value::Null;
    };
    let Ok((t, own_zone, own_name, _)) = parse_dtz(&d) else {
        return Value::Null;
    };
    match zone.filter(|_| !ev.all_day) {
        Some((name, z)) => json!({"dateTime": graph_time(t, *z), "timeZone": name}),
        None if ev.all_day => json!({"dateTime": graph_time(t, own_zone), "timeZone": own_name}),
        None => json!({"dateTime": graph_time(t, Tz::UTC), "timeZone": "UTC"}),
    }
}

/// The event resource as Graph returns it.
pub(crate) fn render(ev: &GEvent, item_modified_ms: i64, look: &Look) -> Value {
    let p = &ev.props;
    let tz_name = |key: &str| match &look.custom_zone {
        Some(z) => z.clone(),
        None => p.get(key).and_then(|v| v.get("timeZone")).and_then(Value::as_str).unwrap_or("UTC").to_owned(),
    };
    let html = p.get("body").and_then(|b| b.get("content")).and_then(Value::as_str).unwrap_or_default();
    let body = if look.text_body {
        json!({"contentType": "text", "content": body::text(html)})
    } else {
        json!({"contentType": "html", "content": html})
    };
    let owner = &look.owner;
    let invite = ev.invite.as_ref();
    let mut out = json!({
        "@odata.etag": format!("W/\"{}\"", ev.change_key),
        "id": ev.id,
        "createdDateTime": utc_stamp(ev.created_ms),
        "lastModifiedDateTime": utc_stamp(item_modified_ms),
        "changeKey": ev.change_key,
        "categories": p.get("categories").cloned().unwrap_or(json!([])),
        "originalStartTimeZone": tz_name("start"),
        "originalEndTimeZone": tz_name("end"),
        "iCalUId": ev.ical_uid,
        "reminderMinutesBeforeStart": p.get("reminderMinutesBeforeStart").cloned().unwrap_or(json!(15)),
        "isReminderOn": p.get("isReminderOn").cloned().unwrap_or(json!(true)),
        "hasAttachments": false,
        "subject": p.get("subject").cloned().unwrap_or(json!("")),
        "bodyPreview": body::preview(html),
        "importance": p.get("importance").cloned().unwrap_or(json!("normal")),
        "sensitivity": p.get("sensitivity").cloned().unwrap_or(json!("normal")),
        "isAllDay": ev.all_day,
        "isCancelled": invite.is_some_and(|i| i.cancelled),
        "isOrganizer": invite.is_none(),
        "responseRequested": p.get("responseRequested").cloned().unwrap_or(json!(true)),
        "seriesMasterId": ev.link.as_ref().map(|l| l.master.clone()),
        "showAs": p.get("showAs").cloned().unwrap_or(json!("busy")),
        "type": match &ev.link {
            Some(l) if l.exception => "exception",
            Some(_) => "occurrence",
            None if p.get("recurrence").is_some_and(|r| !r.is_null()) => "seriesMaster",
            None => "singleInstance",
        },
        "webLink": format!("https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item", ev.id),
        "onlineMeetingUrl": null,
        "isOnlineMeeting": p.get("isOnlineMeeting").cloned().unwrap_or(json!(false)),
        "onlineMeetingProvider": p.get("onlineMeetingProvider").cloned().unwrap_or(json!("unknown")),
        "allowNewTimeProposals": p.get("allowNewTimeProposals").cloned().unwrap_or(json!(true)),
        "isDraft": false,
        "hideAttendees": p.get("hideAttendees").cloned().unwrap_or(json!(false)),
        "responseStatus": invite.map_or(json!({"response": "organizer", "time": "0001-01-01T00:00:00Z"}), |i| i.response.clone()),
        "body": body,
        "start": time(ev, "start", look.zone.as_ref()),
        "end": time(ev, "end", look.zone.as_ref()),
        "location": p.get("location").cloned().unwrap_or(json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}})),
        "locations": p.get("locations").cloned().unwrap_or(json!([])),
        "recurrence": p.get("recurrence").cloned().unwrap_or(Value::Null),
        "attendees": attendees(p.get("attendees")),
        "organizer": invite.map_or(json!({"emailAddress": {"name": owner, "address": owner}}), |i| json!({"emailAddress": i.organizer.clone()})),
        "onlineMeeting": null,
    });
    if let Some(t) = p.get("transactionId") {
        out["transactionId"] = t.clone();
    }
    if let Some(l) = &ev.link {
        out["originalStart"] = json!(
            DateTime::<Utc>::from_timestamp_millis(l.original_ms)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
    if let Some(x) = look.expand.as_deref().and_then(|id| extprops::expanded(p, id)) {
        out["singleValueExtendedProperties"] = x;
    }
    out
}

/// An occurrence as calendarView delta sends it: identity, etag, type and times only; the
/// client reads the rest from the series master.
pub(crate) fn skeleton(ev: &GEvent, look: &Look) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": format!("W/\"{}\"", ev.change_key),
        "id": ev.id,
        "type": "occurrence",
        "start": time(ev, "start", look.zone.as_ref()),
        "end": time(ev, "end", look.zone.as_ref()),
        "seriesMasterId": ev.link.as_ref().map(|l| l.master.clone()),
    })
}
