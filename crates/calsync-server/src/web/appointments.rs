//! The appointments page: what is coming up, a form to add one, and deletion.

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
use calsync_domain::appointment::{Appointment, AppointmentData, AppointmentInput, When};
use calsync_domain::ids::AppointmentId;
use calsync_store::AppointmentQuery;
use chrono::{Duration, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use std::sync::LazyLock;

const WINDOW_DAYS: i64 = 60;

static TIME_ZONES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect());

struct Row {
    id: String,
    title: String,
    when: String,
    time_zone: String,
    location: String,
    status: &'static str,
    owned: bool,
    owner_note: String,
}

#[derive(Default, Deserialize)]
pub struct NewForm {
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
}

struct FormValues {
    title: String,
    start: String,
    end: String,
    time_zone: String,
    all_day: bool,
    location: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    window_start: String,
    window_days: i64,
    appointments: Vec<Row>,
    notice: Option<String>,
    error: Option<String>,
    form: FormValues,
    time_zones: &'static [&'static str],
}

#[derive(Deserialize)]
pub struct HomeQuery {
    notice: Option<String>,
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

async fn page(
    state: &AppState,
    caller: &WebCaller,
    form: FormValues,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let start = state.clock.now() - Duration::days(1);
    let query = AppointmentQuery {
        start: Some(start),
        end: Some(start + Duration::days(WINDOW_DAYS)),
        limit: 500,
        ..Default::default()
    };
    let list = match service::list(&state.db, &caller.user.actor, query).await {
        Ok(p) => p.items,
        Err(e) => return error_page(e),
    };
    let me = caller.user.actor.user_id;
    let appointments = list
        .iter()
        .map(|a| Row {
            id: a.id.to_string(),
            title: a.data.title.clone(),
            when: describe(a),
            time_zone: a.data.time_zone.name().to_owned(),
            location: a.data.location.clone(),
            status: a.data.status.as_str(),
            owned: a.owner_id == me,
            owner_note: "a colleague's appointment".to_owned(),
        })
        .collect();
    render(
        status,
        &HomePage {
            nav: Nav::of(caller, "appointments"),
            window_start: start.format("%Y-%m-%d").to_string(),
            window_days: WINDOW_DAYS,
            appointments,
            notice,
            error,
            form,
            time_zones: TIME_ZONES.as_slice(),
        },
    )
}

fn blank_form() -> FormValues {
    FormValues {
        title: String::new(),
        start: String::new(),
        end: String::new(),
        time_zone: "UTC".into(),
        all_day: false,
        location: String::new(),
    }
}

pub async fn home(State(state): State<AppState>, caller: WebCaller, Query(q): Query<HomeQuery>) -> Response {
    let notice = match q.notice.as_deref() {
        Some("created") => Some("Appointment created.".to_owned()),
        Some("deleted") => Some("Appointment deleted.".to_owned()),
        _ => None,
    };
    page(&state, &caller, blank_form(), notice, None, StatusCode::OK).await
}

/// Turns the browser's local `datetime-local` values into the API's input: instants with the
/// zone's offset, or dates with an exclusive end for all-day.
fn to_input(f: &NewForm) -> Result<AppointmentInput, ValidationError> {
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
    Ok(AppointmentInput {
        title: Some(f.title.clone()),
        location: Some(f.location.clone()),
        start: Some(start),
        end: Some(end),
        time_zone: Some(tz.name().to_owned()),
        all_day: Some(all_day),
        ..Default::default()
    })
}

pub async fn create(State(state): State<AppState>, caller: WebCaller, Form(f): Form<NewForm>) -> Response {
    if !csrf_ok(&caller, &f.csrf_token) {
        return csrf_rejected();
    }
    let result = match to_input(&f) {
        Ok(input) => service::create(&state.db, &caller.user.actor, input).await,
        Err(v) => Err(ServiceError::Validation(v)),
    };
    match result {
        Ok(_) => Redirect::to("/?notice=created").into_response(),
        Err(ServiceError::Validation(v)) => {
            let form = FormValues {
                title: f.title,
                start: f.start,
                end: f.end,
                time_zone: f.time_zone,
                all_day: f.all_day.is_some(),
                location: f.location,
            };
            let label = v.field.replace('_', " ");
            page(&state, &caller, form, None, Some(format!("{label}: {}", v.message)), StatusCode::UNPROCESSABLE_ENTITY)
                .await
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf_token: String,
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
    match service::delete(&state.db, &caller.user.actor, id, None).await {
        Ok(()) => Redirect::to("/?notice=deleted").into_response(),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(start: &str, end: &str, tz: &str, all_day: bool) -> NewForm {
        NewForm {
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
}
