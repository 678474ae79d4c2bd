//! Google series that run for years: expansion starts at the window, not at the series'
//! first instance, so `singleEvents=true`, `events.instances`, freeBusy, incremental sync and
//! master edits reach instances thousands of occurrences in; an endless series pages through
//! to a `nextSyncToken`.

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const V3: &str = "/google/calendar/v3";
const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";

/// Daily at 09:00 Berlin time since 2020-01-01, no end: 2,500 instances before November 2026.
fn endless_daily() -> Value {
    json!({
        "summary": "Daily since 2020",
        "start": {"dateTime": "2020-01-01T09:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2020-01-01T09:30:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=DAILY"],
    })
}

/// Every page of `path` + `query`; returns the items, the page count and the last page.
async fn follow(h: &Harness, t: &str, path: &str, query: &str) -> (Vec<Value>, usize, Value) {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{path}?{query}");
        if let Some(p) = &token {
            url.push_str(&format!("&pageToken={p}"));
        }
        let body = json_of(h.get(t, &url).await, StatusCode::OK).await;
        pages += 1;
        assert!(pages < 1000, "no end to the pages");
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["nextPageToken"].as_str() {
            Some(p) => token = Some(p.to_owned()),
            None => return (items, pages, body),
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_window_years_into_an_endless_series_lists_its_instances() {
    let h = start().await;
    let t = h.google_account("long@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(endless_daily())).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let window = "timeMin=2026-11-01T00:00:00Z&timeMax=2026-12-01T00:00:00Z";

    let (got, _, _) = follow(&h, &t, EVENTS, &format!("singleEvents=true&orderBy=startTime&{window}")).await;
    assert_eq!(got.len(), 30, "every day of November 2026");
    // Winter time in Berlin: 09:00 local is 08:00Z.
    assert_eq!(got[0]["id"], format!("{mid}_20261101T080000Z").as_str());
    assert_eq!(got[0]["start"]["dateTime"], "2026-11-01T09:00:00+01:00");
    assert_eq!(got[29]["id"], format!("{mid}_20261130T080000Z").as_str());

    let (inst, _, _) = follow(&h, &t, &format!("{EVENTS}/{mid}/instances"), window).await;
    assert_eq!(ids(&inst), ids(&got));
    let one = json_of(
        h.get(&t, &format!("{EVENTS}/{mid}/instances?originalStart=2026-11-15T09:00:00%2B01:00")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(one["items"].as_array().unwrap()), [format!("{mid}_20261115T080000Z")]);

    let fb = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{V3}/freeBusy"),
            Some(json!({"timeMin": "2026-11-01T00:00:00Z", "timeMax": "2026-12-01T00:00:00Z",
                "items": [{"id": "primary"}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let busy = fb["calendars"]["primary"]["busy"].as_array().unwrap();
    assert_eq!(busy.len(), 30);
    assert_eq!(busy[0], json!({"start": "2026-11-01T08:00:00Z", "end": "2026-11-01T08:30:00Z"}));
}

#[tokio::test]
async fn without_time_max_an_endless_series_pages_to_a_sync_token() {
    let h = start().await;
    let t = h.google_account("endless@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(endless_daily())).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();

    // Pages continue the expansion where the previous one stopped.
    let q = "singleEvents=true&timeMin=2026-11-01T00:00:00Z&maxResults=50";
    let first = json_of(h.get(&t, &format!("{EVENTS}?{q}")).await, StatusCode::OK).await;
    let first_items = first["items"].as_array().unwrap();
    assert_eq!(first_items.len(), 50);
    let tok = first["nextPageToken"].as_str().expect("more pages");
    let second = json_of(h.get(&t, &format!("{EVENTS}?{q}&pageToken={tok}")).await, StatusCode::OK).await;
    assert_eq!(second["items"][0]["id"], format!("{mid}_20261221T080000Z").as_str());

    // Followed to the end: about ten years of days, each once, then a nextSyncToken.
    let (all, pages, last) = follow(&h, &t, EVENTS, "singleEvents=true&timeMin=2026-11-01T00:00:00Z").await;
    assert!(pages > 10, "{pages} pages");
    assert!(last["nextSyncToken"].is_string(), "the last page ends the round");
    let distinct: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(distinct.len(), all.len());
    assert!(all.len() > 3000, "{} instances", all.len());
    assert_eq!(all[0]["id"], format!("{mid}_20261101T080000Z").as_str());
}

#[tokio::test]
async fn master_edits_reach_instances_and_exceptions_past_the_first_thousand() {
    let h = start().await;
    let t = h.google_account("edit-long@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(endless_daily())).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let ex_id = format!("{mid}_20261110T080000Z");
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{ex_id}"), Some(json!({"summary": "special"}))).await,
        StatusCode::OK,
    )
    .await;
    let q = "singleEvents=true&timeMin=2026-11-01T00:00:00Z";
    let (_, _, last) = follow(&h, &t, EVENTS, q).await;
    let sync = last["nextSyncToken"].as_str().unwrap().to_owned();

    // A non-time edit carries into the exception 2,500 instances in.
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{mid}"), Some(json!({"location": "Room 7"}))).await,
        StatusCode::OK,
    )
    .await;
    let ex = json_of(h.get(&t, &format!("{EVENTS}/{ex_id}")).await, StatusCode::OK).await;
    assert_eq!((ex["summary"].as_str(), ex["location"].as_str()), (Some("special"), Some("Room 7")));
    let (changes, _, last) = follow(&h, &t, EVENTS, &format!("singleEvents=true&syncToken={sync}")).await;
    let changed: HashSet<String> = ids(&changes).into_iter().collect();
    assert!(changed.contains(&format!("{mid}_20261115T080000Z")), "instances in the window are resent");
    assert!(changed.contains(&ex_id));
    assert!(changes.iter().filter(|i| i["status"] == "confirmed").all(|i| i["location"] == "Room 7"));
    // The round starts at the full sync's timeMin, carried by the token.
    assert!(!changed.contains(&format!("{mid}_20200101T080000Z")));
    let sync = last["nextSyncToken"].as_str().unwrap().to_owned();

    // Moving the series by an hour: the old instances and the exception are gone, the new
    // ones are there, in November 2026 as much as in 2020.
    let mut moved = endless_daily();
    moved["start"]["dateTime"] = json!("2020-01-01T10:00:00+01:00");
    moved["end"]["dateTime"] = json!("2020-01-01T10:30:00+01:00");
    moved["location"] = json!("Room 7");
    json_of(h.send(Method::PUT, &t, &format!("{EVENTS}/{mid}"), Some(moved)).await, StatusCode::OK).await;
    let gone = json_of(h.get(&t, &format!("{EVENTS}/{ex_id}")).await, StatusCode::OK).await;
    assert_eq!(gone["status"], "cancelled");
    let (changes, _, _) = follow(&h, &t, EVENTS, &format!("singleEvents=true&syncToken={sync}")).await;
    let status_of =
        |id: String| changes.iter().find(|i| i["id"] == id.as_str()).map(|i| i["status"].as_str().unwrap().to_owned());
    assert_eq!(status_of(format!("{mid}_20261115T080000Z")).as_deref(), Some("cancelled"));
    assert_eq!(status_of(ex_id.clone()).as_deref(), Some("cancelled"));
    assert_eq!(status_of(format!("{mid}_20261115T090000Z")).as_deref(), Some("confirmed"));
}

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

const WINDOW_SCRIPT: &str = r#"
import json, sys
from googleapiclient.discovery import build
from google.oauth2.credentials import Credentials

base, token = sys.argv[1], sys.argv[2]
svc = build("calendar", "v3", credentials=Credentials(token), static_discovery=True,
            client_options={"api_endpoint": base + "/google/calendar/v3/"})
ev = svc.events().insert(calendarId="primary", body={
    "summary": "standup", "recurrence": ["RRULE:FREQ=DAILY"],
    "start": {"dateTime": "2020-01-01T09:00:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2020-01-01T09:15:00", "timeZone": "Europe/Berlin"}}).execute()
window = dict(timeMin="2026-11-01T00:00:00Z", timeMax="2026-12-01T00:00:00Z")
listed = svc.events().list(calendarId="primary", singleEvents=True, orderBy="startTime", **window).execute()
inst = svc.events().instances(calendarId="primary", eventId=ev["id"], **window).execute()
print(json.dumps({"listed": [i["start"]["dateTime"] for i in listed["items"]],
                  "instances": len(inst["items"])}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_reads_a_window_of_a_long_series() {
    let h = start().await;
    let t = h.google_account("py-long@example.com").await;
    let base = h.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).args(["-c", WINDOW_SCRIPT, &base, &t]).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    let listed = v["listed"].as_array().unwrap();
    assert_eq!(listed.len(), 30);
    assert_eq!(listed[0], "2026-11-01T09:00:00+01:00");
    assert_eq!(v["instances"], 30);
}

#[tokio::test]
async fn sub_daily_rules_are_refused_with_invalid_recurrence_rule() {
    let h = start().await;
    let t = h.google_account("minutely@example.com").await;
    for rules in [
        json!(["RRULE:FREQ=MINUTELY"]),
        json!(["RRULE:FREQ=SECONDLY;COUNT=10"]),
        json!(["RRULE:FREQ=HOURLY;INTERVAL=2"]),
        json!(["RRULE:FREQ=DAILY;BYHOUR=9,10,11"]),
        json!(["RRULE:FREQ=DAILY", "EXRULE:FREQ=HOURLY"]),
    ] {
        let mut body = endless_daily();
        body["recurrence"] = rules.clone();
        let err = json_of(h.send(Method::POST, &t, EVENTS, Some(body)).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(err["error"]["errors"][0]["reason"], "invalid", "{rules}");
        assert!(err["error"]["message"].as_str().unwrap().starts_with("Invalid recurrence rule."), "{err}");
    }
    // Nor can an edit turn a series into one (this used to hang the sandbox).
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(endless_daily())).await, StatusCode::OK).await;
    let path = format!("{EVENTS}/{}", m["id"].as_str().unwrap());
    let r = h.send(Method::PATCH, &t, &path, Some(json!({"recurrence": ["RRULE:FREQ=MINUTELY"]}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// RFC 3339 of the real clock (the sandbox clock is real time here) moved by `days`.
fn days_from_now(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%dT00:00:00Z").to_string()
}

fn cancelled_ids(items: &[Value], mid: &str) -> Vec<String> {
    items
        .iter()
        .filter(|i| i["status"] == "cancelled")
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .filter(|i| i.starts_with(&format!("{mid}_")))
        .collect()
}

fn moved_by_an_hour() -> Value {
    let mut moved = endless_daily();
    moved["start"]["dateTime"] = json!("2020-01-01T10:00:00+01:00");
    moved["end"]["dateTime"] = json!("2020-01-01T10:30:00+01:00");
    moved
}

#[tokio::test]
async fn a_series_edit_tombstones_only_instances_a_client_can_hold() {
    let h = start().await;

    // A client syncing expanded instances from a week ago: the edit tombstones the old
    // instances from there to the listing's horizon, not the 2,500 since 2020.
    let t = h.google_account("windowed@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(endless_daily())).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let q = format!("singleEvents=true&maxResults=2500&timeMin={}", days_from_now(-7));
    let (_, _, last) = follow(&h, &t, EVENTS, &q).await;
    let sync = last["nextSyncToken"].as_str().unwrap().to_owned();
    json_of(h.send(Method::PUT, &t, &format!("{EVENTS}/{mid}"), Some(moved_by_an_hour())).await, StatusCode::OK).await;
    let (changes, _, _) = follow(&h, &t, EVENTS, &format!("singleEvents=true&maxResults=2500&syncToken={sync}")).await;
    let gone = cancelled_ids(&changes, &mid);
    // Seven days back plus ten years ahead, one a day.
    assert!((3650..3700).contains(&gone.len()), "{} tombstones", gone.len());
    assert!(gone.iter().all(|i| !i.contains("_2020") && !i.contains("_2025")), "nothing before the window");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y%m%d").to_string();
    assert!(gone.iter().any(|i| i.contains(&format!("_{tomorrow}T"))), "tomorrow's instance went");

    // Nobody ever listed expanded instances of this calendar: nothing to tombstone, and
    // incremental sync without singleEvents carries just the master.
    let t = h.google_account("masters-only@example.com").await;
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(endless_daily())).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let (_, _, last) = follow(&h, &t, EVENTS, "maxResults=2500").await;
    let sync = last["nextSyncToken"].as_str().unwrap().to_owned();
    json_of(h.send(Method::PUT, &t, &format!("{EVENTS}/{mid}"), Some(moved_by_an_hour())).await, StatusCode::OK).await;
    let (changes, _, _) = follow(&h, &t, EVENTS, &format!("maxResults=2500&syncToken={sync}")).await;
    assert_eq!(ids(&changes), [mid]);
}

#[tokio::test]
async fn an_instance_that_comes_back_and_goes_again_is_reported_gone_again() {
    let h = start().await;
    let t = h.google_account("back-and-forth@example.com").await;
    let weekly = |hour: u32| {
        json!({
            "summary": "Weekly",
            "start": {"dateTime": format!("2026-01-05T{hour:02}:00:00+01:00"), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": format!("2026-01-05T{hour:02}:30:00+01:00"), "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=20"],
        })
    };
    let m = json_of(h.send(Method::POST, &t, EVENTS, Some(weekly(9))).await, StatusCode::OK).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let path = format!("{EVENTS}/{mid}");
    let nine = format!("{mid}_20260105T080000Z");
    let round = |sync: String| {
        let h = &h;
        let t = t.clone();
        async move {
            let (items, _, last) = follow(h, &t, EVENTS, &format!("singleEvents=true&syncToken={sync}")).await;
            (items, last["nextSyncToken"].as_str().unwrap().to_owned())
        }
    };
    let (_, _, last) = follow(&h, &t, EVENTS, "singleEvents=true").await;
    let sync = last["nextSyncToken"].as_str().unwrap().to_owned();

    json_of(h.send(Method::PUT, &t, &path, Some(weekly(10))).await, StatusCode::OK).await;
    let (items, sync) = round(sync).await;
    assert!(cancelled_ids(&items, &mid).contains(&nine));
    json_of(h.send(Method::PUT, &t, &path, Some(weekly(9))).await, StatusCode::OK).await;
    let (items, sync) = round(sync).await;
    let back = items.iter().find(|i| i["id"] == nine.as_str()).expect("09:00 is back");
    assert_eq!(back["status"], "confirmed");
    json_of(h.send(Method::PUT, &t, &path, Some(weekly(10))).await, StatusCode::OK).await;
    let (items, _) = round(sync).await;
    assert!(cancelled_ids(&items, &mid).contains(&nine), "gone again: {items:?}");
    assert!(!items.iter().any(|i| i["id"] == nine.as_str() && i["status"] == "confirmed"));
}
