//! What Graph use costs the state file: series edits keep a bounded history (and a delta
//! round older than it is refused, as an expired Graph delta token is), listing
//! occurrences stores nothing, occurrence ids survive a restart, and nextLinks keep `$top`.

mod common;

use std::collections::BTreeSet;

use calsync_sandbox::{Sandbox, SandboxConfig};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";
const WINDOW: &str = "startDateTime=2024-03-01T00:00:00Z&endDateTime=2024-05-01T00:00:00Z";

async fn open(path: &std::path::Path) -> (Harness, Sandbox, tokio::task::JoinHandle<()>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = SandboxConfig {
        state_file: Some(path.to_owned()),
        public_base_url: base.clone(),
        seed: Some(11),
        ..Default::default()
    };
    let sandbox = Sandbox::open(config).unwrap();
    let router = sandbox.router();
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    (Harness { base, http }, sandbox, task)
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("calsync-sandbox-ms-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("sandbox.json")
}

/// The state file's size after a save.
fn saved_size(sandbox: &Sandbox, path: &std::path::Path) -> u64 {
    sandbox.save().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn weekly(minute: u32) -> Value {
    json!({"subject": "Weekly",
        "start": {"dateTime": format!("2024-03-04T10:{minute:02}:00"), "timeZone": "UTC"},
        "end": {"dateTime": format!("2024-03-04T10:{:02}:00", minute + 10), "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2024-03-04", "numberOfOccurrences": 6}}})
}

/// Follows nextLinks to the deltaLink.
async fn delta_round(h: &Harness, t: &str, mut url: String) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    loop {
        let body = json_of(h.http.get(&url).bearer_auth(t).send().await.unwrap(), StatusCode::OK).await;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_owned(),
            None => return (items, body["@odata.deltaLink"].as_str().unwrap().to_owned()),
        }
    }
}

fn ids(items: &[Value], removed: bool) -> BTreeSet<String> {
    items
        .iter()
        .filter(|e| e.get("@removed").is_some() == removed)
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn forty_series_edits_keep_the_state_file_small_and_delta_still_reports_drops() {
    let path = temp_path("history");
    let (h, sandbox, _task) = open(&path).await;
    let t = h.ms_account("edits@example.com").await;
    let m =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(weekly(0))).await, StatusCode::CREATED).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let (_, ancient) = delta_round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{WINDOW}"))).await;
    let mut sizes = Vec::new();
    let mut recent = String::new();
    let mut before_last = BTreeSet::new();
    for i in 1..=40u32 {
        if i == 40 {
            let (items, link) = delta_round(&h, &t, recent.clone()).await;
            recent = link;
            before_last = ids(&items, false);
        } else if i >= 38 {
            recent = delta_round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{WINDOW}"))).await.1;
        }
        // Every edit moves the series, so each is a new version in the history.
        let patch = json!({"start": weekly(i)["start"], "end": weekly(i)["end"]});
        let r = h.send(Method::PATCH, &t, &format!("{G}/me/events/{mid}"), Some(patch)).await;
        json_of(r, StatusCode::OK).await;
        if matches!(i, 6 | 12 | 35 | 40) {
            sizes.push(saved_size(&sandbox, &path));
        }
        if i == 12 {
            // Whole events nested in each other's history doubled the file with every edit.
            assert!(sizes[1] < sizes[0] * 2, "linear, not exponential: {sizes:?}");
        }
    }
    assert!(sizes[3] < sizes[2] + 2_000, "bounded once the kept history is full: {sizes:?}");
    assert!(sizes[3] < 64_000, "{sizes:?}");
    eprintln!("state file after 6, 12, 35, 40 series edits: {sizes:?} bytes");

    // A round begun just before the last edit sees its six occurrences dropped (and six new).
    let (items, _) = delta_round(&h, &t, recent).await;
    assert_eq!(before_last.len(), 6);
    assert_eq!(ids(&items, true), before_last, "the old occurrences come as @removed");
    assert_eq!(ids(&items, false).len(), 6);
    assert!(ids(&items, false).is_disjoint(&before_last));

    // A round older than the kept history is refused like an expired delta token, with a
    // link to start over; it is never answered without the removals it would need.
    let r = h.http.get(&ancient).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    let restart = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SyncStateNotFound");
    let restart = restart.expect("a Location to start a new round");
    let (fresh, _) = delta_round(&h, &t, restart).await;
    assert_eq!(ids(&fresh, false).len(), 6);
}

#[tokio::test]
async fn listing_occurrences_stores_nothing_and_their_ids_survive_a_restart() {
    let path = temp_path("occurrences");
    let (h, sandbox, task) = open(&path).await;
    let t = h.ms_account("lister@example.com").await;
    let daily = json!({"subject": "Daily",
        "start": {"dateTime": "2020-01-01T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2020-01-01T09:15:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
            "range": {"type": "noEnd", "startDate": "2020-01-01"}}});
    let m = json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(daily)).await, StatusCode::CREATED).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let view = |year: i32| {
        format!(
            "{G}/me/calendarView?startDateTime={year}-01-01T00:00:00Z&endDateTime={}-01-01T00:00:00Z&$top=1000",
            year + 1
        )
    };
    let first = json_of(h.get(&t, &view(2020)).await, StatusCode::OK).await;
    let kept = first["value"][100]["id"].as_str().unwrap().to_owned();
    let before = saved_size(&sandbox, &path);
    let mut listed = 0;
    for year in 2021..2031 {
        let page = json_of(h.get(&t, &view(year)).await, StatusCode::OK).await;
        listed += page["value"].as_array().unwrap().len();
    }
    assert!(listed > 3_600, "{listed}");
    let after = saved_size(&sandbox, &path);
    assert!(after.abs_diff(before) < 64, "{listed} occurrence ids listed: {before} → {after} bytes");

    // Ids resolve through the secret in the state file, so they outlive the process.
    task.abort();
    drop(sandbox);
    let (h2, _sandbox, _task) = open(&path).await;
    let got = json_of(h2.get(&t, &format!("{G}/me/events/{kept}")).await, StatusCode::OK).await;
    assert_eq!(got["seriesMasterId"], mid.as_str());
    assert_eq!(got["start"]["dateTime"], "2020-04-10T09:00:00.0000000");
    let again = json_of(h2.get(&t, &view(2020)).await, StatusCode::OK).await;
    assert_eq!(again["value"][100]["id"], kept.as_str(), "the same id after the restart");
}

#[tokio::test]
async fn next_links_keep_the_page_size_asked_with_top() {
    let h = start().await;
    let t = h.ms_account("top@example.com").await;
    for day in 1..=10 {
        let ev = json!({"subject": format!("E{day}"),
            "start": {"dateTime": format!("2024-03-{day:02}T10:00:00"), "timeZone": "UTC"},
            "end": {"dateTime": format!("2024-03-{day:02}T11:00:00"), "timeZone": "UTC"}});
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(ev)).await, StatusCode::CREATED).await;
    }
    for path in [format!("{G}/me/calendarView?{WINDOW}&$top=3"), format!("{G}/me/events?$top=3")] {
        let mut url = h.url(&path);
        let mut lens = Vec::new();
        loop {
            let body = json_of(h.http.get(&url).bearer_auth(&t).send().await.unwrap(), StatusCode::OK).await;
            lens.push(body["value"].as_array().unwrap().len());
            match body["@odata.nextLink"].as_str() {
                Some(n) => url = n.to_owned(),
                None => break,
            }
        }
        assert_eq!(lens, [3, 3, 3, 1], "{path}");
    }
}
