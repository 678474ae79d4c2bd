//! Google recurring events over HTTP: expansion across DST, instance ids, exceptions,
//! cancelled instances, the showDeleted × singleEvents matrix and series edits.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";

fn weekly(count: u32) -> Value {
    json!({
        "summary": "Weekly sync",
        "start": {"dateTime": "2024-03-18T10:00:00+01:00", "timeZone": "Europe/Zurich"},
        "end": {"dateTime": "2024-03-18T10:30:00+01:00", "timeZone": "Europe/Zurich"},
        "recurrence": [format!("RRULE:FREQ=WEEKLY;COUNT={count}")],
    })
}

async fn items(h: &Harness, t: &str, query: &str) -> Vec<Value> {
    let body = json_of(h.get(t, &format!("{EVENTS}?{query}")).await, StatusCode::OK).await;
    assert!(body.get("nextPageToken").is_none(), "single page: {body}");
    body["items"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn single_events_expand_across_dst_with_instance_ids() {
    let h = start().await;
    let t = h.google_account("rec@example.com").await;
    let master = json_of(h.send(Method::POST, &t, EVENTS, Some(weekly(4))).await, StatusCode::OK).await;
    let mid = master["id"].as_str().unwrap().to_owned();
    assert_eq!(master["recurrence"][0], "RRULE:FREQ=WEEKLY;COUNT=4");

    let got =
        items(&h, &t, "singleEvents=true&orderBy=startTime&timeMin=2024-03-01T00:00:00Z&timeMax=2024-05-01T00:00:00Z")
            .await;
    // Zurich switches to CEST on 31 March: 10:00 local is 09:00Z, then 08:00Z.
    assert_eq!(
        ids(&got),
        [
            format!("{mid}_20240318T090000Z"),
            format!("{mid}_20240325T090000Z"),
            format!("{mid}_20240401T080000Z"),
            format!("{mid}_20240408T080000Z"),
        ]
    );
    assert_eq!(got[2]["start"]["dateTime"], "2024-04-01T10:00:00+02:00");
    assert_eq!(got[2]["end"]["dateTime"], "2024-04-01T10:30:00+02:00");
    assert_eq!(got[2]["recurringEventId"], mid.as_str());
    assert_eq!(got[2]["originalStartTime"]["dateTime"], "2024-04-01T10:00:00+02:00");
    assert!(got[2].get("recurrence").is_none());

    // A window inside the series only yields the overlapping instances.
    let window = items(&h, &t, "singleEvents=true&timeMin=2024-03-30T00:00:00Z&timeMax=2024-04-05T00:00:00Z").await;
    assert_eq!(ids(&window), [format!("{mid}_20240401T080000Z")]);
    // Without singleEvents the master itself is listed for a window touching any instance.
    let masters = items(&h, &t, "timeMin=2024-04-07T00:00:00Z").await;
    assert_eq!(ids(&masters), std::slice::from_ref(&mid));

    // events.instances and a direct GET of an instance id agree.
    let inst = json_of(h.get(&t, &format!("{EVENTS}/{mid}/instances?maxResults=3")).await, StatusCode::OK).await;
    assert_eq!(inst["items"].as_array().unwrap().len(), 3);
    assert!(inst["nextPageToken"].is_string());
    let one = json_of(h.get(&t, &format!("{EVENTS}/{mid}_20240325T090000Z")).await, StatusCode::OK).await;
    assert_eq!(one["recurringEventId"], mid.as_str());
    // Not an occurrence of the series.
    let missing = h.get(&t, &format!("{EVENTS}/{mid}_20240326T090000Z")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Recurring timed events need a timeZone; bad rules are 400.
    let mut no_tz = weekly(2);
    no_tz["start"] = json!({"dateTime": "2024-03-18T10:00:00+01:00"});
    let r = h.send(Method::POST, &t, EVENTS, Some(no_tz)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut bad = weekly(2);
    bad["recurrence"] = json!(["RRULE:FREQ=FORTNIGHTLY"]);
    let r = h.send(Method::POST, &t, EVENTS, Some(bad)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn moved_and_cancelled_instances_follow_the_show_deleted_matrix() {
    let h = start().await;
    let t = h.google_account("exc@example.com").await;
    let master = json_of(h.send(Method::POST, &t, EVENTS, Some(weekly(4))).await, StatusCode::OK).await;
    let mid = master["id"].as_str().unwrap().to_owned();
    let (_, sync) = {
        let body = json_of(h.get(&t, EVENTS).await, StatusCode::OK).await;
        (body.clone(), body["nextSyncToken"].as_str().unwrap().to_owned())
    };

    // Move the second instance by two hours.
    let moved_id = format!("{mid}_20240325T090000Z");
    let moved = json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{EVENTS}/{moved_id}"),
            Some(json!({
                "start": {"dateTime": "2024-03-25T12:00:00+01:00", "timeZone": "Europe/Zurich"},
                "end": {"dateTime": "2024-03-25T12:30:00+01:00", "timeZone": "Europe/Zurich"},
            })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["id"], moved_id.as_str());
    assert_eq!(moved["recurringEventId"], mid.as_str());
    assert_eq!(moved["originalStartTime"]["dateTime"], "2024-03-25T10:00:00+01:00");
    // An instance cannot carry its own recurrence.
    let r = h
        .send(Method::PATCH, &t, &format!("{EVENTS}/{moved_id}"), Some(json!({"recurrence": ["RRULE:FREQ=DAILY"]})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Cancel the third instance; a second delete is 410.
    let cancelled_id = format!("{mid}_20240401T080000Z");
    let path = format!("{EVENTS}/{cancelled_id}");
    assert_eq!(h.send(Method::DELETE, &t, &path, None).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.send(Method::DELETE, &t, &path, None).await.status(), StatusCode::GONE);

    let expanded = items(&h, &t, "singleEvents=true&orderBy=startTime").await;
    assert_eq!(
        ids(&expanded),
        [format!("{mid}_20240318T090000Z"), moved_id.clone(), format!("{mid}_20240408T080000Z"),]
    );
    assert_eq!(expanded[1]["start"]["dateTime"], "2024-03-25T12:00:00+01:00");

    // singleEvents=true&showDeleted=true: the cancelled instance, not deleted masters.
    let with_deleted = items(&h, &t, "singleEvents=true&showDeleted=true").await;
    let c = with_deleted.iter().find(|i| i["id"] == cancelled_id.as_str()).expect("cancelled instance listed");
    assert_eq!(c["status"], "cancelled");

    // Both false: master, moved exception and the cancelled exception stub.
    let plain = items(&h, &t, "").await;
    let mut got = ids(&plain);
    got.sort();
    let mut want = vec![mid.clone(), moved_id.clone(), cancelled_id.clone()];
    want.sort();
    assert_eq!(got, want);
    let stub = plain.iter().find(|i| i["id"] == cancelled_id.as_str()).unwrap();
    assert_eq!(stub["status"], "cancelled");
    assert_eq!(stub["recurringEventId"], mid.as_str());
    assert!(stub["originalStartTime"]["dateTime"].is_string());

    // Incremental sync reports both exceptions.
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={sync}")).await, StatusCode::OK).await;
    let mut inc_ids = ids(inc["items"].as_array().unwrap());
    inc_ids.sort();
    let mut want = vec![moved_id, cancelled_id];
    want.sort();
    assert_eq!(inc_ids, want);
}

#[tokio::test]
async fn truncating_a_series_drops_exceptions_and_reports_removed_instances() {
    let h = start().await;
    let t = h.google_account("split@example.com").await;
    let master = json_of(h.send(Method::POST, &t, EVENTS, Some(weekly(4))).await, StatusCode::OK).await;
    let mid = master["id"].as_str().unwrap().to_owned();
    let late = format!("{mid}_20240408T080000Z");
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{late}"), Some(json!({"summary": "moved"}))).await,
        StatusCode::OK,
    )
    .await;
    let body = json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true")).await, StatusCode::OK).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 4);
    let sync = body["nextSyncToken"].as_str().unwrap().to_owned();

    // "This and following": the old master ends before 1 April; a new series is just
    // another event.
    let mut head = weekly(4);
    head["recurrence"] = json!(["RRULE:FREQ=WEEKLY;UNTIL=20240331T000000Z"]);
    json_of(h.send(Method::PUT, &t, &format!("{EVENTS}/{mid}"), Some(head)).await, StatusCode::OK).await;
    let exp = items(&h, &t, "singleEvents=true").await;
    assert_eq!(exp.len(), 2, "{exp:?}");
    // The exception past UNTIL is gone: a plain deletion, no longer tied to the series.
    let gone = json_of(h.get(&t, &format!("{EVENTS}/{late}")).await, StatusCode::OK).await;
    assert_eq!(gone["status"], "cancelled");
    assert!(gone.get("recurringEventId").is_none());

    let inc = json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={sync}")).await, StatusCode::OK).await;
    let inc = inc["items"].as_array().unwrap();
    let cancelled: Vec<&str> =
        inc.iter().filter(|i| i["status"] == "cancelled").map(|i| i["id"].as_str().unwrap()).collect();
    assert!(cancelled.contains(&late.as_str()), "{inc:?}");
    assert!(cancelled.contains(&format!("{mid}_20240401T080000Z").as_str()));
    // The two surviving instances come back in full.
    assert_eq!(inc.iter().filter(|i| i["status"] == "confirmed").count(), 2);

    // Deleting the master: incremental singleEvents sync reports its instances cancelled.
    let sync2 = json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={sync}")).await, StatusCode::OK).await
        ["nextSyncToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.send(Method::DELETE, &t, &format!("{EVENTS}/{mid}"), None).await.status(), StatusCode::NO_CONTENT);
    let inc = json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={sync2}")).await, StatusCode::OK).await;
    let inc = inc["items"].as_array().unwrap();
    assert_eq!(inc.len(), 2, "{inc:?}");
    assert!(inc.iter().all(|i| i["status"] == "cancelled"));
    assert!(inc.iter().all(|i| i["recurringEventId"] == mid.as_str()));
}

#[tokio::test]
async fn all_day_series_uses_date_instance_ids() {
    let h = start().await;
    let t = h.google_account("allday@example.com").await;
    let body = json!({
        "summary": "Holiday",
        "start": {"date": "2024-01-05"},
        "end": {"date": "2024-01-06"},
        "recurrence": ["RRULE:FREQ=YEARLY;COUNT=3", "EXDATE;VALUE=DATE:20250105"],
    });
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(body)).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap();
    let got = items(&h, &t, "singleEvents=true&orderBy=startTime").await;
    assert_eq!(ids(&got), [format!("{mid}_20240105"), format!("{mid}_20260105")]);
    assert_eq!(got[1]["start"]["date"], "2026-01-05");
    assert_eq!(got[1]["end"]["date"], "2026-01-06");
    assert_eq!(got[1]["originalStartTime"]["date"], "2026-01-05");
}

#[tokio::test]
async fn editing_an_instance_keeps_import_by_ical_uid_on_the_master() {
    let h = start().await;
    let t = h.google_account("ical@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(weekly(3))).await, StatusCode::OK).await;
    let (mid, uid) = (m["id"].as_str().unwrap().to_owned(), m["iCalUID"].as_str().unwrap().to_owned());
    let inst = format!("{EVENTS}/{mid}_20240325T090000Z");
    let ex = json_of(h.send(Method::PATCH, &t, &inst, Some(json!({"summary": "one"}))).await, StatusCode::OK).await;
    assert_eq!(ex["iCalUID"], uid.as_str());
    // Importing the same UID updates the master, not the exception.
    let mut body = weekly(3);
    body["iCalUID"] = json!(uid);
    body["summary"] = json!("renamed series");
    let imported =
        json_of(h.send(Method::POST, &t, &format!("{EVENTS}/import"), Some(body)).await, StatusCode::OK).await;
    assert_eq!(imported["id"], mid.as_str());
    assert_eq!(imported["summary"], "renamed series");
}

async fn send_if_match(h: &Harness, method: Method, t: &str, path: &str, etag: &str, body: Value) -> reqwest::Response {
    h.http.request(method, h.url(path)).bearer_auth(t).header("If-Match", etag).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn instances_have_their_own_etags_and_if_match_checks_them() {
    let h = start().await;
    let t = h.google_account("etag@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(weekly(4))).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let master_etag = m["etag"].as_str().unwrap().to_owned();
    let first = format!("{EVENTS}/{mid}_20240318T090000Z");
    let second = format!("{EVENTS}/{mid}_20240325T090000Z");

    let a = json_of(h.get(&t, &first).await, StatusCode::OK).await;
    let b = json_of(h.get(&t, &second).await, StatusCode::OK).await;
    let (ea, eb) = (a["etag"].as_str().unwrap().to_owned(), b["etag"].as_str().unwrap().to_owned());
    assert_ne!(ea, master_etag, "an instance has its own etag");
    assert_ne!(ea, eb, "instances differ from each other");
    // Stable between reads, and the same in lists and events.instances.
    assert_eq!(json_of(h.get(&t, &first).await, StatusCode::OK).await["etag"], ea.as_str());
    let listed = items(&h, &t, "singleEvents=true").await;
    assert_eq!(listed.iter().find(|i| i["id"] == a["id"]).unwrap()["etag"], ea.as_str());
    let inst = json_of(h.get(&t, &format!("{EVENTS}/{mid}/instances")).await, StatusCode::OK).await;
    assert_eq!(inst["items"][1]["etag"], eb.as_str());
    // If-None-Match with the instance etag is 304.
    let r = h.http.get(h.url(&first)).bearer_auth(&t).header("If-None-Match", &ea).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // The master's etag does not satisfy If-Match on an instance.
    let r = send_if_match(&h, Method::PATCH, &t, &first, &master_etag, json!({"summary": "x"})).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = h.http.delete(h.url(&first)).bearer_auth(&t).header("If-Match", &master_etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // Nor does another instance's.
    let r = send_if_match(&h, Method::PATCH, &t, &first, &eb, json!({"summary": "x"})).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

    // A master edit changes every instance's etag; the old instance etag is then stale.
    let m2 = json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{mid}"), Some(json!({"description": "agenda"}))).await,
        StatusCode::OK,
    )
    .await;
    let b2 = json_of(h.get(&t, &second).await, StatusCode::OK).await;
    assert_ne!(b2["etag"], eb.as_str());
    assert_ne!(b2["etag"], m2["etag"]);
    let r = send_if_match(&h, Method::PATCH, &t, &second, &eb, json!({"summary": "x"})).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

    // The instance's current etag works; the exception then carries a fresh etag of its own.
    let ex = json_of(
        send_if_match(&h, Method::PATCH, &t, &second, b2["etag"].as_str().unwrap(), json!({"summary": "one-off"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(ex["etag"], b2["etag"]);
    assert_eq!(json_of(h.get(&t, &second).await, StatusCode::OK).await["etag"], ex["etag"]);
}

#[tokio::test]
async fn master_edits_carry_into_exceptions_that_did_not_override_the_field() {
    let h = start().await;
    let t = h.google_account("carry@example.com").await;
    let mut body = weekly(4);
    body["location"] = json!("Room 1");
    body["description"] = json!("old agenda");
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(body)).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let ex_id = format!("{mid}_20240325T090000Z");
    let ex = json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{ex_id}"), Some(json!({"summary": "Special sync"}))).await,
        StatusCode::OK,
    )
    .await;
    let tokens = |single: bool| {
        let h = &h;
        let t = &t;
        async move {
            let q = if single { "?singleEvents=true" } else { "" };
            json_of(h.get(t, &format!("{EVENTS}{q}")).await, StatusCode::OK).await["nextSyncToken"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (plain_sync, single_sync) = (tokens(false).await, tokens(true).await);

    // The master's summary and location change; its description does not.
    json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{EVENTS}/{mid}"),
            Some(json!({"summary": "Renamed sync", "location": "Room 2"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let got = json_of(h.get(&t, &format!("{EVENTS}/{ex_id}")).await, StatusCode::OK).await;
    assert_eq!(got["summary"], "Special sync", "overridden field kept");
    assert_eq!(got["location"], "Room 2", "untouched field follows the master");
    assert_eq!(got["description"], "old agenda");
    assert_ne!(got["etag"], ex["etag"], "the exception changed");
    assert_eq!(got["recurringEventId"], mid.as_str());
    // A plain instance follows the master entirely.
    let plain = json_of(h.get(&t, &format!("{EVENTS}/{mid}_20240401T080000Z")).await, StatusCode::OK).await;
    assert_eq!(plain["summary"], "Renamed sync");

    // Removing a field on the master removes it from exceptions that had the master's value.
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{mid}"), Some(json!({"description": null}))).await,
        StatusCode::OK,
    )
    .await;
    let got = json_of(h.get(&t, &format!("{EVENTS}/{ex_id}")).await, StatusCode::OK).await;
    assert!(got.get("description").is_none(), "{got}");

    // Incremental sync without singleEvents: the master and the exception entry.
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={plain_sync}")).await, StatusCode::OK).await;
    let inc = inc["items"].as_array().unwrap();
    let mut got_ids = ids(inc);
    got_ids.sort();
    let mut want = vec![mid.clone(), ex_id.clone()];
    want.sort();
    assert_eq!(got_ids, want);
    let exc = inc.iter().find(|i| i["id"] == ex_id.as_str()).unwrap();
    assert_eq!((exc["summary"].as_str(), exc["location"].as_str()), (Some("Special sync"), Some("Room 2")));

    // With singleEvents: every instance, the exception among them, once each.
    let inc =
        json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={single_sync}")).await, StatusCode::OK).await;
    let inc = inc["items"].as_array().unwrap();
    let mut got_ids = ids(inc);
    got_ids.sort();
    got_ids.dedup();
    assert_eq!((got_ids.len(), inc.len()), (4, 4), "{inc:?}");
    let exc = inc.iter().find(|i| i["id"] == ex_id.as_str()).expect("exception resent");
    assert_eq!((exc["summary"].as_str(), exc["location"].as_str()), (Some("Special sync"), Some("Room 2")));
    assert!(inc.iter().filter(|i| i["id"] != ex_id.as_str()).all(|i| i["summary"] == "Renamed sync"));
}

async fn split(h: &Harness, body: Value) -> reqwest::Response {
    h.http.post(h.url("/_sandbox/google/split-series")).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn split_series_like_the_web_ui_this_and_following() {
    let h = start().await;
    let t = h.google_account("ui-split@example.com").await;
    let mut body = weekly(6);
    body["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=6", "EXDATE;TZID=Europe/Zurich:20240415T100000"]);
    body["location"] = json!("Room 1");
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(body)).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let early = format!("{mid}_20240325T090000Z");
    let late = format!("{mid}_20240408T080000Z");
    for id in [&early, &late] {
        json_of(
            h.send(Method::PATCH, &t, &format!("{EVENTS}/{id}"), Some(json!({"summary": "edited"}))).await,
            StatusCode::OK,
        )
        .await;
    }
    let plain_sync =
        json_of(h.get(&t, EVENTS).await, StatusCode::OK).await["nextSyncToken"].as_str().unwrap().to_owned();
    let single_sync =
        json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true")).await, StatusCode::OK).await["nextSyncToken"]
            .as_str()
            .unwrap()
            .to_owned();

    // Input validation.
    let req = |event_id: &str, from: &str| json!({"email": "ui-split@example.com", "event_id": event_id, "from": from});
    assert_eq!(split(&h, req("nosuchevent", "2024-04-01T10:00:00+02:00")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(split(&h, req(&early, "2024-04-01T10:00:00+02:00")).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(split(&h, req(&mid, "2024-04-02T10:00:00+02:00")).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(split(&h, req(&mid, "2024-04-15T10:00:00+02:00")).await.status(), StatusCode::BAD_REQUEST, "EXDATE");
    assert_eq!(split(&h, req(&mid, "2024-03-18T10:00:00+01:00")).await.status(), StatusCode::BAD_REQUEST, "first");
    assert_eq!(split(&h, req(&mid, "yesterday")).await.status(), StatusCode::BAD_REQUEST);
    let r = split(&h, json!({"email": "ui-split@example.com", "calendar_id": "nope", "event_id": mid, "from": "2024-04-01T08:00:00Z"})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = json_of(split(&h, req(&mid, "2024-04-01T10:00:00+02:00")).await, StatusCode::OK).await;
    let new_id = format!("{mid}_R20240401T080000");
    assert_eq!(r["new"]["id"], new_id.as_str());
    assert_eq!(r["old"]["id"], mid.as_str());

    let old = json_of(h.get(&t, &format!("{EVENTS}/{mid}")).await, StatusCode::OK).await;
    assert_eq!(old["recurrence"], json!(["RRULE:FREQ=WEEKLY;UNTIL=20240401T075959Z"]));
    let new = json_of(h.get(&t, &format!("{EVENTS}/{new_id}")).await, StatusCode::OK).await;
    // Six rule instances, two stay with the old series: COUNT=4 (the EXDATE still applies).
    assert_eq!(new["recurrence"], json!(["RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Zurich:20240415T100000"]));
    assert_eq!(new["start"]["dateTime"], "2024-04-01T10:00:00+02:00");
    assert_eq!(new["end"]["dateTime"], "2024-04-01T10:30:00+02:00");
    assert_eq!((new["summary"].as_str(), new["location"].as_str()), (Some("Weekly sync"), Some("Room 1")));
    assert!(new.get("recurringEventId").is_none());
    assert_ne!(new["iCalUID"], old["iCalUID"]);

    let expanded = items(&h, &t, "singleEvents=true&orderBy=startTime").await;
    assert_eq!(
        ids(&expanded),
        [
            format!("{mid}_20240318T090000Z"),
            early.clone(),
            format!("{new_id}_20240401T080000Z"),
            format!("{new_id}_20240408T080000Z"),
            format!("{new_id}_20240422T080000Z"),
        ]
    );
    assert_eq!(expanded[1]["summary"], "edited", "the earlier exception stays with the old series");
    assert_eq!(expanded[3]["summary"], "Weekly sync", "the later exception is not carried over");
    let gone = json_of(h.get(&t, &format!("{EVENTS}/{late}")).await, StatusCode::OK).await;
    assert_eq!(gone["status"], "cancelled");
    assert!(gone.get("recurringEventId").is_none());

    // Incremental, masters: the truncated master, the new one, the dropped exception.
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={plain_sync}")).await, StatusCode::OK).await;
    let inc = inc["items"].as_array().unwrap();
    // (The sandbox also lists id-only cancelled stubs for the instances the old series lost,
    // as for any truncation.)
    let live: Vec<&str> =
        inc.iter().filter(|i| i["status"] != "cancelled").map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(live.len(), 2, "{inc:?}");
    assert!(live.contains(&mid.as_str()) && live.contains(&new_id.as_str()), "{inc:?}");
    assert_eq!(inc.iter().find(|i| i["id"] == late.as_str()).unwrap()["status"], "cancelled");

    // Incremental, instances: the old series' lost instances cancelled, the new ones confirmed.
    let inc =
        json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={single_sync}")).await, StatusCode::OK).await;
    let inc = inc["items"].as_array().unwrap();
    let mut cancelled: Vec<&str> =
        inc.iter().filter(|i| i["status"] == "cancelled").map(|i| i["id"].as_str().unwrap()).collect();
    cancelled.sort();
    let mut want = vec![format!("{mid}_20240401T080000Z"), late.clone(), format!("{mid}_20240422T080000Z")];
    want.sort();
    assert_eq!(cancelled, want);
    let confirmed: Vec<&str> =
        inc.iter().filter(|i| i["status"] == "confirmed").map(|i| i["id"].as_str().unwrap()).collect();
    for id in ["20240401T080000Z", "20240408T080000Z", "20240422T080000Z"] {
        assert!(confirmed.contains(&format!("{new_id}_{id}").as_str()), "{confirmed:?}");
    }
    assert!(inc.iter().all(|i| i["id"] != format!("{new_id}_20240415T080000Z").as_str()));

    // The old series can no longer be split at an instance it lost.
    assert_eq!(split(&h, req(&mid, "2024-04-08T10:00:00+02:00")).await.status(), StatusCode::BAD_REQUEST);
}
