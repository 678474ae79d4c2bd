//! Webhook coalescing: changes within the window reach the receiver as one delivery (Google
//! one `exists` per burst, Graph one `value` array), and `coalesce_ms: 0` sends each change
//! on its own.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";
const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";

fn google_event(summary: &str) -> Value {
    json!({"summary": summary,
        "start": {"dateTime": "2024-01-05T09:00:00Z"}, "end": {"dateTime": "2024-01-05T10:00:00Z"}})
}

fn graph_event(subject: &str) -> Value {
    json!({"subject": subject, "start": {"dateTime": "2024-01-05T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-01-05T10:00:00", "timeZone": "UTC"}})
}

fn number(r: &Received) -> u64 {
    r.headers["x-goog-message-number"].parse().unwrap()
}

#[tokio::test]
async fn graph_notifications_within_the_window_share_one_value_array() {
    let h = start().await;
    let t = h.ms_account("burst@example.com").await;
    let (base, mut rx) = receiver().await;
    let exp = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sub = json!({"changeType": "created,updated,deleted", "notificationUrl": format!("{base}/ok"),
        "resource": "me/events", "expirationDateTime": exp, "clientState": "c"});
    json_of(h.send(Method::POST, &t, &format!("{G}/subscriptions"), Some(sub)).await, StatusCode::CREATED).await;
    assert!(next_received(&mut rx).await.query.starts_with("validationToken="));

    // A window too wide to close by itself: the test sends the batch when it is ready.
    assert_eq!(h.control("/_sandbox/push", json!({"coalesce_ms": 600_000})).await["coalesce_ms"], 600_000);
    let mut ids = Vec::new();
    for i in 0..3 {
        let ev = json_of(
            h.send(Method::POST, &t, &format!("{G}/me/events"), Some(graph_event(&format!("e{i}")))).await,
            StatusCode::CREATED,
        )
        .await;
        ids.push(ev["id"].as_str().unwrap().to_owned());
    }
    assert!(rx.try_recv().is_err(), "nothing goes out while the window is open");
    assert_eq!(h.control("/_sandbox/push", json!({"flush": true})).await["flushed"], 1);
    let batch: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    let got: Vec<_> = batch["value"].as_array().unwrap().iter().map(|n| n["resourceData"]["id"].clone()).collect();
    assert_eq!(got, ids, "one delivery, the three notifications in change order");

    // Without coalescing the next change goes out alone.
    h.control("/_sandbox/push", json!({"coalesce_ms": 0})).await;
    let ev = json_of(
        h.send(Method::POST, &t, &format!("{G}/me/events"), Some(graph_event("alone"))).await,
        StatusCode::CREATED,
    )
    .await;
    let single: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(single["value"].as_array().unwrap().len(), 1);
    assert_eq!(single["value"][0]["resourceData"]["id"], ev["id"]);
}

#[tokio::test]
async fn google_sends_one_exists_per_burst() {
    let h = start().await;
    let t = h.google_account("burst@example.com").await;
    let (base, mut rx) = receiver().await;
    let watch = json!({"id": "burst-1", "type": "web_hook", "address": format!("{base}/ok")});
    json_of(h.send(Method::POST, &t, &format!("{EVENTS}/watch"), Some(watch)).await, StatusCode::OK).await;
    assert_eq!(next_received(&mut rx).await.headers["x-goog-resource-state"], "sync");

    h.control("/_sandbox/push", json!({"coalesce_ms": 600_000})).await;
    for i in 0..3 {
        let r = h.send(Method::POST, &t, EVENTS, Some(google_event(&format!("e{i}")))).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert!(rx.try_recv().is_err(), "nothing goes out while the window is open");
    assert_eq!(h.control("/_sandbox/push", json!({"flush": true})).await["flushed"], 1, "one held message");
    let burst = next_received(&mut rx).await;
    assert_eq!(burst.headers["x-goog-resource-state"], "exists");

    // Without coalescing the next change goes out alone, numbered after the burst's newest.
    h.control("/_sandbox/push", json!({"coalesce_ms": 0})).await;
    let r = h.send(Method::POST, &t, EVENTS, Some(google_event("marker"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let marker = next_received(&mut rx).await;
    assert!(number(&marker) > number(&burst));
}

#[tokio::test]
async fn graph_batches_are_capped_and_the_window_closes_by_itself() {
    let h = start().await;
    let t = h.ms_account("many@example.com").await;
    let (base, mut rx) = receiver().await;
    let exp = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sub = json!({"changeType": "created", "notificationUrl": format!("{base}/ok"),
        "resource": "me/events", "expirationDateTime": exp, "clientState": "c"});
    json_of(h.send(Method::POST, &t, &format!("{G}/subscriptions"), Some(sub)).await, StatusCode::CREATED).await;
    assert!(next_received(&mut rx).await.query.starts_with("validationToken="));
    h.control("/_sandbox/push", json!({"coalesce_ms": 600_000})).await;
    for i in 0..101 {
        let r = h.send(Method::POST, &t, &format!("{G}/me/events"), Some(graph_event(&format!("e{i}")))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let full: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(full["value"].as_array().unwrap().len(), 100, "a full batch goes out without waiting");
    assert_eq!(h.control("/_sandbox/push", json!({"flush": true})).await["flushed"], 1);
    let rest: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(rest["value"].as_array().unwrap().len(), 1);

    // A short window closes on its own.
    h.control("/_sandbox/push", json!({"coalesce_ms": 50})).await;
    let r = h.send(Method::POST, &t, &format!("{G}/me/events"), Some(graph_event("late"))).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let late: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(late["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn push_control_validates_coalescing() {
    let h = start().await;
    let r = reqwest::Client::new()
        .post(h.url("/_sandbox/push"))
        .json(&json!({"coalesce_ms": 10_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = reqwest::Client::new().post(h.url("/_sandbox/push")).json(&json!({"count": 2})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a count without a mode");
}
