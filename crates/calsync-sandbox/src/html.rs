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

impl ConsentPage<'_> {
    /// The application's name as the consent screen shows it.
    fn app_name(&self) -> String {
        if self.client_id == crate::state::DEV_CLIENT_ID { "calsync".into() } else { self.client_id.to_owned() }
    }

    /// The login hint's account is selected; without one, the first account.
    fn account_rows(&self) -> Vec<(String, bool)> {
        let any = self.accounts.iter().any(|(_, c)| *c);
        let other = !self.other_account().is_empty();
        self.accounts.iter().enumerate().map(|(i, (e, c))| (e.clone(), *c || (!any && !other && i == 0))).collect()
    }

    /// Pre-filled "other account": a hint naming no known account, or a demo address when
    /// the sandbox knows no account at all, so a newcomer can click Allow.
    fn other_account(&self) -> String {
        let known = self.accounts.iter().any(|(e, _)| e.eq_ignore_ascii_case(self.login_hint));
        if !self.login_hint.is_empty() && !known {
            return self.login_hint.to_owned();
        }
        if self.accounts.is_empty() {
            let domain = if self.provider == "Google" { "google.sandbox.test" } else { "outlook.sandbox.test" };
            return format!("demo@{domain}");
        }
        String::new()
    }

    /// Each requested scope with the words the real consent screens use for it.
    fn described_scopes(&self) -> Vec<(String, String)> {
        self.scopes.iter().map(|s| (s.clone(), describe_scope(s).to_owned())).collect()
    }
}

fn describe_scope(scope: &str) -> &'static str {
    let name = scope.rsplit('/').next().unwrap_or(scope);
    match name {
        "openid" => "Associate you with your personal info",
        "email" | "userinfo.email" => "See your primary e-mail address",
        "profile" | "userinfo.profile" => "See your personal info, including any you have made public",
        "calendar" => "See, edit, share and permanently delete all the calendars you can access",
        "calendar.events" => "View and edit events on all your calendars",
        "calendar.readonly" => "See and download any calendar you can access",
        "calendar.events.readonly" => "View events on all your calendars",
        "offline_access" => "Maintain access to data you have given it access to",
        "Calendars.ReadWrite" => "Have full access to your calendars",
        "Calendars.Read" => "Read your calendars",
        "Calendars.ReadWrite.Shared" => "Read and write calendars you can access, including shared ones",
        "Calendars.Read.Shared" => "Read calendars you can access, including shared ones",
        "User.Read" => "Sign you in and read your profile",
        "MailboxSettings.Read" => "Read your mailbox settings",
        _ => "Access to this part of your account",
    }
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
