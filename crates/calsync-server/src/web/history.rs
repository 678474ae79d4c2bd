//! Sync history: the attempt log of the caller's connections (the whole firm's for admins) with
//! filters, a chart of syncs and failures per day, the details of one attempt, replay of a failed
//! one (admins) and a CSV export of what the filters select.

use super::session::csrf_ok;
use super::{CsrfOnly, Nav, csrf_rejected, error_page, render};
use crate::auth::WebCaller;
use crate::services::ServiceError;
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use calsync_domain::ValidationError;
use calsync_domain::ids::{ConnectionId, SyncAttemptId};
use calsync_domain::sync::{AttemptStatus, SyncTrigger};
use calsync_store::{AttemptQuery, DailyAttempts, SyncAttempt};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::HashMap;

pub const PAGE: &str = "/calendar-sync/history";
/// Attempts per page of the list.
const PAGE_SIZE: u32 = 50;
/// Rows a CSV export holds at most.
const CSV_LIMIT: usize = 10_000;
/// Days the chart shows, ending today.
const CHART_DAYS: i64 = 14;

/// The filters, as the form sends them (and as links repeat them).
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    connection: String,
    #[serde(default)]
    outcome: String,
    /// A date (`YYYY-MM-DD`): attempts started on it or later (UTC).
    #[serde(default)]
    from: String,
    /// The last attempt of the previous page.
    #[serde(default)]
    before: String,
}

impl Filters {
    /// The store query the filters mean, or the field that is wrong.
    async fn query(&self, state: &AppState, caller: &WebCaller) -> Result<AttemptQuery, ServiceError> {
        let mut q = AttemptQuery { limit: PAGE_SIZE, ..Default::default() };
        if !self.connection.is_empty() {
            let id = self.connection.parse::<ConnectionId>().map_err(|_| {
                ValidationError::new("connection", format!("{:?} is not a connection id", self.connection))
            })?;
            q.connection = Some(id);
        }
        if !self.outcome.is_empty() {
            q.status =
                Some(self.outcome.parse::<AttemptStatus>().map_err(|e| ValidationError::new("outcome", e.message))?);
        }
        if !self.from.is_empty() {
            let day = NaiveDate::parse_from_str(self.from.trim(), "%Y-%m-%d")
                .map_err(|_| ValidationError::new("from", format!("{:?} is not a date (YYYY-MM-DD)", self.from)))?;
            q.since = Some(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
        }
        if !self.before.is_empty() {
            let id = self
                .before
                .parse::<SyncAttemptId>()
                .map_err(|_| ValidationError::new("before", "not an attempt id"))?;
            let last = state.db.attempt(caller.user.actor.firm_id, id).await?;
            // Staff page through their own attempts only: a colleague's id is "not found".
            state.sync.status(&caller.user.actor, last.connection_id).await?;
            q.before = Some((last.started_at, last.id));
        }
        Ok(q)
    }

    /// The query string of these filters, with `before` set to `next` when given.
    fn link(&self, next: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("connection", &self.connection), ("outcome", &self.outcome), ("from", &self.from)] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if let Some(n) = next {
            q.append_pair("before", n);
        }
        q.finish()
    }
}

pub(crate) struct ConnectionOption {
    pub id: String,
    pub label: String,
}

/// The connections the caller may see, labelled "Google Calendar · ann@gmail.com" (with the
/// owner's name for admins).
pub(crate) async fn connection_options(
    state: &AppState,
    caller: &WebCaller,
) -> Result<Vec<ConnectionOption>, ServiceError> {
    let actor = &caller.user.actor;
    if actor.is_admin() {
        // Labels only: the connections and their owners, not the last attempts the admin list reads.
        let list = state.db.connections_with_owners(actor.firm_id).await?;
        Ok(list
            .into_iter()
            .map(|(c, _, owner)| ConnectionOption {
                id: c.id.to_string(),
                label: format!("{} · {} ({owner})", c.provider.label(), c.account_email),
            })
            .collect())
    } else {
        let list = state.connections.list(actor).await?;
        Ok(list
            .into_iter()
            .map(|c| ConnectionOption {
                id: c.id.to_string(),
                label: format!("{} · {}", c.provider.label(), c.account_email),
            })
            .collect())
    }
}

pub(crate) fn trigger_label(t: SyncTrigger) -> &'static str {
    match t {
        SyncTrigger::Manual => "Sync now",
        SyncTrigger::Scheduled => "Scheduled",
        SyncTrigger::Webhook => "Change notice",
        SyncTrigger::Replay => "Replay",
        SyncTrigger::Resync => "Full resync",
    }
}

pub(crate) fn outcome_label(s: AttemptStatus) -> &'static str {
    match s {
        AttemptStatus::Running => "Running",
        AttemptStatus::Success => "Succeeded",
        AttemptStatus::Partial => "Partly done",
        AttemptStatus::Failed => "Failed",
    }
}

const OUTCOMES: &[(&str, &str)] =
    &[("success", "Succeeded"), ("partial", "Partly done"), ("failed", "Failed"), ("running", "Running")];

fn duration_ms(a: &SyncAttempt) -> Option<i64> {
    a.finished_at.map(|f| (f - a.started_at).num_milliseconds().max(0))
}

/// "850 ms", "2.4 s", "3 min 5 s".
pub(crate) fn duration_words(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

struct Row {
    id: String,
    started: super::calendar::Moment,
    connection: String,
    trigger: &'static str,
    outcome: &'static str,
    outcome_label: &'static str,
    duration: String,
    pulled: String,
    pushed: String,
    error: String,
}

fn row(a: &SyncAttempt, names: &HashMap<String, String>, now: DateTime<Utc>) -> Row {
    let c = &a.counts;
    let connection = a.connection_id.to_string();
    Row {
        id: a.id.to_string(),
        started: super::calendar::moment(now, a.started_at),
        connection: names.get(&connection).cloned().unwrap_or_else(|| "a removed connection".to_owned()),
        trigger: trigger_label(a.trigger),
        outcome: a.status.as_str(),
        outcome_label: outcome_label(a.status),
        duration: duration_ms(a).map(duration_words).unwrap_or_default(),
        pulled: moved(c.pulled_created, c.pulled_updated, c.pulled_deleted),
        pushed: moved(c.pushed_created, c.pushed_updated, c.pushed_deleted),
        error: a.error_message.clone().unwrap_or_default(),
    }
}

/// "5 new, 1 changed" (the parts that are not zero), or "none".
fn moved(created: i64, updated: i64, deleted: i64) -> String {
    let parts: Vec<String> = [(created, "new"), (updated, "changed"), (deleted, "deleted")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
}

/// One day's bar of the chart, in the SVG's coordinates (a 100-unit-high plot).
struct Bar {
    x: i64,
    day_label: String,
    title: String,
    ok_y: i64,
    ok_h: i64,
    failed_y: i64,
    failed_h: i64,
}

struct Chart {
    bars: Vec<Bar>,
    max: i64,
    total: i64,
    failed: i64,
    first: String,
    last: String,
}

/// Bars of syncs per day (failed ones in red at the bottom), the last [`CHART_DAYS`] days.
fn chart(days: &[DailyAttempts], today: NaiveDate) -> Chart {
    let first = today - Duration::days(CHART_DAYS - 1);
    let by_day: HashMap<NaiveDate, &DailyAttempts> = days.iter().map(|d| (d.day, d)).collect();
    let max = days.iter().filter(|d| d.day >= first).map(|d| d.attempts).max().unwrap_or(0).max(1);
    let mut bars = Vec::new();
    let (mut total, mut failed) = (0, 0);
    for i in 0..CHART_DAYS {
        let day = first + Duration::days(i);
        let (n, f) = by_day.get(&day).map_or((0, 0), |d| (d.attempts, d.failed));
        total += n;
        failed += f;
        let h = |v: i64| (v * 100 + max - 1) / max;
        let (all_h, failed_h) = (h(n), h(f));
        bars.push(Bar {
            x: 40 + i * 40,
            day_label: day.format("%-d").to_string(),
            title: format!("{}: {n} syncs, {f} failed", day.format("%a %Y-%m-%d")),
            ok_y: 110 - all_h,
            ok_h: all_h - failed_h,
            failed_y: 110 - failed_h,
            failed_h,
        });
    }
    Chart { bars, max, total, failed, first: first.to_string(), last: today.to_string() }
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    nav: Nav,
    connections: Vec<ConnectionOption>,
    outcomes: &'static [(&'static str, &'static str)],
    filters: Filters,
    field: String,
    error: Option<String>,
    notice: Option<String>,
    rows: Vec<Row>,
    next: Option<String>,
    csv: String,
    chart: Chart,
}

pub async fn show(State(state): State<AppState>, caller: WebCaller, Query(f): Query<Filters>) -> Response {
    let connections = match connection_options(&state, &caller).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let names: HashMap<String, String> = connections.iter().map(|c| (c.id.clone(), c.label.clone())).collect();
    let now = state.clock.now();
    let (status, field, error, rows, next, q) = match f.query(&state, &caller).await {
        Ok(q) => match state.sync.attempts(&caller.user.actor, q.clone()).await {
            Ok((items, more)) => {
                let next = more.then(|| items.last().map(|a| a.id.to_string())).flatten();
                let rows = items.iter().map(|a| row(a, &names, now)).collect();
                (StatusCode::OK, String::new(), None, rows, next, q)
            }
            Err(e) => return error_page(e),
        },
        Err(ServiceError::Validation(v)) => (
            StatusCode::BAD_REQUEST,
            v.field.to_string(),
            Some(format!("{}: {}", v.field, v.message)),
            Vec::new(),
            None,
            AttemptQuery::default(),
        ),
        Err(ServiceError::NotFound) => return error_page(ServiceError::NotFound),
        Err(e) => return error_page(e),
    };
    // The chart follows the connection filter, over the last days whatever the date filter.
    // The connection filter holds even when another filter was refused.
    let mut per_day = AttemptQuery {
        connection: q.connection.or_else(|| f.connection.parse().ok()),
        since: Some((now - Duration::days(CHART_DAYS)).date_naive().and_hms_opt(0, 0, 0).expect("exists").and_utc()),
        ..Default::default()
    };
    if !caller.user.actor.is_admin() {
        per_day.user = Some(caller.user.actor.user_id);
    }
    let days = match state.db.attempts_per_day(caller.user.actor.firm_id, &per_day).await {
        Ok(d) => d,
        Err(e) => return error_page(e.into()),
    };
    let notice: Option<String> = None;
    let csv = format!("{PAGE}.csv?{}", f.link(None));
    let next = next.map(|n| format!("{PAGE}?{}", f.link(Some(&n))));
    render(
        status,
        &HistoryPage {
            nav: Nav::of(&caller, "history"),
            connections,
            outcomes: OUTCOMES,
            filters: f,
            field,
            error,
            notice,
            rows,
            next,
            csv,
            chart: chart(&days, now.date_naive()),
        },
    )
}

#[derive(Template)]
#[template(path = "attempt.html")]
struct AttemptPage {
    nav: Nav,
    id: String,
    connection: String,
    connection_id: String,
    trigger: &'static str,
    outcome: &'static str,
    outcome_label: &'static str,
    started_exact: String,
    finished_exact: String,
    duration: String,
    counts: calsync_store::AttemptCounts,
    error_kind: String,
    error_message: String,
    notes: Vec<String>,
    worker: String,
    replay_of: String,
    can_replay: bool,
}

pub async fn detail(State(state): State<AppState>, caller: WebCaller, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<SyncAttemptId>() else { return error_page(ServiceError::NotFound) };
    let a = match state.db.attempt(caller.user.actor.firm_id, id).await {
        Ok(a) => a,
        Err(e) => return error_page(e.into()),
    };
    // Staff see the attempts of their own connections only.
    let c = match state.sync.status(&caller.user.actor, a.connection_id).await {
        Ok(s) => s.connection,
        Err(e) => return error_page(e),
    };
    let connection_id = a.connection_id.to_string();
    let connection = format!("{} · {}", c.provider.label(), c.account_email);
    let exact = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string();
    render(
        StatusCode::OK,
        &AttemptPage {
            nav: Nav::of(&caller, "history"),
            id: a.id.to_string(),
            connection,
            connection_id,
            trigger: trigger_label(a.trigger),
            outcome: a.status.as_str(),
            outcome_label: outcome_label(a.status),
            started_exact: exact(a.started_at),
            finished_exact: a.finished_at.map(exact).unwrap_or_default(),
            duration: duration_ms(&a).map(duration_words).unwrap_or_default(),
            counts: a.counts.clone(),
            error_kind: a.error_kind.clone().unwrap_or_default(),
            error_message: a.error_message.clone().unwrap_or_default(),
            notes: a.notes.clone(),
            worker: a.worker.clone().unwrap_or_default(),
            replay_of: a.replay_of.map(|r| r.to_string()).unwrap_or_default(),
            can_replay: caller.user.actor.is_admin()
                && matches!(a.status, AttemptStatus::Failed | AttemptStatus::Partial),
        },
    )
}

/// Runs a failed attempt's sync again (admins), then shows the new attempt.
pub async fn replay(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse::<SyncAttemptId>() else { return error_page(ServiceError::NotFound) };
    match state.sync.replay(&caller.user.actor, id).await {
        Ok(a) => Redirect::to(&format!("{PAGE}/{}", a.id)).into_response(),
        Err(e) => error_page(e),
    }
}

/// One CSV cell: quoted when it must be, and never read as a formula by a spreadsheet.
fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}

/// The attempts the filters select (up to [`CSV_LIMIT`]), newest first, as CSV.
pub async fn csv(State(state): State<AppState>, caller: WebCaller, Query(f): Query<Filters>) -> Response {
    // A refused filter answers in plain text: the link downloads, so a page would be saved as .csv.
    let mut q = match f.query(&state, &caller).await {
        Ok(q) => q,
        Err(ServiceError::Validation(v)) => {
            let body = format!("Not exported: {}: {}\n", v.field, v.message);
            return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
                .into_response();
        }
        Err(e) => return error_page(e),
    };
    q.limit = 200;
    let names = match connection_options(&state, &caller).await {
        Ok(c) => c.into_iter().map(|c| (c.id, c.label)).collect::<HashMap<_, _>>(),
        Err(e) => return error_page(e),
    };
    let mut out = String::from(
        "id,started_at,finished_at,duration_ms,connection_id,connection,trigger,outcome,pulled_created,pulled_updated,\
         pulled_deleted,pushed_created,pushed_updated,pushed_deleted,merged,conflicts,requests,error_kind,error_message\r\n",
    );
    let mut rows = 0;
    loop {
        let (items, more) = match state.sync.attempts(&caller.user.actor, q.clone()).await {
            Ok(p) => p,
            Err(e) => return error_page(e),
        };
        for a in &items {
            let c = &a.counts;
            let conn = a.connection_id.to_string();
            let fields = [
                a.id.to_string(),
                a.started_at.to_rfc3339(),
                a.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                duration_ms(a).map(|d| d.to_string()).unwrap_or_default(),
                conn.clone(),
                names.get(&conn).cloned().unwrap_or_default(),
                a.trigger.as_str().to_owned(),
                a.status.as_str().to_owned(),
                c.pulled_created.to_string(),
                c.pulled_updated.to_string(),
                c.pulled_deleted.to_string(),
                c.pushed_created.to_string(),
                c.pushed_updated.to_string(),
                c.pushed_deleted.to_string(),
                c.merged.to_string(),
                c.conflicts.to_string(),
                c.requests.to_string(),
                a.error_kind.clone().unwrap_or_default(),
                a.error_message.clone().unwrap_or_default(),
            ];
            out.push_str(&fields.iter().map(|v| cell(v)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
            rows += 1;
        }
        match items.last() {
            Some(last) if more && rows < CSV_LIMIT => q.before = Some((last.started_at, last.id)),
            _ => break,
        }
    }
    let name = format!("calsync-sync-history-{}.csv", state.clock.now().format("%Y-%m-%d"));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-1"), "'-1");
    }

    #[test]
    fn the_chart_scales_to_the_busiest_day_and_shows_failures_at_the_bottom() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let days = [
            DailyAttempts { day: today - Duration::days(1), attempts: 4, failed: 1 },
            DailyAttempts { day: today, attempts: 2, failed: 0 },
            // Outside the chart: ignored for the scale.
            DailyAttempts { day: today - Duration::days(30), attempts: 100, failed: 100 },
        ];
        let c = chart(&days, today);
        assert_eq!(c.bars.len(), CHART_DAYS as usize);
        assert_eq!((c.max, c.total, c.failed), (4, 6, 1));
        let busy = &c.bars[CHART_DAYS as usize - 2];
        assert_eq!((busy.ok_h + busy.failed_h, busy.failed_h, busy.failed_y), (100, 25, 85));
        assert_eq!(busy.ok_y + busy.ok_h, busy.failed_y, "the failed part sits under the rest");
        let last = c.bars.last().unwrap();
        assert_eq!((last.ok_h, last.failed_h, last.day_label.as_str()), (50, 0, "1"));
        assert!(c.bars[0].title.ends_with(": 0 syncs, 0 failed"));
    }

    #[test]
    fn counts_name_only_what_moved() {
        assert_eq!(moved(0, 0, 0), "none");
        assert_eq!(moved(5, 0, 0), "5 new");
        assert_eq!(moved(0, 1, 2), "1 changed, 2 deleted");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(850), "850 ms");
        assert_eq!(duration_words(2_400), "2.4 s");
        assert_eq!(duration_words(185_000), "3 min 5 s");
    }
}
