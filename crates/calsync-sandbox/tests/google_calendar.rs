//! Google Calendar v3 events, sync tokens and faults against the sandbox over HTTP.

mod common;

use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";

fn event(summary: &str, hour: u32) -> Value {
    json!({
        "summary": summary,
        "start": {"dateTime": format!("2024-01-05T{hour:02}:00:00Z")},
        "end": {"dateTime": format!("2024-01-05T{hour:02}:30:00Z")},
    })
}

async fn insert(h: &Harness, t: &str, body: Value) -> Value {
    json_of(h.send(Method::POST, t, EVENTS, Some(body)).await, StatusCode::OK).await
}

/// Parameters whose listings end without a nextSyncToken.
const NO_SYNC: &[&str] =
    &["orderBy", "q", "iCalUID", "updatedMin", "timeMax", "privateExtendedProperty", "sharedExtendedProperty"];

/// Follows nextPageToken to the end; returns (items, nextSyncToken, pages). The last page
/// carries a nextSyncToken unless the query has a parameter in [`NO_SYNC`] (then the
/// returned token is empty); every other page carries only a nextPageToken.
async fn list_all(h: &Harness, t: &str, query: &str) -> (Vec<Value>, String, usize) {
    let syncable = !query.split('&').filter_map(|kv| kv.split_once('=')).any(|(k, _)| NO_SYNC.contains(&k));
    let mut items = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{EVENTS}?{query}");
        if let Some(p) = &page_token {
            path.push_str(&format!("&pageToken={p}"));
        }
        let body = json_of(h.get(t, &path).await, StatusCode::OK).await;
        pages += 1;
        assert_eq!(body["kind"], "calendar#events");
        let has_page = body.get("nextPageToken").is_some();
        let has_sync = body.get("nextSyncToken").is_some();
        assert!(!(has_page && has_sync), "at most one token: {body}");
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        if !has_page {
            assert_eq!(has_sync, syncable, "nextSyncToken on the last page only when syncable: {body}");
            return (items, body["nextSyncToken"].as_str().unwrap_or_default().to_owned(), pages);
        }
        page_token = Some(body["nextPageToken"].as_str().unwrap().to_owned());
    }
}

#[tokio::test]
async fn insert_get_update_patch_delete_follow_google_semantics() {
    let h = start().await;
    let t = h.google_account("crud@example.com").await;
    let mut body = event("Standup", 9);
    body["description"] = json!("daily");
    body["attendees"] = json!([{"email": "a@example.com"}, {"email": "b@example.com"}]);
    let created = insert(&h, &t, body).await;
    assert_eq!(created["kind"], "calendar#event");
    assert_eq!(created["status"], "confirmed");
    assert_eq!(created["sequence"], 0);
    assert!(created["etag"].as_str().unwrap().starts_with('"'));
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)));
    assert_eq!(created["start"]["dateTime"], "2024-01-05T09:00:00Z");

    let path = format!("{EVENTS}/{id}");
    let got = json_of(h.get(&t, &path).await, StatusCode::OK).await;
    assert_eq!(got["etag"], created["etag"]);

    // PATCH replaces arrays wholesale and keeps other fields.
    let patched = json_of(
        h.send(Method::PATCH, &t, &path, Some(json!({"attendees": [{"email": "c@example.com"}]}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["attendees"].as_array().unwrap().len(), 1);
    assert_eq!(patched["description"], "daily");
    assert_ne!(patched["etag"], created["etag"]);

    // PUT is a full replacement: omitted fields are cleared; time change bumps sequence.
    let replaced = json_of(h.send(Method::PUT, &t, &path, Some(event("Standup v2", 10))).await, StatusCode::OK).await;
    assert!(replaced.get("description").is_none());
    assert!(replaced.get("attendees").is_none());
    assert_eq!(replaced["sequence"], 1);

    let del = h.send(Method::DELETE, &t, &path, None).await;
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let again = json_of(h.send(Method::DELETE, &t, &path, None).await, StatusCode::GONE).await;
    assert_eq!(again["error"]["errors"][0]["reason"], "deleted");
    let cancelled = json_of(h.get(&t, &path).await, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled");
}

#[tokio::test]
async fn stale_if_match_gets_412_and_fresh_etag_succeeds() {
    let h = start().await;
    let t = h.google_account("etag@example.com").await;
    let created = insert(&h, &t, event("A", 9)).await;
    let path = format!("{EVENTS}/{}", created["id"].as_str().unwrap());
    let old = created["etag"].as_str().unwrap().to_owned();
    json_of(h.send(Method::PATCH, &t, &path, Some(json!({"summary": "B"}))).await, StatusCode::OK).await;
    let resp = h
        .http
        .patch(h.url(&path))
        .bearer_auth(&t)
        .header("If-Match", &old)
        .json(&json!({"summary": "C"}))
        .send()
        .await
        .unwrap();
    let body = json_of(resp, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["error"]["errors"][0]["reason"], "conditionNotMet");
    let current = json_of(h.get(&t, &path).await, StatusCode::OK).await;
    assert_eq!(current["summary"], "B");
    let resp = h
        .http
        .delete(h.url(&path))
        .bearer_auth(&t)
        .header("If-Match", current["etag"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn client_ids_are_validated_and_reuse_is_409_duplicate() {
    let h = start().await;
    let t = h.google_account("dup@example.com").await;
    let mut body = event("A", 9);
    body["id"] = json!("abcdef0123456789");
    insert(&h, &t, body.clone()).await;
    let dup = json_of(h.send(Method::POST, &t, EVENTS, Some(body.clone())).await, StatusCode::CONFLICT).await;
    assert_eq!(dup["error"]["errors"][0]["reason"], "duplicate");
    assert_eq!(dup["error"]["code"], 409);
    body["id"] = json!("Has-Upper-And-Dash");
    json_of(h.send(Method::POST, &t, EVENTS, Some(body)).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn pagination_hands_out_exactly_one_token_per_page() {
    let h = start().await;
    let t = h.google_account("page@example.com").await;
    for i in 0..5 {
        insert(&h, &t, event(&format!("E{i}"), 8 + i)).await;
    }
    let (items, _, pages) = list_all(&h, &t, "maxResults=2").await;
    assert_eq!(pages, 3);
    let mut ids: Vec<_> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);

    let (ordered, _, _) = list_all(
        &h,
        &t,
        "maxResults=2&singleEvents=true&orderBy=startTime&timeMin=2024-01-05T09:00:00Z&timeMax=2024-01-05T12:00:00Z",
    )
    .await;
    let summaries: Vec<_> = ordered.iter().map(|i| i["summary"].as_str().unwrap()).collect();
    assert_eq!(summaries, ["E1", "E2", "E3"]);

    // A page token only continues the identical request.
    let first = json_of(h.get(&t, &format!("{EVENTS}?maxResults=2")).await, StatusCode::OK).await;
    let tok = first["nextPageToken"].as_str().unwrap();
    json_of(h.get(&t, &format!("{EVENTS}?maxResults=3&pageToken={tok}")).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn incremental_sync_returns_changes_and_minimal_cancelled_stubs() {
    let h = start().await;
    let t = h.google_account("sync@example.com").await;
    let a = insert(&h, &t, event("A", 9)).await;
    let b = insert(&h, &t, event("B", 10)).await;
    let (items, sync, _) = list_all(&h, &t, "").await;
    assert_eq!(items.len(), 2);

    let unchanged = json_of(h.get(&t, &format!("{EVENTS}?syncToken={sync}")).await, StatusCode::OK).await;
    assert_eq!(unchanged["items"].as_array().unwrap().len(), 0);
    assert!(unchanged["nextSyncToken"].is_string());

    let a_path = format!("{EVENTS}/{}", a["id"].as_str().unwrap());
    json_of(h.send(Method::PATCH, &t, &a_path, Some(json!({"summary": "A2"}))).await, StatusCode::OK).await;
    let b_path = format!("{EVENTS}/{}", b["id"].as_str().unwrap());
    assert_eq!(h.send(Method::DELETE, &t, &b_path, None).await.status(), StatusCode::NO_CONTENT);
    insert(&h, &t, event("C", 11)).await;

    let (changes, _, _) = list_all(&h, &t, &format!("syncToken={sync}&maxResults=1")).await;
    assert_eq!(changes.len(), 3);
    let stub = changes.iter().find(|c| c["id"] == b["id"]).unwrap();
    let mut keys: Vec<_> = stub.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["etag", "id", "kind", "status"]);
    assert_eq!(stub["status"], "cancelled");
    assert!(changes.iter().any(|c| c["summary"] == "A2"));
    assert!(changes.iter().any(|c| c["summary"] == "C"));

    // A full list without showDeleted hides the deletion.
    let (full, _, _) = list_all(&h, &t, "").await;
    assert_eq!(full.len(), 2);
}

#[tokio::test]
async fn sync_token_with_window_params_is_400() {
    let h = start().await;
    let t = h.google_account("w@example.com").await;
    let (_, sync, _) = list_all(&h, &t, "").await;
    let body = json_of(
        h.get(&t, &format!("{EVENTS}?syncToken={sync}&timeMin=2024-01-01T00:00:00Z")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["message"], "Sync token cannot be used with other request restrictions.");
}

#[tokio::test]
async fn expired_cursors_answer_410_full_sync_required() {
    let h = start().await;
    let t = h.google_account("x@example.com").await;
    insert(&h, &t, event("A", 9)).await;
    let (_, sync, _) = list_all(&h, &t, "").await;
    h.control("/_sandbox/expire-cursors", json!({"provider": "google", "email": "x@example.com"})).await;
    let body = json_of(h.get(&t, &format!("{EVENTS}?syncToken={sync}")).await, StatusCode::GONE).await;
    assert_eq!(
        body,
        json!({"error": {"errors": [{"domain": "calendar", "reason": "fullSyncRequired",
            "message": "Sync token is no longer valid, a full sync is required.",
            "locationType": "parameter", "location": "syncToken"}],
            "code": 410, "message": "Sync token is no longer valid, a full sync is required."}})
    );
    // A fresh full sync works again.
    list_all(&h, &t, "").await;
}

#[tokio::test]
async fn time_window_filters_on_end_and_start_and_empty_range_is_400() {
    let h = start().await;
    let t = h.google_account("win@example.com").await;
    insert(&h, &t, event("early", 8)).await;
    insert(&h, &t, event("mid", 10)).await;
    insert(&h, &t, event("late", 12)).await;
    // 08:00-08:30 ends exactly at timeMin: excluded; 12:00 starts at timeMax: excluded.
    let (items, _, _) = list_all(&h, &t, "timeMin=2024-01-05T08:30:00Z&timeMax=2024-01-05T12:00:00Z").await;
    let names: Vec<_> = items.iter().map(|i| i["summary"].as_str().unwrap()).collect();
    assert_eq!(names, ["mid"]);
    let body = json_of(
        h.get(&t, &format!("{EVENTS}?timeMin=2024-01-05T12:00:00Z&timeMax=2024-01-05T08:00:00Z")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["errors"][0]["reason"], "timeRangeEmpty");
    json_of(h.get(&t, &format!("{EVENTS}?orderBy=startTime")).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn extended_property_filters_match_private_and_shared() {
    let h = start().await;
    let t = h.google_account("xp@example.com").await;
    let mut a = event("A", 9);
    a["extendedProperties"] = json!({"private": {"calsyncId": "42"}});
    insert(&h, &t, a).await;
    let mut b = event("B", 10);
    b["extendedProperties"] = json!({"shared": {"calsyncId": "42"}});
    insert(&h, &t, b).await;
    let (items, _, _) = list_all(&h, &t, "privateExtendedProperty=calsyncId%3D42").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["summary"], "A");
}

#[tokio::test]
async fn status_fault_returns_google_rate_limit_body_without_retry_after_then_clears() {
    let h = start().await;
    let t = h.google_account("f@example.com").await;
    // Google's rate-limit answers carry no Retry-After, so a Google fault cannot ask for one.
    let spec = json!({"provider": "google", "method": "GET", "path_regex": "/events$", "count": 2,
        "kind": "status", "status": 429, "retry_after": 7});
    let refused = h.http.post(h.url("/_sandbox/faults")).json(&spec).send().await.unwrap();
    let body = json_of(refused, StatusCode::BAD_REQUEST).await;
    assert!(body["error"].as_str().unwrap().contains("retry_after"), "{body}");
    h.fault(json!({"provider": "google", "method": "GET", "path_regex": "/events$", "count": 2,
        "kind": "status", "status": 429}))
        .await;
    for _ in 0..2 {
        let resp = h.get(&t, EVENTS).await;
        assert!(resp.headers().get("retry-after").is_none());
        let body = json_of(resp, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");
        assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
    }
    json_of(h.get(&t, EVENTS).await, StatusCode::OK).await;
    let counts = json_of(h.http.get(h.url("/_sandbox/requests")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(counts["requests"]["GET /google/calendar/v3/calendars/{calendar_id}/events"], 3);
}

#[tokio::test]
async fn drop_after_commit_loses_the_reply_but_keeps_the_write() {
    let h = start().await;
    let t = h.google_account("d@example.com").await;
    h.fault(json!({"provider": "google", "method": "POST", "count": 1, "kind": "drop_after_commit"})).await;
    let mut body = event("A", 9);
    body["id"] = json!("a0b1c2d3e4f5");
    let lost = h.http.post(h.url(EVENTS)).bearer_auth(&t).json(&body).send().await;
    let failed = match lost {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the reply must not arrive intact");
    // The retry with the same id sees the committed write.
    let dup = json_of(h.send(Method::POST, &t, EVENTS, Some(body)).await, StatusCode::CONFLICT).await;
    assert_eq!(dup["error"]["errors"][0]["reason"], "duplicate");
}

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Google's own client retries 403 `userRateLimitExceeded` / 429 with its exponential
/// backoff when asked to (`num_retries`); no Retry-After is involved.
const BACKOFF_SCRIPT: &str = r#"
import json, sys, time, urllib.request
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from google.oauth2.credentials import Credentials

base, token = sys.argv[1], sys.argv[2]
svc = build("calendar", "v3", credentials=Credentials(token), static_discovery=True,
            client_options={"api_endpoint": base + "/google/calendar/v3/"})
began = time.time()
listed = svc.events().list(calendarId="primary").execute(num_retries=2)
fault = {"provider": "google", "method": "GET", "path_regex": "/events$", "count": 1,
         "kind": "status", "status": 403, "reason": "rateLimitExceeded"}
urllib.request.urlopen(urllib.request.Request(base + "/_sandbox/faults", json.dumps(fault).encode(),
                                              {"Content-Type": "application/json"}))
try:
    svc.events().list(calendarId="primary").execute()
    refused = None
except HttpError as e:
    refused = {"status": e.resp.status, "reason": e.error_details[0]["reason"],
               "retry_after": e.resp.get("retry-after")}
print(json.dumps({"kind": listed["kind"], "waited": time.time() - began, "refused": refused}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_backs_off_on_rate_limits_without_retry_after() {
    let h = start().await;
    let t = h.google_account("backoff@example.com").await;
    h.fault(json!({"provider": "google", "method": "GET", "path_regex": "/events$", "count": 1,
        "kind": "status", "status": 403, "reason": "userRateLimitExceeded"}))
        .await;
    h.fault(json!({"provider": "google", "method": "GET", "path_regex": "/events$", "count": 1,
        "kind": "status", "status": 429}))
        .await;
    let base = h.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).args(["-c", BACKOFF_SCRIPT, &base, &t]).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    assert_eq!(v["kind"], "calendar#events", "retried through both rate-limit answers");
    assert!(v["waited"].as_f64().unwrap() > 0.0);
    assert_eq!(v["refused"], json!({"status": 403, "reason": "rateLimitExceeded", "retry_after": null}));
}
