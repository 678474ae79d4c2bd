//! Graph listings: `/events`, calendarView, calendarView/delta and `/events/{id}/instances`,
//! with `$select` projection, one extended property through `$expand` (and `$filter` on
//! `/events`), skip/delta tokens and, when the control API asks for it, ragged pages. The
//! rows themselves come from [`super::rows`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{OriginalUri, RawPathParams, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use chrono::{DateTime, NaiveDateTime};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};
use super::graph::{DEFAULT_PAGE, MAX_PAGE, READ, calendar_id, look, prefer, respond, utc_stamp, with_preference};
use super::identity::GraphAuth;
use super::rows::{Pending, RowKey, collect_rows, repeat_row};
use super::{MsWorld, extprops};
use crate::cursor;
use crate::paging::{page_len, repeat_id};
use crate::state::{Provider, Shared};

#[derive(Serialize, Deserialize, Clone)]
pub(super) struct ViewCursor {
    pub(super) c: String,
    pub(super) ep: u32,
    /// Window in epoch ms (`None` for plain `/events`).
    pub(super) w: Option<(i64, i64)>,
    /// Delta only: `false` while the initial round runs, then incremental.
    pub(super) inc: bool,
    /// Incremental: log position already delivered; round end snapshot.
    pub(super) p: u64,
    pub(super) e: u64,
    /// The last row key delivered on this round's pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) v: Option<RowKey>,
    /// `$expand`ed extended property (canonical id), kept across pages and rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) x: Option<String>,
    /// `/events` `$filter` on an extended property: (canonical id, value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) f: Option<(String, String)>,
    /// Ragged delta: an id from an earlier page of this round, sent again in its current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) r: Option<String>,
}

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
pub(super) enum Mode {
    Events,
    View,
    Delta,
    Instances,
}

/// The GET handler of every listing route, told its mode by the route table; the calendar
/// (`{cal}`) and the series master (`{id}`) come from the path when the route has them.
pub(super) fn route(mode: Mode) -> MethodRouter<Arc<Shared>> {
    get(
        move |State(s): State<Arc<Shared>>,
              a: Result<GraphAuth, GraphError>,
              params: RawPathParams,
              uri: OriginalUri,
              RawQuery(q): RawQuery,
              h: HeaderMap| async move {
            let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_owned());
            let cal = param("cal");
            let req = ListReq { cal: cal.as_deref(), mode, path: rel_path(&uri), master: param("id") };
            respond(listing(&s, a, req, q, &h))
        },
    )
}

/// The request path below the sandbox root, wherever the sandbox is mounted.
fn rel_path(uri: &OriginalUri) -> String {
    let p = uri.0.path();
    p.find("/microsoft/graph/").map_or(p, |i| &p[i..]).to_owned()
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
            Mode::Delta => {
                matches!(k.as_str(), "startDateTime" | "endDateTime" | "$skiptoken" | "$deltatoken" | "$expand")
            }
            Mode::View | Mode::Instances => matches!(
                k.as_str(),
                "startDateTime"
                    | "endDateTime"
                    | "$skiptoken"
                    | "$top"
                    | "$select"
                    | "$orderby"
                    | "$filter"
                    | "$expand"
            ),
            Mode::Events => {
                matches!(k.as_str(), "$skiptoken" | "$top" | "$select" | "$orderby" | "$filter" | "$expand")
            }
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
    let filter = match q.iter().find(|(k, _)| k == "$filter") {
        Some((_, v)) if req.mode == Mode::Events => Some(extprops::parse_filter(v)?),
        Some(_) => {
            return Err(GraphError::new(
                400,
                "ErrorInvalidUrlQueryFilter",
                "The sandbox evaluates $filter only on /events, and only on an extended property.",
            ));
        }
        None => None,
    };
    let expand = q.iter().find(|(k, _)| k == "$expand").map(|(_, v)| extprops::parse_expand(v)).transpose()?;
    let page = pref
        .page
        .or_else(|| q.iter().find(|(k, _)| k == "$top").and_then(|(_, v)| v.parse().ok()))
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let mut world = shared.world();
    let cal_id = match &req.master {
        Some(m) => locate_master(&world.microsoft, &auth, m)?,
        None => calendar_id(&world.microsoft, &auth, req.cal)?,
    };
    // Ragged mode (control API): pages shorter than asked, delta pages even empty, and an
    // id of this round repeated later. Drawn before anything else, so seeded runs repeat.
    let paging = shared.paging(Provider::Microsoft);
    let take = match page_len(paging, &mut world.rng, page) {
        0 if req.mode != Mode::Delta => 1,
        n => n,
    };
    let repeat = req.mode == Mode::Delta && repeat_id(paging, &mut world.rng);
    let pick: usize = if repeat { world.rng.random_range(0..page) } else { 0 };
    let epoch = world.microsoft.accounts[&auth.email].epoch;
    let head = world.seq();
    let lk = look(&world.microsoft, &auth, &pref, None);
    // A dead delta token: 410 with a link that starts a new round over the same window.
    let expired = |c: &ViewCursor| {
        let mut e = GraphError::sync_state_not_found();
        if let Some((ws, we)) = c.w {
            e.location = Some(shared.public_url(&format!(
                "{}?startDateTime={}&endDateTime={}",
                req.path,
                utc_stamp(ws),
                utc_stamp(we)
            )));
        }
        e
    };

    let mut cursor: ViewCursor = match &token_param {
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
                return Err(expired(&c));
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
            ViewCursor {
                c: cal_id.clone(),
                ep: epoch,
                w,
                inc: false,
                p: 0,
                e: head,
                v: None,
                x: None,
                f: None,
                r: None,
            }
        }
    };
    if expand.is_some() {
        cursor.x = expand;
    }
    if filter.is_some() {
        cursor.f = filter;
    }
    let lk = super::render::Look { expand: cursor.x.clone(), ..lk };
    let key = super::occurrence_key(&mut world);
    let cal = &world.microsoft.calendars[&cal_id];
    let mut rows =
        collect_rows(cal, &key, req.mode, &cursor, req.master.as_deref(), page + 1).map_err(|_| expired(&cursor))?;
    // Only the page (plus one, to know whether more remain) is ordered and rendered.
    rows.retain(|(k, _)| cursor.v.as_ref().is_none_or(|v| k > v));
    if rows.len() > page + 1 {
        rows.select_nth_unstable_by(page, |a, b| a.0.cmp(&b.0));
        rows.truncate(page + 1);
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let done = rows.len() <= take;
    rows.truncate(take);
    // An empty ragged page leaves the position where it was.
    let last = rows.last().map(|(k, _)| k.clone()).or_else(|| cursor.v.clone());
    let again = cursor.r.as_deref().and_then(|id| repeat_row(&world.microsoft, &cal_id, id, cursor.w));
    let repeat_next = (repeat && !done && !rows.is_empty()).then(|| rows[pick % rows.len()].0.2.clone());
    // Only `Arc`s (and synthesized occurrences) leave the lock; JSON is built after it.
    let mut pending: Vec<Pending> = rows.iter().map(|(_, r)| r.pending(&key)).collect();
    pending.extend(again);
    drop(rows);
    drop(world);
    let items: Vec<Value> = pending
        .iter()
        .map(|p| {
            let v = p.render(&lk, req.mode == Mode::Delta);
            match &select {
                Some(fields) if v.get("@removed").is_none() => project(v, fields),
                _ => Ok(v),
            }
        })
        .collect::<GraphResult<_>>()?;
    let mut body =
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)", "value": items});
    if !done {
        let next = ViewCursor { v: last, r: repeat_next, ..cursor.clone() };
        let mut link = format!("{}?$skiptoken={}", req.path, cursor::encode(&next));
        if let Some(fields) = &select {
            link.push_str(&format!("&$select={}", fields.join(",")));
        }
        // The page size asked for holds for the whole listing, as in Graph's nextLinks.
        if let Some((_, top)) = q.iter().find(|(k, _)| k == "$top") {
            link.push_str("&$top=");
            link.extend(url::form_urlencoded::byte_serialize(top.as_bytes()));
        }
        body["@odata.nextLink"] = json!(shared.public_url(&link));
    } else if req.mode == Mode::Delta {
        let round_end = ViewCursor { inc: true, p: cursor.e, v: None, r: None, ..cursor.clone() };
        body["@odata.deltaLink"] =
            json!(shared.public_url(&format!("{}?$deltatoken={}", req.path, cursor::encode(&round_end))));
    }
    Ok(with_preference(Json(body).into_response(), &pref))
}

/// `$select`: the named properties plus `id` and `@odata.etag`, which Graph always sends.
pub(super) fn project(v: Value, fields: &[String]) -> GraphResult<Value> {
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
    for k in ["@odata.etag", "id", "singleValueExtendedProperties"] {
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
