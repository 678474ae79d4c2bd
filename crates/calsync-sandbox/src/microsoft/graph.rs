//! Graph v1.0 calendar: the routes, `/me` and calendars, the stored event model, property
//! validation and `Prefer` handling. Event writes live in `events`, listings in `listing`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};
use super::identity::GraphAuth;
use super::listing::Mode;
use super::render::Look;
use super::{MsCalendar, MsWorld, events, listing, meetings, series, subscriptions, tz};
use crate::state::Shared;

pub(super) const READ: &[&str] =
    &["Calendars.Read", "Calendars.ReadWrite", "Calendars.Read.Shared", "Calendars.ReadWrite.Shared"];
pub(super) const WRITE: &[&str] = &["Calendars.ReadWrite", "Calendars.ReadWrite.Shared"];
const USER: &[&str] = &["User.Read", "User.ReadBasic.All"];
pub(super) const DEFAULT_PAGE: usize = 10;
pub(super) const MAX_PAGE: usize = 1000;

pub(super) fn routes(r: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    let g = "/microsoft/graph/v1.0";
    r.route(&format!("{g}/me"), get(me))
        .route(&format!("{g}/me/calendars"), get(list_calendars))
        .route(&format!("{g}/me/calendar"), get(default_calendar))
        .route(&format!("{g}/me/calendars/{{cal}}"), get(get_calendar))
        .route(&format!("{g}/me/events"), listing::route(Mode::Events).post(events::create_default))
        .route(&format!("{g}/me/calendars/{{cal}}/events"), listing::route(Mode::Events).post(events::create))
        .route(
            &format!("{g}/me/events/{{id}}"),
            get(events::get_event).patch(events::patch_event).delete(events::delete_event),
        )
        .route(&format!("{g}/me/events/{{id}}/instances"), listing::route(Mode::Instances))
        .route(&format!("{g}/me/events/{{id}}/cancel"), post(events::cancel_event))
        .route(&format!("{g}/me/events/{{id}}/accept"), post(meetings::respond_event))
        .route(&format!("{g}/me/events/{{id}}/tentativelyAccept"), post(meetings::respond_event))
        .route(&format!("{g}/me/events/{{id}}/decline"), post(meetings::respond_event))
        .route(&format!("{g}/me/calendarView"), listing::route(Mode::View))
        .route(&format!("{g}/subscriptions"), get(subscriptions::list).post(subscriptions::create))
        .route(
            &format!("{g}/subscriptions/{{id}}"),
            get(subscriptions::get_one).patch(subscriptions::patch).delete(subscriptions::delete),
        )
        .route(&format!("{g}/subscriptions/{{id}}/reauthorize"), post(subscriptions::reauthorize))
        .route(&format!("{g}/me/calendars/{{cal}}/calendarView"), listing::route(Mode::View))
        .route(&format!("{g}/me/calendarView/delta"), listing::route(Mode::Delta))
        .route(&format!("{g}/me/calendars/{{cal}}/calendarView/delta"), listing::route(Mode::Delta))
        // OData function-call form, as the Graph SDKs send it; real Graph accepts both.
        .route(&format!("{g}/me/calendarView/delta()"), listing::route(Mode::Delta))
        .route(&format!("{g}/me/calendars/{{cal}}/calendarView/delta()"), listing::route(Mode::Delta))
}

/// The stored event: client-settable properties (validated) plus server-owned state.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct GEvent {
    pub(super) props: Map<String, Value>,
    pub(super) id: String,
    pub(super) change_key: String,
    pub(super) created_ms: i64,
    pub(super) ical_uid: String,
    pub(super) all_day: bool,
    /// Set on occurrences and exceptions: the series they belong to.
    pub(super) link: Option<Link>,
    /// Set on the mailbox's copy of a meeting someone else organises.
    pub(super) invite: Option<Invite>,
    /// Change position of the event's creation: delta rounds that began earlier saw it.
    pub(super) born_seq: u64,
    /// Masters only: the last [`series::HISTORY_KEPT`] earlier versions whose series
    /// differed, each with the change position that ended it, so delta can tell a client
    /// which occurrences it saw are gone. Only what that needs is kept (never a whole event,
    /// whose own history would nest and double the state file with every edit).
    pub(super) history: Arc<Vec<(u64, PastSeries)>>,
    /// Change position up to which older versions were dropped from `history`: a delta
    /// round begun before it cannot be answered any more (410).
    #[serde(default)]
    pub(super) history_floor: u64,
}

/// An earlier version of a series as delta needs it. Reads the `props` of a whole stored
/// event too (other fields ignored), so state files whose history held whole events load.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct PastSeries {
    /// `start`, `end`, `recurrence` and `isAllDay` of that version.
    pub(super) props: Map<String, Value>,
}

impl PastSeries {
    /// What delta needs of `ev`: the properties that place its occurrences in time.
    pub(super) fn of(ev: &GEvent) -> Self {
        let props = ["start", "end", "recurrence", "isAllDay"]
            .iter()
            .filter_map(|k| ev.props.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        Self { props }
    }
}

/// The attendee's side of a meeting organised elsewhere.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct Invite {
    /// `emailAddress` of the organizer: `{name, address}`.
    pub organizer: Value,
    /// `responseStatus`: `{response, time}`.
    pub response: Value,
    /// The organizer cancelled the meeting.
    pub cancelled: bool,
}

#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct Link {
    pub master: String,
    /// Original start of the occurrence (epoch ms): Graph's `originalStart`.
    pub original_ms: i64,
    /// `exception` (stored, edited or cancelled) rather than a plain `occurrence`.
    pub exception: bool,
    /// The occurrence in series terms (what its opaque id stands for).
    pub occ: crate::recurrence::Occ,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Parsed for validation only.
struct EventInput {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    subject: Option<String>,
    body: Option<ItemBody>,
    start: Option<DateTimeTimeZone>,
    end: Option<DateTimeTimeZone>,
    is_all_day: Option<bool>,
    location: Option<Value>,
    locations: Option<Vec<Value>>,
    attendees: Option<Vec<Value>>,
    categories: Option<Vec<String>>,
    show_as: Option<String>,
    sensitivity: Option<String>,
    importance: Option<String>,
    is_reminder_on: Option<bool>,
    reminder_minutes_before_start: Option<i64>,
    transaction_id: Option<String>,
    single_value_extended_properties: Option<Vec<ExtProp>>,
    recurrence: Option<Value>,
    is_online_meeting: Option<bool>,
    online_meeting_provider: Option<String>,
    response_requested: Option<bool>,
    allow_new_time_proposals: Option<bool>,
    hide_attendees: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct ItemBody {
    content_type: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DateTimeTimeZone {
    date_time: String,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ExtProp {
    id: String,
    value: String,
}

pub(super) fn respond(r: GraphResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `Prefer` preferences: `outlook.timezone`, `outlook.body-content-type` and
/// `odata.maxpagesize`.
pub(super) struct Prefer {
    pub(super) tz: Option<(String, Tz)>,
    pub(super) page: Option<usize>,
    /// `outlook.body-content-type="text"`; `html` (the default) leaves it false.
    pub(super) text_body: Option<bool>,
}

pub(super) fn prefer(headers: &HeaderMap) -> GraphResult<Prefer> {
    let mut p = Prefer { tz: None, page: None, text_body: None };
    for value in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
        for part in value.split(',').map(str::trim) {
            if let Some(rest) = part.strip_prefix("outlook.timezone=") {
                let name = rest.trim_matches('"');
                let zone = tz::resolve(name).ok_or_else(|| tz_unsupported(name))?;
                p.tz = Some((name.to_owned(), zone));
            } else if let Some(n) = part.strip_prefix("odata.maxpagesize=") {
                p.page = n.trim_matches('"').parse().ok();
            } else if let Some(kind) = part.strip_prefix("outlook.body-content-type=") {
                match kind.trim_matches('"').to_ascii_lowercase().as_str() {
                    "text" => p.text_body = Some(true),
                    "html" => p.text_body = Some(false),
                    _ => {}
                }
            }
        }
    }
    Ok(p)
}

/// How events are rendered for this request and mailbox.
pub(super) fn look(microsoft: &MsWorld, auth: &GraphAuth, pref: &Prefer, expand: Option<String>) -> Look {
    Look {
        owner: auth.email.clone(),
        zone: pref.tz.clone(),
        text_body: pref.text_body.unwrap_or(false),
        expand,
        custom_zone: microsoft.accounts.get(&auth.email).and_then(|a| a.custom_zone.clone()),
    }
}

pub(super) fn tz_unsupported(name: &str) -> GraphError {
    GraphError::new(
        400,
        "TimeZoneNotSupportedException",
        &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."),
    )
}

pub(super) fn with_preference(mut resp: Response, p: &Prefer) -> Response {
    let mut applied = Vec::new();
    if let Some((name, _)) = &p.tz {
        applied.push(format!("outlook.timezone=\"{name}\""));
    }
    if let Some(n) = p.page {
        applied.push(format!("odata.maxpagesize={n}"));
    }
    if let Some(text) = p.text_body {
        applied.push(format!("outlook.body-content-type=\"{}\"", if text { "text" } else { "html" }));
    }
    if !applied.is_empty()
        && let Ok(v) = HeaderValue::from_str(&applied.join(", "))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    resp
}

/// Graph's `dateTime` shape: no offset, seven fractional digits.
pub(super) fn graph_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m-%dT%H:%M:%S.0000000").to_string()
}

pub(super) fn utc_stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_dtz(d: &DateTimeTimeZone) -> GraphResult<(DateTime<Utc>, Tz, String, NaiveDateTime)> {
    let name = d.time_zone.clone().unwrap_or_else(|| "UTC".into());
    let zone = tz::resolve(&name).ok_or_else(|| tz_unsupported(&name))?;
    let naive = NaiveDateTime::parse_from_str(&d.date_time, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| {
        GraphError::bad_request(&format!(
            "Cannot convert the literal '{}' to the expected type 'Edm.DateTime'.",
            d.date_time
        ))
    })?;
    Ok((crate::google::resolve_local(naive, zone), zone, name, naive))
}

/// Validates merged properties and returns `(start_ms, end_ms, all_day)`. A `recurrence`
/// (only allowed when `allow_recurrence`, i.e. not on occurrences) is validated and
/// replaced by its normalized form.
pub(super) fn check(props: &mut Map<String, Value>, allow_recurrence: bool) -> GraphResult<(i64, i64, bool)> {
    let input: EventInput = serde_json::from_value(Value::Object(props.clone()))
        .map_err(|e| GraphError::new(400, "RequestBodyRead", &format!("Invalid request body: {e}")))?;
    let (Some(start), Some(end)) = (&input.start, &input.end) else {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The start and end time must be specified.",
        ));
    };
    let (s, s_zone, s_name, s_naive) = parse_dtz(start)?;
    if let Some(rec) = input.recurrence.as_ref().filter(|r| !r.is_null()) {
        if !allow_recurrence {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. An occurrence or exception cannot have a recurrence.",
            ));
        }
        let (normalized, _) = series::parse(rec, s_naive, &(s_name.clone(), s_zone))?;
        props.insert("recurrence".into(), normalized);
    }
    let (e, _, e_name, e_naive) = parse_dtz(end)?;
    if e < s {
        return Err(GraphError::new(400, "ErrorInvalidRequest", "The end time must be later than the start time."));
    }
    let all_day = input.is_all_day.unwrap_or(false);
    if all_day {
        let midnight = |n: NaiveDateTime| n.time().num_seconds_from_midnight() == 0 && n.nanosecond() == 0;
        if !midnight(s_naive) || !midnight(e_naive) || s_name != e_name || e <= s {
            return Err(GraphError::new(
                400,
                "ErrorPropertyValidationFailure",
                "Your request can't be completed. If the event is an all-day event, the start and end time must be midnight in the same time zone.",
            ));
        }
    }
    for (field, allowed) in [
        (&input.show_as, &["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"][..]),
        (&input.sensitivity, &["normal", "personal", "private", "confidential"][..]),
        (&input.importance, &["low", "normal", "high"][..]),
    ] {
        if let Some(v) = field
            && !allowed.contains(&v.as_str())
        {
            return Err(GraphError::new(400, "RequestBodyRead", &format!("Requested value '{v}' was not found.")));
        }
    }
    if let Some(list) = &input.attendees {
        if list.len() > 500 {
            return Err(GraphError::new(400, "ErrorInvalidRequest", "An event can have at most 500 attendees."));
        }
        for a in list {
            if let Some(t) = a.get("type").filter(|t| !t.is_null()) {
                let t = t.as_str().unwrap_or_default();
                if !["required", "optional", "resource"].contains(&t) {
                    return Err(GraphError::new(
                        400,
                        "RequestBodyRead",
                        &format!("Requested value '{t}' was not found."),
                    ));
                }
            }
            if !a["emailAddress"]["address"].as_str().is_some_and(|x| x.contains('@')) {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidRecipients",
                    "At least one recipient isn't valid., Recipient is missing or not valid.",
                ));
            }
        }
    }
    Ok((s.timestamp_millis(), e.timestamp_millis(), all_day))
}

async fn me(State(shared): State<Arc<Shared>>, auth: Result<GraphAuth, GraphError>) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(USER)?;
        let world = shared.world();
        let acc = world.microsoft.accounts.get(&auth.email).ok_or_else(GraphError::not_found)?;
        let local = auth.email.split('@').next().unwrap_or_default();
        Ok(Json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "businessPhones": [], "displayName": local, "givenName": local, "jobTitle": null,
            "mail": auth.email, "mobilePhone": null, "officeLocation": null, "preferredLanguage": null,
            "surname": null, "userPrincipalName": auth.email, "id": acc.id,
        }))
        .into_response())
    })())
}

fn calendar_json(cal: &MsCalendar, owner: &str, default: bool) -> Value {
    json!({
        "id": cal.id, "name": cal.name, "color": "auto", "hexColor": "", "isDefaultCalendar": default,
        "changeKey": cal.change_key, "canShare": true, "canViewPrivateItems": true, "canEdit": true,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"], "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": true, "isRemovable": !default,
        "owner": {"name": owner, "address": owner},
    })
}

/// Resolves a calendar id (or the default calendar) the caller owns.
pub(super) fn calendar_id(microsoft: &MsWorld, auth: &GraphAuth, cal: Option<&str>) -> GraphResult<String> {
    let acc = microsoft.accounts.get(&auth.email).ok_or_else(GraphError::not_found)?;
    match cal {
        None => Ok(acc.calendars[0].clone()),
        Some(c) if acc.calendars.iter().any(|x| x == c) => Ok(c.to_owned()),
        Some(_) => Err(GraphError::not_found()),
    }
}

async fn list_calendars(State(shared): State<Arc<Shared>>, auth: Result<GraphAuth, GraphError>) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let world = shared.world();
        let acc = world.microsoft.accounts.get(&auth.email).ok_or_else(GraphError::not_found)?;
        let items: Vec<Value> = acc
            .calendars
            .iter()
            .enumerate()
            .filter_map(|(i, id)| world.microsoft.calendars.get(id).map(|c| calendar_json(c, &auth.email, i == 0)))
            .collect();
        Ok(Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/calendars", "value": items})).into_response())
    })())
}

async fn default_calendar(State(shared): State<Arc<Shared>>, auth: Result<GraphAuth, GraphError>) -> Response {
    calendar_by(shared, auth, None)
}

async fn get_calendar(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(cal): Path<String>,
) -> Response {
    calendar_by(shared, auth, Some(cal))
}

fn calendar_by(shared: Arc<Shared>, auth: Result<GraphAuth, GraphError>, cal: Option<String>) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let world = shared.world();
        let id = calendar_id(&world.microsoft, &auth, cal.as_deref())?;
        let default = world.microsoft.accounts[&auth.email].calendars[0] == id;
        Ok(Json(calendar_json(&world.microsoft.calendars[&id], &auth.email, default)).into_response())
    })())
}
