//! Calendar connections end to end against the provider sandbox, on SQLite and PostgreSQL: the
//! OAuth flows and every way they can fail, refresh (with Microsoft's rotation, concurrency,
//! revocation and outages), disconnect, settings, tenancy, and tokens never stored in the clear.

mod common;

use calsync_domain::connection::ConnectionStatus;
use calsync_server::services::connections::{ConnectionService, TokenError};
use calsync_testkit::{Backend, backend_tests};
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const BASE: &str = "/api/calendar/oauth-connections";

async fn initiate(app: &TestApp, token: &str, provider: &str) -> (String, String) {
    let resp = app.post(&format!("{BASE}/initiate_{provider}_oauth/"), token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    (v["authorization_url"].as_str().unwrap().to_owned(), v["state"].as_str().unwrap().to_owned())
}

/// Approves at the sandbox as `email` and returns the redirect's query parameters.
async fn approve(app: &TestApp, authorization_url: &str, email: &str, extra: &str) -> HashMap<String, String> {
    let url = format!("{authorization_url}&sandbox_approve=1&login_hint={email}{extra}");
    let resp = app.http.get(url).send().await.unwrap();
    assert!(resp.status().is_redirection(), "sandbox answered {}: {}", resp.status(), resp.text().await.unwrap());
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/calendar/oauth/callback");
    location.query_pairs().into_owned().collect()
}

async fn callback(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post(&format!("{BASE}/oauth_callback/"), token).json(&body).send().await.unwrap()
}

async fn connect(app: &TestApp, token: &str, provider: &str, email: &str) -> Value {
    let (url, state) = initiate(app, token, provider).await;
    let q = approve(app, &url, email, "").await;
    assert_eq!(q["state"], state, "the state comes back unchanged");
    let resp = callback(app, token, json!({"code": q["code"], "state": q["state"]})).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

async fn error_code(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    (status, v["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn firm_of(app: &TestApp) -> calsync_domain::ids::FirmId {
    app.db.firm_by_slug("acme").await.unwrap().id
}

fn conn_id(c: &Value) -> calsync_domain::ids::ConnectionId {
    c["id"].as_str().unwrap().parse().unwrap()
}

async fn connect_both_providers(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    assert_eq!(
        (g["provider"].as_str(), g["account_email"].as_str(), g["status"].as_str()),
        (Some("google"), Some("ann@gmail.test"), Some("active"))
    );
    assert_eq!(g["sync_window_days"], 30);
    assert_eq!(g["conflict_strategy"], "newest_wins");
    assert_eq!(g["delete_policy"], "propagate");
    assert!(g["token_expires_at"].is_string());
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    assert_eq!(m["provider"], "microsoft");

    let list: Value = app.get(&format!("{BASE}/"), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let text = list.to_string();
    assert!(
        !text.contains("access_token")
            && !text.contains("refresh_token")
            && !text.contains("ya29.")
            && !text.contains("1//"),
        "{text}"
    );

    for c in [&g, &m] {
        let cals: Value = app
            .get(&format!("{BASE}/{}/calendars/", c["id"].as_str().unwrap()), &ann)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cals = cals.as_array().unwrap();
        assert!(!cals.is_empty());
        let primary: Vec<&Value> = cals.iter().filter(|c| c["primary"] == true).collect();
        assert_eq!(primary.len(), 1);
        assert_eq!(primary[0]["selected"], true, "the primary calendar is selected");
    }
}

async fn refusals_and_bad_states_change_nothing(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let bob = app.user("acme", "bob@acme.test", "staff").await;

    // Denied at the consent screen.
    let (url, state) = initiate(&app, &ann, "google").await;
    let consent = app.http.get(&url).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::OK, "without sandbox_approve the consent page is shown");
    let denied = callback(&app, &ann, json!({"state": state, "error": "access_denied"})).await;
    assert_eq!(error_code(denied).await, (StatusCode::BAD_REQUEST, "access_denied".into()));
    let again = callback(&app, &ann, json!({"state": state, "code": "x"})).await;
    assert_eq!(error_code(again).await.1, "state_used");

    // Forged.
    let forged = callback(&app, &ann, json!({"state": "made-up", "code": "x"})).await;
    assert_eq!(error_code(forged).await, (StatusCode::BAD_REQUEST, "invalid_state".into()));
    let missing = callback(&app, &ann, json!({"code": "x"})).await;
    assert_eq!(error_code(missing).await.1, "invalid_state");

    // Another user's state is refused and stays usable by its owner.
    let (url, state) = initiate(&app, &ann, "microsoft").await;
    let q = approve(&app, &url, "ann@outlook.test", "").await;
    let stolen = callback(&app, &bob, json!({"state": state, "code": q["code"]})).await;
    assert_eq!(error_code(stolen).await.1, "invalid_state");
    let owner = callback(&app, &ann, json!({"state": state, "code": q["code"]})).await;
    assert_eq!(owner.status(), StatusCode::OK);
    // Reused.
    let reused = callback(&app, &ann, json!({"state": state, "code": q["code"]})).await;
    assert_eq!(error_code(reused).await.1, "state_used");

    // Expired: ten minutes later by the service's clock.
    let (url, state) = initiate(&app, &ann, "google").await;
    let q = approve(&app, &url, "ann@gmail.test", "").await;
    app.state.clock.advance(11 * 60);
    let expired = callback(&app, &ann, json!({"state": state, "code": q["code"]})).await;
    assert_eq!(error_code(expired).await.1, "state_expired");

    // PKCE mismatch: a code issued for one authorization, redeemed with another's verifier.
    let (url_a, _state_a) = initiate(&app, &ann, "google").await;
    let (_url_b, state_b) = initiate(&app, &ann, "google").await;
    let qa = approve(&app, &url_a, "ann@gmail.test", "").await;
    let mismatch = callback(&app, &ann, json!({"state": state_b, "code": qa["code"]})).await;
    assert_eq!(error_code(mismatch).await, (StatusCode::BAD_REQUEST, "invalid_grant".into()));

    // Partial grant: events permission withheld, by an account that never granted it before
    // (with include_granted_scopes, earlier grants would otherwise carry over, as at Google).
    let (url, state) = initiate(&app, &ann, "google").await;
    let partial = "&sandbox_grant_scopes=openid%20https://www.googleapis.com/auth/userinfo.email%20https://www.googleapis.com/auth/calendar.readonly";
    let q = approve(&app, &url, "fresh@gmail.test", partial).await;
    let resp = callback(&app, &ann, json!({"state": state, "code": q["code"]})).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("insufficient_scope")));
    assert!(body["error"]["message"].as_str().unwrap().contains("edit events"), "{body}");
    let (url, state) = initiate(&app, &ann, "microsoft").await;
    let q = approve(&app, &url, "ann2@outlook.test", "&sandbox_grant_scopes=offline_access%20User.Read").await;
    let resp = callback(&app, &ann, json!({"state": state, "code": q["code"]})).await;
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Calendars.ReadWrite"), "{body}");

    // Only the one good attempt left a connection, and none for Google.
    let list: Value = app.get(&format!("{BASE}/"), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        list.as_array().unwrap().iter().map(|c| c["account_email"].as_str().unwrap()).collect::<Vec<_>>(),
        ["ann@outlook.test"]
    );
    let bobs: Value = app.get(&format!("{BASE}/"), &bob).send().await.unwrap().json().await.unwrap();
    assert_eq!(bobs, json!([]));
}

async fn reconnecting_updates_the_same_connection(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let first = connect(&app, &ann, "google", "ann@gmail.test").await;
    let disconnected: Value = app
        .post(&format!("{BASE}/{}/disconnect/", first["id"].as_str().unwrap()), &ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (disconnected["status"].as_str(), disconnected["status_reason"].as_str()),
        (Some("revoked"), Some("disconnected"))
    );
    assert_eq!(disconnected["sync_enabled"], false);
    assert!(disconnected["status_message"].as_str().unwrap().contains("Disconnected"));
    assert_eq!(app.sandbox_requests(|k| k == "POST /google/revoke").await, 1, "revoked at Google");
    let tokens = app.db.tokens(&app.state.config.keyring, firm_of(&app).await, conn_id(&first)).await.unwrap();
    assert!(tokens.access_token.is_none() && tokens.refresh_token.is_none(), "tokens wiped");

    let again = connect(&app, &ann, "google", "ann@gmail.test").await;
    assert_eq!(again["id"], first["id"], "one connection per account");
    assert_eq!(
        (again["status"].as_str(), again["sync_enabled"].as_bool()),
        (Some("active"), Some(true)),
        "reconnecting resumes sync"
    );
    let list: Value = app.get(&format!("{BASE}/"), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let requests_before = app.sandbox_requests(|_| true).await;
    let gone: Value = app
        .post(&format!("{BASE}/{}/disconnect/", m["id"].as_str().unwrap()), &ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone["status"], "revoked");
    assert_eq!(app.sandbox_requests(|_| true).await, requests_before, "Microsoft has no revocation endpoint to call");
}

/// Past every access token's lifetime (Google 3599 s, Microsoft up to 5400 s), by both clocks: the
/// sandbox's (so old tokens stop working there) and calsync's (so it decides to refresh).
async fn pass_token_lifetime(app: &TestApp) {
    app.control("/_sandbox/clock", json!({"advance_seconds": 5500})).await;
    app.state.clock.advance(5500);
}

async fn refresh_keeps_google_and_rotates_microsoft(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let svc = &app.state.connections;
    let firm = firm_of(&app).await;
    let keyring = &app.state.config.keyring;

    let before = app.token_requests().await;
    let g_token = svc.access_token(firm, conn_id(&g)).await.unwrap();
    assert_eq!(app.token_requests().await, before, "a fresh token is used as is");

    pass_token_lifetime(&app).await;
    let g_old = app.db.tokens(keyring, firm, conn_id(&g)).await.unwrap();
    let m_old = app.db.tokens(keyring, firm, conn_id(&m)).await.unwrap();
    let g_new = svc.access_token(firm, conn_id(&g)).await.unwrap();
    let m_new = svc.access_token(firm, conn_id(&m)).await.unwrap();
    assert_ne!(g_new, g_token);
    assert_eq!(app.token_requests().await, before + 2, "one refresh each");
    let g_after = app.db.tokens(keyring, firm, conn_id(&g)).await.unwrap();
    let m_after = app.db.tokens(keyring, firm, conn_id(&m)).await.unwrap();
    assert_eq!(g_after.refresh_token, g_old.refresh_token, "Google does not rotate: the refresh token is kept");
    assert_ne!(m_after.refresh_token, m_old.refresh_token, "Microsoft rotates: the newest refresh token is stored");
    assert_eq!(m_after.access_token.as_deref(), Some(m_new.as_str()));

    // The new tokens work at the provider.
    let me = app.http.get(app.sandbox_url("/microsoft/graph/v1.0/me")).bearer_auth(&m_new).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let list = app
        .http
        .get(app.sandbox_url("/google/calendar/v3/users/me/calendarList"))
        .bearer_auth(&g_new)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    // Another lifetime later: the rotated Microsoft refresh token is the one in use now.
    pass_token_lifetime(&app).await;
    assert!(svc.access_token(firm, conn_id(&m)).await.is_ok());
}

async fn concurrent_refreshes_make_one_token_request(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let firm = firm_of(&app).await;
    pass_token_lifetime(&app).await;
    // A second service over the same database stands for another process or worker.
    let other = Arc::new(ConnectionService::new(
        app.db.clone(),
        app.state.config.keyring.clone(),
        Arc::new(app.state.connections.providers().clone()),
        app.state.clock.clone(),
    ));
    app.control("/_sandbox/latency", json!({"milliseconds": 150})).await;
    let before = app.token_requests().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let svc = if i % 2 == 0 { app.state.connections.clone() } else { other.clone() };
        let id = conn_id(&m);
        tasks.push(tokio::spawn(async move { svc.access_token(firm, id).await.map_err(|e| e.to_string()) }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap());
    }
    assert_eq!(app.token_requests().await, before + 1, "exactly one refresh reached the provider");
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "everyone got the same new token");
}

async fn revoked_grants_ask_for_reconnection(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let firm = firm_of(&app).await;
    app.control("/_sandbox/revoke", json!({"provider": "google", "email": "ann@gmail.test"})).await;
    app.control("/_sandbox/revoke", json!({"provider": "microsoft", "email": "ann@outlook.test"})).await;
    pass_token_lifetime(&app).await;
    for (c, status, reason) in
        [(&g, ConnectionStatus::Expired, "grant_expired"), (&m, ConnectionStatus::Revoked, "grant_revoked")]
    {
        let err = app.state.connections.access_token(firm, conn_id(c)).await.unwrap_err();
        assert!(matches!(err, TokenError::Reauthorize(_)), "{err:?}");
        let shown: Value = app
            .get(&format!("{BASE}/{}/", c["id"].as_str().unwrap()), &ann)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shown["status"], status.as_str());
        assert_eq!(shown["status_reason"], reason, "{shown}");
        assert!(shown["status_message"].as_str().unwrap().contains("Reconnect"), "{shown}");
        let tokens = app.db.tokens(&app.state.config.keyring, firm, conn_id(c)).await.unwrap();
        assert!(tokens.refresh_token.is_none(), "a dead grant is not kept");
    }
    let before = app.token_requests().await;
    assert!(app.state.connections.access_token(firm, conn_id(&g)).await.is_err());
    assert_eq!(app.token_requests().await, before, "no retrying a refused grant");
}

async fn token_endpoint_outages_leave_the_grant_intact(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let firm = firm_of(&app).await;
    let keyring = &app.state.config.keyring;
    pass_token_lifetime(&app).await;

    // 503s: three attempts with backoff, then `error`, tokens untouched.
    app.control(
        "/_sandbox/faults",
        json!({"provider": "google", "path_regex": "/token$", "count": 3, "kind": "status", "status": 503}),
    )
    .await;
    let before_tokens = app.db.tokens(keyring, firm, conn_id(&g)).await.unwrap();
    let before = app.token_requests().await;
    let err = app.state.connections.access_token(firm, conn_id(&g)).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    assert_eq!(app.token_requests().await, before + 3);
    assert_eq!(app.db.tokens(keyring, firm, conn_id(&g)).await.unwrap(), before_tokens);
    let shown: Value =
        app.get(&format!("{BASE}/{}/", g["id"].as_str().unwrap()), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["status_reason"].as_str()),
        (Some("error"), Some("provider_unavailable"))
    );
    // Within the backoff the failure is reported without another attempt.
    assert!(matches!(app.state.connections.access_token(firm, conn_id(&g)).await, Err(TokenError::Unavailable(_))));
    assert_eq!(app.token_requests().await, before + 3);
    // The outage is over: after the backoff the next use refreshes and the connection is active again.
    app.state.clock.advance(calsync_engine::tokens::FAILURE_BACKOFF_SECONDS + 1);
    assert!(app.state.connections.access_token(firm, conn_id(&g)).await.is_ok());
    let shown: Value =
        app.get(&format!("{BASE}/{}/", g["id"].as_str().unwrap()), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!((shown["status"].as_str(), shown["status_message"].as_str()), (Some("active"), Some("")));
    assert!(shown["status_reason"].is_null(), "a successful refresh clears the reason");

    // Timeouts (the sandbox holds the request past calsync's one-second provider timeout).
    app.control(
        "/_sandbox/faults",
        json!({"provider": "microsoft", "path_regex": "/token$", "count": 3, "kind": "timeout"}),
    )
    .await;
    let before_tokens = app.db.tokens(keyring, firm, conn_id(&m)).await.unwrap();
    let err = app.state.connections.access_token(firm, conn_id(&m)).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    assert_eq!(
        app.db.tokens(keyring, firm, conn_id(&m)).await.unwrap(),
        before_tokens,
        "the rotating refresh token survives"
    );
    app.state.clock.advance(calsync_engine::tokens::FAILURE_BACKOFF_SECONDS + 1);
    assert!(app.state.connections.access_token(firm, conn_id(&m)).await.is_ok());
}

async fn settings_are_validated(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let path = format!("{BASE}/{}/", g["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"sync_window_days": 6}), "sync_window_days"),
        (json!({"sync_window_days": 366}), "sync_window_days"),
        (json!({"conflict_strategy": "loudest_wins"}), "conflict_strategy"),
        (json!({"delete_policy": "shred"}), "delete_policy"),
        (json!({"selected_calendars": ["nope"]}), "selected_calendars[0]"),
        (json!({"sync_enabled": "yes"}), "sync_enabled"),
        (json!({"status": "active"}), "status"),
    ] {
        let resp = app.patch(&path, &ann).json(&body).send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["field"].as_str(), Some(field), "{body}: {v}");
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY, "{body}: {status}");
        if field.starts_with("sync_window") {
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
    }
    let unchanged: Value = app.get(&path, &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!(unchanged["updated_at"], g["updated_at"], "rejected changes wrote nothing");
    let cals: Value = app.get(&format!("{path}calendars/"), &ann).send().await.unwrap().json().await.unwrap();
    let primary = cals.as_array().unwrap().iter().find(|c| c["primary"] == true).unwrap()["id"].clone();
    let ok: Value = app
        .patch(&path, &ann)
        .json(&json!({"sync_window_days": 90, "conflict_strategy": "manual", "delete_policy": "keep", "sync_enabled": false, "selected_calendars": [primary]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            ok["sync_window_days"].as_i64(),
            ok["conflict_strategy"].as_str(),
            ok["delete_policy"].as_str(),
            ok["sync_enabled"].as_bool()
        ),
        (Some(90), Some("manual"), Some("keep"), Some(false))
    );
}

async fn other_users_and_firms_get_404(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let boss = app.user("acme", "boss@acme.test", "admin").await;
    let eve = app.user("globex", "eve@globex.test", "admin").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let id = g["id"].as_str().unwrap();
    for outsider in [&boss, &eve] {
        assert_eq!(app.get(&format!("{BASE}/{id}/"), outsider).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        assert_eq!(
            app.get(&format!("{BASE}/{id}/calendars/"), outsider).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        let p =
            app.patch(&format!("{BASE}/{id}/"), outsider).json(&json!({"sync_enabled": false})).send().await.unwrap();
        assert_eq!(p.status(), StatusCode::NOT_FOUND);
        let d = app.post(&format!("{BASE}/{id}/disconnect/"), outsider).send().await.unwrap();
        assert_eq!(d.status(), StatusCode::NOT_FOUND);
        let list: Value = app.get(&format!("{BASE}/"), outsider).send().await.unwrap().json().await.unwrap();
        assert_eq!(list, json!([]));
    }
    let still: Value = app.get(&format!("{BASE}/{id}/"), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!((still["status"].as_str(), still["sync_enabled"].as_bool()), (Some("active"), Some(true)));
    assert_eq!(app.get(&format!("{BASE}/not-an-id/"), &ann).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

/// No token is in the database in the clear: not in the SQLite file or its WAL, not in any
/// PostgreSQL row.
async fn tokens_are_never_stored_in_plain_text(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let firm = firm_of(&app).await;
    let mut secrets = Vec::new();
    for c in [&g, &m] {
        let t = app.db.tokens(&app.state.config.keyring, firm, conn_id(c)).await.unwrap();
        secrets.extend(t.access_token);
        secrets.extend(t.refresh_token);
    }
    pass_token_lifetime(&app).await;
    app.state.connections.access_token(firm, conn_id(&m)).await.unwrap();
    app.state.connections.access_token(firm, conn_id(&g)).await.unwrap();
    for c in [&g, &m] {
        let t = app.db.tokens(&app.state.config.keyring, firm, conn_id(c)).await.unwrap();
        secrets.extend(t.access_token);
        secrets.extend(t.refresh_token);
    }
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets.len(), 7, "two Google access tokens and its refresh token; two Microsoft pairs");
    let haystack: Vec<u8> = match backend {
        Backend::Sqlite => {
            let path = std::path::PathBuf::from(app.url_db.trim_start_matches("sqlite://"));
            let dir = path.parent().unwrap();
            let mut all = Vec::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                all.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            assert!(all.len() > 4096);
            all
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&app.url_db).await.unwrap();
            let mut all = String::new();
            for table in
                ["oauth_connections", "oauth_authorization_codes", "synced_calendars", "api_tokens", "web_sessions"]
            {
                let rows: Vec<(String,)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT row_to_json(t)::text FROM {table} t")))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                all.extend(rows.into_iter().map(|(r,)| r));
            }
            assert!(all.contains("\"access_token\":\"v1."), "sealed tokens were read");
            all.into_bytes()
        }
    };
    for s in &secrets {
        assert!(!haystack.windows(s.len()).any(|w| w == s.as_bytes()), "a token is stored in the clear");
    }
    let prefix_found = haystack.windows(5).any(|w| w == b"ya29.");
    assert!(!prefix_found, "no Google access token in any form");
}

/// A disconnect that lands while a refresh is at the token endpoint wins: the refresh's result is
/// discarded, nothing is written back.
async fn a_disconnect_during_a_refresh_stands(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let m = connect(&app, &ann, "microsoft", "ann@outlook.test").await;
    let firm = firm_of(&app).await;
    pass_token_lifetime(&app).await;
    app.control("/_sandbox/latency", json!({"milliseconds": 700})).await;
    let before = app.token_requests().await;
    let svc = app.state.connections.clone();
    let id = conn_id(&m);
    let refresh = tokio::spawn(async move { svc.access_token(firm, id).await });
    // Wait until the refresh request has reached the sandbox (counted before its latency).
    for _ in 0..500 {
        if app.token_requests().await > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(app.token_requests().await, before + 1, "the refresh is in flight");
    let gone = app.post(&format!("{BASE}/{}/disconnect/", m["id"].as_str().unwrap()), &ann).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::OK);
    let outcome = refresh.await.unwrap();
    assert!(outcome.is_err(), "the late refresh does not hand out a token for a disconnected account");
    let shown: Value =
        app.get(&format!("{BASE}/{}/", m["id"].as_str().unwrap()), &ann).send().await.unwrap().json().await.unwrap();
    assert_eq!((shown["status"].as_str(), shown["sync_enabled"].as_bool()), (Some("revoked"), Some(false)));
    let tokens = app.db.tokens(&app.state.config.keyring, firm, id).await.unwrap();
    assert!(tokens.access_token.is_none() && tokens.refresh_token.is_none(), "nothing written back");
}

/// Callers queued behind a refresh that failed for an outage get its answer instead of trying
/// again, until the backoff has passed.
async fn waiters_share_a_failed_refresh(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let g = connect(&app, &ann, "google", "ann@gmail.test").await;
    let firm = firm_of(&app).await;
    pass_token_lifetime(&app).await;
    app.control(
        "/_sandbox/faults",
        json!({"provider": "google", "path_regex": "/token$", "count": 100, "kind": "status", "status": 500}),
    )
    .await;
    let before = app.token_requests().await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let svc = app.state.connections.clone();
        let id = conn_id(&g);
        tasks.push(tokio::spawn(async move { svc.access_token(firm, id).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(TokenError::Unavailable(_))));
    }
    assert_eq!(app.token_requests().await, before + 3, "one round of attempts, not one per caller");
}

backend_tests!(
    a_disconnect_during_a_refresh_stands,
    waiters_share_a_failed_refresh,
    connect_both_providers,
    refusals_and_bad_states_change_nothing,
    reconnecting_updates_the_same_connection,
    refresh_keeps_google_and_rotates_microsoft,
    concurrent_refreshes_make_one_token_request,
    revoked_grants_ask_for_reconnection,
    token_endpoint_outages_leave_the_grant_intact,
    settings_are_validated,
    other_users_and_firms_get_404,
    tokens_are_never_stored_in_plain_text,
);
