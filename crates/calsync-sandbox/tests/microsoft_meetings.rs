//! Graph meetings: copies of meetings organised by someone else (control API invite,
//! organizer update and cancel), RSVP actions, what an attendee may PATCH, and the mail
//! Graph sends for the mailbox's own meetings.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";
const WINDOW: &str = "startDateTime=2024-03-01T00:00:00Z&endDateTime=2024-05-01T00:00:00Z";

fn meeting(subject: &str, attendees: &[&str]) -> Value {
    let list: Vec<Value> =
        attendees.iter().map(|a| json!({"type": "required", "emailAddress": {"address": a}})).collect();
    json!({"subject": subject,
        "start": {"dateTime": "2024-03-05T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-03-05T11:00:00", "timeZone": "UTC"},
        "attendees": list})
}

async fn invite(h: &Harness, email: &str, subject: &str) -> Value {
    let resp = h
        .http
        .post(h.url("/_sandbox/microsoft/invite"))
        .json(&json!({"email": email, "organizer": {"name": "Olga", "address": "olga@other.test"},
            "event": meeting(subject, &["olga@other.test"])}))
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::CREATED).await
}

async fn mail(h: &Harness, account: &str) -> Vec<Value> {
    let resp = h.http.get(h.url(&format!("/_sandbox/mail?provider=microsoft&account={account}"))).send().await.unwrap();
    json_of(resp, StatusCode::OK).await["mail"].as_array().unwrap().clone()
}

async fn delta_round(h: &Harness, t: &str, mut url: String) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    loop {
        let body = json_of(h.http.get(&url).bearer_auth(t).send().await.unwrap(), StatusCode::OK).await;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_owned(),
            None => return (items, body["@odata.deltaLink"].as_str().unwrap().to_owned()),
        }
    }
}

#[tokio::test]
async fn an_invitation_from_someone_else_is_not_organised_by_the_mailbox() {
    let h = start().await;
    let t = h.ms_account("amy@example.com").await;
    let copy = invite(&h, "amy@example.com", "Review").await;
    let id = copy["id"].as_str().unwrap().to_owned();
    let got = json_of(h.get(&t, &format!("{G}/me/events/{id}")).await, StatusCode::OK).await;
    assert_eq!(got["isOrganizer"], false);
    assert_eq!(got["responseStatus"], json!({"response": "notResponded", "time": "0001-01-01T00:00:00Z"}));
    assert_eq!(got["organizer"]["emailAddress"], json!({"name": "Olga", "address": "olga@other.test"}));
    let attendees: Vec<&str> =
        got["attendees"].as_array().unwrap().iter().map(|a| a["emailAddress"]["address"].as_str().unwrap()).collect();
    assert!(attendees.contains(&"amy@example.com"));

    // The attendee's own properties may change; the organizer's may not.
    json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{G}/me/events/{id}"),
            Some(json!({"categories": ["Blue"], "isReminderOn": false})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    for patch in
        [json!({"subject": "Mine now"}), json!({"start": {"dateTime": "2024-03-06T10:00:00", "timeZone": "UTC"}})]
    {
        let r = h.send(Method::PATCH, &t, &format!("{G}/me/events/{id}"), Some(patch.clone())).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{patch}");
    }
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{id}/cancel"), Some(json!({}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "only the organizer cancels");

    let r = h
        .send(Method::POST, &t, &format!("{G}/me/events/{id}/tentativelyAccept"), Some(json!({"sendResponse": true})))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = json_of(h.get(&t, &format!("{G}/me/events/{id}")).await, StatusCode::OK).await;
    assert_eq!(got["responseStatus"]["response"], "tentativelyAccepted");
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{id}/accept"), Some(json!({"comment": "ok"}))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = json_of(h.get(&t, &format!("{G}/me/events/{id}")).await, StatusCode::OK).await;
    assert_eq!(got["responseStatus"]["response"], "accepted");
    assert!(mail(&h, "amy@example.com").await.is_empty(), "an attendee's copy mails nobody");

    // Declining takes it off the calendar.
    let other = invite(&h, "amy@example.com", "Lunch").await;
    let oid = other["id"].as_str().unwrap();
    let r =
        h.send(Method::POST, &t, &format!("{G}/me/events/{oid}/decline"), Some(json!({"sendResponse": false}))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(h.get(&t, &format!("{G}/me/events/{oid}")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn organizer_updates_and_cancellation_reach_the_attendee_copy_through_delta() {
    let h = start().await;
    let t = h.ms_account("ben@example.com").await;
    let copy = invite(&h, "ben@example.com", "Planning").await;
    let id = copy["id"].as_str().unwrap().to_owned();
    let (first, delta) = delta_round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{WINDOW}"))).await;
    assert_eq!(first.len(), 1);

    let resp = h
        .http
        .post(h.url("/_sandbox/microsoft/organizer-update"))
        .json(&json!({"email": "ben@example.com", "event_id": id, "event": {"location": {"displayName": "Room 9"}}}))
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::OK).await;
    let (changes, delta) = delta_round(&h, &t, delta).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["location"]["displayName"], "Room 9");
    assert_ne!(changes[0]["@odata.etag"], first[0]["@odata.etag"]);

    let resp = h
        .http
        .post(h.url("/_sandbox/microsoft/organizer-cancel"))
        .json(&json!({"email": "ben@example.com", "event_id": id}))
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::OK).await;
    let (changes, _) = delta_round(&h, &t, delta).await;
    assert_eq!(changes.len(), 1, "an update, not a removal: {changes:?}");
    assert_eq!(changes[0]["isCancelled"], true);
    assert_eq!(changes[0]["subject"], "Canceled: Planning");
    let r = h.send(Method::POST, &t, &format!("{G}/me/events/{id}/accept"), Some(json!({}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The organizer-side control calls refuse the mailbox's own events.
    let own = json_of(
        h.send(Method::POST, &t, &format!("{G}/me/events"), Some(meeting("Own", &[]))).await,
        StatusCode::CREATED,
    )
    .await;
    let resp = h
        .http
        .post(h.url("/_sandbox/microsoft/organizer-cancel"))
        .json(&json!({"email": "ben@example.com", "event_id": own["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn graph_mails_attendees_on_create_relevant_updates_and_delete() {
    let h = start().await;
    let t = h.ms_account("org@example.com").await;
    let created = json_of(
        h.send(Method::POST, &t, &format!("{G}/me/events"), Some(meeting("Kickoff", &["a@x.test", "b@x.test"]))).await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("{G}/me/events/{id}");
    // A subject-only edit mails nobody.
    json_of(h.send(Method::PATCH, &t, &path, Some(json!({"subject": "Kick-off"}))).await, StatusCode::OK).await;
    // A new time: an update to everyone.
    json_of(
        h.send(
            Method::PATCH,
            &t,
            &path,
            Some(json!({"start": {"dateTime": "2024-03-05T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2024-03-05T13:00:00", "timeZone": "UTC"}})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // b removed, c added.
    let attendees = meeting("x", &["a@x.test", "c@x.test"])["attendees"].clone();
    json_of(h.send(Method::PATCH, &t, &path, Some(json!({"attendees": attendees}))).await, StatusCode::OK).await;
    assert_eq!(h.send(Method::DELETE, &t, &path, None).await.status(), StatusCode::NO_CONTENT);
    // An event without attendees mails nobody.
    json_of(
        h.send(Method::POST, &t, &format!("{G}/me/events"), Some(meeting("Alone", &[]))).await,
        StatusCode::CREATED,
    )
    .await;

    let got: Vec<(String, Vec<String>)> = mail(&h, "org@example.com")
        .await
        .iter()
        .map(|m| {
            let to = m["recipients"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
            (m["kind"].as_str().unwrap().to_owned(), to)
        })
        .collect();
    let want: Vec<(String, Vec<String>)> = [
        ("invitation", vec!["a@x.test", "b@x.test"]),
        ("update", vec!["a@x.test", "b@x.test"]),
        ("update", vec!["a@x.test"]),
        ("invitation", vec!["c@x.test"]),
        ("cancellation", vec!["b@x.test"]),
        ("cancellation", vec!["a@x.test", "c@x.test"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(got, want);
}

/// A weekly series of four from someone else in `email`'s calendar, and its occurrence ids.
async fn invite_series(h: &Harness, t: &str, email: &str) -> (String, Vec<String>) {
    let mut event = meeting("Sync", &["olga@other.test"]);
    event["recurrence"] = json!({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
        "range": {"type": "numbered", "startDate": "2024-03-05", "numberOfOccurrences": 4}});
    let resp = h
        .http
        .post(h.url("/_sandbox/microsoft/invite"))
        .json(&json!({"email": email, "organizer": {"address": "olga@other.test"}, "event": event}))
        .send()
        .await
        .unwrap();
    let master = json_of(resp, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let list = json_of(h.get(t, &format!("{G}/me/events/{master}/instances?{WINDOW}")).await, StatusCode::OK).await;
    let occurrences = list["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    (master, occurrences)
}

async fn organizer(h: &Harness, action: &str, body: Value) {
    let resp = h.http.post(h.url(&format!("/_sandbox/microsoft/{action}"))).json(&body).send().await.unwrap();
    json_of(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn an_organizer_cancelling_a_series_cancels_its_exceptions_too() {
    let h = start().await;
    let t = h.ms_account("cara@example.com").await;
    let (master, occ) = invite_series(&h, &t, "cara@example.com").await;
    assert_eq!(occ.len(), 4);
    // The organizer moved the second meeting (and renamed it): an exception.
    organizer(
        &h,
        "organizer-update",
        json!({"email": "cara@example.com", "event_id": occ[1], "event": {"subject": "Sync (moved)",
            "start": {"dateTime": "2024-03-13T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2024-03-13T11:00:00", "timeZone": "UTC"}}}),
    )
    .await;
    let (_, delta) = delta_round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{WINDOW}"))).await;

    organizer(&h, "organizer-cancel", json!({"email": "cara@example.com", "event_id": master})).await;
    let (changes, _) = delta_round(&h, &t, delta).await;
    let ex = changes.iter().find(|e| e["id"] == occ[1].as_str()).expect("the exception is resent");
    assert_eq!(ex["type"], "exception");
    assert_eq!(ex["isCancelled"], true);
    assert_eq!(ex["subject"], "Canceled: Sync (moved)");
    let got = json_of(h.get(&t, &format!("{G}/me/events/{}", occ[1])).await, StatusCode::OK).await;
    assert_eq!(got["isCancelled"], true);
    let got = json_of(h.get(&t, &format!("{G}/me/events/{}", occ[2])).await, StatusCode::OK).await;
    assert_eq!((got["isCancelled"].clone(), got["subject"].clone()), (json!(true), json!("Canceled: Sync")));
}

#[tokio::test]
async fn an_organizer_shortening_a_series_removes_the_exceptions_it_drops() {
    let h = start().await;
    let t = h.ms_account("dan@example.com").await;
    let (master, occ) = invite_series(&h, &t, "dan@example.com").await;
    organizer(
        &h,
        "organizer-update",
        json!({"email": "dan@example.com", "event_id": occ[3], "event": {"subject": "Last one"}}),
    )
    .await;
    let (_, delta) = delta_round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{WINDOW}"))).await;

    organizer(
        &h,
        "organizer-update",
        json!({"email": "dan@example.com", "event_id": master, "event": {"recurrence":
            {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
             "range": {"type": "numbered", "startDate": "2024-03-05", "numberOfOccurrences": 2}}}}),
    )
    .await;
    let (changes, _) = delta_round(&h, &t, delta).await;
    let removed: Vec<&str> =
        changes.iter().filter(|e| e.get("@removed").is_some()).map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(removed.len(), 2, "{changes:?}");
    assert!(removed.contains(&occ[2].as_str()) && removed.contains(&occ[3].as_str()), "{removed:?}");
    assert_eq!(h.get(&t, &format!("{G}/me/events/{}", occ[3])).await.status(), StatusCode::NOT_FOUND);
}
