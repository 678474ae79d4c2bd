//! The web UI over real HTTP: sign-in, sessions, CSRF and escaping, on SQLite and PostgreSQL.

mod common;

use calsync_testkit::{Backend, backend_tests};
use common::{Cookies, PASSWORD, TestApp, form_value, sign_in};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn pages_require_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.http.get(app.url("/?notice=created")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?next=%2F%3Fnotice%3Dcreated");
    let forged = app.http.get(app.url("/")).header("cookie", "calsync_session=forged").send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
}

async fn sign_in_and_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("acme", "ann@acme.test", "staff").await;

    let (_, status) = sign_in(&app, "ann@acme.test", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, status) = sign_in(&app, "nobody@acme.test", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut jar = Cookies::default();
    let page = app.http.get(app.url("/login?next=/%3Fx%3D1")).send().await.unwrap();
    jar.absorb(page.headers());
    let html = page.text().await.unwrap();
    let resp = jar
        .apply(app.http.post(app.url("/login")))
        .form(&[
            ("email", "Ann@Acme.test"),
            ("password", PASSWORD),
            ("csrf_token", &form_value(&html, "csrf_token")),
            ("next", &form_value(&html, "next")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/?x=1", "back to where the user was going");
    let session_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("calsync_session="))
        .expect("session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"), "{session_cookie}");
    assert!(!session_cookie.contains("Secure"), "plain http in tests");
    jar.absorb(resp.headers());

    let home = jar.apply(app.http.get(app.url("/"))).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = home.text().await.unwrap();
    assert!(html.contains("User ann@acme.test · Firm acme"), "{html}");

    let logout = jar
        .apply(app.http.post(app.url("/logout")))
        .form(&[("csrf_token", form_value(&html, "csrf_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let old = jar.clone();
    jar.absorb(logout.headers());
    assert!(!jar.0.contains_key("calsync_session"), "logout clears the cookie");
    let replay = old.apply(app.http.get(app.url("/"))).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER, "the old session no longer works");
}

async fn forms_reject_forgery(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    // Login without the double-submit cookie.
    let resp = app
        .http
        .post(app.url("/login"))
        .form(&[("email", "ann@acme.test"), ("password", PASSWORD), ("csrf_token", "guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let (jar, status) = sign_in(&app, "ann@acme.test", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let html = jar.apply(app.http.get(app.url("/"))).send().await.unwrap().text().await.unwrap();
    let csrf = form_value(&html, "csrf_token");
    let new = |csrf: &str| {
        vec![
            ("csrf_token", csrf.to_owned()),
            ("title", "Forged".to_owned()),
            ("start", "2026-12-01T09:00".to_owned()),
            ("end", "2026-12-01T10:00".to_owned()),
            ("time_zone", "UTC".to_owned()),
        ]
    };
    let wrong_token =
        jar.apply(app.http.post(app.url("/appointments"))).form(&new("not-the-token")).send().await.unwrap();
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    // A cross-site request is refused by the Origin / Sec-Fetch-Site check even with a valid token.
    let cross_site = jar
        .apply(app.http.post(app.url("/appointments")))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&new(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let list: Value = app.get("/api/appointments/", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([]), "no forged appointment was created");

    let same_site = jar.apply(app.http.post(app.url("/appointments"))).form(&new(&csrf)).send().await.unwrap();
    assert_eq!(same_site.status(), StatusCode::SEE_OTHER);
    let list: Value = app.get("/api/appointments/", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["title"], "Forged");

    let bad_logout = jar.apply(app.http.post(app.url("/logout"))).form(&[("csrf_token", "x")]).send().await.unwrap();
    assert_eq!(bad_logout.status(), StatusCode::FORBIDDEN);
    let still_in = jar.apply(app.http.get(app.url("/"))).send().await.unwrap();
    assert_eq!(still_in.status(), StatusCode::OK, "a forged logout does not end the session");
}

async fn appointments_page_creates_lists_deletes_and_escapes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    let soon = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d").to_string();
    let body = json!({
        "title": "<script>alert('x')</script>",
        "location": "\"quoted\" & <b>bold</b>",
        "start": format!("{soon}T09:00:00Z"),
        "end": format!("{soon}T10:00:00Z"),
    });
    let created: Value = app.post("/api/appointments/", &token).json(&body).send().await.unwrap().json().await.unwrap();
    let (jar, _) = sign_in(&app, "ann@acme.test", PASSWORD).await;
    let html = jar.apply(app.http.get(app.url("/"))).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>alert"), "user content is escaped");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<b>bold</b>"));

    let csrf = form_value(&html, "csrf_token");
    let invalid = jar
        .apply(app.http.post(app.url("/appointments")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("title", "Review"),
            ("start", &format!("{soon}T10:00")),
            ("end", &format!("{soon}T09:00")),
            ("time_zone", "Europe/Berlin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = invalid.text().await.unwrap();
    assert!(page.contains("end: must be after start"), "the form says what is wrong");
    assert!(page.contains("value=\"Review\""), "and keeps what was typed");

    let id = created["id"].as_str().unwrap();
    let del = jar
        .apply(app.http.post(app.url(&format!("/appointments/{id}/delete"))))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::SEE_OTHER);
    let gone = app.get(&format!("/api/appointments/{id}/"), &token).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

async fn sign_in_is_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("acme", "ann@acme.test", "staff").await;
    for _ in 0..5 {
        let (_, status) = sign_in(&app, "ann@acme.test", "not the password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // From here on each attempt from this address waits a little longer; the account is not
    // locked: a second later the right password works.
    let (_, status) = sign_in(&app, "ann@acme.test", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the next try waits a second");
    app.state.clock.advance(1);
    let (_, status) = sign_in(&app, "ann@acme.test", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the right password is only slowed, never blocked");
    // The spacing is per account and address: a colleague behind the same address is not held.
    app.user("acme", "bob@acme.test", "staff").await;
    for _ in 0..5 {
        sign_in(&app, "ann@acme.test", "not the password").await;
    }
    let (_, status) = sign_in(&app, "bob@acme.test", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// Parallel guesses are counted before the password is checked: 40 at once for one account
/// run five checks, the rest wait.
async fn parallel_guesses_are_counted_before_the_check(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("acme", "ann@acme.test", "staff").await;
    let mut jar = Cookies::default();
    let page = app.http.get(app.url("/login")).send().await.unwrap();
    jar.absorb(page.headers());
    let csrf = form_value(&page.text().await.unwrap(), "csrf_token");
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..40 {
        let req = jar.apply(app.http.post(app.url("/login"))).form(&[
            ("email", "ann@acme.test"),
            ("password", &format!("guess number {i}")),
            ("csrf_token", &csrf),
            ("next", "/"),
        ]);
        attempts.spawn(async move { req.send().await.unwrap() });
    }
    let answers = attempts.join_all().await;
    let checked = answers.iter().filter(|r| r.status() == StatusCode::UNAUTHORIZED).count();
    let held = answers.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, held), (5, 35));
    assert!(
        answers
            .iter()
            .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
            .all(|r| r.headers().contains_key("retry-after"))
    );
}

/// The sandbox authorization URL, approved at once for `email` (replacing the suggested hint).
fn approve_as(consent: &str, email: &str) -> String {
    let mut url = reqwest::Url::parse(consent).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != "login_hint").collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("sandbox_approve", "1")
        .append_pair("login_hint", email);
    url.to_string()
}

async fn connecting_a_calendar_through_the_pages(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    app.user("acme", "ann@acme.test", "staff").await;
    let (mut jar, _) = sign_in(&app, "ann@acme.test", PASSWORD).await;
    // The page's old address leads to it, with its query.
    let old = jar.apply(app.http.get(app.url("/calendar?notice=saved"))).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(old.headers()["location"], "/calendar-sync?notice=saved");
    let page = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains(&format!("form-action 'self' {}", app.sandbox.as_deref().unwrap())), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Sandbox mode")
            && html.contains("Connect Google Calendar")
            && html.contains("No calendar connected yet")
    );
    let csrf = form_value(&html, "csrf_token");

    let go = jar
        .apply(app.http.post(app.url("/calendar/connect/google")))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(go.status(), StatusCode::SEE_OTHER);
    let consent = go.headers()["location"].to_str().unwrap().to_owned();
    assert!(consent.starts_with(&app.sandbox_url("/google/o/oauth2/v2/auth?")), "{consent}");
    // A new connection to the sandbox suggests a demo account named after the user.
    assert!(consent.contains("login_hint=ann%40google.sandbox.test"), "{consent}");
    let back = app.http.get(approve_as(&consent, "ann@gmail.test")).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&app.url("/calendar/oauth/callback?")), "{callback}");
    let done = jar.apply(app.http.get(&callback)).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/calendar-sync?notice=connected");
    jar.absorb(done.headers());
    let html =
        jar.apply(app.http.get(app.url("/calendar-sync?notice=connected"))).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Calendar connected.") && html.contains("ann@gmail.test") && html.contains("status-active"),
        "{html}"
    );
    // The navigation's Delivery section marks this page; the badge says the status in words.
    assert!(
        html.contains(">Delivery<")
            && html.contains("href=\"/calendar-sync\" id=\"nav-calendar-sync\" aria-current=\"page\""),
        "{html}"
    );
    assert!(html.contains("data-status=\"active\">Active</span>"), "{html}");
    // The callback is for the signed-in user only: without a session it leads to sign-in.
    let anonymous = app.http.get(&callback).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert!(anonymous.headers()["location"].to_str().unwrap().starts_with("/login?next="));

    // Settings from the page: sync off, 90 days, manual conflicts, keep deletions.
    let id = html.split("data-connection=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let primary = html.split("name=\"calendar\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let save = |days: &'static str| {
        let body = format!(
            "csrf_token={csrf}&sync_window_days={days}&conflict_strategy=manual&delete_policy=keep&calendar={}",
            url_encode(&primary)
        );
        jar.apply(app.http.post(app.url(&format!("/calendar/{id}/settings"))))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    for refused in ["3", "400"] {
        let bad = save(refused).send().await.unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let html = bad.text().await.unwrap();
        // The reason sits next to the field, in the settings opened again with the refused
        // value, and the field is marked invalid for assistive technology.
        assert!(html.contains("Settings not saved."), "{html}");
        assert!(html.contains("<details class=\"settings\" open>"), "{html}");
        assert!(
            html.contains(&format!(
                "value=\"{refused}\" required aria-invalid=\"true\" aria-describedby=\"window-error-{id}\""
            )) && html.contains(&format!(
                "id=\"window-error-{id}\" role=\"alert\">must be a whole number of days from 7 to 365, got {refused}</p>"
            )),
            "{html}"
        );
    }
    let ok = save("90").send().await.unwrap();
    assert_eq!(ok.headers()["location"], "/calendar-sync?notice=saved");
    let token = app.db.user_by_email(&calsync_domain::account::Email::parse("ann@acme.test").unwrap()).await.unwrap();
    let shown = app
        .state
        .connections
        .get(
            &calsync_domain::tenant::Actor { firm_id: token.firm_id, user_id: token.id, role: token.role },
            id.parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            shown.settings.sync_enabled,
            shown.settings.sync_window_days.days(),
            shown.settings.conflict_strategy.as_str(),
            shown.settings.delete_policy.as_str()
        ),
        (false, 90, "manual", "keep")
    );
    let forged = jar
        .apply(app.http.post(app.url(&format!("/calendar/{id}/settings"))))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf_token=nope&sync_window_days=30&conflict_strategy=manual&delete_policy=keep")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // A session that ended mid-flow: the callback sends the browser to sign in, then back to it.
    let go = jar
        .apply(app.http.post(app.url("/calendar/connect/google")))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    let consent = go.headers()["location"].to_str().unwrap().to_owned();
    let back = app.http.get(approve_as(&consent, "second@gmail.test")).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let path = callback.strip_prefix(&app.base).unwrap().to_owned();
    let to_login = app.http.get(&callback).send().await.unwrap();
    let login_url = to_login.headers()["location"].to_str().unwrap().to_owned();
    let mut fresh = common::Cookies::default();
    let login = app.http.get(app.url(&login_url)).send().await.unwrap();
    fresh.absorb(login.headers());
    let login_html = login.text().await.unwrap();
    assert_eq!(form_value(&login_html, "next").replace("&#38;", "&").replace("&amp;", "&"), path);
    let signed_in = fresh
        .apply(app.http.post(app.url("/login")))
        .form(&[
            ("email", "ann@acme.test"),
            ("password", PASSWORD),
            ("csrf_token", &form_value(&login_html, "csrf_token")),
            ("next", &path),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.headers()["location"].to_str().unwrap(), path);
    fresh.absorb(signed_in.headers());
    let completed = fresh.apply(app.http.get(app.url(&path))).send().await.unwrap();
    assert_eq!(completed.headers()["location"], "/calendar-sync?notice=connected");

    // Refusing at Microsoft's consent screen is shown as such.
    let go = jar
        .apply(app.http.post(app.url("/calendar/connect/microsoft")))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    let consent = reqwest::Url::parse(go.headers()["location"].to_str().unwrap()).unwrap();
    let state = consent.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let denied = jar
        .apply(
            app.http
                .get(app.url("/calendar/oauth/callback"))
                .query(&[("error", "access_denied"), ("state", state.as_str())]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::BAD_REQUEST);
    let said = denied.text().await.unwrap();
    assert!(said.contains("<h1>You declined access</h1>"), "{said}");
    assert!(said.contains("access was denied at Microsoft Outlook"), "{said}");
    assert!(said.contains("href=\"/calendar-sync\""), "the way back");
    // A state nobody issued: refused, in words.
    let forged = jar
        .apply(app.http.get(app.url("/calendar/oauth/callback")).query(&[("code", "c"), ("state", "forged")]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.text().await.unwrap().contains("<h1>This connection request is not valid</h1>"));

    // Disconnect, then the page offers to reconnect.
    let id = html.split("data-connection=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let bye = jar
        .apply(app.http.post(app.url(&format!("/calendar/{id}/disconnect"))))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(bye.status(), StatusCode::SEE_OTHER);
    let html = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("status-revoked") && html.contains("Reconnect") && html.contains("value=\"ann@gmail.test\""),
        "{html}"
    );
    let forged = jar
        .apply(app.http.post(app.url("/calendar/connect/google")))
        .form(&[("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

/// "Sync now" on the Calendars page runs the sync and shows what it moved.
async fn sync_now_from_the_calendars_page(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let api = app.user("acme", "ann@acme.test", "staff").await;
    let (mut jar, _) = sign_in(&app, "ann@acme.test", PASSWORD).await;
    let html = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    let csrf = form_value(&html, "csrf_token");
    let go = jar
        .apply(app.http.post(app.url("/calendar/connect/google")))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    let consent = go.headers()["location"].to_str().unwrap().to_owned();
    let back = app.http.get(approve_as(&consent, "ann@gmail.test")).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let done = jar.apply(app.http.get(&callback)).send().await.unwrap();
    jar.absorb(done.headers());
    let html = jar.apply(app.http.get(app.url("/calendar-sync"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Sync now"), "{html}");
    let id = html.split("data-connection=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    // Two appointments to send.
    for (title, day) in [("Intake <Meyer>", 1), ("Review", 2)] {
        let start = chrono::Utc::now() + chrono::Duration::days(day);
        let body = serde_json::json!({"title": title, "start": start.to_rfc3339(), "end": (start + chrono::Duration::hours(1)).to_rfc3339()});
        let resp = app.post("/api/appointments/", &api).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let forged = jar
        .apply(app.http.post(app.url(&format!("/calendar/{id}/sync"))))
        .form(&[("csrf_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let synced = jar
        .apply(app.http.post(app.url(&format!("/calendar/{id}/sync"))))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(synced.status(), StatusCode::SEE_OTHER);
    let to = synced.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/calendar-sync?synced="), "{to}");
    let html = jar.apply(app.http.get(app.url(&to))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Synced: pulled") && html.contains("pushed 2 new, 0 updated, 0 deleted"), "{html}");
    assert!(!html.contains("never"), "last sync is shown: {html}");
    assert!(html.contains("<time datetime=\"") && html.contains("just now</time>"), "relative, exact on hover: {html}");
    // Someone else's attempt id shows nothing; someone else's connection cannot be synced.
    app.user("acme", "bob@acme.test", "staff").await;
    let (bob, _) = sign_in(&app, "bob@acme.test", PASSWORD).await;
    let other = bob.apply(app.http.get(app.url(&to))).send().await.unwrap().text().await.unwrap();
    assert!(!other.contains("Synced: pulled"), "{other}");
    let bob_csrf = form_value(&other, "csrf_token");
    let denied = bob
        .apply(app.http.post(app.url(&format!("/calendar/{id}/sync"))))
        .form(&[("csrf_token", &bob_csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::NOT_FOUND);
}

backend_tests!(
    sync_now_from_the_calendars_page,
    connecting_a_calendar_through_the_pages,
    pages_require_a_session,
    sign_in_and_out,
    forms_reject_forgery,
    appointments_page_creates_lists_deletes_and_escapes,
    sign_in_is_throttled,
    parallel_guesses_are_counted_before_the_check,
);

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
