//! Secondary calendars (`calendars.insert/patch/update/delete`, whose calendarList entries
//! appear and disappear through calendarList sync) and `freeBusy`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::calendar::{Query, calendar_mut, json_body, respond};
use super::error::{ApiError, ApiResult};
use super::oauth::GoogleAuth;
use super::{Calendar, model, series};
use crate::ids;
use crate::state::Shared;
use crate::store::EventStore;

const CALENDARS_WRITE: &[&str] = &["calendar", "calendar.calendars"];
const FREEBUSY: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.freebusy",
    "calendar.events.freebusy",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Read-only fields clients may echo back.
struct CalendarReq {
    kind: Option<String>,
    etag: Option<String>,
    id: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    location: Option<String>,
    time_zone: Option<String>,
    conference_properties: Option<Value>,
}

pub(super) fn calendar_json(cal: &Calendar) -> Value {
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
    v
}

fn parse(body: &[u8]) -> ApiResult<CalendarReq> {
    serde_json::from_value(json_body(body)?)
        .map_err(|e| ApiError::invalid(&format!("Invalid JSON payload received. {e}")))
}

fn zone(name: Option<&str>) -> ApiResult<Option<chrono_tz::Tz>> {
    name.map(|n| model::parse_tz(n).ok_or_else(|| ApiError::invalid("Invalid time zone."))).transpose()
}

pub(super) async fn insert(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(CALENDARS_WRITE)?;
        let _q = Query::parse(raw, &[])?;
        let req = parse(&body)?;
        let summary = req.summary.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::required("Missing title."))?;
        let tz = zone(req.time_zone.as_deref())?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let primary_tz = {
            let acc = world.google.accounts.get(&auth.email).ok_or_else(ApiError::not_found)?;
            world.google.calendars[&acc.calendars[0]].tz
        };
        let tz = tz.unwrap_or(primary_tz);
        let id = format!("{}@group.calendar.google.com", ids::base32hex_id(&mut world.rng));
        let seq = world.next_seq();
        let cal = Calendar {
            id: id.clone(),
            summary,
            description: req.description,
            time_zone: tz.name().to_owned(),
            tz,
            primary: false,
            deleted: false,
            list_seq: seq,
            updated_ms: now,
            events: EventStore::default(),
            by_ical: HashMap::new(),
            expanded: None,
        };
        let out = calendar_json(&cal);
        world.google.calendars.insert(id.clone(), cal);
        world.google.accounts.get_mut(&auth.email).expect("exists").calendars.push(id);
        super::push::notify(&mut world, &super::push::calendar_list_key(&auth.email), now);
        Ok(Json(out).into_response())
    })())
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(modify(&shared, auth, &cal_id, raw, &body, false))
}

pub(super) async fn patch(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(modify(&shared, auth, &cal_id, raw, &body, true))
}

fn modify(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    raw: Option<String>,
    body: &[u8],
    patch: bool,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(CALENDARS_WRITE)?;
    let _q = Query::parse(raw, &[])?;
    let req = parse(body)?;
    if !patch && req.summary.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::required("Missing title."));
    }
    let tz = zone(req.time_zone.as_deref())?;
    let mut world = shared.world();
    let seq = world.next_seq();
    let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
    if let Some(s) = req.summary {
        cal.summary = s;
    }
    // PUT replaces: an omitted description is cleared.
    if req.description.is_some() || !patch {
        cal.description = req.description;
    }
    if let Some(tz) = tz {
        cal.tz = tz;
        cal.time_zone = tz.name().to_owned();
    }
    cal.list_seq = seq;
    let out = calendar_json(cal);
    let now = shared.clock.now_ms();
    super::push::notify(&mut world, &super::push::calendar_list_key(&auth.email), now);
    Ok(Json(out).into_response())
}

pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(CALENDARS_WRITE)?;
        let mut world = shared.world();
        let seq = world.next_seq();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        if cal.primary {
            return Err(ApiError::new(
                400,
                "global",
                "cannotDeletePrimaryCalendar",
                "The primary calendar cannot be deleted; use calendars.clear.",
            ));
        }
        // The entry stays as a deleted calendarList entry for incremental sync.
        cal.deleted = true;
        cal.list_seq = seq;
        let now = shared.clock.now_ms();
        super::push::notify(&mut world, &super::push::calendar_list_key(&auth.email), now);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FreeBusyReq {
    time_min: String,
    time_max: String,
    time_zone: Option<String>,
    group_expansion_max: Option<u32>,
    calendar_expansion_max: Option<u32>,
    items: Vec<FreeBusyItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreeBusyItem {
    id: String,
}

fn instant(v: &str, name: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request("Bad Request").at("parameter", name))
}

pub(super) async fn free_busy(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(FREEBUSY)?;
        let _q = Query::parse(raw, &[])?;
        let req: FreeBusyReq = serde_json::from_value(json_body(&body)?)
            .map_err(|e| ApiError::invalid(&format!("Invalid JSON payload received. {e}")))?;
        let (tmin, tmax) = (instant(&req.time_min, "timeMin")?, instant(&req.time_max, "timeMax")?);
        if tmin >= tmax {
            return Err(ApiError::new(400, "calendar", "timeRangeEmpty", "The specified time range is empty."));
        }
        if req.calendar_expansion_max.is_some_and(|n| n > 50) || req.group_expansion_max.is_some_and(|n| n > 100) {
            return Err(ApiError::invalid("Invalid expansion maximum."));
        }
        if req.items.len() > req.calendar_expansion_max.unwrap_or(50) as usize {
            return Err(ApiError::new(400, "calendar", "tooManyCalendarsRequested", "Too many calendars requested."));
        }
        let out_tz = zone(req.time_zone.as_deref())?.unwrap_or(chrono_tz::Tz::UTC);
        let (a, b) = (tmin.timestamp_millis(), tmax.timestamp_millis());
        let mut world = shared.world();
        let mut calendars = serde_json::Map::new();
        for item in &req.items {
            let Ok(cal) = calendar_mut(&mut world.google, &auth, &item.id) else {
                calendars.insert(
                    item.id.clone(),
                    json!({"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}),
                );
                continue;
            };
            let mut busy: Vec<(i64, i64)> = Vec::new();
            for (_, it) in cal.events.by_start_from(None, Some(a)) {
                if it.start >= b {
                    break;
                }
                let ev = &it.ev;
                if it.deleted || ev.transparency.as_deref() == Some("transparent") {
                    continue;
                }
                match series::master_info(ev) {
                    Ok(Some(info)) => {
                        let mid = ev.id.as_deref().unwrap_or_default();
                        // From the window on, however long ago the series began.
                        for occ in info.occurrences_between(Some(a), None, b, cal.tz) {
                            let (s, e) = info.span(occ, cal.tz);
                            let replaced = series::stored_exception(cal, &series::instance_id(mid, occ), mid).is_some();
                            if e > a && !replaced {
                                busy.push((s, e));
                            }
                        }
                    }
                    _ if it.end > a => busy.push((it.start, it.end)),
                    _ => {}
                }
            }
            busy.sort();
            // Overlapping busy periods merge, as Google reports them.
            let mut merged: Vec<(i64, i64)> = Vec::new();
            for (s, e) in busy {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s.max(a), e.min(b))),
                }
            }
            let fmt = |ms: i64| model::format_instant(DateTime::from_timestamp_millis(ms).unwrap_or_default(), out_tz);
            let periods: Vec<Value> =
                merged.iter().map(|(s, e)| json!({"start": fmt(*s), "end": fmt((*e).min(b))})).collect();
            // Keyed as requested (`primary` stays `primary`).
            calendars.insert(item.id.clone(), json!({"busy": periods}));
        }
        Ok(Json(json!({
            "kind": "calendar#freeBusy",
            "timeMin": tmin.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "timeMax": tmax.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "calendars": calendars,
        }))
        .into_response())
    })())
}

/// `calendars.clear`: deletes every event of the primary calendar (secondary calendars are
/// deleted instead, so Google refuses them here).
pub(super) async fn clear(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(CALENDARS_WRITE)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = calendar_mut(&mut world.google, &auth, &cal_id)?;
        if !cal.primary {
            return Err(ApiError::bad_request("Only the primary calendar can be cleared."));
        }
        let key = cal.id.clone();
        let live: Vec<(String, super::model::Event, i64, i64)> = cal
            .events
            .ids()
            .filter_map(|id| {
                cal.events.get(id).filter(|i| !i.deleted).map(|i| (id.clone(), (*i.ev).clone(), i.start, i.end))
            })
            .collect();
        for (id, mut ev, start, end) in live {
            ev.status = Some("cancelled".into());
            // Exceptions go with their series: plain deletions now.
            ev.recurring_event_id = None;
            super::write::commit(&mut world, &key, &id, ev, &super::write::Times { start, end }, true, now);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}
