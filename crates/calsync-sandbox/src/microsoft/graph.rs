//! Graph v1.0 calendar: `/me`, calendars, events CRUD, calendarView and calendarView/delta,
//! with Outlook's etags, `transactionId` dedupe and `Prefer` handling.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};
use super::identity::GraphAuth;
use super::{MsCalendar, MsWorld, listing, series, subscriptions, tz};
use crate::ids;
use crate::state::{Shared, World};
use crate::store::Item;

pub(super) const READ: &[&str] =
    &["Calendars.Read", "Calendars.ReadWrite", "Calendars.Read.Shared", "Calendars.ReadWrite.Shared"];
const WRITE: &[&str] = &["Calendars.ReadWrite", "Calendars.ReadWrite.Shared"];
const USER: &[&str] = &["User.Read", "User.ReadBasic.All"];
pub(super) const DEFAULT_PAGE: usize = 10;
pub(super) const MAX_PAGE: usize = 1000;

pub(super) fn routes(r: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    let g = "/microsoft/graph/v1.0";
    r.route(&format!("{g}/me"), get(me))
        .route(&format!("{g}/me/calendars"), get(list_calendars))
        .route(&format!("{g}/me/calendar"), get(default_calendar))
        .route(&format!("{g}/me/calendars/{{cal}}"), get(get_calendar))
        .route(&format!("{g}/me/events"), get(listing::list_default_events).post(create_default))
        .route(&format!("{g}/me/calendars/{{cal}}/events"), get(listing::list_events).post(create))
        .route(&format!("{g}/me/events/{{id}}"), get(get_event).patch(patch_event).delete(delete_event))
        .route(&format!("{g}/me/events/{{id}}/instances"), get(listing::instances))
        .route(&format!("{g}/me/events/{{id}}/cancel"), post(cancel_event))
        .route(&format!("{g}/me/events/{{id}}/accept"), post(respond_event))
        .route(&format!("{g}/me/events/{{id}}/tentativelyAccept"), post(respond_event))
        .route(&format!("{g}/me/events/{{id}}/decline"), post(respond_event))
        .route(&format!("{g}/me/calendarView"), get(listing::view_default))
        .route(&format!("{g}/subscriptions"), get(subscriptions::list).post(subscriptions::create))
        .route(
            &format!("{g}/subscriptions/{{id}}"),
            get(subscriptions::get_one).patch(subscriptions::patch).delete(subscriptions::delete),
        )
        .route(&format!("{g}/subscriptions/{{id}}/reauthorize"), post(subscriptions::reauthorize))
        .route(&format!("{g}/me/calendars/{{cal}}/calendarView"), get(listing::view))
        .route(&format!("{g}/me/calendarView/delta"), get(listing::delta_default))
        .route(&format!("{g}/me/calendars/{{cal}}/calendarView/delta"), get(listing::delta))
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
}

#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct Link {
    pub master: String,
    /// Original start of the occurrence (epoch ms): Graph's `originalStart`.
    pub original_ms: i64,
    /// `exception` (stored, edited or cancelled) rather than a plain `occurrence`.
    pub exception: bool,
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
struct DateTimeTimeZone {
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

/// `Prefer` preferences: `outlook.timezone` and `odata.maxpagesize`.
pub(super) struct Prefer {
    pub(super) tz: Option<(String, Tz)>,
    pub(super) page: Option<usize>,
}

pub(super) fn prefer(headers: &HeaderMap) -> GraphResult<Prefer> {
    let mut p = Prefer { tz: None, page: None };
    for value in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
        for part in value.split(',').map(str::trim) {
            if let Some(rest) = part.strip_prefix("outlook.timezone=") {
                let name = rest.trim_matches('"');
                let zone = tz::resolve(name).ok_or_else(|| tz_unsupported(name))?;
                p.tz = Some((name.to_owned(), zone));
            } else if let Some(n) = part.strip_prefix("odata.maxpagesize=") {
                p.page = n.trim_matches('"').parse().ok();
            }
        }
    }
    Ok(p)
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
    if !applied.is_empty()
        && let Ok(v) = HeaderValue::from_str(&applied.join(", "))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    resp
}

/// Graph's `dateTime` shape: no offset, seven fractional digits.
fn graph_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m-%dT%H:%M:%S.0000000").to_string()
}

pub(super) fn utc_stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_dtz(d: &DateTimeTimeZone) -> GraphResult<(DateTime<Utc>, Tz, String, NaiveDateTime)> {
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
fn check(props: &mut Map<String, Value>, allow_recurrence: bool) -> GraphResult<(i64, i64, bool)> {
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

/// Attendees as Graph returns them: every one has a `type` and a `status` (`none` until they
/// answer), and an `emailAddress` with both `name` and `address`, whatever the request omitted.
fn attendees(given: Option<&Value>) -> Value {
    let list = given.and_then(Value::as_array).cloned().unwrap_or_default();
    Value::Array(
        list.into_iter()
            .map(|a| {
                let address = a["emailAddress"]["address"].as_str().unwrap_or_default().to_owned();
                let name = a["emailAddress"]["name"].as_str().map(str::to_owned).unwrap_or_else(|| address.clone());
                json!({
                    "type": a.get("type").cloned().unwrap_or(json!("required")),
                    "status": a.get("status").cloned().unwrap_or(json!({"response": "none", "time": "0001-01-01T00:00:00Z"})),
                    "emailAddress": {"name": name, "address": address},
                })
            })
            .collect(),
    )
}

/// The event resource as Graph returns it.
pub(super) fn render(ev: &GEvent, item_modified_ms: i64, owner: &str, zone: Option<&(String, Tz)>) -> Value {
    let p = &ev.props;
    let time = |key: &str| -> Value {
        let Some(d) = p.get(key).and_then(|v| serde_json::from_value::<DateTimeTimeZone>(v.clone()).ok()) else {
            return Value::Null;
        };
        let Ok((t, own_zone, own_name, _)) = parse_dtz(&d) else {
            return Value::Null;
        };
        // All-day events stay in their own zone whatever `Prefer` says.
        match zone.filter(|_| !ev.all_day) {
            Some((name, z)) => json!({"dateTime": graph_time(t, *z), "timeZone": name}),
            None if ev.all_day => {
                json!({"dateTime": graph_time(t, own_zone), "timeZone": own_name})
            }
            None => json!({"dateTime": graph_time(t, Tz::UTC), "timeZone": "UTC"}),
        }
    };
    let tz_name =
        |key: &str| p.get(key).and_then(|v| v.get("timeZone")).and_then(Value::as_str).unwrap_or("UTC").to_owned();
    let body = p.get("body").cloned().unwrap_or_else(|| json!({"contentType": "html", "content": ""}));
    let preview: String = body.get("content").and_then(Value::as_str).unwrap_or("").chars().take(255).collect();
    let mut out = json!({
        "@odata.etag": format!("W/\"{}\"", ev.change_key),
        "id": ev.id,
        "createdDateTime": utc_stamp(ev.created_ms),
        "lastModifiedDateTime": utc_stamp(item_modified_ms),
        "changeKey": ev.change_key,
        "categories": p.get("categories").cloned().unwrap_or(json!([])),
        "originalStartTimeZone": tz_name("start"),
        "originalEndTimeZone": tz_name("end"),
        "iCalUId": ev.ical_uid,
        "reminderMinutesBeforeStart": p.get("reminderMinutesBeforeStart").cloned().unwrap_or(json!(15)),
        "isReminderOn": p.get("isReminderOn").cloned().unwrap_or(json!(true)),
        "hasAttachments": false,
        "subject": p.get("subject").cloned().unwrap_or(json!("")),
        "bodyPreview": preview,
        "importance": p.get("importance").cloned().unwrap_or(json!("normal")),
        "sensitivity": p.get("sensitivity").cloned().unwrap_or(json!("normal")),
        "isAllDay": ev.all_day,
        "isCancelled": false,
        "isOrganizer": true,
        "responseRequested": p.get("responseRequested").cloned().unwrap_or(json!(true)),
        "seriesMasterId": ev.link.as_ref().map(|l| l.master.clone()),
        "showAs": p.get("showAs").cloned().unwrap_or(json!("busy")),
        "type": match &ev.link {
            Some(l) if l.exception => "exception",
            Some(_) => "occurrence",
            None if p.get("recurrence").is_some_and(|r| !r.is_null()) => "seriesMaster",
            None => "singleInstance",
        },
        "webLink": format!("https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item", ev.id),
        "onlineMeetingUrl": null,
        "isOnlineMeeting": p.get("isOnlineMeeting").cloned().unwrap_or(json!(false)),
        "onlineMeetingProvider": p.get("onlineMeetingProvider").cloned().unwrap_or(json!("unknown")),
        "allowNewTimeProposals": p.get("allowNewTimeProposals").cloned().unwrap_or(json!(true)),
        "isDraft": false,
        "hideAttendees": p.get("hideAttendees").cloned().unwrap_or(json!(false)),
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": body,
        "start": time("start"),
        "end": time("end"),
        "location": p.get("location").cloned().unwrap_or(json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}})),
        "locations": p.get("locations").cloned().unwrap_or(json!([])),
        "recurrence": p.get("recurrence").cloned().unwrap_or(Value::Null),
        "attendees": attendees(p.get("attendees")),
        "organizer": {"emailAddress": {"name": owner, "address": owner}},
        "onlineMeeting": null,
    });
    if let Some(t) = p.get("transactionId") {
        out["transactionId"] = t.clone();
    }
    if let Some(l) = &ev.link {
        out["originalStart"] = json!(
            DateTime::<Utc>::from_timestamp_millis(l.original_ms)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------

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

/// Finds the calendar holding event `id` among the caller's calendars.
/// Occurrence ids resolve through their master.
fn locate(microsoft: &MsWorld, auth: &GraphAuth, id: &str) -> GraphResult<String> {
    let acc = microsoft.accounts.get(&auth.email).ok_or_else(GraphError::not_found)?;
    acc.calendars
        .iter()
        .find(|c| microsoft.calendars.get(*c).and_then(|cal| series::resolve(cal, id)).is_some_and(|r| !r.3))
        .cloned()
        .ok_or_else(GraphError::not_found)
}

/// The index extent: a master spans its whole series.
fn extent(ev: &GEvent, s: i64, e: i64) -> (i64, i64) {
    series::master_series(ev).map_or((s, e), |g| g.extent())
}

fn parse_object(body: &[u8]) -> GraphResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(GraphError::new(400, "RequestBodyRead", "Invalid JSON in request body.")),
    }
}

fn store(world: &mut World, cal_id: &str, ev: GEvent, times: (i64, i64), now: i64, deleted: bool) -> u64 {
    let seq = world.next_seq();
    let cal = world.microsoft.calendars.get_mut(cal_id).expect("calendar exists");
    let id = ev.id.clone();
    let change = match cal.events.get(&id) {
        _ if deleted => "deleted",
        Some(prior) if !prior.deleted => "updated",
        _ => "created",
    };
    let etag = format!("W/\"{}\"", ev.change_key);
    cal.events.put(&id, Item { ev: Arc::new(ev), seq, start: times.0, end: times.1, updated_ms: now, deleted });
    subscriptions::notify(world, cal_id, &id, &etag, change, now);
    seq
}

async fn create_default(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(create_inner(&shared, auth, None, &headers, &body))
}

async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(create_inner(&shared, auth, Some(&cal), &headers, &body))
}

fn create_inner(
    shared: &Shared,
    auth: GraphResult<GraphAuth>,
    cal: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> GraphResult<Response> {
    let auth = auth?;
    auth.require(WRITE)?;
    let pref = prefer(headers)?;
    let mut props = parse_object(body)?;
    let (s, e, all_day) = check(&mut props, true)?;
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal_id = calendar_id(&world.microsoft, &auth, cal)?;
    let tx = props.get("transactionId").and_then(Value::as_str).map(str::to_owned);
    // A retried POST with the same transactionId returns the first event, unchanged.
    if let Some(tx) = &tx
        && let Some(existing) = world.microsoft.calendars[&cal_id].transactions.get(tx)
        && let Some(item) = world.microsoft.calendars[&cal_id].events.get(existing)
    {
        let v = render(&item.ev, item.updated_ms, &auth.email, pref.tz.as_ref());
        return Ok(with_preference((StatusCode::CREATED, Json(v)).into_response(), &pref));
    }
    let id = ids::token(&mut world.rng, "AAMkAGI2", 96);
    let change_key = ids::token(&mut world.rng, "", 18);
    let ical = format!("040000008200E00074C5B7101A82E008{}", ids::token(&mut world.rng, "", 24));
    let ev = GEvent { props, id: id.clone(), change_key, created_ms: now, ical_uid: ical, all_day, link: None };
    let (s, e) = extent(&ev, s, e);
    if let Some(tx) = tx {
        world.microsoft.calendars.get_mut(&cal_id).expect("exists").transactions.insert(tx, id.clone());
    }
    let v = render(&ev, now, &auth.email, pref.tz.as_ref());
    store(&mut world, &cal_id, ev, (s, e), now, false);
    Ok(with_preference((StatusCode::CREATED, Json(v)).into_response(), &pref))
}

async fn get_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let pref = prefer(&headers)?;
        let world = shared.world();
        let cal = locate(&world.microsoft, &auth, &id)?;
        let (ev, _, updated, _) =
            series::resolve(&world.microsoft.calendars[&cal], &id).ok_or_else(GraphError::not_found)?;
        let v = render(&ev, updated, &auth.email, pref.tz.as_ref());
        Ok(with_preference(Json(v).into_response(), &pref))
    })())
}

/// `If-Match` must carry the current `W/"changeKey"` (a bare change key does not match).
fn if_match(headers: &HeaderMap, change_key: &str) -> GraphResult<()> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None | Some("*") => Ok(()),
        Some(v) if v == format!("W/\"{change_key}\"") => Ok(()),
        Some(_) => Err(GraphError::conflict()),
    }
}

async fn patch_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(WRITE)?;
        let pref = prefer(&headers)?;
        let patch = parse_object(&body)?;
        if patch.contains_key("transactionId") {
            return Err(GraphError::bad_request("The property 'transactionId' is read-only after creation."));
        }
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = locate(&world.microsoft, &auth, &id)?;
        let (current, _, _, _) =
            series::resolve(&world.microsoft.calendars[&cal], &id).ok_or_else(GraphError::not_found)?;
        if_match(&headers, &current.change_key)?;
        let old_series = series::master_series(&current);
        let mut ev = current.clone();
        // Top-level properties replace whole values, arrays and complex types included.
        for (k, v) in patch {
            ev.props.insert(k, v);
        }
        let is_instance = ev.link.is_some();
        let (s, e, all_day) = check(&mut ev.props, !is_instance)?;
        ev.all_day = all_day;
        ev.change_key = ids::token(&mut world.rng, "", 18);
        if let Some(l) = ev.link.as_mut() {
            // Editing an occurrence makes it an exception.
            l.exception = true;
        }
        let times = extent(&ev, s, e);
        let series_changed = ["start", "end", "recurrence"].iter().any(|k| current.props.get(*k) != ev.props.get(*k));
        let new_series = series::master_series(&ev);
        let v = render(&ev, now, &auth.email, pref.tz.as_ref());
        let master = ev.clone();
        store(&mut world, &cal, ev, times, now, false);
        if series_changed && !is_instance {
            let orphans =
                series::orphans(&world.microsoft.calendars[&cal], &master, old_series.as_ref(), new_series.as_ref());
            for (o, span) in orphans {
                store(&mut world, &cal, o, span, now, true);
            }
        }
        if !is_instance && old_series.is_some() && new_series.is_some() {
            // Series edits reach the exceptions that did not override the property; each
            // changed exception gets a new change key and shows up in delta.
            let carried = series::carried_into_exceptions(&world.microsoft.calendars[&cal], &current, &master);
            for (mut ex, span) in carried {
                ex.change_key = ids::token(&mut world.rng, "", 18);
                store(&mut world, &cal, ex, span, now, false);
            }
        }
        Ok(with_preference(Json(v).into_response(), &pref))
    })())
}

async fn delete_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(remove(&shared, auth, &id, &headers).map(|()| StatusCode::NO_CONTENT.into_response()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Validated only: the sandbox sends no mail.
struct ResponseBody {
    comment: Option<String>,
    send_response: Option<bool>,
    proposed_new_time: Option<Value>,
}

/// `POST /me/events/{id}/cancel`: the organizer cancels (attendees would be notified);
/// the event, or the occurrence, goes away as with DELETE. 202.
async fn cancel_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let _: ResponseBody = serde_json::from_slice(&body)
            .map_err(|e| GraphError::new(400, "RequestBodyRead", &format!("Invalid request body: {e}")))?;
        remove(&shared, auth, &id, &headers)?;
        Ok(StatusCode::ACCEPTED.into_response())
    })())
}

/// `accept` / `tentativelyAccept` / `decline`: every sandbox event is organized by its
/// mailbox owner, and Outlook refuses responses to one's own meeting.
async fn respond_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(WRITE)?;
        let _: ResponseBody = serde_json::from_slice(&body)
            .map_err(|e| GraphError::new(400, "RequestBodyRead", &format!("Invalid request body: {e}")))?;
        let world = shared.world();
        locate(&world.microsoft, &auth, &id)?;
        Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. You can't respond to a meeting you organized.",
        ))
    })())
}

fn remove(shared: &Shared, auth: GraphResult<GraphAuth>, id: &str, headers: &HeaderMap) -> GraphResult<()> {
    {
        let auth = auth?;
        auth.require(WRITE)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = locate(&world.microsoft, &auth, id)?;
        let (mut ev, times, _, _) =
            series::resolve(&world.microsoft.calendars[&cal], id).ok_or_else(GraphError::not_found)?;
        if_match(headers, &ev.change_key)?;
        // Deleting an occurrence cancels it (a deleted exception); deleting a master deletes
        // the series with its exceptions.
        if let Some(l) = ev.link.as_mut() {
            l.exception = true;
        }
        let old_series = series::master_series(&ev);
        let master = ev.clone();
        store(&mut world, &cal, ev, times, now, true);
        let orphans = series::orphans(&world.microsoft.calendars[&cal], &master, old_series.as_ref(), None);
        for (o, span) in orphans {
            store(&mut world, &cal, o, span, now, true);
        }
        Ok(())
    }
}

/// Control API bulk load: `count` half-hour events a minute apart from 2020-01-01 in the
/// default calendar. Returns false for an unknown account.
pub(crate) fn seed_events(shared: &Shared, email: &str, count: usize) -> bool {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let Some(cal_id) = world.microsoft.accounts.get(email).map(|a| a.calendars[0].clone()) else {
        return false;
    };
    let base = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").expect("valid").timestamp_millis();
    let local = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S").to_string()
    };
    for i in 0..count {
        let start = base + i as i64 * 60_000;
        let mut props = Map::new();
        props.insert("subject".into(), json!(format!("Seeded event {i}")));
        props.insert("start".into(), json!({"dateTime": local(start), "timeZone": "UTC"}));
        props.insert("end".into(), json!({"dateTime": local(start + 1_800_000), "timeZone": "UTC"}));
        let ev = GEvent {
            props,
            id: ids::token(&mut world.rng, "AAMkAGI2", 96),
            change_key: ids::token(&mut world.rng, "", 18),
            created_ms: now,
            ical_uid: format!("040000008200E00074C5B7101A82E008{}", ids::token(&mut world.rng, "", 24)),
            all_day: false,
            link: None,
        };
        store(&mut world, &cal_id, ev, (start, start + 1_800_000), now, false);
    }
    true
}
