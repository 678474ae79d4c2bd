//! Graph recurring events over HTTP: recurrence resources, occurrences and exceptions in
//! calendarView, instances and delta, and query-option strictness.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";
const WINDOW: &str = "startDateTime=2024-03-01T00:00:00Z&endDateTime=2024-05-01T00:00:00Z";

fn weekly(n: u32) -> Value {
    json!({
        "subject": "Weekly",
        "start": {"dateTime": "2024-03-18T10:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2024-03-18T10:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2024-03-18", "numberOfOccurrences": n},
        },
    })
}

async fn values(h: &Harness, t: &str, path: &str) -> Vec<Value> {
    let body = json_of(h.get(t, path).await, StatusCode::OK).await;
    assert!(body.get("@odata.nextLink").is_none(), "one page: {body}");
    body["value"].as_array().unwrap().clone()
}

fn starts(v: &[Value]) -> Vec<String> {
    v.iter().map(|e| e["start"]["dateTime"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn series_expand_in_calendar_view_and_instances() {
    let h = start().await;
    let t = h.ms_account("rec@example.com").await;
    let m =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(weekly(4))).await, StatusCode::CREATED).await;
    assert_eq!(m["type"], "seriesMaster");
    assert_eq!(m["recurrence"]["range"]["numberOfOccurrences"], 4);
    assert_eq!(m["recurrence"]["pattern"]["firstDayOfWeek"], "sunday");
    let mid = m["id"].as_str().unwrap().to_owned();

    let view = values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}&$top=50")).await;
    // UTC rendering: 10:00 Berlin is 09:00Z before 31 March and 08:00Z after.
    assert_eq!(
        starts(&view),
        [
            "2024-03-18T09:00:00.0000000",
            "2024-03-25T09:00:00.0000000",
            "2024-04-01T08:00:00.0000000",
            "2024-04-08T08:00:00.0000000",
        ]
    );
    assert!(view.iter().all(|e| e["type"] == "occurrence"));
    assert!(view.iter().all(|e| e["seriesMasterId"] == mid.as_str()));
    assert!(view.iter().all(|e| e["recurrence"].is_null()));
    assert_eq!(view[2]["originalStart"], "2024-04-01T08:00:00Z");

    // /events lists the master only.
    let events = values(&h, &t, &format!("{G}/me/events")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "seriesMaster");

    // instances needs a window and returns the occurrences.
    let r = h.get(&t, &format!("{G}/me/events/{mid}/instances")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let inst = values(
        &h,
        &t,
        &format!("{G}/me/events/{mid}/instances?startDateTime=2024-03-20T00:00:00Z&endDateTime=2024-05-01T00:00:00Z"),
    )
    .await;
    assert_eq!(inst.len(), 3);

    // Edit one occurrence (exception), delete another (cancelled).
    let second = view[1]["id"].as_str().unwrap().to_owned();
    let ex = json_of(
        h.send(Method::PATCH, &t, &format!("{G}/me/events/{second}"), Some(json!({"subject": "Moved"}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ex["type"], "exception");
    assert_eq!(ex["id"], second.as_str());
    let third = view[2]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{G}/me/events/{third}"), None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get(&t, &format!("{G}/me/events/{third}")).await.status(), StatusCode::NOT_FOUND);
    let view = values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}")).await;
    assert_eq!(view.len(), 3);
    assert_eq!(view[1]["subject"], "Moved");
    assert_eq!(view[1]["type"], "exception");
    // Occurrences cannot be given a recurrence.
    let r = h
        .send(
            Method::PATCH,
            &t,
            &format!("{G}/me/events/{second}"),
            Some(json!({"recurrence": weekly(2)["recurrence"].clone()})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delta_reports_occurrences_and_removals_after_a_series_edit() {
    let h = start().await;
    let t = h.ms_account("delta-rec@example.com").await;
    let m =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(weekly(4))).await, StatusCode::CREATED).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let body = json_of(h.get(&t, &format!("{G}/me/calendarView/delta?{WINDOW}")).await, StatusCode::OK).await;
    // Default page size is 10: all four occurrences, no master.
    let first = body["value"].as_array().unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|e| e["type"] == "occurrence"));
    let delta_link = body["@odata.deltaLink"].as_str().unwrap().to_owned();

    // Cut the series to two occurrences.
    let mut patch = weekly(2);
    patch.as_object_mut().unwrap().remove("subject");
    json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{G}/me/events/{mid}"),
            Some(json!({"recurrence": patch["recurrence"].clone()})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let resp = h.http.get(&delta_link).bearer_auth(&t).send().await.unwrap();
    let body = json_of(resp, StatusCode::OK).await;
    let v = body["value"].as_array().unwrap();
    let removed: Vec<&str> =
        v.iter().filter(|e| e.get("@removed").is_some()).map(|e| e["id"].as_str().unwrap()).collect();
    let kept: Vec<&Value> = v.iter().filter(|e| e.get("@removed").is_none()).collect();
    assert_eq!(kept.len(), 2, "{v:?}");
    assert_eq!(removed.len(), 2, "{v:?}");
    assert!(removed.contains(&first[3]["id"].as_str().unwrap()));
    assert!(body["@odata.deltaLink"].is_string());
}

#[tokio::test]
async fn query_options_are_honoured_or_rejected() {
    let h = start().await;
    let t = h.ms_account("opts@example.com").await;
    let r = h.send(Method::POST, &t, &format!("{G}/me/events"), Some(weekly(2))).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let sel = values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}&$select=subject")).await;
    assert_eq!(sel.len(), 2);
    let mut keys: Vec<&String> = sel[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["@odata.etag", "id", "subject"]);
    for bad in [
        format!("{G}/me/calendarView?{WINDOW}&$select=nope"),
        format!("{G}/me/calendarView?{WINDOW}&$filter=subject eq 'x'"),
        format!("{G}/me/events?$orderby=subject"),
        format!("{G}/me/calendarView/delta?{WINDOW}&$select=subject"),
    ] {
        assert_eq!(h.get(&t, &bad).await.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    // Recurrence validation: range start must be the start date; unknown pattern types fail.
    let mut bad = weekly(2);
    bad["recurrence"]["range"]["startDate"] = json!("2024-03-19");
    let r = h.send(Method::POST, &t, &format!("{G}/me/events"), Some(bad)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut bad = weekly(2);
    bad["recurrence"]["pattern"]["type"] = json!("fortnightly");
    let r = h.send(Method::POST, &t, &format!("{G}/me/events"), Some(bad)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cancel_removes_an_occurrence_and_organizers_cannot_rsvp() {
    let h = start().await;
    let t = h.ms_account("cancel@example.com").await;
    let m =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(weekly(3))).await, StatusCode::CREATED).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let view = values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}")).await;
    let occ = view[0]["id"].as_str().unwrap().to_owned();
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{occ}/cancel"), Some(json!({"comment": "sorry"}))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}")).await.len(), 2);
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{mid}/accept"), Some(json!({"sendResponse": true}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{mid}/cancel"), Some(json!({"bogus": 1}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{mid}/cancel"), Some(json!({}))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}")).await.len(), 0);
}

#[tokio::test]
async fn series_edits_reach_exceptions_and_delta_resends_them() {
    let h = start().await;
    let t = h.ms_account("carry@example.com").await;
    let mut body = weekly(4);
    body["location"] = json!({"displayName": "Room 1"});
    let m = json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(body)).await, StatusCode::CREATED).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let view = values(&h, &t, &format!("{G}/me/calendarView?{WINDOW}")).await;
    let second = view[1]["id"].as_str().unwrap().to_owned();
    let ex = json_of(
        h.send(Method::PATCH, &t, &format!("{G}/me/events/{second}"), Some(json!({"subject": "Moved"}))).await,
        StatusCode::OK,
    )
    .await;
    let body = json_of(h.get(&t, &format!("{G}/me/calendarView/delta?{WINDOW}")).await, StatusCode::OK).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 4);
    let delta_link = body["@odata.deltaLink"].as_str().unwrap().to_owned();

    // Only the master changes: subject and location.
    json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{G}/me/events/{mid}"),
            Some(json!({"subject": "Renamed", "location": {"displayName": "Room 2"}})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let got = json_of(h.get(&t, &format!("{G}/me/events/{second}")).await, StatusCode::OK).await;
    assert_eq!(got["subject"], "Moved", "the exception's own subject stays");
    assert_eq!(got["location"]["displayName"], "Room 2", "the series location reaches the exception");
    assert_ne!(got["@odata.etag"], ex["@odata.etag"]);
    assert_eq!(got["type"], "exception");

    let resp = h.http.get(&delta_link).bearer_auth(&t).send().await.unwrap();
    let body = json_of(resp, StatusCode::OK).await;
    let v = body["value"].as_array().unwrap();
    assert!(v.iter().all(|e| e.get("@removed").is_none()), "{v:?}");
    let mut got_ids: Vec<&str> = v.iter().map(|e| e["id"].as_str().unwrap()).collect();
    got_ids.sort();
    got_ids.dedup();
    assert_eq!(got_ids.len(), 4, "every occurrence and the exception: {v:?}");
    let exc = v.iter().find(|e| e["id"] == second.as_str()).expect("exception resent");
    assert_eq!((exc["subject"].as_str(), exc["location"]["displayName"].as_str()), (Some("Moved"), Some("Room 2")));
    // Occurrences come reduced to identity and times: the new subject is read from the master.
    assert!(
        v.iter()
            .filter(|e| e["id"] != second.as_str())
            .all(|e| e["type"] == "occurrence" && e.get("subject").is_none())
    );
    let master = json_of(h.get(&t, &format!("{G}/me/events/{mid}")).await, StatusCode::OK).await;
    assert_eq!(master["subject"], "Renamed");
}
