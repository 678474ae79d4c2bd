//! The server-rendered web UI: sign-in, sign-out and the appointments page. Every page goes through
//! askama templates (escaped), every form carries a CSRF token, and the router adds
//! Origin/Sec-Fetch-Site checking on top.

mod admin;
mod appointments;
mod calendar;
mod conflicts;
mod docs;
mod history;
mod session;

use crate::services::ServiceError;
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// `form_origins`: where a form may lead besides this site. "Connect" forms redirect to the
/// providers' consent pages, and browsers apply `form-action` to that redirect too.
pub fn router(form_origins: &[String]) -> Router<AppState> {
    let csp = format!(
        "default-src 'self'; form-action 'self'{}{}; frame-ancestors 'none'; base-uri 'none'",
        if form_origins.is_empty() { "" } else { " " },
        form_origins.join(" ")
    );
    let csp = HeaderValue::from_str(&csp).expect("origins are ASCII URLs");
    Router::new()
        .route("/", get(appointments::home))
        .route(appointments::PAGE, get(appointments::home).post(appointments::create))
        .route("/appointments/{id}/edit", get(appointments::edit_page).post(appointments::save))
        .route("/appointments/{id}/delete", post(appointments::delete))
        .route(calendar::PAGE, get(calendar::show))
        .route("/calendar", get(calendar::moved))
        .route("/calendar/connect/{provider}", post(calendar::connect))
        .route("/calendar/connect-caldav", post(calendar::connect_caldav))
        .route("/calendar/oauth/callback", get(calendar::oauth_callback))
        .route("/calendar/{id}/disconnect", post(calendar::disconnect))
        .route("/calendar/{id}/settings", post(calendar::save_settings))
        .route("/calendar/{id}/sync", post(calendar::sync_now))
        .route("/calendar-sync/{id}/progress", get(calendar::progress))
        .route("/calendar-sync/feed", post(calendar::new_feed))
        .route("/calendar-sync/feed/revoke", post(calendar::revoke_feed))
        .route("/ics/{file}", get(calendar::feed))
        .route("/calendar/{id}/deletes/{choice}", post(calendar::settle_deletes))
        .route(history::PAGE, get(history::show))
        .route("/calendar-sync/history.csv", get(history::csv))
        .route("/calendar-sync/history/{id}", get(history::detail))
        .route("/calendar-sync/history/{id}/replay", post(history::replay))
        .route(conflicts::PAGE, get(conflicts::show))
        .route("/calendar-sync/conflicts/{id}/resolve", post(conflicts::resolve))
        .route(admin::PAGE, get(admin::show))
        .route("/admin/calendar/{id}/resync", post(admin::resync))
        .route("/docs", get(docs::index))
        .route("/docs/", get(docs::index))
        .route("/docs/{name}", get(docs::show))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/app.css", get(stylesheet))
        .route(HTMX_PATH, get(htmx))
        .layer(CsrfLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

/// htmx 2.0.11 from npm (`npm pack htmx.org@2.0.11`), vendored with its licence in
/// `static/vendor/`: no CDN, no Node at run or build time. The version is in the path, so it is
/// cached for good.
pub(crate) const HTMX_PATH: &str = "/static/vendor/htmx-2.0.11.min.js";

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        include_str!("../../static/vendor/htmx-2.0.11.min.js"),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../static/app.css"),
    )
}

/// A form whose only field is its CSRF token (the action is in the URL).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    pub csrf_token: String,
}

/// What the navigation bar of a signed-in page needs; every form of the page takes its CSRF
/// token from here too.
pub(crate) struct Nav {
    /// The page the navigation marks as current.
    pub current: &'static str,
    pub user_name: String,
    pub firm_name: String,
    pub is_admin: bool,
    pub csrf_token: String,
}

impl Nav {
    pub fn of(caller: &crate::auth::WebCaller, current: &'static str) -> Self {
        Nav {
            current,
            user_name: caller.user.name.clone(),
            firm_name: caller.user.firm_name.clone(),
            is_admin: caller.user.actor.is_admin(),
            csrf_token: caller.session.csrf_token.expose().to_owned(),
        }
    }
}

/// Renders a template, or a plain 500 if the template itself fails.
pub(crate) fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &ErrorPage { title, message })
}

/// The web counterpart of the API error: a page that says what happened, never internals.
pub(crate) fn error_page(e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound => message_page(StatusCode::NOT_FOUND, "Not found", "That item does not exist."),
        ServiceError::Forbidden(m) => message_page(StatusCode::FORBIDDEN, "Not allowed", &m),
        ServiceError::Validation(v) => message_page(StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", &v.to_string()),
        ServiceError::Conflict { message, .. } | ServiceError::PreconditionFailed(message) => {
            message_page(StatusCode::CONFLICT, "Conflict", &message)
        }
        ServiceError::Busy { retry_after } => {
            let mut resp = message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Too many sign-ins are being checked right now. Try again in a moment.",
            );
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after.into());
            resp
        }
        ServiceError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "internal error");
            message_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "The error was logged. Try again.")
        }
    }
}

pub(crate) fn csrf_rejected() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is no longer valid (it may have been open for too long, or come from another site). Go back, reload the page and try again.",
    )
}
