//! Google OAuth 2.0 flow against the sandbox over HTTP.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9999/oauth/google/callback";
const CAL: &str = "https://www.googleapis.com/auth/calendar";
const EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";
const VERIFIER: &str = "verifier-verifier-verifier-verifier-verifier-0123";

fn authorize_url(h: &Harness, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&h.url("/google/o/oauth2/v2/auth")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", "calsync-dev")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("state", "st-123")
            .append_pair("access_type", "offline");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// Approves at once and returns the redirect URL.
async fn approve(h: &Harness, extra: &[(&str, &str)]) -> url::Url {
    let resp = h.http.get(authorize_url(h, extra)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    location(&resp)
}

async fn exchange(h: &Harness, code: &str, redirect: &str, verifier: Option<&str>) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", "calsync-dev"),
        ("client_secret", "calsync-dev-secret"),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    h.http.post(h.url("/google/token")).form(&form).send().await.unwrap()
}

async fn refresh(h: &Harness, token: &str) -> reqwest::Response {
    h.http
        .post(h.url("/google/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", "calsync-dev"),
            ("client_secret", "calsync-dev-secret"),
        ])
        .send()
        .await
        .unwrap()
}

async fn full_flow(h: &Harness, email: &str, extra: &[(&str, &str)]) -> Value {
    let challenge = s256(VERIFIER);
    let mut params = vec![
        ("scope", CAL),
        ("login_hint", email),
        ("sandbox_approve", "1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let loc = approve(h, &params).await;
    let code = query_param(&loc, "code").unwrap();
    json_of(exchange(h, &code, REDIRECT, Some(VERIFIER)).await, StatusCode::OK).await
}

#[tokio::test]
async fn code_flow_with_pkce_issues_tokens_and_codes_are_single_use() {
    let h = start().await;
    let challenge = s256(VERIFIER);
    let loc = approve(
        &h,
        &[
            ("scope", CAL),
            ("login_hint", "ann@example.com"),
            ("sandbox_approve", "1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert!(loc.as_str().starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    assert_eq!(query_param(&loc, "scope").as_deref(), Some(CAL));
    let code = query_param(&loc, "code").unwrap();

    let tok = json_of(exchange(&h, &code, REDIRECT, Some(VERIFIER)).await, StatusCode::OK).await;
    assert!(tok["access_token"].as_str().unwrap().starts_with("ya29."));
    assert!(tok["refresh_token"].as_str().unwrap().starts_with("1//"));
    assert_eq!(tok["expires_in"], 3599);
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["scope"], CAL);

    let again = json_of(exchange(&h, &code, REDIRECT, Some(VERIFIER)).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(again, json!({"error": "invalid_grant", "error_description": "Bad Request"}));
}

#[tokio::test]
async fn token_exchange_rejects_a_different_redirect_uri() {
    let h = start().await;
    let loc = approve(&h, &[("scope", CAL), ("login_hint", "a@example.com"), ("sandbox_approve", "1")]).await;
    let code = query_param(&loc, "code").unwrap();
    let body = json_of(exchange(&h, &code, &format!("{REDIRECT}/"), None).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "redirect_uri_mismatch");
}

#[tokio::test]
async fn authorize_rejects_a_non_loopback_redirect_on_the_page() {
    let h = start().await;
    let url = authorize_url(&h, &[("scope", CAL)]).replace("127.0.0.1%3A9999", "evil.example.com");
    let resp = h.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("redirect_uri_mismatch"));
}

#[tokio::test]
async fn token_exchange_rejects_a_wrong_pkce_verifier() {
    let h = start().await;
    let challenge = s256(VERIFIER);
    let loc = approve(
        &h,
        &[
            ("scope", CAL),
            ("login_hint", "a@example.com"),
            ("sandbox_approve", "1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let code = query_param(&loc, "code").unwrap();
    let wrong = "x".repeat(50);
    let body = json_of(exchange(&h, &code, REDIRECT, Some(&wrong)).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_grant");
    let missing = json_of(exchange(&h, &code, REDIRECT, None).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(missing["error"], "invalid_grant");
}

#[tokio::test]
async fn consent_page_lists_scopes_escaped_and_deny_redirects_with_access_denied() {
    let h = start().await;
    let resp =
        h.http.get(authorize_url(&h, &[("scope", CAL), ("login_hint", "<b>x@example.com")])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains(CAL));
    assert!(html.contains("&#60;b&#62;x@example.com") || html.contains("&lt;b&gt;x@example.com"));
    assert!(!html.contains("<b>x@example.com"));

    let form = [
        ("client_id", "calsync-dev"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", CAL),
        ("state", "st-9"),
        ("account", "x@example.com"),
        ("decision", "deny"),
    ];
    let resp = h.http.post(h.url("/google/o/oauth2/v2/auth")).form(&form).send().await.unwrap();
    let loc = location(&resp);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-9"));
    assert!(query_param(&loc, "code").is_none());
}

#[tokio::test]
async fn consent_form_allow_with_unchecked_scope_grants_the_subset() {
    let h = start().await;
    let scope = format!("{CAL} {EVENTS}");
    let form = [
        ("client_id", "calsync-dev"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", scope.as_str()),
        ("account", "x@example.com"),
        ("grant_scope", EVENTS),
        ("decision", "allow"),
    ];
    let resp = h.http.post(h.url("/google/o/oauth2/v2/auth")).form(&form).send().await.unwrap();
    let loc = location(&resp);
    let code = query_param(&loc, "code").unwrap();
    let tok = json_of(exchange(&h, &code, REDIRECT, None).await, StatusCode::OK).await;
    assert_eq!(tok["scope"], EVENTS);
}

#[tokio::test]
async fn refresh_does_not_rotate_and_refresh_token_only_on_first_consent() {
    let h = start().await;
    let first = full_flow(&h, "r@example.com", &[]).await;
    let rt = first["refresh_token"].as_str().unwrap();
    let refreshed = json_of(refresh(&h, rt).await, StatusCode::OK).await;
    assert!(refreshed.get("refresh_token").is_none());
    assert_ne!(refreshed["access_token"], first["access_token"]);
    let access = refreshed["access_token"].as_str().unwrap();
    json_of(h.get(access, "/google/calendar/v3/users/me/calendarList").await, StatusCode::OK).await;

    let second = full_flow(&h, "r@example.com", &[]).await;
    assert!(second.get("refresh_token").is_none(), "re-consent returns no refresh token");
    let forced = full_flow(&h, "r@example.com", &[("prompt", "consent")]).await;
    assert!(forced["refresh_token"].is_string());
    // The original refresh token is still valid (no rotation).
    json_of(refresh(&h, rt).await, StatusCode::OK).await;
}

#[tokio::test]
async fn revoking_the_access_token_kills_the_refresh_token() {
    let h = start().await;
    let tok = full_flow(&h, "v@example.com", &[]).await;
    let access = tok["access_token"].as_str().unwrap();
    let resp = h.http.post(h.url(&format!("/google/revoke?token={access}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(refresh(&h, tok["refresh_token"].as_str().unwrap()).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body, json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}));
    let api = json_of(h.get(access, "/google/calendar/v3/users/me/calendarList").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(api["error"]["errors"][0]["reason"], "authError");
}

#[tokio::test]
async fn control_revoke_makes_refresh_fail_with_invalid_grant() {
    let h = start().await;
    let v = h.control("/_sandbox/accounts", json!({"provider": "google", "email": "c@example.com"})).await;
    h.control("/_sandbox/revoke", json!({"provider": "google", "email": "c@example.com"})).await;
    let body = json_of(refresh(&h, v["refresh_token"].as_str().unwrap()).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn access_token_expires_after_3599_sandbox_seconds() {
    let h = start().await;
    let token = h.google_account("t@example.com").await;
    json_of(h.get(&token, "/google/calendar/v3/calendars/primary").await, StatusCode::OK).await;
    h.advance(3598).await;
    json_of(h.get(&token, "/google/calendar/v3/calendars/primary").await, StatusCode::OK).await;
    h.advance(2).await;
    let resp = h.get(&token, "/google/calendar/v3/calendars/primary").await;
    assert!(resp.headers().contains_key("www-authenticate"));
    let body = json_of(resp, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(body["error"]["errors"][0]["location"], "Authorization");
}

#[tokio::test]
async fn partial_grant_of_calendar_events_cannot_list_calendars() {
    let h = start().await;
    let scope = format!("{CAL} {EVENTS}");
    let loc = approve(
        &h,
        &[
            ("scope", &scope),
            ("login_hint", "p@example.com"),
            ("sandbox_approve", "1"),
            ("sandbox_grant_scopes", EVENTS),
        ],
    )
    .await;
    assert_eq!(query_param(&loc, "scope").as_deref(), Some(EVENTS));
    let code = query_param(&loc, "code").unwrap();
    let tok = json_of(exchange(&h, &code, REDIRECT, None).await, StatusCode::OK).await;
    let access = tok["access_token"].as_str().unwrap();
    let denied = json_of(h.get(access, "/google/calendar/v3/users/me/calendarList").await, StatusCode::FORBIDDEN).await;
    assert_eq!(denied["error"]["errors"][0]["reason"], "insufficientPermissions");
    json_of(h.get(access, "/google/calendar/v3/calendars/primary/events").await, StatusCode::OK).await;
}

#[tokio::test]
async fn token_endpoint_rejects_wrong_secret_with_401_invalid_client() {
    let h = start().await;
    let resp = h
        .http
        .post(h.url("/google/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1//x"),
            ("client_id", "calsync-dev"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    let body = json_of(resp, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "invalid_client");
}
