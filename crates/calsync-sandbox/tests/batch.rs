//! Google multipart batch and Graph JSON $batch over HTTP.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BATCH: &str = "/google/batch/calendar/v3";

fn part(id: &str, request: &str) -> String {
    format!("--XYZ\r\nContent-Type: application/http\r\nContent-ID: <{id}>\r\n\r\n{request}\r\n")
}

async fn google_batch(h: &Harness, t: &str, body: String) -> (StatusCode, String, String) {
    let r = h
        .http
        .post(h.url(BATCH))
        .bearer_auth(t)
        .header("content-type", "multipart/mixed; boundary=XYZ")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

#[tokio::test]
async fn google_batch_routes_each_part_and_echoes_content_ids() {
    let h = start().await;
    let t = h.google_account("batch@example.com").await;
    let ev = json!({"id": "batchevent1", "summary": "B", "start": {"dateTime": "2024-01-05T09:00:00Z"},
        "end": {"dateTime": "2024-01-05T10:00:00Z"}});
    // Parts run in any order, so the PATCH targets an event that exists before the batch.
    let mut before = ev.clone();
    before["id"] = json!("batchevent0");
    let r = h.send(reqwest::Method::POST, &t, "/google/calendar/v3/calendars/primary/events", Some(before)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = [
        part(
            "item1",
            &format!(
                "POST /calendar/v3/calendars/primary/events HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{ev}"
            ),
        ),
        part("item2", "GET /calendar/v3/calendars/primary/events/nosuchevent HTTP/1.1\r\n\r\n"),
        part(
            "item3",
            "PATCH /calendar/v3/calendars/primary/events/batchevent0 HTTP/1.1\r\nIf-Match: \"1\"\r\nContent-Type: application/json\r\n\r\n{\"summary\":\"x\"}",
        ),
        part("item4", "GET /calendar/v3/calendars/primary/events/batchevent1 HTTP/1.1\r\nAuthorization: Bearer bogus\r\n\r\n"),
    ]
    .concat()
        + "--XYZ--\r\n";
    let (status, ct, text) = google_batch(&h, &t, body).await;
    assert_eq!(status, StatusCode::OK);
    let boundary = ct.split("boundary=").nth(1).expect("response boundary");
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).skip(1).filter(|p| !p.starts_with("--")).collect();
    assert_eq!(parts.len(), 4);
    let expect = [
        ("response-item1", "HTTP/1.1 200"),
        ("response-item2", "HTTP/1.1 404"),
        ("response-item3", "HTTP/1.1 412"),
        ("response-item4", "HTTP/1.1 401"),
    ];
    for (p, (cid, line)) in parts.iter().zip(expect) {
        assert!(p.contains(&format!("Content-ID: <{cid}>")), "{p}");
        assert!(p.contains(line), "{cid}: {p}");
    }
    assert!(parts[0].contains("\"id\":\"batchevent1\""));
    // The insert really happened.
    let got = h.get(&t, "/google/calendar/v3/calendars/primary/events/batchevent1").await;
    assert_eq!(got.status(), StatusCode::OK);

    // Limits and framing.
    let many: String = (0..1001)
        .map(|i| part(&format!("i{i}"), "GET /calendar/v3/calendars/primary/events HTTP/1.1\r\n\r\n"))
        .collect::<String>()
        + "--XYZ--\r\n";
    assert_eq!(google_batch(&h, &t, many).await.0, StatusCode::BAD_REQUEST);
    let r = h.http.post(h.url(BATCH)).bearer_auth(&t).header("content-type", "application/json").body("{}").send();
    assert_eq!(r.await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn google_batch_parts_run_in_a_shuffled_order_and_answer_in_request_order() {
    let h = start().await;
    let t = h.google_account("order@example.com").await;
    let events = "/google/calendar/v3/calendars/primary/events";
    let sync = json_of(h.get(&t, events).await, StatusCode::OK).await["nextSyncToken"].as_str().unwrap().to_owned();
    let ids: Vec<String> = (0..12).map(|i| format!("order{i:05}")).collect();
    let body = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let ev = json!({"id": id, "summary": format!("#{i}"), "start": {"dateTime": "2024-01-05T09:00:00Z"},
                "end": {"dateTime": "2024-01-05T10:00:00Z"}});
            part(
                &format!("item{i}"),
                &format!(
                    "POST /calendar/v3/calendars/primary/events HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{ev}"
                ),
            )
        })
        .collect::<String>()
        + "--XYZ--\r\n";
    let (status, ct, text) = google_batch(&h, &t, body).await;
    assert_eq!(status, StatusCode::OK);
    let boundary = ct.split("boundary=").nth(1).expect("response boundary");
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).skip(1).filter(|p| !p.starts_with("--")).collect();
    // Answers in request order, each with its part's Content-ID.
    assert_eq!(parts.len(), ids.len());
    for (i, (p, id)) in parts.iter().zip(&ids).enumerate() {
        assert!(p.contains(&format!("Content-ID: <response-item{i}>")), "{p}");
        assert!(p.contains("HTTP/1.1 200") && p.contains(&format!("\"id\":\"{id}\"")), "{p}");
    }
    // Execution order shows in the change log: not the request order (seeded, so stable).
    let inc = json_of(h.get(&t, &format!("{events}?syncToken={sync}")).await, StatusCode::OK).await;
    let ran: Vec<String> =
        inc["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    let mut sorted = ran.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "every part ran once");
    assert_ne!(ran, ids, "parts ran in request order");
}

async fn graph_batch(h: &Harness, t: &str, body: Value) -> (StatusCode, Value) {
    let r = h.http.post(h.url("/microsoft/graph/v1.0/$batch")).bearer_auth(t).json(&body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn graph_batch_handles_depends_on_inner_errors_and_limits() {
    let h = start().await;
    let t = h.ms_account("gbatch@example.com").await;
    h.fault(json!({"provider": "microsoft", "path_regex": "/me/calendars$", "count": 1, "kind": "status",
        "status": 429, "retry_after": 2}))
        .await;
    let ev = json!({"subject": "B", "start": {"dateTime": "2024-01-05T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-01-05T10:00:00", "timeZone": "UTC"}});
    let (status, body) = graph_batch(
        &h,
        &t,
        json!({"requests": [
            {"id": "1", "method": "POST", "url": "/me/events", "headers": {"Content-Type": "application/json"}, "body": ev},
            {"id": "2", "method": "GET", "url": "/me/events/nope"},
            {"id": "3", "method": "GET", "url": "/me/events", "dependsOn": ["2"]},
            {"id": "4", "method": "GET", "url": "me/events", "dependsOn": ["1"]},
            {"id": "5", "method": "GET", "url": "/me/calendars"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let by_id = |id: &str| body["responses"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("1")["status"], 201);
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("3")["status"], 424);
    assert_eq!(by_id("4")["status"], 200);
    assert_eq!(by_id("4")["body"]["value"].as_array().unwrap().len(), 1);
    assert_eq!(by_id("5")["status"], 429);
    assert_eq!(by_id("5")["headers"]["retry-after"], "2");

    let dup =
        json!({"requests": [{"id": "1", "method": "GET", "url": "/me"}, {"id": "1", "method": "GET", "url": "/me"}]});
    assert_eq!(graph_batch(&h, &t, dup).await.0, StatusCode::BAD_REQUEST);
    let many: Vec<Value> = (0..21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"})).collect();
    assert_eq!(graph_batch(&h, &t, json!({"requests": many})).await.0, StatusCode::BAD_REQUEST);
    let no_ct = json!({"requests": [{"id": "1", "method": "POST", "url": "/me/events", "body": {}}]});
    assert_eq!(graph_batch(&h, &t, no_ct).await.0, StatusCode::BAD_REQUEST);
    let absolute = json!({"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}]});
    assert_eq!(graph_batch(&h, &t, absolute).await.0, StatusCode::BAD_REQUEST);
}
