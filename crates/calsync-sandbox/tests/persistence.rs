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
