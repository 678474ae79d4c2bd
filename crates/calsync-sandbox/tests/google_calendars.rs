//! Google secondary calendars, calendarList sync, events.move, freeBusy, quickAdd,
//! sync-token age and tombstone retention over HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const V3: &str = "/google/calendar/v3";

fn event(summary: &str, from: &str, to: &str) -> Value {
    json!({"summary": summary, "start": {"dateTime": from}, "end": {"dateTime": to}})
}

#[tokio::test]
async fn secondary_calendars_appear_and_disappear_in_calendar_list_sync() {
    let h = start().await;
    let t = h.google_account("cals@example.com").await;
    let list = json_of(h.get(&t, &format!("{V3}/users/me/calendarList")).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let sync = list["nextSyncToken"].as_str().unwrap().to_owned();

    let cal = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{V3}/calendars"),
            Some(json!({"summary": "Team", "timeZone": "Europe/Paris"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cal["kind"], "calendar#calendar");
    let cid = cal["id"].as_str().unwrap().to_owned();
    assert!(cid.ends_with("@group.calendar.google.com"));
    let inc = json_of(h.get(&t, &format!("{V3}/users/me/calendarList?syncToken={sync}")).await, StatusCode::OK).await;
    let items = inc["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], cid.as_str());
    assert_eq!(items[0]["timeZone"], "Europe/Paris");
    let sync2 = inc["nextSyncToken"].as_str().unwrap().to_owned();

    let patched = json_of(
        h.send(Method::PATCH, &t, &format!("{V3}/calendars/{cid}"), Some(json!({"summary": "Team 2"}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["summary"], "Team 2");
    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{V3}/calendars/{cid}"), None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get(&t, &format!("{V3}/calendars/{cid}")).await.status(), StatusCode::NOT_FOUND);
    let inc = json_of(h.get(&t, &format!("{V3}/users/me/calendarList?syncToken={sync2}")).await, StatusCode::OK).await;
    let items = inc["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["deleted"], true);
    let plain = json_of(h.get(&t, &format!("{V3}/users/me/calendarList")).await, StatusCode::OK).await;
    assert_eq!(plain["items"].as_array().unwrap().len(), 1);

    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{V3}/calendars/primary"), None).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.send(Method::POST, &t, &format!("{V3}/calendars"), Some(json!({"description": "x"}))).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn move_free_busy_and_quick_add() {
    let h = start().await;
    let t = h.google_account("move@example.com").await;
    let primary = format!("{V3}/calendars/primary/events");
    let ev = json_of(
        h.send(Method::POST, &t, &primary, Some(event("Move me", "2024-01-05T09:00:00Z", "2024-01-05T10:00:00Z")))
            .await,
        StatusCode::OK,
    )
    .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let sync = json_of(h.get(&t, &primary).await, StatusCode::OK).await["nextSyncToken"].as_str().unwrap().to_owned();
    let cal = json_of(
        h.send(Method::POST, &t, &format!("{V3}/calendars"), Some(json!({"summary": "Other"}))).await,
        StatusCode::OK,
    )
    .await;
    let cid = cal["id"].as_str().unwrap().to_owned();
    let moved = json_of(
        h.send(Method::POST, &t, &format!("{primary}/{id}/move?destination={cid}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["id"], id.as_str());
    assert_eq!(moved["organizer"]["email"], cid.as_str());
    let old = json_of(h.get(&t, &format!("{primary}/{id}")).await, StatusCode::OK).await;
    assert_eq!(old["status"], "cancelled");
    let inc = json_of(h.get(&t, &format!("{primary}?syncToken={sync}")).await, StatusCode::OK).await;
    assert_eq!(inc["items"][0]["id"], id.as_str());
    assert_eq!(inc["items"][0]["status"], "cancelled");
    let there = json_of(h.get(&t, &format!("{V3}/calendars/{cid}/events/{id}")).await, StatusCode::OK).await;
    assert_eq!(there["summary"], "Move me");
    // Moving it again from where it no longer lives is 404.
    let r = h.send(Method::POST, &t, &format!("{primary}/{id}/move?destination={cid}"), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // freeBusy: overlapping events merge, transparent ones and other calendars' don't count.
    for (s, f, e) in [
        ("a", "2024-01-06T09:00:00Z", "2024-01-06T10:00:00Z"),
        ("b", "2024-01-06T09:30:00Z", "2024-01-06T11:00:00Z"),
        ("c", "2024-01-06T14:00:00Z", "2024-01-06T15:00:00Z"),
    ] {
        h.send(Method::POST, &t, &primary, Some(event(s, f, e))).await;
    }
    let mut free = event("free", "2024-01-06T16:00:00Z", "2024-01-06T17:00:00Z");
    free["transparency"] = json!("transparent");
    h.send(Method::POST, &t, &primary, Some(free)).await;
    let fb = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{V3}/freeBusy"),
            Some(json!({"timeMin": "2024-01-06T00:00:00Z", "timeMax": "2024-01-07T00:00:00Z",
                "items": [{"id": "primary"}, {"id": "nobody@example.com"}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fb["kind"], "calendar#freeBusy");
    assert_eq!(
        fb["calendars"]["primary"]["busy"],
        json!([
            {"start": "2024-01-06T09:00:00Z", "end": "2024-01-06T11:00:00Z"},
            {"start": "2024-01-06T14:00:00Z", "end": "2024-01-06T15:00:00Z"},
        ])
    );
    assert_eq!(fb["calendars"]["nobody@example.com"]["errors"][0]["reason"], "notFound");

    let qa =
        json_of(h.send(Method::POST, &t, &format!("{primary}/quickAdd?text=Lunch"), None).await, StatusCode::OK).await;
    assert_eq!(qa["summary"], "Lunch");
}

#[tokio::test]
async fn old_sync_tokens_are_410_and_tombstones_are_purged() {
    let h = start().await;
    let t = h.google_account("age@example.com").await;
    let primary = format!("{V3}/calendars/primary/events");
    let ev = json_of(
        h.send(Method::POST, &t, &primary, Some(event("x", "2024-01-05T09:00:00Z", "2024-01-05T10:00:00Z"))).await,
        StatusCode::OK,
    )
    .await;
    let id = ev["id"].as_str().unwrap();
    assert_eq!(h.send(Method::DELETE, &t, &format!("{primary}/{id}"), None).await.status(), StatusCode::NO_CONTENT);
    let body = json_of(h.get(&t, &format!("{primary}?showDeleted=true")).await, StatusCode::OK).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let sync = body["nextSyncToken"].as_str().unwrap().to_owned();
    // Still fine after 29 days, 410 after 31 (default 30-day age). The token was minted
    // with showDeleted=true, so the incremental requests repeat it.
    h.advance(29 * 24 * 3600).await;
    let t = h.google_account("age@example.com").await;
    let inc = format!("{primary}?showDeleted=true&syncToken={sync}");
    assert_eq!(h.get(&t, &inc).await.status(), StatusCode::OK);
    h.advance(2 * 24 * 3600).await;
    let t = h.google_account("age@example.com").await;
    let r = json_of(h.get(&t, &inc).await, StatusCode::GONE).await;
    assert_eq!(r["error"]["errors"][0]["reason"], "fullSyncRequired");
    let body = json_of(h.get(&t, &format!("{primary}?showDeleted=true")).await, StatusCode::OK).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "purged tombstone");
}

#[tokio::test]
async fn fields_partial_responses_are_honoured() {
    let h = start().await;
    let t = h.google_account("fields@example.com").await;
    let primary = format!("{V3}/calendars/primary/events");
    let ev = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{primary}?fields=id,start/dateTime"),
            Some(event("x", "2024-01-05T09:00:00Z", "2024-01-05T10:00:00Z")),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let mut keys: Vec<&String> = ev.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "start"]);
    assert_eq!(ev["start"], json!({"dateTime": "2024-01-05T09:00:00Z"}));
    let list =
        json_of(h.get(&t, &format!("{primary}?fields=items(summary),nextSyncToken")).await, StatusCode::OK).await;
    assert_eq!(list["items"], json!([{"summary": "x"}]));
    assert!(list["nextSyncToken"].is_string() && list.get("kind").is_none());
    let r = h.get(&t, &format!("{primary}?fields=items(summary")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn per_user_and_per_project_quotas_answer_403_and_429() {
    let h = start_with(calsync_sandbox::SandboxConfig {
        seed: Some(7),
        google_user_quota_per_minute: 3,
        google_project_quota_per_minute: 5,
        ..Default::default()
    })
    .await;
    let a = h.google_account("qa@example.com").await;
    let b = h.google_account("qb@example.com").await;
    let list = format!("{V3}/calendars/primary/events");
    for _ in 0..3 {
        assert_eq!(h.get(&a, &list).await.status(), StatusCode::OK);
    }
    // Google sends no Retry-After: clients back off exponentially on their own.
    let r = h.get(&a, &list).await;
    assert!(r.headers().get("retry-after").is_none());
    let e = json_of(r, StatusCode::FORBIDDEN).await;
    assert_eq!(e["error"]["errors"][0]["reason"], "userRateLimitExceeded");
    assert_eq!(e["error"]["errors"][0]["domain"], "usageLimits");
    // Another user still has budget until the project's 5 per minute are used.
    assert_eq!(h.get(&b, &list).await.status(), StatusCode::OK);
    assert_eq!(h.get(&b, &list).await.status(), StatusCode::OK);
    let r = h.get(&b, &list).await;
    assert!(r.headers().get("retry-after").is_none());
    let e = json_of(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(e["error"]["errors"][0]["reason"], "rateLimitExceeded");
    // The window slides with the sandbox clock.
    h.advance(61).await;
    assert_eq!(h.get(&a, &list).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn event_types_filter_and_max_attendees_are_applied() {
    let h = start().await;
    let t = h.google_account("types@example.com").await;
    let primary = format!("{V3}/calendars/primary/events");
    let mut ev = event("meeting", "2024-01-05T09:00:00Z", "2024-01-05T10:00:00Z");
    ev["attendees"] = json!([{"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "c@example.com"}]);
    h.send(Method::POST, &t, &primary, Some(ev)).await;
    let mut focus = event("focus", "2024-01-05T11:00:00Z", "2024-01-05T12:00:00Z");
    focus["eventType"] = json!("focusTime");
    h.send(Method::POST, &t, &primary, Some(focus)).await;
    let only = json_of(h.get(&t, &format!("{primary}?eventTypes=focusTime")).await, StatusCode::OK).await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    assert_eq!(only["items"][0]["summary"], "focus");
    let cut = json_of(h.get(&t, &format!("{primary}?eventTypes=default&maxAttendees=1")).await, StatusCode::OK).await;
    assert_eq!(cut["items"][0]["attendees"].as_array().unwrap().len(), 1);
    assert_eq!(cut["items"][0]["attendeesOmitted"], true);
    assert_eq!(h.get(&t, &format!("{primary}?eventTypes=party")).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn clear_empties_the_primary_calendar_only() {
    let h = start().await;
    let t = h.google_account("clear@example.com").await;
    let primary = format!("{V3}/calendars/primary/events");
    for s in ["a", "b"] {
        h.send(Method::POST, &t, &primary, Some(event(s, "2024-01-05T09:00:00Z", "2024-01-05T10:00:00Z"))).await;
    }
    let sync = json_of(h.get(&t, &primary).await, StatusCode::OK).await["nextSyncToken"].as_str().unwrap().to_owned();
    let r = h.send(Method::POST, &t, &format!("{V3}/calendars/primary/clear"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let left = json_of(h.get(&t, &primary).await, StatusCode::OK).await;
    assert_eq!(left["items"].as_array().unwrap().len(), 0);
    let inc = json_of(h.get(&t, &format!("{primary}?syncToken={sync}")).await, StatusCode::OK).await;
    assert_eq!(inc["items"].as_array().unwrap().iter().filter(|i| i["status"] == "cancelled").count(), 2);
    let cal = json_of(
        h.send(Method::POST, &t, &format!("{V3}/calendars"), Some(json!({"summary": "S"}))).await,
        StatusCode::OK,
    )
    .await;
    let r = h.send(Method::POST, &t, &format!("{V3}/calendars/{}/clear", cal["id"].as_str().unwrap()), None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
