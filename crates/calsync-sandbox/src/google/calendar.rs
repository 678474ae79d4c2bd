//! Calendar API v3: routes, shared request helpers (query parsing, calendar lookup,
//! rendering) and calendarList / calendars. Events live in `list`, `instances` and `events`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::model::{self, Event, EventDateTime};
use super::oauth::GoogleAuth;
use super::{Calendar, GoogleWorld, events};
use crate::cursor;
use crate::paging;
use crate::state::{Provider, Shared};

pub(super) const EVENTS_READ: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
];
pub(super) const EVENTS_WRITE: &[&str] = &["calendar", "calendar.events", "calendar.events.owned"];
/// The 2023 discovery document: calendarList and calendars need the calendar scopes proper.
pub(super) const CALENDARS_READ: &[&str] = &["calendar", "calendar.readonly"];

/// Log entries examined per page at most: a sparse filter yields short (even empty) pages
/// with a `nextPageToken`, as Google's do, instead of an unbounded scan.
pub(super) const SCAN_BUDGET: usize = 20_000;

/// Query parameters every Google API accepts.
pub(super) const GLOBAL_PARAMS: &[&str] = &[
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
        .route(&format!("{base}/users/me/calendarList/watch"), post(super::push::watch_calendar_list))
        .route(&format!("{base}/users/me/calendarList/{{calendar_id}}"), get(calendar_list_get))
        .route(&format!("{base}/calendars"), post(super::calendars::insert))
        .route(
            &format!("{base}/calendars/{{calendar_id}}"),
            get(calendar_get)
                .put(super::calendars::update)
                .patch(super::calendars::patch)
                .delete(super::calendars::delete),
        )
        .route(&format!("{base}/freeBusy"), post(super::calendars::free_busy))
        .route(&format!("{base}/calendars/{{calendar_id}}/clear"), post(super::calendars::clear))
        .route(&format!("{base}/calendars/{{calendar_id}}/events/quickAdd"), post(events::quick_add))
        .route(&format!("{base}/calendars/{{calendar_id}}/events/{{event_id}}/move"), post(events::move_event))
        .route(
            &format!("{base}/calendars/{{calendar_id}}/events"),
            get(super::list::list_events).post(events::insert_event),
        )
        .route(&format!("{base}/calendars/{{calendar_id}}/events/import"), post(events::import_event))
        .route(&format!("{base}/calendars/{{calendar_id}}/events/watch"), post(super::push::watch))
        .route(&format!("{base}/channels/stop"), post(super::push::stop))
        .route(
            &format!("{base}/calendars/{{calendar_id}}/events/{{event_id}}"),
            get(events::get_event).put(events::update_event).patch(events::patch_event).delete(events::delete_event),
        )
        .route(
            &format!("{base}/calendars/{{calendar_id}}/events/{{event_id}}/instances"),
            get(super::instances::list_instances),
        )
}

/// Parsed query string; repeated names are kept (extended-property filters repeat).
pub(super) struct Query(pub(super) Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: Option<String>, allowed: &[&str]) -> ApiResult<Self> {
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

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_param(name, &format!("Invalid boolean value: '{v}'."))),
        }
    }

    pub(super) fn time(&self, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::bad_request("Bad Request").at("parameter", name))
            })
            .transpose()
    }

    pub(super) fn tz(&self) -> ApiResult<Option<Tz>> {
        self.get("timeZone")
            .map(|v| model::parse_tz(v).ok_or_else(|| ApiError::invalid_param("timeZone", "Invalid time zone.")))
            .transpose()
    }

    /// Everything but the page token, order-independent: a page token is only valid for
    /// the identical request.
    pub(super) fn fingerprint(&self, cal: &str) -> String {
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
pub(super) fn calendar_mut<'a>(
    google: &'a mut GoogleWorld,
    auth: &GoogleAuth,
    cal_id: &str,
) -> ApiResult<&'a mut Calendar> {
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

pub(super) fn epoch_of(google: &GoogleWorld, email: &str) -> u32 {
    google.accounts.get(email).map_or(0, |a| a.epoch)
}

pub(super) fn json_body(body: &[u8]) -> ApiResult<Value> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::new(400, "global", "parseError", "Parse Error"))?;
    if !value.is_object() {
        return Err(ApiError::new(400, "global", "parseError", "Parse Error"));
    }
    Ok(value)
}

pub(super) fn event_from(value: Value) -> ApiResult<Event> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid(&format!("Invalid JSON payload received. {e}")))
}

// ---------------------------------------------------------------------------------------
// Rendering

pub(super) fn etag_for(updated_ms: i64, seq: u64) -> String {
    // Numeric like Google's ("\"3181161784712000\""); the low digits make every edit's
    // etag distinct even within one millisecond.
    format!("\"{}\"", updated_ms * 2000 + (seq % 1000) as i64)
}

pub(super) fn render_time(edt: &EventDateTime, tz: Tz) -> EventDateTime {
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
pub(super) fn render(ev: &Event, tz: Tz) -> Event {
    let mut out = ev.clone();
    out.start = ev.start.as_ref().map(|s| render_time(s, tz));
    out.end = ev.end.as_ref().map(|s| render_time(s, tz));
    out.original_start_time = ev.original_start_time.as_ref().map(|s| render_time(s, tz));
    out
}

pub(super) fn to_value(ev: &Event) -> Value {
    serde_json::to_value(ev).expect("event serializes")
}

/// A deleted event in a list: only what Google guarantees.
/// A cancelled exception of a series additionally carries `recurringEventId` and
/// `originalStartTime` (B.5 point 3).
pub(super) fn stub(ev: &Event, tz: Tz) -> Value {
    let mut v = json!({"kind": "calendar#event", "etag": ev.etag, "id": ev.id, "status": "cancelled"});
    if let (Some(rid), Some(orig)) = (&ev.recurring_event_id, &ev.original_start_time) {
        v["recurringEventId"] = json!(rid);
        v["originalStartTime"] = serde_json::to_value(render_time(orig, tz)).expect("serializes");
    }
    v
}

// ---------------------------------------------------------------------------------------
// calendarList / calendars

pub(super) fn list_entry(cal: &Calendar) -> Value {
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
pub(super) struct ListCursor {
    /// Account e-mail the token belongs to.
    a: String,
    fp: String,
    ep: u32,
    /// Sync position (change sequence).
    s: u64,
    /// Offset into the entry list, for page tokens.
    o: usize,
}

pub(super) async fn calendar_list(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(calendar_list_inner(&shared, auth, raw))
}

pub(super) fn calendar_list_inner(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    raw: Option<String>,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(CALENDARS_READ)?;
    let q = Query::parse(raw, &["maxResults", "pageToken", "syncToken", "showDeleted", "showHidden", "minAccessRole"])?;
    let max = parse_max(&q, 100, 250)?;
    let mut world = shared.world();
    let page_max = paging::page_len(shared.paging(Provider::Google), &mut world.rng, max);
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
    let page: Vec<Value> = entries.iter().skip(offset).take(page_max).map(|c| list_entry(c)).collect();
    let mut body = json!({"kind": "calendar#calendarList", "etag": format!("\"{}\"", world.seq()), "items": page});
    let next = offset + page_max;
    let tok = ListCursor { a: auth.email.clone(), fp, ep: account.epoch, s: world.seq(), o: next };
    if next < entries.len() {
        body["nextPageToken"] = json!(cursor::encode(&tok));
    } else {
        body["nextSyncToken"] = json!(cursor::encode(&ListCursor { o: 0, ..tok }));
    }
    Ok(Json(body).into_response())
}

pub(super) async fn calendar_list_get(
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

pub(super) async fn calendar_get(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(CALENDARS_READ)?;
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        Ok(Json(super::calendars::calendar_json(cal)).into_response())
    })())
}

pub(super) fn respond(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

pub(super) fn parse_max(q: &Query, default: usize, max: usize) -> ApiResult<usize> {
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
