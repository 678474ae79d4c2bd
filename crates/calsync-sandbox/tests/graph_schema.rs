//! Graph event resources, validated strictly against the v1.0 `event` resource (the property list
//! and types of https://learn.microsoft.com/graph/api/resources/event, as specs/provider-apis.md
//! D.2 summarises it): no undocumented property, right JSON types, documented enum values, and
//! `dateTimeTimeZone` values without an offset. Every shape the sandbox renders is covered:
//! single, all-day, series master, occurrence, exception, through create, get, calendarView,
//! instances and delta.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";

#[derive(Clone, Copy)]
enum T {
    Str,
    NullableStr,
    Bool,
    Int,
    Arr,
    Obj,
    NullableObj,
    Enum(&'static [&'static str]),
}

/// The documented properties of `event` (v1.0), plus the OData annotations Graph adds.
const EVENT: &[(&str, T)] = &[
    ("@odata.etag", T::Str),
    ("@odata.type", T::Str),
    ("allowNewTimeProposals", T::Bool),
    ("attendees", T::Arr),
    ("body", T::Obj),
    ("bodyPreview", T::Str),
    ("categories", T::Arr),
    ("changeKey", T::Str),
    ("createdDateTime", T::Str),
    ("end", T::Obj),
    ("hasAttachments", T::Bool),
    ("hideAttendees", T::Bool),
    ("iCalUId", T::Str),
    ("id", T::Str),
    ("importance", T::Enum(&["low", "normal", "high"])),
    ("isAllDay", T::Bool),
    ("isCancelled", T::Bool),
    ("isDraft", T::Bool),
    ("isOnlineMeeting", T::Bool),
    ("isOrganizer", T::Bool),
    ("isReminderOn", T::Bool),
    ("lastModifiedDateTime", T::Str),
    ("location", T::Obj),
    ("locations", T::Arr),
    ("onlineMeeting", T::NullableObj),
    ("onlineMeetingProvider", T::Enum(&["unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"])),
    ("onlineMeetingUrl", T::NullableStr),
    ("organizer", T::Obj),
    ("originalEndTimeZone", T::Str),
    ("originalStart", T::Str),
    ("originalStartTimeZone", T::Str),
    ("recurrence", T::NullableObj),
    ("reminderMinutesBeforeStart", T::Int),
    ("responseRequested", T::Bool),
    ("responseStatus", T::Obj),
    ("sensitivity", T::Enum(&["normal", "personal", "private", "confidential"])),
    ("seriesMasterId", T::NullableStr),
    ("showAs", T::Enum(&["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"])),
    ("singleValueExtendedProperties", T::Arr),
    ("start", T::Obj),
    ("subject", T::Str),
    ("transactionId", T::NullableStr),
    ("type", T::Enum(&["singleInstance", "occurrence", "exception", "seriesMaster"])),
    ("webLink", T::Str),
];

const REQUIRED: &[&str] = &[
    "@odata.etag",
    "id",
    "changeKey",
    "subject",
    "start",
    "end",
    "type",
    "isAllDay",
    "createdDateTime",
    "lastModifiedDateTime",
];

fn check_type(path: &str, v: &Value, t: T) {
    let ok = match t {
        T::Str => v.is_string(),
        T::NullableStr => v.is_string() || v.is_null(),
        T::Bool => v.is_boolean(),
        T::Int => v.is_i64(),
        T::Arr => v.is_array(),
        T::Obj => v.is_object(),
        T::NullableObj => v.is_object() || v.is_null(),
        T::Enum(values) => v.as_str().is_some_and(|s| values.contains(&s)),
    };
    assert!(ok, "{path}: {v} is not a valid value");
}

fn only_keys(path: &str, v: &Value, allowed: &[&str]) {
    for k in v.as_object().unwrap_or_else(|| panic!("{path} is not an object: {v}")).keys() {
        assert!(allowed.contains(&k.as_str()), "{path}.{k} is not a documented property");
    }
}

/// `dateTimeTimeZone`: a local date-time without offset, and a zone name.
fn date_time_time_zone(path: &str, v: &Value) {
    only_keys(path, v, &["dateTime", "timeZone"]);
    let dt = v["dateTime"].as_str().unwrap_or_else(|| panic!("{path}.dateTime missing"));
    assert!(
        chrono::NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f").is_ok(),
        "{path}.dateTime {dt:?} has an offset or is malformed"
    );
    assert!(v["timeZone"].as_str().is_some_and(|z| !z.is_empty()), "{path}.timeZone");
}

fn utc_instant(path: &str, v: &Value) {
    let s = v.as_str().unwrap();
    assert!(s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(), "{path} {s:?} is not a UTC instant");
}

fn email_address(path: &str, v: &Value) {
    only_keys(path, v, &["name", "address"]);
    assert!(v["address"].is_string(), "{path}.address");
}

fn validate_event(e: &Value) {
    let path = format!("event {}", e["id"]);
    for (k, v) in e.as_object().unwrap() {
        let t =
            EVENT.iter().find(|(name, _)| name == k).unwrap_or_else(|| panic!("{path}: undocumented property {k:?}")).1;
        check_type(&format!("{path}.{k}"), v, t);
    }
    for k in REQUIRED {
        assert!(e.get(*k).is_some(), "{path}: missing {k}");
    }
    let etag = e["@odata.etag"].as_str().unwrap();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{path}: etag {etag}");
    date_time_time_zone(&format!("{path}.start"), &e["start"]);
    date_time_time_zone(&format!("{path}.end"), &e["end"]);
    utc_instant(&format!("{path}.createdDateTime"), &e["createdDateTime"]);
    utc_instant(&format!("{path}.lastModifiedDateTime"), &e["lastModifiedDateTime"]);
    if let Some(b) = e.get("body") {
        only_keys(&format!("{path}.body"), b, &["contentType", "content"]);
        check_type(&format!("{path}.body.contentType"), &b["contentType"], T::Enum(&["text", "html"]));
    }
    if let Some(l) = e.get("location") {
        only_keys(
            &format!("{path}.location"),
            l,
            &[
                "displayName",
                "locationType",
                "uniqueId",
                "uniqueIdType",
                "address",
                "coordinates",
                "locationEmailAddress",
                "locationUri",
            ],
        );
    }
    for (i, a) in e.get("attendees").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let p = format!("{path}.attendees[{i}]");
        only_keys(&p, a, &["type", "status", "emailAddress", "proposedNewTime"]);
        check_type(&format!("{p}.type"), &a["type"], T::Enum(&["required", "optional", "resource"]));
        email_address(&format!("{p}.emailAddress"), &a["emailAddress"]);
        only_keys(&format!("{p}.status"), &a["status"], &["response", "time"]);
    }
    if let Some(o) = e.get("organizer") {
        only_keys(&format!("{path}.organizer"), o, &["emailAddress"]);
        email_address(&format!("{path}.organizer.emailAddress"), &o["emailAddress"]);
    }
    if let Some(r) = e.get("responseStatus") {
        only_keys(&format!("{path}.responseStatus"), r, &["response", "time"]);
        check_type(
            &format!("{path}.responseStatus.response"),
            &r["response"],
            T::Enum(&["none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"]),
        );
    }
    if let Some(r) = e.get("recurrence").filter(|r| !r.is_null()) {
        let p = format!("{path}.recurrence");
        only_keys(&p, r, &["pattern", "range"]);
        only_keys(
            &format!("{p}.pattern"),
            &r["pattern"],
            &["type", "interval", "month", "dayOfMonth", "daysOfWeek", "firstDayOfWeek", "index"],
        );
        check_type(
            &format!("{p}.pattern.type"),
            &r["pattern"]["type"],
            T::Enum(&["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"]),
        );
        only_keys(
            &format!("{p}.range"),
            &r["range"],
            &["type", "startDate", "endDate", "recurrenceTimeZone", "numberOfOccurrences"],
        );
        check_type(&format!("{p}.range.type"), &r["range"]["type"], T::Enum(&["endDate", "noEnd", "numbered"]));
        assert_eq!(e["type"], "seriesMaster", "{path}: only masters carry a recurrence");
    }
    match e["type"].as_str().unwrap() {
        "occurrence" | "exception" => {
            assert!(e["seriesMasterId"].is_string(), "{path}: seriesMasterId");
            utc_instant(&format!("{path}.originalStart"), &e["originalStart"]);
        }
        _ => assert!(e.get("originalStart").is_none(), "{path}: originalStart only on occurrences and exceptions"),
    }
    if e["isAllDay"] == true {
        for side in ["start", "end"] {
            let dt = e[side]["dateTime"].as_str().unwrap();
            assert!(dt.contains("T00:00:00"), "{path}.{side}: all-day events run midnight to midnight, got {dt}");
        }
    }
}

#[tokio::test]
async fn every_rendered_event_matches_the_graph_event_resource() {
    let h = start().await;
    let t = h.ms_account("schema@example.com").await;
    let post = |body: Value| {
        let h = &h;
        let t = t.clone();
        async move {
            json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(body)).await, StatusCode::CREATED).await
        }
    };
    let single = post(json!({
        "subject": "Intake",
        "body": {"contentType": "text", "content": "Bring documents"},
        "start": {"dateTime": "2024-03-20T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2024-03-20T10:00:00", "timeZone": "W. Europe Standard Time"},
        "location": {"displayName": "Room 4"},
        "attendees": [{"type": "required", "emailAddress": {"address": "client@example.com", "name": "Client"}}],
        "transactionId": "6f1e0c5e-2f5e-4c69-9b51-2f4f1c1e6a11",
        "singleValueExtendedProperties": [{"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncId", "value": "a1"}],
    }))
    .await;
    let all_day = post(json!({
        "subject": "Offsite",
        "isAllDay": true,
        "start": {"dateTime": "2024-03-21T00:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-03-22T00:00:00", "timeZone": "UTC"},
    }))
    .await;
    let master = post(json!({
        "subject": "Weekly",
        "start": {"dateTime": "2024-03-18T10:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2024-03-18T10:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2024-03-18", "numberOfOccurrences": 4},
        },
    }))
    .await;
    let mut seen = vec![single.clone(), all_day.clone(), master.clone()];
    let window = "startDateTime=2024-03-01T00:00:00Z&endDateTime=2024-05-01T00:00:00Z";
    let instances = json_of(
        h.get(&t, &format!("{G}/me/events/{}/instances?{window}", master["id"].as_str().unwrap())).await,
        StatusCode::OK,
    )
    .await["value"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(instances.len(), 4);
    // Move one occurrence: it becomes an exception.
    let moved = json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{G}/me/events/{}", instances[1]["id"].as_str().unwrap()),
            Some(json!({"subject": "Weekly (moved)"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["type"], "exception");
    seen.push(moved);
    seen.extend(instances);
    seen.push(
        json_of(h.get(&t, &format!("{G}/me/events/{}", single["id"].as_str().unwrap())).await, StatusCode::OK).await,
    );
    // With a Prefer time zone, as calsync may ask.
    let view = h
        .http
        .get(h.url(&format!("{G}/me/calendarView?{window}&$top=50")))
        .bearer_auth(&t)
        .header("Prefer", "outlook.timezone=\"Pacific Standard Time\"")
        .send()
        .await
        .unwrap();
    let view = json_of(view, StatusCode::OK).await["value"].as_array().unwrap().clone();
    assert!(view.iter().any(|e| e["type"] == "exception") && view.iter().any(|e| e["type"] == "occurrence"));
    seen.extend(view);
    let delta = json_of(h.get(&t, &format!("{G}/me/calendarView/delta?{window}")).await, StatusCode::OK).await;
    let delta = delta["value"].as_array().unwrap();
    // Occurrences come reduced in delta (the client reads the master); exceptions whole.
    let skeletons: Vec<&Value> = delta.iter().filter(|e| e["type"] == "occurrence").collect();
    assert_eq!(skeletons.len(), 3);
    for e in skeletons {
        only_keys(
            "delta occurrence",
            e,
            &["@odata.type", "@odata.etag", "id", "type", "start", "end", "seriesMasterId"],
        );
        date_time_time_zone("delta occurrence.start", &e["start"]);
        date_time_time_zone("delta occurrence.end", &e["end"]);
        assert_eq!(e["seriesMasterId"], master["id"]);
    }
    seen.extend(delta.iter().filter(|e| e.get("@removed").is_none() && e["type"] != "occurrence").cloned());
    let list = json_of(h.get(&t, &format!("{G}/me/events?$top=50")).await, StatusCode::OK).await;
    seen.extend(list["value"].as_array().unwrap().iter().cloned());

    let kinds: std::collections::BTreeSet<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["exception", "occurrence", "seriesMaster", "singleInstance"]);
    for e in &seen {
        validate_event(e);
    }
    assert_eq!(single["transactionId"], "6f1e0c5e-2f5e-4c69-9b51-2f4f1c1e6a11");
    assert_eq!(single["attendees"][0]["status"], json!({"response": "none", "time": "0001-01-01T00:00:00Z"}));
    // Attendees that Graph would refuse are refused.
    let bad = |attendee: Value| {
        json!({
            "subject": "x",
            "start": {"dateTime": "2024-03-20T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2024-03-20T10:00:00", "timeZone": "UTC"},
            "attendees": [attendee],
        })
    };
    for attendee in [
        json!({"type": "boss", "emailAddress": {"address": "a@b.test"}}),
        json!({"type": "required", "emailAddress": {"name": "No address"}}),
    ] {
        let resp = h.send(Method::POST, &t, &format!("{G}/me/events"), Some(bad(attendee.clone()))).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{attendee}");
    }
    assert!(single.get("singleValueExtendedProperties").is_none(), "extended properties come only with $expand");
}
