//! Graph listings: `/events`, calendarView, calendarView/delta and `/events/{id}/instances`,
//! with series expansion, `$select` projection and skip/delta tokens.

use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;

use axum::Json;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};
use super::graph::{
    DEFAULT_PAGE, GEvent, MAX_PAGE, READ, calendar_id, prefer, render, respond, utc_stamp, with_preference,
};
use super::identity::GraphAuth;
use super::series::{self, GSeries};
use super::{MsCalendar, MsWorld};
use crate::cursor;
use crate::recurrence::{MAX_EXPANSION, Occ};
use crate::state::Shared;
use crate::store::Item;

#[derive(Serialize, Deserialize)]
struct ViewCursor {
    c: String,
    ep: u32,
    /// Window in epoch ms (`None` for plain `/events`).
    w: Option<(i64, i64)>,
    /// Delta only: `false` while the initial round runs, then incremental.
    inc: bool,
    /// Incremental: log position already delivered; round end snapshot.
    p: u64,
    e: u64,
    /// The last row key delivered on this round's pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<RowKey>,
}

/// Sort key of a listing row: (start or change position, start, id).
type RowKey = (i64, i64, String);

fn parse_window_bound(q: &[(String, String)], name: &str) -> GraphResult<Option<i64>> {
    let Some((_, v)) = q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.timestamp_millis()));
    }
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| Some(n.and_utc().timestamp_millis()))
        .map_err(|_| GraphError::invalid_param(&format!("The value '{v}' of parameter '{name}' is invalid.")))
}

fn window_required() -> GraphError {
    GraphError::invalid_param(
        "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
    )
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

struct ListReq<'a> {
    cal: Option<&'a str>,
    mode: Mode,
    path: String,
    /// The series master of `/events/{id}/instances`.
    master: Option<String>,
}

#[derive(PartialEq, Clone, Copy)]
enum Mode {
    Events,
    View,
    Delta,
    Instances,
}

pub(super) async fn list_default_events(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: None, mode: Mode::Events, path: rel_path(&uri), master: None }, q, &h))
}
pub(super) async fn list_events(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    Path(cal): Path<String>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: Some(&cal), mode: Mode::Events, path: rel_path(&uri), master: None }, q, &h))
}
pub(super) async fn view_default(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: None, mode: Mode::View, path: rel_path(&uri), master: None }, q, &h))
}
pub(super) async fn view(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    Path(cal): Path<String>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: Some(&cal), mode: Mode::View, path: rel_path(&uri), master: None }, q, &h))
}
pub(super) async fn delta_default(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: None, mode: Mode::Delta, path: rel_path(&uri), master: None }, q, &h))
}
pub(super) async fn delta(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    Path(cal): Path<String>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: Some(&cal), mode: Mode::Delta, path: rel_path(&uri), master: None }, q, &h))
}

/// The request path below the sandbox root, wherever the sandbox is mounted.
fn rel_path(uri: &OriginalUri) -> String {
    let p = uri.0.path();
    p.find("/microsoft/graph/").map_or(p, |i| &p[i..]).to_owned()
}

pub(super) async fn instances(
    State(s): State<Arc<Shared>>,
    a: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    respond(listing(&s, a, ListReq { cal: None, mode: Mode::Instances, path: rel_path(&uri), master: Some(id) }, q, &h))
}

fn listing(
    shared: &Shared,
    auth: GraphResult<GraphAuth>,
    req: ListReq<'_>,
    raw: Option<String>,
    headers: &HeaderMap,
) -> GraphResult<Response> {
    let auth = auth?;
    auth.require(READ)?;
    let pref = prefer(headers)?;
    let q = query_pairs(raw);
    let token_param = q.iter().find(|(k, _)| k == "$skiptoken" || k == "$deltatoken").map(|(_, v)| v.clone());
    let start = parse_window_bound(&q, "startDateTime")?;
    let end = parse_window_bound(&q, "endDateTime")?;
    for (k, _) in &q {
        let ok = match req.mode {
            Mode::Delta => matches!(k.as_str(), "startDateTime" | "endDateTime" | "$skiptoken" | "$deltatoken"),
            Mode::View | Mode::Instances => matches!(
                k.as_str(),
                "startDateTime" | "endDateTime" | "$skiptoken" | "$top" | "$select" | "$orderby" | "$filter"
            ),
            Mode::Events => matches!(k.as_str(), "$skiptoken" | "$top" | "$select" | "$orderby" | "$filter"),
        };
        if !ok {
            return Err(GraphError::bad_request(&format!(
                "The query parameter '{k}' is not supported with this request."
            )));
        }
    }
    // Query options are honoured or rejected, never silently ignored.
    let select: Option<Vec<String>> = q
        .iter()
        .find(|(k, _)| k == "$select")
        .map(|(_, v)| v.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect());
    if let Some((_, v)) = q.iter().find(|(k, _)| k == "$orderby")
        && !matches!(v.trim(), "start/dateTime" | "start/dateTime asc")
    {
        return Err(GraphError::bad_request("The sandbox only supports $orderby=start/dateTime (the natural order)."));
    }
    if q.iter().any(|(k, _)| k == "$filter") {
        return Err(GraphError::new(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The sandbox does not evaluate $filter and rejects it rather than ignoring it.",
        ));
    }
    let page = pref
        .page
        .or_else(|| q.iter().find(|(k, _)| k == "$top").and_then(|(_, v)| v.parse().ok()))
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let world = shared.world();
    let cal_id = match &req.master {
        Some(m) => locate_master(&world.microsoft, &auth, m)?,
        None => calendar_id(&world.microsoft, &auth, req.cal)?,
    };
    let epoch = world.microsoft.accounts[&auth.email].epoch;
    let head = world.seq();
    let cal = &world.microsoft.calendars[&cal_id];

    let cursor: ViewCursor = match &token_param {
        Some(t) => {
            // The window lives in the token; sending it again is a client bug.
            if start.is_some() || end.is_some() {
                return Err(GraphError::bad_request(
                    "startDateTime/endDateTime cannot be combined with a $skiptoken or $deltatoken.",
                ));
            }
            let c: ViewCursor = cursor::decode(t).ok_or_else(GraphError::sync_state_not_found)?;
            if c.c != cal_id {
                return Err(GraphError::sync_state_not_found());
            }
            if req.mode == Mode::Delta && c.ep != epoch {
                let mut e = GraphError::sync_state_not_found();
                if let Some((ws, we)) = c.w {
                    e.location = Some(shared.public_url(&format!(
                        "{}?startDateTime={}&endDateTime={}",
                        req.path,
                        utc_stamp(ws),
                        utc_stamp(we)
                    )));
                }
                return Err(e);
            }
            // A deltaLink starts the next round: the snapshot moves to now.
            if c.inc && q.iter().any(|(k, _)| k == "$deltatoken") { ViewCursor { e: head, ..c } } else { c }
        }
        None => {
            let w = match (req.mode, start, end) {
                (Mode::Events, _, _) => None,
                (_, Some(s), Some(e)) => Some((s, e)),
                _ => return Err(window_required()),
            };
            ViewCursor { c: cal_id.clone(), ep: epoch, w, inc: false, p: 0, e: head, v: None }
        }
    };
    let owner = auth.email.as_str();
    let zone = pref.tz.as_ref();
    let mut rows = collect_rows(cal, req.mode, &cursor, req.master.as_deref(), page + 1);
    // Only the page (plus one, to know whether more remain) is ordered and rendered.
    rows.retain(|(k, _)| cursor.v.as_ref().is_none_or(|v| k > v));
    if rows.len() > page + 1 {
        rows.select_nth_unstable_by(page, |a, b| a.0.cmp(&b.0));
        rows.truncate(page + 1);
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let done = rows.len() <= page;
    rows.truncate(page);
    let last = rows.last().map(|(k, _)| k.clone());
    // Only `Arc`s (and synthesized occurrences) leave the lock; JSON is built after it.
    let pending: Vec<Pending> = rows.iter().map(|(_, r)| r.pending()).collect();
    drop(rows);
    drop(world);
    let items: Vec<Value> = pending
        .iter()
        .map(|p| {
            let v = p.render(owner, zone);
            match &select {
                Some(fields) if v.get("@removed").is_none() => project(v, fields),
                _ => Ok(v),
            }
        })
        .collect::<GraphResult<_>>()?;
    let mut body =
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)", "value": items});
    if !done {
        let next = ViewCursor { v: last, ..cursor_clone(&cursor) };
        let mut link = format!("{}?$skiptoken={}", req.path, cursor::encode(&next));
        if let Some(fields) = &select {
            link.push_str(&format!("&$select={}", fields.join(",")));
        }
        body["@odata.nextLink"] = json!(shared.public_url(&link));
    } else if req.mode == Mode::Delta {
        let round_end = ViewCursor { inc: true, p: cursor.e, v: None, ..cursor_clone(&cursor) };
        body["@odata.deltaLink"] =
            json!(shared.public_url(&format!("{}?$deltatoken={}", req.path, cursor::encode(&round_end))));
    }
    Ok(with_preference(Json(body).into_response(), &pref))
}

fn cursor_clone(c: &ViewCursor) -> ViewCursor {
    ViewCursor { c: c.c.clone(), ep: c.ep, w: c.w, inc: c.inc, p: c.p, e: c.e, v: c.v.clone() }
}

/// `$select`: the named properties plus `id` and `@odata.etag`, which Graph always sends.
fn project(v: Value, fields: &[String]) -> GraphResult<Value> {
    let Value::Object(map) = v else { return Ok(v) };
    let mut out = Map::new();
    for f in fields {
        match map.get(f.as_str()) {
            Some(x) => {
                out.insert(f.clone(), x.clone());
            }
            None => {
                return Err(GraphError::bad_request(&format!(
                    "Could not find a property named '{f}' on type 'microsoft.graph.event'."
                )));
            }
        }
    }
    for k in ["@odata.etag", "id"] {
        if let Some(x) = map.get(k) {
            out.insert(k.to_owned(), x.clone());
        }
    }
    Ok(Value::Object(out))
}

/// The calendar holding a live series master (for `/events/{id}/instances`).
fn locate_master(microsoft: &MsWorld, auth: &GraphAuth, id: &str) -> GraphResult<String> {
    let acc = microsoft.accounts.get(&auth.email).ok_or_else(GraphError::not_found)?;
    acc.calendars
        .iter()
        .find(|c| microsoft.calendars.get(*c).and_then(|cal| cal.events.get(id)).is_some_and(|i| !i.deleted))
        .cloned()
        .ok_or_else(GraphError::not_found)
}

/// One row of a listing.
enum Row<'a> {
    Stored(&'a Item<Arc<GEvent>>),
    Occurrence(&'a Item<Arc<GEvent>>, Rc<GSeries>, Occ),
    Removed(String),
}

impl Row<'_> {
    fn pending(&self) -> Pending {
        match self {
            Row::Stored(i) => Pending::Event(i.ev.clone(), i.updated_ms),
            Row::Occurrence(m, g, occ) => Pending::Event(Arc::new(g.occurrence(&m.ev, *occ)), m.updated_ms),
            Row::Removed(id) => Pending::Removed(id.clone()),
        }
    }
}

/// A page item awaiting rendering outside the world lock.
enum Pending {
    Event(Arc<GEvent>, i64),
    Removed(String),
}

impl Pending {
    fn render(&self, owner: &str, zone: Option<&(String, Tz)>) -> Value {
        match self {
            Pending::Event(ev, modified) => render(ev, *modified, owner, zone),
            // Deleted, or changed outside the window: both arrive as removals.
            Pending::Removed(id) => {
                json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
            }
        }
    }
}

/// Every row of the listing (unordered). `/events` lists singles and series masters;
/// calendarView, delta and instances list singles, occurrences and exceptions, never
/// masters; incremental delta walks the change log and expands changed masters.
fn collect_rows<'a>(
    cal: &'a MsCalendar,
    mode: Mode,
    cursor: &ViewCursor,
    master: Option<&str>,
    limit: usize,
) -> Vec<(RowKey, Row<'a>)> {
    let w = cursor.w;
    let overlaps = |s: i64, e: i64| w.is_none_or(|(ws, we)| s < we && e > ws);
    let mut rows = Vec::new();
    // Occurrences of a live master inside the window, minus stored exceptions.
    let expand = |item: &'a Item<Arc<GEvent>>, rows: &mut Vec<(RowKey, Row<'a>)>, seq: Option<i64>, removed: bool| {
        let Some(g) = series::master_series(&item.ev) else { return };
        let g = Rc::new(g);
        for occ in g.series.occurrences().take(MAX_EXPANSION) {
            let (s, e) = g.span(occ);
            if w.is_some_and(|(_, we)| s >= we) {
                break;
            }
            if !overlaps(s, e) {
                continue;
            }
            let id = series::occurrence_id(&item.ev.id, occ);
            let key = (seq.unwrap_or(s), s, id.clone());
            if removed {
                rows.push((key, Row::Removed(id)));
            } else if series::stored_exception(cal, &id, &item.ev.id).is_none() {
                rows.push((key, Row::Occurrence(item, g.clone(), occ)));
            }
        }
    };
    if let (Mode::Instances, Some(mid)) = (mode, master) {
        let Some(m) = cal.events.get(mid).filter(|m| !m.deleted) else { return rows };
        expand(m, &mut rows, None, false);
        let prefix = format!("{mid}_");
        for id in cal.events.ids().filter(|i| i.starts_with(&prefix)) {
            if let Some(ex) = series::stored_exception(cal, id, mid)
                && !ex.deleted
                && overlaps(ex.start, ex.end)
            {
                rows.push(((ex.start, ex.start, id.clone()), Row::Stored(ex)));
            }
        }
        return rows;
    }
    if cursor.inc {
        for (id, item) in cal.events.log_range(cursor.p, cursor.e) {
            let seq = Some(item.seq as i64);
            if item.ev.link.is_none() && series::master_series(&item.ev).is_some() {
                expand(item, &mut rows, seq, item.deleted);
            } else if !item.deleted && overlaps(item.start, item.end) {
                rows.push(((item.seq as i64, item.start, id.clone()), Row::Stored(item)));
            } else {
                rows.push(((item.seq as i64, item.start, id.clone()), Row::Removed(id.clone())));
            }
        }
        return rows;
    }
    // Start-ordered walk from the page cursor (the store widens the floor by the longest
    // span, so earlier series still contribute), stopping once `limit` rows are certain:
    // every later item starts after the largest kept key.
    let floor = match (w.map(|(ws, _)| ws), cursor.v.as_ref().map(|v| v.0)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut smallest: BinaryHeap<RowKey> = BinaryHeap::new();
    for (id, item) in cal.events.by_start_from(None, floor) {
        if w.is_some_and(|(_, we)| item.start >= we) {
            break;
        }
        if smallest.len() >= limit && smallest.peek().is_some_and(|top| item.start > top.0) {
            break;
        }
        let before = rows.len();
        if !item.deleted {
            admit_item(cal, mode, id, item, &mut rows, &expand, &overlaps);
        }
        for (k, _) in &rows[before..] {
            if cursor.v.as_ref().is_none_or(|v| k > v) {
                smallest.push(k.clone());
                if smallest.len() > limit {
                    smallest.pop();
                }
            }
        }
    }
    rows
}

/// Expands a master's occurrences into rows: `(master, rows, change position, removed)`.
type Expand<'a, 'f> = dyn Fn(&'a Item<Arc<GEvent>>, &mut Vec<(RowKey, Row<'a>)>, Option<i64>, bool) + 'f;

/// Adds the rows one stored item contributes to a full listing.
fn admit_item<'a>(
    _cal: &'a MsCalendar,
    mode: Mode,
    id: &str,
    item: &'a Item<Arc<GEvent>>,
    rows: &mut Vec<(RowKey, Row<'a>)>,
    expand: &Expand<'a, '_>,
    overlaps: &dyn Fn(i64, i64) -> bool,
) {
    {
        let is_master = item.ev.link.is_none() && item.ev.props.get("recurrence").is_some_and(|r| !r.is_null());
        match mode {
            Mode::Events if item.ev.link.is_some() => {}
            Mode::Events => rows.push(((item.start, 0, id.to_owned()), Row::Stored(item))),
            _ if is_master => expand(item, rows, None, false),
            _ if overlaps(item.start, item.end) => rows.push(((item.start, 0, id.to_owned()), Row::Stored(item))),
            _ => {}
        }
    }
}
