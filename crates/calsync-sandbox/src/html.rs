//! The consent page both providers show when an authorize request is not auto-approved.
//! Rendered with askama, which escapes every interpolated value.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct ConsentPage<'a> {
    pub provider: &'a str,
    pub client_id: &'a str,
    pub action: &'a str,
    pub scopes: Vec<String>,
    /// Known accounts for the chooser; `login_hint` is preselected.
    pub accounts: Vec<(String, bool)>,
    pub login_hint: &'a str,
    /// The original authorize parameters, replayed on submit.
    pub hidden: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub provider: &'a str,
    pub status: u16,
    pub error: &'a str,
    pub description: &'a str,
}

pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(crate) fn error_page(provider: &str, status: StatusCode, error: &str, description: &str) -> Response {
    render(status, &ErrorPage { provider, status: status.as_u16(), error, description })
}
