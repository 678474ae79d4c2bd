//! The two-way sync end to end, black-box: calsync's API on one side, the provider sandbox's
//! Google and Graph APIs on the other, on SQLite and PostgreSQL. Every scenario runs for both
//! providers: edits both ways without echoes, lost responses and half-done writes without
//! duplicates, dead cursors without lost deletions, out-of-window removals, ragged pages,
//! conflicts per strategy, the mass-delete guard, throttling, 412 and a revoked grant.

mod common;

use calsync_testkit::{Backend, backend_tests};
use chrono::{Duration, SecondsFormat, Utc};
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;

const BASE: &str = "/api/calendar/oauth-connections";
const PROVIDERS: [&str; 2] = ["google", "microsoft"];

/// The provider side, spoken to directly over the sandbox's Google and Graph APIs.
struct Remote<'a> {
    app: &'a TestApp,
    provider: &'static str,
    token: String,
}

fn at(hours_from_now: i64) -> chrono::DateTime<Utc> {
    let base = Utc::now().date_naive().and_hms_opt(9, 0, 0).unwrap().and_utc();
    base + Duration::hours(hours_from_now)
}

impl<'a> Remote<'a> {
    async fn new(app: &'a TestApp, provider: &'static str, email: &str) -> Remote<'a> {
        let v = app.control("/_sandbox/accounts", json!({"provider": provider, "email": email})).await;
        Remote { app, provider, token: v["access_token"].as_str().unwrap().to_owned() }
    }

    fn url(&self, path: &str) -> String {
        match self.provider {
            "google" => self.app.sandbox_url(&format!("/google/calendar/v3/calendars/primary/events{path}")),
            _ => self.app.sandbox_url(&format!("/microsoft/graph/v1.0/me/events{path}")),
        }
    }

    fn body(&self, title: &str, start: chrono::DateTime<Utc>) -> Value {
        let end = start + Duration::hours(1);
        let f = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        match self.provider {
            "google" => json!({"summary": title, "start": {"dateTime": f(start)}, "end": {"dateTime": f(end)}}),
            _ => json!({
                "subject": title,
                "start": {"dateTime": f(start).trim_end_matches('Z'), "timeZone": "UTC"},
                "end": {"dateTime": f(end).trim_end_matches('Z'), "timeZone": "UTC"},
            }),
        }
    }

    async fn create(&self, title: &str, start: chrono::DateTime<Utc>) -> String {
        let resp = self
            .app
            .http
            .post(self.url(""))
            .bearer_auth(&self.token)
            .json(&self.body(title, start))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "create: {}", resp.status());
        resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    async fn retitle(&self, id: &str, title: &str) {
        let body = match self.provider {
            "google" => json!({"summary": title}),
            _ => json!({"subject": title}),
        };
        let resp =
            self.app.http.patch(self.url(&format!("/{id}"))).bearer_auth(&self.token).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "patch: {}", resp.status());
    }

    async fn move_to(&self, id: &str, start: chrono::DateTime<Utc>) {
        let mut body = self.body("", start);
        let o = body.as_object_mut().unwrap();
        o.remove("summary");
        o.remove("subject");
        let resp =
            self.app.http.patch(self.url(&format!("/{id}"))).bearer_auth(&self.token).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "move: {}", resp.status());
    }

    async fn delete(&self, id: &str) {
        let resp = self.app.http.delete(self.url(&format!("/{id}"))).bearer_auth(&self.token).send().await.unwrap();
        assert!(resp.status().is_success(), "delete: {}", resp.status());
    }

    /// Live events in the coming year: title by id.
    async fn events(&self) -> HashMap<String, String> {
        self.expanded()
            .await
            .iter()
            .map(|e| {
                let title = e.get("summary").or_else(|| e.get("subject")).and_then(Value::as_str).unwrap_or_default();
                (e["id"].as_str().unwrap().to_owned(), title.to_owned())
            })
            .collect()
    }

    /// Live events in the coming year as the provider expands series (Google `singleEvents`,
    /// Graph `calendarView`, times in UTC), every page.
    async fn expanded(&self) -> Vec<Value> {
        let (from, to) = (at(-24 * 40), at(24 * 365));
        let f = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let first = match self.provider {
            "google" => {
                format!("{}?singleEvents=true&maxResults=2500&timeMin={}&timeMax={}", self.url(""), f(from), f(to))
            }
            _ => self.app.sandbox_url(&format!(
                "/microsoft/graph/v1.0/me/calendarView?startDateTime={}&endDateTime={}&$top=1000",
                f(from),
                f(to)
            )),
        };
        let mut url = first.clone();
        let mut out = Vec::new();
        loop {
            let resp = self.app.http.get(&url).bearer_auth(&self.token).header("Prefer", "outlook.timezone=\"UTC\"");
            let v: Value = resp.send().await.unwrap().json().await.unwrap();
            let items =
                v.get("items").or_else(|| v.get("value")).and_then(Value::as_array).cloned().unwrap_or_default();
            out.extend(items.into_iter().filter(|e| e["status"] != "cancelled"));
            match (v.get("nextPageToken").and_then(Value::as_str), v.get("@odata.nextLink").and_then(Value::as_str)) {
                (Some(p), _) => url = format!("{first}&pageToken={p}"),
                (_, Some(next)) => url = next.to_owned(),
                _ => return out,
            }
        }
    }

    async fn titles(&self) -> Vec<String> {
        let mut t: Vec<String> = self.events().await.into_values().collect();
        t.sort();
        t
    }

    async fn fault(&self, method: &str, path_regex: &str, kind: &str, status: Option<u16>, count: u32) {
        let mut spec = json!({"provider": self.provider, "method": method, "path_regex": path_regex, "kind": kind, "count": count});
        if let Some(s) = status {
            spec["status"] = json!(s);
        }
        self.app.control("/_sandbox/faults", spec).await;
    }

    /// The path of the events collection, for fault rules.
    fn events_path(&self) -> &'static str {
        match self.provider {
            "google" => "/calendars/[^/]+/events$",
            _ => "/me/(calendars/[^/]+/)?events$",
        }
    }

    fn listing_path(&self) -> &'static str {
        match self.provider {
            "google" => "/calendars/[^/]+/events$",
            _ => "/calendarView/delta",
        }
    }
}

/// While a sync runs, `sync_status` says what it has pulled and pushed so far (what the
/// Calendar Sync page's live "Sync now" state shows); once it is done, the attempt has it.
async fn sync_status_shows_progress_while_a_sync_runs(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, _remote) = connected(&app, "google", 0).await;
    for i in 0..4 {
        create_local(&app, &token, &format!("P{i}"), at(30 + i)).await;
    }
    // Slow enough that a sync of four pushes takes about a second.
    app.control("/_sandbox/latency", json!({"milliseconds": 200})).await;
    let running = {
        let (http, url) = (app.http.clone(), app.url(&format!("{BASE}/{conn}/sync_now/")));
        let token = token.clone();
        tokio::spawn(
            async move { http.post(url).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap() },
        )
    };
    let mut seen_pushed = Vec::new();
    while !running.is_finished() {
        let s: Value =
            app.get(&format!("{BASE}/{conn}/sync_status/"), &token).send().await.unwrap().json().await.unwrap();
        if s["in_progress"] == true && s["progress"].is_object() {
            let p = &s["progress"];
            seen_pushed.push((p["requests"].as_i64().unwrap(), p["pushed"]["created"].as_i64().unwrap()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let done = running.await.unwrap();
    app.control("/_sandbox/latency", json!({"milliseconds": 0})).await;
    assert_eq!(counts(&done)[3], 4, "{done}");
    assert!(seen_pushed.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "only growing: {seen_pushed:?}");
    assert!(seen_pushed.iter().any(|(_, n)| (1..4).contains(n)), "pushes seen while running: {seen_pushed:?}");
    let after: Value =
        app.get(&format!("{BASE}/{conn}/sync_status/"), &token).send().await.unwrap().json().await.unwrap();
    assert_eq!((after["in_progress"].as_bool(), after["progress"].is_null()), (Some(false), true), "{after}");
}

/// A staff user with a connection to `provider`; returns (api token, connection id, the remote side).
async fn connected<'a>(app: &'a TestApp, provider: &'static str, n: usize) -> (String, String, Remote<'a>) {
    let email = format!("staff{n}-{provider}@acme.test");
    let token = app.user("acme", &email, "staff").await;
    let account = format!("staff{n}@{}.test", if provider == "google" { "gmail" } else { "outlook" });
    let c = common::connect_account(app, &token, provider, &account).await;
    let remote = Remote::new(app, provider, &account).await;
    (token, c["id"].as_str().unwrap().to_owned(), remote)
}

async fn sync_now(app: &TestApp, token: &str, conn: &str) -> Value {
    let resp = app.post(&format!("{BASE}/{conn}/sync_now/"), token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

fn counts(a: &Value) -> [i64; 6] {
    [
        a["pulled"]["created"].as_i64().unwrap(),
        a["pulled"]["updated"].as_i64().unwrap(),
        a["pulled"]["deleted"].as_i64().unwrap(),
        a["pushed"]["created"].as_i64().unwrap(),
        a["pushed"]["updated"].as_i64().unwrap(),
        a["pushed"]["deleted"].as_i64().unwrap(),
    ]
}

async fn appointments(app: &TestApp, token: &str) -> Vec<Value> {
    let v: Value = app.get("/api/appointments/?limit=500", token).send().await.unwrap().json().await.unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn local_titles(app: &TestApp, token: &str) -> Vec<String> {
    let mut t: Vec<String> =
        appointments(app, token).await.iter().map(|a| a["title"].as_str().unwrap().to_owned()).collect();
    t.sort();
    t
}

async fn create_local(app: &TestApp, token: &str, title: &str, start: chrono::DateTime<Utc>) -> Value {
    let body = json!({
        "title": title,
        "start": start.to_rfc3339(),
        "end": (start + Duration::hours(1)).to_rfc3339(),
    });
    let resp = app.post("/api/appointments/", token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

async fn patch_local(app: &TestApp, token: &str, id: &str, body: Value) {
    let resp = app.patch(&format!("/api/appointments/{id}/"), token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
}

async fn find_local(app: &TestApp, token: &str, title: &str) -> Value {
    appointments(app, token).await.into_iter().find(|a| a["title"] == title).unwrap_or_else(|| panic!("no {title}"))
}

async fn set(app: &TestApp, token: &str, conn: &str, body: Value) {
    let resp = app.patch(&format!("{BASE}/{conn}/"), token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
}

async fn edits_flow_both_ways_without_echoes(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        // calsync → provider.
        let mine = create_local(&app, &token, "Intake: Meyer", at(24)).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        assert_eq!(counts(&a), [0, 0, 0, 1, 0, 0], "{provider}: {a}");
        assert_eq!(remote.titles().await, vec!["Intake: Meyer"], "{provider}");
        let shown =
            app.get(&format!("/api/appointments/{}/", mine["id"].as_str().unwrap()), &token).send().await.unwrap();
        let shown: Value = shown.json().await.unwrap();
        assert_eq!(shown["origin"], "calsync", "{provider}: {shown}");
        assert_eq!(shown["sync"][0]["state"], "synced", "{provider}: {shown}");
        assert_eq!(shown["sync"][0]["provider"], provider);

        // Nothing changed: one request per calendar, nothing moves (our own write is no echo).
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!((counts(&quiet), quiet["requests"].as_i64()), ([0; 6], Some(1)), "{provider}: {quiet}");

        // provider → calsync.
        let theirs = remote.create("Call with auditor", at(48)).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a), [1, 0, 0, 0, 0, 0], "{provider}: {a}");
        let pulled = find_local(&app, &token, "Call with auditor").await;
        assert_eq!(pulled["origin"]["connection"], conn.as_str(), "{provider}: {pulled}");
        assert_eq!(local_titles(&app, &token).await, vec!["Call with auditor", "Intake: Meyer"]);

        // Edits both ways.
        remote.retitle(&theirs, "Call with auditor (moved)").await;
        patch_local(&app, &token, mine["id"].as_str().unwrap(), json!({"title": "Intake: Meyer & Co"})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a), [0, 1, 0, 0, 1, 0], "{provider}: {a}");
        assert_eq!(remote.titles().await, vec!["Call with auditor (moved)", "Intake: Meyer & Co"], "{provider}");
        assert_eq!(local_titles(&app, &token).await, vec!["Call with auditor (moved)", "Intake: Meyer & Co"]);
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: no ping-pong after edits: {quiet}");

        // Deletes both ways.
        let pulled_id = find_local(&app, &token, "Call with auditor (moved)").await["id"].as_str().unwrap().to_owned();
        let resp =
            app.delete(&format!("/api/appointments/{}/", mine["id"].as_str().unwrap()), &token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        remote.delete(&theirs).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a), [0, 0, 1, 0, 0, 1], "{provider}: {a}");
        assert!(remote.titles().await.is_empty(), "{provider}");
        assert!(local_titles(&app, &token).await.is_empty(), "{provider}");
        let gone = app.get(&format!("/api/appointments/{pulled_id}/"), &token).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: deleted events do not come back: {quiet}");
    }
}

async fn lost_answers_and_half_done_writes_make_no_duplicates(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        // The create lands but its answer is lost: the retry with the same key finds it.
        create_local(&app, &token, "Lost answer", at(26)).await;
        remote.fault("POST", remote.events_path(), "drop_after_commit", None, 1).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["status"].as_str(), counts(&a)), (Some("success"), [0, 0, 0, 1, 0, 0]), "{provider}: {a}");
        assert_eq!(remote.titles().await, vec!["Lost answer"], "{provider}: one event");

        // Every answer is lost, the sync gives up on the item: the event exists, calsync does
        // not know it. The next sync finds it by its stamp and links it instead of creating.
        create_local(&app, &token, "Half done", at(27)).await;
        remote.fault("POST", remote.events_path(), "drop_after_commit", None, 20).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "partial", "{provider}: {a}");
        app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        assert_eq!(remote.titles().await, vec!["Half done", "Lost answer"], "{provider}: no duplicate");
        assert_eq!(local_titles(&app, &token).await, vec!["Half done", "Lost answer"], "{provider}: none imported");
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: {quiet}");
    }
}

async fn dead_cursors_lose_no_deletion(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        app.control("/_sandbox/paging", json!({"provider": provider, "mode": "ragged"})).await;
        let mut ids = Vec::new();
        for i in 0..12 {
            ids.push(remote.create(&format!("E{i:02}"), at(24 + i)).await);
        }
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a)[0], 12, "{provider}: every event once over ragged pages: {a}");
        assert_eq!(local_titles(&app, &token).await.len(), 12);
        // While the cursor is dead, two events are deleted and one is changed.
        remote.delete(&ids[0]).await;
        remote.delete(&ids[1]).await;
        remote.retitle(&ids[2], "E02 changed").await;
        app.control("/_sandbox/expire-cursors", json!({"provider": provider})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        assert_eq!(counts(&a), [0, 1, 2, 0, 0, 0], "{provider}: full listing diffed against the links: {a}");
        let titles = local_titles(&app, &token).await;
        assert_eq!(titles.len(), 10);
        assert!(titles.contains(&"E02 changed".to_owned()) && !titles.contains(&"E00".to_owned()));
        app.control("/_sandbox/paging", json!({"provider": provider, "mode": "normal"})).await;
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: {quiet}");
    }
}

async fn events_leaving_the_window_are_not_deletions(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let id = remote.create("Far away", at(24)).await;
        sync_now(&app, &token, &conn).await;
        // Moved beyond the 30-day window: Graph reports it `@removed`, yet it still exists.
        remote.move_to(&id, at(24 * 200)).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a)[2], 0, "{provider}: nothing deleted: {a}");
        let kept = find_local(&app, &token, "Far away").await;
        assert!(kept["start"].as_str().unwrap() > at(24 * 100).to_rfc3339().as_str(), "{provider}: moved: {kept}");
    }
}

async fn conflicts_follow_the_strategy(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let ids: Vec<String> = {
            let mut v = Vec::new();
            for s in ["newest", "internal", "external", "manual"] {
                v.push(remote.create(s, at(30)).await);
            }
            v
        };
        sync_now(&app, &token, &conn).await;
        let edit_both = |i: usize, strategy: &'static str| {
            let (app, token, conn, remote, ids) = (&app, &token, &conn, &remote, &ids);
            async move {
                set(app, token, conn, json!({"conflict_strategy": strategy})).await;
                let local = find_local(app, token, ["newest", "internal", "external", "manual"][i]).await;
                // calsync first, the provider a moment later: the provider's edit is newer.
                patch_local(app, token, local["id"].as_str().unwrap(), json!({"title": format!("{strategy}: ours")}))
                    .await;
                app.control("/_sandbox/clock", json!({"advance_seconds": 60})).await;
                remote.retitle(&ids[i], &format!("{strategy}: theirs")).await;
                sync_now(app, token, conn).await
            }
        };
        let a = edit_both(0, "newest_wins").await;
        assert_eq!(counts(&a)[1], 1, "{provider}: the newer (provider) edit wins: {a}");
        let a = edit_both(1, "prefer_internal").await;
        assert_eq!(counts(&a)[4], 1, "{provider}: {a}");
        let a = edit_both(2, "prefer_external").await;
        assert_eq!(counts(&a)[1], 1, "{provider}: {a}");
        let a = edit_both(3, "manual").await;
        assert_eq!((a["conflicts"].as_i64(), counts(&a)), (Some(1), [0; 6]), "{provider}: {a}");
        let mut remote_titles = remote.titles().await;
        remote_titles.sort();
        assert_eq!(
            remote_titles,
            vec!["manual: theirs", "newest_wins: theirs", "prefer_external: theirs", "prefer_internal: ours"],
            "{provider}"
        );
        let mut local = local_titles(&app, &token).await;
        local.sort();
        assert_eq!(
            local,
            vec!["manual: ours", "newest_wins: theirs", "prefer_external: theirs", "prefer_internal: ours"],
            "{provider}: nothing overwritten under manual"
        );
        // A conflict is listed with both versions and stays until resolved.
        let list: Value = app.get("/api/calendar/conflicts/", &token).send().await.unwrap().json().await.unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1, "{provider}: {list:?}");
        assert_eq!(
            (list[0]["internal"]["title"].as_str(), list[0]["external"]["title"].as_str()),
            (Some("manual: ours"), Some("manual: theirs"))
        );
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!((quiet["conflicts"].as_i64(), counts(&quiet)), (Some(0), [0; 6]), "{provider}: {quiet}");
        let bad = app
            .post(&format!("/api/calendar/conflicts/{}/resolve/", list[0]["id"].as_str().unwrap()), &token)
            .json(&json!({"keep": "both"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let resp = app
            .post(&format!("/api/calendar/conflicts/{}/resolve/", list[0]["id"].as_str().unwrap()), &token)
            .json(&json!({"keep": "external"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
        assert!(local_titles(&app, &token).await.contains(&"manual: theirs".to_owned()), "{provider}");
        let list: Value = app.get("/api/calendar/conflicts/", &token).send().await.unwrap().json().await.unwrap();
        assert!(list.as_array().unwrap().is_empty());
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: {quiet}");
    }
}

async fn mass_deletes_wait_for_confirmation(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(remote.create(&format!("M{i:02}"), at(24 + i)).await);
        }
        sync_now(&app, &token, &conn).await;
        for id in &ids {
            remote.delete(id).await;
        }
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["error_kind"].as_str(), counts(&a)[2]), (Some("deletes_held"), 0), "{provider}: {a}");
        assert_eq!(local_titles(&app, &token).await.len(), 60, "{provider}: nothing deleted yet");
        let status: Value =
            app.get(&format!("{BASE}/{conn}/sync_status/"), &token).send().await.unwrap().json().await.unwrap();
        assert_eq!(status["pending_deletes"]["count"], 60, "{provider}: {status}");
        assert_eq!(status["pending_deletes"]["in_calsync"], 60);
        // Held deletions stay held through further syncs.
        sync_now(&app, &token, &conn).await;
        assert_eq!(local_titles(&app, &token).await.len(), 60);
        if n == 0 {
            // Confirmed: the appointments go.
            let resp = app.post(&format!("{BASE}/{conn}/confirm_deletes/"), &token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let s: Value = resp.json().await.unwrap();
            assert_eq!(s["pending_deletes"]["count"], 0);
            assert!(local_titles(&app, &token).await.is_empty(), "{provider}");
        } else {
            // Rejected: the events are created again from calsync's copies.
            let resp = app.post(&format!("{BASE}/{conn}/reject_deletes/"), &token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(remote.titles().await.len(), 60, "{provider}: restored at the provider");
            assert_eq!(local_titles(&app, &token).await.len(), 60);
        }
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: {quiet}");
    }
}

async fn throttling_and_lost_races_are_retried(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let mine = create_local(&app, &token, "Storm", at(30)).await;
        sync_now(&app, &token, &conn).await;
        // A 429 storm on the listing, then a 503: retried with backoff, the sync succeeds.
        remote.fault("GET", remote.listing_path(), "status", Some(429), 3).await;
        remote.fault("GET", remote.listing_path(), "status", Some(503), 1).await;
        patch_local(&app, &token, mine["id"].as_str().unwrap(), json!({"title": "Storm over"})).await;
        // The update loses a race once (412): calsync re-reads and writes again.
        remote.fault("PATCH", "/events/", "status", Some(412), 1).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["status"].as_str(), counts(&a)), (Some("success"), [0, 0, 0, 0, 1, 0]), "{provider}: {a}");
        assert!(a["requests"].as_i64().unwrap() >= 1 + 4 + 3, "{provider}: retries are counted: {a}");
        assert_eq!(remote.titles().await, vec!["Storm over"], "{provider}");
    }
}

async fn a_revoked_grant_stops_the_sync_and_says_so(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, _remote) = connected(&app, provider, n).await;
        create_local(&app, &token, "Never sent", at(30)).await;
        let account = format!("staff{n}@{}.test", if provider == "google" { "gmail" } else { "outlook" });
        app.control("/_sandbox/revoke", json!({"provider": provider, "email": account})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(
            (a["status"].as_str(), a["error_kind"].as_str()),
            (Some("failed"), Some("reauthorize")),
            "{provider}: {a}"
        );
        let c: Value = app.get(&format!("{BASE}/{conn}/"), &token).send().await.unwrap().json().await.unwrap();
        assert!(matches!(c["status"].as_str(), Some("revoked" | "expired")), "{provider}: {c}");
        let s: Value =
            app.get(&format!("{BASE}/{conn}/sync_status/"), &token).send().await.unwrap().json().await.unwrap();
        assert_eq!(s["last_attempt"]["status"], "failed");
        assert!(s["last_error"].as_str().is_some_and(|e| e.contains("Reconnect")), "{provider}: {s}");
    }
}

async fn the_log_replays_and_stays_within_the_firm(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, remote) = connected(&app, "google", 0).await;
    let admin = app.user("acme", "boss@acme.test", "admin").await;
    let (other, other_conn, _) = connected(&app, "microsoft", 1).await;
    // A failed attempt: the listing keeps failing.
    remote.fault("GET", remote.listing_path(), "status", Some(500), 50).await;
    let failed = sync_now(&app, &token, &conn).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();
    let failed_id = failed["attempt_id"].as_str().unwrap();
    // Staff may not replay; admins may, and the new attempt points back.
    let resp = app.post(&format!("/api/calendar/sync-attempts/{failed_id}/replay/"), &token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = app.post(&format!("/api/calendar/sync-attempts/{failed_id}/replay/"), &admin).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    let replayed: Value = resp.json().await.unwrap();
    assert_eq!((replayed["replay_of"].as_str(), replayed["trigger"].as_str()), (Some(failed_id), Some("replay")));
    assert_eq!(replayed["status"], "success");
    // A successful attempt is not replayed.
    let resp = app
        .post(&format!("/api/calendar/sync-attempts/{}/replay/", replayed["attempt_id"].as_str().unwrap()), &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    sync_now(&app, &other, &other_conn).await;
    // Staff see their own attempts; admins the firm's; filters and paging work.
    let mine: Value = app.get("/api/calendar/sync-attempts/", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2, "{mine}");
    let all: Value =
        app.get("/api/calendar/sync-attempts/?limit=2", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let cursor = all["next_cursor"].as_str().expect("a third attempt follows");
    let rest: Value = app
        .get(&format!("/api/calendar/sync-attempts/?limit=2&cursor={cursor}"), &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((rest["items"].as_array().unwrap().len(), rest["next_cursor"].is_null()), (1, true), "{rest}");
    let failed_only: Value =
        app.get("/api/calendar/sync-attempts/?status=failed", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(failed_only["items"].as_array().unwrap().len(), 1);
    for bad in ["status=done", "limit=0", "since=yesterday", "connection=x", "colour=red"] {
        let resp = app.get(&format!("/api/calendar/sync-attempts/?{bad}"), &admin).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["field"].is_string(), "{bad}: {v}");
    }
    // Another user's connection, or another firm's, is not there.
    let resp = app.post(&format!("{BASE}/{other_conn}/sync_now/"), &token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let outsider = app.user("globex", "eve@globex.test", "admin").await;
    for path in [format!("{BASE}/{conn}/sync_status/"), format!("/api/calendar/sync-attempts/?connection={conn}")] {
        let resp = app.get(&path, &outsider).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let resp = app.post(&format!("/api/calendar/sync-attempts/{failed_id}/replay/"), &outsider).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let theirs: Value = app.get("/api/calendar/sync-attempts/", &outsider).send().await.unwrap().json().await.unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty());
}

async fn concurrent_sync_requests_share_one_sync(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, _remote) = connected(&app, "google", 0).await;
    for i in 0..5 {
        create_local(&app, &token, &format!("C{i}"), at(30 + i)).await;
    }
    app.control("/_sandbox/latency", json!({"milliseconds": 100})).await;
    let (a, b) = tokio::join!(sync_now(&app, &token, &conn), sync_now(&app, &token, &conn));
    app.control("/_sandbox/latency", json!({"milliseconds": 0})).await;
    assert_eq!(a["attempt_id"], b["attempt_id"], "the second request waited for the first sync: {a} {b}");
    assert_eq!(counts(&a)[3], 5);
}

async fn keep_policy_keeps_without_bringing_back(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        set(&app, &token, &conn, json!({"delete_policy": "keep"})).await;
        let theirs = remote.create("Theirs", at(30)).await;
        create_local(&app, &token, "Ours", at(31)).await;
        sync_now(&app, &token, &conn).await;
        // Deleted on each side: the other side keeps its copy.
        let pulled = find_local(&app, &token, "Theirs").await;
        let resp =
            app.delete(&format!("/api/appointments/{}/", pulled["id"].as_str().unwrap()), &token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let ours_remote = remote.events().await.into_iter().find(|(_, t)| t == "Ours").unwrap().0;
        remote.delete(&ours_remote).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a), [0; 6], "{provider}: nothing propagated: {a}");
        assert_eq!(remote.titles().await, vec!["Theirs"], "{provider}");
        assert_eq!(local_titles(&app, &token).await, vec!["Ours"], "{provider}");
        // A full listing (as after the window moves) neither re-imports the event deleted here
        // nor re-creates the one deleted there.
        let resp = app.post(&format!("{BASE}/{conn}/resync/"), &token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let a: Value = resp.json().await.unwrap();
        assert_eq!((a["trigger"].as_str(), counts(&a)), (Some("resync"), [0; 6]), "{provider}: {a}");
        assert_eq!(remote.titles().await, vec!["Theirs"], "{provider}");
        assert_eq!(local_titles(&app, &token).await, vec!["Ours"], "{provider}");
        let _ = theirs;
    }
}

async fn events_moved_before_the_window_are_not_deletions(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let id = remote.create("Moved back", at(24)).await;
        sync_now(&app, &token, &conn).await;
        // Moved before the window's start, then the cursor dies: the full listing no longer
        // lists it, which is not a deletion.
        remote.move_to(&id, at(-24 * 90)).await;
        app.control("/_sandbox/expire-cursors", json!({"provider": provider})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a)[2], 0, "{provider}: nothing deleted: {a}");
        let kept = find_local(&app, &token, "Moved back").await;
        assert!(kept["start"].as_str().unwrap() < at(-24 * 60).to_rfc3339().as_str(), "{provider}: moved: {kept}");
    }
}

async fn the_push_target_is_a_setting(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, _remote) = connected(&app, "google", 0).await;
    let before: Value = app.get(&format!("{BASE}/{conn}/"), &token).send().await.unwrap().json().await.unwrap();
    assert!(before["push_calendar"].is_null(), "{before}");
    for bad in [json!({"push_calendar": "no-such-calendar"}), json!({"push_calendar": "", "sync_window_days": 60})] {
        let resp = app.patch(&format!("{BASE}/{conn}/"), &token).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["field"], "push_calendar", "{v}");
    }
    let after: Value = app.get(&format!("{BASE}/{conn}/"), &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["sync_window_days"], 30, "a refused change changes nothing");
    let cals: Value = app.get(&format!("{BASE}/{conn}/calendars/"), &token).send().await.unwrap().json().await.unwrap();
    let primary = cals.as_array().unwrap().iter().find(|c| c["primary"] == true).unwrap()["id"].clone();
    let resp =
        app.patch(&format!("{BASE}/{conn}/"), &token).json(&json!({"push_calendar": primary})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["push_calendar"], primary);
}

/// Graph only: it pages delta rounds of a few events; Google answers them in one page of up to
/// 2,500 (a dead Google cursor is covered by `dead_cursors_lose_no_deletion`).
async fn a_cursor_dying_mid_listing_restarts_it_in_full(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in [(1, "microsoft")] {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let mut ids = Vec::new();
        for i in 0..30 {
            ids.push(remote.create(&format!("P{i:02}"), at(24 + i)).await);
        }
        sync_now(&app, &token, &conn).await;
        for id in &ids[..3] {
            remote.delete(id).await;
        }
        // Short pages, and the cursor dies after the first of them (410, as both services
        // do). Ragged pages are random: should a round come in one page, the 410 has not fired
        // yet and the round is tried again with more changes.
        app.control("/_sandbox/paging", json!({"provider": provider, "mode": "ragged"})).await;
        let reason = "SyncStateNotFound";
        let mut fired = false;
        for round in 0..15 {
            for id in &ids[3..] {
                remote.retitle(id, &format!("changed {round}")).await;
            }
            app.control(
                "/_sandbox/faults",
                json!({"provider": provider, "method": "GET", "path_regex": remote.listing_path(), "kind": "status",
                       "status": 410, "reason": reason, "count": 1, "skip": 1}),
            )
            .await;
            let a = sync_now(&app, &token, &conn).await;
            assert_eq!(a["status"], "success", "{provider}: {a}");
            let armed: Value =
                app.http.get(app.sandbox_url("/_sandbox/faults")).send().await.unwrap().json().await.unwrap();
            app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();
            if armed["faults"] == json!([]) {
                fired = true;
                assert_eq!(counts(&a)[1], 27, "{provider}: every change once: {a}");
                break;
            }
        }
        app.control("/_sandbox/paging", json!({"provider": provider, "mode": "normal"})).await;
        assert!(fired, "{provider}: a listing of several pages");
        assert_eq!(local_titles(&app, &token).await, remote.titles().await, "{provider}");
        assert_eq!(local_titles(&app, &token).await.len(), 27, "{provider}: the deletions arrived");
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!((counts(&quiet), quiet["requests"].as_i64()), ([0; 6], Some(1)), "{provider}: {quiet}");
    }
}

async fn a_token_refused_mid_sync_is_refreshed_once_then_reported(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        for i in 0..3 {
            create_local(&app, &token, &format!("T{i}"), at(30 + i)).await;
        }
        // The first create is refused with 401: calsync refreshes once and retries it.
        let writes = "/events$";
        remote.fault("POST", writes, "status", Some(401), 1).await;
        let tokens_before = app.token_requests().await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["status"].as_str(), counts(&a)[3]), (Some("success"), 3), "{provider}: {a}");
        assert_eq!(app.token_requests().await, tokens_before + 1, "{provider}: one refresh");
        // Refused again after the refresh: the grant is treated as dead and the user told.
        create_local(&app, &token, "T9", at(40)).await;
        app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();
        remote.fault("POST", writes, "status", Some(401), 5).await;
        let a = sync_now(&app, &token, &conn).await;
        app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();
        assert_eq!(a["error_kind"], "reauthorize", "{provider}: {a}");
        let c: Value = app.get(&format!("{BASE}/{conn}/"), &token).send().await.unwrap().json().await.unwrap();
        assert_eq!(c["status"], "expired", "{provider}: {c}");
    }
}

async fn mass_deletes_in_calsync_wait_too(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(
                create_local(&app, &token, &format!("D{i:02}"), at(24 + i)).await["id"].as_str().unwrap().to_owned(),
            );
        }
        sync_now(&app, &token, &conn).await;
        assert_eq!(remote.titles().await.len(), 60);
        for id in &ids {
            let resp = app.delete(&format!("/api/appointments/{id}/"), &token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["error_kind"].as_str(), counts(&a)[5]), (Some("deletes_held"), 0), "{provider}: {a}");
        // A full listing (as every day when the window moves) lists the events again, unchanged:
        // the hold stands and nothing is deleted.
        let resp = app.post(&format!("{BASE}/{conn}/resync/"), &token).send().await.unwrap();
        let a: Value = resp.json().await.unwrap();
        assert_eq!(counts(&a), [0; 6], "{provider}: {a}");
        let status: Value =
            app.get(&format!("{BASE}/{conn}/sync_status/"), &token).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            (status["pending_deletes"]["count"].as_i64(), status["pending_deletes"]["at_provider"].as_i64()),
            (Some(60), Some(60)),
            "{provider}: {status}"
        );
        assert_eq!(remote.titles().await.len(), 60, "{provider}: nothing deleted yet");
        if n == 0 {
            let resp = app.post(&format!("{BASE}/{conn}/confirm_deletes/"), &token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(remote.titles().await.is_empty(), "{provider}");
            assert!(local_titles(&app, &token).await.is_empty());
        } else {
            let resp = app.post(&format!("{BASE}/{conn}/reject_deletes/"), &token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(local_titles(&app, &token).await.len(), 60, "{provider}: the appointments are back");
            assert_eq!(remote.titles().await.len(), 60);
        }
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&quiet), [0; 6], "{provider}: {quiet}");
    }
}

async fn edits_to_different_fields_are_merged(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let mine = create_local(&app, &token, "Intake", at(30)).await;
        let id = mine["id"].as_str().unwrap().to_owned();
        sync_now(&app, &token, &conn).await;
        let event = remote.events().await.into_keys().next().unwrap();
        // The title changes here, the time there (later): both survive, under newest_wins.
        patch_local(&app, &token, &id, json!({"title": "Intake: Meyer"})).await;
        app.control("/_sandbox/clock", json!({"advance_seconds": 60})).await;
        remote.move_to(&event, at(54)).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["merged"].as_i64(), a["conflicts"].as_i64()), (Some(1), Some(0)), "{provider}: {a}");
        let local = find_local(&app, &token, "Intake: Meyer").await;
        assert!(
            local["start"].as_str().unwrap().starts_with(&at(54).format("%Y-%m-%dT%H:%M").to_string()),
            "{provider}: {local}"
        );
        assert_eq!(remote.titles().await, vec!["Intake: Meyer"], "{provider}: the title went there too");
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!((counts(&quiet), quiet["merged"].as_i64()), ([0; 6], Some(0)), "{provider}: {quiet}");

        // Under manual, only the field changed on both sides is a conflict; resolved per field.
        set(&app, &token, &conn, json!({"conflict_strategy": "manual"})).await;
        patch_local(&app, &token, &id, json!({"title": "Ours", "location": "Room 1"})).await;
        remote.retitle(&event, "Theirs").await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["conflicts"], 1, "{provider}: {a}");
        let list: Value = app.get("/api/calendar/conflicts/", &token).send().await.unwrap().json().await.unwrap();
        let c = &list.as_array().unwrap()[0];
        assert_eq!(c["fields"], json!(["title"]), "{provider}: {c}");
        assert_eq!(c["base"]["title"], "Intake: Meyer", "{provider}: {c}");
        let url = format!("/api/calendar/conflicts/{}/resolve/", c["id"].as_str().unwrap());
        for (bad, field) in [
            (json!({"keep": {"location": "external"}}), "keep.location"),
            (json!({"keep": {"title": "both"}}), "keep.title"),
            (json!({"keep": {"colour": "external"}}), "keep.colour"),
        ] {
            let resp = app.post(&url, &token).json(&bad).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["field"], field, "{v}");
        }
        let resp = app.post(&url, &token).json(&json!({"keep": {"title": "external"}})).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
        let resolved: Value = resp.json().await.unwrap();
        assert_eq!(resolved["picks"], json!({"title": "external"}));
        let local = find_local(&app, &token, "Theirs").await;
        assert_eq!(local["location"], "Room 1", "{provider}: the location edit was kept: {local}");
        assert_eq!(remote.titles().await, vec!["Theirs"], "{provider}");
        let quiet = sync_now(&app, &token, &conn).await;
        assert_eq!((counts(&quiet), quiet["conflicts"].as_i64()), ([0; 6], Some(0)), "{provider}: {quiet}");
    }
}

/// Outlook writes Windows zone names; calsync keeps zones as IANA names.
async fn outlook_zones_arrive_as_iana_zones(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, remote) = connected(&app, "microsoft", 0).await;
    let start = at(30).format("%Y-%m-%dT%H:%M:%S").to_string();
    let end = at(31).format("%Y-%m-%dT%H:%M:%S").to_string();
    let body = json!({"subject": "Board", "start": {"dateTime": start, "timeZone": "W. Europe Standard Time"},
                      "end": {"dateTime": end, "timeZone": "W. Europe Standard Time"}});
    let resp = app.http.post(remote.url("")).bearer_auth(&remote.token).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let a = sync_now(&app, &token, &conn).await;
    assert_eq!(counts(&a)[0], 1, "{a}");
    let board = find_local(&app, &token, "Board").await;
    assert_eq!(board["time_zone"], "Europe/Berlin", "{board}");
    // Wall-clock time in Berlin, as Outlook meant it.
    assert!(board["start"].as_str().unwrap().starts_with(&start[..16]), "{board}");
}

/// One occurrence moved there while the series is renamed here: both edits survive, the
/// exception takes the new title as the calendars carry a series' change into exceptions that
/// did not change it themselves.
async fn an_exception_moved_there_and_the_series_renamed_here_both_survive(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let start = at(48);
        let body = json!({"title": "Weekly", "start": start.to_rfc3339(), "end": (start + Duration::minutes(30)).to_rfc3339(),
                          "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]});
        let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let id = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        sync_now(&app, &token, &conn).await;
        let second = instances(&remote, "Weekly").await[1].0.clone();
        let moved_to = start + Duration::days(1) + Duration::hours(2);
        remote.move_to(&second, moved_to).await;
        patch_local(&app, &token, &id, json!({"title": "Weekly (renamed)"})).await;
        for _ in 0..2 {
            let a = sync_now(&app, &token, &conn).await;
            assert_eq!(a["status"], "success", "{provider}: {a}");
        }
        let expected = vec![
            ("Weekly (renamed)".to_owned(), start),
            ("Weekly (renamed)".to_owned(), moved_to),
            ("Weekly (renamed)".to_owned(), start + Duration::days(2)),
        ];
        assert_eq!(local_occurrences(&app, &token, "Weekly").await, expected, "{provider}: here");
        let there: Vec<(String, chrono::DateTime<Utc>)> =
            instances(&remote, "Weekly").await.into_iter().map(|(_, t, s)| (t, s)).collect();
        assert_eq!(there, expected, "{provider}: there");
        let again = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&again), [0; 6], "{provider}: {again}");
    }
}

/// A cancelled appointment leaves the calendar (Google: a cancelled event is a deleted one;
/// Graph: deleted) and stays in calsync, cancelled; confirmed again, it is back there.
async fn cancelled_appointments_leave_the_calendar_and_stay_here(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let made = create_local(&app, &token, "Hearing", at(30)).await;
        let id = made["id"].as_str().unwrap();
        sync_now(&app, &token, &conn).await;
        assert_eq!(remote.titles().await, ["Hearing"], "{provider}");
        patch_local(&app, &token, id, json!({"status": "cancelled"})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        assert!(remote.titles().await.is_empty(), "{provider}: gone there");
        for _ in 0..2 {
            let a = sync_now(&app, &token, &conn).await;
            assert_eq!(counts(&a), [0; 6], "{provider}: quiet: {a}");
        }
        let kept = find_local(&app, &token, "Hearing").await;
        assert_eq!(kept["status"], "cancelled", "{provider}: kept here: {kept}");
        // Never pushed while cancelled; confirmed again, it is back.
        let later = create_local(&app, &token, "Called off", at(40)).await;
        patch_local(&app, &token, later["id"].as_str().unwrap(), json!({"status": "cancelled"})).await;
        patch_local(&app, &token, id, json!({"status": "confirmed"})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        assert_eq!(remote.titles().await, ["Hearing"], "{provider}: back, and nothing for the cancelled one");
        let again = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&again), [0; 6], "{provider}: {again}");
    }
}

/// A mailbox on an Outlook custom time zone (no IANA equivalent): its events arrive at the
/// right instants in UTC, and the attempt says so.
async fn outlook_custom_zones_fall_back_to_utc_with_a_note(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, remote) = connected(&app, "microsoft", 0).await;
    app.control(
        "/_sandbox/microsoft/mailbox-settings",
        json!({"email": "staff0@outlook.test", "custom_time_zone": "tzone://Microsoft/Custom"}),
    )
    .await;
    let start = at(30);
    remote.create("Custom", start).await;
    let a = sync_now(&app, &token, &conn).await;
    assert_eq!((a["status"].as_str(), counts(&a)[0]), (Some("success"), 1), "{a}");
    let notes = a["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n.as_str().unwrap().contains("tzone://Microsoft/Custom")), "{a}");
    let got = find_local(&app, &token, "Custom").await;
    assert_eq!(got["time_zone"], "UTC", "{got}");
    let at_ = chrono::DateTime::parse_from_rfc3339(got["start"].as_str().unwrap()).unwrap();
    assert_eq!(at_.with_timezone(&Utc), start, "the instant is kept");
}

async fn private_appointments_stay_private(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let admin = app.user("acme", "boss@acme.test", "admin").await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let body = json!({"title": "Doctor", "location": "Clinic", "visibility": "private",
                          "start": at(30).to_rfc3339(), "end": at(31).to_rfc3339()});
        let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let mine: Value = resp.json().await.unwrap();
        assert_eq!((mine["visibility"].as_str(), mine["title"].as_str()), (Some("private"), Some("Doctor")));
        // Admins see that the time is taken, not what it is.
        let seen: Value = app
            .get(&format!("/api/appointments/{}/", mine["id"].as_str().unwrap()), &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!((seen["title"].as_str(), seen["location"].as_str()), (Some("Busy"), Some("")), "{seen}");
        let listed = appointments(&app, &admin).await;
        let it = listed.iter().find(|a| a["id"] == mine["id"]).expect("listed for the admin");
        assert_eq!((it["title"].as_str(), it["location"].as_str()), (Some("Busy"), Some("")), "{it}");
        sync_now(&app, &token, &conn).await;
        // The calendar marks it private too.
        let v: Value =
            app.http.get(remote.url("")).bearer_auth(&remote.token).send().await.unwrap().json().await.unwrap();
        let items = v.get("items").or_else(|| v.get("value")).and_then(Value::as_array).unwrap().clone();
        let e = items.iter().find(|e| e.get("summary").or_else(|| e.get("subject")) == Some(&json!("Doctor"))).unwrap();
        let flag = if provider == "google" { &e["visibility"] } else { &e["sensitivity"] };
        assert_eq!(flag, "private", "{provider}: {e}");
        // Made private there: it comes back private.
        let id = e["id"].as_str().unwrap();
        let patch =
            if provider == "google" { json!({"visibility": "default"}) } else { json!({"sensitivity": "normal"}) };
        let resp =
            app.http.patch(remote.url(&format!("/{id}"))).bearer_auth(&remote.token).json(&patch).send().await.unwrap();
        assert!(resp.status().is_success());
        sync_now(&app, &token, &conn).await;
        let after = find_local(&app, &token, "Doctor").await;
        assert_eq!(after["visibility"], "default", "{provider}: {after}");
    }
}

/// Mail the sandbox recorded for `account` (what the provider would have sent).
async fn mail_for(app: &TestApp, account: &str) -> Vec<Value> {
    let v: Value = app
        .http
        .get(app.sandbox_url(&format!("/_sandbox/mail?account={account}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["mail"].as_array().cloned().unwrap_or_default()
}

/// The one event titled `title` as the provider returns it.
async fn remote_event(remote: &Remote<'_>, title: &str) -> Value {
    let v: Value =
        remote.app.http.get(remote.url("")).bearer_auth(&remote.token).send().await.unwrap().json().await.unwrap();
    let items = v.get("items").or_else(|| v.get("value")).and_then(Value::as_array).unwrap().clone();
    items
        .into_iter()
        .find(|e| e.get("summary").or_else(|| e.get("subject")) == Some(&json!(title)))
        .unwrap_or_else(|| panic!("no event {title}"))
}

/// Attendees are mailed only when the appointment asks for it: a sync must never spam guests.
/// On Graph, which mails every attendee it is given, the uninvited are listed in the body.
async fn attendees_are_never_mailed_unasked(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let account = format!("staff{n}@{}.test", if provider == "google" { "gmail" } else { "outlook" });
        let guests = json!([{"email": "ann@client.test", "name": "Ann Client"}, {"email": "bo@client.test"}]);
        let quiet =
            json!({"title": "Quiet", "attendees": guests, "start": at(30).to_rfc3339(), "end": at(31).to_rfc3339()});
        let resp = app.post("/api/appointments/", &token).json(&quiet).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let made: Value = resp.json().await.unwrap();
        assert_eq!(
            (made["send_invitations"].as_bool(), made["attendees"][0]["response"].as_str()),
            (Some(false), Some("needs_action"))
        );
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a)[3], 1, "{a}");
        // Edited and moved (Graph mails attendees about both), then deleted: still no mail.
        let id = made["id"].as_str().unwrap();
        patch_local(
            &app,
            &token,
            id,
            json!({"location": "Room 2", "start": at(32).to_rfc3339(), "end": at(33).to_rfc3339()}),
        )
        .await;
        sync_now(&app, &token, &conn).await;
        let e = remote_event(&remote, "Quiet").await;
        if provider == "google" {
            assert_eq!(e["attendees"].as_array().map(Vec::len), Some(2), "{e}");
        } else {
            assert!(e["attendees"].as_array().is_none_or(Vec::is_empty), "not invited on Graph: {e}");
            let body = e["body"]["content"].as_str().unwrap();
            assert!(body.contains("Ann Client") && body.contains("bo@client.test"), "listed in the body: {body}");
        }
        // Read back, the list is attendees again, not description.
        let back = find_local(&app, &token, "Quiet").await;
        assert_eq!(
            (back["description"].as_str(), back["attendees"].as_array().map(Vec::len)),
            (Some(""), Some(2)),
            "{back}"
        );
        assert!(mail_for(&app, &account).await.is_empty(), "{provider}: nobody mailed");

        // Asked for: invitations go out, to the guests.
        let loud = json!({"title": "Loud", "attendees": guests, "send_invitations": true,
                          "start": at(40).to_rfc3339(), "end": at(41).to_rfc3339()});
        let resp = app.post("/api/appointments/", &token).json(&loud).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        sync_now(&app, &token, &conn).await;
        let mail = mail_for(&app, &account).await;
        assert_eq!(mail.len(), 1, "{provider}: one invitation: {mail:?}");
        assert_eq!(mail[0]["kind"], "invitation");
        let mut to: Vec<&str> = mail[0]["recipients"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        to.sort_unstable();
        assert_eq!(to, ["ann@client.test", "bo@client.test"], "{provider}");
        let e = remote_event(&remote, "Loud").await;
        assert_eq!(e["attendees"].as_array().map(Vec::len), Some(2), "{provider}: invited: {e}");
        // Nothing more from a sync with no change.
        sync_now(&app, &token, &conn).await;
        assert_eq!(mail_for(&app, &account).await.len(), 1, "{provider}");
    }
}

/// An invitation from someone else: pulled with the attendees' answers; what the organizer owns
/// is read-only here (a clear 4xx, never a refused write retried forever); the attendee's own
/// free/busy goes through; the organizer's changes arrive; their cancellation cancels it.
async fn invitations_belong_to_their_organizer(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let account = format!("staff{n}@{}.test", if provider == "google" { "gmail" } else { "outlook" });
        let f = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let invited = if provider == "google" {
            let event = json!({"summary": "Board meeting", "start": {"dateTime": f(at(50))}, "end": {"dateTime": f(at(51))},
                               "attendees": [{"email": "cy@partner.test", "responseStatus": "declined"}]});
            app.control(
                "/_sandbox/google/invite",
                json!({"email": account, "organizer": "chair@partner.test", "event": event}),
            )
            .await
        } else {
            let t = |h| f(at(h)).trim_end_matches('Z').to_owned();
            let event = json!({"subject": "Board meeting", "start": {"dateTime": t(50), "timeZone": "UTC"},
                               "end": {"dateTime": t(51), "timeZone": "UTC"},
                               "attendees": [{"type": "required", "emailAddress": {"address": "cy@partner.test"}}]});
            app.control(
                "/_sandbox/microsoft/invite",
                json!({"email": account, "organizer": {"address": "chair@partner.test"}, "event": event}),
            )
            .await
        };
        let event_id = invited["id"].as_str().unwrap().to_owned();
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a)[0], 1, "{a}");
        let board = find_local(&app, &token, "Board meeting").await;
        assert_eq!(board["organizer"], "chair@partner.test", "{provider}: {board}");
        let answers: HashMap<&str, &str> = board["attendees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["email"].as_str().unwrap(), a["response"].as_str().unwrap()))
            .collect();
        assert_eq!(answers.get(account.as_str()), Some(&"needs_action"), "{provider}: {board}");
        if provider == "google" {
            assert_eq!(answers.get("chair@partner.test"), Some(&"accepted"), "{board}");
            assert_eq!(answers.get("cy@partner.test"), Some(&"declined"), "{board}");
        }
        // The organizer's fields are theirs.
        let id = board["id"].as_str().unwrap();
        let resp = app
            .patch(&format!("/api/appointments/{id}/"), &token)
            .json(&json!({"title": "Mine now"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{provider}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["field"], "title", "{err}");
        assert!(err.to_string().contains("chair@partner.test"), "{err}");
        // Free/busy is the attendee's own: it goes through, without a refused write.
        patch_local(&app, &token, id, json!({"show_as": "free"})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["status"].as_str(), counts(&a)[4]), (Some("success"), 1), "{provider}: {a}");
        let e = remote_event(&remote, "Board meeting").await;
        let free = if provider == "google" { e["transparency"] == "transparent" } else { e["showAs"] == "free" };
        assert!(free, "{provider}: {e}");
        // The organizer moves it; then cancels it.
        let patch = if provider == "google" {
            json!({"email": account, "event_id": event_id, "patch": {"summary": "Board meeting (moved)"}})
        } else {
            json!({"email": account, "event_id": event_id, "event": {"subject": "Board meeting (moved)"}})
        };
        app.control(&format!("/_sandbox/{provider}/organizer-update"), patch).await;
        sync_now(&app, &token, &conn).await;
        let moved = find_local(&app, &token, "Board meeting (moved)").await;
        assert_eq!(moved["show_as"], "free", "{provider}: the attendee's own setting stays: {moved}");
        app.control(&format!("/_sandbox/{provider}/organizer-cancel"), json!({"email": account, "event_id": event_id}))
            .await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{a}");
        let cancelled = find_local(&app, &token, "Board meeting (moved)").await;
        assert_eq!(cancelled["status"], "cancelled", "{provider}: cancelled, not deleted: {cancelled}");
        // No mail was sent by anything calsync did.
        assert!(mail_for(&app, &account).await.is_empty(), "{provider}");
    }
}

/// The live instances of the series titled `title` (or of its exceptions) as the provider
/// expands them: (id, title, start instant), by start.
async fn instances(remote: &Remote<'_>, prefix: &str) -> Vec<(String, String, chrono::DateTime<Utc>)> {
    let mut out: Vec<(String, String, chrono::DateTime<Utc>)> = remote
        .expanded()
        .await
        .iter()
        .filter_map(|e| {
            let title = e.get("summary").or_else(|| e.get("subject")).and_then(Value::as_str)?.to_owned();
            if !title.starts_with(prefix) {
                return None;
            }
            let raw = e["start"]["dateTime"].as_str()?;
            let start = chrono::DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
                .ok()?;
            Some((e["id"].as_str()?.to_owned(), title, start))
        })
        .collect();
    out.sort_by_key(|i| i.2);
    out
}

/// (title, start instant) of the occurrences calsync lists for the coming weeks.
async fn local_occurrences(app: &TestApp, token: &str, prefix: &str) -> Vec<(String, chrono::DateTime<Utc>)> {
    let f = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let url = format!("/api/appointments/?expand=true&limit=500&start={}&end={}", f(at(-24 * 40)), f(at(24 * 365)));
    let v: Value = app.get(&url.replace('+', "%2B"), token).send().await.unwrap().json().await.unwrap();
    let mut out: Vec<(String, chrono::DateTime<Utc>)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["title"].as_str().unwrap().starts_with(prefix))
        .map(|a| {
            let start = chrono::DateTime::parse_from_rfc3339(a["start"].as_str().unwrap()).unwrap().with_timezone(&Utc);
            (a["title"].as_str().unwrap().to_owned(), start)
        })
        .collect();
    out.sort_by_key(|o| o.1);
    out
}

/// A recurring series both ways: made here and pushed as a series (Google `recurrence`, Graph
/// `patternedRecurrence`); one occurrence moved and one cancelled here, one edited and one
/// deleted there; every change arrives on the other side, nothing is duplicated, a sync with
/// nothing new writes nothing, and deleting the series removes it there.
async fn recurring_series_sync_both_ways(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let start = at(48);
        let body = json!({"title": "Daily", "start": start.to_rfc3339(), "end": (start + Duration::minutes(30)).to_rfc3339(),
                          "time_zone": "Europe/Berlin", "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"]});
        let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let series: Value = resp.json().await.unwrap();
        let id = series["id"].as_str().unwrap().to_owned();
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(
            (a["status"].as_str(), counts(&a)[3]),
            (Some("success"), 1),
            "{provider}: one series, one create: {a}"
        );
        let there = instances(&remote, "Daily").await;
        let days: Vec<_> = there.iter().map(|i| i.2).collect();
        let expected: Vec<_> = (0..5).map(|d| start + Duration::days(d)).collect();
        assert_eq!(days, expected, "{provider}: five occurrences there");

        // Here: the second occurrence moved an hour and renamed, the third cancelled.
        let occ = |o: chrono::DateTime<Utc>| {
            format!("/api/appointments/{id}/occurrences/{}/", o.format("%Y-%m-%dT%H:%M:%SZ"))
        };
        let moved = json!({"title": "Daily (late)", "start": (expected[1] + Duration::hours(1)).to_rfc3339(),
                           "end": (expected[1] + Duration::minutes(90)).to_rfc3339()});
        let resp = app.patch(&occ(expected[1]), &token).json(&moved).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        let resp = app.delete(&occ(expected[2]), &token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        let there = instances(&remote, "Daily").await;
        let seen: Vec<(&str, chrono::DateTime<Utc>)> = there.iter().map(|i| (i.1.as_str(), i.2)).collect();
        assert_eq!(
            seen,
            [
                ("Daily", expected[0]),
                ("Daily (late)", expected[1] + Duration::hours(1)),
                ("Daily", expected[3]),
                ("Daily", expected[4])
            ],
            "{provider}: moved and cancelled there"
        );

        // There: the fourth occurrence renamed, the fifth deleted.
        let fourth = there.iter().find(|i| i.2 == expected[3]).unwrap().0.clone();
        let fifth = there.iter().find(|i| i.2 == expected[4]).unwrap().0.clone();
        remote.retitle(&fourth, "Daily (remote)").await;
        remote.delete(&fifth).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        let here = local_occurrences(&app, &token, "Daily").await;
        assert_eq!(
            here,
            [
                ("Daily".to_owned(), expected[0]),
                ("Daily (late)".to_owned(), expected[1] + Duration::hours(1)),
                ("Daily (remote)".to_owned(), expected[3])
            ],
            "{provider}: edited and deleted there arrive here"
        );
        let again = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&again), [0; 6], "{provider}: nothing left to do: {again}");
        assert_eq!(instances(&remote, "Daily").await.len(), 3, "{provider}");

        // No exception storm: a change of the master's location is one write, and the
        // exceptions keep their own titles there.
        patch_local(&app, &token, &id, json!({"location": "Room 7"})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a), [0, 0, 0, 0, 1, 0], "{provider}: one write for the master: {a}");
        let titles: Vec<String> = instances(&remote, "Daily").await.into_iter().map(|i| i.1).collect();
        assert_eq!(titles, ["Daily", "Daily (late)", "Daily (remote)"], "{provider}");

        // The whole series deleted here: gone there.
        let resp = app.delete(&format!("/api/appointments/{id}/"), &token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(a["status"], "success", "{provider}: {a}");
        assert_eq!(instances(&remote, "Daily").await, [], "{provider}: the series is gone there");
    }
}

/// Descriptions written with formatting in the calendar's own editor arrive as text (links
/// kept), and stay put: no update bounces back from the difference in form.
async fn formatted_descriptions_arrive_as_text_without_ping_pong(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let id = remote.create("Review", at(30)).await;
        let html = "<b>Bring</b> the lease<br>Join: <a href=\"https://meet.example/x\">video call</a>";
        let patch = if provider == "google" {
            json!({"description": html})
        } else {
            json!({"body": {"contentType": "html", "content": format!("<html><body><div>{html}</div></body></html>")}})
        };
        let resp =
            app.http.patch(remote.url(&format!("/{id}"))).bearer_auth(&remote.token).json(&patch).send().await.unwrap();
        assert!(resp.status().is_success());
        sync_now(&app, &token, &conn).await;
        let review = find_local(&app, &token, "Review").await;
        let text = review["description"].as_str().unwrap();
        assert!(text.starts_with("Bring the lease\nJoin: video call"), "{provider}: {text:?}");
        assert!(text.contains("https://meet.example/x"), "{provider}: the link is kept: {text:?}");
        assert!(!text.contains('<'), "{provider}: no markup: {text:?}");
        // Edited here: pushed once, read back as the same text, then quiet.
        patch_local(&app, &token, review["id"].as_str().unwrap(), json!({"title": "Review (moved)"})).await;
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&a), [0, 0, 0, 0, 1, 0], "{provider}: {a}");
        for _ in 0..2 {
            let a = sync_now(&app, &token, &conn).await;
            assert_eq!(counts(&a), [0; 6], "{provider}: no ping-pong: {a}");
        }
        assert_eq!(find_local(&app, &token, "Review (moved)").await["description"], text, "{provider}");
    }
}

/// Weekly series across the DST change weeks of Berlin (last Sunday of March), New York (second
/// Sunday of March) and Sydney (first Sunday of April): every occurrence there is at 10:00 local
/// time, and an all-day series stays on its dates seen from UTC−10 and UTC+14.
async fn series_keep_wall_clock_time_across_dst(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        // Set far enough out that a 400-day window holds them.
        set(&app, &token, &conn, json!({"sync_window_days": 365})).await;
        let cases = [
            ("Berlin", "Europe/Berlin", "2027-03-22T10:00:00+01:00"),
            ("New York", "America/New_York", "2027-03-08T10:00:00-05:00"),
            ("Sydney", "Australia/Sydney", "2027-03-29T10:00:00+11:00"),
        ];
        for (title, zone, start) in cases {
            let s = chrono::DateTime::parse_from_rfc3339(start).unwrap();
            let body = json!({"title": format!("DST {title}"), "start": start, "end": (s + Duration::minutes(30)).to_rfc3339(),
                              "time_zone": zone, "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"]});
            let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        }
        for zone in ["Pacific/Honolulu", "Pacific/Kiritimati"] {
            let body = json!({"title": format!("Day {zone}"), "all_day": true, "start": "2027-03-26", "end": "2027-03-27",
                              "time_zone": zone, "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"]});
            let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        }
        let a = sync_now(&app, &token, &conn).await;
        assert_eq!((a["status"].as_str(), counts(&a)[3]), (Some("success"), 5), "{provider}: {a}");
        for (title, zone, _) in cases {
            let tz: chrono_tz::Tz = zone.parse().unwrap();
            let there = instances(&remote, &format!("DST {title}")).await;
            assert_eq!(there.len(), 3, "{provider} {title}: {there:?}");
            for (_, _, at) in &there {
                assert_eq!(at.with_timezone(&tz).format("%H:%M").to_string(), "10:00", "{provider} {title}: {there:?}");
            }
        }
        // All-day occurrences there: dates, not times.
        let (from, to) = ("2027-03-20T00:00:00Z", "2027-04-10T00:00:00Z");
        let url = match provider {
            "google" => format!("{}?singleEvents=true&timeMin={from}&timeMax={to}", remote.url("")),
            _ => {
                app.sandbox_url(&format!("/microsoft/graph/v1.0/me/calendarView?startDateTime={from}&endDateTime={to}"))
            }
        };
        let v: Value = app.http.get(&url).bearer_auth(&remote.token).send().await.unwrap().json().await.unwrap();
        let items = v.get("items").or_else(|| v.get("value")).and_then(Value::as_array).unwrap().clone();
        for zone in ["Pacific/Honolulu", "Pacific/Kiritimati"] {
            let mut days: Vec<String> = items
                .iter()
                .filter(|e| e.get("summary").or_else(|| e.get("subject")) == Some(&json!(format!("Day {zone}"))))
                .map(|e| match provider {
                    "google" => e["start"]["date"].as_str().unwrap().to_owned(),
                    _ => {
                        assert_eq!(e["isAllDay"], true, "{e}");
                        e["start"]["dateTime"].as_str().unwrap()[..10].to_owned()
                    }
                })
                .collect();
            days.sort();
            assert_eq!(days, ["2027-03-26", "2027-04-02"], "{provider} {zone}");
        }
        // And back: nothing changed by the round trip.
        let again = sync_now(&app, &token, &conn).await;
        assert_eq!(counts(&again), [0; 6], "{provider}: {again}");
    }
}

/// "This and following" in Google's own UI: the master ends, a copy of it (same properties,
/// calsync's stamp included) starts a new series under a new id. calsync ends its series too and
/// imports the new one: every occurrence once on both sides.
async fn a_series_split_in_google_arrives_as_two(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, remote) = connected(&app, "google", 0).await;
    let start = at(48);
    let body = json!({"title": "Split me", "start": start.to_rfc3339(), "end": (start + Duration::minutes(30)).to_rfc3339(),
                      "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"]});
    let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    sync_now(&app, &token, &conn).await;
    let master = instances(&remote, "Split me").await[0].0.split('_').next().unwrap().to_owned();
    let from = (start + Duration::days(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let v = app
        .control(
            "/_sandbox/google/split-series",
            json!({"email": "staff0@gmail.test", "event_id": master, "from": from}),
        )
        .await;
    assert!(v.is_object(), "{v}");
    let a = sync_now(&app, &token, &conn).await;
    assert_eq!(a["status"], "success", "{a}");
    let here: Vec<chrono::DateTime<Utc>> =
        local_occurrences(&app, &token, "Split me").await.into_iter().map(|(_, t)| t).collect();
    let expected: Vec<_> = (0..5).map(|d| start + Duration::days(d)).collect();
    assert_eq!(here, expected, "every occurrence once here");
    assert_eq!(instances(&remote, "Split me").await.len(), 5, "and there");
    let again = sync_now(&app, &token, &conn).await;
    assert_eq!(counts(&again), [0; 6], "{again}");
}

/// A rule Outlook cannot hold (two days of the month) is refused for that appointment with the
/// reason, on its link and in the attempt, and never written as something else; Google takes it.
async fn a_rule_outlook_cannot_hold_is_refused_with_the_reason(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    for (n, provider) in PROVIDERS.into_iter().enumerate() {
        let (token, conn, remote) = connected(&app, provider, n).await;
        let start = at(24 * 3);
        let day = start.format("%d").to_string().parse::<u32>().unwrap();
        let other = if day > 15 { day - 14 } else { day + 14 };
        let (a, b) = (day.min(other), day.max(other));
        let rule = format!("RRULE:FREQ=MONTHLY;COUNT=4;BYMONTHDAY={a},{b}");
        // The start must be the first occurrence: the earlier day of the two, in this month.
        let first = if day == a { start } else { start - Duration::days(14) };
        let body = json!({"title": "Twice a month", "start": first.to_rfc3339(), "end": (first + Duration::minutes(30)).to_rfc3339(),
                          "recurrence": [rule]});
        let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        let made: Value = resp.json().await.unwrap();
        let a = sync_now(&app, &token, &conn).await;
        let there = instances(&remote, "Twice a month").await;
        if provider == "google" {
            assert_eq!(a["status"], "success", "{a}");
            assert!(!there.is_empty(), "google holds it");
        } else {
            assert_eq!((a["status"].as_str(), a["error_kind"].as_str()), (Some("partial"), Some("item")), "{a}");
            assert!(a["error"].as_str().unwrap().contains("Outlook cannot repeat it"), "{a}");
            assert!(there.is_empty(), "nothing written as something else: {there:?}");
            let v: Value = app
                .get(&format!("/api/appointments/{}/", made["id"].as_str().unwrap()), &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(v["sync"][0]["state"], "error", "{v}");
            assert!(v["sync"][0]["last_error"].as_str().unwrap().contains("BYMONTHDAY"), "{v}");
        }
    }
}

/// Two processes asked to sync the same connection at once: one syncs, the other waits for it
/// and answers with the same attempt.
async fn a_sync_running_in_another_process_is_waited_for(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let (token, conn, remote) = connected(&app, "google", 0).await;
    for i in 0..5 {
        create_local(&app, &token, &format!("W{i}"), at(30 + i)).await;
    }
    let (other, stop) = app.sibling().await;
    app.control("/_sandbox/latency", json!({"milliseconds": 100})).await;
    let here = app.post(&format!("{BASE}/{conn}/sync_now/"), &token).send();
    let there = app.http.post(format!("{other}{BASE}/{conn}/sync_now/")).bearer_auth(&token).send();
    let (a, b) = tokio::join!(here, there);
    app.control("/_sandbox/latency", json!({"milliseconds": 0})).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["attempt_id"], b["attempt_id"], "one sync, answered twice: {a} {b}");
    assert_eq!(counts(&a)[3], 5, "{a}");
    assert_eq!(remote.titles().await.len(), 5, "no event made twice");
    let _ = stop.send(());
}

backend_tests!(
    an_exception_moved_there_and_the_series_renamed_here_both_survive,
    cancelled_appointments_leave_the_calendar_and_stay_here,
    outlook_custom_zones_fall_back_to_utc_with_a_note,
    a_rule_outlook_cannot_hold_is_refused_with_the_reason,
    a_series_split_in_google_arrives_as_two,
    series_keep_wall_clock_time_across_dst,
    formatted_descriptions_arrive_as_text_without_ping_pong,
    recurring_series_sync_both_ways,
    attendees_are_never_mailed_unasked,
    invitations_belong_to_their_organizer,
    a_sync_running_in_another_process_is_waited_for,
    private_appointments_stay_private,
    outlook_zones_arrive_as_iana_zones,
    edits_to_different_fields_are_merged,
    mass_deletes_in_calsync_wait_too,
    a_cursor_dying_mid_listing_restarts_it_in_full,
    a_token_refused_mid_sync_is_refreshed_once_then_reported,
    keep_policy_keeps_without_bringing_back,
    events_moved_before_the_window_are_not_deletions,
    the_push_target_is_a_setting,
    edits_flow_both_ways_without_echoes,
    lost_answers_and_half_done_writes_make_no_duplicates,
    dead_cursors_lose_no_deletion,
    events_leaving_the_window_are_not_deletions,
    conflicts_follow_the_strategy,
    mass_deletes_wait_for_confirmation,
    throttling_and_lost_races_are_retried,
    a_revoked_grant_stops_the_sync_and_says_so,
    the_log_replays_and_stays_within_the_firm,
    concurrent_sync_requests_share_one_sync,
    sync_status_shows_progress_while_a_sync_runs,
);
