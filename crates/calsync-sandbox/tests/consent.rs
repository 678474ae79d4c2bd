//! The consent pages a newcomer sees in the embedded default: a demo address ready when the
//! sandbox knows no account, the known accounts otherwise, the scopes in words, and sample
//! events in a new account's calendar.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9999/calendar/oauth/callback";

fn google_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("client_id", "calsync-dev"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("access_type", "offline"),
        ("state", "st"),
        (
            "scope",
            "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/calendar.events",
        ),
    ]
}

fn ms_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("client_id", "calsync-dev"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "st"),
        ("scope", "offline_access Calendars.ReadWrite User.Read"),
    ]
}

async fn page(h: &Harness, path: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&h.url(path)).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    let resp = h.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

/// The scope checkboxes of a consent page, all checked as rendered.
fn offered_scopes(html: &str) -> Vec<String> {
    html.split(r#"name="grant_scope" value=""#).skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()).collect()
}

/// Posts the consent form as the page would: every offered scope checked, the account typed.
async fn allow(h: &Harness, path: &str, params: &[(&str, &str)], html: &str, new_account: &str) -> url::Url {
    let scopes = offered_scopes(html);
    assert!(!scopes.is_empty(), "{html}");
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.extend(scopes.iter().map(|s| ("grant_scope", s.as_str())));
    form.push(("new_account", new_account));
    form.push(("decision", "allow"));
    let resp = h.http.post(h.url(path)).form(&form).send().await.unwrap();
    let loc = location(&resp);
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    loc
}

fn summaries(items: &[Value], key: &str) -> Vec<String> {
    items.iter().map(|e| e[key].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn google_consent_offers_a_demo_account_that_comes_with_sample_events() {
    let h = start().await;
    let auth = "/google/o/oauth2/v2/auth";
    let html = page(&h, auth, &google_params()).await;
    assert!(html.contains(r#"name="viewport""#), "readable on a phone");
    assert!(html.contains("calsync wants to access your Google account"));
    assert!(html.contains("View and edit events on all your calendars"));
    assert!(html.contains(r#"value="demo@google.sandbox.test""#), "a ready demo address");
    allow(&h, auth, &google_params(), &html, "demo@google.sandbox.test").await;

    // The next consent lists the account, selected.
    let html = page(&h, auth, &google_params()).await;
    assert!(html.contains(r#"value="demo@google.sandbox.test" checked"#), "{html}");
    assert!(!html.contains(r#"name="new_account" value="demo"#));

    // Writing the samples widened nothing: a silent re-authorization asking for the scopes
    // already granted gets exactly those, not the full `calendar` scope.
    let mut silent = google_params();
    silent.extend([("prompt", "none"), ("include_granted_scopes", "true"), ("login_hint", "demo@google.sandbox.test")]);
    let mut url = url::Url::parse(&h.url(auth)).unwrap();
    url.query_pairs_mut().extend_pairs(&silent);
    let back = location(&h.http.get(url).send().await.unwrap());
    let code = query_param(&back, "code").expect("silent consent");
    let tok: Value = h
        .http
        .post(h.url("/google/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "calsync-dev"),
            ("client_secret", "calsync-dev-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let granted: Vec<&str> = tok["scope"].as_str().unwrap().split(' ').collect();
    assert!(!granted.contains(&"https://www.googleapis.com/auth/calendar"), "{granted:?}");

    let token = h.google_account("demo@google.sandbox.test").await;
    let now = chrono::Utc::now();
    let url = format!(
        "/google/calendar/v3/calendars/primary/events?singleEvents=true&orderBy=startTime&timeMin={}&timeMax={}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (now + chrono::Duration::days(70)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let list = json_of(h.get(&token, &url).await, StatusCode::OK).await;
    let items = list["items"].as_array().unwrap();
    let names = summaries(items, "summary");
    assert_eq!(names.iter().filter(|s| *s == "Team sync").count(), 7, "eight weeks, one cancelled: {names:?}");
    let moved: Vec<_> = items
        .iter()
        .filter(|e| e["summary"] == "Team sync" && e["start"]["dateTime"].as_str().unwrap().contains("T15:00:00"))
        .collect();
    assert_eq!(moved.len(), 1, "one occurrence moved to the afternoon");
    assert!(moved[0]["originalStartTime"].is_object());
    let offsite = items.iter().find(|e| e["summary"] == "Firm offsite").expect("all-day event");
    assert!(offsite["start"]["date"].is_string() && offsite["start"]["dateTime"].is_null());
    let tokyo = items.iter().find(|e| e["summary"] == "Call with the Tokyo office").expect("zoned event");
    assert_eq!(tokyo["start"]["timeZone"], "Asia/Tokyo");
    assert!(tokyo["start"]["dateTime"].as_str().unwrap().ends_with("+09:00"), "{tokyo}");

    // The sandbox's own writes are not client traffic.
    let requests = h.http.get(h.url("/_sandbox/requests")).send().await.unwrap().json::<Value>().await.unwrap();
    let posts: u64 = requests["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("POST /google/calendar"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(posts, 0, "{requests}");
}

#[tokio::test]
async fn microsoft_consent_offers_a_demo_account_that_comes_with_sample_events() {
    let h = start().await;
    let auth = "/microsoft/common/oauth2/v2.0/authorize";
    let html = page(&h, auth, &ms_params()).await;
    assert!(html.contains("calsync wants to access your Microsoft account"));
    assert!(html.contains("Have full access to your calendars"));
    assert!(html.contains(r#"value="demo@outlook.sandbox.test""#));
    allow(&h, auth, &ms_params(), &html, "demo@outlook.sandbox.test").await;

    let token = h.ms_account("demo@outlook.sandbox.test").await;
    let now = chrono::Utc::now();
    let url = format!(
        "/microsoft/graph/v1.0/me/calendarView?startDateTime={}&endDateTime={}&$top=100",
        now.format("%Y-%m-%dT%H:%M:%SZ"),
        (now + chrono::Duration::days(70)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let list = json_of(h.get(&token, &url).await, StatusCode::OK).await;
    let items = list["value"].as_array().unwrap();
    let names = summaries(items, "subject");
    assert_eq!(names.iter().filter(|s| *s == "Team sync").count(), 7, "{names:?}");
    assert!(items.iter().any(|e| e["subject"] == "Team sync" && e["type"] == "exception"), "one moved occurrence");
    let offsite = items.iter().find(|e| e["subject"] == "Firm offsite").expect("all-day event");
    assert_eq!(offsite["isAllDay"], json!(true));
    assert!(names.iter().any(|s| s == "Call with the Tokyo office"));
}
