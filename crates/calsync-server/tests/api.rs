//! The appointments API over real HTTP, on SQLite and PostgreSQL.

mod common;

use calsync_testkit::{Backend, backend_tests};
use common::{MAX_BODY, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn intake() -> Value {
    json!({
        "title": "Intake",
        "description": "First meeting",
        "location": "Room 4",
        "start": "2026-12-01T09:00:00+01:00",
        "end": "2026-12-01T10:00:00+01:00",
        "time_zone": "Europe/Berlin",
        "attendees": [{"email": "client@example.com", "name": "Client"}]
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let resp = app.post("/api/appointments/", token).json(body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, String, Option<String>) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    let e = &body["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    (status, e["code"].as_str().unwrap().to_owned(), e["field"].as_str().map(str::to_owned))
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let h = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    assert!(h.headers().contains_key("x-request-id"));
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["database"], "ok");
    app.db.close().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "a closed database is not ready");
}

async fn api_requires_a_valid_bearer_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    let none = app.http.get(app.url("/api/appointments/")).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(none).await, (StatusCode::UNAUTHORIZED, "unauthorized".into(), None));
    let wrong = app.get("/api/appointments/", "cs_notarealtoken").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let basic =
        app.http.get(app.url("/api/appointments/")).basic_auth("ann@acme.test", Some("x")).send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let ok = app.get("/api/appointments/", &token).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // A session cookie does not authenticate the API: it is bearer-only, so CSRF cannot reach it.
    let (jar, _) = common::sign_in(&app, "ann@acme.test", common::PASSWORD).await;
    let cookie_only = jar.apply(app.http.get(app.url("/api/appointments/"))).send().await.unwrap();
    assert_eq!(cookie_only.status(), StatusCode::UNAUTHORIZED);
}

async fn appointment_crud_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    let resp = app.post("/api/appointments/", &token).json(&intake()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/appointments/{id}/"));
    assert_eq!(created["start"], "2026-12-01T09:00:00+01:00");
    assert_eq!(created["time_zone"], "Europe/Berlin");
    assert_eq!(created["status"], "confirmed");
    assert_eq!(
        created["attendees"],
        json!([{"email": "client@example.com", "name": "Client", "response": "needs_action"}])
    );
    assert_eq!((created["send_invitations"].as_bool(), created["organizer"].as_str()), (Some(false), None));
    assert_eq!(created["version"], 1);
    for key in ["owner", "created_at", "updated_at", "all_day", "description", "location"] {
        assert!(created.get(key).is_some(), "missing {key}");
    }

    let got: Value = app.get(&location, &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, created);

    let patched = app
        .patch(&location, &token)
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "Intake (moved)", "start": "2026-12-01T11:00:00+01:00", "end": "2026-12-01T12:30:00+01:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(patched.headers()["etag"], "\"2\"");
    let patched: Value = patched.json().await.unwrap();
    assert_eq!((patched["title"].as_str(), patched["version"].as_i64()), (Some("Intake (moved)"), Some(2)));
    assert_eq!(patched["location"], "Room 4", "fields not in the patch are kept");

    let stale =
        app.patch(&location, &token).header("If-Match", "\"1\"").json(&json!({"title": "Lost"})).send().await.unwrap();
    assert_eq!(error_of(stale).await.0, StatusCode::PRECONDITION_FAILED);
    let stale_delete = app.delete(&location, &token).header("If-Match", "\"1\"").send().await.unwrap();
    assert_eq!(stale_delete.status(), StatusCode::PRECONDITION_FAILED);

    let all_day = create(
        &app,
        &token,
        &json!({"title": "Offsite", "start": "2026-12-24", "end": "2026-12-25", "all_day": true, "time_zone": "America/New_York"}),
    )
    .await;
    assert_eq!((all_day["start"].as_str(), all_day["end"].as_str()), (Some("2026-12-24"), Some("2026-12-25")));

    assert_eq!(app.delete(&location, &token).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(error_of(app.get(&location, &token).send().await.unwrap()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&location, &token).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let garbage = app.get("/api/appointments/not-a-uuid/", &token).send().await.unwrap();
    assert_eq!(garbage.status(), StatusCode::NOT_FOUND);
}

async fn bad_inputs_name_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    let with = |patch: Value| {
        let mut body = intake();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (
            with(json!({"end": "2026-12-01T08:00:00+01:00"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("end"),
        ),
        (
            with(json!({"end": "2026-12-01T09:00:00+01:00"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("end"),
        ),
        (
            with(json!({"time_zone": "Europe/Atlantis"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("time_zone"),
        ),
        (with(json!({"start": "2026-12-01"})), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("start")),
        (with(json!({"all_day": true})), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("start")),
        (
            with(json!({"start": "2026-12-01T09:00:00"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("start"),
        ),
        (with(json!({"title": ""})), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("title")),
        (with(json!({"title": "x".repeat(501)})), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("title")),
        (with(json!({"title": 42})), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("title")),
        (with(json!({"status": "done"})), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("status")),
        (
            with(json!({"attendees": [{"email": "ok@example.com"}, {"email": "not-an-email"}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("attendees[1].email"),
        ),
        (
            with(json!({"attendees": [{"name": "No mail"}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("attendees[0].email"),
        ),
        (with(json!({"colour": "red"})), StatusCode::BAD_REQUEST, "unknown_field", Some("colour")),
        (
            with(json!({"attendees": [{"email": "a@b.test", "rsvp": true}]})),
            StatusCode::BAD_REQUEST,
            "unknown_field",
            Some("attendees[0].rsvp"),
        ),
        (
            with(json!({"id": "01a20c44-8521-703d-a6c2-5f81f5774867"})),
            StatusCode::BAD_REQUEST,
            "unknown_field",
            Some("id"),
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("body")),
    ];
    for (body, status, code, field) in cases {
        let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
        assert_eq!(error_of(resp).await, (status, code.to_owned(), field.map(str::to_owned)), "for {body}");
    }
    let malformed = app
        .post("/api/appointments/", &token)
        .header("content-type", "application/json")
        .body("{\"title\": \"x\",")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(malformed).await, (StatusCode::BAD_REQUEST, "malformed_json".into(), None));
    let huge = with(json!({"description": "x".repeat(MAX_BODY + 1)}));
    let resp = app.post("/api/appointments/", &token).json(&huge).send().await.unwrap();
    assert_eq!(error_of(resp).await.1, "payload_too_large");
    let form = app.post("/api/appointments/", &token).form(&[("title", "x")]).send().await.unwrap();
    assert_eq!(error_of(form).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let list: Value = app.get("/api/appointments/", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing was written by the rejected requests");

    // A rejected PATCH leaves the appointment exactly as it was.
    let a = create(&app, &token, &intake()).await;
    let path = format!("/api/appointments/{}/", a["id"].as_str().unwrap());
    let resp =
        app.patch(&path, &token).json(&json!({"title": "New", "end": "2026-11-30T00:00:00Z"})).send().await.unwrap();
    assert_eq!(
        error_of(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into(), Some("end".into()))
    );
    let after: Value = app.get(&path, &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(after, a);
    let bad_if_match =
        app.patch(&path, &token).header("If-Match", "yesterday").json(&json!({"title": "x"})).send().await.unwrap();
    assert_eq!(
        error_of(bad_if_match).await,
        (StatusCode::BAD_REQUEST, "invalid_header".into(), Some("If-Match".into()))
    );
    let no_slash = app.get("/api/appointments", &token).send().await.unwrap();
    assert_eq!(error_of(no_slash).await, (StatusCode::NOT_FOUND, "no_such_route".into(), None));
}

async fn list_filters_and_paginates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    for day in 1..=6 {
        let mut body = intake();
        body["title"] = json!(format!("Day {day}"));
        body["start"] = json!(format!("2026-12-{day:02}T09:00:00+01:00"));
        body["end"] = json!(format!("2026-12-{day:02}T10:00:00+01:00"));
        create(&app, &token, &body).await;
    }
    let mut titles = Vec::new();
    let mut next = Some("/api/appointments/?start=2026-12-02&end=2026-12-06&limit=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let page: Value = app.get(&path, &token).send().await.unwrap().json().await.unwrap();
        pages += 1;
        titles.extend(page["items"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_owned()));
        next = page["next_cursor"]
            .as_str()
            .map(|c| format!("/api/appointments/?start=2026-12-02&end=2026-12-06&limit=2&cursor={c}"));
    }
    assert_eq!(titles, ["Day 2", "Day 3", "Day 4", "Day 5"]);
    assert_eq!(pages, 2);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("start=soon", "start"),
        ("cursor=abc", "cursor"),
        ("owner=me", "owner"),
        ("start=2026-12-05&end=2026-12-01", "end"),
    ] {
        let resp = app.get(&format!("/api/appointments/?{query}"), &token).send().await.unwrap();
        let (status, _, f) = error_of(resp).await;
        assert_eq!((status, f.as_deref()), (StatusCode::BAD_REQUEST, Some(field)), "{query}");
    }
}

/// Every route, called with another firm's credentials or a colleague's, finds nothing.
async fn other_firms_and_colleagues_get_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let bob = app.user("acme", "bob@acme.test", "staff").await;
    let boss = app.user("acme", "boss@acme.test", "admin").await;
    let eve = app.user("globex", "eve@globex.test", "admin").await;
    let a = create(&app, &ann, &intake()).await;
    let path = format!("/api/appointments/{}/", a["id"].as_str().unwrap());

    for outsider in [&bob, &eve] {
        assert_eq!(app.get(&path, outsider).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        let p = app.patch(&path, outsider).json(&json!({"title": "hijack"})).send().await.unwrap();
        assert_eq!(p.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&path, outsider).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        let list: Value = app.get("/api/appointments/", outsider).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"], json!([]));
    }
    // The firm's admin reads it but may not change it.
    assert_eq!(app.get(&path, &boss).send().await.unwrap().status(), StatusCode::OK);
    let list: Value = app.get("/api/appointments/", &boss).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let p = app.patch(&path, &boss).json(&json!({"title": "edited"})).send().await.unwrap();
    assert_eq!(error_of(p).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&path, &boss).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    let after: Value = app.get(&path, &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!(after, a, "nothing changed");
}

async fn openapi_covers_every_api_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app.http.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut found: Vec<String> = paths
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| format!("{} {p}", m.to_uppercase())))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "DELETE /api/appointments/{id}/",
            "DELETE /api/appointments/{id}/occurrences/{original_start}/",
            "GET /api/appointments/",
            "GET /api/appointments/{id}/",
            "GET /api/calendar/admin/connections/",
            "GET /api/calendar/admin/stats/",
            "GET /api/calendar/conflicts/",
            "GET /api/calendar/oauth-connections/",
            "GET /api/calendar/oauth-connections/{id}/",
            "GET /api/calendar/oauth-connections/{id}/calendars/",
            "GET /api/calendar/oauth-connections/{id}/sync_status/",
            "GET /api/calendar/sync-attempts/",
            "PATCH /api/appointments/{id}/",
            "PATCH /api/appointments/{id}/occurrences/{original_start}/",
            "PATCH /api/calendar/oauth-connections/{id}/",
            "POST /api/appointments/",
            "POST /api/appointments/{id}/split/",
            "POST /api/calendar/conflicts/{id}/resolve/",
            "POST /api/calendar/oauth-connections/connect_caldav/",
            "POST /api/calendar/oauth-connections/initiate_google_oauth/",
            "POST /api/calendar/oauth-connections/initiate_microsoft_oauth/",
            "POST /api/calendar/oauth-connections/oauth_callback/",
            "POST /api/calendar/oauth-connections/{id}/confirm_deletes/",
            "POST /api/calendar/oauth-connections/{id}/disconnect/",
            "POST /api/calendar/oauth-connections/{id}/reject_deletes/",
            "POST /api/calendar/oauth-connections/{id}/resync/",
            "POST /api/calendar/oauth-connections/{id}/sync_now/",
            "POST /api/calendar/sync-attempts/{id}/replay/",
        ]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let docs = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().to_lowercase().contains("swagger"));
    let asset = app.http.get(app.url("/api/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK, "Swagger UI is served from the binary");
}

async fn api_calls_are_rate_limited_per_user(backend: Backend) {
    let mut config = common::test_config();
    config.api_rate_per_minute = 1;
    config.api_rate_burst = 3;
    let app = TestApp::spawn_with(backend, config).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let bob = app.user("acme", "bob@acme.test", "staff").await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/appointments/", &ann).send().await.unwrap().status(), StatusCode::OK);
    }
    let limited = app.get("/api/appointments/", &ann).send().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(error_of(limited).await.1, "rate_limited");
    assert_eq!(app.get("/api/appointments/", &bob).send().await.unwrap().status(), StatusCode::OK, "per user");
}

/// (title, local start) of every occurrence the expanded listing shows for March–April 2027.
async fn expanded(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let url = "/api/appointments/?start=2027-03-01T00:00:00Z&end=2027-05-01T00:00:00Z&expand=true&limit=3";
    let mut out = Vec::new();
    let mut next = Some(url.to_owned());
    while let Some(u) = next {
        let v: Value = app.get(&u, token).send().await.unwrap().json().await.unwrap();
        for a in v["items"].as_array().unwrap() {
            assert!(a["series_id"].is_string() && a["original_start"].is_string(), "{a}");
            out.push((a["title"].as_str().unwrap().to_owned(), a["start"].as_str().unwrap().to_owned()));
        }
        next = v["next_cursor"].as_str().map(|c| format!("{url}&cursor={c}"));
    }
    out
}

/// A weekly series across the DST change: validated lines, occurrences at 10:00 local on both
/// sides of the change, one moved, one cancelled, "this and following", and the whole deleted.
async fn recurring_series_expand_edit_cancel_and_split(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "staff@acme.test", "staff").await;
    let mut body = json!({"title": "Standup", "start": "2027-03-15T10:00:00+01:00", "end": "2027-03-15T10:30:00+01:00",
                          "time_zone": "Europe/Berlin", "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=FR"]});
    let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
    let (status, _, field) = error_of(resp).await;
    assert_eq!(
        (status, field.as_deref()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("recurrence")),
        "a Monday start, a Friday rule"
    );
    body["recurrence"] = json!(["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6"]);
    let series = create(&app, &token, &body).await;
    let id = series["id"].as_str().unwrap();
    assert_eq!(series["recurrence"], json!(["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6"]));
    let starts: Vec<String> = expanded(&app, &token).await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        starts,
        [
            "2027-03-15T10:00:00+01:00",
            "2027-03-22T10:00:00+01:00",
            "2027-03-29T10:00:00+02:00",
            "2027-04-05T10:00:00+02:00",
            "2027-04-12T10:00:00+02:00",
            "2027-04-19T10:00:00+02:00"
        ],
        "10:00 in Berlin on both sides of the change"
    );
    // One occurrence moved and renamed: an exception.
    let occ = |o: &str| format!("/api/appointments/{id}/occurrences/{o}/");
    let moved =
        json!({"title": "Standup (late)", "start": "2027-03-22T15:00:00+01:00", "end": "2027-03-22T15:30:00+01:00"});
    let resp = app.patch(&occ("2027-03-22T09:00:00Z"), &token).json(&moved).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let ex: Value = resp.json().await.unwrap();
    assert_eq!((ex["series_id"].as_str(), ex["original_start"].as_str()), (Some(id), Some("2027-03-22T09:00:00Z")));
    let resp =
        app.patch(&occ("2027-03-22T09:00:00Z"), &token).json(&json!({"location": "Room 1"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the second edit changes the same exception");
    // One cancelled; one that is not an occurrence is refused.
    let resp = app.delete(&occ("2027-04-05T08:00:00Z"), &token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app.delete(&occ("2027-04-06T08:00:00Z"), &token).send().await.unwrap();
    let (status, _, field) = error_of(resp).await;
    assert_eq!((status, field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("original_start")));
    let resp = app.delete(&occ("next-week"), &token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let listed = expanded(&app, &token).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert!(listed.contains(&("Standup (late)".to_owned(), "2027-03-22T15:00:00+01:00".to_owned())), "{listed:?}");
    assert!(!listed.iter().any(|(_, s)| s.starts_with("2027-04-05")), "{listed:?}");
    // An exception after the split point goes with the new series.
    let resp =
        app.patch(&occ("2027-04-19T08:00:00Z"), &token).json(&json!({"title": "Standup (last)"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let last: Value = resp.json().await.unwrap();
    let listed = expanded(&app, &token).await;
    // This and following, from 12 April.
    let resp = app
        .post(&format!("/api/appointments/{id}/split/"), &token)
        .json(&json!({"from": "2027-04-12T08:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    let parts: Value = resp.json().await.unwrap();
    let moved: Value = app
        .get(&format!("/api/appointments/{}/", last["id"].as_str().unwrap()), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved["series_id"], parts["started"]["id"], "{moved}");
    let split: Value = app.get(&format!("/api/appointments/{id}/"), &token).send().await.unwrap().json().await.unwrap();
    let rule = split["recurrence"][0].as_str().unwrap();
    assert!(rule.contains("UNTIL=20270412T075959Z") && !rule.contains("COUNT"), "{rule}");
    assert_eq!(expanded(&app, &token).await, listed, "the same occurrences, now in two series");
    let resp = app
        .post(&format!("/api/appointments/{id}/split/"), &token)
        .json(&json!({"from": "2027-03-15T09:00:00Z"}))
        .send()
        .await
        .unwrap();
    let (status, _, field) = error_of(resp).await;
    assert_eq!((status, field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("from")));
    // Deleting the first series takes its exceptions along; the second stays.
    let resp = app.delete(&format!("/api/appointments/{id}/"), &token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let left: Vec<(String, String)> = expanded(&app, &token).await;
    assert_eq!(
        left,
        [
            ("Standup".to_owned(), "2027-04-12T10:00:00+02:00".to_owned()),
            ("Standup (last)".to_owned(), "2027-04-19T10:00:00+02:00".to_owned())
        ]
    );
    let resp = app.get("/api/appointments/?expand=true", &token).send().await.unwrap();
    let (status, _, field) = error_of(resp).await;
    assert_eq!((status, field.as_deref()), (StatusCode::BAD_REQUEST, Some("start")));
}

backend_tests!(
    recurring_series_expand_edit_cancel_and_split,
    api_calls_are_rate_limited_per_user,
    health_and_readiness,
    api_requires_a_valid_bearer_token,
    appointment_crud_round_trip,
    bad_inputs_name_the_field,
    list_filters_and_paginates,
    other_firms_and_colleagues_get_404,
    openapi_covers_every_api_route,
);
