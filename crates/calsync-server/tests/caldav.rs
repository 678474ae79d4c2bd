//! CalDAV connections end to end against a real Radicale, on SQLite and PostgreSQL: connecting
//! (a wrong password is a clear 400), discovery, the initial import (a single event with an
//! alarm, a series with a moved and a cancelled occurrence, an all-day event), incremental pulls,
//! pushes without echoes, a series edited both ways (checked on the server's side by Python's
//! recurring-ical-events), a deletion there, a revoked password turning the connection
//! `revoked`, and reconnecting. The Calendar Sync page's form is driven over HTTP.

mod common;

use calsync_testkit::Backend;
use calsync_testkit::radicale::{Radicale, python};
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use common::{TestApp, form_value, sign_in};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BASE: &str = "/api/calendar/oauth-connections";
const ANN: (&str, &str) = ("ann", "app-specific-1");

/// Whole hours from the coming midnight (UTC), `h` hours on.
fn at(h: i64) -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::days(1)).unwrap() + Duration::days(2) + Duration::hours(h)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn ics(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp.//Calendar App//EN\r\n{body}END:VCALENDAR\r\n")
}

/// What a calendar app already holds: a meeting with an alarm, a daily stand-up of five with
/// the second moved an hour and the third deleted, and an all-day closure.
async fn seed(server: &Radicale, http: &reqwest::Client) {
    let meeting = ics(&format!(
        "BEGIN:VEVENT\r\nUID:partner-1\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:Partner meeting\r\n\
         BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Partner meeting\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n",
        stamp(at(9)),
        stamp(at(10))
    ));
    let standup = ics(&format!(
        "BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\nRRULE:FREQ=DAILY;COUNT=5\r\n\
         EXDATE:{}\r\nSUMMARY:Stand-up\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261201T000000Z\r\nRECURRENCE-ID:{}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:Stand-up (late)\r\nEND:VEVENT\r\n",
        stamp(at(24 + 8)),
        stamp(at(24 + 8) + Duration::minutes(15)),
        stamp(at(72 + 8)),
        stamp(at(48 + 8)),
        stamp(at(48 + 9)),
        stamp(at(48 + 9) + Duration::minutes(15)),
    ));
    let day = at(96).date_naive();
    let closed = ics(&format!(
        "BEGIN:VEVENT\r\nUID:closed-1\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;VALUE=DATE:{}\r\nDTEND;VALUE=DATE:{}\r\nSUMMARY:Office closed\r\nEND:VEVENT\r\n",
        day.format("%Y%m%d"),
        (day + Duration::days(1)).format("%Y%m%d")
    ));
    for (name, text) in [("partner.ics", meeting), ("standup.ics", standup), ("closed.ics", closed)] {
        assert_eq!(server.put(http, ANN, &format!("/ann/work/{name}"), &text).await, 201, "{name}");
    }
}

async fn connect(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let resp = app.post(&format!("{BASE}/connect_caldav/"), token).json(&body).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn sync_now(app: &TestApp, token: &str, conn: &str) -> Value {
    let resp = app.post(&format!("{BASE}/{conn}/sync_now/"), token).send().await.unwrap();
    resp.json().await.unwrap()
}

fn counts(a: &Value) -> [i64; 6] {
    let n = |side: &str, what: &str| a[side][what].as_i64().unwrap();
    [
        n("pulled", "created"),
        n("pulled", "updated"),
        n("pulled", "deleted"),
        n("pushed", "created"),
        n("pushed", "updated"),
        n("pushed", "deleted"),
    ]
}

/// (title, start) of calsync's occurrences whose title starts with `prefix`.
async fn local(app: &TestApp, token: &str, prefix: &str) -> Vec<(String, DateTime<Utc>)> {
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let url = format!("/api/appointments/?expand=true&limit=500&start={}&end={}", f(at(-48)), f(at(24 * 30)));
    let v: Value = app.get(&url, token).send().await.unwrap().json().await.unwrap();
    let mut out: Vec<(String, DateTime<Utc>)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["title"].as_str().unwrap().starts_with(prefix))
        .map(|a| {
            let s = a["start"].as_str().unwrap();
            // All-day ones start on a date: at its midnight (UTC), as the Python side reads them.
            let start = DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| format!("{s}T00:00:00Z").parse().unwrap());
            (a["title"].as_str().unwrap().to_owned(), start)
        })
        .collect();
    out.sort_by_key(|o| o.1);
    out
}

/// The occurrences (title, start) of one resource on the server, expanded by Python's
/// icalendar and recurring-ical-events: not by calsync.
async fn remote(server: &Radicale, http: &reqwest::Client, path: &str) -> Vec<(String, DateTime<Utc>)> {
    let text = server.get(http, ANN, path).await.unwrap_or_else(|| panic!("no {path} on the server"));
    let script = r#"
import sys, datetime, icalendar, recurring_ical_events
cal = icalendar.Calendar.from_ical(sys.stdin.read())
for e in recurring_ical_events.of(cal).between(datetime.datetime(2000, 1, 1), datetime.datetime(2100, 1, 1)):
    s = e['DTSTART'].dt
    if isinstance(s, datetime.datetime):
        s = s.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    else:
        s = s.strftime('%Y-%m-%dT00:00:00Z')
    print(s + '\t' + str(e['SUMMARY']))
"#;
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "recurring-ical-events failed on {text}");
    let mut v: Vec<(String, DateTime<Utc>)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (t, title) = l.split_once('\t').unwrap();
            (title.to_owned(), t.parse().unwrap())
        })
        .collect();
    v.sort_by_key(|o| o.1);
    v
}

async fn caldav_connection_syncs_both_ways(backend: Backend) {
    let server = Radicale::start(&[ANN]);
    let http = calsync_providers::http_client(std::time::Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    server.mkcalendar(&http, ANN, "/ann/tasks/", "Tasks", "VTODO").await;
    seed(&server, &http).await;
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;

    // Refusals name the field, and nothing is stored.
    let (status, body) =
        connect(&app, &token, json!({"server_url": server.base, "username": "ann", "password": "her-main-password"}))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("invalid_credentials"), Some("password")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("app-specific password"), "{body}");
    let (status, body) = connect(&app, &token, json!({"username": "ann", "password": "x"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("server_url")), "{body}");
    let (status, body) = connect(&app, &token, json!({"provider": "yahoo", "username": "ann", "password": "x"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("provider")), "{body}");
    let (status, body) = connect(&app, &token, json!({"server_url": server.base, "password": "x"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("username")), "{body}");
    let none: Value = app.get(&format!("{BASE}/"), &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0, "{none}");

    let (status, conn) =
        connect(&app, &token, json!({"server_url": server.base, "username": "ann", "password": ANN.1})).await;
    assert_eq!(status, StatusCode::OK, "{conn}");
    assert_eq!((conn["provider"].as_str(), conn["status"].as_str()), (Some("caldav"), Some("active")), "{conn}");
    assert_eq!(conn["account_email"], "ann@127.0.0.1", "a bare user name is shown with its server");
    assert!(conn["token_expires_at"].is_null(), "a password does not expire: {conn}");
    let id = conn["id"].as_str().unwrap().to_owned();
    let cals: Value = app.get(&format!("{BASE}/{id}/calendars/"), &token).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = cals.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Work"], "a to-do list holds no events: {cals}");
    assert_eq!((cals[0]["color"].as_str(), cals[0]["primary"].as_bool()), (Some("#0f5aa3"), Some(true)), "{cals}");
    // The password is sealed at rest.
    let stored = stored_tokens(&app, backend).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("v1.") && !stored[0].contains(ANN.1), "the sign-in is sealed at rest");

    // The initial import: the series whole, with its moved and cancelled occurrences.
    let a = sync_now(&app, &token, &id).await;
    assert_eq!(a["status"], "success", "{a}");
    assert_eq!(
        local(&app, &token, "Stand-up").await,
        [
            ("Stand-up".to_owned(), at(24 + 8)),
            ("Stand-up (late)".to_owned(), at(48 + 9)),
            ("Stand-up".to_owned(), at(96 + 8)),
            ("Stand-up".to_owned(), at(120 + 8)),
        ]
    );
    assert_eq!(local(&app, &token, "Partner").await, [("Partner meeting".to_owned(), at(9))]);
    let all: Value = app.get("/api/appointments/?limit=500", &token).send().await.unwrap().json().await.unwrap();
    let closed = all["items"].as_array().unwrap().iter().find(|a| a["title"] == "Office closed").expect("all-day");
    assert_eq!(closed["all_day"], true, "{closed}");
    let quiet = sync_now(&app, &token, &id).await;
    assert_eq!(counts(&quiet), [0; 6], "nothing new: {quiet}");

    // A push, and no echo of it.
    let start = at(30);
    let body = json!({"title": "Intake: Meyer", "start": start.to_rfc3339(), "end": (start + Duration::hours(1)).to_rfc3339(),
                      "time_zone": "Europe/Berlin", "attendees": [{"email": "client@example.com", "name": "Client"}]});
    let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let intake: Value = resp.json().await.unwrap();
    let a = sync_now(&app, &token, &id).await;
    assert_eq!(counts(&a), [0, 0, 0, 1, 0, 0], "{a}");
    let paths = server.list(&http, ANN, "/ann/work/").await;
    assert_eq!(paths.len(), 4, "{paths:?}");
    let pushed =
        paths.iter().find(|p| !["partner", "standup", "closed"].iter().any(|s| p.contains(s))).unwrap().clone();
    let text = server.get(&http, ANN, &pushed).await.unwrap().replace("\r\n ", "");
    assert!(text.contains(&format!("X-CALSYNC-ID:{}", intake["id"].as_str().unwrap())), "{text}");
    assert!(
        text.contains("SCHEDULE-AGENT=CLIENT") && text.contains("mailto:client@example.com"),
        "guests travel, unmailed: {text}"
    );
    assert!(text.contains("BEGIN:VTIMEZONE") && text.contains("TZID=Europe/Berlin"), "{text}");
    let quiet = sync_now(&app, &token, &id).await;
    assert_eq!(counts(&quiet), [0; 6], "our own write is no echo: {quiet}");

    // The series both ways: here the fourth occurrence is cancelled and the series renamed;
    // there (a calendar app) the fifth is moved.
    let series = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "Stand-up" && !a["recurrence"].as_array().unwrap().is_empty())
        .expect("the series")
        .clone();
    let sid = series["id"].as_str().unwrap();
    let occ = format!("/api/appointments/{sid}/occurrences/{}/", at(96 + 8).format("%Y-%m-%dT%H:%M:%SZ"));
    assert_eq!(app.delete(&occ, &token).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let resp = app
        .patch(&format!("/api/appointments/{sid}/"), &token)
        .json(&json!({"title": "Daily stand-up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    let a = sync_now(&app, &token, &id).await;
    assert_eq!(a["status"], "success", "{a}");
    assert_eq!(
        remote(&server, &http, "/ann/work/standup.ics").await,
        [
            ("Daily stand-up".to_owned(), at(24 + 8)),
            ("Stand-up (late)".to_owned(), at(48 + 9)),
            ("Daily stand-up".to_owned(), at(120 + 8)),
        ],
        "cancelled and renamed there, the app's moved occurrence kept"
    );
    let text = server.get(&http, ANN, "/ann/work/standup.ics").await.unwrap();
    assert_eq!(
        text.matches("BEGIN:VEVENT").count(),
        2,
        "one resource: master and override, no per-occurrence events: {text}"
    );
    let moved = text.replacen(
        "END:VCALENDAR",
        &format!(
            "BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261201T000000Z\r\nRECURRENCE-ID:{}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:Stand-up (Friday)\r\nEND:VEVENT\r\nEND:VCALENDAR",
            stamp(at(120 + 8)),
            stamp(at(120 + 10)),
            stamp(at(120 + 10) + Duration::minutes(15))
        ),
        1,
    );
    assert_eq!(server.put(&http, ANN, "/ann/work/standup.ics", &moved).await, 204);
    // And the meeting deleted there.
    assert!(matches!(server.delete(&http, ANN, "/ann/work/partner.ics").await, 200 | 204));
    let a = sync_now(&app, &token, &id).await;
    assert_eq!(a["status"], "success", "{a}");
    assert_eq!(
        local(&app, &token, "").await.into_iter().filter(|o| o.0.contains("tand-up")).collect::<Vec<_>>(),
        [
            ("Daily stand-up".to_owned(), at(24 + 8)),
            ("Stand-up (late)".to_owned(), at(48 + 9)),
            ("Stand-up (Friday)".to_owned(), at(120 + 10)),
        ]
    );
    assert!(local(&app, &token, "Partner").await.is_empty(), "deleted there, deleted here");
    let quiet = sync_now(&app, &token, &id).await;
    assert_eq!(counts(&quiet), [0; 6], "{quiet}");

    // The app takes its moved occurrence back to the rule (the override goes, no EXDATE): the
    // occurrence here follows.
    let text = server.get(&http, ANN, "/ann/work/standup.ics").await.unwrap().replace("\r\n ", "");
    let lines: Vec<&str> = text.split("\r\n").collect();
    let rid = lines.iter().position(|l| l.starts_with("RECURRENCE-ID") && l.ends_with(&stamp(at(48 + 8)))).unwrap();
    let begin = lines[..rid].iter().rposition(|l| *l == "BEGIN:VEVENT").unwrap();
    let end = rid + lines[rid..].iter().position(|l| *l == "END:VEVENT").unwrap();
    let reverted: Vec<&str> = lines[..begin].iter().chain(&lines[end + 1..]).copied().collect();
    assert_eq!(server.put(&http, ANN, "/ann/work/standup.ics", &reverted.join("\r\n")).await, 204);
    let a = sync_now(&app, &token, &id).await;
    assert_eq!(a["status"], "success", "{a}");
    assert_eq!(
        local(&app, &token, "").await.into_iter().filter(|o| o.0.contains("tand-up")).collect::<Vec<_>>(),
        [
            ("Daily stand-up".to_owned(), at(24 + 8)),
            ("Daily stand-up".to_owned(), at(48 + 8)),
            ("Stand-up (Friday)".to_owned(), at(120 + 10)),
        ],
        "back to the rule here too"
    );
    let quiet = sync_now(&app, &token, &id).await;
    assert_eq!(counts(&quiet), [0; 6], "{quiet}");

    // The app password is revoked: the connection says so and asks to reconnect.
    server.set_users(&[("ann", "app-specific-2")]);
    let a = sync_now(&app, &token, &id).await;
    assert_eq!(a["status"], "failed", "{a}");
    let c: Value = app.get(&format!("{BASE}/{id}/"), &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(c["status"], "revoked", "{c}");
    assert!(c["status_message"].as_str().unwrap().contains("Reconnect"), "{c}");
    // Reconnecting with the new password brings the same connection back.
    let (status, again) =
        connect(&app, &token, json!({"server_url": server.base, "username": "ann", "password": "app-specific-2"}))
            .await;
    assert_eq!(
        (status, again["id"].as_str(), again["status"].as_str()),
        (StatusCode::OK, Some(id.as_str()), Some("active")),
        "{again}"
    );
    let a = sync_now(&app, &token, &id).await;
    assert_eq!((a["status"].as_str(), counts(&a)), (Some("success"), [0; 6]), "{a}");
}

/// Every access token as stored (sealed), read with SQL.
async fn stored_tokens(app: &TestApp, backend: Backend) -> Vec<String> {
    use sqlx::Connection;
    let q = "SELECT access_token FROM oauth_connections WHERE access_token IS NOT NULL";
    let rows: Vec<(String,)> = match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.url_db).await.unwrap();
            sqlx::query_as(q).fetch_all(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.url_db).await.unwrap();
            sqlx::query_as(q).fetch_all(&mut c).await.unwrap()
        }
    };
    rows.into_iter().map(|(t,)| t).collect()
}

calsync_testkit::backend_tests!(caldav_connection_syncs_both_ways);

/// The Calendar Sync page's CalDAV form: a refusal comes back next to the field with what was
/// typed (never the password), a success redirects, and a revoked connection's Reconnect opens
/// the form with its server and user name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_connects_caldav_with_a_form() {
    let server = Radicale::start(&[ANN]);
    let http = calsync_providers::http_client(std::time::Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.user("acme", "ann@acme.test", "staff").await;
    let (jar, _) = sign_in(&app, "ann@acme.test", common::PASSWORD).await;
    let page = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("id=\"caldav-form\"") && page.contains("Apple iCloud") && page.contains("Fastmail"),
        "{page}"
    );
    let csrf = form_value(&page, "csrf_token");
    let post = |password: &'static str| {
        jar.apply(app.http.post(app.url("/calendar/connect-caldav"))).form(&[
            ("csrf_token", csrf.as_str()),
            ("provider", ""),
            ("server_url", server.base.as_str()),
            ("username", "ann"),
            ("password", password),
        ])
    };
    let resp = post("wrong-password-123").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"caldav-error\"") && html.contains("app-specific password"), "{html}");
    assert!(
        html.contains(
            "id=\"caldav-password\" autocomplete=\"current-password\" required maxlength=\"1024\" aria-invalid=\"true\""
        ),
        "{html}"
    );
    assert!(html.contains(&format!("value=\"{}\"", server.base)) && !html.contains("wrong-password-123"), "{html}");
    // Without the page's CSRF token nothing happens.
    let forged = jar
        .apply(app.http.post(app.url("/calendar/connect-caldav")))
        .form(&[
            ("csrf_token", "forged"),
            ("server_url", server.base.as_str()),
            ("username", "ann"),
            ("password", ANN.1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let resp = post("app-specific-1").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page =
        jar.apply(app.http.get(app.url("/calendar-sync?notice=connected"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("CalDAV calendar") && page.contains("data-status=\"active\""), "{page}");

    // Revoked: the card's Reconnect opens the form with the server and user name filled in.
    server.set_users(&[("ann", "app-specific-2")]);
    let id = page.split("data-connection=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let sync = jar
        .apply(app.http.post(app.url(&format!("/calendar/{id}/sync"))))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(sync.status().is_redirection() || sync.status().is_success(), "{}", sync.status());
    let page = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("href=\"/calendar-sync?reconnect={id}#caldav\"")), "{page}");
    let form = jar
        .apply(app.http.get(app.url(&format!("/calendar-sync?reconnect={id}"))))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("id=\"caldav\" open") && form.contains("value=\"ann\""), "{form}");
    assert!(form.contains(&format!("value=\"{}/ann/\"", server.base)), "the principal: {form}");
}
