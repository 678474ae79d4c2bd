//! Google events with guests: invitations organised by someone else (what the attendee may
//! change, what the organizer's changes look like in sync) and the mail Google sends guests
//! when `sendUpdates` asks for it.

mod common;

use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";
const ME: &str = "guest@firm.test";
const BOSS: &str = "boss@other.test";

async fn post(h: &Harness, path: &str, body: Value) -> reqwest::Response {
    h.http.post(h.url(path)).json(&body).send().await.unwrap()
}

fn meeting() -> Value {
    json!({
        "summary": "Quarterly review",
        "location": "HQ",
        "start": {"dateTime": "2024-06-03T14:00:00+02:00", "timeZone": "Europe/Zurich"},
        "end": {"dateTime": "2024-06-03T15:00:00+02:00", "timeZone": "Europe/Zurich"},
        "attendees": [{"email": "carol@other.test"}],
    })
}

async fn invite(h: &Harness, event: Value) -> Value {
    let r = post(h, "/_sandbox/google/invite", json!({"email": ME, "organizer": BOSS, "event": event})).await;
    json_of(r, StatusCode::OK).await
}

async fn forbidden(h: &Harness, t: &str, method: Method, path: &str, body: Value) {
    let e = json_of(h.send(method, t, path, Some(body)).await, StatusCode::FORBIDDEN).await;
    assert_eq!(e["error"]["errors"][0]["reason"], "forbiddenForNonOrganizer", "{e}");
    assert_eq!(e["error"]["message"], "Shared properties can only be changed by the organizer of the event.");
}

fn attendee<'a>(ev: &'a Value, email: &str) -> &'a Value {
    ev["attendees"].as_array().unwrap().iter().find(|a| a["email"] == email).expect("attendee listed")
}

async fn mail(h: &Harness, account: &str) -> Vec<Value> {
    let r = h.http.get(h.url(&format!("/_sandbox/mail?provider=google&account={account}"))).send().await.unwrap();
    json_of(r, StatusCode::OK).await["mail"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_invitation_from_someone_else_shows_in_sync_and_only_takes_the_attendees_changes() {
    let h = start().await;
    let t = h.google_account(ME).await;
    let sync = json_of(h.get(&t, EVENTS).await, StatusCode::OK).await["nextSyncToken"].as_str().unwrap().to_owned();
    let ev = invite(&h, meeting()).await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let path = format!("{EVENTS}/{id}");

    let got = json_of(h.get(&t, &path).await, StatusCode::OK).await;
    assert_eq!(got["organizer"], json!({"email": BOSS}), "organised by someone else, no self");
    assert_eq!(attendee(&got, ME)["self"], true);
    assert_eq!(attendee(&got, ME)["responseStatus"], "needsAction");
    assert_eq!(attendee(&got, BOSS)["organizer"], true);
    assert_eq!(attendee(&got, BOSS)["responseStatus"], "accepted");
    assert_eq!(attendee(&got, "carol@other.test")["responseStatus"], "needsAction");
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={sync}")).await, StatusCode::OK).await;
    assert_eq!(inc["items"][0]["id"], id.as_str());
    let sync = inc["nextSyncToken"].as_str().unwrap().to_owned();

    // The organizer's fields are not the attendee's to change.
    forbidden(&h, &t, Method::PATCH, &path, json!({"summary": "Mine now"})).await;
    forbidden(&h, &t, Method::PATCH, &path, json!({"location": "Home"})).await;
    let later = json!({"dateTime": "2024-06-03T16:00:00+02:00", "timeZone": "Europe/Zurich"});
    forbidden(&h, &t, Method::PATCH, &path, json!({"start": later, "end": later})).await;
    forbidden(&h, &t, Method::PATCH, &path, json!({"recurrence": ["RRULE:FREQ=DAILY;COUNT=2"]})).await;
    forbidden(&h, &t, Method::PATCH, &path, json!({"guestsCanModify": true})).await;
    forbidden(&h, &t, Method::PATCH, &path, json!({"extendedProperties": {"shared": {"k": "v"}}})).await;
    let mut more = got["attendees"].clone();
    more.as_array_mut().unwrap().push(json!({"email": "dave@firm.test"}));
    forbidden(&h, &t, Method::PATCH, &path, json!({"attendees": more})).await;
    let mut renamed = got.clone();
    renamed["summary"] = json!("Renamed");
    forbidden(&h, &t, Method::PUT, &path, renamed).await;
    // A PUT that leaves out a shared field changes it too.
    let mut partial = got.clone();
    partial.as_object_mut().unwrap().remove("location");
    forbidden(&h, &t, Method::PUT, &path, partial).await;

    // Its own reply and personal settings are.
    let mut reply = got["attendees"].clone();
    for a in reply.as_array_mut().unwrap() {
        if a["email"] == ME {
            a["responseStatus"] = json!("accepted");
        }
    }
    let after = json_of(
        h.send(
            Method::PATCH,
            &t,
            &path,
            Some(json!({"attendees": reply, "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 3}]},
                "colorId": "5", "transparency": "transparent", "extendedProperties": {"private": {"calsync": "1"}}})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(attendee(&after, ME)["responseStatus"], "accepted");
    assert_eq!(attendee(&after, ME)["self"], true);
    assert_eq!(attendee(&after, BOSS)["organizer"], true);
    assert_eq!((after["colorId"].as_str(), after["transparency"].as_str()), (Some("5"), Some("transparent")));
    assert_eq!(after["organizer"], json!({"email": BOSS}));
    // A PUT echoing the event with only the reply changed is fine as well.
    let mut echo = after.clone();
    for a in echo["attendees"].as_array_mut().unwrap() {
        if a["email"] == ME {
            a["responseStatus"] = json!("tentative");
        }
    }
    let put = json_of(h.send(Method::PUT, &t, &path, Some(echo)).await, StatusCode::OK).await;
    assert_eq!(attendee(&put, ME)["responseStatus"], "tentative");

    // The organizer changes it: the attendee's sync sees the new version.
    let r = post(
        &h,
        "/_sandbox/google/organizer-update",
        json!({"email": ME, "event_id": id, "patch": {"summary": "Q2 review", "start": later,
            "end": {"dateTime": "2024-06-03T17:00:00+02:00", "timeZone": "Europe/Zurich"}}}),
    )
    .await;
    let updated = json_of(r, StatusCode::OK).await;
    assert_eq!(updated["summary"], "Q2 review");
    assert_eq!(updated["sequence"], 1, "a new time is a new sequence");
    assert_eq!(attendee(&updated, ME)["responseStatus"], "tentative", "the reply stays");
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={sync}")).await, StatusCode::OK).await;
    let sync = inc["nextSyncToken"].as_str().unwrap().to_owned();
    let item = inc["items"].as_array().unwrap().iter().find(|i| i["id"] == id.as_str()).unwrap().clone();
    assert_eq!(item["summary"], "Q2 review");

    // And cancels it: a cancelled event in incremental sync.
    let r = post(&h, "/_sandbox/google/organizer-cancel", json!({"email": ME, "event_id": id})).await;
    json_of(r, StatusCode::OK).await;
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={sync}")).await, StatusCode::OK).await;
    assert_eq!(inc["items"][0]["id"], id.as_str());
    assert_eq!(inc["items"][0]["status"], "cancelled");
    let r = post(&h, "/_sandbox/google/organizer-cancel", json!({"email": ME, "event_id": id})).await;
    assert_eq!(r.status(), StatusCode::GONE);

    // Control API input checks.
    let r = post(&h, "/_sandbox/google/invite", json!({"email": ME, "organizer": ME, "event": meeting()})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r =
        post(&h, "/_sandbox/google/invite", json!({"email": "nobody@x.test", "organizer": BOSS, "event": meeting()}))
            .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Dropped from the guest list by the organizer: the account's copy is cancelled.
    let dropped = invite(&h, meeting()).await;
    let r = post(
        &h,
        "/_sandbox/google/organizer-update",
        json!({"email": ME, "event_id": dropped["id"], "patch": {"attendees": [{"email": "carol@other.test"}]}}),
    )
    .await;
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "cancelled");

    let own = json_of(h.send(Method::POST, &t, EVENTS, Some(meeting())).await, StatusCode::OK).await;
    let r =
        post(&h, "/_sandbox/google/organizer-update", json!({"email": ME, "event_id": own["id"], "patch": {}})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the account organises its own events");
}

#[tokio::test]
async fn invited_series_instances_are_the_organizers_too_and_deleting_removes_the_copy() {
    let h = start().await;
    let t = h.google_account(ME).await;
    let mut weekly = meeting();
    weekly["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=4"]);
    let ev = invite(&h, weekly).await;
    let mid = ev["id"].as_str().unwrap().to_owned();
    let inst = format!("{EVENTS}/{mid}_20240610T120000Z");
    let got = json_of(h.get(&t, &inst).await, StatusCode::OK).await;
    assert_eq!(got["organizer"]["email"], BOSS);
    forbidden(&h, &t, Method::PATCH, &inst, json!({"summary": "just this one"})).await;
    json_of(h.send(Method::PATCH, &t, &inst, Some(json!({"colorId": "2"}))).await, StatusCode::OK).await;

    // The organizer cancels one instance: a cancelled exception.
    let r = post(
        &h,
        "/_sandbox/google/organizer-cancel",
        json!({"email": ME, "event_id": format!("{mid}_20240617T120000Z")}),
    )
    .await;
    json_of(r, StatusCode::OK).await;
    let listed = json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true")).await, StatusCode::OK).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);

    // The attendee removes the series from its calendar (Google allows that).
    let sync = listed["nextSyncToken"].as_str().unwrap().to_owned();
    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{EVENTS}/{mid}?sendUpdates=all"), None).await.status(),
        StatusCode::NO_CONTENT
    );
    let inc = json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={sync}")).await, StatusCode::OK).await;
    assert!(inc["items"].as_array().unwrap().iter().all(|i| i["status"] == "cancelled"));
    assert!(mail(&h, ME).await.is_empty(), "an attendee's delete mails nobody");
}

#[tokio::test]
async fn guests_get_mail_only_when_send_updates_asks_for_it() {
    let h = start().await;
    let me = "org@firm.test";
    let t = h.google_account(me).await;
    let mut body = meeting();
    body["attendees"] = json!([{"email": "ann@firm.test"}, {"email": "client@other.test"}, {"email": me}]);

    for q in ["", "?sendUpdates=none", "?sendNotifications=false"] {
        json_of(h.send(Method::POST, &t, &format!("{EVENTS}{q}"), Some(body.clone())).await, StatusCode::OK).await;
    }
    assert!(mail(&h, me).await.is_empty(), "no sendUpdates, no mail");
    let r = h.send(Method::POST, &t, &format!("{EVENTS}?sendUpdates=sometimes"), Some(body.clone())).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let all = json_of(
        h.send(Method::POST, &t, &format!("{EVENTS}?sendUpdates=all"), Some(body.clone())).await,
        StatusCode::OK,
    )
    .await;
    let id = all["id"].as_str().unwrap().to_owned();
    json_of(
        h.send(Method::POST, &t, &format!("{EVENTS}?sendUpdates=externalOnly"), Some(body.clone())).await,
        StatusCode::OK,
    )
    .await;
    json_of(
        h.send(Method::POST, &t, &format!("{EVENTS}?sendNotifications=true"), Some(body.clone())).await,
        StatusCode::OK,
    )
    .await;
    // An import is an invitation too, unless someone else organises the imported event.
    let mut imported = body.clone();
    imported["iCalUID"] = json!("imported-1@firm.test");
    let r = h.send(Method::POST, &t, &format!("{EVENTS}/import?sendUpdates=all"), Some(imported.clone())).await;
    json_of(r, StatusCode::OK).await;
    imported["iCalUID"] = json!("imported-2@other.test");
    imported["organizer"] = json!({"email": BOSS});
    let r = h.send(Method::POST, &t, &format!("{EVENTS}/import?sendUpdates=all"), Some(imported)).await;
    json_of(r, StatusCode::OK).await;
    let m = mail(&h, me).await;
    assert_eq!(m.len(), 4);
    assert!(m.iter().all(|x| x["kind"] == "invitation" && x["subject"] == "Quarterly review"));
    assert_eq!(m[0]["recipients"], json!(["ann@firm.test", "client@other.test"]));
    assert_eq!(m[0]["event_id"], id.as_str());
    assert_eq!(m[1]["recipients"], json!(["client@other.test"]), "externalOnly: other domains");
    assert_eq!(m[2]["recipients"], json!(["ann@firm.test", "client@other.test"]), "sendNotifications=true is all");

    let path = format!("{EVENTS}/{id}");
    json_of(h.send(Method::PATCH, &t, &path, Some(json!({"summary": "moved"}))).await, StatusCode::OK).await;
    assert_eq!(mail(&h, me).await.len(), 4, "no sendUpdates on the patch");
    json_of(
        h.send(Method::PATCH, &t, &format!("{path}?sendUpdates=all"), Some(json!({"summary": "moved"}))).await,
        StatusCode::OK,
    )
    .await;
    let mut put = meeting();
    put["attendees"] = body["attendees"].clone();
    json_of(h.send(Method::PUT, &t, &format!("{path}?sendUpdates=externalOnly"), Some(put)).await, StatusCode::OK)
        .await;
    json_of(
        h.send(Method::PATCH, &t, &format!("{path}?sendUpdates=all"), Some(json!({"status": "cancelled"}))).await,
        StatusCode::OK,
    )
    .await;
    let m = mail(&h, me).await;
    assert_eq!(m[3]["recipients"], json!(["ann@firm.test", "client@other.test"]), "the import");
    let kinds: Vec<&str> = m[4..].iter().map(|x| x["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["update", "update", "cancellation"]);
    assert_eq!(m[5]["recipients"], json!(["client@other.test"]));

    // Deleting: one cancellation; a series gets one mail per request, however many
    // instances and exceptions the request touches.
    let other = json_of(h.send(Method::POST, &t, EVENTS, Some(body.clone())).await, StatusCode::OK).await;
    let path = format!("{EVENTS}/{}?sendUpdates=externalOnly", other["id"].as_str().unwrap());
    assert_eq!(h.send(Method::DELETE, &t, &path, None).await.status(), StatusCode::NO_CONTENT);
    let mut series = body.clone();
    series["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=5"]);
    let s = json_of(h.send(Method::POST, &t, EVENTS, Some(series)).await, StatusCode::OK).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{sid}_20240610T120000Z"), Some(json!({"summary": "one"}))).await,
        StatusCode::OK,
    )
    .await;
    let before = mail(&h, me).await.len();
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{sid}?sendUpdates=all"), Some(json!({"location": "Annex"}))).await,
        StatusCode::OK,
    )
    .await;
    let r = h.send(Method::DELETE, &t, &format!("{EVENTS}/{sid}_20240617T120000Z?sendUpdates=all"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let m = mail(&h, me).await;
    assert_eq!(m.len(), before + 2);
    assert_eq!((m[before]["kind"].as_str(), m[before]["event_id"].as_str()), (Some("update"), Some(sid.as_str())));
    assert_eq!(m[before + 1]["kind"], "cancellation");
    assert_eq!(m[before - 1]["kind"], "cancellation");
    assert_eq!(m[before - 1]["recipients"], json!(["client@other.test"]));

    // An attendee's change to someone else's event mails nobody.
    let inv = post(&h, "/_sandbox/google/invite", json!({"email": me, "organizer": BOSS, "event": meeting()})).await;
    let inv = json_of(inv, StatusCode::OK).await;
    let path = format!("{EVENTS}/{}?sendUpdates=all", inv["id"].as_str().unwrap());
    json_of(h.send(Method::PATCH, &t, &path, Some(json!({"colorId": "4"}))).await, StatusCode::OK).await;
    assert_eq!(mail(&h, me).await.len(), before + 2);
}

#[tokio::test]
async fn guest_list_changes_invite_the_added_update_the_kept_and_cancel_the_removed() {
    let h = start().await;
    let me = "org@firm.test";
    let t = h.google_account(me).await;
    let guests = |list: &[&str]| Value::Array(list.iter().map(|e| json!({"email": e})).collect());
    let mut body = meeting();
    body["attendees"] = guests(&["ann@firm.test", "client@other.test", me]);
    let ev =
        json_of(h.send(Method::POST, &t, &format!("{EVENTS}?sendUpdates=all"), Some(body)).await, StatusCode::OK).await;
    let path = format!("{EVENTS}/{}", ev["id"].as_str().unwrap());
    let kinds = |m: &[Value]| -> Vec<(String, Value)> {
        m.iter().map(|x| (x["kind"].as_str().unwrap().to_owned(), x["recipients"].clone())).collect()
    };

    // Ann out, Dave and Eve in; Client, spelt in capitals now, is still the same guest.
    let patch = json!({"attendees": guests(&["CLIENT@other.test", "dave@firm.test", "eve@else.test", me])});
    json_of(h.send(Method::PATCH, &t, &format!("{path}?sendUpdates=all"), Some(patch)).await, StatusCode::OK).await;
    let m = mail(&h, me).await;
    assert_eq!(
        kinds(&m[1..]),
        [
            ("invitation".to_owned(), json!(["dave@firm.test", "eve@else.test"])),
            ("update".to_owned(), json!(["CLIENT@other.test"])),
            ("cancellation".to_owned(), json!(["ann@firm.test"])),
        ]
    );

    // externalOnly: only other domains hear of it; Dave (kept, same domain) gets nothing.
    let put = {
        let mut b = meeting();
        b["attendees"] = guests(&["dave@firm.test", "frank@firm.test", "gina@far.test", me]);
        b
    };
    json_of(h.send(Method::PUT, &t, &format!("{path}?sendUpdates=externalOnly"), Some(put)).await, StatusCode::OK)
        .await;
    let m = mail(&h, me).await;
    assert_eq!(
        kinds(&m[4..]),
        [
            ("invitation".to_owned(), json!(["gina@far.test"])),
            ("cancellation".to_owned(), json!(["CLIENT@other.test", "eve@else.test"])),
        ]
    );

    // none (and no parameter): nobody, whatever changed.
    let patch = json!({"attendees": guests(&["dave@firm.test", "frank@firm.test", me])});
    json_of(h.send(Method::PATCH, &t, &format!("{path}?sendUpdates=none"), Some(patch)).await, StatusCode::OK).await;
    json_of(
        h.send(Method::PATCH, &t, &path, Some(json!({"attendees": guests(&["dave@firm.test", me])}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mail(&h, me).await.len(), 6);

    // sendNotifications=true is `all`: a cancelling PATCH that also adds a guest tells
    // everyone on either list.
    let patch = json!({"status": "cancelled", "attendees": guests(&["dave@firm.test", "hal@firm.test", me])});
    json_of(h.send(Method::PATCH, &t, &format!("{path}?sendNotifications=true"), Some(patch)).await, StatusCode::OK)
        .await;
    let m = mail(&h, me).await;
    assert_eq!(kinds(&m[6..]), [("cancellation".to_owned(), json!(["dave@firm.test", "hal@firm.test"]))]);
}

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

const ATTENDEE_SCRIPT: &str = r#"
import json, sys
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from google.oauth2.credentials import Credentials

base, token, event_id, me = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
svc = build("calendar", "v3", credentials=Credentials(token), static_discovery=True,
            client_options={"api_endpoint": base + "/google/calendar/v3/"})
try:
    svc.events().patch(calendarId="primary", eventId=event_id, body={"summary": "mine"}).execute()
    refused = None
except HttpError as e:
    refused = {"status": e.resp.status, "reason": e.error_details[0]["reason"]}
ev = svc.events().get(calendarId="primary", eventId=event_id).execute()
for a in ev["attendees"]:
    if a.get("self"):
        a["responseStatus"] = "accepted"
ev = svc.events().patch(calendarId="primary", eventId=event_id, body={"attendees": ev["attendees"]}).execute()
mine = [a["responseStatus"] for a in ev["attendees"] if a["email"] == me]
print(json.dumps({"refused": refused, "reply": mine[0], "organizer": ev["organizer"]}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_sees_forbidden_for_non_organizer_and_can_reply() {
    let h = start().await;
    let t = h.google_account(ME).await;
    let ev = invite(&h, meeting()).await;
    let (base, id) = (h.base.clone(), ev["id"].as_str().unwrap().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).args(["-c", ATTENDEE_SCRIPT, &base, &t, &id, ME]).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    assert_eq!(v["refused"], json!({"status": 403, "reason": "forbiddenForNonOrganizer"}));
    assert_eq!(v["reply"], "accepted");
    assert_eq!(v["organizer"], json!({"email": BOSS}));
}
