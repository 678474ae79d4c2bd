//! The calendars page: connect, reconnect and disconnect Google and Microsoft calendars, and the
//! page providers send the browser back to, which completes the flow for the signed-in user.

use super::session::csrf_ok;
use super::{csrf_rejected, error_page, render};
use crate::auth::WebCaller;
use crate::services::connections::{CallbackInput, ConnectError};
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use calsync_domain::connection::Provider;
use serde::Deserialize;

struct ProviderButton {
    key: &'static str,
    label: &'static str,
}

struct Row {
    id: String,
    provider: &'static str,
    provider_label: &'static str,
    account_email: String,
    status: &'static str,
    status_message: String,
    sync_enabled: bool,
    window_days: i64,
    last_sync: String,
    calendars: String,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    user_name: String,
    firm_name: String,
    is_admin: bool,
    csrf_token: String,
    sandboxed: bool,
    providers: Vec<ProviderButton>,
    connections: Vec<Row>,
    notice: Option<String>,
    error: Option<String>,
}

async fn page(
    state: &AppState,
    caller: &WebCaller,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let svc = &state.connections;
    let list = match svc.list(&caller.user.actor).await {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let mut connections = Vec::with_capacity(list.len());
    for c in list {
        let calendars = match svc.stored_calendars(&caller.user.actor, c.id).await {
            Ok(cals) => {
                let names: Vec<String> = cals.into_iter().filter(|c| c.selected).map(|c| c.name).collect();
                if names.is_empty() { "none selected".to_owned() } else { names.join(", ") }
            }
            Err(e) => return error_page(e),
        };
        connections.push(Row {
            id: c.id.to_string(),
            provider: c.provider.as_str(),
            provider_label: c.provider.label(),
            account_email: c.account_email,
            status: c.status.as_str(),
            status_message: c.status_message,
            sync_enabled: c.settings.sync_enabled,
            window_days: c.settings.sync_window_days.days(),
            last_sync: c
                .last_sync_at
                .map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            calendars,
        });
    }
    let providers = svc.providers();
    let buttons = [Provider::Google, Provider::Microsoft]
        .into_iter()
        .filter(|p| providers.get(*p).is_some())
        .map(|p| ProviderButton { key: p.as_str(), label: p.label() })
        .collect();
    let sandboxed = [&providers.google, &providers.microsoft].into_iter().flatten().any(|s| s.sandboxed);
    render(
        status,
        &CalendarPage {
            user_name: caller.user.name.clone(),
            firm_name: caller.user.firm_name.clone(),
            is_admin: caller.user.actor.is_admin(),
            csrf_token: caller.session.csrf_token.clone(),
            sandboxed,
            providers: buttons,
            connections,
            notice,
            error,
        },
    )
}

#[derive(Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

pub async fn show(State(state): State<AppState>, caller: WebCaller, Query(q): Query<PageQuery>) -> Response {
    let notice = match q.notice.as_deref() {
        Some("connected") => Some("Calendar connected.".to_owned()),
        Some("disconnected") => Some("Calendar disconnected. Appointments already synced stay in calsync.".to_owned()),
        _ => None,
    };
    page(&state, &caller, notice, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct ConnectForm {
    csrf_token: String,
    #[serde(default)]
    login_hint: String,
}

pub async fn connect(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(provider): Path<String>,
    Form(f): Form<ConnectForm>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let Ok(provider) = provider.parse::<Provider>() else { return error_page(crate::services::ServiceError::NotFound) };
    let hint = Some(f.login_hint.trim()).filter(|h| !h.is_empty());
    match state.connections.initiate(&caller.user.actor, provider, hint).await {
        Ok((url, _state)) => Redirect::to(&url).into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where Google and Microsoft send the browser back to.
pub async fn oauth_callback(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let input = CallbackInput { state: q.state, code: q.code, error: q.error, error_description: q.error_description };
    match state.connections.complete(&caller.user.actor, input).await {
        Ok(_) => Redirect::to("/calendar?notice=connected").into_response(),
        Err(ConnectError::Rejected { message, .. }) => {
            page(&state, &caller, None, Some(message), StatusCode::BAD_REQUEST).await
        }
        Err(ConnectError::ProviderUnavailable(m)) => {
            page(&state, &caller, None, Some(m), StatusCode::BAD_GATEWAY).await
        }
        Err(ConnectError::Service(e)) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf_token: String,
}

pub async fn disconnect(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse() else { return error_page(crate::services::ServiceError::NotFound) };
    match state.connections.disconnect(&caller.user.actor, id).await {
        Ok(_) => Redirect::to("/calendar?notice=disconnected").into_response(),
        Err(e) => error_page(e),
    }
}
