//! The appointments pages: a list and a week view of what is coming up (series expanded into
//! their occurrences), where each appointment is synced and the state of each link, a form to add
//! one (optionally repeating), editing (one occurrence or the whole series) and deleting. The
//! same services and validation as the API; a colleague's private appointment shows as "Busy".

use super::session::csrf_ok;
use super::{Nav, csrf_rejected, error_page, render};
use crate::auth::WebCaller;
use crate::services::{ServiceError, appointments as service};
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use calsync_domain::ValidationError;
use calsync_domain::appointment::{Appointment, AppointmentData, AppointmentInput, Visibility, When};
use calsync_domain::ids::AppointmentId;
use calsync_domain::recurrence::{OriginalStart, Series, occurrence_data};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::LazyLock;

pub const PAGE: &str = "/appointments";
const WINDOW_DAYS: i64 = 60;

static TIME_ZONES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect());

/// How repeating appointments can be made from the page (the API takes any RFC 5545 rule).
const REPEATS: &[(&str, &str)] =
    &[("", "Does not repeat"), ("DAILY", "Every day"), ("WEEKLY", "Every week"), ("MONTHLY", "Every month")];

/// Where one appointment stands with one connection.
struct LinkBadge {
    provider: &'static str,
    provider_label: &'static str,
    state: &'static str,
    state_label: &'static str,
    error: String,
}

struct Row {
    id: String,
    title: String,
    when: String,
    time_zone: String,
    location: String,
    status: &'static str,
    owned: bool,
    private: bool,
    /// An occurrence of a series (its original start, for editing or deleting just it).
    occurrence: String,
    series: bool,
    links: Vec<LinkBadge>,
    /// `/appointments/{id}/edit`, with the occurrence when it is one.
    edit_href: String,
}

struct Day {
    label: String,
    iso: String,
    today: bool,
    rows: Vec<Row>,
}

#[derive(Default, Clone, Deserialize)]
pub struct ApptForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    all_day: Option<String>,
    #[serde(default)]
    location: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    private: Option<String>,
    /// `DAILY`, `WEEKLY`, `MONTHLY` or empty (create only).
    #[serde(default)]
    repeat: String,
    #[serde(default)]
    count: String,
    /// Edit only: the version the form was made from, the occurrence edited, and whether the
    /// change is for that occurrence or the whole series.
    #[serde(default)]
    version: String,
    #[serde(default)]
    occurrence: String,
    #[serde(default)]
    scope: String,
}

struct FormValues {
    title: String,
    start: String,
    end: String,
    time_zone: String,
    all_day: bool,
    location: String,
    description: String,
    private: bool,
    repeat: String,
    count: String,
}

impl FormValues {
    fn blank() -> Self {
        FormValues {
            title: String::new(),
            start: String::new(),
            end: String::new(),
            time_zone: "UTC".into(),
            all_day: false,
            location: String::new(),
            description: String::new(),
            private: false,
            repeat: String::new(),
            count: "10".into(),
        }
    }

    fn from_form(f: &ApptForm) -> Self {
        FormValues {
            title: f.title.clone(),
            start: f.start.clone(),
            end: f.end.clone(),
            time_zone: f.time_zone.clone(),
            all_day: f.all_day.is_some(),
            location: f.location.clone(),
            description: f.description.clone(),
            private: f.private.is_some(),
            repeat: f.repeat.clone(),
            count: f.count.clone(),
        }
    }

    /// The form filled from an appointment, in its own zone (all-day ends shown inclusive).
    fn from_data(d: &AppointmentData) -> Self {
        let (start, end) = match d.when {
            When::Timed { start, end } => (
                start.with_timezone(&d.time_zone).format("%Y-%m-%dT%H:%M").to_string(),
                end.with_timezone(&d.time_zone).format("%Y-%m-%dT%H:%M").to_string(),
            ),
            When::AllDay { start, end } => (format!("{start}T00:00"), format!("{}T00:00", end - Duration::days(1))),
        };
        FormValues {
            title: d.title.clone(),
            start,
            end,
            time_zone: d.time_zone.name().to_owned(),
            all_day: d.is_all_day(),
            location: d.location.clone(),
            description: d.description.clone(),
            private: d.visibility == Visibility::Private,
            repeat: String::new(),
            count: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    week_view: bool,
    window_start: String,
    window_days: i64,
    appointments: Vec<Row>,
    days: Vec<Day>,
    week_label: String,
    prev_week: String,
    next_week: String,
    notice: Option<String>,
    error: Option<String>,
    /// The form field a refused form is about.
    field: String,
    form: FormValues,
    time_zones: &'static [&'static str],
    repeats: &'static [(&'static str, &'static str)],
}

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    notice: Option<String>,
    /// `week` for the week view; the list otherwise.
    view: Option<String>,
    /// A day of the week to show (`YYYY-MM-DD`); this week by default.
    week: Option<String>,
}

fn describe(a: &Appointment) -> String {
    describe_data(&a.data)
}

/// When an appointment is, in its own zone: "Tue 2026-12-01 10:00–11:00", or dates for all-day.
pub(crate) fn describe_data(d: &AppointmentData) -> String {
    match d.when {
        When::AllDay { start, end } => {
            let last = end - Duration::days(1);
            if last == start { format!("{start} (all day)") } else { format!("{start} – {last} (all day)") }
        }
        When::Timed { start, end } => {
            let s = start.with_timezone(&d.time_zone);
            let e = end.with_timezone(&d.time_zone);
            if s.date_naive() == e.date_naive() {
                format!("{} {}–{}", s.format("%a %Y-%m-%d"), s.format("%H:%M"), e.format("%H:%M"))
            } else {
                format!("{} – {}", s.format("%a %Y-%m-%d %H:%M"), e.format("%a %Y-%m-%d %H:%M"))
            }
        }
    }
}

/// The day an appointment starts on, in its own zone.
fn local_day(d: &AppointmentData) -> NaiveDate {
    match d.when {
        When::AllDay { start, .. } => start,
        When::Timed { start, .. } => start.with_timezone(&d.time_zone).date_naive(),
    }
}

fn state_label(state: calsync_domain::sync::LinkState) -> &'static str {
    use calsync_domain::sync::LinkState as L;
    match state {
        L::Synced => "synced",
        L::Pending => "waiting to sync",
        L::Conflict => "conflict",
        L::Error => "error",
    }
}

/// The rows of `[start, end)`, series expanded, with their link states.
async fn rows(
    state: &AppState,
    caller: &WebCaller,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(NaiveDate, Row)>, ServiceError> {
    let actor = &caller.user.actor;
    let (items, _) = service::list_expanded(&state.db, actor, start, end, 1000, None).await?;
    let listed: Vec<Appointment> = items.iter().map(|o| o.appointment.clone()).collect();
    let (links, _) = service::sync_entries(&state.db, actor.firm_id, &listed).await?;
    let me = actor.user_id;
    Ok(items
        .into_iter()
        .map(|o| {
            let a = &o.appointment;
            let owned = a.owner_id == me;
            let occurrence = o.original_start.map(|s| s.to_string()).unwrap_or_default();
            let id = o.series_id.unwrap_or(a.id);
            let edit_href = if occurrence.is_empty() {
                format!("{PAGE}/{}/edit", a.id)
            } else {
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("occurrence", &occurrence)
                    .finish();
                format!("{PAGE}/{id}/edit?{q}")
            };
            let badges = links
                .get(&a.id)
                .or_else(|| o.series_id.and_then(|s| links.get(&s)))
                .into_iter()
                .flatten()
                .map(|e| LinkBadge {
                    provider: e.provider.as_str(),
                    provider_label: match e.provider {
                        calsync_domain::connection::Provider::Google => "Google",
                        calsync_domain::connection::Provider::Microsoft => "Outlook",
                        calsync_domain::connection::Provider::CalDav => "CalDAV",
                    },
                    state: e.state.as_str(),
                    state_label: state_label(e.state),
                    error: e.last_error.clone().unwrap_or_default(),
                })
                .collect();
            let row = Row {
                id: id.to_string(),
                title: a.data.title.clone(),
                when: describe(a),
                time_zone: a.data.time_zone.name().to_owned(),
                location: a.data.location.clone(),
                status: a.data.status.as_str(),
                owned,
                private: a.data.visibility == Visibility::Private,
                series: o.series_id.is_some(),
                occurrence,
                links: badges,
                edit_href,
            };
            (local_day(&a.data), row)
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    caller: &WebCaller,
    q: &HomeQuery,
    form: FormValues,
    notice: Option<String>,
    error: Option<String>,
    field: String,
    status: StatusCode,
) -> Response {
    let now = state.clock.now();
    let week_view = q.view.as_deref() == Some("week");
    let (appointments, days, week_label, prev_week, next_week) = if week_view {
        let anchor = q
            .week
            .as_deref()
            .and_then(|w| NaiveDate::parse_from_str(w, "%Y-%m-%d").ok())
            .unwrap_or_else(|| now.date_naive());
        let monday = anchor - Duration::days(i64::from(anchor.weekday().num_days_from_monday()));
        // Zones run from UTC-12 to UTC+14: a day early and two late catch every local day.
        let from = (monday - Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let to = (monday + Duration::days(9)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let listed = match rows(state, caller, from, to).await {
            Ok(r) => r,
            Err(e) => return error_page(e),
        };
        let mut by_day: HashMap<NaiveDate, Vec<Row>> = HashMap::new();
        for (day, row) in listed {
            by_day.entry(day).or_default().push(row);
        }
        let today = now.date_naive();
        let days = (0..7)
            .map(|i| {
                let d = monday + Duration::days(i);
                Day {
                    label: d.format("%a %-d %b").to_string(),
                    iso: d.to_string(),
                    today: d == today,
                    rows: by_day.remove(&d).unwrap_or_default(),
                }
            })
            .collect();
        let sunday = monday + Duration::days(6);
        let label = format!("{} – {}", monday.format("%-d %b"), sunday.format("%-d %b %Y"));
        let link = |d: NaiveDate| format!("{PAGE}?view=week&week={d}");
        (Vec::new(), days, label, link(monday - Duration::days(7)), link(monday + Duration::days(7)))
    } else {
        let start = now - Duration::days(1);
        let listed = match rows(state, caller, start, start + Duration::days(WINDOW_DAYS)).await {
            Ok(r) => r,
            Err(e) => return error_page(e),
        };
        (listed.into_iter().map(|(_, r)| r).collect(), Vec::new(), String::new(), String::new(), String::new())
    };
    render(
        status,
        &HomePage {
            nav: Nav::of(caller, "appointments"),
            week_view,
            window_start: (now - Duration::days(1)).format("%Y-%m-%d").to_string(),
            window_days: WINDOW_DAYS,
            appointments,
            days,
            week_label,
            prev_week,
            next_week,
            notice,
            error,
            field,
            form,
            time_zones: TIME_ZONES.as_slice(),
            repeats: REPEATS,
        },
    )
}

pub async fn home(State(state): State<AppState>, caller: WebCaller, Query(q): Query<HomeQuery>) -> Response {
    let notice = match q.notice.as_deref() {
        Some("created") => {
            Some("Appointment created. It goes out to your connected calendars at the next sync.".to_owned())
        }
        Some("saved") => Some("Appointment saved.".to_owned()),
        Some("deleted") => Some("Appointment deleted.".to_owned()),
        Some("occurrence_deleted") => Some("That occurrence was cancelled; the rest of the series stays.".to_owned()),
        _ => None,
    };
    page(&state, &caller, &q, FormValues::blank(), notice, None, String::new(), StatusCode::OK).await
}

/// Turns the browser's local `datetime-local` values into the API's input: instants with the
/// zone's offset, or dates with an exclusive end for all-day.
fn to_input(f: &ApptForm) -> Result<AppointmentInput, ValidationError> {
    let tz: Tz = calsync_domain::appointment::parse_time_zone(f.time_zone.trim())?;
    let all_day = f.all_day.is_some();
    let local = |raw: &str, field: &str| {
        NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| ValidationError::new(field, "enter a date and time"))
    };
    let start = local(&f.start, "start")?;
    let end = local(&f.end, "end")?;
    let (start, end) = if all_day {
        (start.date().to_string(), (end.date() + Duration::days(1)).to_string())
    } else {
        let instant = |t: NaiveDateTime, field: &str| {
            tz.from_local_datetime(&t)
                .earliest()
                .map(|t| t.to_rfc3339())
                .ok_or_else(|| ValidationError::new(field, format!("{t} does not exist in {tz} (clocks change then)")))
        };
        (instant(start, "start")?, instant(end, "end")?)
    };
    let recurrence = match f.repeat.as_str() {
        "" => None,
        freq @ ("DAILY" | "WEEKLY" | "MONTHLY") => {
            let count: u32 = f
                .count
                .trim()
                .parse()
                .ok()
                .filter(|n| (2..=500).contains(n))
                .ok_or_else(|| ValidationError::new("count", "repeat it from 2 to 500 times"))?;
            Some(vec![format!("RRULE:FREQ={freq};COUNT={count}")])
        }
        other => return Err(ValidationError::new("repeat", format!("{other:?} is not a choice here"))),
    };
    Ok(AppointmentInput {
        title: Some(f.title.clone()),
        location: Some(f.location.clone()),
        description: Some(f.description.clone()),
        start: Some(start),
        end: Some(end),
        time_zone: Some(tz.name().to_owned()),
        all_day: Some(all_day),
        visibility: Some(if f.private.is_some() { "private" } else { "default" }.to_owned()),
        recurrence,
        ..Default::default()
    })
}

/// "title: message" for the top of a refused form.
fn refusal(v: &ValidationError) -> String {
    format!("{}: {}", v.field.replace('_', " "), v.message)
}

pub async fn create(State(state): State<AppState>, caller: WebCaller, Form(f): Form<ApptForm>) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let result = match to_input(&f) {
        Ok(input) => service::create(&state.db, &caller.user.actor, input).await,
        Err(v) => Err(ServiceError::Validation(v)),
    };
    match result {
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=created")).into_response(),
        Err(ServiceError::Validation(v)) => {
            let q = HomeQuery::default();
            let (msg, field) = (refusal(&v), v.field.to_string());
            page(
                &state,
                &caller,
                &q,
                FormValues::from_form(&f),
                None,
                Some(msg),
                field,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => error_page(e),
    }
}

#[derive(Template)]
#[template(path = "appointment_edit.html")]
struct EditPage {
    nav: Nav,
    id: String,
    version: i64,
    occurrence: String,
    /// "Tue 2026-12-01 10:00–11:00" of the occurrence (or appointment) edited.
    when: String,
    series: bool,
    form: FormValues,
    error: Option<String>,
    field: String,
    time_zones: &'static [&'static str],
}

#[derive(Deserialize, Default)]
pub struct EditQuery {
    #[serde(default)]
    occurrence: String,
}

/// The appointment (or the occurrence `occurrence` of its series) as the edit form shows it.
async fn editable(
    state: &AppState,
    caller: &WebCaller,
    id: AppointmentId,
    occurrence: &str,
) -> Result<(Appointment, AppointmentData), ServiceError> {
    let a = service::get(&state.db, &caller.user.actor, id).await?;
    if a.owner_id != caller.user.actor.user_id {
        return Err(ServiceError::Forbidden("only the owner can change an appointment; admins can read it".into()));
    }
    if occurrence.is_empty() {
        let data = a.data.clone();
        return Ok((a, data));
    }
    let o: OriginalStart = occurrence.parse()?;
    // An occurrence edited before is an exception of its own: show what it holds now.
    let exceptions = state.db.exceptions_of(caller.user.actor.firm_id, &[a.id]).await?;
    if let Some(e) = exceptions.into_iter().find(|e| e.data.series.is_some_and(|s| s.original_start == o)) {
        return Ok((a, e.data));
    }
    let series = Series::parse(&a.data.recurrence, &a.data.when, a.data.time_zone)?;
    let data = occurrence_data(&a.data, &series, o);
    Ok((a, data))
}

pub async fn edit_page(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Query(q): Query<EditQuery>,
) -> Response {
    let Ok(id) = id.parse::<AppointmentId>() else { return error_page(ServiceError::NotFound) };
    match editable(&state, &caller, id, &q.occurrence).await {
        Ok((a, data)) => render(
            StatusCode::OK,
            &EditPage {
                nav: Nav::of(&caller, "appointments"),
                id: a.id.to_string(),
                version: a.version,
                occurrence: q.occurrence,
                when: describe_data(&data),
                series: !a.data.recurrence.is_empty(),
                form: FormValues::from_data(&data),
                error: None,
                field: String::new(),
                time_zones: TIME_ZONES.as_slice(),
            },
        ),
        Err(e) => error_page(e),
    }
}

/// Saves the edit form: the appointment, one occurrence of its series (made an exception), or
/// the whole series (then the series keeps its times: only what it says is changed).
pub async fn save(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Form(f): Form<ApptForm>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse::<AppointmentId>() else { return error_page(ServiceError::NotFound) };
    let actor = &caller.user.actor;
    let result = async {
        // Editing never changes the rule: the form does not show it.
        let mut input = to_input(&ApptForm { repeat: String::new(), ..f.clone() })?;
        if f.occurrence.is_empty() {
            let version = f.version.trim().parse::<i64>().ok();
            // The form never shows the rule: leave it as it is.
            input.recurrence = None;
            return service::update(&state.db, actor, id, version, input).await.map(|_| ());
        }
        let o: OriginalStart = f.occurrence.parse()?;
        if f.scope == "series" {
            let keep_times =
                AppointmentInput { start: None, end: None, all_day: None, time_zone: None, recurrence: None, ..input };
            service::update(&state.db, actor, id, None, keep_times).await.map(|_| ())
        } else {
            service::edit_occurrence(&state.db, actor, id, o, input).await.map(|_| ())
        }
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("{PAGE}?notice=saved")).into_response(),
        Err(ServiceError::Validation(v)) => match editable(&state, &caller, id, &f.occurrence).await {
            Ok((a, data)) => render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &EditPage {
                    nav: Nav::of(&caller, "appointments"),
                    id: a.id.to_string(),
                    version: a.version,
                    occurrence: f.occurrence.clone(),
                    when: describe_data(&data),
                    series: !a.data.recurrence.is_empty(),
                    form: FormValues::from_form(&f),
                    error: Some(refusal(&v)),
                    field: v.field.to_string(),
                    time_zones: TIME_ZONES.as_slice(),
                },
            ),
            Err(e) => error_page(e),
        },
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf_token: String,
    /// An occurrence of the series, and whether just it (`occurrence`) or the whole series goes.
    #[serde(default)]
    occurrence: String,
    #[serde(default)]
    scope: String,
}

pub async fn delete(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse::<AppointmentId>() else { return error_page(ServiceError::NotFound) };
    let actor = &caller.user.actor;
    if !f.occurrence.is_empty() && f.scope != "series" {
        let o: OriginalStart = match f.occurrence.parse() {
            Ok(o) => o,
            Err(v) => return error_page(ServiceError::Validation(v)),
        };
        return match service::cancel_occurrence(&state.db, actor, id, o).await {
            Ok(()) => Redirect::to(&format!("{PAGE}?notice=occurrence_deleted")).into_response(),
            Err(e) => error_page(e),
        };
    }
    match service::delete(&state.db, actor, id, None).await {
        Ok(()) => Redirect::to(&format!("{PAGE}?notice=deleted")).into_response(),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(start: &str, end: &str, tz: &str, all_day: bool) -> ApptForm {
        ApptForm {
            title: "T".into(),
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
            all_day: all_day.then(|| "on".into()),
            ..Default::default()
        }
    }

    #[test]
    fn local_times_take_the_zone_offset() {
        let i = to_input(&form("2026-07-01T09:00", "2026-07-01T10:00", "Europe/Berlin", false)).unwrap();
        assert_eq!(i.start.as_deref(), Some("2026-07-01T09:00:00+02:00"));
        let i = to_input(&form("2026-12-24T00:00", "2026-12-26T00:00", "UTC", true)).unwrap();
        assert_eq!((i.start.as_deref(), i.end.as_deref()), (Some("2026-12-24"), Some("2026-12-27")));
        let e = to_input(&form("2026-03-29T02:30", "2026-03-29T04:00", "Europe/Berlin", false)).unwrap_err();
        assert_eq!(e.field, "start");
        assert_eq!(to_input(&form("", "x", "UTC", false)).unwrap_err().field, "start");
        assert_eq!(to_input(&form("", "", "Nowhere/Else", false)).unwrap_err().field, "time_zone");
    }

    #[test]
    fn repeats_become_a_counted_rule() {
        let mut f = form("2026-07-01T09:00", "2026-07-01T10:00", "UTC", false);
        assert_eq!(to_input(&f).unwrap().recurrence, None);
        f.repeat = "WEEKLY".into();
        f.count = "6".into();
        assert_eq!(to_input(&f).unwrap().recurrence, Some(vec!["RRULE:FREQ=WEEKLY;COUNT=6".to_owned()]));
        f.count = "1".into();
        assert_eq!(to_input(&f).unwrap_err().field, "count");
        f.repeat = "HOURLY".into();
        assert_eq!(to_input(&f).unwrap_err().field, "repeat");
    }

    #[test]
    fn the_form_shows_an_appointment_in_its_zone() {
        let input = to_input(&form("2026-07-01T09:00", "2026-07-01T10:30", "Europe/Berlin", false)).unwrap();
        let v = FormValues::from_data(&AppointmentData::create(input).unwrap());
        assert_eq!(
            (v.start.as_str(), v.end.as_str(), v.time_zone.as_str()),
            ("2026-07-01T09:00", "2026-07-01T10:30", "Europe/Berlin")
        );
        let input = to_input(&form("2026-12-24T00:00", "2026-12-26T00:00", "UTC", true)).unwrap();
        let v = FormValues::from_data(&AppointmentData::create(input).unwrap());
        assert_eq!((v.start.as_str(), v.end.as_str(), v.all_day), ("2026-12-24T00:00", "2026-12-26T00:00", true));
    }
}
