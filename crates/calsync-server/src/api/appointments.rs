//! `/api/appointments/`: thin handlers that parse, call the appointments service and map errors.

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::parse_id;
use crate::auth::ApiCaller;
use crate::services::appointments as service;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use calsync_domain::ValidationError;
use calsync_domain::appointment::{Appointment, AppointmentInput, AttendeeInput};
use calsync_domain::recurrence::OriginalStart;
use calsync_store::{AppointmentQuery, Cursor};
use chrono::{DateTime, NaiveDate, Utc};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/appointments/", get(list).post(create))
        .route("/api/appointments/{id}/", get(show).patch(update).delete(remove))
        .route(
            "/api/appointments/{id}/occurrences/{original_start}/",
            axum::routing::patch(edit_occurrence).delete(cancel_occurrence),
        )
        .route("/api/appointments/{id}/split/", axum::routing::post(split))
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusSchema {
    Confirmed,
    Tentative,
    Cancelled,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendeeBody {
    #[schema(example = "client@example.com")]
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Their answer: `needs_action`, `accepted`, `declined` or `tentative`. Pulled from the
    /// calendars; when left out on a write, an attendee already listed keeps theirs.
    #[serde(default)]
    pub response: Option<String>,
}

/// Fields of an appointment as sent by clients. On `POST`, `title`, `start` and `end` are required;
/// on `PATCH` every field is optional and only the given ones change (arrays are replaced whole).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentBody {
    /// 1–500 characters.
    #[schema(example = "Initial consultation")]
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    /// RFC 3339 with offset (`2026-12-01T09:00:00+01:00`), or `YYYY-MM-DD` when `all_day` is true.
    #[schema(example = "2026-12-01T09:00:00+01:00")]
    pub start: Option<String>,
    /// Like `start`; must be after it. For all-day appointments the date is exclusive.
    #[schema(example = "2026-12-01T10:00:00+01:00")]
    pub end: Option<String>,
    /// IANA zone name; default `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: Option<String>,
    pub all_day: Option<bool>,
    pub attendees: Option<Vec<AttendeeBody>>,
    #[schema(value_type = Option<StatusSchema>)]
    pub status: Option<String>,
    /// `default` or `private` (only the owner sees the details; others see that the time is taken).
    pub visibility: Option<String>,
    /// `busy` (default) or `free`: whether the time counts as taken in free/busy views.
    pub show_as: Option<String>,
    /// Whether pushing it to calendars may e-mail its attendees (default `false`: nobody is
    /// mailed; on Outlook the attendees are then listed in the body instead of invited).
    pub send_invitations: Option<bool>,
    /// RFC 5545 lines as Google takes them: one `RRULE:` (FREQ DAILY/WEEKLY/MONTHLY/YEARLY,
    /// INTERVAL, COUNT or UNTIL, BYDAY with ordinals, BYMONTHDAY, BYMONTH, BYSETPOS, WKST) and
    /// any `EXDATE` lines, evaluated in `time_zone`. The start must be the rule's first
    /// occurrence. `[]` makes a series a single appointment.
    #[schema(example = json!(["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10"]))]
    pub recurrence: Option<Vec<String>>,
}

impl From<AppointmentBody> for AppointmentInput {
    fn from(b: AppointmentBody) -> Self {
        AppointmentInput {
            title: b.title,
            description: b.description,
            location: b.location,
            start: b.start,
            end: b.end,
            time_zone: b.time_zone,
            all_day: b.all_day,
            attendees: b.attendees.map(|list| {
                list.into_iter().map(|a| AttendeeInput { email: a.email, name: a.name, response: a.response }).collect()
            }),
            status: b.status,
            visibility: b.visibility,
            show_as: b.show_as,
            send_invitations: b.send_invitations,
            recurrence: b.recurrence,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub location: String,
    /// In the appointment's zone, or a date for all-day appointments.
    pub start: String,
    pub end: String,
    pub time_zone: String,
    pub all_day: bool,
    pub attendees: Vec<AttendeeBody>,
    pub status: StatusSchema,
    /// `default` or `private`.
    pub visibility: String,
    /// `busy` or `free`.
    pub show_as: String,
    /// Whether pushes may e-mail the attendees.
    pub send_invitations: bool,
    /// Set when someone else organises it (an invitation pulled from a calendar): their
    /// e-mail. Then only `visibility`, `show_as` and `send_invitations` can be changed here.
    pub organizer: Option<String>,
    /// A series master's RFC 5545 lines; empty otherwise.
    pub recurrence: Vec<String>,
    /// On an exception or an expanded occurrence: the series master's id.
    pub series_id: Option<Uuid>,
    /// On an exception or an expanded occurrence: when the rule started this occurrence
    /// (`2027-03-22T09:00:00Z`, or a date for all-day series); the key for
    /// `/api/appointments/{series_id}/occurrences/{original_start}/`.
    pub original_start: Option<String>,
    /// The staff user who owns the appointment.
    pub owner: Uuid,
    /// Bumped on every change; send it back in `If-Match` to update only that version.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `"calsync"` when made here, else where it was pulled from:
    /// `{"connection": id, "calendar": provider calendar id, "calendar_name"}`.
    #[schema(value_type = Object)]
    pub origin: serde_json::Value,
    /// Its state on each connection it syncs to.
    pub sync: Vec<SyncLinkView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncLinkView {
    pub connection: Uuid,
    /// `google` or `microsoft`.
    pub provider: String,
    /// `synced`, `pending` (changed here, not yet sent), `conflict` (see `/api/calendar/conflicts/`)
    /// or `error` (see `last_error`).
    pub state: String,
    pub last_error: Option<String>,
}

impl AppointmentView {
    fn with_sync(mut self, entries: Option<&Vec<service::SyncEntry>>, origin: Option<&service::OriginInfo>) -> Self {
        self.sync = entries
            .into_iter()
            .flatten()
            .map(|e| SyncLinkView {
                connection: e.connection.as_uuid(),
                provider: e.provider.as_str().to_owned(),
                state: e.state.as_str().to_owned(),
                last_error: e.last_error.clone(),
            })
            .collect();
        if let Some(o) = origin {
            self.origin = serde_json::json!({
                "connection": o.connection.as_uuid(),
                "calendar": o.calendar.as_ref().map(|c| &c.0),
                "calendar_name": o.calendar.as_ref().map(|c| &c.1),
            });
        }
        self
    }
}

/// Views with their sync state, in one round of lookups for the whole page. A private
/// appointment shows its details to its owner only: anyone else (an admin) sees "Busy".
async fn views(
    state: &AppState,
    actor: &calsync_domain::tenant::Actor,
    items: &[Appointment],
) -> Result<Vec<AppointmentView>, ApiError> {
    let (entries, origins) = service::sync_entries(&state.db, actor.firm_id, items).await?;
    Ok(items
        .iter()
        .map(|a| {
            // Private details were already withheld by the service for anyone but the owner.
            AppointmentView::from(a).with_sync(entries.get(&a.id), origins.get(&a.id))
        })
        .collect())
}

impl From<&Appointment> for AppointmentView {
    fn from(a: &Appointment) -> Self {
        use calsync_domain::appointment::AppointmentStatus as S;
        AppointmentView {
            id: a.id.as_uuid(),
            title: a.data.title.clone(),
            description: a.data.description.clone(),
            location: a.data.location.clone(),
            start: a.data.start_string(),
            end: a.data.end_string(),
            time_zone: a.data.time_zone.name().to_owned(),
            all_day: a.data.is_all_day(),
            attendees: a
                .data
                .attendees
                .iter()
                .map(|x| AttendeeBody {
                    email: x.email.clone(),
                    name: Some(x.name.clone()),
                    response: Some(x.response.as_str().to_owned()),
                })
                .collect(),
            status: match a.data.status {
                S::Confirmed => StatusSchema::Confirmed,
                S::Tentative => StatusSchema::Tentative,
                S::Cancelled => StatusSchema::Cancelled,
            },
            visibility: a.data.visibility.as_str().to_owned(),
            show_as: a.data.show_as.as_str().to_owned(),
            send_invitations: a.data.send_invitations,
            organizer: a.data.organizer.clone(),
            recurrence: a.data.recurrence.clone(),
            series_id: a.data.series.map(|s| s.master.as_uuid()),
            original_start: a.data.series.map(|s| s.original_start.to_string()),
            owner: a.owner_id.as_uuid(),
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
            origin: serde_json::Value::String("calsync".into()),
            sync: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentList {
    pub items: Vec<AppointmentView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of the list (documented here; parsed strictly by hand so each error names
/// its parameter).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Only appointments ending after this instant (RFC 3339, or a date meaning 00:00 UTC).
    start: Option<String>,
    /// Only appointments starting before this instant.
    end: Option<String>,
    /// Page size, 1–500 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `true`: series come as their occurrences in the window (each with `series_id` and
    /// `original_start`; cancelled ones left out) rather than as masters. Needs `start` and `end`.
    expand: Option<bool>,
}

async fn item_response(
    state: &AppState,
    actor: &calsync_domain::tenant::Actor,
    status: StatusCode,
    a: &Appointment,
) -> Result<Response, ApiError> {
    let view = views(state, actor, std::slice::from_ref(a)).await?.pop().expect("one view per item");
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", a.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `If-Match: "3"` (or `*`, meaning any version).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(None);
    }
    s.trim_start_matches("W/").trim_matches('"').parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "invalid_header",
            "If-Match",
            "If-Match must be the quoted version from the ETag, e.g. \"3\"",
        )
    })
}

/// A window bound: an RFC 3339 instant or a date (midnight UTC). Years are 0001–9999 and
/// written with four digits: chrono also reads `+12345-01-01`, which SQLite's text
/// comparison of stored instants would then order wrongly.
fn parse_bound(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let four_digit_year = raw.len() >= 4 && raw.as_bytes()[..4].iter().all(u8::is_ascii_digit);
    let parsed = if !four_digit_year {
        None
    } else if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        Some(t.with_timezone(&Utc))
    } else if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Some(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
    } else {
        None
    };
    match parsed {
        Some(t) if (1..=9999).contains(&chrono::Datelike::year(&t)) => Ok(t),
        Some(_) => Err(ApiError::bad_request("invalid_parameter", name, "year must be between 0001 and 9999")),
        None => Err(ApiError::bad_request(
            "invalid_parameter",
            name,
            format!("{raw:?} is not an RFC 3339 date-time or a date (YYYY-MM-DD)"),
        )),
    }
}

fn encode_cursor(c: &Cursor) -> String {
    BASE64URL_NOPAD.encode(format!("{}|{}", c.start_utc.to_rfc3339(), c.id).as_bytes())
}

fn decode_cursor(raw: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::bad_request("invalid_parameter", "cursor", "not a cursor returned by this API");
    let bytes = BASE64URL_NOPAD.decode(raw.as_bytes()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (t, id) = text.split_once('|').ok_or_else(bad)?;
    Ok(Cursor {
        start_utc: DateTime::parse_from_rfc3339(t).map_err(|_| bad())?.with_timezone(&Utc),
        id: id.parse().map_err(|_| bad())?,
    })
}

fn parse_list_query(raw: Option<&str>) -> Result<(AppointmentQuery, bool), ApiError> {
    let mut q = AppointmentQuery { limit: DEFAULT_LIMIT, ..Default::default() };
    let mut expand = false;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "expand" => {
                expand = match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::bad_request("invalid_parameter", "expand", "must be true or false")),
                }
            }
            "start" => q.start = Some(parse_bound("start", &value)?),
            "end" => q.end = Some(parse_bound("end", &value)?),
            "limit" => {
                q.limit = value.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?
            }
            "cursor" => q.after = Some(decode_cursor(&value)?),
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    other,
                    "unknown query parameter; allowed: start, end, limit, cursor, expand",
                ));
            }
        }
    }
    if let (Some(s), Some(e)) = (q.start, q.end)
        && e <= s
    {
        return Err(ApiError::bad_request("invalid_parameter", "end", "must be after start"));
    }
    if expand {
        for (name, given) in [("start", q.start.is_some()), ("end", q.end.is_some())] {
            if !given {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    name,
                    "is required with expand=true: series have no end to list to",
                ));
            }
        }
    }
    Ok((q, expand))
}

/// List appointments overlapping a window, ordered by start. Staff see their own; admins the firm's.
#[utoipa::path(get, path = "/api/appointments/", tag = "appointments", params(ListParams),
    responses(
        (status = 200, body = AppointmentList),
        (status = 400, body = ErrorBody, description = "bad parameter"),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(raw): RawQuery,
) -> Result<Json<AppointmentList>, ApiError> {
    let (query, expand) = parse_list_query(raw.as_deref())?;
    if expand {
        let (start, end) = (query.start.expect("checked"), query.end.expect("checked"));
        let (items, next) =
            service::list_expanded(&state.db, &caller.actor, start, end, query.limit as usize, query.after).await?;
        let appointments: Vec<Appointment> = items.iter().map(|o| o.appointment.clone()).collect();
        let mut views = views(&state, &caller.actor, &appointments).await?;
        for (v, o) in views.iter_mut().zip(&items) {
            v.series_id = o.series_id.map(|s| s.as_uuid());
            v.original_start = o.original_start.map(|s| s.to_string());
        }
        return Ok(Json(AppointmentList { items: views, next_cursor: next.as_ref().map(encode_cursor) }));
    }
    let page = service::list(&state.db, &caller.actor, query).await?;
    Ok(Json(AppointmentList {
        items: views(&state, &caller.actor, &page.items).await?,
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

/// Create an appointment owned by the caller.
#[utoipa::path(post, path = "/api/appointments/", tag = "appointments", request_body = AppointmentBody,
    responses(
        (status = 201, body = AppointmentView, headers(("ETag" = String), ("Location" = String))),
        (status = 400, body = ErrorBody, description = "malformed JSON or unknown field"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a field breaks a rule; `field` names it"),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<AppointmentBody>,
) -> Result<Response, ApiError> {
    let a = service::create(&state.db, &caller.actor, body.into()).await?;
    let mut resp = item_response(&state, &caller.actor, StatusCode::CREATED, &a).await?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/appointments/{}/", a.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Read one appointment.
#[utoipa::path(get, path = "/api/appointments/{id}/", tag = "appointments",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AppointmentView, headers(("ETag" = String))), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let a = service::get(&state.db, &caller.actor, parse_id(&id)?).await?;
    item_response(&state, &caller.actor, StatusCode::OK, &a).await
}

/// Change some fields of an appointment the caller owns.
#[utoipa::path(patch, path = "/api/appointments/{id}/", tag = "appointments", request_body = AppointmentBody,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "only update this version")),
    responses(
        (status = 200, body = AppointmentView, headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "not the owner"),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AppointmentBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let a = service::update(&state.db, &caller.actor, id, if_match(&headers)?, body.into()).await?;
    item_response(&state, &caller.actor, StatusCode::OK, &a).await
}

/// Delete an appointment the caller owns. The deletion reaches linked calendars on the next sync.
#[utoipa::path(delete, path = "/api/appointments/{id}/", tag = "appointments",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    service::delete(&state.db, &caller.actor, id, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_original_start(raw: &str) -> Result<OriginalStart, ApiError> {
    raw.parse::<OriginalStart>().map_err(|e| ApiError::bad_request("invalid_parameter", "original_start", e.message))
}

/// Change one occurrence of a series: it becomes (or already is) an exception, an appointment
/// of its own with `series_id` and `original_start`. Fields as in `PATCH /api/appointments/{id}/`.
#[utoipa::path(patch, path = "/api/appointments/{id}/occurrences/{original_start}/", tag = "appointments",
    request_body = AppointmentBody,
    params(("id" = Uuid, Path, description = "the series master"),
           ("original_start" = String, Path, description = "`2027-03-22T09:00:00Z`, or a date for all-day series")),
    responses(
        (status = 201, body = AppointmentView, description = "the occurrence became an exception"),
        (status = 200, body = AppointmentView, description = "the exception changed"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "not a series, no such occurrence, or a field breaks a rule"),
    ),
    security(("bearer" = [])))]
pub async fn edit_occurrence(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path((id, original)): Path<(String, String)>,
    ApiJson(body): ApiJson<AppointmentBody>,
) -> Result<Response, ApiError> {
    let (id, original) = (parse_id(&id)?, parse_original_start(&original)?);
    let (a, created) = service::edit_occurrence(&state.db, &caller.actor, id, original, body.into()).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    item_response(&state, &caller.actor, status, &a).await
}

/// Cancel one occurrence of a series (it stays as a cancelled exception, which hides it).
#[utoipa::path(delete, path = "/api/appointments/{id}/occurrences/{original_start}/", tag = "appointments",
    params(("id" = Uuid, Path, description = "the series master"), ("original_start" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_occurrence(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path((id, original)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (id, original) = (parse_id(&id)?, parse_original_start(&original)?);
    service::cancel_occurrence(&state.db, &caller.actor, id, original).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    /// The first occurrence of the new series (an `original_start`).
    #[schema(example = "2027-04-05T08:00:00Z")]
    pub from: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SplitView {
    /// The series as it is now: ending before `from`.
    pub ended: AppointmentView,
    /// The new series, from `from` on, with the exceptions from there.
    pub started: AppointmentView,
}

/// "This and following": end the series before `from` and start a new one there, as Google's
/// own UI does.
#[utoipa::path(post, path = "/api/appointments/{id}/split/", tag = "appointments", request_body = SplitBody,
    params(("id" = Uuid, Path, description = "the series master")),
    responses((status = 201, body = SplitView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn split(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SplitBody>,
) -> Result<(StatusCode, Json<SplitView>), ApiError> {
    let id = parse_id(&id)?;
    let from = body
        .from
        .parse::<OriginalStart>()
        .map_err(|e| ApiError::Validation(ValidationError::new("from", e.message)))?;
    let (ended, started) = service::split(&state.db, &caller.actor, id, from).await?;
    let mut v = views(&state, &caller.actor, &[ended, started]).await?;
    let started = v.pop().expect("two views");
    let ended = v.pop().expect("two views");
    Ok((StatusCode::CREATED, Json(SplitView { ended, started })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use calsync_domain::ids::AppointmentId;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { start_utc: "2026-12-01T09:00:00Z".parse().unwrap(), id: AppointmentId::new() };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&BASE64URL_NOPAD.encode(b"x|y")).is_err());
    }

    #[test]
    fn list_query_is_strict() {
        assert_eq!(parse_list_query(None).unwrap().0.limit, DEFAULT_LIMIT);
        let (q, expand) =
            parse_list_query(Some("start=2026-12-01&end=2026-12-02T00:00:00%2B01:00&limit=5&expand=true")).unwrap();
        assert_eq!((q.limit, expand), (5, true));
        assert_eq!(q.end.unwrap().to_rfc3339(), "2026-12-01T23:00:00+00:00");
        for bad in [
            "limit=0",
            "limit=501",
            "limit=x",
            "start=tomorrow",
            "colour=red",
            "start=2026-12-02&end=2026-12-01",
            "start=%2B12345-01-01",
            "start=12345-01-01",
            "end=0000-01-01",
            "start=-0001-01-01T00:00:00Z",
            "expand=yes",
            "expand=true&start=2026-12-01",
            "expand=true&end=2026-12-01",
        ] {
            assert!(parse_list_query(Some(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn if_match_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h).unwrap(), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"3\""));
        assert_eq!(if_match(&h).unwrap(), Some(3));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&h).unwrap(), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(if_match(&h).is_err());
    }
}
