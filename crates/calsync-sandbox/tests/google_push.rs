//! Google push channels over HTTP: watch, `sync` then `exists` deliveries with the real
//! headers, 5xx retry, delivery control, stop permission and expiry.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";

fn event(summary: &str) -> Value {
    json!({"summary": summary,
        "start": {"dateTime": "2024-01-05T09:00:00Z"}, "end": {"dateTime": "2024-01-05T10:00:00Z"}})
}

async fn watch(h: &Harness, t: &str, id: &str, address: &str) -> Value {
    json_of(
        h.send(
            Method::POST,
            t,
            &format!("{EVENTS}/watch"),
            Some(json!({"id": id, "type": "web_hook", "address": address, "token": "tok-1"})),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

async fn insert(h: &Harness, t: &str, summary: &str) {
    let r = h.send(Method::POST, t, EVENTS, Some(event(summary))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

fn number(r: &Received) -> u64 {
    r.headers["x-goog-message-number"].parse().unwrap()
}

#[tokio::test]
async fn watch_sends_sync_then_exists_with_google_headers() {
    let h = start().await;
    let t = h.google_account("push@example.com").await;
    let (base, mut rx) = receiver().await;
    let ch = watch(&h, &t, "chan-1", &format!("{base}/ok")).await;
    assert_eq!(ch["kind"], "api#channel");
    assert_eq!(ch["id"], "chan-1");
    assert_eq!(ch["token"], "tok-1");
    assert!(ch["expiration"].as_str().unwrap().parse::<i64>().is_ok(), "int64 as string");
    let rid = ch["resourceId"].as_str().unwrap().to_owned();

    let sync = next_received(&mut rx).await;
    assert_eq!(sync.headers["x-goog-resource-state"], "sync");
    assert_eq!(number(&sync), 1);
    assert_eq!(sync.headers["x-goog-channel-id"], "chan-1");
    assert_eq!(sync.headers["x-goog-channel-token"], "tok-1");
    assert_eq!(sync.headers["x-goog-resource-id"], rid.as_str());
    assert_eq!(sync.headers["x-goog-resource-uri"], ch["resourceUri"].as_str().unwrap());
    assert!(sync.headers["x-goog-channel-expiration"].ends_with(" GMT"));
    assert!(sync.headers["user-agent"].starts_with("APIs-Google"));
    assert!(sync.body.is_empty());

    insert(&h, &t, "a").await;
    let first = next_received(&mut rx).await;
    assert_eq!(first.headers["x-goog-resource-state"], "exists");
    insert(&h, &t, "b").await;
    let second = next_received(&mut rx).await;
    assert!(number(&first) > 1 && number(&second) > number(&first));

    // Duplicate the next delivery, then drop the one after.
    h.control("/_sandbox/push", json!({"mode": "duplicate", "count": 1})).await;
    insert(&h, &t, "c").await;
    let d1 = next_received(&mut rx).await;
    let d2 = next_received(&mut rx).await;
    assert_eq!(number(&d1), number(&d2));
    // Each insert its own message, so the drop takes exactly one of them.
    h.control("/_sandbox/push", json!({"mode": "drop", "count": 1, "coalesce_ms": 0})).await;
    insert(&h, &t, "d").await;
    insert(&h, &t, "e").await;
    let after_drop = next_received(&mut rx).await;
    // The dropped message's number was used: the next one skips past it.
    assert!(number(&after_drop) >= number(&d1) + 2, "{} vs {}", number(&after_drop), number(&d1));

    // Stop needs the right resourceId; afterwards the id is unknown.
    let stop = "/google/calendar/v3/channels/stop";
    let wrong = h.send(Method::POST, &t, stop, Some(json!({"id": "chan-1", "resourceId": "nope"}))).await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    let other = h.google_account("other@example.com").await;
    let r = h.send(Method::POST, &other, stop, Some(json!({"id": "chan-1", "resourceId": rid}))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another user cannot stop it");
    let r = h.send(Method::POST, &t, stop, Some(json!({"id": "chan-1", "resourceId": rid}))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = h.send(Method::POST, &t, stop, Some(json!({"id": "chan-1", "resourceId": rid}))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn receiver_5xx_is_retried_and_channels_expire() {
    let h = start().await;
    let t = h.google_account("retry@example.com").await;
    let (base, mut rx) = receiver().await;
    watch(&h, &t, "flaky-1", &format!("{base}/flaky")).await;
    let a = next_received(&mut rx).await;
    let b = next_received(&mut rx).await;
    // The first attempt got 503; the same message came again.
    assert_eq!(a.headers["x-goog-resource-state"], "sync");
    assert_eq!(b.headers["x-goog-resource-state"], "sync");
    assert_eq!(number(&a), number(&b));

    // Default expiry is 7 days; after 8 days the channel is silent, a new one works.
    h.advance(8 * 24 * 3600).await;
    let t = h.google_account("retry@example.com").await; // the old access token expired too
    let (base2, mut rx2) = receiver().await;
    watch(&h, &t, "fresh-1", &format!("{base2}/ok")).await;
    assert_eq!(next_received(&mut rx2).await.headers["x-goog-resource-state"], "sync");
    insert(&h, &t, "x").await;
    assert_eq!(next_received(&mut rx2).await.headers["x-goog-resource-state"], "exists");
    insert(&h, &t, "y").await;
    next_received(&mut rx2).await;
    assert!(rx.try_recv().is_err(), "expired channel got a delivery");

    // Reused ids, non-loopback or https addresses and wrong types are refused.
    for (id, addr, kind) in [
        ("fresh-1", format!("{base2}/ok"), "web_hook"),
        ("n-1", "http://example.com/hook".to_owned(), "web_hook"),
        ("n-2", "https://example.com/hook".to_owned(), "web_hook"),
        ("n-3", format!("{base2}/ok"), "webhook"),
    ] {
        let r = h
            .send(Method::POST, &t, &format!("{EVENTS}/watch"), Some(json!({"id": id, "type": kind, "address": addr})))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{id} {addr} {kind}");
    }
}

#[tokio::test]
async fn calendar_list_watch_pushes_on_calendar_changes() {
    let h = start().await;
    let t = h.google_account("listwatch@example.com").await;
    let (base, mut rx) = receiver().await;
    let ch = json_of(
        h.send(
            Method::POST,
            &t,
            "/google/calendar/v3/users/me/calendarList/watch",
            Some(json!({"id": "list-1", "type": "web_hook", "address": format!("{base}/ok")})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(ch["resourceUri"].as_str().unwrap().contains("/users/me/calendarList"));
    assert_eq!(next_received(&mut rx).await.headers["x-goog-resource-state"], "sync");
    // Event changes do not concern the calendar list; a new calendar does.
    insert(&h, &t, "not for the list").await;
    let r = h.send(Method::POST, &t, "/google/calendar/v3/calendars", Some(json!({"summary": "New"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let n = next_received(&mut rx).await;
    assert_eq!(n.headers["x-goog-resource-state"], "exists");
    assert_eq!(n.headers["x-goog-channel-id"], "list-1");
    assert!(rx.try_recv().is_err(), "exactly one push for the new calendar");
}
