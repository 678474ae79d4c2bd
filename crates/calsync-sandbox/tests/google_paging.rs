//! Google listing pages and tokens: ragged pages (short or empty, still with a
//! `nextPageToken`) that add up to the complete result, listings that end without a
//! `nextSyncToken`, and sync tokens bound to the listing shape they were minted under.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const V3: &str = "/google/calendar/v3";
const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";

/// What following a listing's pages saw.
struct Walk {
    items: Vec<Value>,
    /// Pages with fewer items than asked for that still had a `nextPageToken`.
    short: usize,
    /// Of those, the empty ones.
    empty: usize,
    last: Value,
}

async fn walk(h: &Harness, t: &str, path: &str, query: &str, max: usize) -> Walk {
    let mut w = Walk { items: Vec::new(), short: 0, empty: 0, last: Value::Null };
    let mut token: Option<String> = None;
    for _ in 0..10_000 {
        let mut url = format!("{path}?{query}&maxResults={max}");
        if let Some(p) = &token {
            url.push_str(&format!("&pageToken={p}"));
        }
        let body = json_of(h.get(t, &url).await, StatusCode::OK).await;
        let page = body["items"].as_array().unwrap();
        assert!(page.len() <= max, "maxResults is a ceiling");
        w.items.extend(page.iter().cloned());
        match body["nextPageToken"].as_str() {
            Some(p) => {
                assert!(body.get("nextSyncToken").is_none(), "{body}");
                w.short += usize::from(page.len() < max);
                w.empty += usize::from(page.is_empty());
                token = Some(p.to_owned());
            }
            None => {
                w.last = body;
                return w;
            }
        }
    }
    panic!("no last page");
}

/// Ids with how often each came.
fn counts(items: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    m
}

fn exactly_once(items: &[Value], want: usize) {
    let c = counts(items);
    assert_eq!(c.len(), want, "distinct ids");
    assert!(c.values().all(|n| *n == 1), "an id came twice: {c:?}");
}

async fn insert(h: &Harness, t: &str, body: Value) -> Value {
    json_of(h.send(Method::POST, t, EVENTS, Some(body)).await, StatusCode::OK).await
}

fn single(i: usize) -> Value {
    json!({"summary": format!("E{i}"),
        "start": {"dateTime": format!("2024-02-{:02}T09:00:00Z", 1 + i % 28)},
        "end": {"dateTime": format!("2024-02-{:02}T10:00:00Z", 1 + i % 28)}})
}

#[tokio::test]
async fn ragged_pages_still_deliver_every_item_exactly_once() {
    let h = start().await;
    let t = h.google_account("ragged@example.com").await;
    for i in 0..40 {
        insert(&h, &t, single(i)).await;
    }
    let series = insert(
        &h,
        &t,
        json!({"summary": "weekly", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=20"],
            "start": {"dateTime": "2024-01-01T09:00:00Z", "timeZone": "UTC"},
            "end": {"dateTime": "2024-01-01T09:30:00Z", "timeZone": "UTC"}}),
    )
    .await;
    let mid = series["id"].as_str().unwrap().to_owned();
    for i in 0..7 {
        let r = h.send(Method::POST, &t, &format!("{V3}/calendars"), Some(json!({"summary": format!("C{i}")}))).await;
        json_of(r, StatusCode::OK).await;
    }
    let single_sync =
        walk(&h, &t, EVENTS, "singleEvents=true", 7).await.last["nextSyncToken"].as_str().unwrap().to_owned();
    let plain_sync = walk(&h, &t, EVENTS, "", 7).await.last["nextSyncToken"].as_str().unwrap().to_owned();
    h.control("/_sandbox/paging", json!({"provider": "google", "mode": "ragged"})).await;

    let mut short = 0;
    let mut empty = 0;
    let mut tally = |w: &Walk| {
        short += w.short;
        empty += w.empty;
    };
    // Full listings, masters and expanded, log order and time order.
    let w = walk(&h, &t, EVENTS, "", 6).await;
    exactly_once(&w.items, 41);
    assert!(w.last["nextSyncToken"].is_string(), "the final page carries the sync token");
    tally(&w);
    let w = walk(&h, &t, EVENTS, "singleEvents=true", 6).await;
    exactly_once(&w.items, 60);
    assert!(w.last["nextSyncToken"].is_string());
    tally(&w);
    let w = walk(&h, &t, EVENTS, "singleEvents=true&orderBy=startTime&timeMin=2024-01-01T00:00:00Z", 5).await;
    exactly_once(&w.items, 60);
    let starts: Vec<&str> = w.items.iter().map(|i| i["start"]["dateTime"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|p| p[0] <= p[1]), "still in start order");
    tally(&w);
    // events.instances and calendarList.
    let w = walk(&h, &t, &format!("{EVENTS}/{mid}/instances"), "", 4).await;
    exactly_once(&w.items, 20);
    tally(&w);
    let w = walk(&h, &t, &format!("{V3}/users/me/calendarList"), "", 2).await;
    exactly_once(&w.items, 8);
    assert!(w.last["nextSyncToken"].is_string());
    tally(&w);

    // Incremental rounds, both shapes.
    for i in 0..12 {
        insert(&h, &t, single(100 + i)).await;
    }
    json_of(
        h.send(Method::PATCH, &t, &format!("{EVENTS}/{mid}"), Some(json!({"summary": "renamed"}))).await,
        StatusCode::OK,
    )
    .await;
    let w = walk(&h, &t, EVENTS, &format!("syncToken={plain_sync}"), 3).await;
    exactly_once(&w.items, 13);
    assert!(w.last["nextSyncToken"].is_string());
    tally(&w);
    let w = walk(&h, &t, EVENTS, &format!("singleEvents=true&syncToken={single_sync}"), 3).await;
    exactly_once(&w.items, 32);
    assert!(w.last["nextSyncToken"].is_string());
    tally(&w);

    assert!(short > 0, "some pages came short");
    assert!(empty > 0, "some page came empty with a nextPageToken");

    // Back to normal: full pages again.
    h.control("/_sandbox/paging", json!({"provider": "google", "mode": "normal"})).await;
    let w = walk(&h, &t, EVENTS, "", 6).await;
    assert_eq!((w.short, w.empty), (0, 0));
}

#[tokio::test]
async fn restricted_listings_end_without_a_sync_token() {
    let h = start().await;
    let t = h.google_account("nosync@example.com").await;
    let mut ev = single(1);
    ev["extendedProperties"] = json!({"private": {"k": "v"}, "shared": {"k": "v"}});
    let ev = insert(&h, &t, ev).await;
    let uid = ev["iCalUID"].as_str().unwrap().replace('@', "%40");
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for q in [
        "orderBy=updated".to_owned(),
        "singleEvents=true&orderBy=startTime".to_owned(),
        "q=E1".to_owned(),
        format!("iCalUID={uid}"),
        format!("updatedMin={yesterday}"),
        "timeMax=2030-01-01T00:00:00Z".to_owned(),
        "privateExtendedProperty=k%3Dv".to_owned(),
        "sharedExtendedProperty=k%3Dv".to_owned(),
    ] {
        let body = json_of(h.get(&t, &format!("{EVENTS}?{q}")).await, StatusCode::OK).await;
        assert_eq!(body["items"].as_array().unwrap().len(), 1, "{q}");
        assert!(body.get("nextSyncToken").is_none() && body.get("nextPageToken").is_none(), "{q}: {body}");
    }
    // A window start alone still syncs.
    let body = json_of(h.get(&t, &format!("{EVENTS}?timeMin=2024-01-01T00:00:00Z")).await, StatusCode::OK).await;
    assert!(body["nextSyncToken"].is_string());
}

async fn token(h: &Harness, t: &str, query: &str) -> String {
    let body = json_of(h.get(t, &format!("{EVENTS}?{query}")).await, StatusCode::OK).await;
    body["nextSyncToken"].as_str().expect("a sync token").to_owned()
}

async fn refused(h: &Harness, t: &str, query: &str) {
    let body = json_of(h.get(t, &format!("{EVENTS}?{query}")).await, StatusCode::BAD_REQUEST).await;
    let e = &body["error"]["errors"][0];
    assert_eq!(e["reason"], "invalid", "{query}: {body}");
    assert_eq!(e["location"], "syncToken");
    assert_eq!(body["error"]["message"], "Sync token cannot be used with other request restrictions.");
}

#[tokio::test]
async fn sync_tokens_only_replay_under_the_shape_they_were_minted_for() {
    let h = start().await;
    let t = h.google_account("shape@example.com").await;
    insert(&h, &t, single(3)).await;

    let plain = token(&h, &t, "").await;
    refused(&h, &t, &format!("singleEvents=true&syncToken={plain}")).await;
    refused(&h, &t, &format!("showDeleted=true&syncToken={plain}")).await;
    json_of(h.get(&t, &format!("{EVENTS}?singleEvents=false&syncToken={plain}")).await, StatusCode::OK).await;

    let expanded = token(&h, &t, "singleEvents=true").await;
    refused(&h, &t, &format!("syncToken={expanded}")).await;
    json_of(h.get(&t, &format!("{EVENTS}?singleEvents=true&syncToken={expanded}")).await, StatusCode::OK).await;

    let deleted = token(&h, &t, "showDeleted=true").await;
    refused(&h, &t, &format!("syncToken={deleted}")).await;
    json_of(h.get(&t, &format!("{EVENTS}?showDeleted=true&syncToken={deleted}")).await, StatusCode::OK).await;

    // timeMin cannot be repeated next to a token: the token carries it.
    let windowed = token(&h, &t, "timeMin=2024-01-01T00:00:00Z").await;
    refused(&h, &t, &format!("syncToken={windowed}&timeMin=2024-01-01T00:00:00Z")).await;
    let inc = json_of(h.get(&t, &format!("{EVENTS}?syncToken={windowed}")).await, StatusCode::OK).await;
    assert!(inc["nextSyncToken"].is_string());
}

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Pages with the client's own `list_next`, the way a Python sync loop would.
const RAGGED_SCRIPT: &str = r#"
import json, sys
from googleapiclient.discovery import build
from google.oauth2.credentials import Credentials

base, token = sys.argv[1], sys.argv[2]
svc = build("calendar", "v3", credentials=Credentials(token), static_discovery=True,
            client_options={"api_endpoint": base + "/google/calendar/v3/"})
ids, empty, pages, sync = [], 0, 0, None
req = svc.events().list(calendarId="primary", maxResults=4)
while req is not None:
    resp = req.execute()
    pages += 1
    ids += [i["id"] for i in resp["items"]]
    if not resp["items"] and "nextPageToken" in resp:
        empty += 1
    sync = resp.get("nextSyncToken")
    req = svc.events().list_next(req, resp)
print(json.dumps({"ids": ids, "empty": empty, "pages": pages, "sync": sync}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_follows_ragged_pages_to_the_sync_token() {
    let h = start().await;
    let t = h.google_account("py-ragged@example.com").await;
    for i in 0..30 {
        insert(&h, &t, single(i)).await;
    }
    h.control("/_sandbox/paging", json!({"provider": "google", "mode": "ragged"})).await;
    let base = h.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).args(["-c", RAGGED_SCRIPT, &base, &t]).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    let ids: Vec<Value> = v["ids"].as_array().unwrap().clone();
    exactly_once(&ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(), 30);
    assert!(v["pages"].as_u64().unwrap() > 8, "{v}");
    assert!(v["empty"].as_u64().unwrap() > 0, "{v}");
    assert!(v["sync"].is_string());
}
