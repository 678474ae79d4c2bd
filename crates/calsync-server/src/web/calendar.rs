//! The calendars page: connect, reconnect and disconnect Google and Microsoft calendars, and the
//! page providers send the browser back to, which completes the flow for the signed-in user.

use super::session::csrf_ok;
use super::{CsrfOnly, Nav, csrf_rejected, error_page, render};
use crate::auth::WebCaller;
use crate::services::connections::{CallbackInput, ConnectError};
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use calsync_domain::Secret;
use calsync_domain::connection::{ConflictStrategy, DeletePolicy, Provider, SyncWindowDays};
use calsync_domain::ids::ConnectionId;
use calsync_domain::sync::AttemptStatus;
use calsync_store::SettingsChange;
use serde::Deserialize;

/// Where the Calendar Sync page lives (`/calendar` redirects here).
pub const PAGE: &str = "/calendar-sync";

struct ProviderButton {
    key: &'static str,
    label: &'static str,
}

struct Row {
    id: String,
    conflict_strategy: &'static str,
    delete_policy: &'static str,
    calendar_list: Vec<calsync_store::SyncedCalendar>,
    /// Where appointments made in calsync go: the chosen calendar, else the primary.
    push_calendar: String,
    provider: &'static str,
    provider_label: &'static str,
    account_email: String,
    status: &'static str,
    /// The status as the badge shows it ("Active", …).
    status_label: &'static str,
    status_message: String,
    /// The last sync's error, in words, while it is the latest word on the connection.
    last_error: Option<String>,
    sync_enabled: bool,
    window_days: i64,
    /// When the last sync finished; `None`: never.
    last_sync: Option<Moment>,
    calendars: String,
    /// Deletions the mass-delete guard holds for confirmation.
    held: usize,
    /// Conflicts waiting for a choice on the Conflicts page.
    conflicts: usize,
    /// The settings form as submitted, when it was refused: open, with the reason next to
    /// the window field and the value that was refused in it.
    settings_open: bool,
    window_value: String,
    window_error: Option<String>,
}

/// A settings form that was refused, to be shown again on its connection's card.
struct Refused {
    connection: String,
    field: String,
    message: String,
    window_value: String,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    nav: Nav,
    sandboxed: bool,
    providers: Vec<ProviderButton>,
    connections: Vec<Row>,
    notice: Option<String>,
    error: Option<String>,
    conflict_options: &'static [(&'static str, &'static str)],
    delete_options: &'static [(&'static str, &'static str)],
    feed: FeedView,
    caldav: CalDavForm,
    caldav_presets: &'static [(&'static str, &'static str, &'static str)],
}

/// The caller's ICS feed as the page shows it.
struct FeedView {
    /// "2026-12-01 09:00 UTC" when a feed exists.
    created: Option<String>,
    /// The full URL, only right after it was made (it is not kept).
    url: Option<String>,
}

const CONFLICT_OPTIONS: &[(&str, &str)] = &[
    ("newest_wins", "The most recent change wins"),
    ("prefer_internal", "calsync's version wins"),
    ("prefer_external", "The calendar's version wins"),
    ("manual", "Ask me"),
];

const DELETE_OPTIONS: &[(&str, &str)] =
    &[("propagate", "Delete it on the other side too"), ("keep", "Keep it on the other side")];

async fn page_with(
    state: &AppState,
    caller: &WebCaller,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
    refused: Option<Refused>,
) -> Response {
    page_full(state, caller, notice, error, status, refused, Extra::default()).await
}

/// What a page shows beyond the usual: a feed address just made, the CalDAV form as submitted.
#[derive(Default)]
struct Extra {
    feed_url: Option<String>,
    caldav: Option<CalDavForm>,
}

/// The CalDAV connect form: open with the values given and the reason when it was refused, or
/// prefilled to reconnect.
#[derive(Default)]
struct CalDavForm {
    open: bool,
    provider: String,
    server_url: String,
    username: String,
    /// The field refused (`server_url`, `username`, `password`) and why.
    field: String,
    error: Option<String>,
}

async fn page_full(
    state: &AppState,
    caller: &WebCaller,
    notice: Option<String>,
    mut error: Option<String>,
    status: StatusCode,
    refused: Option<Refused>,
    extra: Extra,
) -> Response {
    let svc = &state.connections;
    let list = match svc.list(&caller.user.actor).await {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let now = state.clock.now();
    // The cards are the caller's own connections: their conflicts only. A failure here costs
    // the count, not the page.
    let actor = &caller.user.actor;
    let open_conflicts = state.db.open_conflicts(actor.firm_id, Some(actor.user_id)).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not count open conflicts");
        Vec::new()
    });
    let mut connections = Vec::with_capacity(list.len());
    for c in list {
        let calendar_list = match svc.stored_calendars(&caller.user.actor, c.id).await {
            Ok(cals) => cals,
            Err(e) => return error_page(e),
        };
        // The list holds the caller's own connections: their held deletions need no other check.
        let held = match state.db.held_deletes(caller.user.actor.firm_id, c.id).await {
            Ok(h) => h.len(),
            Err(e) => return error_page(e.into()),
        };
        let names: Vec<&str> = calendar_list.iter().filter(|c| c.selected).map(|c| c.name.as_str()).collect();
        let calendars = if names.is_empty() { "none selected".to_owned() } else { names.join(", ") };
        let push_calendar = c
            .push_calendar
            .clone()
            .or_else(|| calendar_list.iter().find(|x| x.is_primary).map(|x| x.remote_id.clone()))
            .unwrap_or_default();
        connections.push(Row {
            push_calendar,
            id: c.id.to_string(),
            conflict_strategy: c.settings.conflict_strategy.as_str(),
            delete_policy: c.settings.delete_policy.as_str(),
            calendar_list,
            provider: c.provider.as_str(),
            provider_label: c.provider.label(),
            account_email: c.account_email,
            status: c.status.as_str(),
            status_label: status_label(c.status),
            status_message: c.status_message,
            last_error: c.last_error,
            sync_enabled: c.settings.sync_enabled,
            window_days: c.settings.sync_window_days.days(),
            last_sync: c.last_sync_at.map(|t| moment(now, t)),
            calendars,
            held,
            conflicts: open_conflicts.iter().filter(|x| x.connection_id == c.id).count(),
            settings_open: false,
            window_value: c.settings.sync_window_days.days().to_string(),
            window_error: None,
        });
    }
    if let Some(r) = refused {
        match connections.iter_mut().find(|c| c.id == r.connection) {
            Some(row) => {
                row.settings_open = true;
                row.window_value = r.window_value;
                if r.field == "sync_window_days" {
                    row.window_error = Some(r.message);
                } else {
                    error = Some(format!("Settings not saved: {}: {}", r.field.replace('_', " "), r.message));
                }
            }
            None => error = Some(format!("Settings not saved: {}", r.message)),
        }
    }
    let providers = svc.providers();
    let buttons = [Provider::Google, Provider::Microsoft]
        .into_iter()
        .filter(|p| providers.get(*p).is_some())
        .map(|p| ProviderButton { key: p.as_str(), label: p.label() })
        .collect();
    let sandboxed = [&providers.google, &providers.microsoft].into_iter().flatten().any(|s| s.sandboxed);
    let created = match crate::services::feeds::created(&state.db, &caller.user.actor).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let feed = FeedView { created: created.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()), url: extra.feed_url };
    render(
        status,
        &CalendarPage {
            nav: Nav::of(caller, "calendar-sync"),
            sandboxed,
            providers: buttons,
            connections,
            notice,
            error,
            conflict_options: CONFLICT_OPTIONS,
            delete_options: DELETE_OPTIONS,
            feed,
            caldav: extra.caldav.unwrap_or_else(|| CalDavForm { provider: "icloud".into(), ..Default::default() }),
            caldav_presets: crate::services::connections::CALDAV_PRESETS,
        },
    )
}

pub(crate) fn status_label(s: calsync_domain::connection::ConnectionStatus) -> &'static str {
    use calsync_domain::connection::ConnectionStatus as S;
    match s {
        S::Active => "Active",
        S::Expired => "Expired",
        S::Error => "Error",
        S::Revoked => "Revoked",
    }
}

/// A past moment as pages show it: "3 minutes ago", the exact time on hover, and RFC 3339 for
/// `<time datetime>` (the `moment.html` include).
pub(crate) struct Moment {
    pub ago: String,
    pub exact: String,
    pub iso: String,
}

pub(crate) fn moment(now: chrono::DateTime<chrono::Utc>, t: chrono::DateTime<chrono::Utc>) -> Moment {
    Moment { ago: relative(now, t), exact: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(), iso: t.to_rfc3339() }
}

/// How long ago `t` was, in words: "just now", "5 minutes ago", "3 hours ago", "2 days ago".
pub(crate) fn relative(now: chrono::DateTime<chrono::Utc>, t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (now - t).num_seconds();
    let unit = |n: i64, what: &str| format!("{n} {what}{} ago", if n == 1 { "" } else { "s" });
    match secs {
        s if s < 45 => "just now".to_owned(),
        s if s < 90 * 60 => unit(((s + 30) / 60).max(1), "minute"),
        s if s < 36 * 3600 => unit((s + 1800) / 3600, "hour"),
        s => unit((s + 43_200) / 86_400, "day"),
    }
}

/// `GET /calendar`, the page's old address.
pub async fn moved(uri: axum::http::Uri) -> Redirect {
    match uri.query() {
        Some(q) => Redirect::permanent(&format!("{PAGE}?{q}")),
        None => Redirect::permanent(PAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::relative;
    use chrono::{Duration, Utc};

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        let ago = |s: i64| relative(now, now - Duration::seconds(s));
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(5 * 60 + 10), "5 minutes ago");
        assert_eq!(ago(2 * 3600), "2 hours ago");
        assert_eq!(ago(30 * 3600), "30 hours ago");
        assert_eq!(ago(3 * 86_400), "3 days ago");
        // A clock a little ahead of the server's: still "just now".
        assert_eq!(ago(-3), "just now");
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
    /// The attempt a "Sync now" just made: its counts are shown.
    synced: Option<String>,
    /// A CalDAV connection to reconnect: the form opens with its server and user name.
    reconnect: Option<String>,
}

/// What a sync did, in words.
fn sync_summary(a: &calsync_store::SyncAttempt) -> (Option<String>, Option<String>) {
    let c = &a.counts;
    let counts = format!(
        "pulled {} new, {} updated, {} deleted; pushed {} new, {} updated, {} deleted{}",
        c.pulled_created,
        c.pulled_updated,
        c.pulled_deleted,
        c.pushed_created,
        c.pushed_updated,
        c.pushed_deleted,
        match (c.merged, c.conflicts) {
            (0, 0) => String::new(),
            (m, 0) => format!("; {m} merged field by field"),
            (0, k) => format!("; {k} {} to resolve", if k == 1 { "conflict" } else { "conflicts" }),
            (m, k) =>
                format!("; {m} merged field by field, {k} {} to resolve", if k == 1 { "conflict" } else { "conflicts" }),
        }
    );
    let error = a.error_message.clone().unwrap_or_default();
    match a.status {
        AttemptStatus::Success if error.is_empty() => (Some(format!("Synced: {counts}.")), None),
        AttemptStatus::Success | AttemptStatus::Partial => {
            (Some(format!("Synced with problems: {counts}.")), Some(error).filter(|e| !e.is_empty()))
        }
        AttemptStatus::Failed | AttemptStatus::Running => (None, Some(format!("Sync failed: {error}"))),
    }
}

pub async fn show(State(state): State<AppState>, caller: WebCaller, Query(q): Query<PageQuery>) -> Response {
    let mut notice = match q.notice.as_deref() {
        Some("connected") => Some("Calendar connected.".to_owned()),
        Some("disconnected") => Some("Calendar disconnected. Appointments already synced stay in calsync.".to_owned()),
        Some("saved") => Some("Settings saved.".to_owned()),
        Some("deletes_confirmed") => Some("The held deletions were applied.".to_owned()),
        Some("deletes_rejected") => Some("The held deletions were refused; what was deleted is restored.".to_owned()),
        Some("feed_revoked") => Some("The calendar feed was turned off: its address no longer works.".to_owned()),
        _ => None,
    };
    let mut error = None;
    if let Some(id) = q.synced.as_deref().and_then(|s| s.parse().ok())
        && let Ok(a) = state.db.attempt(caller.user.actor.firm_id, id).await
        && state.sync.status(&caller.user.actor, a.connection_id).await.is_ok()
    {
        (notice, error) = sync_summary(&a);
    }
    let caldav = match q.reconnect.as_deref().and_then(|s| s.parse().ok()) {
        Some(id) => match state.connections.caldav_sign_in(&caller.user.actor, id).await {
            Ok(Some((server_url, username))) => {
                Some(CalDavForm { open: true, server_url, username, ..Default::default() })
            }
            Ok(None) => None,
            Err(e) => return error_page(e),
        },
        None => None,
    };
    let extra = Extra { caldav, ..Default::default() };
    page_full(&state, &caller, notice, error, StatusCode::OK, None, extra).await
}

/// "Sync now". A plain form post runs the sync and then shows its counts. From htmx (the page
/// with scripts on), the sync starts in the background and the answer is the first progress
/// state, which polls [`progress`] until the sync is done.
pub async fn sync_now(
    State(state): State<AppState>,
    caller: WebCaller,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse::<ConnectionId>() else { return error_page(crate::services::ServiceError::NotFound) };
    if headers.contains_key("hx-request") {
        let before = match state.sync.status(&caller.user.actor, id).await {
            Ok(s) => s.last_attempt.map(|a| a.id.to_string()).unwrap_or_default(),
            Err(e) => return error_page(e),
        };
        let (svc, actor) = (state.sync.clone(), caller.user.actor.clone());
        tokio::spawn(async move {
            // The outcome is recorded in the attempt log, which the progress polling reads.
            if let Err(e) = svc.sync_now(&actor, id).await {
                tracing::warn!(connection_id = %id, error = %e, "sync now from the page failed");
            }
        });
        let step =
            ProgressStep { id: id.to_string(), after: before, n: 1, text: "Starting the sync…".into(), poll: true };
        return render(StatusCode::OK, &step);
    }
    match state.sync.sync_now(&caller.user.actor, id).await {
        Ok(a) => Redirect::to(&format!("{PAGE}?synced={}", a.id)).into_response(),
        Err(e) => error_page(e),
    }
}

/// One state of a running "Sync now", polled by htmx (see `calendar_progress.html`).
#[derive(Template)]
#[template(path = "calendar_progress.html")]
struct ProgressStep {
    id: String,
    /// The connection's last attempt before this sync: a newer one means it is done.
    after: String,
    /// Polls so far.
    n: u32,
    text: String,
    poll: bool,
}

/// Polls in all before the page stops asking (about five minutes).
const MAX_POLLS: u32 = 600;

#[derive(Deserialize)]
pub struct ProgressQuery {
    #[serde(default)]
    after: String,
    #[serde(default)]
    n: u32,
}

/// `GET /calendar-sync/{id}/progress`: the counts so far while the sync runs; once it is done,
/// htmx is sent to the page with its result (`HX-Redirect`).
pub async fn progress(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Query(q): Query<ProgressQuery>,
) -> Response {
    let Ok(id) = id.parse::<ConnectionId>() else { return error_page(crate::services::ServiceError::NotFound) };
    let s = match state.sync.status(&caller.user.actor, id).await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let last = s.last_attempt.as_ref().map(|a| a.id.to_string()).unwrap_or_default();
    if !s.in_progress && last != q.after && !last.is_empty() {
        // A 200 with the header: a redirect status would be followed by the browser's request
        // itself, and htmx would never see where to go.
        let to = format!("{PAGE}?synced={last}");
        return ([("HX-Redirect", to)], "Done.").into_response();
    }
    let text = match (&s.progress, s.in_progress) {
        (Some(c), _) => format!(
            "Syncing… so far pulled {} new, {} updated, {} deleted; pushed {} new, {} updated, {} deleted.",
            c.pulled_created, c.pulled_updated, c.pulled_deleted, c.pushed_created, c.pushed_updated, c.pushed_deleted
        ),
        (None, true) => "Syncing… (another worker is running this sync)".to_owned(),
        (None, false) => "Starting the sync…".to_owned(),
    };
    let n = q.n.saturating_add(1);
    let (text, poll) = if n > MAX_POLLS {
        ("Still syncing in the background. Reload the page later to see the result.".to_owned(), false)
    } else {
        (text, true)
    };
    render(StatusCode::OK, &ProgressStep { id: id.to_string(), after: q.after, n, text, poll })
}

/// Confirms (or refuses) the deletions held by the mass-delete guard.
pub async fn settle_deletes(
    State(state): State<AppState>,
    caller: WebCaller,
    Path((id, choice)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let confirm = match choice.as_str() {
        "confirm" => true,
        "reject" => false,
        _ => return error_page(crate::services::ServiceError::NotFound),
    };
    let Ok(id) = id.parse() else { return error_page(crate::services::ServiceError::NotFound) };
    match state.sync.settle_deletes(&caller.user.actor, id, confirm).await {
        Ok(_) if confirm => Redirect::to(&format!("{PAGE}?notice=deletes_confirmed")).into_response(),
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=deletes_rejected")).into_response(),
        Err(e) => error_page(e),
    }
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
    let hint = Some(f.login_hint.trim()).filter(|h| !h.is_empty()).map(str::to_owned);
    // The sandbox's consent page offers this address, so a newcomer can just click Allow.
    let hint = hint.or_else(|| state.connections.sandbox_demo_account(provider, &caller.user.email));
    match state.connections.initiate(&caller.user.actor, provider, hint.as_deref()).await {
        Ok((url, _state)) => Redirect::to(&url).into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct CalDavConnectForm {
    csrf_token: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    server_url: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Option<Secret>,
}

/// Connects a CalDAV account from the page's form. A refusal shows the form again with what was
/// typed (not the password) and the reason next to it.
pub async fn connect_caldav(
    State(state): State<AppState>,
    caller: WebCaller,
    Form(f): Form<CalDavConnectForm>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let server = f.server_url.trim();
    let input = crate::services::connections::CalDavInput {
        // A typed address wins over the service picked.
        server_url: Some(server.to_owned()).filter(|s| !s.is_empty()),
        provider: Some(f.provider.clone()).filter(|p| !p.is_empty()),
        username: Some(f.username.clone()),
        password: f.password,
    };
    let refused = |status: StatusCode, field: &str, message: String| {
        let form = CalDavForm {
            open: true,
            provider: f.provider.clone(),
            server_url: f.server_url.clone(),
            username: f.username.clone(),
            field: field.to_owned(),
            error: Some(message),
        };
        (status, Extra { caldav: Some(form), ..Default::default() })
    };
    let (status, extra) = match state.connections.connect_caldav(&caller.user.actor, input).await {
        Ok(_) => return Redirect::to(&format!("{PAGE}?notice=connected")).into_response(),
        Err(ConnectError::Rejected { field, message, .. }) => {
            refused(StatusCode::BAD_REQUEST, field.unwrap_or(""), message)
        }
        Err(ConnectError::ProviderUnavailable(m)) => refused(StatusCode::BAD_GATEWAY, "server_url", m),
        Err(ConnectError::Service(e)) => return error_page(e),
    };
    page_full(&state, &caller, None, Some("Not connected.".into()), status, None, extra).await
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<Secret>,
    code: Option<Secret>,
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
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=connected")).into_response(),
        Err(ConnectError::Rejected { code, message, .. }) => {
            render(StatusCode::BAD_REQUEST, &OAuthResult::of(&caller, code, message))
        }
        Err(ConnectError::ProviderUnavailable(m)) => {
            render(StatusCode::BAD_GATEWAY, &OAuthResult::of(&caller, "provider_unavailable", m))
        }
        Err(ConnectError::Service(e)) => error_page(e),
    }
}

/// Why connecting did not work, in plain words, with what to do and the way back.
#[derive(Template)]
#[template(path = "oauth_result.html")]
struct OAuthResult {
    nav: Nav,
    code: &'static str,
    headline: &'static str,
    /// What happened, as the service words it.
    detail: String,
    advice: &'static str,
}

impl OAuthResult {
    fn of(caller: &WebCaller, code: &'static str, detail: String) -> Self {
        let (headline, advice) = match code {
            "access_denied" => (
                "You declined access",
                "Nothing was connected. To connect, start again and click Allow on the consent page.",
            ),
            "insufficient_scope" => (
                "Some permissions were not granted",
                "calsync needs every permission it asks for to sync both ways. Start again and leave them all ticked.",
            ),
            "state_expired" => (
                "This connection request expired",
                "Connection requests last a few minutes. Start again from Calendar Sync.",
            ),
            "state_used" => (
                "This connection request was already used",
                "The page was probably reloaded or opened twice. Your calendar may already be connected: check Calendar Sync.",
            ),
            "invalid_state" => (
                "This connection request is not valid",
                "It was not started by you in this browser, or it was altered. Nothing was connected. Start again from Calendar Sync.",
            ),
            "provider_unavailable" => {
                ("The calendar provider did not answer", "Nothing was connected. Try again in a few minutes.")
            }
            _ => ("The calendar could not be connected", "Nothing was connected. Start again from Calendar Sync."),
        };
        OAuthResult { nav: Nav::of(caller, "calendar-sync"), code, headline, detail, advice }
    }
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
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=disconnected")).into_response(),
        Err(e) => error_page(e),
    }
}

/// Saves a connection's settings from its form. The calendar checkboxes repeat one field name,
/// so the body is read as pairs rather than into a struct.
pub async fn save_settings(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if !csrf_ok(&caller, value("csrf_token").unwrap_or_default()) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse() else { return error_page(crate::services::ServiceError::NotFound) };
    let parsed = (|| -> Result<SettingsChange, calsync_domain::ValidationError> {
        let days = value("sync_window_days").unwrap_or_default();
        let days = days.trim().parse::<i64>().map_err(|_| {
            calsync_domain::ValidationError::new("sync_window_days", format!("{days:?} is not a whole number of days"))
        })?;
        Ok(SettingsChange {
            sync_enabled: Some(value("sync_enabled").is_some()),
            sync_window_days: Some(SyncWindowDays::parse(days)?),
            conflict_strategy: Some(value("conflict_strategy").unwrap_or_default().parse::<ConflictStrategy>()?),
            delete_policy: Some(value("delete_policy").unwrap_or_default().parse::<DeletePolicy>()?),
            selected_calendars: Some(pairs.iter().filter(|(k, _)| k == "calendar").map(|(_, v)| v.clone()).collect()),
        })
    })();
    let push = value("push_calendar").filter(|v| !v.is_empty()).map(str::to_owned);
    let result = match parsed {
        Ok(change) => state.connections.update_settings(&caller.user.actor, id, change, push).await,
        Err(v) => Err(crate::services::ServiceError::Validation(v)),
    };
    match result {
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=saved")).into_response(),
        Err(crate::services::ServiceError::Validation(v)) => {
            let refused = Refused {
                connection: id.to_string(),
                field: v.field.to_string(),
                message: v.message.to_string(),
                window_value: value("sync_window_days").unwrap_or_default().to_owned(),
            };
            let status = StatusCode::BAD_REQUEST;
            page_with(&state, &caller, None, Some("Settings not saved.".into()), status, Some(refused)).await
        }
        Err(e) => error_page(e),
    }
}

/// Makes a new ICS feed address (the old one stops working) and shows it, once: only its hash is
/// kept. The page is answered directly, so the address never sits in a redirect or the history.
pub async fn new_feed(State(state): State<AppState>, caller: WebCaller, Form(f): Form<CsrfOnly>) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    match crate::services::feeds::regenerate(&state.db, &caller.user.actor).await {
        Ok(token) => {
            let url = state.config.public(&format!("/ics/{token}.ics"));
            let notice = Some("New calendar feed address made. Copy it now: calsync shows it only once.".to_owned());
            let extra = Extra { feed_url: Some(url), ..Default::default() };
            page_full(&state, &caller, notice, None, StatusCode::OK, None, extra).await
        }
        Err(e) => error_page(e),
    }
}

/// Turns the ICS feed off: its address answers 404 from now on.
pub async fn revoke_feed(State(state): State<AppState>, caller: WebCaller, Form(f): Form<CsrfOnly>) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    match crate::services::feeds::revoke(&state.db, &caller.user.actor).await {
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=feed_revoked")).into_response(),
        Err(e) => error_page(e),
    }
}

/// `GET /ics/{token}.ics`: the feed itself, for calendar apps (no session: the token is the key).
pub async fn feed(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    use axum::http::header;
    let not_found = || {
        (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "No such calendar feed.\n")
            .into_response()
    };
    let Some(token) = file.strip_suffix(".ics") else { return not_found() };
    match crate::services::feeds::render(&state.db, token, state.clock.now()).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "private, max-age=300"),
                (header::CONTENT_DISPOSITION, "inline; filename=\"calsync.ics\""),
            ],
            body,
        )
            .into_response(),
        Err(crate::services::ServiceError::NotFound) => not_found(),
        Err(e) => error_page(e),
    }
}
