//! events.instances: one series' occurrences in a window, with its exceptions in place
//! of the occurrences they replace, expanded from the window (or the page cursor) on.

use std::rc::Rc;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::calendar::*;
use super::error::{ApiError, ApiResult};
use super::list::{PageCursor, Row, RowKey, envelope};
use super::oauth::GoogleAuth;
use super::series;
use crate::cursor;
use crate::paging;
use crate::recurrence::Occ;
use crate::state::{Provider, Shared};

const INSTANCES_PARAMS: &[&str] = &[
    "maxResults",
    "pageToken",
    "timeMin",
    "timeMax",
    "showDeleted",
    "originalStart",
    "timeZone",
    "maxAttendees",
    "alwaysIncludeEmail",
];

pub(super) async fn list_instances(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path((cal_id, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(instances_inner(&shared, auth, &cal_id, &event_id, raw))
}

fn instances_inner(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    event_id: &str,
    raw: Option<String>,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_READ)?;
    let q = Query::parse(raw, INSTANCES_PARAMS)?;
    let max = parse_max(&q, 250, 2500)?;
    let time_min = q.time("timeMin")?.map(|t| t.timestamp_millis());
    let time_max = q.time("timeMax")?.map(|t| t.timestamp_millis());
    if let (Some(a), Some(b)) = (time_min, time_max)
        && a >= b
    {
        return Err(ApiError::new(400, "calendar", "timeRangeEmpty", "The specified time range is empty.")
            .at("parameter", "timeMax"));
    }
    let show_deleted = q.bool("showDeleted")?.unwrap_or(false);
    let original = q
        .get("originalStart")
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| Occ::At(t.with_timezone(&Utc)))
                .or_else(|_| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map(Occ::Date))
                .map_err(|_| ApiError::invalid_param("originalStart", "Invalid originalStart."))
        })
        .transpose()?;
    let req_tz = q.tz()?;
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let page_max = paging::page_len(shared.paging(Provider::Google), &mut world.rng, max);
    let snapshot = world.seq();
    let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
    let master = cal.events.get(event_id).ok_or_else(ApiError::not_found)?;
    if master.deleted {
        return Err(ApiError::new(410, "global", "deleted", "Resource has been deleted"));
    }
    let info = match series::master_info(&master.ev)? {
        Some(i) => Rc::new(i),
        None => {
            return Err(ApiError::bad_request("The requested event is not a recurring event."));
        }
    };
    let mid = event_id;
    let fp = q.fingerprint(&format!("{}/{mid}", cal.id));
    let after = match q.get("pageToken") {
        Some(t) => {
            let c: PageCursor =
                cursor::decode(t).ok_or_else(|| ApiError::invalid_param("pageToken", "Invalid page token."))?;
            if c.c != cal.id || c.fp != fp {
                return Err(ApiError::invalid_param("pageToken", "Invalid page token."));
            }
            c.v
        }
        None => None,
    };
    let fresh = |k: &RowKey| after.as_ref().is_none_or(|a| k > a);
    // events.instances reads timeMin inclusively (spec, discrepancies section).
    let in_window = |s: i64, e: i64| time_min.is_none_or(|t| e >= t) && time_max.is_none_or(|t| s < t);
    let mut rows: Vec<(RowKey, Row<'_>)> = Vec::new();
    // Exceptions keep their own (possibly moved) times; each replaces its occurrence.
    let prefix = format!("{mid}_");
    for id in cal.events.ids().filter(|i| i.starts_with(&prefix)) {
        let Some(ex) = series::stored_exception(cal, id, mid) else { continue };
        let occ = series::exception_occ(&ex.ev);
        let k = (ex.start, 0, id.clone());
        if (ex.deleted && !show_deleted) || original.is_some_and(|o| Some(o) != occ) {
            continue;
        }
        if in_window(ex.start, ex.end) && fresh(&k) {
            rows.push((k, Row::Stored(ex)));
        }
    }
    // Occurrences from the window (or the cursor) on, only as many as the page needs.
    let min_start = after.as_ref().map(|a| a.0);
    let until = series::expansion_end(time_max, time_min, now);
    let occs: Box<dyn Iterator<Item = Occ>> = match original {
        Some(o) => Box::new(info.has(o, cal.tz).then_some(o).into_iter()),
        None => Box::new(info.occurrences_between(time_min, min_start, until, cal.tz)),
    };
    let mut taken = 0;
    for occ in occs {
        if taken > page_max {
            break;
        }
        let (s, e) = info.span(occ, cal.tz);
        let id = series::instance_id(mid, occ);
        let k = (s, 0, id.clone());
        if !in_window(s, e) || !fresh(&k) || series::stored_exception(cal, &id, mid).is_some() {
            continue;
        }
        rows.push((k, Row::Instance(master, info.clone(), occ)));
        taken += 1;
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let tz = req_tz.unwrap_or(cal.tz);
    let shown = rows.len().min(page_max);
    let items = rows[..shown].iter().map(|(_, r)| r.render(tz)).collect();
    let mut body = envelope(cal, snapshot, items);
    if rows.len() > page_max {
        let c = PageCursor {
            c: cal.id.clone(),
            fp,
            ep: 0,
            e: snapshot,
            p: 0,
            k: None,
            v: rows[..shown].last().map(|(k, _)| k.clone()).or(after),
            w: None,
        };
        body["nextPageToken"] = json!(cursor::encode(&c));
    }
    Ok(Json(body).into_response())
}
