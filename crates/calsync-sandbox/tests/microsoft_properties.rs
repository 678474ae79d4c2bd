//! Graph event properties, round 2: extended properties through `$expand` and `$filter`,
//! HTML bodies and `Prefer: outlook.body-content-type`, opaque occurrence ids, every CLDR
//! Windows zone, mailbox custom zones, and the OData function form of `delta()`.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";
const PROP: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncId";
const WINDOW: &str = "startDateTime=2024-03-01T00:00:00Z&endDateTime=2024-05-01T00:00:00Z";

fn ev(subject: &str, day: u32) -> Value {
    json!({"subject": subject,
        "start": {"dateTime": format!("2024-03-{day:02}T10:00:00"), "timeZone": "UTC"},
        "end": {"dateTime": format!("2024-03-{day:02}T11:00:00"), "timeZone": "UTC"}})
}

async fn post(h: &Harness, t: &str, body: Value) -> Value {
    json_of(h.send(Method::POST, t, &format!("{G}/me/events"), Some(body)).await, StatusCode::CREATED).await
}

fn expand(id: &str) -> String {
    url::form_urlencoded::byte_serialize(format!("singleValueExtendedProperties($filter=id eq '{id}')").as_bytes())
        .collect()
}

#[tokio::test]
async fn extended_properties_come_back_with_expand_and_match_a_filter() {
    let h = start().await;
    let t = h.ms_account("ext@example.com").await;
    let mut body = ev("Tagged", 5);
    // Type and GUID in another case: Exchange reads them case-insensitively.
    body["singleValueExtendedProperties"] =
        json!([{"id": "string {66F5A359-4659-4830-9070-00047EC6AC6E} name calsyncId", "value": "a1"}]);
    let created = post(&h, &t, body).await;
    assert!(created.get("singleValueExtendedProperties").is_none());
    post(&h, &t, ev("Plain", 6)).await;
    let id = created["id"].as_str().unwrap();

    let plain = json_of(h.get(&t, &format!("{G}/me/events/{id}")).await, StatusCode::OK).await;
    assert!(plain.get("singleValueExtendedProperties").is_none(), "only with $expand");
    let got = json_of(h.get(&t, &format!("{G}/me/events/{id}?$expand={}", expand(PROP))).await, StatusCode::OK).await;
    assert_eq!(got["singleValueExtendedProperties"], json!([{"id": PROP, "value": "a1"}]));

    // PATCH upserts one property and keeps the others.
    let other = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name other";
    json_of(
        h.send(
            Method::PATCH,
            &t,
            &format!("{G}/me/events/{id}"),
            Some(json!({"singleValueExtendedProperties": [{"id": other, "value": "x"}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let got = json_of(h.get(&t, &format!("{G}/me/events/{id}?$expand={}", expand(PROP))).await, StatusCode::OK).await;
    assert_eq!(got["singleValueExtendedProperties"][0]["value"], "a1");

    let view =
        json_of(h.get(&t, &format!("{G}/me/calendarView?{WINDOW}&$expand={}", expand(PROP))).await, StatusCode::OK)
            .await;
    let tagged: Vec<&Value> =
        view["value"].as_array().unwrap().iter().filter(|e| e.get("singleValueExtendedProperties").is_some()).collect();
    assert_eq!(tagged.len(), 1);
    let delta = json_of(
        h.get(&t, &format!("{G}/me/calendarView/delta?{WINDOW}&$expand={}", expand(PROP))).await,
        StatusCode::OK,
    )
    .await;
    assert!(delta["value"].as_array().unwrap().iter().any(|e| e["singleValueExtendedProperties"][0]["value"] == "a1"));

    let filter: String = url::form_urlencoded::byte_serialize(
        format!("singleValueExtendedProperties/any(ep: ep/id eq '{PROP}' and ep/value eq 'a1')").as_bytes(),
    )
    .collect();
    let found = json_of(h.get(&t, &format!("{G}/me/events?$filter={filter}")).await, StatusCode::OK).await;
    let found = found["value"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], id);
    for bad in [
        "subject%20eq%20'x'",
        "singleValueExtendedProperties/any(ep:%20ep/id%20eq%20'nope'%20and%20ep/value%20eq%20'a')",
    ] {
        let r = h.get(&t, &format!("{G}/me/events?$filter={bad}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = h.get(&t, &format!("{G}/me/events/{id}?$expand=attachments")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn text_bodies_are_stored_as_html_and_prefer_text_converts_back() {
    let h = start().await;
    let t = h.ms_account("body@example.com").await;
    let mut body = ev("Intake", 5);
    body["body"] = json!({"contentType": "text", "content": "Bring <ID> & forms\nRoom 4"});
    let created = post(&h, &t, body).await;
    assert_eq!(created["body"]["contentType"], "html");
    let html = created["body"]["content"].as_str().unwrap();
    assert!(html.starts_with("<html>") && html.contains("Bring &lt;ID&gt; &amp; forms"), "{html}");
    assert_eq!(created["bodyPreview"], "Bring <ID> & forms Room 4");
    let id = created["id"].as_str().unwrap();

    let resp = h
        .http
        .get(h.url(&format!("{G}/me/events/{id}")))
        .bearer_auth(&t)
        .header("Prefer", "outlook.body-content-type=\"text\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["preference-applied"], "outlook.body-content-type=\"text\"");
    let text = json_of(resp, StatusCode::OK).await;
    assert_eq!(text["body"], json!({"contentType": "text", "content": "Bring <ID> & forms\nRoom 4"}));
    for path in [
        format!("{G}/me/calendarView?{WINDOW}"),
        format!("{G}/me/events"),
        format!("{G}/me/calendarView/delta?{WINDOW}"),
    ] {
        let resp = h
            .http
            .get(h.url(&path))
            .bearer_auth(&t)
            .header("Prefer", "outlook.body-content-type=\"text\"")
            .send()
            .await
            .unwrap();
        let v = json_of(resp, StatusCode::OK).await;
        assert_eq!(v["value"][0]["body"]["contentType"], "text", "{path}");
        let v = json_of(h.get(&t, &path).await, StatusCode::OK).await;
        assert_eq!(v["value"][0]["body"]["contentType"], "html", "{path}");
    }
}

#[tokio::test]
async fn occurrence_ids_are_opaque_stable_and_resolvable() {
    let h = start().await;
    let t = h.ms_account("ids@example.com").await;
    let m = post(
        &h,
        &t,
        json!({"subject": "Weekly",
            "start": {"dateTime": "2024-03-18T10:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2024-03-18T10:30:00", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "startDate": "2024-03-18", "numberOfOccurrences": 3}}}),
    )
    .await;
    let mid = m["id"].as_str().unwrap();
    let list = |v: Value| {
        v["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let a = list(json_of(h.get(&t, &format!("{G}/me/calendarView?{WINDOW}")).await, StatusCode::OK).await);
    let b = list(json_of(h.get(&t, &format!("{G}/me/events/{mid}/instances?{WINDOW}")).await, StatusCode::OK).await);
    assert_eq!(a, b, "stable across listings");
    for id in &a {
        // Neither the master id nor the date shows (Graph ids are base64url: `_` and `-` are
        // ordinary characters in them, so they prove nothing either way).
        assert!(!id.contains(mid) && !id.contains("2024"), "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "URL-safe: {id}");
        let got = json_of(h.get(&t, &format!("{G}/me/events/{id}")).await, StatusCode::OK).await;
        assert_eq!(got["seriesMasterId"], mid);
    }
    // An altered id is nobody's.
    let mut forged = a[1].clone().into_bytes();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let r = h.get(&t, &format!("{G}/me/events/{}", String::from_utf8(forged).unwrap())).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Guessing the old `{master}_{date}` shape finds nothing.
    let r = h.get(&t, &format!("{G}/me/events/{mid}_20240325T090000Z")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_cldr_windows_zone_is_accepted_and_mailbox_custom_zones_show() {
    let h = start().await;
    let t = h.ms_account("zones@example.com").await;
    for zone in [
        "Yukon Standard Time",
        "Sao Tome Standard Time",
        "Chatham Islands Standard Time",
        "UTC-11",
        "Volgograd Standard Time",
    ] {
        let body = json!({"subject": zone,
            "start": {"dateTime": "2024-03-05T10:00:00", "timeZone": zone},
            "end": {"dateTime": "2024-03-05T11:00:00", "timeZone": zone}});
        let created = post(&h, &t, body).await;
        assert_eq!(created["originalStartTimeZone"], zone);
    }
    let bad = json!({"subject": "x", "start": {"dateTime": "2024-03-05T10:00:00", "timeZone": "Mars Standard Time"},
        "end": {"dateTime": "2024-03-05T11:00:00", "timeZone": "Mars Standard Time"}});
    let r =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(bad)).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(r["error"]["code"], "TimeZoneNotSupportedException");

    h.control(
        "/_sandbox/microsoft/mailbox-settings",
        json!({"email": "zones@example.com", "custom_time_zone": "tzone://Microsoft/Custom"}),
    )
    .await;
    let v = json_of(h.get(&t, &format!("{G}/me/calendarView?{WINDOW}")).await, StatusCode::OK).await;
    for e in v["value"].as_array().unwrap() {
        assert_eq!(e["originalStartTimeZone"], "tzone://Microsoft/Custom");
        assert_eq!(e["originalEndTimeZone"], "tzone://Microsoft/Custom");
        assert_eq!(e["start"]["timeZone"], "UTC");
    }
    let r = h
        .http
        .post(h.url("/_sandbox/microsoft/mailbox-settings"))
        .json(&json!({"email": "nobody@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delta_answers_in_the_odata_function_form_and_its_links_work() {
    let h = start().await;
    let t = h.ms_account("fn@example.com").await;
    post(&h, &t, ev("A", 5)).await;
    let body = json_of(h.get(&t, &format!("{G}/me/calendarView/delta()?{WINDOW}")).await, StatusCode::OK).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    let delta = body["@odata.deltaLink"].as_str().unwrap();
    assert!(delta.contains("/delta()?$deltatoken="));
    let next = json_of(h.http.get(delta).bearer_auth(&t).send().await.unwrap(), StatusCode::OK).await;
    assert!(next["value"].as_array().unwrap().is_empty());
    let cal = json_of(h.get(&t, &format!("{G}/me/calendar")).await, StatusCode::OK).await;
    let path = format!("{G}/me/calendars/{}/calendarView/delta()?{WINDOW}", cal["id"].as_str().unwrap());
    json_of(h.get(&t, &path).await, StatusCode::OK).await;
}
