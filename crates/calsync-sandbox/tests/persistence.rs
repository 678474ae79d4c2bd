//! The state file: a sandbox opened on it again has the same accounts, tokens, events,
//! cursors and subscriptions; changes are written in the background; a corrupt file is an
//! error, never replaced.

mod common;

use calsync_sandbox::{Sandbox, SandboxConfig, StateFileError};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const EVENTS: &str = "/google/calendar/v3/calendars/primary/events";
const G: &str = "/microsoft/graph/v1.0";

fn config(path: &std::path::Path, base: &str) -> SandboxConfig {
    SandboxConfig { state_file: Some(path.to_owned()), public_base_url: base.to_owned(), ..Default::default() }
}

/// A sandbox opened on `path`, served on a fresh port; the server task is returned so the
/// test can stop it (a "restart").
async fn open(path: &std::path::Path) -> (Harness, Sandbox, tokio::task::JoinHandle<()>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::open(config(path, &base)).unwrap();
    let router = sandbox.router();
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    (Harness { base, http }, sandbox, task)
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("calsync-sandbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("sandbox.json")
}

#[tokio::test]
async fn accounts_tokens_events_and_cursors_survive_a_restart() {
    let path = temp_path("restart");
    let (h, sandbox, task) = open(&path).await;
    let google = h.control("/_sandbox/accounts", json!({"provider": "google", "email": "keep@example.com"})).await;
    let gt = google["access_token"].as_str().unwrap().to_owned();
    let ev = json!({"summary": "kept", "start": {"dateTime": "2026-12-01T09:00:00Z"},
        "end": {"dateTime": "2026-12-01T10:00:00Z"}});
    let created = json_of(h.send(Method::POST, &gt, EVENTS, Some(ev)).await, StatusCode::OK).await;
    let full = json_of(h.get(&gt, EVENTS).await, StatusCode::OK).await;
    let sync_token = full["nextSyncToken"].as_str().unwrap().to_owned();

    let mt = h.ms_account("keep@example.org").await;
    let mev = json!({"subject": "kept", "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"}});
    let mcreated =
        json_of(h.send(Method::POST, &mt, &format!("{G}/me/events"), Some(mev)).await, StatusCode::CREATED).await;
    // A full delta round, a push channel and a subscription, all to be used after the restart.
    let mut next =
        format!("{G}/me/calendarView/delta?startDateTime=2026-11-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z");
    let delta_link = loop {
        let page = json_of(h.get(&mt, &next).await, StatusCode::OK).await;
        if let Some(link) = page["@odata.deltaLink"].as_str() {
            break link.strip_prefix(&h.base).unwrap().to_owned();
        }
        next = page["@odata.nextLink"].as_str().unwrap().strip_prefix(&h.base).unwrap().to_owned();
    };
    let (hook, mut rx) = receiver().await;
    h.control("/_sandbox/push", json!({"coalesce_ms": 0})).await;
    let watch = json!({"id": "kept-channel", "type": "web_hook", "address": format!("{hook}/ok")});
    json_of(h.send(Method::POST, &gt, &format!("{EVENTS}/watch"), Some(watch)).await, StatusCode::OK).await;
    assert_eq!(next_received(&mut rx).await.headers["x-goog-resource-state"], "sync");
    let exp = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sub = json!({"changeType": "created", "notificationUrl": format!("{hook}/ok"), "resource": "me/events",
        "expirationDateTime": exp, "clientState": "kept"});
    let sub =
        json_of(h.send(Method::POST, &mt, &format!("{G}/subscriptions"), Some(sub)).await, StatusCode::CREATED).await;
    assert!(next_received(&mut rx).await.query.starts_with("validationToken="));
    h.advance(600).await;
    sandbox.save().unwrap();
    task.abort();
    drop(sandbox);

    let (h2, _sandbox, _task) = open(&path).await;
    let got =
        json_of(h2.get(&gt, &format!("{EVENTS}/{}", created["id"].as_str().unwrap())).await, StatusCode::OK).await;
    assert_eq!(got["summary"], "kept", "the access token and the event survived");
    assert_eq!(got["etag"], created["etag"]);
    let inc = json_of(h2.get(&gt, &format!("{EVENTS}?syncToken={sync_token}")).await, StatusCode::OK).await;
    assert_eq!(inc["items"].as_array().unwrap().len(), 0, "the sync token still answers, with nothing new");
    let refreshed = h2
        .http
        .post(h2.url("/google/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", google["refresh_token"].as_str().unwrap()),
            ("client_id", calsync_sandbox::DEV_CLIENT_ID),
            ("client_secret", calsync_sandbox::DEV_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK, "the refresh token survived");
    let mgot =
        json_of(h2.get(&mt, &format!("{G}/me/events/{}", mcreated["id"].as_str().unwrap())).await, StatusCode::OK)
            .await;
    assert_eq!(mgot["subject"], "kept");

    // Channels and subscriptions came back: new events are pushed to the same receiver.
    h2.control("/_sandbox/push", json!({"coalesce_ms": 0})).await;
    let ev = json!({"summary": "pushed", "start": {"dateTime": "2026-12-03T09:00:00Z"},
        "end": {"dateTime": "2026-12-03T10:00:00Z"}});
    json_of(h2.send(Method::POST, &gt, EVENTS, Some(ev)).await, StatusCode::OK).await;
    let push = next_received(&mut rx).await;
    assert_eq!(
        (push.headers["x-goog-channel-id"].as_str(), push.headers["x-goog-resource-state"].as_str()),
        ("kept-channel", "exists")
    );
    let mev = json!({"subject": "after", "start": {"dateTime": "2026-12-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"}});
    let mafter =
        json_of(h2.send(Method::POST, &mt, &format!("{G}/me/events"), Some(mev)).await, StatusCode::CREATED).await;
    let note: serde_json::Value = serde_json::from_str(&next_received(&mut rx).await.body).unwrap();
    assert_eq!(note["value"][0]["subscriptionId"], sub["id"]);
    assert_eq!(note["value"][0]["resourceData"]["id"], mafter["id"]);
    // The delta link made before the restart still answers, with the new event.
    let changes = json_of(h2.get(&mt, &delta_link).await, StatusCode::OK).await;
    let ids: Vec<_> = changes["value"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    assert!(ids.contains(&mafter["id"]), "{changes}");

    // The clock offset came back: a new event is stamped at least 600 s after the first.
    let ev = json!({"summary": "after", "start": {"dateTime": "2026-12-02T09:00:00Z"},
        "end": {"dateTime": "2026-12-02T10:00:00Z"}});
    let after = json_of(h2.send(Method::POST, &gt, EVENTS, Some(ev)).await, StatusCode::OK).await;
    let stamp = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v["updated"].as_str().unwrap()).unwrap();
    assert!(stamp(&after) - stamp(&created) >= chrono::Duration::seconds(600));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn changes_are_written_in_the_background() {
    let path = temp_path("background");
    let (h, _sandbox, _task) = open(&path).await;
    h.google_account("later@example.com").await;
    let mut saved = String::new();
    for _ in 0..100 {
        saved = std::fs::read_to_string(&path).unwrap_or_default();
        if saved.contains("later@example.com") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(saved.contains("later@example.com"), "the account reached the state file within 5 s");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "it holds live tokens");
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn a_corrupt_state_file_is_an_error_and_left_alone() {
    let path = temp_path("corrupt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"version\": 1, \"world\": tru").unwrap();
    let err = Sandbox::open(config(&path, "http://127.0.0.1:1")).err().expect("refused");
    assert!(matches!(err, StateFileError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("move it away"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"version\": 1, \"world\": tru", "not replaced");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
