//! Admin monitoring (`/admin/calendar`, admins only): every connection of the firm, failing
//! first, with replay of a failed sync and a forced full resync, and the firm's statistics.

use super::history::{duration_words, outcome_label};
use super::session::csrf_ok;
use super::{CsrfOnly, Nav, csrf_rejected, error_page, render};
use crate::auth::WebCaller;
use crate::services::ServiceError;
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_domain::ids::ConnectionId;
use calsync_domain::sync::AttemptStatus;
use serde::Deserialize;

pub const PAGE: &str = "/admin/calendar";

struct Row {
    id: String,
    owner_name: String,
    owner_email: String,
    provider: &'static str,
    provider_label: &'static str,
    account_email: String,
    status: &'static str,
    status_label: &'static str,
    failing: bool,
    failures: i32,
    last_error: String,
    last_sync: Option<super::calendar::Moment>,
    last_outcome: &'static str,
    last_outcome_label: &'static str,
    /// The last attempt, when it failed: it can be replayed.
    failed_attempt: Option<String>,
    next_sync: String,
    can_resync: bool,
}

struct Count {
    status: &'static str,
    label: &'static str,
    n: i64,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Nav,
    rows: Vec<Row>,
    counts: Vec<Count>,
    total: i64,
    attempts: i64,
    failed: i64,
    success_rate: String,
    events_moved: i64,
    p50: String,
    p95: String,
    backlog: i64,
    status_filter: String,
    provider_filter: String,
    status_options: &'static [(&'static str, &'static str)],
    provider_options: &'static [(&'static str, &'static str)],
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct AdminQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    notice: String,
    /// The attempt a resync just made.
    #[serde(default)]
    resynced: String,
}

pub async fn show(State(state): State<AppState>, caller: WebCaller, Query(q): Query<AdminQuery>) -> Response {
    let actor = &caller.user.actor;
    if !actor.is_admin() {
        return error_page(ServiceError::Forbidden(
            "This page is for the firm's admins. Your own connections are on the Calendar Sync page.".into(),
        ));
    }
    let status = match q.status.as_str() {
        "" => None,
        s => match s.parse::<ConnectionStatus>() {
            Ok(s) => Some(s),
            Err(e) => return error_page(e.into()),
        },
    };
    let provider = match q.provider.as_str() {
        "" => None,
        p => match p.parse::<Provider>() {
            Ok(p) => Some(p),
            Err(e) => return error_page(e.into()),
        },
    };
    let (list, stats) =
        match (state.sync.admin_connections(actor, status, provider).await, state.sync.stats(actor).await) {
            (Ok(l), Ok(s)) => (l, s),
            (Err(e), _) | (_, Err(e)) => return error_page(e),
        };
    let now = state.clock.now();
    let rows = list
        .into_iter()
        .map(|a| {
            let failing = a.failing();
            let c = &a.connection;
            let scheduled =
                c.settings.sync_enabled && matches!(c.status, ConnectionStatus::Active | ConnectionStatus::Error);
            let last = a.last_attempt.as_ref();
            Row {
                id: c.id.to_string(),
                owner_name: a.owner_name.clone(),
                owner_email: a.owner_email.clone(),
                provider: c.provider.as_str(),
                provider_label: c.provider.label(),
                account_email: c.account_email.clone(),
                status: c.status.as_str(),
                status_label: super::calendar::status_label(c.status),
                failing,
                failures: c.failure_count,
                last_error: c.last_error.clone().unwrap_or_default(),
                last_sync: c.last_sync_at.map(|t| super::calendar::moment(now, t)),
                last_outcome: last.map_or("", |l| l.status.as_str()),
                last_outcome_label: last.map_or("", |l| outcome_label(l.status)),
                failed_attempt: last
                    .filter(|l| matches!(l.status, AttemptStatus::Failed | AttemptStatus::Partial))
                    .map(|l| l.id.to_string()),
                next_sync: match c.next_sync_at.filter(|_| scheduled) {
                    None => "not scheduled".to_owned(),
                    Some(t) if t <= now => "due now".to_owned(),
                    Some(t) => format!("in {}", duration_words((t - now).num_milliseconds())),
                },
                can_resync: c.status == ConnectionStatus::Active || c.status == ConnectionStatus::Error,
            }
        })
        .collect();
    let mut counts: Vec<Count> =
        [ConnectionStatus::Active, ConnectionStatus::Expired, ConnectionStatus::Error, ConnectionStatus::Revoked]
            .into_iter()
            .map(|s| Count {
                status: s.as_str(),
                label: super::calendar::status_label(s),
                n: stats.connections.iter().filter(|(st, _, _)| *st == s).map(|(_, _, n)| n).sum(),
            })
            .collect();
    let total = counts.iter().map(|c| c.n).sum();
    counts.retain(|c| c.n > 0 || c.status == "active");
    let finished = stats.succeeded + stats.partial + stats.failed;
    let success_rate = if finished == 0 {
        "no syncs".to_owned()
    } else {
        format!("{:.1} %", (stats.succeeded + stats.partial) as f64 * 100.0 / finished as f64)
    };
    let ms = |v: Option<i64>| v.map(duration_words).unwrap_or_else(|| "–".to_owned());
    let (notice, error) = match (q.notice.as_str(), q.resynced.parse().ok()) {
        ("resynced", Some(id)) => match state.db.attempt(actor.firm_id, id).await {
            Ok(a) if a.status == AttemptStatus::Failed => {
                (None, Some(format!("The full resync failed: {}", a.error_message.unwrap_or_default())))
            }
            Ok(_) => (Some("Full resync done: every calendar was read again from the start.".to_owned()), None),
            Err(e) => {
                tracing::error!(error = %e, "could not read the resync's attempt");
                (None, Some("The full resync ran; its result could not be read. See Sync history.".to_owned()))
            }
        },
        _ => (None, None),
    };
    render(
        StatusCode::OK,
        &AdminPage {
            nav: Nav::of(&caller, "admin"),
            rows,
            counts,
            total,
            attempts: stats.attempts,
            failed: stats.failed,
            success_rate,
            events_moved: stats.events_moved,
            p50: ms(stats.p50_ms),
            p95: ms(stats.p95_ms),
            backlog: stats.backlog,
            status_filter: q.status,
            provider_filter: q.provider,
            status_options: &[("active", "Active"), ("expired", "Expired"), ("error", "Error"), ("revoked", "Revoked")],
            provider_options: &[("google", "Google Calendar"), ("microsoft", "Microsoft Outlook")],
            notice,
            error,
        },
    )
}

/// Forgets a connection's cursors and reads every calendar again (admins).
pub async fn resync(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    if !caller.user.actor.is_admin() {
        return error_page(ServiceError::Forbidden("only admins can force a resync".into()));
    }
    let Ok(id) = id.parse::<ConnectionId>() else { return error_page(ServiceError::NotFound) };
    match state.sync.resync(&caller.user.actor, id).await {
        Ok(a) => Redirect::to(&format!("{PAGE}?notice=resynced&resynced={}", a.id)).into_response(),
        Err(e) => error_page(e),
    }
}
