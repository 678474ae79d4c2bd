//! The ICS feed (`/ics/{token}.ics`) as a calendar app reads it: made and turned off from the
//! Calendar Sync page, and expanded by Python's `icalendar` + `recurring-ical-events` (installed
//! by scripts/test.sh into its virtualenv, `CALSYNC_PYTHON`) into exactly the occurrences
//! calsync's own API lists for the same range.

mod common;

use calsync_testkit::{Backend, backend_tests};
use chrono::{Datelike, Duration, Utc};
use common::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `(title, start)` of every occurrence Python's libraries find in `ics` within `[from, to)`:
/// timed starts as UTC `YYYY-MM-DDTHH:MM:SSZ`, all-day ones as dates.
fn python_occurrences(ics: &str, from: &str, to: &str) -> BTreeSet<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.ics");
    std::fs::write(&file, ics).unwrap();
    let script = r#"
import sys, json, datetime, icalendar, recurring_ical_events
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
start = datetime.datetime.fromisoformat(sys.argv[2]); end = datetime.datetime.fromisoformat(sys.argv[3])
out = []
for e in recurring_ical_events.of(cal).between(start, end):
    s = e['DTSTART'].dt
    if isinstance(s, datetime.datetime):
        s = s.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    else:
        s = s.isoformat()
    out.append([str(e.get('SUMMARY')), s])
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python()).args(["-c", script]).arg(&file).args([from, to]).output().unwrap();
    assert!(
        out.status.success(),
        "python (CALSYNC_PYTHON={}) needs icalendar and recurring-ical-events (scripts/test.sh installs them): {}",
        python(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter().collect()
}

/// The same from calsync's API (`expand=true`), private ones as the feed shows them: "Busy".
async fn api_occurrences(app: &TestApp, token: &str, from: &str, to: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/appointments/?expand=true&limit=200&start={from}&end={to}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.get(&url, token).send().await.unwrap().json().await.unwrap();
        for a in page["items"].as_array().unwrap() {
            let title =
                if a["visibility"] == "private" { "Busy".to_owned() } else { a["title"].as_str().unwrap().to_owned() };
            let start = a["start"].as_str().unwrap();
            let start = if a["all_day"] == true {
                start.to_owned()
            } else {
                chrono::DateTime::parse_from_rfc3339(start)
                    .unwrap()
                    .with_timezone(&Utc)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            };
            out.insert((title, start));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = app.post("/api/appointments/", token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

/// The Calendar Sync page's "Make a feed address": the address, shown once.
async fn new_feed(app: &TestApp, jar: &common::Cookies) -> String {
    let page = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    let csrf = common::form_value(&page, "csrf_token");
    let made = jar
        .apply(app.http.post(app.url("/calendar-sync/feed")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::OK);
    let html = made.text().await.unwrap();
    let url =
        html.split("id=\"feed-url\"").nth(1).unwrap().split("value=\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(url.starts_with(&app.url("/ics/ics_")) && url.ends_with(".ics"), "{url}");
    url.to_owned()
}

async fn feed_expands_in_python_like_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    let bob = app.user("acme", "bob@acme.test", "staff").await;
    let today = Utc::now().date_naive();
    let monday = today + Duration::days(7 - i64::from(today.weekday().num_days_from_monday()));
    // A single one in Berlin, an all-day one, a private one, a colleague's (not in Ann's feed)…
    create(&app, &token, json!({"title": "Review, part 1; notes \\ more", "start": format!("{monday}T10:00:00+01:00"), "end": format!("{monday}T11:00:00+01:00"), "time_zone": "Europe/Berlin"})).await;
    create(&app, &token, json!({"title": "Offsite", "start": (monday + Duration::days(2)).to_string(), "end": (monday + Duration::days(4)).to_string(), "all_day": true, "time_zone": "UTC"})).await;
    create(&app, &token, json!({"title": "Dentist", "start": format!("{}T08:00:00Z", monday + Duration::days(1)), "end": format!("{}T09:00:00Z", monday + Duration::days(1)), "time_zone": "UTC", "visibility": "private"})).await;
    create(
        &app,
        &bob,
        json!({"title": "Bob's", "start": format!("{monday}T12:00:00Z"), "end": format!("{monday}T13:00:00Z")}),
    )
    .await;
    // … and a weekly series in New York across the March clock change, one occurrence moved and
    // one cancelled.
    let series = create(&app, &token, json!({"title": "Weekly 1:1", "start": format!("{monday}T09:00:00-05:00"), "end": format!("{monday}T09:30:00-05:00"), "time_zone": "America/New_York", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=20"]})).await;
    let id = series["id"].as_str().unwrap();
    let third = (chrono::DateTime::parse_from_rfc3339(&format!("{monday}T14:00:00Z")).unwrap() + Duration::days(14))
        .with_timezone(&Utc);
    let fifth = third + Duration::days(14);
    let moved = app
        .patch(&format!("/api/appointments/{id}/occurrences/{}/", third.to_rfc3339()), &token)
        .json(&json!({"title": "Weekly 1:1 (moved)", "start": (third + Duration::hours(2)).to_rfc3339(), "end": (third + Duration::minutes(150)).to_rfc3339()}))
        .send()
        .await
        .unwrap();
    assert!(moved.status().is_success(), "{}", moved.text().await.unwrap());
    let cancelled = app
        .delete(&format!("/api/appointments/{id}/occurrences/{}/", fifth.to_rfc3339()), &token)
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success(), "{}", cancelled.text().await.unwrap());

    // A private series keeps its moved occurrence private; an occurrence moved into the window
    // from a series that ended before it still arrives (with its series).
    let therapy = create(&app, &token, json!({"title": "Therapy", "start": format!("{}T07:00:00Z", monday + Duration::days(3)), "end": format!("{}T08:00:00Z", monday + Duration::days(3)), "time_zone": "UTC", "visibility": "private", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"]})).await;
    let second = format!("{}T07:00:00Z", monday + Duration::days(10));
    let resp = app
        .patch(&format!("/api/appointments/{}/occurrences/{second}/", therapy["id"].as_str().unwrap()), &token)
        .json(&json!({"title": "Therapy (moved)", "start": format!("{}T09:00:00Z", monday + Duration::days(10)), "end": format!("{}T10:00:00Z", monday + Duration::days(10))}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let past = today - Duration::days(60);
    let old = create(&app, &token, json!({"title": "Old pair", "start": format!("{past}T10:00:00Z"), "end": format!("{past}T11:00:00Z"), "time_zone": "UTC", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"]})).await;
    let later = today + Duration::days(10);
    let resp = app
        .patch(&format!("/api/appointments/{}/occurrences/{}T10:00:00Z/", old["id"].as_str().unwrap(), past + Duration::days(7)), &token)
        .json(&json!({"title": "Old pair (moved)", "start": format!("{later}T10:00:00Z"), "end": format!("{later}T11:00:00Z")}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

    let (jar, _) = common::sign_in(&app, "ann@acme.test", PASSWORD).await;
    let url = new_feed(&app, &jar).await;
    // No session needed: the address is the key.
    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/calendar; charset=utf-8");
    let ics = resp.text().await.unwrap();
    let unfolded = ics.replace("\r\n ", "");
    assert!(unfolded.contains("BEGIN:VTIMEZONE\r\nTZID:America/New_York"), "{ics}");
    assert!(unfolded.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin"), "{ics}");
    assert!(!unfolded.contains("Dentist") && !unfolded.contains("Bob's"), "private and colleagues' stay out: {ics}");
    assert!(!unfolded.contains("Therapy"), "a private series' moved occurrence too: {ics}");

    let (from, to) = (format!("{}T00:00:00Z", today), format!("{}T00:00:00Z", today + Duration::days(200)));
    let theirs = python_occurrences(&ics, &from, &to);
    let ours = api_occurrences(&app, &token, &from, &to).await;
    assert_eq!(theirs, ours, "the feed expands to what the API lists");
    assert_eq!(ours.iter().filter(|(t, _)| t.starts_with("Weekly 1:1")).count(), 19, "20 less the cancelled one");
    assert!(ours.contains(&("Old pair (moved)".to_owned(), format!("{later}T10:00:00Z"))), "{ours:?}");
    assert_eq!(ours.iter().filter(|(t, _)| t == "Busy").count(), 4, "the Dentist and three Therapy sessions");
    assert!(ours.contains(&(
        "Weekly 1:1 (moved)".to_owned(),
        (third + Duration::hours(2)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    )));
    // Wall-clock 09:00 in New York on both sides of the clock change.
    let ny: BTreeSet<&str> = ours.iter().filter(|(t, _)| t == "Weekly 1:1").map(|(_, s)| &s[11..]).collect();
    assert_eq!(ny, BTreeSet::from(["13:00:00Z", "14:00:00Z"]), "{ours:?}");

    // A series made private after one of its occurrences was moved: the moved one is private too.
    let coaching = create(&app, &token, json!({"title": "Coaching", "start": format!("{}T15:00:00Z", monday + Duration::days(1)), "end": format!("{}T16:00:00Z", monday + Duration::days(1)), "time_zone": "UTC", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"]})).await;
    let cid = coaching["id"].as_str().unwrap();
    let resp = app
        .patch(&format!("/api/appointments/{cid}/occurrences/{}T15:00:00Z/", monday + Duration::days(8)), &token)
        .json(&json!({"title": "Coaching (moved)", "start": format!("{}T17:00:00Z", monday + Duration::days(8)), "end": format!("{}T18:00:00Z", monday + Duration::days(8))}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let resp = app
        .patch(&format!("/api/appointments/{cid}/"), &token)
        .json(&json!({"visibility": "private"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let again = app.http.get(&url).send().await.unwrap().text().await.unwrap().replace("\r\n ", "");
    assert!(!again.contains("Coaching"), "{again}");

    // A new address replaces the old one; turning the feed off closes it.
    let newer = new_feed(&app, &jar).await;
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(app.http.get(&newer).send().await.unwrap().status(), StatusCode::OK);
    let page = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"feed-status\">A feed address is active"), "the address itself is not shown again");
    assert!(!page.contains(newer.as_str()));
    let csrf = common::form_value(&page, "csrf_token");
    let off = jar
        .apply(app.http.post(app.url("/calendar-sync/feed/revoke")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.http.get(&newer).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(app.http.get(app.url("/ics/nothing-here.ics")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

backend_tests!(feed_expands_in_python_like_the_api);
