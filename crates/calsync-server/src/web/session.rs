//! Sign-in and sign-out. The login form is protected by a double-submit CSRF cookie (there is no
//! session yet); the session cookie is HttpOnly, SameSite=Lax and Secure behind https.

use super::{csrf_rejected, error_page, render};
use crate::auth::{SESSION_COOKIE, WebCaller};
use crate::crypto::{constant_time_eq, random_token, token_hash};
use crate::services::accounts;
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use chrono::Duration;
use serde::Deserialize;
use std::net::SocketAddr;

const LOGIN_CSRF_COOKIE: &str = "calsync_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf_token: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf_token: String,
}

/// Only same-site paths are followed after login, so `next` cannot send users elsewhere.
/// Browsers drop tabs and newlines from URLs, so `/\t/evil.test` would become `//evil.test`:
/// only visible ASCII is accepted.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/login")
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub fn cookie_header(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.secure_cookies() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"))
        .expect("cookie values are URL-safe tokens")
}

fn login_csrf(state: &AppState, jar: &CookieJar) -> (String, Option<HeaderValue>) {
    match jar.get(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned()).filter(|v| v.len() >= 32) {
        Some(token) => (token, None),
        None => {
            let token = random_token("");
            let header = cookie_header(state, LOGIN_CSRF_COOKIE, &token, 3600);
            (token, Some(header))
        }
    }
}

fn login_form(
    state: &AppState,
    jar: &CookieJar,
    status: StatusCode,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, set_cookie) = login_csrf(state, jar);
    let mut resp = render(status, &LoginPage { csrf_token: &csrf, next, email, error });
    if let Some(c) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub async fn login_page(State(state): State<AppState>, jar: CookieJar, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    login_form(&state, &jar, StatusCode::OK, &next, "", None)
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(Some(&form.next));
    let cookie_ok =
        jar.get(LOGIN_CSRF_COOKIE).is_some_and(|c| constant_time_eq(c.value().as_bytes(), form.csrf_token.as_bytes()));
    if !cookie_ok {
        return csrf_rejected();
    }
    let addr_key = crate::throttle::client_key(peer.ip());
    let pair_key = format!("{}|{addr_key}", form.email.trim().to_lowercase());
    let (backoff, addr_throttle) = (&state.login_throttle, &state.login_ip_throttle);
    // Both counted before the (expensive) check, so parallel guesses cannot slip past.
    let now = state.clock.now();
    let admitted = addr_throttle
        .try_hit(&addr_key, now)
        .and_then(|()| backoff.begin(&pair_key, now).inspect_err(|_| addr_throttle.refund(&addr_key)));
    if let Err(wait) = admitted {
        let msg = if wait < 120 {
            format!("Too many failed sign-in attempts. Try again in {wait} seconds.")
        } else {
            format!("Too many failed sign-in attempts. Try again in {} minutes.", wait.div_ceil(60))
        };
        let mut resp = login_form(&state, &jar, StatusCode::TOO_MANY_REQUESTS, &next, &form.email, Some(&msg));
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return resp;
    }
    let user = match accounts::authenticate(&state.db, &form.email, &form.password).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            tracing::info!("sign-in failed");
            return login_form(
                &state,
                &jar,
                StatusCode::UNAUTHORIZED,
                &next,
                &form.email,
                Some("The e-mail or password is not correct."),
            );
        }
        Err(e) => {
            addr_throttle.refund(&addr_key);
            return error_page(e);
        }
    };
    backoff.succeed(&pair_key);
    addr_throttle.refund(&addr_key);
    let token = random_token("");
    let csrf = random_token("");
    let ttl = i64::from(state.config.session_ttl_hours) * 3600;
    let actor = calsync_domain::tenant::Actor { firm_id: user.firm_id, user_id: user.id, role: user.role };
    if let Err(e) =
        state.db.create_session(&actor, &token_hash(&token), &csrf, state.clock.now() + Duration::seconds(ttl)).await
    {
        return error_page(e.into());
    }
    tracing::info!(user_id = %user.id, firm_id = %user.firm_id, "signed in");
    let mut resp = Redirect::to(&next).into_response();
    let headers = resp.headers_mut();
    headers.append(header::SET_COOKIE, cookie_header(&state, SESSION_COOKIE, &token, ttl));
    headers.append(header::SET_COOKIE, cookie_header(&state, LOGIN_CSRF_COOKIE, "", 0));
    resp
}

pub async fn logout(State(state): State<AppState>, caller: WebCaller, Form(form): Form<CsrfForm>) -> Response {
    if !csrf_ok(&caller, &form.csrf_token) {
        return csrf_rejected();
    }
    if let Err(e) = state.db.delete_session(caller.session.id).await {
        return error_page(e.into());
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie_header(&state, SESSION_COOKIE, "", 0));
    resp
}

/// Whether the form's CSRF token is the session's.
pub fn csrf_ok(caller: &WebCaller, token: &str) -> bool {
    constant_time_eq(caller.session.csrf_token.expose().as_bytes(), token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/appointments?x=1")), "/appointments?x=1");
        for bad in [
            "https://evil.test/",
            "//evil.test",
            "/\\evil.test",
            "evil",
            "/login?next=/",
            "/\t/evil.test",
            "/\n/x",
            "/ /x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
