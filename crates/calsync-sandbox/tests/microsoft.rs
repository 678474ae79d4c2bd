//! Microsoft identity platform and Graph calendar against the sandbox over HTTP.

mod common;

use std::time::Duration;

use calsync_sandbox::SandboxConfig;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REDIRECT: &str = "http://localhost:8765/oauth/microsoft/callback";
const VERIFIER: &str = "ms-verifier-ms-verifier-ms-verifier-ms-verifier-01";
const G: &str = "/microsoft/graph/v1.0";

async fn code(h: &Harness, scope: &str, challenge: Option<&str>) -> String {
    let mut url = url::Url::parse(&h.url("/microsoft/common/oauth2/v2.0/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", "calsync-dev")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", "s1")
            .append_pair("login_hint", "m@example.com")
            .append_pair("sandbox_approve", "1");
        if let Some(c) = challenge {
            q.append_pair("code_challenge", c).append_pair("code_challenge_method", "S256");
        }
    }
    let resp = h.http.get(url).send().await.unwrap();
    let loc = location(&resp);
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s1"));
    query_param(&loc, "code").unwrap()
}

async fn token(h: &Harness, form: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("client_id", "calsync-dev"), ("client_secret", "calsync-dev-secret")];
    all.extend_from_slice(form);
    h.http.post(h.url("/microsoft/consumers/oauth2/v2.0/token")).form(&all).send().await.unwrap()
}

async fn redeem(h: &Harness, code: &str, verifier: &str) -> reqwest::Response {
    token(
        h,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

fn assert_aadsts(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error);
    assert_eq!(body["error_codes"], json!([code]));
    assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{code}: ")));
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[k].is_string(), "{k} missing");
    }
}

#[tokio::test]
async fn code_flow_with_pkce_and_code_reuse_is_54005() {
    let h = start().await;
    let c = code(&h, "offline_access Calendars.ReadWrite User.Read", Some(&s256(VERIFIER))).await;
    let tok = json_of(redeem(&h, &c, VERIFIER).await, StatusCode::OK).await;
    assert!(tok["access_token"].as_str().unwrap().starts_with("eyJ"));
    let ttl = tok["expires_in"].as_i64().unwrap();
    assert!((3600..=5400).contains(&ttl));
    assert_eq!(tok["ext_expires_in"], tok["expires_in"]);
    assert!(tok["refresh_token"].is_string());
    let reuse = json_of(redeem(&h, &c, VERIFIER).await, StatusCode::BAD_REQUEST).await;
    assert_aadsts(&reuse, "invalid_grant", 54005);
}

#[tokio::test]
async fn pkce_mismatch_is_501481_and_no_offline_access_means_no_refresh_token() {
    let h = start().await;
    let c = code(&h, "Calendars.ReadWrite", Some(&s256(VERIFIER))).await;
    let bad = json_of(redeem(&h, &c, &"z".repeat(60)).await, StatusCode::BAD_REQUEST).await;
    assert_aadsts(&bad, "invalid_grant", 501481);
    let c = code(&h, "Calendars.ReadWrite", None).await;
    let tok = json_of(redeem(&h, &c, VERIFIER).await, StatusCode::OK).await;
    assert!(tok.get("refresh_token").is_none());
}

#[tokio::test]
async fn refresh_rotates_and_revocation_gives_50173() {
    let h = start().await;
    let v = h.control("/_sandbox/accounts", json!({"provider": "microsoft", "email": "rot@example.com"})).await;
    let first = v["refresh_token"].as_str().unwrap().to_owned();
    let r1 =
        json_of(token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &first)]).await, StatusCode::OK).await;
    let second = r1["refresh_token"].as_str().unwrap();
    assert_ne!(second, first, "refresh tokens rotate");
    // The superseded token still works for a while.
    json_of(token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &first)]).await, StatusCode::OK).await;
    h.control("/_sandbox/revoke", json!({"provider": "microsoft", "email": "rot@example.com"})).await;
    let dead = json_of(
        token(&h, &[("grant_type", "refresh_token"), ("refresh_token", second)]).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_aadsts(&dead, "invalid_grant", 50173);
}

#[tokio::test]
async fn wrong_secret_is_401_invalid_client_7000215() {
    let h = start().await;
    let resp = h
        .http
        .post(h.url("/microsoft/common/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "calsync-dev"),
            ("client_secret", "x"),
            ("grant_type", "refresh_token"),
            ("refresh_token", "1.AR"),
        ])
        .send()
        .await
        .unwrap();
    let body = json_of(resp, StatusCode::UNAUTHORIZED).await;
    assert_aadsts(&body, "invalid_client", 7000215);
}

fn ev(subject: &str, start: &str, end: &str) -> Value {
    json!({"subject": subject, "start": {"dateTime": start, "timeZone": "UTC"}, "end": {"dateTime": end, "timeZone": "UTC"}})
}

#[tokio::test]
async fn graph_events_crud_etags_and_if_match() {
    let h = start().await;
    let t = h.ms_account("g@example.com").await;
    let me = json_of(h.get(&t, &format!("{G}/me")).await, StatusCode::OK).await;
    assert_eq!(me["mail"], "g@example.com");
    assert_eq!(me["userPrincipalName"], "g@example.com");

    let created = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{G}/me/events"),
            Some(ev("A", "2024-01-05T10:00:00", "2024-01-05T11:00:00")),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let etag = created["@odata.etag"].as_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""));
    assert_eq!(created["start"], json!({"dateTime": "2024-01-05T10:00:00.0000000", "timeZone": "UTC"}));
    assert_eq!(created["type"], "singleInstance");
    let path = format!("{G}/me/events/{}", created["id"].as_str().unwrap());

    let patched = json_of(h.send(Method::PATCH, &t, &path, Some(json!({"subject": "B"}))).await, StatusCode::OK).await;
    assert_ne!(patched["@odata.etag"], created["@odata.etag"]);
    let stale = h
        .http
        .patch(h.url(&path))
        .bearer_auth(&t)
        .header("If-Match", &etag)
        .json(&json!({"subject": "C"}))
        .send()
        .await
        .unwrap();
    let body = json_of(stale, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["error"]["code"], "ErrorIrresolvableConflict");

    // Prefer converts timed events into the requested zone.
    let resp = h
        .http
        .get(h.url(&path))
        .bearer_auth(&t)
        .header("Prefer", "outlook.timezone=\"W. Europe Standard Time\"")
        .send()
        .await
        .unwrap();
    let local = json_of(resp, StatusCode::OK).await;
    assert_eq!(local["start"]["dateTime"], "2024-01-05T11:00:00.0000000");

    assert_eq!(h.send(Method::DELETE, &t, &path, None).await.status(), StatusCode::NO_CONTENT);
    let gone = json_of(h.get(&t, &path).await, StatusCode::NOT_FOUND).await;
    assert_eq!(gone["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn transaction_id_dedupes_retried_creates() {
    let h = start().await;
    let t = h.ms_account("tx@example.com").await;
    let mut body = ev("A", "2024-01-05T10:00:00", "2024-01-05T11:00:00");
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let first =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(body.clone())).await, StatusCode::CREATED)
            .await;
    body["subject"] = json!("A (retry)");
    let second =
        json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(body)).await, StatusCode::CREATED).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["subject"], "A");
    let view = json_of(
        h.get(&t, &format!("{G}/me/calendarView?startDateTime=2024-01-05T00:00:00Z&endDateTime=2024-01-06T00:00:00Z"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn calendar_view_without_window_is_400() {
    let h = start().await;
    let t = h.ms_account("v@example.com").await;
    let body = json_of(h.get(&t, &format!("{G}/me/calendarView")).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"]["code"], "ErrorInvalidParameter");
    json_of(
        h.get(&t, &format!("{G}/me/calendarView/delta?startDateTime=2024-01-01T00:00:00Z")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

async fn follow(h: &Harness, t: &str, mut url: String, page_size: u32) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    loop {
        let resp = h
            .http
            .get(&url)
            .bearer_auth(t)
            .header("Prefer", format!("odata.maxpagesize={page_size}"))
            .send()
            .await
            .unwrap();
        let body = json_of(resp, StatusCode::OK).await;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(next) = body["@odata.nextLink"].as_str() {
            assert!(next.contains("$skiptoken="));
            url = next.to_owned();
            continue;
        }
        let delta = body["@odata.deltaLink"].as_str().expect("round ends with a deltaLink");
        assert!(delta.contains("$deltatoken="));
        return (items, delta.to_owned());
    }
}

#[tokio::test]
async fn delta_reports_changes_and_removals_including_out_of_window() {
    let h = start().await;
    let t = h.ms_account("d@example.com").await;
    let mut ids = Vec::new();
    for (i, day) in ["05", "06", "07"].iter().enumerate() {
        let e = ev(&format!("E{i}"), &format!("2024-01-{day}T10:00:00"), &format!("2024-01-{day}T11:00:00"));
        let c = json_of(h.send(Method::POST, &t, &format!("{G}/me/events"), Some(e)).await, StatusCode::CREATED).await;
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    let start_url = h
        .url(&format!("{G}/me/calendarView/delta?startDateTime=2024-01-01T00:00:00Z&endDateTime=2024-02-01T00:00:00Z"));
    let (initial, delta) = follow(&h, &t, start_url, 2).await;
    assert_eq!(initial.len(), 3);

    // A window on a deltaLink is a client bug.
    let bad = h.http.get(format!("{delta}&startDateTime=2024-01-01T00:00:00Z")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{G}/me/events/{}", ids[0]), None).await.status(),
        StatusCode::NO_CONTENT
    );
    let moved = ev("E1 moved", "2024-03-01T10:00:00", "2024-03-01T11:00:00");
    json_of(h.send(Method::PATCH, &t, &format!("{G}/me/events/{}", ids[1]), Some(moved)).await, StatusCode::OK).await;
    json_of(
        h.send(Method::PATCH, &t, &format!("{G}/me/events/{}", ids[2]), Some(json!({"subject": "E2b"}))).await,
        StatusCode::OK,
    )
    .await;

    let (changes, next_delta) = follow(&h, &t, delta, 10).await;
    assert_eq!(changes.len(), 3);
    let removed: Vec<_> =
        changes.iter().filter(|c| c.get("@removed").is_some()).map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&ids[0].as_str()) && removed.contains(&ids[1].as_str()));
    let kept = changes.iter().find(|c| c["id"] == ids[2].as_str()).unwrap();
    assert_eq!(kept["subject"], "E2b");

    let (nothing, _) = follow(&h, &t, next_delta.clone(), 10).await;
    assert!(nothing.is_empty());

    h.control("/_sandbox/expire-cursors", json!({"provider": "microsoft"})).await;
    let resp = h.http.get(&next_delta).bearer_auth(&t).send().await.unwrap();
    assert!(resp.headers().contains_key("location"));
    let body = json_of(resp, StatusCode::GONE).await;
    assert_eq!(body["error"]["code"], "SyncStateNotFound");
}

#[tokio::test]
async fn mailbox_request_budget_gives_429_with_retry_after_until_the_window_passes() {
    let h = start_with(SandboxConfig { seed: Some(1), graph_mailbox_limit: 3, ..Default::default() }).await;
    let t = h.ms_account("th@example.com").await;
    for _ in 0..3 {
        json_of(h.get(&t, &format!("{G}/me/calendars")).await, StatusCode::OK).await;
    }
    let resp = h.get(&t, &format!("{G}/me/calendars")).await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry));
    let body = json_of(resp, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["error"]["code"], "TooManyRequests");
    h.advance(601).await;
    // The sandbox clock moved past the window, but the access token (≥3600 s) still lives.
    json_of(h.get(&t, &format!("{G}/me/calendars")).await, StatusCode::OK).await;
}

#[tokio::test]
async fn more_than_four_concurrent_requests_per_mailbox_get_application_throttled() {
    let h = start().await;
    let t = h.ms_account("cc@example.com").await;
    h.control("/_sandbox/latency", json!({"milliseconds": 400})).await;
    let url = h.url(&format!("{G}/me/calendars"));
    let reqs = (0..6).map(|_| h.http.get(&url).bearer_auth(&t).timeout(Duration::from_secs(10)).send());
    let results = futures_join(reqs.collect()).await;
    let throttled: Vec<_> = results.into_iter().filter(|s| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(throttled.len(), 2);
}

async fn futures_join(
    futs: Vec<impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static>,
) -> Vec<StatusCode> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap().status());
    }
    out
}

#[tokio::test]
async fn graph_status_fault_carries_retry_after() {
    let h = start().await;
    let t = h.ms_account("gf@example.com").await;
    h.fault(json!({"provider": "microsoft", "path_regex": "/me/calendars$", "count": 1, "kind": "status", "status": 503, "retry_after": 0})).await;
    let resp = h.get(&t, &format!("{G}/me/calendars")).await;
    assert_eq!(resp.headers()["retry-after"], "0");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    json_of(h.get(&t, &format!("{G}/me/calendars")).await, StatusCode::OK).await;
}
