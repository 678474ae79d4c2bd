//! Graph subscriptions over HTTP: validation handshake, change and lifecycle
//! notifications, renewal and deletion.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";

fn sub_body(url: &str, lifecycle: Option<&str>, minutes: i64) -> Value {
    let exp = (chrono_like_now() + minutes * 60_000).to_string();
    let mut v = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": "me/events",
        "expirationDateTime": iso(exp.parse().unwrap()),
        "clientState": "secret-state",
    });
    if let Some(l) = lifecycle {
        v["lifecycleNotificationUrl"] = json!(l);
    }
    v
}

fn chrono_like_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Epoch ms to `YYYY-MM-DDTHH:MM:SSZ` without a date library.
fn iso(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn event() -> Value {
    json!({"subject": "S", "start": {"dateTime": "2024-01-05T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-01-05T10:00:00", "timeZone": "UTC"}})
}

#[tokio::test]
async fn subscription_validates_and_delivers_change_notifications() {
    let h = start().await;
    let t = h.ms_account("subs@example.com").await;
    let (base, mut rx) = receiver().await;
    let sub = json_of(
        h.send(Method::POST, &t, &format!("{G}/subscriptions"), Some(sub_body(&format!("{base}/ok"), None, 60))).await,
        StatusCode::CREATED,
    )
    .await;
    let handshake = next_received(&mut rx).await;
    assert!(handshake.query.starts_with("validationToken="), "{handshake:?}");
    assert_eq!(sub["clientState"], "secret-state");
    assert_eq!(sub["changeType"], "created,updated,deleted");
    assert_eq!(sub["resource"], "me/events");
    let sid = sub["id"].as_str().unwrap().to_owned();

    let ev =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(event())).await, StatusCode::CREATED).await;
    let eid = ev["id"].as_str().unwrap().to_owned();
    let n = next_received(&mut rx).await;
    let body: Value = serde_json::from_str(&n.body).unwrap();
    let item = &body["value"][0];
    assert_eq!(item["subscriptionId"], sid.as_str());
    assert_eq!(item["clientState"], "secret-state");
    assert_eq!(item["changeType"], "created");
    assert_eq!(item["resourceData"]["id"], eid.as_str());
    assert_eq!(item["resourceData"]["@odata.type"], "#Microsoft.Graph.Event");
    assert_eq!(item["resourceData"]["@odata.etag"], ev["@odata.etag"]);
    assert!(item["resource"].as_str().unwrap().ends_with(&format!("/Events/{eid}")));
    assert!(item["tenantId"].is_string() && item["subscriptionExpirationDateTime"].is_string());

    let r = h.send(Method::PATCH, &t, &format!("{G}/me/events/{eid}"), Some(json!({"subject": "T"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let n: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(n["value"][0]["changeType"], "updated");

    // Renew, then delete: 204 and no more notifications.
    let renewed = json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{G}/subscriptions/{sid}"),
            Some(json!({"expirationDateTime": iso(chrono_like_now() + 120 * 60_000)})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(renewed["expirationDateTime"], sub["expirationDateTime"]);
    let r = h.send(Method::DELETE, &t, &format!("{G}/subscriptions/{sid}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = h.send(Method::DELETE, &t, &format!("{G}/subscriptions/{sid}"), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = h.send(Method::DELETE, &t, &format!("{G}/me/events/{eid}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A second subscription's handshake arrives; the deleted one sent nothing before it.
    let (base2, mut rx2) = receiver().await;
    let r =
        h.send(Method::POST, &t, &format!("{G}/subscriptions"), Some(sub_body(&format!("{base2}/ok"), None, 60))).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    next_received(&mut rx2).await;
    assert!(rx.try_recv().is_err(), "deleted subscription notified");
}

#[tokio::test]
async fn failed_handshakes_and_bad_expirations_are_400() {
    let h = start().await;
    let t = h.ms_account("subs-bad@example.com").await;
    let (base, _rx) = receiver().await;
    let url = format!("{G}/subscriptions");
    for body in [
        sub_body(&format!("{base}/noecho"), None, 60),
        sub_body(&format!("{base}/ok"), Some(&format!("{base}/noecho")), 60),
        sub_body(&format!("{base}/ok"), None, 10_081),
        sub_body(&format!("{base}/ok"), None, -5),
        sub_body("https://example.com/hook", None, 60),
    ] {
        let r = h.send(Method::POST, &t, &url, Some(body.clone())).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let mut bad = sub_body(&format!("{base}/ok"), None, 60);
    bad["changeType"] = json!("created,moved");
    assert_eq!(h.send(Method::POST, &t, &url, Some(bad)).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn lifecycle_events_reach_the_lifecycle_url_and_pause_until_reauthorized() {
    let h = start().await;
    let t = h.ms_account("life@example.com").await;
    let (base, mut rx) = receiver().await;
    let sub = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{G}/subscriptions"),
            Some(sub_body(&format!("{base}/ok"), Some(&format!("{base}/ok?lifecycle=1")), 60)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // Both URLs were validated.
    next_received(&mut rx).await;
    assert!(next_received(&mut rx).await.query.contains("lifecycle=1"));
    let sid = sub["id"].as_str().unwrap().to_owned();
    h.control("/_sandbox/graph-lifecycle", json!({"subscription_id": sid, "event": "reauthorizationRequired"})).await;
    let life = next_received(&mut rx).await;
    assert!(life.query.contains("lifecycle=1"));
    let v: Value = serde_json::from_str(&life.body).unwrap();
    assert_eq!(v["value"][0]["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(v["value"][0]["subscriptionId"], sid.as_str());
    assert_eq!(v["value"][0]["clientState"], "secret-state");

    // Paused: this change is not notified; after reauthorize the next one is.
    let first =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(event())).await, StatusCode::CREATED).await;
    let r = h.send(Method::POST, &t, &format!("{G}/subscriptions/{sid}/reauthorize"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let second =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(event())).await, StatusCode::CREATED).await;
    let n: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(n["value"][0]["resourceData"]["id"], second["id"]);
    assert_ne!(n["value"][0]["resourceData"]["id"], first["id"]);

    h.control("/_sandbox/graph-lifecycle", json!({"subscription_id": sid, "event": "subscriptionRemoved"})).await;
    let v: Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(v["value"][0]["lifecycleEvent"], "subscriptionRemoved");
    let r = h.get(&t, &format!("{G}/subscriptions/{sid}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
