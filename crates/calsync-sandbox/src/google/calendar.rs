//! Calendar API v3: calendarList, calendars and events (list with paging and sync tokens,
//! get/insert/import/update/patch/delete), with Google's status codes and error reasons.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::model::{self, Event, EventDateTime, When};
use super::oauth::GoogleAuth;
use super::{Calendar, GoogleWorld};
use crate::cursor;
use crate::ids;
use crate::state::{Shared, World};
use crate::store::Item;

const EVENTS_READ: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
];
const EVENTS_WRITE: &[&str] = &["calendar", "calendar.events", "calendar.events.owned"];
/// The 2023 discovery document: calendarList and calendars need the calendar scopes proper.
const CALENDARS_READ: &[&str] = &["calendar", "calendar.readonly"];

/// Log entries examined per page at most: a sparse filter yields short (even empty) pages
/// with a `nextPageToken`, as Google's do, instead of an unbounded scan.
const SCAN_BUDGET: usize = 20_000;

/// Query parameters every Google API accepts.
const GLOBAL_PARAMS: &[&str] = &[
    "alt",
    "fields",
    "prettyPrint",
    "quotaUser",
    "key",
    "userIp",
    "oauth_token",
    "access_token",
    "$.xgafv",
    "callback",
    "upload_protocol",
    "uploadType",
];

pub(super) fn routes(r: Router<Arc<Shared>>, base: &str) -> Router<Arc<Shared>> {
    r.route(&format!("{base}/users/me/calendarList"), get(calendar_list))
        .route(&format!("{base}/users/me/calendarList/{{calendar_id}}"), get(calendar_list_get))
        .route(&format!("{base}/calendars/{{calendar_id}}"), get(calendar_get))
        .route(&format!("{base}/calendars/{{calendar_id}}/events"), get(list_events).post(insert_event))
        .route(&format!("{base}/calendars/{{calendar_id}}/events/import"), post(import_event))
        .route(
            &format!("{base}/calendars/{{calendar_id}}/events/{{event_id}}"),
            get(get_event).put(update_event).patch(patch_event).delete(delete_event),
        )
}

/// Parsed query string; repeated names are kept (extended-property filters repeat).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>, allowed: &[&str]) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) && !GLOBAL_PARAMS.contains(&k.as_str()) {
                return Err(ApiError::invalid_param(k, &format!("Invalid parameter: {k}")));
            }
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_param(name, &format!("Invalid boolean value: '{v}'."))),
        }
    }

    fn time(&self, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::bad_request("Bad Request").at("parameter", name))
            })
            .transpose()
    }

    fn tz(&self) -> ApiResult<Option<Tz>> {
        self.get("timeZone")
            .map(|v| model::parse_tz(v).ok_or_else(|| ApiError::invalid_param("timeZone", "Invalid time zone.")))
            .transpose()
    }

    /// Everything but the page token, order-independent: a page token is only valid for
    /// the identical request.
    fn fingerprint(&self, cal: &str) -> String {
        let mut parts: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k != "pageToken" && !GLOBAL_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.sort();
        parts.push(cal.to_owned());
        cursor::fingerprint(&parts.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// Resolves `primary` and checks the caller owns the calendar (404 otherwise, as Google
/// answers for calendars the user cannot see).
fn calendar_mut<'a>(google: &'a mut GoogleWorld, auth: &GoogleAuth, cal_id: &str) -> ApiResult<&'a mut Calendar> {
    let account = google.accounts.get(&auth.email).ok_or_else(ApiError::not_found)?;
    let id = if cal_id == "primary" {
        account.calendars[0].clone()
    } else if account.calendars.iter().any(|c| c == cal_id) {
        cal_id.to_owned()
    } else {
        return Err(ApiError::not_found());
    };
    google.calendars.get_mut(&id).filter(|c| !c.deleted).ok_or_else(ApiError::not_found)
}

fn epoch_of(google: &GoogleWorld, email: &str) -> u32 {
    google.accounts.get(email).map_or(0, |a| a.epoch)
}

fn json_body(body: &[u8]) -> ApiResult<Value> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::new(400, "global", "parseError", "Parse Error"))?;
    if !value.is_object() {
        return Err(ApiError::new(400, "global", "parseError", "Parse Error"));
    }
    Ok(value)
}

fn event_from(value: Value) -> ApiResult<Event> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid(&format!("Invalid JSON payload received. {e}")))
}

// ---------------------------------------------------------------------------------------
// Rendering

fn etag_for(updated_ms: i64, seq: u64) -> String {
    // Numeric like Google's ("\"3181161784712000\""); the low digits make every edit's
    // etag distinct even within one millisecond.
    format!("\"{}\"", updated_ms * 2000 + (seq % 1000) as i64)
}

fn render_time(edt: &EventDateTime, tz: Tz) -> EventDateTime {
    match edt.date_time.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
        Some(t) => {
            let zone = edt.time_zone.as_deref().and_then(model::parse_tz).unwrap_or(tz);
            EventDateTime {
                date: None,
                date_time: Some(model::format_instant(t.with_timezone(&Utc), zone)),
                time_zone: edt.time_zone.clone(),
            }
        }
        None => edt.clone(),
    }
}

/// The event as returned by get/insert/update: `dateTime` rendered in the event's own zone,
/// else the request's `timeZone`, else the calendar's.
fn render(ev: &Event, tz: Tz) -> Event {
    let mut out = ev.clone();
    out.start = ev.start.as_ref().map(|s| render_time(s, tz));
    out.end = ev.end.as_ref().map(|s| render_time(s, tz));
    out.original_start_time = ev.original_start_time.as_ref().map(|s| render_time(s, tz));
    out
}

/// A deleted event in a list: only what Google guarantees.
fn stub(ev: &Event) -> Value {
    json!({"kind": "calendar#event", "etag": ev.etag, "id": ev.id, "status": "cancelled"})
}

// ---------------------------------------------------------------------------------------
// calendarList / calendars

fn list_entry(cal: &Calendar) -> Value {
    let mut v = json!({
        "kind": "calendar#calendarListEntry",
        "etag": format!("\"{}\"", cal.list_seq),
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "colorId": "14",
        "backgroundColor": "#9fe1e7",
        "foregroundColor": "#000000",
        "selected": true,
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    if let Some(d) = &cal.description {
        v["description"] = json!(d);
    }
    if cal.primary {
        v["primary"] = json!(true);
        v["notificationSettings"] = json!({"notifications": [
            {"type": "eventCreation", "method": "email"},
            {"type": "eventChange", "method": "email"},
            {"type": "eventCancellation", "method": "email"},
            {"type": "eventResponse", "method": "email"},
        ]});
    }
    if cal.deleted {
        v["deleted"] = json!(true);
    }
    v
}

#[derive(Serialize, Deserialize)]
struct ListCursor {
    /// Account e-mail the token belongs to.
    a: String,
    fp: String,
    ep: u32,
    /// Sync position (change sequence).
    s: u64,
    /// Offset into the entry list, for page tokens.
    o: usize,
}

async fn calendar_list(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(calendar_list_inner(&shared, auth, raw))
}

fn calendar_list_inner(shared: &Shared, auth: ApiResult<GoogleAuth>, raw: Option<String>) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(CALENDARS_READ)?;
    let q = Query::parse(raw, &["maxResults", "pageToken", "syncToken", "showDeleted", "showHidden", "minAccessRole"])?;
    let max = parse_max(&q, 100, 250)?;
    let world = shared.world();
    let google = &world.google;
    let account = google.accounts.get(&auth.email).ok_or_else(ApiError::not_found)?;
    let fp = cursor::fingerprint(&[q.get("showDeleted").unwrap_or(""), q.get("showHidden").unwrap_or("")]);
    let since = match q.get("syncToken") {
        Some(tok) => {
            if q.get("minAccessRole").is_some() {
                return Err(ApiError::invalid_param(
                    "syncToken",
                    "Sync token cannot be used with other request restrictions.",
                ));
            }
            let c: ListCursor =
                cursor::decode(tok).ok_or_else(|| ApiError::invalid_param("syncToken", "Invalid sync token value."))?;
            if c.a != auth.email || c.ep != account.epoch {
                return Err(ApiError::full_sync_required());
            }
            Some(c.s)
        }
        None => None,
    };
    if let Some(role) = q.get("minAccessRole")
        && !matches!(role, "freeBusyReader" | "reader" | "writer" | "owner")
    {
        return Err(ApiError::invalid_param("minAccessRole", "Invalid minAccessRole."));
    }
    let show_deleted = q.bool("showDeleted")?.unwrap_or(false) || since.is_some();
    let entries: Vec<&Calendar> = account
        .calendars
        .iter()
        .filter_map(|id| google.calendars.get(id))
        .filter(|c| since.is_none_or(|s| c.list_seq > s))
        .filter(|c| show_deleted || !c.deleted)
        .collect();
    let offset = match q.get("pageToken") {
        Some(t) => {
            let c: ListCursor =
                cursor::decode(t).ok_or_else(|| ApiError::invalid_param("pageToken", "Invalid page token."))?;
            if c.a != auth.email || c.fp != fp {
                return Err(ApiError::invalid_param("pageToken", "Invalid page token."));
            }
            c.o
        }
        None => 0,
    };
    let page: Vec<Value> = entries.iter().skip(offset).take(max).map(|c| list_entry(c)).collect();
    let mut body = json!({"kind": "calendar#calendarList", "etag": format!("\"{}\"", world.seq()), "items": page});
    let next = offset + max;
    let tok = ListCursor { a: auth.email.clone(), fp, ep: account.epoch, s: world.seq(), o: next };
    if next < entries.len() {
        body["nextPageToken"] = json!(cursor::encode(&tok));
    } else {
        body["nextSyncToken"] = json!(cursor::encode(&ListCursor { o: 0, ..tok }));
    }
    Ok(Json(body).into_response())
}

async fn calendar_list_get(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(CALENDARS_READ)?;
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        Ok(Json(list_entry(cal)).into_response())
    })())
}

async fn calendar_get(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(CALENDARS_READ)?;
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        let mut v = json!({
            "kind": "calendar#calendar",
            "etag": format!("\"{}\"", cal.list_seq),
            "id": cal.id,
            "summary": cal.summary,
            "timeZone": cal.time_zone,
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        });
        if let Some(d) = &cal.description {
            v["description"] = json!(d);
        }
        Ok(Json(v).into_response())
    })())
}

fn respond(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn parse_max(q: &Query, default: usize, max: usize) -> ApiResult<usize> {
    match q.get("maxResults") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_param(
                "maxResults",
                &format!("Invalid value '{v}'. Values must be within the range: [1, {max}]"),
            )),
        },
    }
}

// ---------------------------------------------------------------------------------------
// events.list

const LIST_PARAMS: &[&str] = &[
    "maxResults",
    "pageToken",
    "syncToken",
    "timeMin",
    "timeMax",
    "updatedMin",
    "singleEvents",
    "showDeleted",
    "orderBy",
    "q",
    "privateExtendedProperty",
    "sharedExtendedProperty",
    "iCalUID",
    "eventTypes",
    "showHiddenInvitations",
    "maxAttendees",
    "timeZone",
    "alwaysIncludeEmail",
];

/// Not allowed together with `syncToken` (B.4).
const SYNC_FORBIDDEN: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

#[derive(Serialize, Deserialize)]
struct SyncCursor {
    c: String,
    /// Fingerprint of the parameters an incremental request must repeat (`singleEvents`).
    fp: String,
    ep: u32,
    s: u64,
}

#[derive(Serialize, Deserialize)]
struct PageCursor {
    c: String,
    fp: String,
    ep: u32,
    /// Snapshot: the sync position the last page hands out.
    e: u64,
    /// Log position already passed (log-ordered modes).
    p: u64,
    /// `(start, id)` already passed (time-ordered mode).
    k: Option<(i64, String)>,
}

struct Filters {
    time_min: Option<i64>,
    time_max: Option<i64>,
    updated_min: Option<i64>,
    show_deleted: bool,
    q: Option<String>,
    private_props: Vec<(String, String)>,
    shared_props: Vec<(String, String)>,
    ical_uid: Option<String>,
}

impl Filters {
    /// `Some(include_as_stub)` when the item belongs on the page.
    fn admit(&self, item: &Item<Event>) -> Option<bool> {
        if self.time_min.is_some_and(|t| item.end <= t) || self.time_max.is_some_and(|t| item.start >= t) {
            return None;
        }
        if self.updated_min.is_some_and(|t| item.updated_ms < t) {
            return None;
        }
        // With updatedMin, deletions since then are always included.
        if item.deleted && !(self.show_deleted || self.updated_min.is_some()) {
            return None;
        }
        let ev = &item.ev;
        if let Some(uid) = &self.ical_uid
            && ev.ical_uid.as_ref() != Some(uid)
        {
            return None;
        }
        let props = ev.extended_properties.as_ref();
        let has = |map: Option<&std::collections::BTreeMap<String, String>>, (k, v): &(String, String)| {
            map.and_then(|m| m.get(k)).is_some_and(|x| x == v)
        };
        if !self.private_props.iter().all(|p| has(props.and_then(|p| p.private.as_ref()), p))
            || !self.shared_props.iter().all(|p| has(props.and_then(|p| p.shared.as_ref()), p))
        {
            return None;
        }
        if let Some(text) = &self.q {
            let hay = [ev.summary.as_deref(), ev.description.as_deref(), ev.location.as_deref()]
                .into_iter()
                .flatten()
                .map(str::to_lowercase)
                .chain(ev.attendees.iter().flatten().flat_map(|a| {
                    [a.email.as_deref(), a.display_name.as_deref()].into_iter().flatten().map(str::to_lowercase)
                }))
                .any(|h| h.contains(text.as_str()));
            if !hay {
                return None;
            }
        }
        Some(item.deleted)
    }
}

fn prop_filters(q: &Query, name: &str) -> ApiResult<Vec<(String, String)>> {
    q.all(name)
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| ApiError::invalid_param(name, &format!("Invalid {name} value.")))
        })
        .collect()
}

async fn list_events(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(list_events_inner(&shared, auth, &cal_id, raw))
}

fn list_events_inner(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    raw: Option<String>,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_READ)?;
    let q = Query::parse(raw, LIST_PARAMS)?;
    let max = parse_max(&q, 250, 2500)?;
    let single_events = q.bool("singleEvents")?.unwrap_or(false);
    let show_deleted = q.bool("showDeleted")?;
    let order_by = q.get("orderBy");
    match order_by {
        None | Some("updated") => {}
        Some("startTime") if single_events => {}
        Some("startTime") => {
            return Err(ApiError::bad_request("The requested ordering is not available for the particular query.")
                .at("parameter", "orderBy"));
        }
        Some(_) => {
            return Err(ApiError::invalid_param("orderBy", "Invalid value for orderBy."));
        }
    }
    let time_min = q.time("timeMin")?;
    let time_max = q.time("timeMax")?;
    if let (Some(a), Some(b)) = (time_min, time_max)
        && a >= b
    {
        return Err(ApiError::new(400, "calendar", "timeRangeEmpty", "The specified time range is empty.")
            .at("parameter", "timeMax"));
    }
    let updated_min = q.time("updatedMin")?;
    let req_tz = q.tz()?;
    let sync_token = q.get("syncToken");
    if sync_token.is_some() && (SYNC_FORBIDDEN.iter().any(|p| q.get(p).is_some()) || show_deleted == Some(false)) {
        return Err(ApiError::invalid_param("syncToken", "Sync token cannot be used with other request restrictions."));
    }
    let now = shared.clock.now_ms();
    if let Some(t) = updated_min
        && now - t.timestamp_millis() > shared.config.google_updated_min_max_age.as_millis() as i64
    {
        return Err(ApiError::for_status(410, Some("updatedMinTooLongAgo")));
    }
    let world = shared.world();
    let epoch = epoch_of(&world.google, &auth.email);
    let head = world.seq();
    let mut world = world;
    let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
    let sync_fp = cursor::fingerprint(&[&cal.id, if single_events { "1" } else { "0" }]);
    let page_fp = q.fingerprint(&cal.id);
    let filters = Filters {
        time_min: time_min.map(|t| t.timestamp_millis()),
        time_max: time_max.map(|t| t.timestamp_millis()),
        updated_min: updated_min.map(|t| t.timestamp_millis()),
        show_deleted: show_deleted.unwrap_or(false) || sync_token.is_some(),
        q: q.get("q").map(str::to_lowercase),
        private_props: prop_filters(&q, "privateExtendedProperty")?,
        shared_props: prop_filters(&q, "sharedExtendedProperty")?,
        ical_uid: q.get("iCalUID").map(str::to_owned),
    };

    // Where this page starts: (snapshot, log position, time key).
    let (snapshot, mut pos, mut key) = match (q.get("pageToken"), sync_token) {
        (Some(t), _) => {
            let c: PageCursor =
                cursor::decode(t).ok_or_else(|| ApiError::invalid_param("pageToken", "Invalid page token."))?;
            if c.c != cal.id || c.fp != page_fp {
                return Err(ApiError::invalid_param("pageToken", "Invalid page token."));
            }
            if sync_token.is_some() && c.ep != epoch {
                return Err(ApiError::full_sync_required());
            }
            (c.e, c.p, c.k)
        }
        (None, Some(t)) => {
            let c: SyncCursor =
                cursor::decode(t).ok_or_else(|| ApiError::invalid_param("syncToken", "Invalid sync token value."))?;
            if c.c != cal.id {
                return Err(ApiError::invalid_param("syncToken", "Invalid sync token value."));
            }
            if c.ep != epoch || c.s > head {
                return Err(ApiError::full_sync_required());
            }
            if c.fp != sync_fp {
                return Err(ApiError::invalid_param(
                    "syncToken",
                    "Sync token cannot be used with other request restrictions.",
                ));
            }
            (head, c.s, None)
        }
        (None, None) => (head, 0, None),
    };

    let tz = req_tz.unwrap_or(cal.tz);
    let time_mode = sync_token.is_none()
        && order_by != Some("updated")
        && (order_by == Some("startTime") || time_min.is_some() || time_max.is_some());
    let mut items: Vec<Value> = Vec::new();
    let mut scanned = 0usize;
    let mut exhausted = true;
    if time_mode {
        for (_, item) in cal.events.by_start_from(key.clone(), filters.time_min) {
            if filters.time_max.is_some_and(|t| item.start >= t) {
                break;
            }
            if items.len() == max || scanned == SCAN_BUDGET {
                exhausted = false;
                break;
            }
            scanned += 1;
            key = Some((item.start, item.ev.id.clone().unwrap_or_default()));
            if let Some(as_stub) = filters.admit(item) {
                items.push(if as_stub { stub(&item.ev) } else { to_value(&render(&item.ev, tz)) });
            }
        }
    } else {
        for (_, item) in cal.events.log_range(pos, snapshot) {
            if items.len() == max || scanned == SCAN_BUDGET {
                exhausted = false;
                break;
            }
            scanned += 1;
            pos = item.seq;
            if let Some(as_stub) = filters.admit(item) {
                items.push(if as_stub { stub(&item.ev) } else { to_value(&render(&item.ev, tz)) });
            }
        }
    }
    let mut body = json!({
        "kind": "calendar#events",
        "etag": format!("\"{snapshot}\""),
        "summary": cal.summary,
        "updated": model::format_stamp(cal.updated_ms),
        "timeZone": cal.time_zone,
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
    });
    if let Some(d) = &cal.description {
        body["description"] = json!(d);
    }
    body["items"] = Value::Array(items);
    if exhausted {
        let c = SyncCursor { c: cal.id.clone(), fp: sync_fp, ep: epoch, s: snapshot };
        body["nextSyncToken"] = json!(cursor::encode(&c));
    } else {
        let c = PageCursor { c: cal.id.clone(), fp: page_fp, ep: epoch, e: snapshot, p: pos, k: key };
        body["nextPageToken"] = json!(cursor::encode(&c));
    }
    Ok(Json(body).into_response())
}

fn to_value(ev: &Event) -> Value {
    serde_json::to_value(ev).expect("event serializes")
}

// ---------------------------------------------------------------------------------------
// Single-event operations

/// Resolved, validated times of an event write.
struct Times {
    start: i64,
    end: i64,
}

fn check_times(ev: &mut Event, cal_tz: Tz) -> ApiResult<Times> {
    let start = ev.start.as_ref().ok_or_else(|| ApiError::required("Missing start time."))?;
    let end = ev.end.as_ref().ok_or_else(|| ApiError::required("Missing end time."))?;
    let s = model::resolve(start, "start")?;
    let e = model::resolve(end, "end")?;
    let ok_order = match (s, e) {
        (When::Date(a), When::Date(b)) => a < b,
        (When::Instant(a), When::Instant(b)) => a <= b,
        _ => {
            return Err(ApiError::bad_request("Start and end times must either both be date or both be dateTime."));
        }
    };
    if !ok_order {
        return Err(ApiError::new(400, "calendar", "timeRangeEmpty", "The specified time range is empty."));
    }
    if ev.recurrence.as_ref().is_some_and(|r| !r.is_empty())
        && matches!(s, When::Instant(_))
        && (start.time_zone.is_none() || end.time_zone.is_none())
    {
        let which = if start.time_zone.is_none() { "start" } else { "end" };
        return Err(ApiError::bad_request(&format!("Missing time zone definition for {which} time.")));
    }
    // Store instants in UTC; rendering converts per request.
    for (edt, w) in [(ev.start.as_mut(), s), (ev.end.as_mut(), e)] {
        if let (Some(edt), When::Instant(t)) = (edt, w) {
            edt.date_time = Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
    Ok(Times { start: s.key(cal_tz), end: e.key(cal_tz) })
}

/// Clears what clients cannot set and applies server defaults.
fn sanitize(ev: &mut Event, q: &Query) {
    ev.kind = None;
    ev.etag = None;
    ev.html_link = None;
    ev.created = None;
    ev.updated = None;
    ev.creator = None;
    ev.hangout_link = None;
    ev.locked = None;
    ev.recurring_event_id = None;
    ev.original_start_time = None;
    if q.get("conferenceDataVersion") != Some("1") {
        ev.conference_data = None;
    }
    if q.get("supportsAttachments") != Some("true") {
        ev.attachments = None;
    }
    if ev.status.is_none() {
        ev.status = Some("confirmed".into());
    }
    if ev.reminders.is_none() {
        ev.reminders = Some(model::Reminders { use_default: Some(true), overrides: None });
    }
    if ev.event_type.is_none() {
        ev.event_type = Some("default".into());
    }
}

/// Stores a write: new log position, `updated`, `etag`.
fn commit(world: &mut World, cal_id: &str, id: &str, mut ev: Event, times: &Times, deleted: bool, now: i64) -> Event {
    let seq = world.next_seq();
    ev.updated = Some(model::format_stamp(now));
    ev.etag = Some(etag_for(now, seq));
    let cal = world.google.calendars.get_mut(cal_id).expect("calendar exists");
    if let Some(uid) = &ev.ical_uid {
        cal.by_ical.insert(uid.clone(), id.to_owned());
    }
    cal.updated_ms = now;
    cal.events.put(id, Item { ev: ev.clone(), seq, start: times.start, end: times.end, updated_ms: now, deleted });
    ev
}

fn write_params() -> &'static [&'static str] {
    &[
        "sendUpdates",
        "sendNotifications",
        "conferenceDataVersion",
        "supportsAttachments",
        "maxAttendees",
        "alwaysIncludeEmail",
        "timeZone",
    ]
}

async fn insert_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(create(&shared, auth, &cal_id, raw, &body, false))
}

async fn import_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(create(&shared, auth, &cal_id, raw, &body, true))
}

fn create(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    raw: Option<String>,
    body: &[u8],
    import: bool,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_WRITE)?;
    let q = Query::parse(raw, write_params())?;
    let mut ev = event_from(json_body(body)?)?;
    model::validate(&ev)?;
    if let Some(sendupdates) = q.get("sendUpdates")
        && !matches!(sendupdates, "all" | "externalOnly" | "none")
    {
        return Err(ApiError::invalid_param("sendUpdates", "Invalid sendUpdates value."));
    }
    if import && ev.ical_uid.is_none() {
        return Err(ApiError::required("Missing iCalUID."));
    }
    sanitize(&mut ev, &q);
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let (cal_key, cal_tz, req_tz) = {
        let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
        (cal.id.clone(), cal.tz, q.tz()?)
    };
    let times = check_times(&mut ev, cal_tz)?;
    let existing_by_uid = if import {
        let cal = &world.google.calendars[&cal_key];
        ev.ical_uid.as_ref().and_then(|u| cal.by_ical.get(u)).cloned()
    } else {
        None
    };
    let id = match (&ev.id, existing_by_uid) {
        // Import of a known iCalUID updates that event in place.
        (_, Some(existing)) => existing,
        (Some(id), None) => {
            if !model::valid_event_id(id) {
                return Err(ApiError::invalid("Invalid resource id value."));
            }
            if world.google.calendars[&cal_key].events.get(id).is_some() {
                return Err(ApiError::new(409, "global", "duplicate", "The requested identifier already exists."));
            }
            id.clone()
        }
        (None, None) => ids::base32hex_id(&mut world.rng),
    };
    let prior = world.google.calendars[&cal_key].events.get(&id).map(|i| i.ev.clone());
    ev.id = Some(id.clone());
    ev.kind = Some("calendar#event".into());
    if ev.ical_uid.is_none() {
        ev.ical_uid = Some(format!("{id}@google.com"));
    }
    ev.created = Some(prior.as_ref().and_then(|p| p.created.clone()).unwrap_or_else(|| model::format_stamp(now)));
    ev.sequence = Some(ev.sequence.unwrap_or(0).max(prior.as_ref().and_then(|p| p.sequence).unwrap_or(0)));
    let owner = model::Person { email: Some(auth.email.clone()), is_self: Some(true), ..Default::default() };
    ev.creator = Some(owner.clone());
    if ev.organizer.is_none() || !import {
        ev.organizer = Some(owner);
    }
    ev.html_link = Some(html_link(&id, &cal_key));
    let stored = commit(&mut world, &cal_key, &id, ev, &times, false, now);
    Ok(Json(render(&stored, req_tz.unwrap_or(cal_tz))).into_response())
}

fn html_link(id: &str, cal: &str) -> String {
    let eid = data_encoding::BASE64URL_NOPAD.encode(format!("{id} {cal}").as_bytes());
    format!("https://www.google.com/calendar/event?eid={eid}")
}

fn if_match(headers: &HeaderMap, etag: Option<&String>) -> ApiResult<()> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some("*") => Ok(()),
        Some(v) if Some(v) == etag.map(String::as_str) => Ok(()),
        Some(_) => Err(ApiError::precondition_failed()),
    }
}

async fn get_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_READ)?;
        let q = Query::parse(raw, &["maxAttendees", "timeZone", "alwaysIncludeEmail"])?;
        let tz = q.tz()?;
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        let item = cal.events.get(&event_id).ok_or_else(ApiError::not_found)?;
        if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
            && item.ev.etag.as_deref() == Some(inm)
        {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        Ok(Json(render(&item.ev, tz.unwrap_or(cal.tz))).into_response())
    })())
}

async fn update_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(modify(&shared, auth, &cal_id, &event_id, raw, &headers, &body, false))
}

async fn patch_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(modify(&shared, auth, &cal_id, &event_id, raw, &headers, &body, true))
}

/// JSON merge patch, except that arrays and `start`/`end` objects replace wholesale and
/// `null` deletes (which is how extended properties are removed).
fn merge(target: &mut Value, patch: Value, top: bool) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else if top && matches!(k.as_str(), "start" | "end") {
                    t.insert(k, v);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v, false);
                }
            }
        }
        (t, p) => *t = p,
    }
}

#[allow(clippy::too_many_arguments)]
fn modify(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    event_id: &str,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
    patch: bool,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_WRITE)?;
    let q = Query::parse(raw, write_params())?;
    let req_tz = q.tz()?;
    let patch_body = json_body(body)?;
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
    let (cal_key, cal_tz) = (cal.id.clone(), cal.tz);
    let current = cal.events.get(event_id).ok_or_else(ApiError::not_found)?.ev.clone();
    if_match(headers, current.etag.as_ref())?;
    let body_sequence = patch_body.get("sequence").and_then(Value::as_i64);
    let mut ev = if patch {
        let mut base = to_value(&current);
        merge(&mut base, patch_body, true);
        event_from(base)?
    } else {
        event_from(patch_body)?
    };
    model::validate(&ev)?;
    let cur_seq = current.sequence.unwrap_or(0);
    if body_sequence.is_some_and(|s| s < cur_seq) {
        return Err(ApiError::invalid(
            "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.",
        ));
    }
    if ev.event_type.is_some() && ev.event_type != current.event_type {
        return Err(ApiError::bad_request("The event type cannot be changed."));
    }
    if let Some(id) = &ev.id
        && id != event_id
    {
        return Err(ApiError::invalid("The event id in the body does not match the request."));
    }
    if ev.ical_uid.is_some() && ev.ical_uid != current.ical_uid {
        return Err(ApiError::invalid("The iCalUID of an event cannot be changed."));
    }
    sanitize(&mut ev, &q);
    let times = check_times(&mut ev, cal_tz)?;
    let time_changed = ev.start != current.start || ev.end != current.end || ev.recurrence != current.recurrence;
    ev.sequence = Some(body_sequence.unwrap_or(cur_seq).max(cur_seq) + i64::from(time_changed));
    // Read-only fields survive a full replacement.
    ev.kind = current.kind.clone();
    ev.id = current.id.clone();
    ev.ical_uid = current.ical_uid.clone();
    ev.created = current.created.clone();
    ev.creator = current.creator.clone();
    ev.organizer = current.organizer.clone();
    ev.html_link = current.html_link.clone();
    ev.event_type = current.event_type.clone();
    let deleted = ev.status.as_deref() == Some("cancelled");
    let stored = commit(&mut world, &cal_key, event_id, ev, &times, deleted, now);
    Ok(Json(render(&stored, req_tz.unwrap_or(cal_tz))).into_response())
}

async fn delete_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_WRITE)?;
        let _q = Query::parse(raw, &["sendUpdates", "sendNotifications"])?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        let cal_key = cal.id.clone();
        let item = cal.events.get(&event_id).ok_or_else(ApiError::not_found)?;
        if item.deleted {
            return Err(ApiError::new(410, "global", "deleted", "Resource has been deleted"));
        }
        if_match(&headers, item.ev.etag.as_ref())?;
        let mut ev = item.ev.clone();
        let times = Times { start: item.start, end: item.end };
        ev.status = Some("cancelled".into());
        commit(&mut world, &cal_key, &event_id, ev, &times, true, now);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}
