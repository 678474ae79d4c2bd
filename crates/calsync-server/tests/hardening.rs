//! Hardening: body limits on every route, security headers everywhere (API docs and the
//! embedded sandbox's pages included), HSTS behind https.

mod common;

use calsync_testkit::{Backend, backend_tests};
use common::{TestApp, test_config};
use reqwest::StatusCode;

async fn forms_have_the_configured_body_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Under the limit a bad sign-in is an ordinary answer; over it, 413 before any parsing.
    let small =
        app.http.post(app.url("/login")).form(&[("email", "a@b.test"), ("password", "x")]).send().await.unwrap();
    assert_ne!(small.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let big = "x".repeat(common::MAX_BODY + 1);
    let resp = app
        .http
        .post(app.url("/login"))
        .form(&[("email", "a@b.test"), ("password", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn every_answer_says_nosniff_and_docs_cannot_be_framed(backend: Backend) {
    let mut config = test_config();
    config.sandbox = calsync_server::providers::SandboxMode::Embedded;
    let app = TestApp::spawn_with(backend, config).await;
    for path in ["/login", "/healthz", "/api/appointments/", "/api/openapi.json", "/api/docs/", "/static/app.css"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            resp.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
        assert!(resp.headers().get("strict-transport-security").is_none(), "no HSTS over http: {path}");
    }
    let docs = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.headers()["x-frame-options"], "DENY");
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"), "{csp}");

    // The embedded sandbox's consent page is framed by nobody either.
    let consent = app
        .http
        .get(app.url("/sandbox/google/o/oauth2/v2/auth?client_id=calsync-dev&redirect_uri=http://127.0.0.1:1/cb&response_type=code&scope=openid"))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    assert_eq!(consent.headers()["x-frame-options"], "DENY");
    assert_eq!(consent.headers()["x-content-type-options"], "nosniff");
    assert!(consent.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
}

async fn https_public_urls_get_hsts(backend: Backend) {
    let mut config = test_config();
    config.public_url = "https://calsync.example".parse().unwrap();
    let app = TestApp::spawn_with(backend, config).await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    let hsts = resp.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age=31536000"), "{hsts}");
}

async fn bad_api_tokens_are_throttled_per_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = app.user("acme", "ann@acme.test", "staff").await;
    let list = |token: &str| app.http.get(app.url("/api/appointments/")).bearer_auth(token).send();
    for _ in 0..calsync_server::startup::BAD_TOKENS_PER_WINDOW {
        assert_eq!(list("cs_guessed").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let refused = list("cs_guessed").await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    // Refused before any lookup, whatever the token.
    assert_eq!(list(&good).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    app.state.clock.advance(10 * 60);
    assert_eq!(list(&good).await.unwrap().status(), StatusCode::OK, "the window passes");
}

/// The store stamps and compares with the service's clock: advancing it expires sessions and
/// tokens without sleeping.
async fn one_clock_for_store_and_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("acme", "ann@acme.test", "staff").await;
    let token =
        calsync_server::services::accounts::create_api_token(&app.db, "ann@acme.test", "day", Some(1)).await.unwrap();
    let (jar, status) = common::sign_in(&app, "ann@acme.test", common::PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let list = || app.http.get(app.url("/api/appointments/")).bearer_auth(&token).send();
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    assert_eq!(jar.apply(app.http.get(app.url("/"))).send().await.unwrap().status(), StatusCode::OK);
    // The test configuration's sessions last an hour; the token a day.
    app.state.clock.advance(2 * 3600);
    let home = jar.apply(app.http.get(app.url("/"))).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER, "the session expired by the shared clock");
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    app.state.clock.advance(24 * 3600);
    assert_eq!(list().await.unwrap().status(), StatusCode::UNAUTHORIZED, "the token expired by the shared clock");
}

backend_tests!(
    one_clock_for_store_and_server,
    bad_api_tokens_are_throttled_per_address,
    forms_have_the_configured_body_limit,
    every_answer_says_nosniff_and_docs_cannot_be_framed,
    https_public_urls_get_hsts,
);
